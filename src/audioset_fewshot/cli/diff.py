"""``audioset-fewshot diff A B``: compare two manifests or roots."""

from __future__ import annotations

from pathlib import Path

import click

from audioset_fewshot.cli._common import echo_json, format_option


@click.command(name="diff")
@click.argument("a", type=click.Path(exists=True, path_type=Path))
@click.argument("b", type=click.Path(exists=True, path_type=Path))
@format_option("text", "json")
@click.option("--show", is_flag=True, help="List the clip ids that differ.")
@click.pass_context
def command(ctx: click.Context, a: Path, b: Path, fmt: str, show: bool) -> None:
    """Clips in both, only in A, only in B, and same clip with different content,
    per class and in total.  A and B are clips.csv files or dataset roots.

    Exit status, as diff(1) gives it: 0 when the manifests are identical, 1 when
    they differ, 2 on a usage error."""
    from audioset_fewshot.manifest.diff import GROUPS, diff_manifests

    d = diff_manifests(a, b)
    if fmt == "json":
        echo_json(d.to_dict())
    else:
        click.echo(f"{'class':<14} {'same':>6} {'changed':>8} {'only A':>7} {'only B':>7}")
        for mid, c in [*sorted(d.per_class.items()), ("total", d.totals())]:
            click.echo(f"{mid:<14} {c['same']:>6} {c['changed']:>8} {c['only_a']:>7} {c['only_b']:>7}")
        if show:
            for g in GROUPS[1:]:
                for cid in getattr(d, g):
                    click.echo(f"{g}: {cid}")
        for cid, (oa, ob) in sorted(d.origin_changed.items()):
            click.echo(f"origin: {cid} from {oa} in A, from {ob} in B")
        click.echo("identical" if d.identical else "different")
    ctx.exit(0 if d.identical else 1)
