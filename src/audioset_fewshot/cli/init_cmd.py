"""``audioset-fewshot init [DIR]``: write a commented default config."""

from __future__ import annotations

from pathlib import Path

import click

from audioset_fewshot.config import write_config
from audioset_fewshot.errors import UsageError


@click.command(name="init")
@click.argument("directory", required=False, default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite an existing config.yaml.")
def command(directory: Path, force: bool) -> None:
    """Write DIRECTORY/config.yaml with every knob and its default, commented."""
    target = directory / "config.yaml"
    if target.exists() and not force:
        raise UsageError(f"{target} exists; pass --force to overwrite it")
    write_config(target)
    click.echo(f"wrote {target}; edit it, then run 'audioset-fewshot doctor -c {target}'")
