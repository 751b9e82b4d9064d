"""Throughput of ``nhs-lookup train`` (cases/s for 1, 2 and 4 workers) and of ``optimize`` (trials/s).

Data: the 1,090 real unlabelled dev names (../shared/nhs/ris_exam_names_dev.json) repeated to 15,000
cases on the real NHS catalogue; the optimiser runs 100 TPE trials over the 194 gold cases (dev +
sanity). Without ../shared it falls back to the bundled sample cases and catalogue (and says so).

    .venv/bin/python benchmarks/lookup_train.py [--cases 15000] [--workers 1 2 4] [--trials 100]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from nhs_lookup.cases import load_cases  # noqa: E402
from nhs_lookup.config import LookupConfig  # noqa: E402
from nhs_lookup.framework.optimize import OptimizeOptions, run_optimization  # noqa: E402
from nhs_lookup.framework.paths import SAMPLE_CASES, shared_file  # noqa: E402
from nhs_lookup.framework.train import TrainOptions, run_training  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=15000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--chunk-size", type=int, default=1000)
    ap.add_argument("--trials", type=int, default=100)
    args = ap.parse_args()

    names = shared_file("ris_exam_names_dev.json")
    catalogue = shared_file("NHS.json")
    source = names if names and catalogue else SAMPLE_CASES
    catalogue_path = str(catalogue) if names and catalogue else None
    items = json.loads(source.read_text())
    print(
        f"names: {source} ({len(items)} distinct), catalogue: {catalogue_path or 'bundled sample'}, cores: {os.cpu_count()}"
    )

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "cases.json"
        data.write_text(json.dumps([items[i % len(items)] for i in range(args.cases)]))
        from nhs_lookup.engine import LookupEngine

        LookupEngine.load(catalogue_path=catalogue_path)  # warm the catalogue cache once
        print(
            f"\ntrain over {args.cases} cases (chunk {args.chunk_size}, checkpoint every 2500, SQLite store)"
        )
        print(f"{'workers':>8} {'wall s':>8} {'cases/s':>9}")
        for w in args.workers:
            t0 = time.perf_counter()
            run = run_training(
                TrainOptions(
                    datasets=[data], experiment_name=f"bench-{w}", db=str(Path(tmp) / f"b{w}.db"),
                    catalogue=catalogue_path, chunk_size=args.chunk_size, max_workers=w,
                    log_dir=Path(tmp) / "logs", show_progress=False,
                )
            )  # fmt: skip
            wall = time.perf_counter() - t0
            print(f"{w:>8} {wall:>8.1f} {run.processed_this_run / wall:>9.0f}")

        gold_files = [f for f in (shared_file("dev_gold.json"), shared_file("sanity_gold.json")) if f]
        gold_paths = gold_files if (gold_files and catalogue_path) else [SAMPLE_CASES]
        cases, _ = load_cases(gold_paths)
        cases = [c for c in cases if c.labelled]
        engine = LookupEngine.load(LookupConfig(), catalogue_path=catalogue_path)
        opts = OptimizeOptions(
            study_name="bench", storage=str(Path(tmp) / "opt.db"), strategy="tpe", max_experiments=args.trials,
            early_stopping_threshold=1.01, output=Path(tmp) / "best.yaml", mlflow=False,
        )  # fmt: skip
        t0 = time.perf_counter()
        run = run_optimization(engine, cases, [], LookupConfig(), opts)
        wall = time.perf_counter() - t0
        print(
            f"\noptimize: {run.trials_this_run} TPE trials over {len(cases)} gold cases ({', '.join(p.name for p in gold_paths)})"
        )
        print(f"  prepare {run.prepare_s:.2f} s, search {run.optimize_s:.1f} s, total {wall:.1f} s, "
              f"{run.trials_per_second:.1f} trials/s (SQLite study storage)")  # fmt: skip
        print(
            f"  top-1 {run.baseline_train.top1:.3f} (default) -> {run.best_train.top1:.3f} (best, in-sample)"
        )


if __name__ == "__main__":
    main()
