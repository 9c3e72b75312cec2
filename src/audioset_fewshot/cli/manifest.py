"""``audioset-fewshot manifest``: write ROOT/manifest/ from the ledger and the files."""

from __future__ import annotations

from pathlib import Path

import click

from audioset_fewshot.cli._common import config_option, echo_json, format_option, root_config, root_option


@click.command(name="manifest")
@config_option
@root_option
@format_option("text", "json")
def command(config_path: Path | None, root: Path | None, fmt: str) -> None:
    """Write clips.csv, by_class/, unavailable.csv, lock.json and provenance.csv.

    Deterministic: the same clips give byte-identical files; a rerun with an
    unchanged ledger rewrites nothing."""
    from audioset_fewshot.manifest.build import build_manifest

    cfg = root_config(config_path, root, hold=True)  # the root checked, locked and marked before anything is written
    rec = build_manifest(Path(cfg.root))
    if fmt == "json":
        echo_json(rec.to_dict())
        return
    state = f"{len(rec.written)} file(s) written" if rec.written else "up to date"
    click.echo(f"manifest of {rec.root}: {rec.clips} clips in {rec.classes} classes, {rec.unavailable} unavailable ({state})")
    click.echo(f"lock content hash {rec.content_hash}")
    if rec.surplus:
        click.echo(f"{len(rec.surplus)} clip(s) beyond their class target left out")
    if rec.missing_files:
        click.echo(f"warning: {len(rec.missing_files)} clip file(s) missing (first: {rec.missing_files[0]}); run 'audioset-fewshot verify'", err=True)
