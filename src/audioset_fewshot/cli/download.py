"""``audioset-fewshot download``: download the planned segments (resumable)."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import click

from audioset_fewshot.cli._common import config_option, hold_root_for_command, metadata_dir_option, resolve_config, root_option
from audioset_fewshot.config import Config, write_config
from audioset_fewshot.layout import DatasetLayout



def demo_rate_defaults(cfg: Config, config_path: Path | None, *, max_per_hour_flag: float | None) -> Config:
    """The demo server (127.0.0.1) has no session budget: unless the rate knobs were set
    (flag or file), its downloads run with the governor's rate off (pauses still apply)."""
    from audioset_fewshot.download.runner import watch_url
    from audioset_fewshot.download.ytdlp_demo import is_demo_url

    if not is_demo_url(watch_url(cfg.download.base_url, "aaaaaaaaaaa")):
        return cfg
    given: dict = {}
    if config_path is not None:
        from audioset_fewshot._yaml import load_yaml_file

        loaded = load_yaml_file(config_path) or {}
        given = (loaded.get("download") or {}) if isinstance(loaded, dict) else {}
    changes = {}
    if max_per_hour_flag is None and "max_per_hour" not in given:
        changes["download.max_per_hour"] = None
    if "min_interval_s" not in given:
        changes["download.min_interval_s"] = 0.0
    if not changes:
        return cfg
    from audioset_fewshot.config import config_from_dict, merge

    data = cfg.to_dict()
    for key, value in changes.items():  # merge() drops None values: set them by hand
        section, name = key.split(".")
        data[section][name] = value
    return config_from_dict(merge(data, {}))


@click.command(name="download")
@config_option
@root_option
@metadata_dir_option
@click.option("--jobs", type=int, default=None, help="Parallel download workers (default 4).")
@click.option("--max-per-hour", type=float, default=None, help="Extractions per hour across all workers (0 = unlimited; default 300).")
@click.option("--retries", type=int, default=None, help="Retries per clip for transient failures.")
@click.option("--max-pauses", type=int, default=None, help="Stop after this many pool pauses for rate limits (default 4).")
@click.option("--retry-failed", is_flag=True, default=None, help="Also retry clips that failed permanently.")
@click.option("--cookies", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None, help="Netscape cookies file, passed to yt-dlp only.")
@click.option("--cookies-from-browser", default=None, help="Browser to read cookies from (yt-dlp's --cookies-from-browser).")
@click.option("--shard", default=None, help="I/N: download only shard I of N of the plan.")
@click.option("--min-free", default=None, help="Stop cleanly before free disk falls below this (e.g. 2GB).")
@click.option("--base-url", default=None, help="Where watch pages live (the demo server's URL for offline runs).")
@click.option("--origin", "origins", multiple=True, help="Where clips come from, in order (repeatable; replaces download.origins): youtube, a local path or an fsspec URL.")
def command(config_path: Path | None, root: Path | None, metadata_dir: Path | None, jobs: int | None, max_per_hour: float | None,
            retries: int | None, max_pauses: int | None, retry_failed: bool | None, cookies: Path | None, cookies_from_browser: str | None, shard: str | None,
            min_free: str | None, base_url: str | None, origins: tuple[str, ...] = ()) -> None:  # fmt: skip
    """Download the plan of ROOT (built from the config first when missing or changed).

    A rerun skips obtained and permanently failed clips and retries transient ones;
    Ctrl-C or a kill loses nothing that was committed."""
    from audioset_fewshot.download.runner import estimate_download, run_download
    from audioset_fewshot.plan import ensure_plan

    cfg = resolve_config(
        config_path,
        {
            "root": root, "metadata.metadata_dir": metadata_dir, "download.jobs": jobs, "download.max_per_hour": max_per_hour,
            "download.retries": retries, "download.max_pauses": max_pauses, "download.retry_failed": retry_failed or None,
            "download.cookies": str(cookies) if cookies else None, "download.cookies_from_browser": cookies_from_browser,
            "plan.shard": shard, "download.min_free": min_free, "download.base_url": base_url,
            "download.origins": list(origins) or None,
        },
    )  # fmt: skip
    hold_root_for_command(cfg.root)  # checked, locked and marked before anything is written
    cfg = demo_rate_defaults(cfg, config_path, max_per_hour_flag=max_per_hour)
    layout = DatasetLayout(Path(cfg.root))
    layout.root.mkdir(parents=True, exist_ok=True)
    plan, written = ensure_plan(cfg, layout)
    write_config(layout.config_file, cfg)
    accepted = inspect.signature(run_download).parameters
    kw = {k: v for k, v in dataclasses.asdict(cfg.download).items() if k in accepted}  # canary_ids is doctor's
    est = estimate_download(plan, root=layout.root, max_per_hour=kw["max_per_hour"], min_interval_s=kw["min_interval_s"], audio_format=kw["audio_format"], sample_rate_hz=kw["sample_rate_hz"])
    click.echo(f"plan {plan.content_hash[:12]}{' (new)' if written else ''}: {len(plan.entries)} candidates, {len(plan.classes)} classes; {est.text()}")
    report = run_download(plan, root=layout.root, **kw)
    for line in report.summary_lines():
        click.echo(line)
