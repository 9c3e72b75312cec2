"""``audioset-fewshot verify``: re-hash every clip against the manifest and check the
processed arrays (``--deep``: their content hashes and values); exit 1 on any problem."""

from __future__ import annotations

from pathlib import Path

import click

from audioset_fewshot.cli._common import config_option, echo_json, format_option, root_config, root_option
from audioset_fewshot.errors import EXIT_ERROR


@click.command(name="verify")
@config_option
@root_option
@click.option(
    "--manifest",
    "manifest",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="clips.csv to check against (default ROOT/manifest/clips.csv).",
)
@click.option("--deep", is_flag=True, help="Also read every processed array (pack, features): chunk hashes and non-finite values.")
@format_option("text", "json")
@click.pass_context
def command(ctx: click.Context, config_path: Path | None, root: Path | None, manifest: Path | None, deep: bool, fmt: str) -> None:
    """Report every missing, corrupt (hash or length) and unexpected file under ROOT/audio,
    and every damaged processed array (sizes; with --deep, content hashes and NaN/inf)."""
    import dataclasses

    from audioset_fewshot.manifest.verify import verify
    from audioset_fewshot.process.check import verify_processed

    cfg = root_config(config_path, root)
    rep = verify(Path(cfg.root), manifest=manifest)
    extra = verify_processed(Path(cfg.root), deep=deep)
    if extra:
        rep = dataclasses.replace(rep, problems=tuple(sorted((*rep.problems, *extra))))
    if fmt == "json":
        echo_json(rep.to_dict())
    else:
        for p in rep.problems:
            click.echo(f"{p.kind:<15} {p.path}  {p.detail}")
        verdict = "all good" if rep.ok else f"{len(rep.problems)} problem(s)"
        click.echo(f"checked {rep.checked} clips in {rep.root}: {verdict}")
    if not rep.ok:
        ctx.exit(EXIT_ERROR)
