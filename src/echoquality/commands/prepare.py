"""Sub-command module (registered by echoquality.cli). Owner fills in `register`."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's command(s) to *app*."""
