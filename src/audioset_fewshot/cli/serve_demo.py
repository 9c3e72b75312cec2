"""``audioset-fewshot serve-demo``: run the offline YouTube-like media server on 127.0.0.1."""

from __future__ import annotations

import os
import time
from pathlib import Path

import click

from audioset_fewshot.errors import UsageError


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "audioset-fewshot" / "demo-media"


@click.command(name="serve-demo")
@click.option(
    "--root",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="A demo root (made by 'run --demo'): serve its catalogue, so its manifest rebuilds with the same hashes.",
)
@click.option("--port", type=int, default=0, show_default=True, help="Port on 127.0.0.1 (0 = a free ephemeral port).")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where generated media is cached (default: $XDG_CACHE_HOME/audioset-fewshot/demo-media).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the generated audio and of random faults.")
@click.option("--fault-rate", type=float, default=0.0, show_default=True, help="Fraction of IDs that get a seeded random fault (0..1).")
@click.option(
    "--idle-timeout-s", "--idle-timeout", "idle_timeout_s", type=float, default=300.0, show_default=True, help="Stop after this many seconds without a request."
)
@click.option("--max-requests", type=int, default=100_000, show_default=True, help="Stop after this many requests.")
@click.option("--latency-s", type=float, default=0.0, show_default=True, help="Delay added to every request (seconds).")
@click.option("--bandwidth-bps", "--bandwidth", "bandwidth_bps", type=float, default=None, help="Per-connection cap in bytes per second (default: none).")
def command(
    root: Path | None,
    port: int,
    cache_dir: Path | None,
    seed: int,
    fault_rate: float,
    idle_timeout_s: float,
    max_requests: int,
    latency_s: float,
    bandwidth_bps: float | None,
) -> None:
    """Serve watch pages and media for any 11-character ID until idle or Ctrl-C.

    Point a download at the printed URL: ``audioset-fewshot download --base-url URL``
    (or ``download.base_url: URL`` in a config).  With ``--root DEMO`` it serves
    the catalogue of that demo root (the sources, lengths and faults of the demo's
    own run), so ``audioset-fewshot rebuild DEMO --root NEW --base-url URL``
    reproduces DEMO's hashes.
    """
    from audioset_fewshot.demo.server import MediaServer

    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, got {port}")
    catalog = None
    if root is not None:
        from audioset_fewshot.demo.session import demo_catalog_of

        catalog = demo_catalog_of(root)
        if cache_dir is None:
            cache_dir = root / ".demo-media"  # the media the demo run generated, if still there
    srv = MediaServer(
        cache_dir=cache_dir or _default_cache_dir(),
        catalog=catalog,
        seed=seed,
        fault_rate=fault_rate,
        latency_s=latency_s,
        bandwidth_bps=bandwidth_bps,
        idle_timeout_s=idle_timeout_s,
        max_requests=max_requests,
        port=port,
    )
    with srv:
        click.echo(srv.base_url, err=False)
        if root is not None:
            click.echo(f"serving the demo catalogue of {root} ({len(catalog or {})} videos)", err=True)
        click.echo(f"serving on {srv.base_url} (watch: {srv.base_url}/watch?v=<11-char id>); stops after {idle_timeout_s:g} s idle or Ctrl-C", err=True)
        try:
            while srv.running:
                time.sleep(0.2)
        except KeyboardInterrupt:
            click.echo("stopping", err=True)
    click.echo(f"stopped after {len(srv.requests)} requests", err=True)
