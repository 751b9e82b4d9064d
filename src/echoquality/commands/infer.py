"""`echoquality infer`: score every cine under a data folder and write the result files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from echoquality.scoring import DEFAULT_THRESHOLD

NO_WEIGHTS_HELP = """No model weights found. The quality model needs a weights file; get one of:
  - the reference weights, if you have a URL for them:
      echoquality download-weights --url URL        (saves weights/video_quality_model.pt, checks sha256)
  - an existing file:  --weights PATH   or   export ECHOQUALITY_WEIGHTS=PATH
  - your own model:    echoquality train ...        then --weights trained_models/best_model.pt
Looked for: --weights, $ECHOQUALITY_WEIGHTS, config inference.weights, weights/video_quality_model.pt"""


def _sigterm_as_interrupt() -> None:
    """Let SIGTERM (job schedulers, `timeout`) stop a run like Ctrl-C, so finished work is flushed."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


_OPTION_FIELDS = {
    "data_dir": "data_dir",
    "output": "output_dir",
    "threshold": "threshold",
    "device": "device",
    "batch_size": "batch_size",
    "workers": "num_workers",
}


def _apply_options(cfg: object, **options: object) -> None:
    """Command-line options override the config's ``inference`` section (None: keep the config's)."""
    icfg = cfg.inference  # type: ignore[attr-defined]
    for name, value in options.items():
        if value is not None:
            setattr(icfg, _OPTION_FIELDS[name], str(value) if isinstance(value, Path) else value)


def infer(
    data_dir: Path = typer.Option(
        None, "--data-dir", help="Folder with one sub-folder per study/device (default raw_data)."
    ),
    output: Path = typer.Option(
        None, "--output", "-o", help="Output folder (default results/inference_output)."
    ),
    weights: str = typer.Option(
        None,
        "--weights",
        "-w",
        help="Weights file (state_dict). Default: $ECHOQUALITY_WEIGHTS, then weights/video_quality_model.pt.",
    ),
    threshold: float = typer.Option(
        None, "--threshold", help=f"PASS when score >= threshold (default {DEFAULT_THRESHOLD:g})."
    ),
    device: str = typer.Option(None, "--device", help="auto | cpu | cuda (default auto)."),
    batch_size: int = typer.Option(None, "--batch-size", min=1, help="Clips per forward pass (default 4)."),
    workers: int = typer.Option(
        None,
        "--workers",
        min=0,
        help="Decode/preprocess worker processes; 0 = inline (default: the CPU count).",
    ),
    config: Path = typer.Option(None, "--config", help="YAML config (see config.yaml); options override it."),
    fps_aware: bool = typer.Option(
        False, "--fps-aware", help="Sample the same time window whatever the frame rate (not the reference)."
    ),
    force: bool = typer.Option(False, "--force", help="Re-score files already scored in --output."),
    clean: bool = typer.Option(False, "--clean", help="Empty --output first (never touches --data-dir)."),
    no_plots: bool = typer.Option(False, "--no-plots", help="Do not draw the PNG charts."),
    gradcam: bool = typer.Option(False, "--gradcam", help="Save a Grad-CAM GIF per scored file."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    engine: str = typer.Option(
        "local",
        "--engine",
        help="local (process pool, default) | ray (Ray tasks + model actors; docs/scaling.md).",
    ),
    address: str = typer.Option(
        None, "--address", help="--engine ray: cluster to join (auto | HOST:PORT); default a local Ray."
    ),
    actors: int = typer.Option(
        None, "--actors", min=1, help="--engine ray: model actors (default one per GPU, else 1)."
    ),
) -> None:
    """Score every echo cine under DATA_DIR/<folder>/** and write results in the original tool's format.

    Writes to the output folder: summary.json, results.csv, run_info.json and the charts score_distribution.png / pass_fail_distribution.png, plus per folder: folder_summary.json, inference_results.json, <folder>_failed_files.json and the charts. Files that cannot be scored are listed with a reason code and detail.

    Re-running scores only new or changed files (same weights and preprocessing); earlier results are never deleted unless --force or --clean.

    Exit code 0 when the run completed (even with skipped files); 1 when no file at all could be scored (the reasons are printed); 2 for usage errors (no or invalid weights, missing data folder, output made with other weights).
    """
    from rich.console import Console
    from rich.markup import escape

    from echoquality.config import load_config

    console = Console()
    err = Console(stderr=True)
    try:
        cfg = load_config(config)
    except (FileNotFoundError, ValueError) as exc:
        err.print(f"[red]config error:[/] {exc}")
        raise typer.Exit(2) from exc
    icfg = cfg.inference
    _apply_options(
        cfg,
        data_dir=data_dir,
        output=output,
        threshold=threshold,
        device=device,
        batch_size=batch_size,
        workers=workers,
    )
    cfg.preprocess.fps_aware = cfg.preprocess.fps_aware or fps_aware
    icfg.write_plots = icfg.write_plots and not no_plots
    icfg.gradcam = icfg.gradcam or gradcam

    from echoquality.inference import InferenceError, run_inference
    from echoquality.model import WeightsError, resolve_weights_path

    weights_path = resolve_weights_path(weights or icfg.weights)
    if weights_path is None:
        err.print(f"[red]{NO_WEIGHTS_HELP}[/]")
        raise typer.Exit(2)
    icfg.weights = str(weights_path)
    _sigterm_as_interrupt()
    try:
        summary = run_inference(
            cfg,
            weights=weights_path,
            force=force,
            clean=clean,
            progress=not quiet,
            console=console,
            engine=engine,
            address=address,
            actors=actors,
        )
    except WeightsError as exc:
        err.print(f"[red]weights error:[/] {exc}")
        if not weights_path.exists():
            err.print(NO_WEIGHTS_HELP)
        raise typer.Exit(2) from exc
    except InferenceError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")  # paths and extras may hold [..]
        raise typer.Exit(2) from exc
    except KeyboardInterrupt:
        err.print(
            "[yellow]interrupted:[/] files finished so far are kept in the output folder's cache; "
            "run the same command again to continue"
        )
        raise typer.Exit(130) from None
    _report(summary, icfg.data_dir, console, err)


def _report(summary: Any, data_dir: str, console: Any, err: Any) -> None:
    """The run summary and weights note; exit 1 when no file at all could be scored."""
    from rich.markup import escape

    from echoquality.outputs import print_summary

    print_summary(summary, console)
    if summary.weights_note:
        console.print(f"[bold yellow]Note on the weights:[/] {summary.weights_note}")
    nothing = _nothing_scored(summary, data_dir)
    if nothing:
        err.print(f"[red]nothing was scorable:[/] {escape(nothing)}")
        raise typer.Exit(1)


def _nothing_scored(summary: object, data_dir: str) -> str | None:
    """Why no file at all has a score (one line), or ``None`` when at least one has."""
    from collections import Counter

    folders = summary.folders  # type: ignore[attr-defined]
    if any(f.scored for f in folders):
        return None
    if not folders:
        return f"no study folders under {data_dir} (expected {data_dir}/<folder>/<files>)"
    files = sum(len(f.files) for f in folders)
    if files == 0:
        return f"{len(folders)} folder(s) under {data_dir} hold no files"
    reasons: Counter[str] = Counter()
    for f in folders:
        reasons.update({k: v for k, v in f.error_counts().items() if v})
    why = ", ".join(f"{k} {n}" for k, n in reasons.most_common()) or "see the failed-files lists"
    return f"none of the {files} file(s) under {data_dir} could be scored ({why}); see results.csv"


def register(app: typer.Typer) -> None:
    """Add ``infer`` to *app*."""
    app.command("infer")(infer)
