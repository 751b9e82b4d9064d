"""Scaling: ``echoquality infer`` clips/s, local engine vs Ray engine, with 1 and 2 decode workers.

One synthetic tree and one set of random weights for every run; each run is its own Python process
(``run_inference(..., force=True)``), so Ray's start-up is counted once per run like a real command.
Prints, per engine and worker count, the steady-state clips/s and the clips/s including start-up, then
Ray's overhead vs local at equal workers (target: within 15 %). Steady state is the rate between the
``--warmup``-th scored clip and the last one: both engines start decoding while their model is being
built, so the first clips can be ready before the loop starts and would flatter whichever engine takes
longer to start (Ray's model actor). ``loop s`` is the run's own decode+score loop time, for reference.
With ``--address`` the Ray runs join an existing cluster instead of starting a local one.

    python benchmarks/scaling.py                         # tiny arch, 64 clips, workers 1 and 2
    python benchmarks/scaling.py --arch r2plus1d_18 --clips 24 --size medium
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_one(args: argparse.Namespace) -> dict:
    """One run of ``run_inference``'s engine class, timestamping every scored file."""
    from echoquality.config import EchoConfig
    from echoquality.inference.runner import InferenceRun

    base: type = InferenceRun
    options: dict = {"progress": False, "force": True}
    if args.engine == "ray":
        from echoquality.inference.ray_engine import RayInferenceRun

        base, options["address"] = RayInferenceRun, args.address
    stamps: list[float] = []

    class TimedRun(base):  # type: ignore[misc, valid-type]
        def _record(self, r):  # noqa: ANN001, ANN202
            if r.score is not None:
                stamps.append(time.perf_counter())
            super()._record(r)

    cfg = EchoConfig()
    icfg = cfg.inference
    icfg.data_dir, icfg.output_dir = args.data, tempfile.mkdtemp(prefix="eq_scaling_out_")
    icfg.num_workers, icfg.batch_size, icfg.device = args.workers, args.batch_size, "cpu"
    icfg.write_plots = False
    t0 = time.perf_counter()
    s = TimedRun(cfg, Path(args.weights), **options).run()
    wall = time.perf_counter() - t0
    # steady state: the clips scored after the first WARMUP, whose time is the gap between the WARMUP-th
    # and the last score; the first ones may have been decoded while the engine was still starting up
    k = min(args.warmup, len(stamps) - 2)
    return {
        "clips": s.scored_this_run,
        "loop_s": s.scoring_s,
        "clips_per_s": (len(stamps) - k) / (stamps[-1] - stamps[k - 1]),
        "wall_s": wall,
        "clips_per_s_incl_startup": s.scored_this_run / wall,
    }


def _child(args: argparse.Namespace, engine: str, workers: int) -> dict:
    cmd = [
        sys.executable, __file__, "--child", "--data", args.data, "--weights", args.weights,
        "--engine", engine, "--workers", str(workers), "--batch-size", str(args.batch_size),
        "--warmup", str(args.warmup),
    ]  # fmt: skip
    if args.address:
        cmd += ["--address", args.address]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"{engine} run with {workers} worker(s) failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="tiny", choices=["r2plus1d_18", "tiny"])
    p.add_argument("--clips", type=int, default=64, help="scorable clips to generate and score")
    p.add_argument(
        "--warmup", type=int, default=16, help="first scored clips left out of the steady-state rate"
    )
    p.add_argument("--size", default="small", choices=["small", "medium"])
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="decode worker counts to compare")
    p.add_argument("--repeats", type=int, default=1, help="runs per configuration (the best is reported)")
    p.add_argument("--address", default=None, help="Ray cluster to join (default: a local Ray per run)")
    p.add_argument("--seed", type=int, default=0)
    # internal: one run in a child process
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--engine", default="local", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--weights", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        args.workers = args.workers[0]
        print(json.dumps(run_one(args)))
        return

    import ray

    from echoquality.model.weights import save_random_weights
    from echoquality.synth import generate_dataset

    with tempfile.TemporaryDirectory(prefix="eq_scaling_") as tmp:
        records = generate_dataset(
            Path(tmp) / "raw",
            seed=args.seed,
            folders=math.ceil(args.clips / 4),
            clips_per_folder=4,
            size=args.size,
            include_awkward=False,
        )
        args.data = str(Path(tmp) / "raw")
        args.weights = str(save_random_weights(Path(tmp) / "w.pt", args.arch, seed=0))
        n = sum(1 for r in records if not r.expected_skip_reason)
        print(
            f"tree: {len(records)} files ({n} scorable, {args.size}); arch {args.arch}, batch {args.batch_size}"
        )
        print(
            f"ray {ray.__version__}, python {sys.version.split()[0]}, cluster: {args.address or 'local per run'}"
        )
        header = f"{'engine':6} {'workers':>7} {'clips':>5} {'loop s':>7} {'clips/s':>8} {'wall s':>7} {'incl. start-up':>14}"
        print(header)
        print("-" * len(header))
        best: dict[tuple[str, int], dict] = {}
        for workers in args.workers:
            for engine in ("local", "ray"):
                runs = [_child(args, engine, workers) for _ in range(max(1, args.repeats))]
                r = best[engine, workers] = max(runs, key=lambda x: x["clips_per_s"])
                print(
                    f"{engine:6} {workers:7d} {r['clips']:5d} {r['loop_s']:7.2f} {r['clips_per_s']:8.2f} "
                    f"{r['wall_s']:7.2f} {r['clips_per_s_incl_startup']:14.2f}"
                )
        print()
        for workers in args.workers:
            loc, ray_r = best["local", workers], best["ray", workers]
            overhead = 1 - ray_r["clips_per_s"] / loc["clips_per_s"]
            startup = 1 - ray_r["clips_per_s_incl_startup"] / loc["clips_per_s_incl_startup"]
            verdict = "within" if overhead <= 0.15 else "OVER"
            print(
                f"workers {workers}: Ray overhead vs local {overhead:+.1%} steady state ({verdict} the 15% target), "
                f"{startup:+.1%} including start-up"
            )


if __name__ == "__main__":
    main()
