"""``audioset-fewshot export --cc-only --into DIR``: the Creative Commons clips, with attribution."""

from __future__ import annotations

from pathlib import Path

import click

from audioset_fewshot.cli._common import config_option, echo_json, format_option, root_config, root_option
from audioset_fewshot.errors import UsageError


@click.command(name="export")
@config_option
@root_option
@click.option("--cc-only", is_flag=True, help="Export only clips under a Creative Commons licence (required).")
@click.option("--into", type=click.Path(file_okay=False, path_type=Path), required=True, help="Destination folder (outside the root).")
@format_option("text", "json")
def command(config_path: Path | None, root: Path | None, cc_only: bool, into: Path, fmt: str) -> None:
    """Copy the clips that may be shared, with ATTRIBUTION.txt and their manifest."""
    from audioset_fewshot.manifest.export import export_clips

    if not cc_only:
        raise UsageError("pass --cc-only: only Creative Commons clips may be redistributed")
    cfg = root_config(config_path, root)
    rep = export_clips(Path(cfg.root), into=into, cc_only=True)
    if fmt == "json":
        echo_json(rep.to_dict())
        return
    click.echo(
        f"exported {len(rep.exported)} Creative Commons clip(s) into {rep.into} ({rep.copied} copied); {rep.skipped_licence} clip(s) under other licences left out"
    )
    click.echo(f"attribution: {rep.into / 'ATTRIBUTION.txt'}")
    for p in rep.bad_source:
        click.echo(f"not exported (missing or corrupt): {p}", err=True)
