"""The large DICOM fuzz run (issue 9): the corpus + 1,000 seeded mutants through ``run_inference``.

Corpus: every file bundled with pydicom (``pydicom/data/test_files``, DICOM or not) plus a synthetic
echo tree (``echoquality.synth.generate_dataset``, awkward files included), topped up to 255 files.
Mutants: 1,000 seeded mutations of the corpus' DICOM files (the mutations of
``tests/echoquality/test_fuzz_dicom.py``). Each run is ``run_inference`` with random r2plus1d_18
weights in its own process; the script prints, per run: whether it aborted, tracebacks in its output,
peak RSS (main process and decode workers, sampled from /proc), files in ``results.csv`` vs files on
disk, and counts by status / skip reason.

    python benchmarks/fuzz_dicom.py                      # 255-file corpus + 1,000 mutants, workers 2
    python benchmarks/fuzz_dicom.py --mutants 200 --arch tiny --workers 0 --only mutants
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "echoquality"))

CORPUS_SIZE = 255
MAX_SOURCE_BYTES = 2 * 2**20  # mutate files up to 2 MiB (keeps the mutant folder small)


def build_corpus(root: Path, seed: int) -> list[Path]:
    """pydicom's bundled files (one folder) + a synthetic echo tree, CORPUS_SIZE files in all."""
    import pydicom

    from echoquality.synth import generate_dataset

    bundled = Path(pydicom.__file__).parent / "data" / "test_files"
    dest = root / "pydicom-BUNDLED"
    dest.mkdir(parents=True)
    files = sorted(p for p in bundled.rglob("*") if p.is_file())
    for p in files:
        shutil.copy2(p, dest / p.relative_to(bundled).as_posix().replace("/", "__"))
    synth = root.parent / "synth"
    generate_dataset(synth, seed=seed, folders=12, clips_per_folder=8, size="small", include_awkward=True)
    synth_files = sorted(p for p in synth.glob("*/**/*") if p.is_file())  # files inside study folders
    for p in synth_files[: max(0, CORPUS_SIZE - len(files))]:
        target = root / p.relative_to(synth)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, target)
    return sorted(p for p in root.glob("*/**/*") if p.is_file())


def stage_run(args: argparse.Namespace) -> dict:
    """One ``run_inference`` in this process; prints a JSON line with the figures."""
    from inference import PeakMemory

    from echoquality.config import EchoConfig
    from echoquality.inference import run_inference

    cfg = EchoConfig()
    icfg = cfg.inference
    icfg.data_dir, icfg.output_dir = args.data, args.out
    icfg.num_workers, icfg.batch_size, icfg.device = args.workers, 4, "cpu"
    icfg.write_plots = False
    t0 = time.perf_counter()
    with PeakMemory() as mem:
        summary = run_inference(cfg, weights=Path(args.weights), progress=False)
    with (Path(args.out) / "results.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    counts = collections.Counter(r["skip_reason"] or f"scored ({r['status']})" for r in rows)
    keys = [(r["folder"], r["key"]) for r in rows]
    odd = [f"{r['key']}: {r['skip_detail'][:160]}" for r in rows if r["skip_reason"] == "other_errors"]
    return {
        "seconds": round(time.perf_counter() - t0, 1),
        "rows": len(rows),
        "distinct_rows": len(set(keys)),
        "files": summary.total_files,
        "counts": dict(sorted(counts.items())),
        "other_errors": odd[:5],
        **mem.as_dict(),
    }


def _run(label: str, data: Path, out: Path, args: argparse.Namespace) -> dict:
    cmd = [
        sys.executable, __file__, "--stage", "run", "--data", str(data), "--out", str(out),
        "--weights", args.weights, "--workers", str(args.workers),
    ]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    output = res.stdout + res.stderr
    figures = {}
    if res.returncode == 0:
        figures = json.loads(res.stdout.strip().splitlines()[-1])
    on_disk = sum(1 for p in data.glob("*/**/*") if p.is_file())  # loose files in data are not inputs
    figures.update(
        label=label,
        aborted=res.returncode != 0,
        returncode=res.returncode,
        tracebacks=output.count("Traceback (most recent call last)"),
        decoder_panics=output.count("panicked at"),
        on_disk=on_disk,
    )
    if res.returncode != 0:
        figures["tail"] = output[-2000:]
    return figures


def _print(fig: dict) -> None:
    print(f"\n== {fig['label']}")
    print(
        f"aborted: {fig['aborted']} (rc {fig['returncode']})   tracebacks: {fig['tracebacks']}   "
        f"decoder panics caught: {fig['decoder_panics']}"
    )
    if fig["aborted"]:
        print(fig["tail"])
        return
    print(
        f"files on disk: {fig['on_disk']}   rows in results.csv: {fig['rows']} "
        f"({fig['distinct_rows']} distinct)   time: {fig['seconds']} s"
    )
    print(
        f"peak RSS: main {fig['peak_rss_mb']:.0f} MiB, decode workers {fig['peak_child_rss_mb']:.0f} MiB, "
        f"together {fig['peak_rss_mb'] + fig['peak_child_rss_mb']:.0f} MiB"
    )
    for key, n in fig["counts"].items():
        print(f"  {key:28} {n:5d}")
    for line in fig["other_errors"]:
        print(f"  other_errors example: {line}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mutants", type=int, default=1000)
    p.add_argument("--arch", default="r2plus1d_18", choices=["r2plus1d_18", "tiny"])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", choices=["corpus", "mutants"], help="run one of the two runs")
    p.add_argument("--stage", choices=["run"], help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--weights", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.stage:
        print(json.dumps(stage_run(args)))
        return

    import test_fuzz_dicom as fz

    from echoquality.model.weights import save_random_weights

    with tempfile.TemporaryDirectory(prefix="eq_fuzz_") as tmp:
        root = Path(tmp)
        corpus = build_corpus(root / "corpus" / "raw", args.seed)
        sources = [f for f in corpus if f.stat().st_size <= MAX_SOURCE_BYTES and _is_dicom(f)]
        sources += fz.source_files(root / "seeds")
        kinds = fz.write_mutants(sources, root / "mutants" / "raw" / "fuzz-MUTANTS", args.mutants, args.seed)
        args.weights = str(save_random_weights(root / "w.pt", args.arch, seed=0))
        print(
            f"corpus: {len(corpus)} files; mutants: {len(kinds)} from {len(sources)} DICOM sources "
            f"({dict(sorted(collections.Counter(kinds.values()).items()))}); arch {args.arch}, "
            f"workers {args.workers}"
        )
        figures = [
            _run(name, root / name / "raw", root / f"out_{name}", args)
            for name in ("corpus", "mutants")
            if args.only in (None, name)
        ]
        for fig in figures:
            _print(fig)
        aborted = sum(f["aborted"] for f in figures)
        tracebacks = sum(f["tracebacks"] for f in figures)
        peak = max((f.get("peak_rss_mb", 0) + f.get("peak_child_rss_mb", 0)) for f in figures)
        missing = sum(f.get("on_disk", 0) - f.get("distinct_rows", 0) for f in figures)
        print(
            f"\nTOTAL: aborted runs {aborted}, tracebacks {tracebacks}, files missing from results.csv "
            f"{missing}, peak RSS (main + workers) {peak:.0f} MiB"
        )


def _is_dicom(path: Path) -> bool:
    from echoquality.dicom import is_dicom

    return is_dicom(path)


if __name__ == "__main__":
    main()
