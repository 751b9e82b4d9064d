"""`nhs-lookup vocab unknown FILE`: the words of a site's exam names the parser does not understand."""

from __future__ import annotations

import json
from pathlib import Path

import typer

CATALOGUE_HELP = (
    "Catalogue whose words count as understood (NHS.json, NICIP .csv/.xlsx or RadLex JSON). "
    "Default: $NHS_LOOKUP_CATALOGUE, else the small bundled sample."
)


def register(app: typer.Typer) -> None:
    """Add the `vocab` command group."""
    vocab_app = typer.Typer(
        help="Vocabulary tools (what the parser does not understand yet).", no_args_is_help=True
    )
    app.add_typer(vocab_app, name="vocab")

    @vocab_app.command("unknown")
    def unknown_cmd(
        files: list[Path] = typer.Argument(
            ..., help="Case files (JSON or CSV with an exam-name column) or folders."
        ),
        catalogue: Path = typer.Option(None, "--catalogue", "-c", help=CATALOGUE_HELP),
        top: int = typer.Option(50, "--top", "-n", help="Show the N most frequent unknown tokens."),
        as_json: bool = typer.Option(False, "--json", help="Print the list as JSON."),
    ) -> None:
        """List, by frequency, the tokens of a name file the parser does not understand, with example
        names: the worklist for adding a new site's shorthand to the vocabulary."""
        import os

        from rich.console import Console
        from rich.table import Table

        from nhs_lookup.cases import load_cases
        from nhs_lookup.catalogue import CatalogueError, load_catalogue
        from nhs_lookup.unknown_tokens import unknown_tokens

        err = Console(stderr=True)
        try:
            cat = load_catalogue(catalogue or os.environ.get("NHS_LOOKUP_CATALOGUE") or None)
        except CatalogueError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from exc
        missing = [str(f) for f in files if not f.exists()]
        if missing:
            err.print(f"[red]error:[/red] not found: {', '.join(missing)}")
            raise typer.Exit(2)
        cases, errors = load_cases(files)
        for e in errors[:20]:
            err.print(f"[yellow]skipped[/yellow] {e.source} row {e.row}: {e.message}")
        if len(errors) > 20:
            err.print(f"[yellow]... and {len(errors) - 20} more unreadable rows[/yellow]")
        found, n = unknown_tokens((c.query for c in cases), cat.lexicon(), top=top)
        if as_json:
            typer.echo(json.dumps({"names": n, "unknown": [u.to_dict() for u in found]}, indent=2))
            return
        table = Table(title=f"tokens the parser does not understand ({n} names, catalogue {cat.source_path})")
        for col in ("token", "names", "examples"):
            table.add_column(col)
        for u in found:
            table.add_row(u.token, str(u.count), " | ".join(u.examples))
        Console().print(table)
