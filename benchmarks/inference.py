"""Inference throughput: decode+preprocess alone, model alone, and end to end (clips/s, peak memory).

Generates a synthetic tree (medium size: 480x640 cines by default) in a temporary folder, then runs
each stage in its own Python process; peak RSS of the stage process and of its decode workers is sampled
from /proc (Linux) every 50 ms; on a GPU
also ``torch.cuda.max_memory_allocated``. End to end is ``run_inference`` with random weights; its
steady-state figure uses the decode+forward loop time (no model loading / plotting).

    python benchmarks/inference.py                       # r2plus1d_18, 24 clips, CPU (+ GPU if present)
    python benchmarks/inference.py --arch tiny --clips 48 --workers 2 --batch-size 4
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


def _rss_kb(pid: int | str, field: str = "VmRSS") -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _children(pid: int | str) -> list[str]:
    kids: list[str] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += (task / "children").read_text().split()
        except OSError:
            pass
    return kids


class PeakMemory:
    """Samples the RSS of this process and of its worker processes (Linux /proc) every 50 ms.

    ``ru_maxrss`` is not used: on Linux it survives fork+exec, so spawned workers would report the
    parent's peak.
    """

    def __init__(self) -> None:
        import threading

        self.peak_self = self.peak_children = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak_self = max(self.peak_self, _rss_kb("self"))
            self.peak_children = max(self.peak_children, sum(_rss_kb(k) for k in _children("self")))

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_self = max(self.peak_self, _rss_kb("self", "VmHWM"))

    def as_dict(self) -> dict[str, float]:
        return {
            "peak_rss_mb": round(self.peak_self / 1024, 1),
            "peak_child_rss_mb": round(self.peak_children / 1024, 1),
        }


def stage_decode(args: argparse.Namespace) -> dict:
    from echoquality.config import PreprocessConfig
    from echoquality.inference import _Job, discover, iter_preprocessed

    files = [f for fs in discover(Path(args.data)).values() for f in fs]
    jobs = [_Job(i, str(f.path), f.folder) for i, f in enumerate(files)]
    t0 = time.perf_counter()
    with PeakMemory() as mem:
        n_ok = sum(
            1
            for o in iter_preprocessed(
                jobs,
                PreprocessConfig(),
                workers=args.workers,
                max_in_flight=2 * args.batch_size + 2 * args.workers,
            )
            if o.tensor is not None
        )
    dt = time.perf_counter() - t0
    return {"clips": n_ok, "seconds": dt, "clips_per_s": n_ok / dt, **mem.as_dict()}


def stage_model(args: argparse.Namespace) -> dict:
    import torch

    from echoquality.model import build_model, prepare_for_inference, score_batch

    device = torch.device(args.device)
    torch.manual_seed(0)
    model = prepare_for_inference(build_model(args.arch), device)
    batch = torch.randn(args.batch_size, 3, 16, 112, 112)
    score_batch(model, batch)  # warm-up (allocations, cuDNN autotune)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    n_batches = max(1, math.ceil(args.clips / args.batch_size))
    t0 = time.perf_counter()
    with PeakMemory() as mem:
        for _ in range(n_batches):
            score_batch(model, batch)  # returns numpy: synchronises with the GPU
    dt = time.perf_counter() - t0
    out = {
        "clips": n_batches * args.batch_size,
        "seconds": dt,
        "clips_per_s": n_batches * args.batch_size / dt,
    }
    if device.type == "cuda":
        out["cuda_max_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return {**out, **mem.as_dict()}


def stage_end_to_end(args: argparse.Namespace) -> dict:
    import torch

    from echoquality.config import EchoConfig
    from echoquality.inference import run_inference

    cfg = EchoConfig()
    icfg = cfg.inference
    icfg.data_dir, icfg.output_dir = args.data, tempfile.mkdtemp(prefix="eq_bench_out_")
    icfg.num_workers, icfg.batch_size, icfg.device = args.workers, args.batch_size, args.device
    icfg.write_plots = False
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    with PeakMemory() as mem:
        s = run_inference(cfg, weights=Path(args.weights), progress=False, force=True)
    wall = time.perf_counter() - t0
    out = {
        "clips": s.scored_this_run,
        "seconds": s.scoring_s,
        "clips_per_s": s.scored_this_run / s.scoring_s,
        "total_wall_s": wall,
        "clips_per_s_incl_startup": s.scored_this_run / wall,
    }
    if args.device.startswith("cuda"):
        out["cuda_max_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return {**out, **mem.as_dict()}


STAGES = {"decode": stage_decode, "model": stage_model, "end_to_end": stage_end_to_end}


def _run_stage(stage: str, args: argparse.Namespace, device: str) -> dict:
    cmd = [
        sys.executable, __file__, "--stage", stage, "--data", args.data, "--weights", args.weights,
        "--arch", args.arch, "--clips", str(args.clips), "--workers", str(args.workers),
        "--batch-size", str(args.batch_size), "--device", device,
    ]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"stage {stage} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="r2plus1d_18", choices=["r2plus1d_18", "tiny"])
    p.add_argument("--clips", type=int, default=24, help="scorable clips to generate and score")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--size", default="medium", choices=["small", "medium"])
    p.add_argument("--device", default=None, help="cpu | cuda (default: cpu, plus cuda when available)")
    p.add_argument("--seed", type=int, default=0)
    # internal: run one stage and print JSON
    p.add_argument("--stage", choices=list(STAGES), help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--weights", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.stage:
        print(json.dumps(STAGES[args.stage](args)))
        return

    import torch

    from echoquality.model.weights import save_random_weights
    from echoquality.synth import generate_dataset

    devices = [args.device] if args.device else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    with tempfile.TemporaryDirectory(prefix="eq_bench_") as tmp:
        per_folder = 4
        t0 = time.perf_counter()
        records = generate_dataset(
            Path(tmp) / "raw",
            seed=args.seed,
            folders=math.ceil(args.clips / per_folder),
            clips_per_folder=per_folder,
            size=args.size,
            include_awkward=False,
        )
        n_scorable = sum(1 for r in records if not r.expected_skip_reason)
        print(
            f"synthetic tree: {len(records)} files ({n_scorable} scorable, size {args.size}) "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        args.data = str(Path(tmp) / "raw")
        args.weights = str(save_random_weights(Path(tmp) / "w.pt", args.arch, seed=0))
        print(
            f"arch {args.arch}, workers {args.workers}, batch {args.batch_size}, "
            f"torch threads {torch.get_num_threads()}, python {sys.version.split()[0]}, torch {torch.__version__}"
        )
        header = f"{'device':6} {'stage':22} {'clips':>5} {'sec':>7} {'clips/s':>8} {'peak RSS MiB':>13} {'workers RSS':>11} {'GPU MiB':>8}"
        print(header)
        print("-" * len(header))
        for device in devices:
            results = {}
            dec = _run_stage("decode", args, device) if device == devices[0] else results.get("decode")
            results["decode"] = dec
            results["model"] = _run_stage("model", args, device)
            results["end_to_end"] = _run_stage("end_to_end", args, device)
            for name, r in results.items():
                label = (
                    f"decode+preprocess (w={args.workers})" if name == "decode" else name.replace("_", " ")
                )
                print(
                    f"{device:6} {label:22} {r['clips']:5d} {r['seconds']:7.2f} {r['clips_per_s']:8.2f} "
                    f"{r['peak_rss_mb']:13.0f} {r['peak_child_rss_mb']:11.0f} {r.get('cuda_max_memory_mb', ''):>8}"
                )
            slower = min(results["decode"]["clips_per_s"], results["model"]["clips_per_s"])
            e2e = results["end_to_end"]
            print(
                f"{device:6} end to end = {100 * e2e['clips_per_s'] / slower:.0f}% of the slower stage "
                f"({e2e['clips_per_s_incl_startup']:.2f} clips/s including model load and worker start-up, "
                f"{e2e['total_wall_s']:.1f} s)"
            )


if __name__ == "__main__":
    main()
