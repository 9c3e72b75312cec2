"""``audioset-fewshot recover --root DIR``: rebuild a damaged or missing ledger from the
clips on disk and the manifest, keeping every good clip (see :mod:`audioset_fewshot.manifest.recover`)."""

from __future__ import annotations

from pathlib import Path

import click

from audioset_fewshot.cli._common import config_option, root_config, root_option


@click.command(name="recover")
@config_option
@root_option
@click.option("--force", is_flag=True, help="Rebuild the ledger even when it is readable.")
def command(config_path: Path | None, root: Path | None, force: bool) -> None:
    """Rebuild ROOT/ledger.sqlite from manifest/clips.csv (hashes checked), the clip
    files and manifest/unavailable.csv; the damaged ledger is kept beside it."""
    from audioset_fewshot.manifest.recover import recover

    cfg = root_config(config_path, root, hold=True)  # the root checked, locked and marked before anything is written
    rep = recover(Path(cfg.root), force=force)
    if rep.moved_to is not None:
        click.echo(f"the damaged ledger is kept as {rep.moved_to}")
    click.echo(
        f"recovered {rep.ok} of {rep.planned} planned clips ({rep.from_manifest} from the manifest, hashes checked; "
        f"{rep.from_files} from files alone) and {rep.failures} recorded failures into {Path(cfg.root) / 'ledger.sqlite'}"
    )
    for line in rep.rejected:
        click.echo(f"not recovered: {line}", err=True)
    click.echo(f"run 'audioset-fewshot download --root {cfg.root}' (or run) to fetch only what is missing")
