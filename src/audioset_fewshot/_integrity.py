"""Content hashes of the big arrays, per fixed-size chunk.

A packed or feature array records, when it is written, the sha256 of every
``CHUNK_BYTES`` of its file (:class:`ChunkHasher` is fed the bytes as they
stream to disk, so the writer reads nothing back).  A reader checks the size
on every open (:func:`check_size`: cheap, catches truncation) and the hashes
when a stage that depends on the array runs or ``verify --deep`` asks
(:func:`verify_file`), with a check for non-finite values in float arrays on
the same pass.  A chunk is small enough that a flipped byte is located, large
enough that the list of hashes stays short (a 3 GB array: ~750 hashes).

The record stored in ``meta.json`` (``"content"``)::

    {"algo": "sha256", "chunk_bytes": 4194304, "size": 123456, "sha256": ["…", …]}
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from audioset_fewshot.errors import IntegrityError

ALGO = "sha256"
CHUNK_BYTES = 4 << 20  # a multiple of every item size we store (2, 4, 8)


class ChunkHasher:
    """sha256 of each ``chunk_bytes`` of a byte stream fed in order with :meth:`update`."""

    def __init__(self, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.chunk_bytes = int(chunk_bytes)
        self._h = hashlib.sha256()
        self._filled = 0
        self.size = 0
        self.digests: list[str] = []

    def update(self, data: bytes | bytearray | memoryview | np.ndarray) -> None:
        mv = (np.ascontiguousarray(data).data if isinstance(data, np.ndarray) else memoryview(data)).cast("B")
        self.size += len(mv)
        while len(mv):
            take = min(len(mv), self.chunk_bytes - self._filled)
            self._h.update(mv[:take])
            self._filled += take
            mv = mv[take:]
            if self._filled == self.chunk_bytes:
                self.digests.append(self._h.hexdigest())
                self._h = hashlib.sha256()
                self._filled = 0

    def record(self) -> dict[str, Any]:
        """The ``content`` record (call once, after the last :meth:`update`)."""
        digests = list(self.digests)
        if self._filled:
            digests.append(self._h.hexdigest())
        return {"algo": ALGO, "chunk_bytes": self.chunk_bytes, "size": self.size, "sha256": digests}


def _open_plain(path: Path) -> int:
    """Open ``path`` read-only without following a link at its last component."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise IntegrityError(f"{path} is not a plain file")
    return fd


def hash_file(path: Path | str, *, chunk_bytes: int = CHUNK_BYTES) -> dict[str, Any]:
    """The ``content`` record of a file already on disk (read in chunks)."""
    hasher = ChunkHasher(chunk_bytes)
    fd = _open_plain(Path(path))
    with os.fdopen(fd, "rb", closefd=True) as fh:
        for block in iter(lambda: fh.read(chunk_bytes), b""):
            hasher.update(block)
    return hasher.record()


def check_size(path: Path | str, expected_bytes: int, *, fix: str) -> None:
    """Raise :class:`IntegrityError` unless ``path`` is a plain file of ``expected_bytes``."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise IntegrityError(f"{path} is missing; {fix}") from None
    if not stat.S_ISREG(st.st_mode):
        raise IntegrityError(f"{path} is not a plain file (a link or a folder); {fix}")
    if st.st_size != expected_bytes:
        raise IntegrityError(f"{path} holds {st.st_size} bytes, {expected_bytes} expected (truncated or overwritten); {fix}")


def verify_file(path: Path | str, content: Mapping[str, Any] | None, *, float_dtype: str | None = None) -> list[str]:
    """Every problem of ``path`` against its ``content`` record (empty when it is intact).

    ``float_dtype`` (``"float32"``, ``"float64"``): also report non-finite values.
    The file is read once, chunk by chunk; nothing is raised for a damaged file.
    """
    path = Path(path)
    if not content or content.get("algo") != ALGO or not isinstance(content.get("sha256"), list):
        return ["no content hashes recorded (written by an older version)"]
    chunk = int(content["chunk_bytes"])
    expected: list[str] = list(content["sha256"])
    try:
        fd = _open_plain(path)
    except FileNotFoundError:
        return ["missing"]
    except (OSError, IntegrityError) as err:
        return [f"cannot open: {getattr(err, 'strerror', None) or err}"]
    problems: list[str] = []
    size = os.fstat(fd).st_size
    if size != int(content["size"]):
        problems.append(f"{size} bytes, {int(content['size'])} recorded (truncated or extended)")
    bad_chunks: list[int] = []
    non_finite = 0
    first_bad_value: int | None = None
    dtype = np.dtype(float_dtype) if float_dtype else None
    with os.fdopen(fd, "rb", closefd=True) as fh:
        i = 0
        for block in iter(lambda: fh.read(chunk), b""):
            if i >= len(expected) or hashlib.sha256(block).hexdigest() != expected[i]:
                bad_chunks.append(i)
            if dtype is not None:
                usable = len(block) - len(block) % dtype.itemsize
                values = np.frombuffer(block[:usable], dtype=dtype)
                bad = ~np.isfinite(values)
                n = int(bad.sum())
                if n:
                    non_finite += n
                    if first_bad_value is None:
                        first_bad_value = (i * chunk) // dtype.itemsize + int(np.argmax(bad))
            i += 1
        if i < len(expected):
            bad_chunks.extend(range(i, len(expected)))
    if bad_chunks:
        shown = ", ".join(str(c) for c in bad_chunks[:5]) + (" ..." if len(bad_chunks) > 5 else "")
        problems.append(f"content differs from its recorded sha256 in {len(bad_chunks)} chunk(s) of {chunk} bytes (chunk {shown})")
    if non_finite:
        problems.append(f"{non_finite} non-finite value(s) (NaN or inf), the first at element {first_bad_value}")
    return problems


__all__ = ["ALGO", "CHUNK_BYTES", "ChunkHasher", "check_size", "hash_file", "verify_file"]
