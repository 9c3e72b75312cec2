"""``audioset-fewshot download``: download the planned segments (resumable)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from audioset_fewshot.cli._common import (
    DOWNLOAD_KEYS,
    config_option,
    given_knobs,
    hold_root_for_command,
    keys_in_file,
    knobs,
    metadata_dir_option,
    origin_option,
    resolve_config,
    root_option,
)
from audioset_fewshot.config import write_config
from audioset_fewshot.layout import DatasetLayout


@click.command(name="download")
@config_option
@root_option
@metadata_dir_option
@knobs(*DOWNLOAD_KEYS, "plan.shard")
@origin_option
def command(config_path: Path | None, root: Path | None, **knob_values: Any) -> None:
    """Download the plan of ROOT (built from the config first when missing or changed).

    A rerun skips obtained and permanently failed clips and retries transient ones;
    Ctrl-C or a kill loses nothing that was committed."""
    from audioset_fewshot.demo.session import demo_rate_defaults
    from audioset_fewshot.download.runner import estimate_download, run_download
    from audioset_fewshot.plan import ensure_plan

    flags = given_knobs(knob_values)
    cfg = resolve_config(config_path, {"root": root, **flags})
    cfg = demo_rate_defaults(cfg, keys_in_file(config_path) | set(flags))
    hold_root_for_command(cfg.root)  # checked, locked and marked before anything is written
    layout = DatasetLayout(Path(cfg.root))
    layout.root.mkdir(parents=True, exist_ok=True)
    plan, written = ensure_plan(cfg, layout)
    write_config(layout.config_file, cfg)
    d = cfg.download
    est = estimate_download(plan, root=layout.root, max_per_hour=d.max_per_hour, min_interval_s=d.min_interval_s, audio_format=d.audio_format, sample_rate_hz=d.sample_rate_hz)
    click.echo(f"plan {plan.content_hash[:12]}{' (new)' if written else ''}: {len(plan.entries)} candidates, {len(plan.classes)} classes; {est.text()}")
    report = run_download(plan, layout.root, d)
    for line in report.summary_lines():
        click.echo(line)
