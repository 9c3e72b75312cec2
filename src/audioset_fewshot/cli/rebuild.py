"""``audioset-fewshot rebuild MANIFEST --root DIR``: download exactly the clips a manifest lists."""

from __future__ import annotations

import json
from pathlib import Path

import click

from audioset_fewshot.cli._common import config_option, force_root_option, hold_root_for_command, resolve_config


@click.command(name="rebuild")
@click.argument("manifest", type=click.Path(exists=True, path_type=Path))
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), required=True, help="Empty folder to rebuild into.")
@force_root_option
@config_option
@click.option("--jobs", type=int, default=None, help="Parallel download workers (default 4).")
@click.option("--max-per-hour", type=float, default=None, help="Extractions per hour across all workers (default 300).")
@click.option("--min-interval-s", type=float, default=None, help="Minimum seconds between two extractions.")
@click.option("--max-pauses", type=int, default=None, help="Stop after this many pool pauses for rate limits (default 4).")
@click.option("--retries", type=int, default=None, help="Retries per clip for transient failures.")
@click.option("--retry-failed", is_flag=True, default=None, help="Also retry clips that failed permanently.")
@click.option("--backoff-s", type=float, default=None, help="First retry delay in seconds.")
@click.option("--cookies", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None, help="Netscape cookies file, passed to yt-dlp only.")
@click.option("--cookies-from-browser", default=None, help="Browser to read cookies from.")
@click.option("--base-url", default=None, help="Where watch pages live (the demo server's URL for offline runs).")
@click.option("--timeout-s", type=float, default=None, help="Bound on one clip's extraction + ffmpeg read.")
@click.option("--min-free", default=None, help="Stop cleanly before free disk falls below this (e.g. 2GB).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True, help="Output format.")
@click.pass_context
def command(ctx: click.Context, manifest: Path, root: Path, config_path: Path | None, jobs: int | None, max_per_hour: float | None, min_interval_s: float | None,
            max_pauses: int | None, retries: int | None, retry_failed: bool | None, backoff_s: float | None, cookies: Path | None, cookies_from_browser: str | None,
            base_url: str | None, timeout_s: float | None, min_free: str | None, fmt: str) -> None:  # fmt: skip
    """Download the clips of MANIFEST (a clips.csv or a root) into ROOT with the
    same trim offsets, no new draw; report what is gone and what hashes the same.

    Exit status 0 when every listed clip was rebuilt with the same bytes, 1 when
    any is missing, failed or differs (the reasons are printed)."""
    from audioset_fewshot.manifest.rebuild import rebuild

    cfg = resolve_config(
        config_path,
        {
            "download.jobs": jobs, "download.max_per_hour": max_per_hour, "download.min_interval_s": min_interval_s, "download.max_pauses": max_pauses,
            "download.retries": retries, "download.retry_failed": retry_failed or None, "download.backoff_s": backoff_s,
            "download.cookies": str(cookies) if cookies else None, "download.cookies_from_browser": cookies_from_browser,
            "download.base_url": base_url, "download.timeout_s": timeout_s, "download.min_free": min_free,
        },
    )  # fmt: skip
    hold_root_for_command(root)  # the destination: checked, locked and marked before anything is written
    d = cfg.download
    rep = rebuild(
        manifest, root=root, jobs=d.jobs, max_per_hour=d.max_per_hour or None, min_interval_s=d.min_interval_s, retries=d.retries,
        retry_failed=d.retry_failed, backoff_s=d.backoff_s, pause_s=d.pause_s, max_pause_s=d.max_pause_s, max_pauses=d.max_pauses,
        early_abort=d.early_abort, min_free=d.min_free, cookies=d.cookies, cookies_from_browser=d.cookies_from_browser,
        base_url=d.base_url, format=d.format, timeout_s=d.timeout_s,
    )  # fmt: skip
    if fmt == "json":
        click.echo(json.dumps(rep.to_dict(), indent=2, sort_keys=True))
        ctx.exit(0 if rep.identical else 1)
    click.echo(f"rebuilt {len(rep.same) + len(rep.different)}/{rep.listed} clips into {rep.root}: {len(rep.same)} hash the same, {len(rep.different)} differ")
    for cid, reason in sorted(rep.unavailable.items()):
        click.echo(f"no longer available: {cid} ({reason})")
    for cid, reason in sorted(rep.failed.items()):
        click.echo(f"failed for now (rerun to retry): {cid} ({reason})")
    for cid in rep.different:
        click.echo(f"different content: {cid}")
    for cause in rep.causes:
        click.echo(f"why: {cause}", err=True)
    if not rep.identical:
        click.echo(f"{rep.listed - len(rep.same)} of {rep.listed} listed clip(s) not rebuilt with the same bytes", err=True)
    ctx.exit(0 if rep.identical else 1)
