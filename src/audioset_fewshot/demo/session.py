"""The demo's rules, in one place: the config a demo run uses, its server and its media.

``run --demo`` (:func:`demo_session`), a demo root resumed with ``run --root``
(:func:`is_demo_root`, :func:`demo_saved_config`) and ``serve-demo --root``
(:func:`demo_catalog_of`) all take their demo policy from here; the pipeline and
the CLI hold none.

* A demo root records that it is one (``demo: true`` in its saved config) and
  stores no server address: the server's port changes from run to run.
* The demo server (127.0.0.1) has no session budget: that rule is the host's and
  lives with the governor (:func:`audioset_fewshot.download.governor.host_rate`:
  the default ``"auto"`` rate is none for a loopback host).  Pauses on a rate-limit
  signal still apply, and the demo run provokes one with a short burst
  (:data:`RATE_LIMIT_BURST`).
* A demo run is sized for ~30 classes x ~13 clips (:func:`demo_overrides`); its
  values replace only the knobs left at their defaults (:func:`demo_config`).
* The media of every playable source is generated before the download starts
  (:func:`prepare_demo_media`), into a cache shared between roots when
  ``$AUDIOSET_FEWSHOT_DEMO_MEDIA`` names one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audioset_fewshot import config as config_mod
from audioset_fewshot.config import Config
from audioset_fewshot.errors import AudiosetFewshotError, UsageError
from audioset_fewshot.layout import DatasetLayout

if TYPE_CHECKING:
    from audioset_fewshot.demo.catalog import DemoMetadata
    from audioset_fewshot.demo.server import MediaServer, SourceSpec

log = logging.getLogger(__name__)

# Environment variable naming a media cache shared between demo roots (tests reuse it).
MEDIA_CACHE_ENV = "AUDIOSET_FEWSHOT_DEMO_MEDIA"

# Watch requests answered "try again later" at the start of a demo download: the governor pauses the pool.
RATE_LIMIT_BURST = 3

# Keys the demo always sets; every other demo key only replaces a value left at its default.
_DEMO_FORCED = frozenset({"root", "metadata.metadata_dir", "download.base_url"})


def demo_overrides(root: Path, *, metadata_dir: Path, base_url: str, max_per_class: int = 13) -> dict[str, Any]:
    """Config keys the demo sets on top of the defaults (sized for ~30 classes x ~13 clips)."""
    return {
        "root": str(root),
        "metadata.metadata_dir": str(metadata_dir),
        "plan.max_per_class": max_per_class,
        "download.base_url": base_url,
        "download.jobs": 8,
        "download.retries": 3,
        "download.backoff_s": 0.2,
        "download.pause_s": 2.0,
        "download.max_pause_s": 4.0,
        "download.max_pauses": 4,
        "download.min_free": "200MB",
        "download.timeout_s": 30.0,
        "pack.workers": 2,
        "episodes.split": "test",
        "episodes.n_way": 5,
        "episodes.k_shot": 5,
        "episodes.q_query": 5,
        "episodes.count": 300,
        # the CRNN on 3 s pieces, briefly trained: a trained ProtoNet, an untrained one and the
        # nearest centroid side by side (the demo's classes differ in structure, not spectrum)
        "evaluate.method": "protonet,untrained,nearest-centroid",
        "evaluate.n_way": 5,
        "evaluate.k_shot": 5,
        "evaluate.q_query": 3,
        "evaluate.steps": 40,
        "evaluate.learning_rate": 2e-3,
        "evaluate.piece_seconds": 3.0,
        "evaluate.val_episodes": 50,
        "evaluate.val_every": 20,
    }


def _get(tree: Mapping[str, Any], dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        node = node[part]
    return node


def demo_config(config: Config, overrides: Mapping[str, Any]) -> Config:
    """``config`` sized for the demo: the demo's values replace only the knobs still at
    their defaults (so ``-c config.yaml`` can still change, say, ``evaluate.steps``, or
    set an hourly cap); the root, metadata folder and server URL are always the demo's."""
    defaults = Config().to_dict()
    data = config.to_dict()
    chosen = {k: v for k, v in overrides.items() if k in _DEMO_FORCED or _get(data, k) == _get(defaults, k)}
    return config_mod.config_from_dict(config_mod.merge(data, chosen))


def demo_saved_config(run_config: Config, given: Config) -> Config:
    """What a demo root saves: the demo's config marked ``demo: true``, with the URL the
    user gave (the default) instead of the demo server's ephemeral one, so that a later
    ``run --root DEMO`` starts a demo server again and nothing stores a dead port."""
    return dataclasses.replace(run_config, demo=True, download=dataclasses.replace(run_config.download, base_url=given.download.base_url))


def is_demo_root(root: Path | str) -> bool:
    """True when ``root`` was made by the offline demo (its saved config says ``demo: true``)."""
    layout = DatasetLayout(Path(root))
    if not layout.config_file.is_file():
        return False
    try:
        return config_mod.load_config(layout.config_file).demo
    except (AudiosetFewshotError, OSError):
        return False


@contextlib.contextmanager
def demo_server(root: Path, *, media_cache: Path | str | None = None, seed: int = 0) -> Iterator[tuple[MediaServer, DemoMetadata]]:
    """Build the demo metadata under ``root`` and serve its catalog on 127.0.0.1.

    Yields ``(server, demo_metadata)``; the server is stopped on exit."""
    from audioset_fewshot.demo.catalog import build_demo_metadata
    from audioset_fewshot.demo.server import MediaServer

    layout = DatasetLayout(root)
    meta = build_demo_metadata(layout.root / "demo-metadata", seed=seed)
    cache = Path(media_cache or os.environ.get(MEDIA_CACHE_ENV) or (layout.root / ".demo-media"))
    cache.mkdir(parents=True, exist_ok=True)
    with MediaServer(cache_dir=cache, catalog=dict(meta.catalog)) as server:
        yield server, meta


def demo_catalog_of(root: Path | str) -> dict[str, SourceSpec]:
    """The media catalogue (``{ytid: SourceSpec}``) of the demo root ``root``: the same
    sources, lengths and faults its own run served, so its manifest rebuilds with the
    same hashes against a server that serves this catalogue."""
    from audioset_fewshot.demo.catalog import build_demo_metadata

    layout = DatasetLayout(Path(root))
    if not is_demo_root(layout.root):
        raise UsageError(
            f"{layout.root} is not a demo root (its config.yaml does not say demo: true); make one with 'audioset-fewshot run --demo --root {layout.root}'"
        )
    return dict(build_demo_metadata(layout.root / "demo-metadata").catalog)


def prepare_demo_media(server: MediaServer, meta: DemoMetadata, *, workers: int = 2) -> int:
    """Generate (or find cached) the media of every playable demo source, in parallel,
    before the download starts; returns how many files were looked at."""
    from concurrent.futures import ThreadPoolExecutor

    from audioset_fewshot._progress import progress
    from audioset_fewshot.demo.server import DEFAULT_ITAG, SOURCE_FAULTS

    # only the file the default selector takes (bestaudio[ext=m4a]); the server makes any
    # other format on its first request (encoding is most of a demo's time)
    jobs = [(seg.ytid, seg.fault) for seg in meta.segments if seg.fault is None or seg.fault in SOURCE_FAULTS]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(server.media_path, ytid, DEFAULT_ITAG, fault=fault) for ytid, fault in jobs]
        for fut in progress(futures, desc="demo media", unit="file"):
            fut.result()
    return len(jobs)


@contextlib.contextmanager
def demo_session(config: Config, *, media_cache: Path | str | None = None, prepare_media: bool = True) -> Iterator[tuple[Config, dict[str, Any]]]:
    """The demo around a pipeline run: metadata under the config's root, the media server
    (media generated first when ``prepare_media``), a short rate-limit burst queued.
    Yields ``(demo config, setup summary)``; the server stops on exit."""
    root = Path(config.root)
    root.mkdir(parents=True, exist_ok=True)
    with demo_server(root, media_cache=media_cache) as (server, meta):
        cfg = demo_config(config, demo_overrides(root, metadata_dir=meta.metadata_dir, base_url=server.base_url))
        t0 = time.perf_counter()
        n = prepare_demo_media(server, meta, workers=max(1, min(8, os.cpu_count() or 1))) if prepare_media else 0
        media_s = time.perf_counter() - t0
        log.info("demo media: %d files ready in %.1f s", n, media_s)
        # a short rate-limit burst: the governor pauses the pool for pause_s, then resumes
        server.rate_limit_burst(count=RATE_LIMIT_BURST)
        yield cfg, {"media_files": n, "media_seconds": round(media_s, 3), "media_cache": str(server.cache_dir), "server": server.base_url}
