"""`echoquality synth`: write a synthetic, labelled echo DICOM tree for demos, tests and benchmarks."""

from __future__ import annotations

from pathlib import Path

import typer


def synth(
    output: Path = typer.Option(
        ..., "--output", "-o", help="Folder to create the tree in (e.g. raw_data_synth)."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives byte-identical files."),
    folders: int = typer.Option(
        6, "--folders", min=1, help="Study folders (<machine>-<PatientID>), one per patient."
    ),
    clips_per_folder: int = typer.Option(
        4, "--clips-per-folder", min=0, help="Scorable cines per folder (half poor)."
    ),
    size: str = typer.Option(
        "small", "--size", help="small (200x260, 12-40 frames) or medium (480x640, 40-120 frames)."
    ),
    awkward: bool = typer.Option(
        True,
        "--awkward/--no-awkward",
        help="Also write files that must be skipped (stills, CT, non-DICOM, ...).",
    ),
    force: bool = typer.Option(
        False, "--force", help="Write into a folder that already holds a synth_manifest.csv."
    ),
    labels: Path | None = typer.Option(
        None,
        "--labels",
        help="Also write the scorable clips' known labels here as the path,label CSV that "
        "`prepare-data --labels` reads (paths relative to --output).",
    ),
) -> None:
    """Generate realistic synthetic ultrasound cines with known quality labels.

    Good clips have crisp speckle and a beating chamber; poor clips have strong noise, very low gain, shadowing/dropout, heavy blur or a truncated sector. Files are real DICOM (Ultrasound Multi-frame Image Storage) with vendor tags (EPIQ 7C, Affiniti 70G/50G, Vivid E95/S60/S70), MONOCHROME2 / RGB / YBR_FULL and JPEG Baseline YBR_FULL_422 / RLE encodings, named by SOP Instance UID without extension, in OUTPUT/<machine>-<PatientID>/ folders.

    The truth is in OUTPUT/synth_manifest.csv: label (1 good, 0 poor), degradation and, for the awkward files (stills, CT, non-DICOM, truncated, no pixel data), the expected skip reason.

    Example: echoquality synth --output raw_data_synth --seed 0 ; echoquality infer --data-dir raw_data_synth
    """
    from rich.console import Console

    from echoquality.synth import MANIFEST_NAME, SIZES, generate_dataset

    console = Console()
    if size not in SIZES:
        console.print(f"[red]--size must be one of {', '.join(SIZES)}, got {size!r}[/red]")
        raise typer.Exit(2)
    if (output / MANIFEST_NAME).exists() and not force:
        console.print(
            f"[red]{output} already holds a synthetic dataset ({MANIFEST_NAME}); "
            "pick another --output or pass --force to overwrite it.[/red]"
        )
        raise typer.Exit(2)
    records = generate_dataset(
        output,
        seed=seed,
        folders=folders,
        clips_per_folder=clips_per_folder,
        size=size,
        include_awkward=awkward,
    )
    scored = [r for r in records if not r.expected_skip_reason]
    good = sum(1 for r in scored if r.label == 1)
    if labels is not None:
        import csv

        labels.parent.mkdir(parents=True, exist_ok=True)
        with labels.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["path", "label"])
            writer.writerows([r.relative_path, r.label] for r in scored)
        console.print(f"Labels of the {len(scored)} scorable clips: {labels}")
    console.print(
        f"Wrote {len(records)} files in {folders} folders under {output}: {len(scored)} scorable "
        f"({good} good, {len(scored) - good} poor), {len(records) - len(scored)} to be skipped. "
        f"Manifest: {output / MANIFEST_NAME}"
    )


def register(app: typer.Typer) -> None:
    """Add ``synth`` to *app*."""
    app.command("synth")(synth)
