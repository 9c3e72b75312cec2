"""Helpers shared by the post-processing stages: cache keys, the ``current.json``
pointer of a stage folder, free-space checks and the ENOSPC translation.

A stage folder (``processed/pack``, ``processed/features``) holds one sub-folder
per cache key plus ``current.json`` naming the key the last successful run
produced; downstream stages and loaders follow that pointer.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from audioset_fewshot._io import atomic_write_json, canonical_json, sha256_text
from audioset_fewshot.errors import ProcessingError, StageNotReadyError

CURRENT = "current.json"
SILENCE_MID = "/m/028v0c"  # AudioSet "Silence": its clips fail a silence check by nature


def cache_key(obj: Mapping[str, Any]) -> str:
    """16 hex digits of the sha256 of the canonical JSON of ``obj``."""
    return sha256_text(canonical_json(dict(obj)))[:16]


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_current(stage_dir: Path, key: str) -> None:
    atomic_write_json(stage_dir / CURRENT, {"key": key})


def read_current(stage_dir: Path, *, stage: str, hint: str) -> str:
    data = read_json(stage_dir / CURRENT)
    key = data.get("key") if data else None
    if not isinstance(key, str) or not key.isalnum() or not (stage_dir / key / "meta.json").is_file():
        raise StageNotReadyError(f"no {stage} found under {stage_dir}; {hint}")
    return key


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


class BackgroundFlush:
    """``fdatasync`` a file being written, in a background thread, so that the
    disk writes overlap the computation instead of all waiting for the final
    flush.  ``kick()`` starts a flush unless one is running; ``finish()`` waits
    and flushes whatever is left (raising what a flush raised, ENOSPC included).
    """

    def __init__(self, fd: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._fd = fd
        self._ex = ThreadPoolExecutor(1, thread_name_prefix="flush")
        self._last: Any = None

    def kick(self) -> None:
        if self._last is not None:
            if not self._last.done():
                return
            self._last.result()
        self._last = self._ex.submit(os.fdatasync, self._fd)

    def finish(self) -> None:
        try:
            if self._last is not None:
                self._last.result()
            os.fdatasync(self._fd)
        finally:
            self._ex.shutdown(wait=True)


def remove_tree(path: Path) -> None:
    """Remove a folder of ours; a link in its place is removed itself, never followed."""
    if path.is_symlink():
        path.unlink()
        return
    shutil.rmtree(path, ignore_errors=True)
