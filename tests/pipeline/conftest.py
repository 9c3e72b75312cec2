"""One completed offline demo, shared by the end-to-end tests of this folder.

The demo runs exactly as a user runs it (``python -m audioset_fewshot run --demo``)
in a subprocess, once per session; its generated media cache is shared so that a
second demo (the interruption test) does not re-encode anything.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

# The first demo generates its media (~1-2 min on 2 cores) before downloading.
DEMO_TIMEOUT_S = 600


@dataclass(frozen=True)
class DemoRun:
    root: Path
    media_cache: Path
    stdout: str
    stderr: str
    seconds: float


def demo_command(root: Path, media_cache: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "audioset_fewshot", "run", "--demo", "--root", str(root), "--media-cache", str(media_cache), *extra]


_CACHE_HOME: list[Path] = []  # set once per session by the demo_run fixture


def demo_env() -> dict[str, str]:
    """The environment of a demo subprocess: no progress bars, caches (matplotlib's
    font cache included) under the session's temp folder, never the user's."""
    env = dict(os.environ)
    env["AUDIOSET_FEWSHOT_PROGRESS"] = "0"
    if _CACHE_HOME:
        env["XDG_CACHE_HOME"] = str(_CACHE_HOME[0] / "xdg-cache")
        env["MPLCONFIGDIR"] = str(_CACHE_HOME[0] / "matplotlib")
    return env


@pytest.fixture(scope="session")
def demo_tools() -> tuple:
    """(demo_command, demo_env, DEMO_TIMEOUT_S) for tests that start more demos."""
    return demo_command, demo_env, DEMO_TIMEOUT_S


@pytest.fixture(scope="session")
def demo_media_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo-media")


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory, demo_media_cache: Path) -> DemoRun:
    if not _CACHE_HOME:
        _CACHE_HOME.append(tmp_path_factory.mktemp("demo-caches"))
    root = tmp_path_factory.mktemp("demo") / "root"
    t0 = time.monotonic()
    proc = subprocess.run(demo_command(root, demo_media_cache), capture_output=True, text=True, timeout=DEMO_TIMEOUT_S, env=demo_env())
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        pytest.fail(f"run --demo exited {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}")
    return DemoRun(root=root, media_cache=demo_media_cache, stdout=proc.stdout, stderr=proc.stderr, seconds=seconds)
