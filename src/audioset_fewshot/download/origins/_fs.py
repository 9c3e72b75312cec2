"""Files of an origin through fsspec: a local path or any fsspec URL, read only.

Paths inside the origin are handled as POSIX strings relative to its root, so
that no absolute local path leaves this module.
"""

from __future__ import annotations

import os
from typing import IO, Any

from audioset_fewshot.download.origins.base import OriginError, absolute


class OriginFS:
    """Read-only access to the files under one origin root (local or fsspec URL)."""

    def __init__(self, path: str) -> None:
        self.url = path
        if "://" not in path:
            real = absolute(path)
            if not os.path.exists(real):
                raise OriginError(f"origin {path!r} does not exist: check the path (download.origins)")
            if not os.access(real, os.R_OK):
                raise OriginError(f"origin {path!r} is not readable: check its permissions")
            self.local_root: str | None = real
            self._fs: Any = None
            self.root = real
            return
        import fsspec

        self.local_root = None
        try:
            fs, root = fsspec.core.url_to_fs(path)
        except (ImportError, ValueError) as err:
            raise OriginError(f"origin {path!r}: fsspec cannot open this URL ({err}); install the fsspec backend of its scheme") from err
        self._fs = fs
        self.root = str(root).rstrip("/")
        try:
            exists = bool(fs.exists(self.root))
        except OSError as err:
            raise OriginError(f"origin {path!r} cannot be reached: {err}") from err
        if not exists:
            raise OriginError(f"origin {path!r} does not exist: check the URL (download.origins)")

    def is_file_root(self) -> bool:
        if self.local_root is not None:
            return os.path.isfile(self.local_root)
        return bool(self._fs.isfile(self.root))

    def files(self) -> list[str]:
        """Every regular file under the root, relative, sorted (hidden names skipped; a
        root that is one file gives that file's name)."""
        if self.is_file_root():
            return [os.path.basename(self.root.rstrip("/"))]
        out: list[str] = []
        if self.local_root is not None:
            for dirpath, dirnames, filenames in os.walk(self.local_root, onerror=None, followlinks=False):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                rel_dir = os.path.relpath(dirpath, self.local_root)
                for name in filenames:
                    if name.startswith("."):
                        continue
                    full = os.path.join(dirpath, name)
                    if os.path.islink(full) and not os.path.realpath(full).startswith(self.local_root + os.sep):
                        continue  # a link that leaves the origin is not part of it
                    if os.path.isfile(full):
                        out.append(name if rel_dir == "." else f"{rel_dir.replace(os.sep, '/')}/{name}")
        else:
            for full in self._fs.find(self.root):
                rel = str(full)[len(self.root) :].lstrip("/")
                if rel and not any(p.startswith(".") for p in rel.split("/")):
                    out.append(rel)
        return sorted(out)

    def full(self, rel: str) -> str:
        if self.is_file_root():
            return self.root
        return os.path.join(self.root, *rel.split("/")) if self.local_root is not None else f"{self.root}/{rel}"

    def open(self, rel: str, *, buffered: bool = True) -> IO[bytes]:
        """A binary, seekable file object (``buffered=False``: each read asks the OS for exactly
        the bytes wanted, for readers that jump through a file with small reads)."""
        try:
            if self.local_root is not None:
                return open(self.full(rel), "rb", buffering=-1 if buffered else 0)
            # unbuffered: no read-ahead cache (fsspec's default fetches megabytes for a 64-byte read)
            kw = {} if buffered else {"cache_type": "none"}
            fh: IO[bytes] = self._fs.open(self.full(rel), "rb", **kw)
            return fh
        except OSError as err:
            raise OriginError(f"origin {self.url!r}: cannot read {rel}: {err.strerror or err}") from err

    def read_bytes(self, rel: str) -> bytes:
        with self.open(rel) as fh:
            return fh.read()
