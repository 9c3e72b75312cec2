"""A dataset root is ours: checked before use, marked on first use, locked while written.

* :func:`check_root` refuses what can never be a dataset root -- the empty
  string, the filesystem root, the home folder -- and a folder that holds files
  but is not ours: it has no marker file (:data:`MARKER`) and none of the
  artifacts an older version left (a ledger, a plan, a manifest, processed
  arrays).  ``force=True`` (``--force-root``) accepts such a folder.
* :class:`RootLock` is the advisory lock of one root (``fcntl.flock`` on
  ``ROOT/.lock``), opened with ``O_NOFOLLOW``: a ``.lock`` that is a link is
  refused, never followed.  A lock taken with :func:`hold_root` also covers the
  nested locks of the stages the same command runs.
* :func:`hold_root` checks the root, takes the lock and writes the marker, in
  that order, so a command refused by either changes nothing under the root.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Self

from audioset_fewshot._held import held_depth, held_mutex, held_paths, refuse_links_under_root
from audioset_fewshot._io import atomic_write_text
from audioset_fewshot.errors import LockError, UsageError
from audioset_fewshot.layout import DatasetLayout

MARKER = ".audioset-fewshot-root"
MARKER_TEXT = "This folder is an audioset-fewshot dataset root; the tool writes here only under its lock (.lock).\n"
# what an older version (without a marker) left in a root: such a folder is adopted
_LEGACY = (
    "ledger.sqlite",
    "plan/plan.json",
    "manifest/clips.csv",
    "processed/clean.csv",
    "processed/pack/current.json",
    "processed/features/current.json",
    "splits.json",
)
_OURS = {".lock", MARKER}


def _key(root: Path) -> str:
    return os.path.realpath(root)


def is_ours(root: Path | str) -> bool:
    """True when ``root`` carries our marker or the artifacts of an older version."""
    p = Path(root)
    return os.path.lexists(p / MARKER) or any(os.path.lexists(p / rel) for rel in _LEGACY)


def holds_only_ours(folder: Path | str) -> bool:
    """True when ``folder`` is missing or holds nothing but our lock file and marker."""
    p = Path(folder)
    if not p.is_dir():
        return not os.path.lexists(p)
    return all(child.name in _OURS for child in p.iterdir())


def check_root(root: Path | str | None, *, force: bool = False) -> Path:
    """``root`` as a Path, or :class:`UsageError` when it must not be used (see the module docstring)."""
    text = "" if root is None else str(root)
    if not text.strip():
        raise UsageError("the dataset root is empty (''); give a folder such as ./audioset-data")
    # resolved first: "new/../" must not create "new" and then lock its parent
    resolved = Path(text).expanduser().resolve()
    if resolved == Path(resolved.anchor):
        raise UsageError(f"refusing to use {resolved} (the filesystem root) as a dataset root; give it a folder of its own such as ./audioset-data")
    with contextlib.suppress(RuntimeError, KeyError):
        if resolved == Path.home().resolve():
            raise UsageError(f"refusing to use your home folder {resolved} as a dataset root; give it a folder of its own such as ~/audioset-data")
    path = resolved
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return path
    if not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"the dataset root {path} exists and is not a folder")
    if not force and not is_ours(path) and not holds_only_ours(path):
        raise UsageError(
            f"{path} is not empty and is not an audioset-fewshot root (no {MARKER} in it): refusing to write there, "
            "so that none of its files is replaced or deleted. Choose a new or empty folder, "
            "or pass --force-root if this folder really is meant to hold the dataset"
        )
    return path


class RootLock:
    """Advisory lock on ``ROOT/.lock``: one writing command per dataset root.

    Inside :func:`hold_root` of the same process the lock is already held and
    entering is a no-op; anywhere else a second holder gets :class:`LockError`."""

    def __init__(self, root: DatasetLayout | Path | str) -> None:
        self.layout = root if isinstance(root, DatasetLayout) else DatasetLayout(Path(root))
        self._fd: int | None = None
        self.nested = False  # True when entered inside hold_root of the same root

    def __enter__(self) -> Self:
        import fcntl

        with held_mutex:
            if held_depth.get(_key(self.layout.root), 0) > 0:
                self.nested = True
                return self
        self.layout.root.mkdir(parents=True, exist_ok=True)
        lock = self.layout.lock_file
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise LockError(f"{lock} is a symbolic link; it is never followed: remove it (rm {lock}) and run again") from err
            raise LockError(f"cannot open the lock file {lock}: {err.strerror}; check the folder's permissions") from err
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise LockError(f"{lock} is not a plain file; remove it and run again")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = ""
            with contextlib.suppress(OSError, ValueError):
                holder = f" (pid {int(os.pread(fd, 32, 0).decode().strip())})"
            os.close(fd)
            raise LockError(
                f"another run is using {self.layout.root}{holder}: wait for it to finish or stop it; one run per dataset root (lock file {lock})"
            ) from err
        with contextlib.suppress(OSError):  # the pid is a courtesy for the next holder; a full disk must not stop here
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self.nested:
            self.nested = False
            return
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing releases the flock
            self._fd = None


@contextlib.contextmanager
def hold_root(root: Path | str | None, *, force: bool = False) -> Iterator[Path]:
    """Check ``root``, lock it and mark it ours, for the duration of one command.

    Nothing under the root is written before the lock is held; nested stages
    that take :class:`RootLock` on the same root run under this one."""
    path = check_root(root, force=force)
    with RootLock(path) as lock:
        if lock.nested:
            yield path
            return
        key = _key(path)
        if not os.path.lexists(path / MARKER):
            atomic_write_text(path / MARKER, MARKER_TEXT)
        with held_mutex:
            held_depth[key] = held_depth.get(key, 0) + 1
            held_paths[key] = os.path.abspath(path)
        try:
            yield path
        finally:
            with held_mutex:
                held_depth[key] -= 1
                if not held_depth[key]:
                    del held_depth[key]
                    held_paths.pop(key, None)


__all__ = ["MARKER", "RootLock", "check_root", "hold_root", "holds_only_ours", "is_ours", "refuse_links_under_root"]
