"""``audioset-fewshot report [--root DIR]``: write the HTML report of a dataset root."""

from __future__ import annotations

from pathlib import Path

import click

from audioset_fewshot.cli._common import config_option, hold_root_for_command, root_config, root_option
from audioset_fewshot.errors import UsageError


@click.command(name="report")
@config_option
@root_option
@click.option("--force", is_flag=True, help="Redraw even when nothing changed.")
def command(config_path: Path | None, root: Path | None, force: bool) -> None:
    """Write ROOT/report/index.html (with PNG figures beside it) from the artifacts present."""
    from audioset_fewshot.report import write_report

    cfg = root_config(config_path, root)
    root_dir = Path(cfg.root)
    if not root_dir.is_dir():
        raise UsageError(f"dataset root {root_dir} does not exist; pass --root DIR or run 'audioset-fewshot run' first")
    hold_root_for_command(root_dir)
    path = write_report(root_dir, force=force)
    click.echo(f"report: {path}")
