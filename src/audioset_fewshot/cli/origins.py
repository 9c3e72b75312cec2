"""``audioset-fewshot origins check PATH...``: what a local copy of AudioSet holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from audioset_fewshot.cli._common import config_option, knob, root_config, root_option


@click.command(name="origins")
@click.argument("action", type=click.Choice(["check"]))
@click.argument("paths", nargs=-1, required=True)
@config_option
@root_option
@knob("metadata.metadata_dir")
@click.option(
    "--origin-layout",
    "layout",
    type=click.Choice(["hf-parquet", "webdataset", "pann-hdf5", "directory"]),
    default=None,
    help="Layout of every PATH (default: detected from the files).",
)
@click.option("--sample", type=click.IntRange(min=0), default=3, show_default=True, help="Clips decoded through the proof path, per origin.")
def command(action: str, paths: tuple[str, ...], config_path: Path | None, root: Path | None, layout: str | None, sample: int, **knob_values: Any) -> None:
    """Check local copies of AudioSet: report the layout of each PATH (a folder, a file or an fsspec URL), how many clips of
    each segment list and of ROOT's plan it holds, the names it could not parse, and a
    decode check.  Exits 1 when an origin holds nothing usable."""
    from audioset_fewshot.download.origins.base import parse_origin
    from audioset_fewshot.download.origins.check import check_origin
    from audioset_fewshot.errors import AudiosetFewshotError, DownloadError
    from audioset_fewshot.layout import DatasetLayout
    from audioset_fewshot.metadata import read_segments, resolve_segment_files
    from audioset_fewshot.plan import read_plan

    cfg = root_config(config_path, root, knob_values)
    segments: dict[str, dict[str, float]] = {}
    for source in cfg.plan.sources:
        try:
            files = resolve_segment_files(
                [source], metadata_dir=cfg.metadata.metadata_dir, cache_dir=cfg.metadata.cache_dir, urls=cfg.metadata.urls, timeout_s=cfg.metadata.timeout_s
            )
            table = read_segments(files)
        except AudiosetFewshotError as err:
            click.echo(f"segment list {source}: not counted ({err})", err=True)
            continue
        segments[source] = dict(zip(table.ytid.tolist(), table.start_s.tolist(), strict=True))
    entries = None
    layout_root = DatasetLayout(Path(cfg.root))
    if layout_root.plan_file.exists():
        try:
            entries = read_plan(layout_root).entries
        except AudiosetFewshotError as err:
            click.echo(f"plan of {layout_root.root}: not counted ({err})", err=True)
    bad = 0
    for path in paths:
        spec = parse_origin({"path": path, "layout": layout} if layout else path)
        if spec is None:
            click.echo("origin youtube: nothing to check here ('audioset-fewshot doctor' checks the YouTube road)")
            continue
        result = check_origin(spec, segments=segments, plan_entries=entries, sample=sample, sample_rate_hz=cfg.download.sample_rate_hz)
        for line in result.lines():
            click.echo(line)
        bad += not result.usable
    if bad:
        raise DownloadError(f"{bad} of {len(paths)} origin(s) hold nothing usable (see above)")
