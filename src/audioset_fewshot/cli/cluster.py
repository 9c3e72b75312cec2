"""``audioset-fewshot cluster doctor`` and ``cluster script``: the Dask cluster of the ``cluster`` section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from audioset_fewshot.cli._common import cluster_options, config_option, given_knobs, resolve_config


@click.group(name="cluster")
def command() -> None:
    """Check the Dask cluster (doctor) or print a worker job's batch script (script); see docs/cluster.md."""


@command.command(name="doctor")
@config_option
@cluster_options
@click.pass_context
def doctor(ctx: click.Context, config_path: Path | None, **knob_values: Any) -> None:
    """Check that the scheduler answers, that every worker has yt-dlp, ffmpeg and
    audioset-fewshot at the driver's versions, and that every worker opens the local
    origins (download.origins) at the driver's paths (exit 1 when not)."""
    import functools

    from audioset_fewshot.download.origins.check import origin_paths, unreadable_origins
    from audioset_fewshot.engine.doctor import cluster_doctor

    cfg = resolve_config(config_path, given_knobs(knob_values))
    paths = origin_paths(cfg.download.origins)  # the workers read the local origins: each must open them
    report = cluster_doctor(cfg.cluster, checks=[functools.partial(unreadable_origins, paths)] if paths else [])
    for line in report.lines():
        click.echo(line)
    if not report.ok:
        n = len(report.problems) + sum(1 for w in report.workers if w.problems)
        click.echo(
            f"{n} problem(s): install the driver's versions on the workers, make the origins readable there at the same paths (or fix the address), and run 'audioset-fewshot cluster doctor' again"
        )
        ctx.exit(1)
    click.echo(f"all checks passed ({len(report.workers)} worker(s))" if report.workers else "all checks passed")


@command.command(name="script")
@config_option
@cluster_options
def script(config_path: Path | None, **knob_values: Any) -> None:
    """Print the batch script each worker job of cluster.jobqueue would run (nothing is submitted)."""
    from audioset_fewshot.engine import job_script
    from audioset_fewshot.errors import UsageError

    cfg = resolve_config(config_path, given_knobs(knob_values))
    if cfg.cluster.jobqueue is None:
        raise UsageError("cluster script needs cluster.jobqueue: --jobqueue slurm (or pbs) with --job-queue, --job-cores, --job-memory, ...")
    click.echo(job_script(cfg.cluster), nl=False)
