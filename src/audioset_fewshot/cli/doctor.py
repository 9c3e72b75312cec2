"""``audioset-fewshot doctor``: check the setup before a download (exit 1 on a problem)."""

from __future__ import annotations

from pathlib import Path

import click

from audioset_fewshot.cli._common import config_option, resolve_config, root_option
from audioset_fewshot.config import parse_size
from audioset_fewshot.layout import DatasetLayout


@click.command(name="doctor")
@config_option
@root_option
@click.option("--cookies", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Netscape cookies file to check (its values are never shown).")
@click.option("--base-url", default=None, help="Where watch pages live (the demo server's URL for offline checks).")
@click.option("--min-free", default=None, help="Free disk to keep (e.g. 2GB); the check fails below it.")
@click.option("--canary", is_flag=True, help="Also download a few known segments (download.canary_ids, else the plan's first clips) and check their exact length.")
@click.pass_context
def command(ctx: click.Context, config_path: Path | None, root: Path | None, cookies: Path | None, base_url: str | None, min_free: str | None,
            canary: bool) -> None:
    """Check yt-dlp (version, age), the JS runtime, ffmpeg, cookies, disk and the root."""
    from audioset_fewshot.download.doctor import parse_canary, run_doctor
    from audioset_fewshot.download.runner import estimate_download
    from audioset_fewshot.plan import read_plan

    cfg = resolve_config(config_path, {"root": root, "download.cookies": str(cookies) if cookies else None, "download.base_url": base_url,
                                       "download.min_free": min_free})
    dc = cfg.download
    layout = DatasetLayout(Path(cfg.root))
    plan = read_plan(layout) if layout.plan_file.exists() and layout.plan_meta_file.exists() else None
    need: int | None = None  # no plan yet: no size estimate
    if plan is not None:
        need = estimate_download(plan, root=layout.root, max_per_hour=dc.max_per_hour, min_interval_s=dc.min_interval_s, audio_format=dc.audio_format, sample_rate_hz=dc.sample_rate_hz).bytes
    canaries = None
    if canary:
        if dc.canary_ids:
            canaries = [parse_canary(s) for s in dc.canary_ids]
        elif plan is not None:
            firsts = {}
            for e in plan.entries:
                firsts.setdefault(e.owner_mid, e)
            canaries = [(e.ytid, e.start_s, e.end_s) for e in list(firsts.values())[:3]]
        else:
            canaries = []
    fetch_options = {"sample_rate_hz": dc.sample_rate_hz, "audio_format": dc.audio_format, "format": dc.format, "timeout_s": dc.timeout_s}
    report = run_doctor(root=layout.root, base_url=dc.base_url, cookies=dc.cookies, cookies_from_browser=dc.cookies_from_browser, need_bytes=need,
                        min_free_bytes=parse_size(dc.min_free, key="download.min_free"), canaries=canaries, fetch_options=fetch_options)  # fmt: skip
    for line in report.lines():
        click.echo(line)
    if not report.ok:
        click.echo(f"{len(report.failures)} problem(s) would make the download fail; fix them and run 'audioset-fewshot doctor' again")
        ctx.exit(1)
    click.echo("all checks passed")
