"""`nhs-lookup` command line: one entry point, one sub-command per task.

Each sub-command lives in ``nhs_lookup.commands.<name>`` and registers itself through
``register(app)``.
"""

from __future__ import annotations

import importlib

import typer

from radqc_common.cli import run

app = typer.Typer(
    name="nhs-lookup",
    help=(
        "Map free-text RIS exam names (e.g. 'CT Abdo/Pelvis C+') to the NHS imaging procedure "
        "catalogue (NICIP names, SNOMED CT concepts, laterality)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

COMMAND_MODULES = ("lookup", "fit", "framework", "serve", "demo", "vocab")

for _name in COMMAND_MODULES:
    importlib.import_module(f"nhs_lookup.commands.{_name}").register(app)


def main() -> None:
    run(app)


if __name__ == "__main__":
    main()
