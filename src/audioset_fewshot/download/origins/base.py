"""What every origin is: an index of the clips it holds and a reader of one clip.

An *origin* is a copy of AudioSet audio that already exists (a mirror, a lab's
pack, a folder written by a downloader) or YouTube itself.  A local origin
answers two questions:

* :meth:`Origin.clips` -- which clips it holds, as :class:`OriginClip` records
  keyed by (segment list or ``None``, YouTube ID, start or ``None``); a copy
  that stores no start time (the Hugging Face mirror, PANN packs) is joined
  with the segment lists by (list, ID), which is unique within a list;
* :meth:`Origin.read` -- the clip's encoded bytes (FLAC, WAV, mp3, ...) or its
  samples, with the facts of the source (codec, sample rate).

Names from the files are never trusted: a YouTube ID is validated before it is
used, a member that tries to leave its archive is rejected, and no origin path
is ever written to the manifest (a user-given ``name`` or the layout kind
stands in).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from audioset_fewshot.errors import DownloadError, UsageError

if TYPE_CHECKING:
    from audioset_fewshot.download.origins._fs import OriginFS

LAYOUTS = ("hf-parquet", "webdataset", "pann-hdf5", "directory")
YOUTUBE = "youtube"

# folder (or file) names that say which segment list a clip belongs to
_LIST_NAMES: dict[str, str] = {
    "bal_train": "balanced", "balanced_train": "balanced", "balanced_train_segments": "balanced", "balanced": "balanced",
    "eval": "eval", "eval_segments": "eval", "evaluation": "eval",
    "unbal_train": "unbalanced", "unbalanced_train": "unbalanced", "unbalanced_train_segments": "unbalanced", "unbalanced": "unbalanced",
}  # fmt: skip
_PART_RE = re.compile(r"(unbalanced_train_segments|unbalanced_train)_part\d+(?:_.*)?")
_YTID_RE = re.compile(r"[A-Za-z0-9_-]{11}")


class OriginError(DownloadError):
    """An origin cannot be used at all (missing, unreadable, not a known layout)."""


def list_of_name(name: str) -> str | None:
    """The segment list a folder or file stem names (``bal_train`` -> ``balanced``), else None."""
    stem = name.lower()
    for suffix in (".h5", ".hdf5", ".hdf", ".tar", ".parquet"):
        stem = stem.removesuffix(suffix)
    stem = stem.removesuffix("_mp3")
    if stem in _LIST_NAMES:
        return _LIST_NAMES[stem]
    if _PART_RE.fullmatch(stem):
        return "unbalanced"
    return None


def list_of_parts(parts: Sequence[str]) -> str | None:
    """The segment list named by the nearest folder of a path (innermost first)."""
    for part in reversed(parts):
        found = list_of_name(part)
        if found is not None:
            return found
    return None


def absolute(path: str) -> str:
    """An origin's path as any process (a Dask worker) opens it: a URL as it is, a local path
    made absolute."""
    import os

    return path if "://" in path else os.path.abspath(os.path.expanduser(path))


def is_ytid(text: str) -> bool:
    return bool(_YTID_RE.fullmatch(text))


@dataclass(frozen=True)
class OriginClip:
    """One clip an origin holds.  ``source``: the segment list (None: unknown, joined by
    ID); ``start_s``: the start its name carries (None: joined with the segment list);
    ``locator``: where the origin finds it (a path, a member, a row; never written out);
    ``labels``: the MIDs the copy records, when it records any."""

    ytid: str
    source: str | None
    start_s: float | None
    locator: tuple[Any, ...]
    labels: tuple[str, ...] | None = None


@dataclass(frozen=True)
class OriginAudio:
    """A clip as read from an origin: encoded bytes (``data`` + ``codec``, decoded by the
    shared proof path) or samples (``samples`` float32 (n, channels) in [-1, 1] at
    ``sample_rate_hz``)."""

    codec: str
    data: bytes | None = None
    samples: np.ndarray | None = None
    sample_rate_hz: int | None = None


@dataclass(frozen=True)
class OriginSpec:
    """One entry of ``download.origins``: where, which layout (None: detect), the name
    that stands for it in the ledger and manifest, and the revision of a mirror."""

    path: str
    layout: str | None = None
    name: str | None = None
    revision: str | None = None
    repo: str | None = None


@dataclass(frozen=True)
class OriginInfo:
    """What the manifest and lock may say of an origin (no local path)."""

    name: str
    kind: str
    revision: str | None = None
    repo: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"name": self.name, "kind": self.kind, "revision": self.revision, "repo": self.repo}


@dataclass
class IndexReport:
    """What indexing an origin found: clips, names that could not be parsed, members or
    files rejected (hostile or malformed) with a reason each."""

    unparseable: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)


class Origin(Protocol):
    """A local origin (see the module docstring)."""

    info: OriginInfo
    report: IndexReport

    def clips(self) -> Sequence[OriginClip]: ...

    def read(self, clip: OriginClip) -> OriginAudio: ...

    def close(self) -> None: ...


class IndexedOrigin:
    """What the local layouts share: where the files are (``fs``), what the manifest may
    say (``info``), the class order that numbered labels refer to, and the clip index,
    built once by the layout's :meth:`_index` (problems go to ``report``)."""

    suffixes: tuple[str, ...] = ()  # the file names (lower-cased) this layout indexes end so

    def __init__(self, fs: OriginFS, info: OriginInfo, *, class_mids: Sequence[str] | None = None) -> None:
        self.fs = fs
        self.info = info
        self.report = IndexReport()
        self.class_mids = tuple(class_mids) if class_mids else None
        self._clips: list[OriginClip] | None = None

    def files(self) -> list[str]:
        return [rel for rel in self.fs.files() if rel.lower().endswith(self.suffixes)]

    def clips(self) -> Sequence[OriginClip]:
        if self._clips is None:
            self._clips = self._index()
        return self._clips

    def _index(self) -> list[OriginClip]:
        raise NotImplementedError

    def read(self, clip: OriginClip) -> OriginAudio:
        raise NotImplementedError

    def close(self) -> None:
        return None


_HF_RE = re.compile(r"hf://datasets/(?P<repo>[^@/]+/[^@/]+)(?:@(?P<rev>[^/]+))?(?P<rest>/.*)?")


def parse_origin(entry: str | Mapping[str, Any]) -> OriginSpec | None:
    """One ``download.origins`` entry -> an :class:`OriginSpec`, or None for ``youtube``.

    Accepted: ``"youtube"``; a local path; an fsspec URL (``file://``, ``hf://datasets/<repo>@<revision>/...``,
    ``s3://...``); a mapping with ``path`` and optional ``layout``, ``name``, ``revision``."""
    if isinstance(entry, str):
        if entry.strip().lower() == YOUTUBE:
            return None
        data: dict[str, Any] = {"path": entry}
    elif isinstance(entry, Mapping):
        unknown = set(entry) - {"path", "layout", "name", "revision", "repo"}
        if unknown:
            raise UsageError(f"origin {dict(entry)!r}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; expected path, layout, name, revision")
        data = dict(entry)
        if str(data.get("path", "")).strip().lower() == YOUTUBE:
            return None
    else:
        raise UsageError(f"origin {entry!r}: expected 'youtube', a path, a URL or a mapping with 'path'")
    path = data.get("path")
    if not isinstance(path, str) or not path.strip():
        raise UsageError(f"origin {entry!r}: 'path' must be a non-empty string")
    layout = data.get("layout")
    if layout is not None and layout not in LAYOUTS:
        from audioset_fewshot.errors import closest

        sugg = closest(str(layout), LAYOUTS)
        hint = f" Did you mean {sugg[0]!r}?" if sugg else ""
        raise UsageError(f"origin {path!r}: unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}.{hint}")
    name = data.get("name")
    if name is not None and (not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/@+-]{0,99}", name) or name == YOUTUBE):
        raise UsageError(f"origin {path!r}: name {name!r} must be 1-100 letters, digits or ._/@+- and not 'youtube'")
    revision = data.get("revision")
    repo = data.get("repo")
    m = _HF_RE.fullmatch(path.strip())
    if m:
        repo = repo or m.group("repo")
        if m.group("rev"):
            if revision is not None and revision != m.group("rev"):
                raise UsageError(f"origin {path!r}: the URL names revision {m.group('rev')!r} but 'revision' says {revision!r}")
            revision = m.group("rev")
    return OriginSpec(
        path=path.strip(), layout=layout, name=name, revision=None if revision is None else str(revision), repo=None if repo is None else str(repo)
    )


def parse_origins(entries: Sequence[str | Mapping[str, Any]] | None) -> tuple[list[OriginSpec], bool]:
    """The whole list -> (local origin specs in order, whether youtube is in the list).
    ``None`` or empty means ``[youtube]``."""
    if not entries:
        return [], True
    specs: list[OriginSpec] = []
    youtube = False
    for entry in entries:
        spec = parse_origin(entry)
        if spec is None:
            youtube = True
        else:
            specs.append(spec)
    return specs, youtube
