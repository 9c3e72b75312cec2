"""Index a release: where every segment's record is, in one parallel pass.

:func:`index_release` reads every TFRecord file of the wanted lists (a folder's
files in a process pool; a ``.tar.gz`` streamed in the parent, its members
decoded in the pool), verifies both CRCs of every record and decodes it.  The
result, :class:`ReleaseIndex`, is a handful of numpy arrays (one row per
record, files in name order, records in file order) plus the problems found:

- a record whose payload CRC fails is named (file, record, byte offset); if it
  still decodes, its segment is kept in the index with status ``corrupt`` (the
  clip is recorded as corrupt, never packed); the rest of the file is read on;
- a file cut short, or whose framing breaks, keeps the records before the
  break and is listed in ``damaged`` with the message.

``content_sha256`` hashes the sorted (name, sha256 of the file's bytes) pairs:
the same for the unpacked folder and the ``.tar.gz`` it came from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audioset_fewshot._io import canonical_json, sha256_text
from audioset_fewshot.config import SOURCES
from audioset_fewshot.engine import LOCAL
from audioset_fewshot.release.records import EMBEDDING_DIM, SECONDS, RecordError, RecordParts, decode_parts, embeddings_of
from audioset_fewshot.release.source import (
    Release,
    ReleaseError,
    open_release,
)
from audioset_fewshot.release.tfrecord import TFRecordError, read_records

log = logging.getLogger(__name__)

OK = 0
CORRUPT = 1
STATUS_NAMES = ("ok", "corrupt")


@dataclass(frozen=True)
class FileIndex:
    """What one file held (a worker's answer)."""

    source: str
    name: str
    sha256: str
    size: int
    ytid: np.ndarray  # S11
    start_ms: np.ndarray  # int64
    end_ms: np.ndarray  # int64
    seconds: np.ndarray  # int16
    number: np.ndarray  # int32, record number in the file
    offset: np.ndarray  # int64, byte offset of the record's frame
    status: np.ndarray  # int8, OK or CORRUPT
    label_ptr: np.ndarray  # int64 (n + 1)
    label_idx: np.ndarray  # int32, class indices as stored
    problems: tuple[str, ...] = ()  # every corrupt record, named
    damaged: str | None = None  # the file broke off here
    unreadable: int = 0  # corrupt records that did not even decode (their clip is unknown)
    embeddings: np.ndarray | None = None  # uint8 (n, 10, 128), when asked for
    mask: np.ndarray | None = None  # uint8 (n, 10)


def index_bytes(source: str, name: str, data: bytes | memoryview, *, embeddings: bool = False) -> FileIndex:
    """Index one file's bytes (runs in a worker).  ``embeddings=True`` also returns every
    indexed record's embedding in ``FileIndex.embeddings`` / ``mask`` (for :func:`pack_release`)."""
    view = memoryview(data)
    parts: list[RecordParts] = []
    numbers: list[int] = []
    offsets: list[int] = []
    status: list[int] = []
    problems: list[str] = []
    damaged: str | None = None
    unreadable = 0
    try:
        for rec in read_records(view, name=name):
            payload = rec.payload
            state = OK
            if payload is None:
                # the CRC failed; the framing is intact, so try to say which clip it was
                state = CORRUPT
                length = int.from_bytes(view[rec.offset : rec.offset + 8], "little")
                payload = view[rec.offset + 12 : rec.offset + 12 + length]
            try:
                p = decode_parts(payload)
            except RecordError as err:
                problems.append(rec.corrupt or f"{name}: record {rec.number} (byte {rec.offset}): {err}")
                unreadable += 1
                continue
            if state == CORRUPT:
                problems.append(f"{rec.corrupt} (it names {p.ytid} at {p.start_ms / 1000:.3f} s: recorded as corrupt)")
            parts.append(p)
            numbers.append(rec.number)
            offsets.append(rec.offset)
            status.append(state)
    except TFRecordError as err:
        damaged = str(err)
    seconds, stacked, failed = embeddings_of(parts)
    keep = np.ones(len(parts), dtype=bool)
    for i, msg in failed:
        problems.append(f"{name}: record {numbers[i]} (byte {offsets[i]}): {msg}")
        unreadable += 1
        keep[i] = False
    status_a = np.array(status, dtype=np.int8)
    emb_out = mask_out = None
    if embeddings:
        # rows of the file's records, first SECONDS seconds each; corrupt ones stay empty
        k = len(parts)
        emb_out = np.zeros((k, SECONDS, EMBEDDING_DIM), dtype=np.uint8)
        mask_out = np.zeros((k, SECONDS), dtype=np.uint8)
        starts = np.concatenate([[0], np.cumsum(seconds)[:-1]]) if k else np.zeros(0, np.int64)
        take = np.minimum(seconds, SECONDS)
        rows = np.repeat(np.arange(k), take)
        within = np.arange(int(take.sum())) - np.repeat(np.cumsum(take) - take, take)
        src = np.repeat(starts, take) + within
        emb_out[rows, within] = stacked[src]
        mask_out[rows, within] = 1
        clean = (status_a == OK) & keep
        emb_out, mask_out = emb_out[keep], mask_out[keep]
        emb_out[~clean[keep]] = 0
        mask_out[~clean[keep]] = 0
    kept = [p for p, k in zip(parts, keep, strict=True) if k]
    label_ptr = np.zeros(len(kept) + 1, dtype=np.int64)
    label_ptr[1:] = np.cumsum([len(p.labels) for p in kept])
    return FileIndex(
        source=source,
        name=name,
        sha256=hashlib.sha256(view).hexdigest(),
        size=len(view),
        ytid=np.array([p.ytid.encode("ascii") for p in kept], dtype="S11"),
        start_ms=np.array([p.start_ms for p in kept], dtype=np.int64),
        end_ms=np.array([p.end_ms for p in kept], dtype=np.int64),
        seconds=seconds[keep].astype(np.int16),
        number=np.array(numbers, dtype=np.int32)[keep],
        offset=np.array(offsets, dtype=np.int64)[keep],
        status=status_a[keep],
        label_ptr=label_ptr,
        label_idx=np.array([i for p in kept for i in p.labels], dtype=np.int32),
        problems=tuple(problems),
        damaged=damaged,
        unreadable=unreadable,
        embeddings=emb_out,
        mask=mask_out,
    )


def _index_path(source: str, name: str, path: str, embeddings: bool = False) -> FileIndex:
    return index_bytes(source, name, Path(path).read_bytes(), embeddings=embeddings)


@dataclass(frozen=True, eq=False)
class ReleaseIndex:
    """Every record of the indexed lists (see the module docstring).

    Per record: ``source`` (int8 index into ``config.SOURCES``), ``ytid`` (S11),
    ``start_ms`` / ``end_ms``, ``seconds`` present, ``file`` (index into
    ``files``), ``number`` and ``offset`` in the file, ``status``, and the
    stored labels as CSR (``label_ptr`` / ``label_idx``).
    """

    release: Path
    kind: str
    sources: tuple[str, ...]
    files: tuple[tuple[str, str, str, int, int], ...]  # (source, name, sha256, bytes, records)
    source: np.ndarray
    ytid: np.ndarray
    start_ms: np.ndarray
    end_ms: np.ndarray
    seconds: np.ndarray
    file: np.ndarray
    number: np.ndarray
    offset: np.ndarray
    status: np.ndarray
    label_ptr: np.ndarray
    label_idx: np.ndarray
    problems: tuple[str, ...]
    damaged: dict[str, str]
    content_sha256: str
    duplicates: int = 0
    unreadable: dict[str, int] = field(default_factory=dict)  # file -> records whose clip is unknown
    _keys: np.ndarray | None = field(default=None, repr=False)
    _order: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.ytid.shape[0])

    def labels(self, row: int) -> tuple[int, ...]:
        return tuple(int(i) for i in self.label_idx[self.label_ptr[row] : self.label_ptr[row + 1]])

    def file_name(self, row: int) -> str:
        return self.files[int(self.file[row])][1]

    @staticmethod
    def make_keys(source: np.ndarray, ytid: np.ndarray, start_ms: np.ndarray) -> np.ndarray:
        """Sortable fixed-width keys ``<source><ytid><start_ms, 9 digits>`` (S21)."""
        src = np.asarray(source, dtype=np.int64).astype("S1")
        ms = np.char.zfill(np.asarray(start_ms, dtype=np.int64).astype("S9"), 9)
        return np.char.add(np.char.add(src, np.asarray(ytid, dtype="S11")), ms).astype("S21")

    def _lookup_tables(self) -> tuple[np.ndarray, np.ndarray]:
        if self._keys is None or self._order is None:
            keys = self.make_keys(self.source, self.ytid, self.start_ms)
            order = np.argsort(keys, kind="stable")  # ties: the first record wins
            object.__setattr__(self, "_keys", keys[order])
            object.__setattr__(self, "_order", order)
        assert self._keys is not None and self._order is not None
        return self._keys, self._order

    def find(self, source: Sequence[str] | np.ndarray, ytid: Sequence[str] | np.ndarray, start_ms: Sequence[int] | np.ndarray) -> np.ndarray:
        """Row of each (source name, YouTube ID, start in ms), -1 where the release lacks it (vectorised)."""
        src = np.array([SOURCES.index(s) for s in source], dtype=np.int64) if len(source) else np.zeros(0, np.int64)
        want = self.make_keys(src, np.asarray(ytid, dtype="S11"), np.asarray(start_ms, dtype=np.int64))
        keys, order = self._lookup_tables()
        if keys.size == 0:
            return np.full(want.shape[0], -1, dtype=np.int64)
        pos = np.searchsorted(keys, want)
        pos_c = np.minimum(pos, keys.size - 1)
        hit = keys[pos_c] == want
        return np.where(hit, order[pos_c], -1).astype(np.int64)

    def counts(self) -> dict[str, int]:
        """Records per list and status."""
        out: dict[str, int] = {}
        for i, s in enumerate(SOURCES):
            m = self.source == i
            if m.any():
                out[s] = int(m.sum())
        out["corrupt"] = int((self.status == CORRUPT).sum())
        return out


def _index_file(args: tuple[str, str, str, bool]) -> FileIndex:
    return _index_path(*args)


def _index_member(args: tuple[str, str, bytes, bool]) -> FileIndex:
    source, name, data, embeddings = args
    return index_bytes(source, name, data, embeddings=embeddings)


def _file_results(rel: Release, sources: Sequence[str], workers: int, *, embeddings: bool = False) -> Iterator[FileIndex]:
    """Every file's index, in name order for a folder and member order for a tar (a tar's
    members are read here, once, and decoded in the pool; a bounded number in flight)."""
    with LOCAL.executor(workers=max(1, workers)) as ex:
        if rel.kind == "folder":
            yield from ex.map(_index_file, ((f.source, f.name, str(f.path), embeddings) for f in rel.folder_files(sources)))
        else:
            yield from ex.map(_index_member, ((f.source, f.name, data, embeddings) for f, data in rel.stream(sources)))


def index_release(release: Path | str | Release, *, sources: Sequence[str] = SOURCES, workers: int = 2) -> ReleaseIndex:
    """Index every record of the ``sources`` lists of a release folder or ``.tar.gz``."""
    from audioset_fewshot._progress import progress_bar

    rel = release if isinstance(release, Release) else open_release(release)
    srcs = tuple(s for s in SOURCES if s in sources)
    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        raise ReleaseError(f"unknown segment list(s) {unknown}; expected some of {', '.join(SOURCES)}")
    parts: list[FileIndex] = []
    with progress_bar(total=None, desc="index release", unit="file") as bar:
        for fi in _file_results(rel, srcs, workers):
            parts.append(fi)
            bar.update(1)
    # files in name order whatever order they arrived in (a tar's member order is its own)
    parts.sort(key=lambda p: (SOURCES.index(p.source), p.name))
    return _combine(rel, srcs, _unique(rel, parts))


def _unique(rel: Release, parts: list[FileIndex]) -> list[FileIndex]:
    seen_names: set[str] = set()
    for p in parts:
        if p.name in seen_names:
            raise ReleaseError(f"{rel.path}: {p.name} appears twice; the release is not in the official layout")
        seen_names.add(p.name)
    return parts


def pack_release(release: Path | str | Release, folder: Path | str, *, sources: Sequence[str] = SOURCES, workers: int = 2) -> ReleaseIndex:
    """Index every record of ``sources`` and pack all of them in the same single pass:
    ``folder/embeddings.u8`` (N, 10, 128) uint8 and ``folder/mask.u8`` (N, 10), row i =
    index row i.  Rows follow the files as read: name order for a folder, member order
    for a tar (records in file order).  A corrupt record keeps its row, empty and masked.
    The arrays are written sequentially by the parent; no file is memory-mapped."""
    from audioset_fewshot._progress import progress_bar

    rel = release if isinstance(release, Release) else open_release(release)
    srcs = tuple(s for s in SOURCES if s in sources)
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    parts: list[FileIndex] = []
    with open(out / "embeddings.u8", "wb") as emb_fh, open(out / "mask.u8", "wb") as mask_fh, progress_bar(total=None, desc="pack release", unit="file") as bar:
        for fi in _file_results(rel, srcs, workers, embeddings=True):
            assert fi.embeddings is not None and fi.mask is not None
            emb_fh.write(np.ascontiguousarray(fi.embeddings).data)
            mask_fh.write(np.ascontiguousarray(fi.mask).data)
            parts.append(dataclasses.replace(fi, embeddings=None, mask=None))
            bar.update(1)
    return _combine(rel, srcs, _unique(rel, parts))


def _combine(rel: Release, sources: tuple[str, ...], parts: Sequence[FileIndex]) -> ReleaseIndex:
    n = [int(p.ytid.shape[0]) for p in parts]

    def cat(attr: str, dtype: Any) -> np.ndarray:
        arrays = [getattr(p, attr) for p in parts]
        return np.concatenate(arrays).astype(dtype, copy=False) if arrays else np.zeros(0, dtype=dtype)

    source = np.repeat(np.array([SOURCES.index(p.source) for p in parts], dtype=np.int8), n) if parts else np.zeros(0, np.int8)
    file_ = np.repeat(np.arange(len(parts), dtype=np.int32), n) if parts else np.zeros(0, np.int32)
    # concatenated CSR: shift every file's pointers by the labels before it
    ptrs = [np.zeros(1, dtype=np.int64)]
    base = 0
    for p in parts:
        ptrs.append(p.label_ptr[1:] + base)
        base += int(p.label_ptr[-1])
    files = tuple((p.source, p.name, p.sha256, p.size, int(p.ytid.shape[0])) for p in parts)
    problems = tuple(m for p in parts for m in p.problems)
    damaged = {p.name: p.damaged for p in parts if p.damaged}
    for msg in problems:
        log.warning("%s", msg)
    for msg in damaged.values():
        log.warning("%s", msg)
    idx = ReleaseIndex(
        release=rel.path,
        kind=rel.kind,
        sources=sources,
        files=files,
        source=source,
        ytid=cat("ytid", "S11"),
        start_ms=cat("start_ms", np.int64),
        end_ms=cat("end_ms", np.int64),
        seconds=cat("seconds", np.int16),
        file=file_,
        number=cat("number", np.int32),
        offset=cat("offset", np.int64),
        status=cat("status", np.int8),
        label_ptr=np.concatenate(ptrs),
        label_idx=cat("label_idx", np.int32),
        problems=problems,
        damaged=damaged,
        content_sha256=sha256_text(canonical_json([[name, sha] for _, name, sha, _, _ in files])),
        unreadable={p.name: p.unreadable for p in parts if p.unreadable},
    )
    keys, _ = idx._lookup_tables()
    dup = int((keys[1:] == keys[:-1]).sum()) if keys.size > 1 else 0
    object.__setattr__(idx, "duplicates", dup)
    if dup:
        log.warning("release %s lists %d segments more than once; the first record of each is used", rel.path, dup)
    return idx


__all__ = ["CORRUPT", "OK", "STATUS_NAMES", "FileIndex", "ReleaseIndex", "index_bytes", "index_release", "pack_release"]
