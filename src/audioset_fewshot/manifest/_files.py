"""Safe destinations and verified atomic copies (used by merge and export)."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from audioset_fewshot._io import atomic_path, sha256_file
from audioset_fewshot.errors import UsageError, ValidationError
from audioset_fewshot.validate import safe_relpath


def _within(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def check_destination(into: Path | str, *, sources: Iterable[Path | str], what: str) -> Path:
    """Resolve ``into`` and refuse a destination that is, contains or lies inside a source root."""
    dest = Path(into).expanduser().resolve()
    for src in sources:
        s = Path(src).expanduser().resolve()
        if _within(dest, s) or _within(s, dest):
            raise UsageError(f"{what}: the destination {dest} overlaps the root {s}; choose a folder outside it")
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"{what}: the destination {dest} exists and is not a folder")
    return dest


def dest_path(rel: str, *, root: Path) -> Path:
    """The path of ``rel`` under ``root``, refused if it (or a link on the way) leaves ``root``."""
    try:
        return safe_relpath(rel, root=root)
    except ValidationError as err:
        raise UsageError(f"refusing to write {rel!r}: {err}") from err


def copy_verified(src: Path, dest: Path, *, sha256: str) -> str:
    """Copy ``src`` to ``dest`` atomically when ``dest`` does not already hold ``sha256``.

    Returns ``"kept"`` (dest already right), ``"copied"``, or ``"bad-source"``
    (the source's hash is not ``sha256``: nothing written).
    """
    if dest.is_file() and not dest.is_symlink() and sha256_file(dest) == sha256:
        return "kept"
    if not src.is_file() or src.is_symlink():
        return "bad-source"
    with atomic_path(dest, suffix=dest.suffix) as tmp:
        shutil.copyfile(src, tmp)
        if sha256_file(tmp) != sha256:
            raise _BadSource
    return "copied"


class _BadSource(Exception):
    pass


def copy_or_report(src: Path, dest: Path, *, sha256: str) -> str:
    """:func:`copy_verified`, mapping a hash mismatch to ``"bad-source"``."""
    try:
        return copy_verified(src, dest, sha256=sha256)
    except _BadSource:
        return "bad-source"
