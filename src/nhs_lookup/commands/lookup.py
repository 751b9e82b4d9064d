"""Sub-command module (registered by nhs_lookup.cli). Owner fills in `register`."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's command(s) to *app*."""
