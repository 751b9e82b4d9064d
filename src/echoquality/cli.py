"""`echoquality` command line: one entry point, one sub-command per workflow step.

Each sub-command lives in ``echoquality.commands.<name>`` and registers itself through
``register(app)``; heavy imports (torch, pydicom) happen inside the commands so that
``--help`` stays fast.
"""

from __future__ import annotations

import importlib

import typer

from radqc_common.cli import run

app = typer.Typer(
    name="echoquality",
    help=(
        "Quality control for echocardiogram DICOM cines.\n\n"
        "Typical workflow: synth (or your own raw_data/) -> infer -> analyze -> prepare-data -> train "
        "-> infer --weights trained_models/best_model.pt."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

COMMAND_MODULES = (
    "synth", "infer", "weights", "analyze", "prepare", "train", "evaluate", "demo", "review", "report",
)  # fmt: skip

for _name in COMMAND_MODULES:
    importlib.import_module(f"echoquality.commands.{_name}").register(app)


def main() -> None:
    run(app)


if __name__ == "__main__":
    main()
