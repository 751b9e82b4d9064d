"""`echoquality` command line: one entry point, one sub-command per workflow step.

Each sub-command lives in ``echoquality.commands.<name>`` and registers itself through
``register(app)``; heavy imports (torch, pydicom) happen inside the commands so that
``--help`` stays fast.
"""

from __future__ import annotations

import importlib

import click
import typer

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


def flag_style(command: click.Command) -> click.Command:
    """Show boolean flags as ``--x`` / ``--x/--no-x`` without a ``<bool>`` type label."""
    for param in command.params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        flag_style(sub)
    help_option = command.get_help_option

    def get_help_option(ctx: click.Context) -> click.Option | None:
        option = help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = get_help_option  # type: ignore[method-assign]
    return command


def main() -> None:
    flag_style(typer.main.get_command(app))()


if __name__ == "__main__":
    main()
