"""``audioset-fewshot doctor``: check the setup before a download (exit 1 on a problem)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from audioset_fewshot.cli._common import config_option, given_knobs, knob, knobs, resolve_config, root_option
from audioset_fewshot.layout import DatasetLayout


@click.command(name="doctor")
@config_option
@root_option
@knob("download.cookies", type=click.Path(dir_okay=False, path_type=Path), help="Netscape cookies file to check (its values are never shown).")
@knobs("download.base_url", "download.min_free")
@click.option(
    "--canary",
    is_flag=True,
    help="Also download a few known segments (download.canary_ids, else the plan's first clips) with each session and check their exact length.",
)
@click.pass_context
def command(ctx: click.Context, config_path: Path | None, root: Path | None, canary: bool, **knob_values: Any) -> None:
    """Check yt-dlp (version, age), yt-dlp-ejs, the JS runtimes, ffmpeg, PO-token providers, each session (cookies, player clients, proxy), disk and the root."""
    from audioset_fewshot.download.doctor import parse_canary, run_doctor
    from audioset_fewshot.download.runner import estimate_download
    from audioset_fewshot.plan import PlanEntry, read_plan

    cfg = resolve_config(config_path, {"root": root, **given_knobs(knob_values)})
    dc = cfg.download
    layout = DatasetLayout(Path(cfg.root))
    plan = read_plan(layout) if layout.plan_file.exists() and layout.plan_meta_file.exists() else None
    need: int | None = None  # no plan yet: no size estimate
    if plan is not None:
        need = estimate_download(
            plan,
            root=layout.root,
            max_per_hour=dc.max_per_hour,
            min_interval_s=dc.min_interval_s,
            audio_format=dc.audio_format,
            sample_rate_hz=dc.sample_rate_hz,
            base_url=dc.base_url,
        ).bytes
    canaries = None
    if canary:
        if dc.canary_ids:
            canaries = [parse_canary(s) for s in dc.canary_ids]
        elif plan is not None:
            firsts: dict[str, PlanEntry] = {}
            for e in plan.entries:
                firsts.setdefault(e.owner_mid, e)
            canaries = [(e.ytid, e.start_s, e.end_s) for e in list(firsts.values())[:3]]
        else:
            canaries = []
    report = run_doctor(layout.root, dc, need_bytes=need, canaries=canaries)
    for line in report.lines():
        click.echo(line)
    if not report.ok:
        click.echo(f"{len(report.failures)} problem(s) would make the download fail; fix them and run 'audioset-fewshot doctor' again")
        ctx.exit(1)
    click.echo("all checks passed")
