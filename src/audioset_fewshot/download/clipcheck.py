"""Is every clip the ledger holds as ok still the file that was downloaded?

``damaged_clips(layout, rows)`` compares each file with the sha256 the ledger
recorded when it was obtained.  Hashing every clip on every run would read the
whole dataset, so a cache (``ROOT/.cache/clip-stat.json``: size, mtime and
sha256 per path) lets a file whose size and mtime did not change since it was
last hashed pass without being read; a file whose size or mtime changed is hashed
again.  A link, a folder or anything but a plain file at a clip's path is damaged.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from audioset_fewshot._io import atomic_write_json, sha256_file
from audioset_fewshot.layout import DatasetLayout

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1


def _load(path: Path) -> dict[str, list[Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION or not isinstance(data.get("files"), dict):
        return {}
    return {str(k): v for k, v in data["files"].items() if isinstance(v, list) and len(v) == 3}


def damaged_clips(layout: DatasetLayout, rows: Iterable[Any]) -> list[tuple[str, str, str]]:
    """``(clip_id, relpath, why)`` of every ok row whose file is not the one recorded.

    ``rows`` are ledger rows (``clip_id``, ``path``, ``sha256``); a row without a
    recorded sha256 is left alone.  Refreshes the stat cache."""
    cache_path = layout.clip_stat_cache
    old = _load(cache_path)
    new: dict[str, list[Any]] = {}
    damaged: list[tuple[str, str, str]] = []
    hashed = 0
    for r in rows:
        rel, want = getattr(r, "path", None), getattr(r, "sha256", None)
        if not rel or not want:
            continue
        full = layout.root / rel
        try:
            st = os.lstat(full)
        except OSError:
            continue  # a missing file is the caller's business (fetched again)
        if not stat.S_ISREG(st.st_mode):
            damaged.append((r.clip_id, rel, "not a plain file"))
            continue
        key = [int(st.st_size), int(st.st_mtime_ns)]
        cached = old.get(rel)
        if cached is not None and cached[:2] == key and cached[2] == want:
            new[rel] = cached
            continue
        hashed += 1
        try:
            digest = sha256_file(full)
        except OSError as err:
            damaged.append((r.clip_id, rel, f"cannot read ({err.strerror or err})"))
            continue
        if digest != want:
            damaged.append((r.clip_id, rel, f"sha256 {digest[:12]}... differs from the ledger's {want[:12]}..."))
            continue
        new[rel] = [*key, digest]
    if hashed:
        log.info("checked %d clip files whose size or mtime changed since they were last hashed", hashed)
    if new != old:
        atomic_write_json(cache_path, {"schema_version": SCHEMA_VERSION, "files": dict(sorted(new.items()))})
    return damaged


__all__ = ["damaged_clips"]
