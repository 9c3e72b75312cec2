"""``audioset-fewshot download``: download the planned segments (resumable)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from audioset_fewshot.cli._common import (
    DOWNLOAD_KEYS,
    cluster_options,
    config_option,
    given_knobs,
    hold_root_for_command,
    knobs,
    origin_option,
    resolve_config,
    root_option,
)
from audioset_fewshot.config import Config, write_config
from audioset_fewshot.errors import UsageError
from audioset_fewshot.layout import DatasetLayout


@click.command(name="download")
@config_option
@root_option
@knobs("metadata.metadata_dir", *DOWNLOAD_KEYS, "plan.shard")
@origin_option
@cluster_options
def command(config_path: Path | None, root: Path | None, **knob_values: Any) -> None:
    """Download the plan of ROOT (built from the config first when missing or changed).

    A rerun skips obtained and permanently failed clips and retries transient ones;
    Ctrl-C or a kill loses nothing that was committed.  On a Dask cluster (cluster.engine dask) the clips are
    fetched on a Dask cluster, each session pinned to one worker (docs/cluster.md)."""
    from audioset_fewshot.download.distributed import download_on
    from audioset_fewshot.download.runner import estimate_download
    from audioset_fewshot.engine import open_engine
    from audioset_fewshot.plan import ensure_plan

    flags = given_knobs(knob_values)
    cfg = resolve_config(config_path, {"root": root, **flags})
    layout = DatasetLayout(Path(cfg.root))
    saved = cfg
    if cfg.demo:
        if "download.base_url" not in flags:
            raise UsageError(
                f"{layout.root} is a demo root: its media come from the offline demo server, not from {cfg.download.base_url}. "
                f"Resume it with 'audioset-fewshot run --root {layout.root}', or start 'audioset-fewshot serve-demo --root {layout.root}' "
                "and pass the URL it prints as --base-url"
            )
        saved = replace(cfg, download=replace(cfg.download, base_url=Config().download.base_url))  # never store the ephemeral port
    hold_root_for_command(cfg.root)  # checked, locked and marked before anything is written
    layout.root.mkdir(parents=True, exist_ok=True)
    plan, written = ensure_plan(cfg, layout)
    write_config(layout.config_file, saved, root=layout.root)
    d = cfg.download
    est = estimate_download(plan, root=layout.root, max_per_hour=d.max_per_hour, min_interval_s=d.min_interval_s, audio_format=d.audio_format,
                            sample_rate_hz=d.sample_rate_hz, base_url=d.base_url)  # fmt: skip
    click.echo(f"plan {plan.content_hash[:12]}{' (new)' if written else ''}: {len(plan.entries)} candidates, {len(plan.classes)} classes; {est.text()}")
    with open_engine(cfg.cluster) as engine:
        if engine.name != "local":
            dashboard = f", dashboard {engine.dashboard_link}" if engine.dashboard_link else ""
            click.echo(f"engine: Dask {engine.description}{dashboard}", err=True)
        report = download_on(engine, plan, layout.root, d)
    for line in report.summary_lines():
        click.echo(line)
