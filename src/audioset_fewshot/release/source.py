"""Where a release lives: an unpacked folder or ``features.tar.gz``, read in place.

Layout (Google's download page)::

    audioset_v1_embeddings/{bal_train,eval,unbal_train}/<2 chars>.tfrecord

sharded by the first two characters of the YouTube ID (4,070 / 4,062 / 4,096
files).  ``path`` may be the ``audioset_v1_embeddings`` folder, the folder
holding it, or the ``.tar.gz``; the tar is streamed member by member and never
extracted.  The segment lists' names map to the release's split folders as
:data:`SPLIT_DIRS` says.
"""

from __future__ import annotations

import gzip
import re
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from audioset_fewshot.errors import AudiosetFewshotError

TOP = "audioset_v1_embeddings"
SPLIT_DIRS: dict[str, str] = {"balanced": "bal_train", "eval": "eval", "unbalanced": "unbal_train"}
SOURCE_OF_DIR: dict[str, str] = {v: k for k, v in SPLIT_DIRS.items()}
# official file counts per split folder (a full release; a partial copy may have fewer)
OFFICIAL_FILES: dict[str, int] = {"balanced": 4070, "eval": 4062, "unbalanced": 4096}
_MEMBER_RE = re.compile(r"^(?:\./)?(?:" + TOP + r"/)?(bal_train|eval|unbal_train)/([A-Za-z0-9_-]{2})\.tfrecord$")


class ReleaseError(AudiosetFewshotError):
    """A release that cannot be used as given (missing split folder, not a tar.gz, ...)."""


@dataclass(frozen=True)
class ReleaseFile:
    """One TFRecord file: its split (a segment-list name), relative name and, for a folder, its path."""

    source: str
    name: str  # "<split dir>/<2 chars>.tfrecord", the same for a folder and a tar
    path: Path | None = None

    @property
    def prefix(self) -> str:
        return self.name.rsplit("/", 1)[1][:2]


def file_name(source: str, ytid: str) -> str:
    """The relative name of the file that holds ``ytid``'s segments of ``source``."""
    return f"{SPLIT_DIRS[source]}/{ytid[:2]}.tfrecord"


def member_name(name: str) -> tuple[str, str] | None:
    """``(source, relative name)`` of a tar member or relative path in the release layout, else None."""
    m = _MEMBER_RE.match(name)
    if m is None:
        return None
    return SOURCE_OF_DIR[m.group(1)], f"{m.group(1)}/{m.group(2)}.tfrecord"


@dataclass(frozen=True)
class Release:
    """An opened release: ``kind`` is ``folder`` or ``tar.gz``; ``path`` as given (resolved)."""

    path: Path
    kind: str
    top: Path | None = None  # the folder holding the split folders (kind folder)

    def folder_files(self, sources: Sequence[str]) -> list[ReleaseFile]:
        """Every TFRecord file of ``sources`` in a folder release, sorted by name."""
        if self.top is None:
            raise ReleaseError(f"{self.path} is a {self.kind}, not a folder")
        out: list[ReleaseFile] = []
        for s in sources:
            d = self.top / SPLIT_DIRS[s]
            if not d.is_dir():
                have = sorted(p.name for p in self.top.iterdir() if p.is_dir())
                raise ReleaseError(
                    f"release {self.top}: split folder {SPLIT_DIRS[s]!r} (the {s} list) is missing; found "
                    f"{', '.join(have) or 'no folders'}. Unpack the whole features.tar.gz, or drop {s!r} from plan.sources"
                )
            for p in sorted(d.glob("*.tfrecord")):
                out.append(ReleaseFile(s, f"{SPLIT_DIRS[s]}/{p.name}", p))
        return out

    def stream(self, sources: Sequence[str]) -> Iterator[tuple[ReleaseFile, bytes]]:
        """``(file, bytes)`` of every TFRecord member of ``sources`` in tar order, streamed.

        Raises :class:`ReleaseError` at the end when a wanted split had no member."""
        if self.kind != "tar.gz":
            raise ReleaseError(f"{self.path} is a folder; use folder_files")
        seen: set[str] = set()
        try:
            with tarfile.open(self.path, mode="r|gz") as tar:
                for info in tar:
                    if not info.isfile():
                        continue
                    hit = member_name(info.name)
                    if hit is None or hit[0] not in sources:
                        continue
                    fh: IO[bytes] | None = tar.extractfile(info)
                    if fh is None:  # pragma: no cover - isfile() members always have data
                        continue
                    data = fh.read()
                    if len(data) != info.size:
                        raise ReleaseError(
                            f"{self.path}: member {info.name} is cut short ({len(data)} of {info.size} bytes); "
                            "the download is incomplete: fetch features.tar.gz again"
                        )
                    seen.add(hit[0])
                    yield ReleaseFile(hit[0], hit[1]), data
        except (tarfile.ReadError, EOFError, gzip.BadGzipFile, OSError) as err:
            if isinstance(err, ReleaseError):
                raise
            raise ReleaseError(
                f"{self.path}: cannot read the tar.gz ({type(err).__name__}: {err}); the file is damaged or incomplete: fetch features.tar.gz again"
            ) from err
        missing = [s for s in sources if s not in seen]
        if missing:
            raise ReleaseError(
                f"{self.path}: no {', '.join(SPLIT_DIRS[s] + '/' for s in missing)} members (the "
                f"{', '.join(missing)} list); this is not a complete AudioSet embedding release, or drop "
                f"{', '.join(repr(s) for s in missing)} from plan.sources"
            )


def open_release(path: Path | str) -> Release:
    """Open a release folder or ``features.tar.gz`` (checked, not read yet)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ReleaseError(
            f"release {p} does not exist; give the unpacked audioset_v1_embeddings folder or features.tar.gz "
            "(storage.googleapis.com/us_audioset/youtube_corpus/v1/features/features.tar.gz)"
        )
    p = p.resolve()
    if p.is_dir():
        top = p / TOP if (p / TOP).is_dir() else p
        if not any((top / d).is_dir() for d in SPLIT_DIRS.values()):
            raise ReleaseError(
                f"release folder {p} holds none of {', '.join(SPLIT_DIRS.values())} (nor {TOP}/ with them); "
                "point features.release at the unpacked audioset_v1_embeddings folder"
            )
        return Release(path=p, kind="folder", top=top)
    with open(p, "rb") as fh:
        magic = fh.read(2)
    if magic != b"\x1f\x8b":
        raise ReleaseError(f"release {p} is not a gzip file (first bytes {magic!r}); expected features.tar.gz or an unpacked folder")
    return Release(path=p, kind="tar.gz")


__all__ = ["OFFICIAL_FILES", "SOURCE_OF_DIR", "SPLIT_DIRS", "TOP", "Release", "ReleaseError", "ReleaseFile", "file_name", "member_name", "open_release"]
