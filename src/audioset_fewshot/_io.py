"""Atomic writes and hashing.

Every artifact is written to a temporary file in the *same folder*, flushed and
fsynced, then moved over the target with ``os.replace``: a reader (or a killed
run) sees either the old file or the new one, never a half-written file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeAlias

from audioset_fewshot._held import refuse_links_under_root
from audioset_fewshot.errors import StorageError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

# A value of a JSON document (object, array, string, number, boolean, null).  Any, not a
# recursive union: dict is invariant, so a dict[str, int] would not pass as dict[str, JSON].
JsonValue: TypeAlias = Any

TMP_PREFIX = ".tmp-"
_CHUNK = 1 << 20


_STORAGE_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded", errno.EROFS: "the filesystem is read-only"}


def storage_error(err: OSError, path: Path | str) -> Exception:
    """``err`` as a :class:`StorageError` naming ``path`` and the fix when the disk refused
    the write (full, over quota, read-only); any other OSError is returned unchanged."""
    what = _STORAGE_ERRNOS.get(err.errno or 0)
    if what is None:
        return err
    fix = (
        "make the folder writable or choose a root on a writable disk"
        if err.errno == errno.EROFS
        else "free some space (or choose a root on a bigger disk) and run the same command again: work already committed is kept"
    )
    return StorageError(f"cannot write {path}: {what} ({err.strerror}); {fix}")


def _read_umask() -> int:
    # os.umask can only be read by setting it; do it once, at import, before any thread runs
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def fsync_dir(path: Path) -> None:
    """fsync a directory so that a rename inside it survives a power cut."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - some filesystems refuse O_RDONLY on dirs
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def pwrite_at(path: Path | str, offset: int, data: bytes | bytearray | memoryview) -> None:
    """Write ``data`` at byte ``offset`` of the existing (preallocated) file ``path``, never
    through a link: how a task fills its own rows of a shared array, in any order."""
    view = memoryview(data).cast("B")
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    try:
        while view:
            written = os.pwrite(fd, view, offset)
            view, offset = view[written:], offset + written
    finally:
        os.close(fd)


def flush_file(path: Path | str) -> None:
    """``fdatasync`` a file that others wrote (its data reaches the disk before it is committed)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(target: Path | str, *, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path beside ``target``; on success fsync it and move it over ``target``.

    On any exception the temp file is removed and ``target`` is untouched.
    ``suffix`` keeps an extension on the temp name for tools that sniff it (ffmpeg).
    """
    target = Path(target)
    refuse_links_under_root(target.parent)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=TMP_PREFIX + target.name + ".", suffix=suffix, dir=target.parent)
    except OSError as err:
        raise storage_error(err, target) from err
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        # mkstemp makes 0600 files; an artifact gets the mode any new file would get
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, target)
        fsync_dir(target.parent)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if isinstance(err, OSError):
            raise storage_error(err, target) from err
        raise


@contextlib.contextmanager
def atomic_open(target: Path | str, mode: str = "w", *, encoding: str | None = "utf-8", newline: str | None = None) -> Iterator[IO[Any]]:
    """Open a temp file beside ``target`` for writing; replace ``target`` on success."""
    if "b" in mode:
        encoding = None
    with atomic_path(target) as tmp:
        with open(tmp, mode, encoding=encoding, newline=newline) as fh:
            yield fh
            fh.flush()


def atomic_write_bytes(target: Path | str, data: bytes) -> None:
    with atomic_open(target, "wb") as fh:
        fh.write(data)


def atomic_write_text(target: Path | str, text: str) -> None:
    with atomic_open(target, "w", newline="") as fh:
        fh.write(text)


def write_text_if_changed(target: Path | str, text: str) -> bool:
    """Write ``text`` atomically unless the file already holds exactly it (then it is left
    alone, mtime and all); True when it wrote."""
    path = Path(target)
    try:
        if path.read_bytes() == text.encode("utf-8"):
            return False
    except OSError:
        pass  # absent or unreadable: write it
    atomic_write_text(path, text)
    return True


def canonical_json(obj: JsonValue) -> str:
    """Deterministic JSON text: sorted keys, fixed separators, trailing newline."""
    return json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def json_fields(record: DataclassInstance, *, leave_out: tuple[str, ...] = ()) -> dict[str, JsonValue]:
    """The fields of a dataclass ``record`` as plain JSON values (:func:`json_value`)."""
    return {f.name: json_value(getattr(record, f.name)) for f in dataclasses.fields(record) if f.name not in leave_out}


def json_value(value: object) -> JsonValue:
    """``value`` as plain JSON: a record through its ``to_dict()`` (else its fields), a
    path as text, tuples and lists as lists, a mapping with its keys sorted."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return json_fields(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [json_value(v) for v in value]
    if isinstance(value, Mapping):
        return {k: json_value(v) for k, v in sorted(value.items())}
    return value


def atomic_write_json(target: Path | str, obj: JsonValue) -> None:
    atomic_write_text(target, canonical_json(obj))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_text(text: str) -> str:
    return sha256_bytes(text.encode("utf-8"))


def sha256_file(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


# a name atomic_path / mkstemp made: our prefix, the target's name, a random part of 8, an optional suffix
_TMP_NAME = re.compile(re.escape(TMP_PREFIX) + r".+\.[a-z0-9_]{8}(\.[A-Za-z0-9]{1,8})?")


def remove_stray_temps(folder: Path | str) -> list[Path]:
    """Delete temp files left by a killed writer anywhere below ``folder``; return them.

    Only plain files whose name is one :func:`atomic_path` makes are removed; links
    are never followed (neither to a folder nor to a file) and nothing outside
    ``folder`` is touched."""
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir() or folder.is_symlink():
        return removed
    for dirpath, _dirnames, filenames in os.walk(folder, followlinks=False):
        for name in filenames:
            if not _TMP_NAME.fullmatch(name):
                continue
            p = Path(dirpath) / name
            try:
                if not stat.S_ISREG(os.lstat(p).st_mode):
                    continue
                p.unlink()
            except FileNotFoundError:
                continue
            removed.append(p)
    return removed
