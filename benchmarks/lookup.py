"""Lookup-engine throughput and start-up benchmark.

Prints exams/s for single lookups and batch mode over the real dev names (../shared/nhs/
ris_exam_names_dev.json, or the bundled sample cases when ../shared is absent), and engine start-up
time with a cold and a warm catalogue cache. Usage: python benchmarks/lookup.py [--catalogue PATH]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "nhs"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--catalogue", default=str(SHARED / "NHS.json") if (SHARED / "NHS.json").is_file() else None
    )
    ap.add_argument("--names", default=str(SHARED / "ris_exam_names_dev.json") if SHARED.is_dir() else None)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from nhs_lookup.cases import load_cases
    from nhs_lookup.config import LookupConfig
    from nhs_lookup.engine import LookupEngine
    from nhs_lookup.vocab import DATA_DIR

    names = args.names or str(DATA_DIR / "sample_cases.json")
    cases, _ = load_cases(names)
    queries = [c.query for c in cases]
    with tempfile.TemporaryDirectory() as cache:
        cfg = LookupConfig(cache_dir=cache)
        t0 = time.perf_counter()
        LookupEngine.load(cfg, args.catalogue)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        engine = LookupEngine.load(cfg, args.catalogue)
        warm = time.perf_counter() - t0
    print(
        f"catalogue: {engine.catalogue.source_path} ({len(engine.catalogue)} rows); names: {names} ({len(queries)})"
    )
    print(f"start-up: cold cache {cold:.2f} s, warm cache {warm:.2f} s")

    fresh = LookupEngine(engine.config, engine.catalogue, engine.index)
    t0 = time.perf_counter()
    for q in queries:
        fresh.lookup(q)
    single = time.perf_counter() - t0
    print(
        f"single lookups: {len(queries) / single:,.0f} exams/s ({1000 * single / len(queries):.2f} ms/exam)"
    )

    fresh = LookupEngine(engine.config, engine.catalogue, engine.index)
    t0 = time.perf_counter()
    fresh.lookup_many(queries)
    batch = time.perf_counter() - t0
    print(f"batch mode (cold parse cache): {len(queries) / batch:,.0f} exams/s")
    t0 = time.perf_counter()
    fresh.lookup_many(queries)
    batch2 = time.perf_counter() - t0
    print(f"batch mode (warm parse cache): {len(queries) / batch2:,.0f} exams/s")

    prepared = fresh.prepare_many(queries)
    t0 = time.perf_counter()
    for p in prepared:
        fresh.rank(p, engine.config.scoring)
    rank_t = time.perf_counter() - t0
    print(f"rank() only: {1000 * rank_t / len(prepared):.3f} ms/call")


if __name__ == "__main__":
    main()
