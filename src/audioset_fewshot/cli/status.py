"""``audioset-fewshot status``: per-class obtained / target / failures, availability per list."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from audioset_fewshot.cli._common import config_option, echo_json, format_option, knob, root_config, root_option


def _reasons(counts: dict[str, int]) -> str:
    return ", ".join(f"{r} {n}" for r, n in sorted(counts.items())) or "-"


def _saved_metadata_dir(root: Path) -> str | None:
    """The metadata folder recorded in ROOT/config.yaml by the last download, if any."""
    from audioset_fewshot.config import load_config
    from audioset_fewshot.errors import AudiosetFewshotError
    from audioset_fewshot.layout import DatasetLayout

    path = DatasetLayout(root).config_file
    if not path.is_file():
        return None
    try:
        found = load_config(path).metadata.metadata_dir
    except (AudiosetFewshotError, OSError):
        return None
    return found if found and Path(found).is_dir() else None


@click.command(name="status")
@config_option
@root_option
@knob("metadata.metadata_dir")
@format_option("table", "json")
def command(config_path: Path | None, root: Path | None, fmt: str, **knob_values: Any) -> None:
    """Where the download of ROOT stands (reads the plan and the ledger only).

    With --metadata-dir (or metadata.metadata_dir in the config) the availability
    per list is shown against the release's header counts."""
    from audioset_fewshot.manifest.status import dataset_status, read_headers

    cfg = root_config(config_path, root, knob_values)
    meta_dir = cfg.metadata.metadata_dir or _saved_metadata_dir(Path(cfg.root))
    headers = read_headers(meta_dir) if meta_dir else None
    rep = dataset_status(Path(cfg.root), headers=headers)
    if fmt == "json":
        echo_json(rep.to_dict())
        return
    width = max([len(c.name) for c in rep.classes] + [10])
    click.echo(f"{'class':<{width}}  {'mid':<12} {'obtained':>8} {'target':>6} {'pending':>7}  failed (permanent | transient)")
    for c in rep.classes:
        click.echo(
            f"{c.name:<{width}}  {c.mid:<12} {c.obtained:>8} {c.target:>6} {c.pending:>7}  {_reasons(c.failed_permanent)} | {_reasons(c.failed_transient)}"
        )
    click.echo(f"total: {rep.obtained}/{rep.target} clips; failures by reason: {_reasons(rep.failures_by_reason())}")
    for s in rep.sources:
        avail = "-" if s.availability is None else f"{100 * s.availability:.1f} %"
        header = "" if s.header_segments is None else f" ({s.header_segments} segments in the list, {100 * (s.coverage or 0):.2f} % obtained)"
        click.echo(f"{s.source}: planned {s.planned}{header}, attempted {s.attempted}, obtained {s.obtained}, gone {s.failed_permanent}, available {avail}")
    if rep.to_retry:
        click.echo(f"{len(rep.to_retry)} transient failure(s) will be retried by the next 'audioset-fewshot download'")
