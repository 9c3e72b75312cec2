"""``audioset-fewshot rebuild MANIFEST --root DIR``: download exactly the clips a manifest lists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from audioset_fewshot.cli._common import (
    DOWNLOAD_KEYS,
    config_option,
    echo_json,
    force_root_option,
    format_option,
    given_knobs,
    hold_root_for_command,
    knobs,
    origin_option,
    resolve_config,
)


@click.command(name="rebuild")
@click.argument("manifest", type=click.Path(exists=True, path_type=Path))
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), required=True, help="Empty folder to rebuild into.")
@force_root_option
@config_option
@knobs(*DOWNLOAD_KEYS)
@origin_option
@format_option("text", "json")
@click.pass_context
def command(ctx: click.Context, manifest: Path, root: Path, config_path: Path | None, fmt: str, **knob_values: Any) -> None:
    """Download the clips of MANIFEST (a clips.csv or a root) into ROOT with the
    same trim offsets, no new draw; report what is gone and what hashes the same.

    Exit status 0 when every listed clip was rebuilt with the same bytes, 1 when
    any is missing, failed or differs (the reasons are printed)."""
    from audioset_fewshot.manifest.rebuild import rebuild

    cfg = resolve_config(config_path, given_knobs(knob_values))
    hold_root_for_command(root)  # the destination: checked, locked and marked before anything is written
    rep = rebuild(manifest, root, cfg.download)
    if fmt == "json":
        echo_json(rep.to_dict())
        ctx.exit(0 if rep.identical else 1)
    click.echo(f"rebuilt {len(rep.same) + len(rep.different)}/{rep.listed} clips into {rep.root}: {len(rep.same)} hash the same, {len(rep.different)} differ")
    for cid, reason in sorted(rep.unavailable.items()):
        click.echo(f"no longer available: {cid} ({reason})")
    for cid, reason in sorted(rep.failed.items()):
        click.echo(f"failed for now (rerun to retry): {cid} ({reason})")
    for cid in rep.different:
        click.echo(f"different content: {cid}")
    for cause in rep.causes:
        click.echo(f"why: {cause}", err=True)
    if not rep.identical:
        click.echo(f"{rep.listed - len(rep.same)} of {rep.listed} listed clip(s) not rebuilt with the same bytes", err=True)
    ctx.exit(0 if rep.identical else 1)
