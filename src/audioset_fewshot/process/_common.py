"""Helpers shared by the post-processing stages: the ``current.json`` pointer of a
stage folder, free-space checks and the ENOSPC translation (the artifact rule itself,
keys and builds, is :mod:`audioset_fewshot._artifact`).

A stage folder (``processed/pack``, ``processed/features``) holds one sub-folder
per cache key plus ``current.json`` naming the key the last successful run
produced; downstream stages and loaders follow that pointer.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
from collections.abc import Iterator
from pathlib import Path

from audioset_fewshot._artifact import BackgroundFlush, cache_key, read_json, remove_tree
from audioset_fewshot._io import atomic_write_json
from audioset_fewshot.errors import ProcessingError, StageNotReadyError

CURRENT = "current.json"
SILENCE_MID = "/m/028v0c"  # AudioSet "Silence": its clips fail a silence check by nature


def write_current(stage_dir: Path, key: str) -> None:
    atomic_write_json(stage_dir / CURRENT, {"key": key})


def current_key(stage_dir: Path, *, stage: str, hint: str) -> str:
    """The key ``current.json`` of a stage folder names (a finished keyed folder)."""
    data = read_json(stage_dir / CURRENT)
    key = data.get("key") if data else None
    if not isinstance(key, str) or not key.isalnum() or not (stage_dir / key / "meta.json").is_file():
        raise StageNotReadyError(f"no {stage} found under {stage_dir}; {hint}")
    return key


__all__ = [
    "CURRENT",
    "SILENCE_MID",
    "BackgroundFlush",
    "cache_key",
    "check_free_space",
    "disk_full_is_processing_error",
    "current_key",
    "read_json",
    "remove_tree",
    "write_current",
]


def check_free_space(folder: Path, needed_bytes: int, *, stage: str) -> None:
    """Refuse to start a stage that cannot fit; cheaper than failing half-way."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if needed_bytes > free:
        raise ProcessingError(
            f"{stage}: needs {needed_bytes / 1e9:.2f} GB in {folder} but only {free / 1e9:.2f} GB are free; "
            "free some space (or choose dtype int16 / fewer clips) and run again: finished chunks are kept"
        )


@contextlib.contextmanager
def disk_full_is_processing_error(stage: str, folder: Path) -> Iterator[None]:
    """Turn ENOSPC / EDQUOT into a ProcessingError that says a rerun continues."""
    try:
        yield
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ProcessingError(
                f"{stage}: the disk holding {folder} is full; free some space and run the same command again (work already committed is kept)"
            ) from err
        raise
