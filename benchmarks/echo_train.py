"""Training throughput (clips/s) with and without the preprocessed-clip cache.

Generates a synthetic DICOM tree in a temp dir, then for each architecture runs a few real
training steps (augmentation + normalisation + forward + backward + Adam) reading clips
either from the on-disk uint8 cache or by decoding DICOM every time.

    python benchmarks/echo_train.py                       # tiny + r2plus1d_18, CPU (and GPU if present)
    python benchmarks/echo_train.py --arch tiny --steps 20 --size medium
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def run(
    arch: str, device: str, steps: int, batch_size: int, use_cache: bool, records, cache_paths, cfg
) -> float:
    import torch
    from torch.utils.data import DataLoader

    from echoquality.config import AugmentConfig
    from echoquality.model import build_model
    from echoquality.training.dataset import ClipDataset

    torch.manual_seed(0)
    paths = cache_paths if use_cache else [None] * len(records)
    ds = ClipDataset(records, paths, cfg, augment=AugmentConfig(), seed=0)
    model = build_model(arch).to(device)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    crit = torch.nn.BCEWithLogitsLoss()
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=0)
    it = iter(loader)
    done, t0 = 0, None
    for step in range(steps + 1):  # step 0 is warm-up
        try:
            x, y, _ = next(it)
        except StopIteration:
            it = iter(loader)
            x, y, _ = next(it)
        x, y = x.to(device), y.to(device)
        opt.zero_grad()
        loss = crit(model(x).reshape(-1), y)
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if step == 0:
            t0 = time.perf_counter()
        else:
            done += y.numel()
    return done / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", choices=["tiny", "r2plus1d_18", "both"], default="both")
    ap.add_argument("--size", choices=["small", "medium"], default="medium", help="synthetic clip size")
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--steps", type=int, default=10, help="timed steps for tiny (r2plus1d_18: --big-steps)")
    ap.add_argument("--big-steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    args = ap.parse_args()

    import torch

    from echoquality.config import PreprocessConfig
    from echoquality.synth import generate_dataset
    from echoquality.training.dataset import ClipCache, ClipRecord, probe_clips

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = PreprocessConfig()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folders = max(1, args.clips // 8)
        t = time.perf_counter()
        synth = generate_dataset(
            root / "raw", seed=0, folders=folders, clips_per_folder=8, size=args.size, include_awkward=False
        )
        print(f"generated {len(synth)} {args.size} clips in {time.perf_counter() - t:.1f} s")
        records = [
            ClipRecord(
                s.relative_path,
                root / "raw" / s.relative_path,
                int(s.label),
                s.patient_id,
                s.machine_type,
                "human",
            )
            for s in synth
            if s.label is not None
        ]
        cache = ClipCache(root / "cache", cfg)
        t = time.perf_counter()
        kept, cache_paths, skipped = probe_clips(records, cfg, cache)
        fill = time.perf_counter() - t
        print(
            f"cache fill (decode + preprocess + save): {len(kept)} clips in {fill:.1f} s "
            f"= {len(kept) / fill:.1f} clips/s; skipped {len(skipped)}"
        )
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        archs = ["tiny", "r2plus1d_18"] if args.arch == "both" else [args.arch]
        print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, batch {args.batch_size}")
        print(f"{'arch':<12} {'device':<6} {'cache':<6} {'clips/s':>8}")
        for arch in archs:
            for device in devices:
                steps = args.steps if (arch == "tiny" or device == "cuda") else args.big_steps
                for use_cache in (True, False):
                    rate = run(arch, device, steps, args.batch_size, use_cache, kept, cache_paths, cfg)
                    print(
                        f"{arch:<12} {device:<6} {'on' if use_cache else 'off':<6} {rate:>8.2f}", flush=True
                    )


if __name__ == "__main__":
    main()
