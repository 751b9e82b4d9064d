"""Typer option types shared by ``train``, ``optimize`` and ``validate`` (one spelling, one help text)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

DatasetOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--dataset",
        "-d",
        help="Case file (JSON or CSV, labelled or not); repeat for several. Gold format: EXAM_NAME, "
        "MODALITY_CODE, DATA_SOURCE, EXAM_CODE (+ acceptable, no_match).",
    ),
]
DatasetDirOpt = Annotated[
    Path | None, typer.Option("--dataset-dir", help="Folder whose .json/.csv files are all read as cases.")
]
CatalogueOpt = Annotated[
    str | None,
    typer.Option(
        "--catalogue",
        envvar="NHS_LOOKUP_CATALOGUE",
        help="Catalogue file (e.g. ../shared/nhs/NHS.json). Default: $NHS_LOOKUP_CATALOGUE, else the bundled sample.",
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Engine config YAML (e.g. optimized_config.yaml); missing keys keep their defaults.",
        show_default="built-in defaults",
    ),
]
ConfigAliasOpt = Annotated[
    Path | None, typer.Option("--config-path", hidden=True, help="Old name of --config.")
]
CPU_COUNT = os.cpu_count() or 1
WorkersAliasOpt = Annotated[
    int | None, typer.Option("--max-workers", hidden=True, min=1, help="Old name of --workers.")
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed for the random split and the samplers.")]
SplitOpt = Annotated[
    str, typer.Option("--split-by", help="Hold out whole data sources ('source') or random cases ('random').")
]
ReportOpt = Annotated[Path | None, typer.Option("--report-json", help="Also write the report as JSON here.")]
ModelOpt = Annotated[
    Path | None,
    typer.Option("--model", help="Model file from `nhs-lookup fit` (learned terms, calibration, threshold)."),
]
ForceModelOpt = Annotated[
    bool, typer.Option("--force-model", help="Load the --model even if it was fitted on another catalogue.")
]
MlflowOpt = Annotated[
    bool,
    typer.Option(
        "--mlflow/--no-mlflow",
        help="Log the study to MLflow: the working directory's store (sqlite:///mlruns/mlflow.db, shared "
        "with echoquality train) unless --mlflow-uri / $MLFLOW_TRACKING_URI.",
    ),
]
MlflowUriOpt = Annotated[
    str | None,
    typer.Option(
        "--mlflow-uri", help="MLflow tracking URI.", show_default="$MLFLOW_TRACKING_URI or ./mlruns"
    ),
]
CreateStudyOpt = Annotated[
    bool,
    typer.Option(
        "--create-study", help="Only create the study in --db and exit (then start workers with --join)."
    ),
]
JoinOpt = Annotated[
    bool,
    typer.Option(
        "--join",
        help="Load an existing study (shared by several worker processes) instead of creating it.",
    ),
]
EarlyStopOpt = Annotated[
    float | None,
    typer.Option(
        "--early-stopping-threshold",
        help="Stop once the best TRAINING top-1 reaches this (e.g. 0.95).",
        show_default="off: run every trial",
    ),
]
