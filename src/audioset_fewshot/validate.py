"""Small validators for every external identifier, applied before an id touches
a URL, a path or a subprocess.

A YouTube ID is exactly 11 characters of ``[A-Za-z0-9_-]``.  IDs may begin with
``-`` (``--PJHxphWEs`` is real), so they are never passed to a program as a
bare argument: URLs and absolute paths carry them.
"""

from __future__ import annotations

import math
import re
from pathlib import Path, PurePosixPath
from typing import TypeGuard

from audioset_fewshot.errors import ValidationError

_YTID_RE = re.compile(r"[A-Za-z0-9_-]{11}")
_MID_RE = re.compile(r"/[a-z]/[A-Za-z0-9_]+")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")


def _matches(value: object, pattern: re.Pattern[str]) -> TypeGuard[str]:
    return isinstance(value, str) and value.isascii() and pattern.fullmatch(value) is not None


def _valid(pattern: re.Pattern[str], value: object, what: str, expected: str) -> str:
    if _matches(value, pattern):
        return value
    raise ValidationError(f"invalid {what} {value!r}: expected {expected}")


def is_youtube_id(value: object) -> TypeGuard[str]:
    return _matches(value, _YTID_RE)


def valid_youtube_id(value: object) -> str:
    """Return ``value`` if it is a well-formed YouTube ID, else raise ValidationError."""
    return _valid(_YTID_RE, value, "YouTube ID", "exactly 11 characters of A-Z, a-z, 0-9, '_' or '-'")


def is_mid(value: object) -> TypeGuard[str]:
    return _matches(value, _MID_RE)


def valid_mid(value: object) -> str:
    """Return ``value`` if it looks like an AudioSet/Freebase MID (``/m/09x0r``, ``/t/dd00088``)."""
    return _valid(_MID_RE, value, "class id", "a MID such as '/m/09x0r'")


def valid_segment_times(start_s: float, end_s: float) -> tuple[float, float]:
    """Times must be finite with 0 <= start < end."""
    if not (math.isfinite(start_s) and math.isfinite(end_s)):
        raise ValidationError(f"segment times must be finite, got start={start_s!r} end={end_s!r}")
    if not 0 <= start_s < end_s:
        raise ValidationError(f"segment times must satisfy 0 <= start < end, got start={start_s} end={end_s}")
    return float(start_s), float(end_s)


def valid_sha256(value: object) -> str:
    return _valid(_SHA256_RE, value, "sha256", "64 lowercase hex digits")


def mid_slug(mid: str) -> str:
    """A filesystem-safe, reversible name for a MID: ``/m/09x0r`` -> ``m_09x0r``.

    MIDs use only ``[a-z]`` after the first slash and ``[A-Za-z0-9_]`` after the
    second, so the first ``_`` marks the slash unambiguously.
    """
    valid_mid(mid)
    return mid[1:].replace("/", "_", 1)


def mid_from_slug(slug: str) -> str:
    mid = "/" + slug.replace("_", "/", 1)
    return valid_mid(mid)


def safe_relpath(value: str, *, root: Path) -> Path:
    """Resolve a manifest's relative path under ``root``; refuse anything that escapes it.

    Refused: absolute paths, ``..`` components, backslashes, NUL, empty parts.
    """
    if not isinstance(value, str) or not value or "\x00" in value or "\\" in value:
        raise ValidationError(f"unsafe path {value!r}: expected a relative POSIX path")
    pure = PurePosixPath(value)
    raw_parts = value.split("/")
    if pure.is_absolute() or any(part in ("..", "", ".") for part in raw_parts) or value.startswith("~"):
        raise ValidationError(f"unsafe path {value!r}: must be relative and stay inside the dataset root")
    full = (root / Path(*pure.parts)).resolve()
    root_resolved = root.resolve()
    if root_resolved != full and root_resolved not in full.parents:
        raise ValidationError(f"unsafe path {value!r}: resolves outside {root}")
    return full
