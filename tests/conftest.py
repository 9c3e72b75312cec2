"""Shared fixtures.  Stage-specific fixtures live in tests/<stage>/conftest.py.

Every write goes to tmp_path; nothing contacts any address but 127.0.0.1.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

if TYPE_CHECKING:
    from audioset_fewshot.engine import DaskEngine

REPO = Path(__file__).resolve().parents[1]
# Real AudioSet release metadata, shipped in the repository (see its README for the licence);
# AUDIOSET_FEWSHOT_SHARED_METADATA may point elsewhere, nothing beside the checkout is needed.
SHARED_METADATA = Path(os.environ.get("AUDIOSET_FEWSHOT_SHARED_METADATA", REPO / "tests" / "data" / "audioset-metadata"))

os.environ.setdefault("AUDIOSET_FEWSHOT_PROGRESS", "0")


@pytest.fixture(scope="session")
def shared_metadata_dir() -> Path:
    """The real AudioSet release metadata in tests/data/audioset-metadata (official layout)."""
    if not (SHARED_METADATA / "balanced_train_segments.csv").exists():
        pytest.fail(f"shared AudioSet metadata not found at {SHARED_METADATA}; set AUDIOSET_FEWSHOT_SHARED_METADATA")
    return SHARED_METADATA


@pytest.fixture(scope="session")
def dask_engine() -> Iterator[DaskEngine]:
    """A Dask LocalCluster of 2 single-threaded worker processes on 127.0.0.1, started once for
    the tests that ask for it (a start costs seconds) and always closed."""
    from audioset_fewshot.config import ClusterOptions
    from audioset_fewshot.engine import DaskEngine, open_engine

    with open_engine(ClusterOptions(engine="dask", workers=2, timeout_s=60.0)) as engine:
        assert isinstance(engine, DaskEngine)
        yield engine


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the user's cache: metadata and media caches go to a temp folder."""
    cache = tmp_path_factory.getbasetemp() / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))


@pytest.fixture
def media_server(tmp_path_factory: pytest.TempPathFactory):
    """A running demo media server on 127.0.0.1 (function-scoped).

    Generated media is cached in one folder per test session, so a source is
    encoded once per session.  Any 11-character ID is served with a spec derived
    from the ID; set ``media_server.catalog[ytid] = SourceSpec(...)`` or
    ``media_server.set_fault(ytid, "private")`` to shape it.
    """
    from audioset_fewshot.demo.server import MediaServer

    cache = tmp_path_factory.getbasetemp() / "demo-media-cache"
    with MediaServer(cache_dir=cache, idle_timeout_s=120.0, max_requests=20_000) as srv:
        yield srv


@pytest.fixture
def silent_host() -> Iterator[str]:
    """``http://127.0.0.1:PORT``: a socket that accepts connections and never answers."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted.append(conn)  # held open, never read from or written to

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        for c in accepted:
            c.close()
        srv.close()
