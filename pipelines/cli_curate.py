"""`assay run`, `assay sql`, `assay stats`: the curation spine's commands."""
from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run() -> None:
        """Curate a crawl into Parquet shards (being built)."""
        typer.echo("not ready yet")
