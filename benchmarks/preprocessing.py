"""Preprocessing speed: decode, sector mask and the full per-file pipeline on 480x640 cines.

Run:  .venv/bin/python benchmarks/preprocessing.py [--repeats 5]
Prints median wall-clock seconds per step for a synthetic 120-frame 480x640 clip (JPEG Baseline
YBR_FULL_422 and uncompressed RGB) and for pydicom-data's color3d_jpeg_baseline.dcm when installed.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from echoquality.config import PreprocessConfig
from echoquality.dicom import read_frames, read_info
from echoquality.preprocess import compute_mask, load_clip, preprocess_file, sample_indices
from echoquality.synth import ClipSpec, render_clip, write_clip


def timed(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_file(label: str, path: Path, repeats: int) -> None:
    cfg = PreprocessConfig()
    info = read_info(path)
    idx = sample_indices(info.num_frames, info.fps, cfg)
    all_frames = read_frames(path, range(info.num_frames), info)
    rows = {
        "read_info (header only)": timed(lambda: read_info(path), repeats),
        f"decode {len(idx)} sampled frames": timed(lambda: read_frames(path, idx, info), repeats),
        f"decode all {info.num_frames} frames": timed(
            lambda: read_frames(path, range(info.num_frames), info), 1
        ),
        f"sector mask on {info.num_frames} frames": timed(lambda: compute_mask(all_frames), repeats),
        "load_clip (uint8 112x112 clip)": timed(lambda: load_clip(path, cfg), repeats),
        "preprocess_file (model tensor)": timed(lambda: preprocess_file(path, cfg), repeats),
    }
    print(
        f"\n{label}: {info.num_frames} frames {info.rows}x{info.columns} {info.photometric} / {info.transfer_syntax}"
    )
    for name, seconds in rows.items():
        print(f"  {name:<40s} {seconds * 1000:8.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    frames = render_clip(ClipSpec(480, 640, 120, 30.0, label_text="EPIQ 7C"), np.random.default_rng(0))
    with tempfile.TemporaryDirectory() as tmp:
        jpeg = write_clip(
            Path(tmp) / "jpeg", frames, photometric="YBR_FULL_422", transfer_syntax="JPEGBaseline8Bit"
        )
        rgb = write_clip(Path(tmp) / "rgb", frames, photometric="RGB")
        bench_file("synthetic JPEG Baseline", jpeg, args.repeats)
        bench_file("synthetic uncompressed RGB", rgb, args.repeats)
    try:
        from pydicom.data import get_testdata_file

        real = get_testdata_file("color3d_jpeg_baseline.dcm")  # by name only: never a network pattern search
    except Exception:  # pydicom-data not installed
        real = None
    if real:
        bench_file("pydicom-data color3d_jpeg_baseline.dcm (SonoSite)", Path(real), args.repeats)


if __name__ == "__main__":
    main()
