"""Review workspace figures: preview generation (clips/s) and gallery latency of a large run while its
previews are still pending.

Builds a synthetic tree of ``--clips`` distinct cines, then a ``--files``-row results.csv whose files are
hard links to them (every row a distinct path, so no preview is shared), starts the app in-process with
a real pool of ``--workers`` processes, keeps the pool busy with preview jobs, and times the gallery.

    python benchmarks/review.py                          # 2,000 files, 24 clips (small), 2 workers
    python benchmarks/review.py --files 10000 --size medium --workers 2
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import wait
from pathlib import Path


def _build_run(root: Path, n_clips: int, n_files: int, size: str, seed: int) -> Path:
    import numpy as np

    from echoquality.scoring import assessment_for, status_for
    from echoquality.synth import generate_dataset

    records = generate_dataset(root / "src", seed=seed, folders=6, clips_per_folder=max(1, n_clips // 6),
                               size=size, include_awkward=False)  # fmt: skip
    sources = [root / "src" / r.relative_path for r in records]
    rng = np.random.default_rng(seed)
    out = root / "results"
    out.mkdir()
    with (out / "results.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["folder", "key", "file_id", "path", "machine_type", "patient_id", "score", "status",
                    "assessment", "skip_reason"])  # fmt: skip
        for i in range(n_files):
            folder = f"epiq7c-P{i // 40:05d}"
            dest = root / "raw" / folder / f"clip{i:06d}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.link(sources[i % len(sources)], dest)
            score = float(rng.beta(2, 2))
            w.writerow([folder, dest.name, dest.name, str(dest), "epiq7c", f"P{i // 40:05d}", score,
                        status_for(score, 0.3), assessment_for(score), ""])  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=2000, help="rows in the run (default 2000)")
    ap.add_argument("--clips", type=int, default=24, help="distinct synthetic cines behind them")
    ap.add_argument("--size", default="small", choices=("small", "medium", "large"))
    ap.add_argument("--workers", type=int, default=2, help="preview worker processes")
    ap.add_argument("--jobs", type=int, default=48, help="previews timed for clips/s")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from fastapi.testclient import TestClient

    from echoquality.review.app import ReviewSettings, create_app

    with tempfile.TemporaryDirectory(prefix="echo_review_bench_") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        results = _build_run(root, args.clips, args.files, args.size, args.seed)
        print(f"run of {args.files} files built in {time.perf_counter() - t:.1f} s ({args.size} cines)")
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        t = time.perf_counter()
        app = create_app(ReviewSettings(results, workers=args.workers, workspace=root / "ws"))
        print(f"app created (catalog of {args.files} files): {1000 * (time.perf_counter() - t):.0f} ms")
        ctx = app.state.ctx
        with TestClient(app, base_url="http://127.0.0.1") as client:
            t = time.perf_counter()
            first = client.get("/")
            assert first.status_code == 200
            print(f"first gallery page (no preview made yet): {1000 * (time.perf_counter() - t):.0f} ms")

            # warm the pool (process start-up is not preview work), then time --jobs thumbnails
            wait([ctx.previews.request(ctx.catalog.clips[-1].source, "thumb")])
            clips = ctx.catalog.clips[: args.jobs]
            t = time.perf_counter()
            futures = [ctx.previews.request(c.source, "thumb") for c in clips]
            # gallery latency while those previews are pending
            lat = []
            for page in range(1, 21):
                s = time.perf_counter()
                r = client.get("/", params={"page": page, "sort": "uncertainty" if page % 2 else "score_asc"})
                lat.append(1000 * (time.perf_counter() - s))
                assert r.status_code == 200
            pending = ctx.previews.stats.pending
            wait(futures)
            dt = time.perf_counter() - t
            print(f"gallery page (60 cards) while {pending} previews pending: median {statistics.median(lat):.0f} ms, "
                  f"max {max(lat):.0f} ms over {len(lat)} pages")  # fmt: skip
            print(
                f"thumbnail + model input + mask previews: {len(clips) / dt:.1f} clips/s with {args.workers} workers"
            )
            t = time.perf_counter()
            wait([ctx.previews.request(c.source, "cine") for c in clips[:16]])
            print(f"cine film strips: {16 / (time.perf_counter() - t):.1f} clips/s")
            t = time.perf_counter()
            for c in clips:
                assert client.get(f"/clips/{c.id}/media/thumb").status_code == 200
            per = 1000 * (time.perf_counter() - t) / len(clips)
            print(f"cached preview served: {per:.1f} ms each; stats {vars(ctx.previews.stats)}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
