"""``audioset-fewshot merge ROOT... --into DIR``: shards or machines into one root."""

from __future__ import annotations

from pathlib import Path

import click

from audioset_fewshot.cli._common import echo_json, force_root_option, format_option, hold_root_for_command


@click.command(name="merge")
@click.argument("roots", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--into", type=click.Path(file_okay=False, path_type=Path), required=True, help="Folder of the merged root (empty, or an earlier merge).")
@force_root_option
@format_option("text", "json")
def command(roots: tuple[Path, ...], into: Path, fmt: str) -> None:
    """Combine the ledgers and files of ROOTS (in priority order) into one root and
    one manifest; clips present in several roots are resolved deterministically."""
    from audioset_fewshot.manifest._files import check_destination
    from audioset_fewshot.manifest.merge import merge_roots

    check_destination(into, sources=roots, what="merge")  # refused before anything is written
    hold_root_for_command(into)
    rep = merge_roots(list(roots), into=into)
    if fmt == "json":
        echo_json(rep.to_dict())
        return
    click.echo(f"merged {len(rep.roots)} root(s) into {rep.into}: {rep.clips} clips")
    for r, n in rep.from_root.items():
        click.echo(f"  {n:>6} from {r}")
    for c in rep.conflicts:
        click.echo(f"conflict: {c}")
    if rep.surplus:
        click.echo(f"{len(rep.surplus)} clip(s) beyond their class target left out (lowest ranks kept)")
    for mid, n in rep.gaps.items():
        click.echo(f"gap: {mid}: {n} candidate(s) ranked below a kept clip were never tried (a shard reached its own target)")
    if rep.gaps:
        click.echo(
            f"to end with exactly the clips of one unsharded run, fill the gaps: audioset-fewshot download --root {rep.into}"
            " (it fetches only those candidates and drops the clips they displace)"
        )
    for cid in rep.bad_source:
        click.echo(f"not merged (file missing or corrupt): {cid}", err=True)
