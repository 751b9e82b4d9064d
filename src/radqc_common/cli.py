"""The entry point both CLIs share: Typer app -> click command with plain flag help."""

from __future__ import annotations

import os
import sys

import click
import typer

#: Width of Rich output written to a file or a pipe (Rich's default there is 80 columns, which cuts the
#: result tables' columns to a character or two); a terminal keeps its own width, $COLUMNS wins.
PIPE_COLUMNS = "160"


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


def run(app: typer.Typer) -> None:
    """Run *app* as a console script."""
    if not sys.stdout.isatty():
        os.environ.setdefault("COLUMNS", PIPE_COLUMNS)
    flag_style(typer.main.get_command(app))()
