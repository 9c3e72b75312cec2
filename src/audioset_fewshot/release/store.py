"""Packed embeddings: one (N, 10, 128) uint8 array, a mask and an index table.

A store folder holds::

    embeddings.u8   raw uint8 (rows, 10, 128): the release's bytes, unchanged
    mask.u8         raw uint8 (rows, 10): 1 where the second is in the release
    index.csv       row, ytid, start_s, end_s, owner_mid, labels, source, seconds
    meta.json       kind "vggish-release", shape, parameters, input hashes (written last)

:func:`pack_rows` fills the two arrays from a release (folder or ``.tar.gz``),
one worker per file, each writing its rows in place with ``pwrite`` (no
memory map: the parent's memory stays flat however large the output).  A
segment with more than 10 seconds keeps its first 10; one with fewer leaves the
rest of its row zero and masked.

:class:`EmbeddingStore` reads a finished folder and serves it the way the
log-mel ``FeatureStore`` serves log-mels, dequantised on read
(``q / 255 * 4 - 2``; a missing second reads as 0.0): ``mels`` is a float32
view shaped (rows, 128, 10) (dimensions as "channels", seconds as "frames", so
normalisers fitted per channel work unchanged) and ``take`` gives items
(len, 10, 128), seconds first.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audioset_fewshot._artifact import check_row_numbers, read_records, render_table
from audioset_fewshot.engine import LOCAL, Engine
from audioset_fewshot.errors import ProcessingError
from audioset_fewshot.layout import clip_stem
from audioset_fewshot.release.index import ReleaseIndex
from audioset_fewshot.release.records import EMBEDDING_DIM, SECONDS, RecordError, decode_parts, dequantize, embeddings_of
from audioset_fewshot.release.source import (
    SPLIT_DIRS,
    Release,
    ReleaseError,
    open_release,
)
from audioset_fewshot.release.tfrecord import TFRecordError, masked_crc

KIND = "vggish-release"
SCHEMA_VERSION = 1
ROW_BYTES = SECONDS * EMBEDDING_DIM
EMBEDDINGS_FILE = "embeddings.u8"
MASK_FILE = "mask.u8"
INDEX_COLUMNS: tuple[str, ...] = ("row", "ytid", "start_s", "end_s", "owner_mid", "labels", "source", "seconds")


# ---------------------------------------------------------------------------------------
# packing


def _payload(data: memoryview, offset: int, name: str) -> memoryview:
    length = int.from_bytes(data[offset : offset + 8], "little")
    payload = data[offset + 12 : offset + 12 + length]
    stored = int.from_bytes(data[offset + 12 + length : offset + 16 + length], "little")
    if len(payload) != length or stored != masked_crc(payload):
        raise TFRecordError(f"{name}: the record at byte {offset} changed since the release was indexed (CRC mismatch); index the release again")
    return payload


def _pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def pack_bytes(data: bytes | memoryview, name: str, offsets: np.ndarray, out_rows: np.ndarray, emb_path: str, mask_path: str) -> int:
    """Decode the records of one file at ``offsets`` into rows ``out_rows`` of the two
    output files (runs in a worker); returns how many segments had more than 10 seconds."""
    view = memoryview(data)
    k = int(offsets.shape[0])
    try:
        parts = [decode_parts(_payload(view, int(o), name)) for o in offsets]
    except RecordError as err:
        raise ProcessingError(f"{name}: a record indexed before no longer decodes ({err}); index the release again") from err
    seconds, stacked, failed = embeddings_of(parts)
    if failed:
        raise ProcessingError(f"{name}: {failed[0][1]}; index the release again")
    block = np.zeros((k, SECONDS, EMBEDDING_DIM), dtype=np.uint8)
    mask = np.zeros((k, SECONDS), dtype=np.uint8)
    take = np.minimum(seconds, SECONDS)
    rows_k = np.repeat(np.arange(k), take)
    within = np.arange(int(take.sum())) - np.repeat(np.cumsum(take) - take, take)
    src = np.repeat(np.cumsum(seconds) - seconds, take) + within
    block[rows_k, within] = stacked[src]
    mask[rows_k, within] = 1
    longer = int((seconds > SECONDS).sum())
    # runs of consecutive output rows are one write each
    order = np.argsort(out_rows, kind="stable")
    rows = out_rows[order]
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    efd = os.open(emb_path, os.O_WRONLY)
    mfd = os.open(mask_path, os.O_WRONLY)
    try:
        for run in np.split(np.arange(k), breaks):
            if run.size == 0:
                continue
            sel = order[run]
            first = int(rows[run[0]])
            _pwrite_all(efd, np.ascontiguousarray(block[sel]).tobytes(), first * ROW_BYTES)
            _pwrite_all(mfd, np.ascontiguousarray(mask[sel]).tobytes(), first * SECONDS)
    finally:
        os.close(efd)
        os.close(mfd)
    return longer


def _pack_path(path: str, name: str, offsets: np.ndarray, out_rows: np.ndarray, emb_path: str, mask_path: str) -> int:
    return pack_bytes(Path(path).read_bytes(), name, offsets, out_rows, emb_path, mask_path)


def pack_rows(
    index: ReleaseIndex, rows: Sequence[int] | np.ndarray, folder: Path | str, *, workers: int = 2, release: Release | None = None, engine: Engine | None = None
) -> dict[str, int]:
    """Write ``embeddings.u8`` and ``mask.u8`` in ``folder`` for the index ``rows`` (output
    row i = ``rows[i]``).  Returns ``{"rows": n, "longer_than_10s": m}``."""
    want = np.asarray(rows, dtype=np.int64)
    jobs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if want.size:
        files = index.file[want]
        order = np.argsort(files, kind="stable")
        bounds = np.flatnonzero(np.diff(files[order])) + 1
        for grp in np.split(order, bounds):
            jobs[index.files[int(files[grp[0]])][1]] = (index.offset[want[grp]], grp.astype(np.int64))
    return pack_records(release or open_release(index.release), jobs, int(want.size), folder, workers=workers, engine=engine)


def pack_records(
    release: Release, jobs: Mapping[str, tuple[np.ndarray, np.ndarray]], rows: int, folder: Path | str, *, workers: int = 2, engine: Engine | None = None
) -> dict[str, int]:
    """Write ``rows`` rows of ``embeddings.u8`` and ``mask.u8`` in ``folder``: ``jobs`` maps a
    release file name (``bal_train/5v.tfrecord``) to (record byte offsets, output rows).
    A folder release reads only those files; a ``.tar.gz`` is streamed once.  Each file is
    one task of ``engine`` (default: a local pool of ``workers`` processes), which writes
    its rows in place: the same bytes wherever it runs."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    emb_path, mask_path = out / EMBEDDINGS_FILE, out / MASK_FILE
    for p, size in ((emb_path, rows * ROW_BYTES), (mask_path, rows * SECONDS)):
        with open(p, "wb") as fh:
            fh.truncate(size)
    longer = 0
    for part in _pack_jobs(release, jobs, str(emb_path), str(mask_path), workers, engine):
        longer += part
    return {"rows": rows, "longer_than_10s": longer}


def _pack_file(args: tuple[str, str, np.ndarray, np.ndarray, str, str]) -> int:
    """One release file's records into their rows of the two arrays: one task."""
    return _pack_path(*args)


def _pack_member(args: tuple[bytes, str, np.ndarray, np.ndarray, str, str]) -> int:
    """One tar member's records (its bytes read by the driver) into their rows: one task."""
    return pack_bytes(*args)


def _pack_jobs(
    rel: Release, jobs: Mapping[str, tuple[np.ndarray, np.ndarray]], emb: str, mask: str, workers: int, engine: Engine | None = None
) -> Iterator[int]:
    if not jobs:
        return
    with (engine or LOCAL).executor(workers=max(1, workers)) as ex:
        if rel.kind == "folder":
            if rel.top is None:  # pragma: no cover - a folder release always has its top folder
                raise ReleaseError(f"{rel.path}: a folder release without its folder")
            args = [(str(rel.top / name), name, *jobs[name], emb, mask) for name in sorted(jobs)]
            for path, *_ in args:
                if not Path(path).is_file():
                    raise ReleaseError(f"{path} is gone since the release was indexed; index it again")
            yield from ex.map_unordered(_pack_file, args)
            return
        wanted_sources = tuple(s for s in SPLIT_DIRS if any(name.startswith(SPLIT_DIRS[s] + "/") for name in jobs))
        done: set[str] = set()

        def members() -> Iterator[tuple[bytes, str, np.ndarray, np.ndarray, str, str]]:
            for f, data in rel.stream(wanted_sources):  # the tar is read once, here; the executor bounds what waits
                if f.name in jobs:
                    done.add(f.name)
                    yield (data, f.name, *jobs[f.name], emb, mask)

        yield from ex.map_unordered(_pack_member, members())
    missing = sorted(set(jobs) - done)
    if missing:
        raise ReleaseError(f"{rel.path}: {len(missing)} file(s) indexed before are not in the tar.gz now ({', '.join(missing[:3])}); index the release again")


# ---------------------------------------------------------------------------------------
# the index table


@dataclass(frozen=True)
class EmbeddingRow:
    """One row of a store's index.  ``labels`` are all the segment's labels (MIDs, sorted)."""

    row: int
    ytid: str
    start_s: float
    end_s: float
    owner_mid: str
    labels: tuple[str, ...]
    source: str
    seconds: int

    @property
    def clip_id(self) -> str:
        return clip_stem(self.ytid, self.start_s)


REBUILD = "delete the store's folder and run 'audioset-fewshot run' again to rebuild it"


def render_index(rows: Sequence[EmbeddingRow]) -> str:
    return render_table(
        INDEX_COLUMNS, ([r.row, r.ytid, f"{r.start_s:.3f}", f"{r.end_s:.3f}", r.owner_mid, ";".join(r.labels), r.source, r.seconds] for r in rows)
    )


def read_index(path: Path) -> tuple[EmbeddingRow, ...]:
    rows = read_records(path, EmbeddingRow, missing="run 'audioset-fewshot run' with features.kind vggish-release", fix=REBUILD)
    check_row_numbers(path, [r.row for r in rows], fix=REBUILD)
    return tuple(rows)


# ---------------------------------------------------------------------------------------
# reading


class _Dequantised:
    """A read-only float32 view (rows, 128, 10) of the packed uint8 (rows, 10, 128)."""

    dtype = np.dtype(np.float32)

    def __init__(self, embeddings: np.ndarray, mask: np.ndarray) -> None:
        self._q = embeddings
        self._m = mask
        self.shape = (int(embeddings.shape[0]), EMBEDDING_DIM, SECONDS)
        self.ndim = 3

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * 4

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        q = np.asarray(self._q[key])
        m = np.asarray(self._m[key])
        x = dequantize(q) * m[..., None].astype(np.float32)
        return np.ascontiguousarray(np.swapaxes(x, -1, -2))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        x = self[:]
        return x if dtype is None else x.astype(dtype)


@dataclass(frozen=True, eq=False)
class EmbeddingStore:
    """A finished store, memory-mapped (see the module docstring)."""

    root: Path
    key: str
    path: Path
    embeddings: np.ndarray  # uint8 (rows, 10, 128)
    mask: np.ndarray  # uint8 (rows, 10)
    index: tuple[EmbeddingRow, ...]
    meta: dict[str, Any]
    kind: str = KIND
    item_shape: tuple[int, int] = (SECONDS, EMBEDDING_DIM)
    _stats: dict[str, Any] = field(default_factory=dict, repr=False)  # lazily computed: statistics, look-ups

    def __len__(self) -> int:
        return len(self.index)

    @property
    def mels(self) -> _Dequantised:
        """Dequantised float32 (rows, 128, 10): embedding dimensions x seconds."""
        return _Dequantised(self.embeddings, self.mask)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.index), EMBEDDING_DIM, SECONDS)

    def take(self, rows: Any) -> np.ndarray:
        """Dequantised float32 items (len(rows), 10, 128), seconds first; missing seconds 0.0."""
        idx = np.asarray(rows, dtype=np.int64)
        return dequantize(self.embeddings[idx]) * self.mask[idx][..., None].astype(np.float32)

    @property
    def owner_mids(self) -> tuple[str, ...]:
        return tuple(sorted({r.owner_mid for r in self.index}))

    def rows_for(self, mid: str) -> np.ndarray:
        """Rows owned by class ``mid`` (int64, ascending)."""
        return self._lookups()[0].get(mid, np.zeros(0, dtype=np.int64))

    def row_of(self, ytid: str, start_s: float) -> int:
        try:
            return self._lookups()[1][(ytid, round(start_s, 3))]
        except KeyError:
            raise KeyError(f"clip {ytid} at {start_s:.3f} s is not in embeddings {self.key}") from None

    def _lookups(self) -> tuple[dict[str, np.ndarray], dict[tuple[str, float], int]]:
        if "by_owner" not in self._stats:
            by_owner: dict[str, list[int]] = {}
            for r in self.index:
                by_owner.setdefault(r.owner_mid, []).append(r.row)
            self._stats["by_owner"] = {m: np.asarray(v, dtype=np.int64) for m, v in sorted(by_owner.items())}
            self._stats["by_clip"] = {(r.ytid, round(r.start_s, 3)): r.row for r in self.index}
        return self._stats["by_owner"], self._stats["by_clip"]

    def _compute_stats(self) -> dict[str, np.ndarray]:
        if "count" not in self._stats:
            n = len(self.index)
            count = np.repeat(self.mask.sum(axis=1, dtype=np.float64)[:, None], EMBEDDING_DIM, axis=1) if n else np.zeros((0, EMBEDDING_DIM))
            s = np.zeros((n, EMBEDDING_DIM))
            ss = np.zeros((n, EMBEDDING_DIM))
            for lo in range(0, n, 4096):
                x = self.take(np.arange(lo, min(n, lo + 4096))).astype(np.float64)  # missing seconds are 0: they add nothing
                s[lo : lo + x.shape[0]] = x.sum(axis=1)
                ss[lo : lo + x.shape[0]] = np.square(x).sum(axis=1)
            self._stats.update(count=count, sum=s, sumsq=ss)
        return self._stats

    @property
    def stats_count(self) -> np.ndarray:
        """(rows, 128) float64: seconds present per row and dimension (for ``fit_normalizer``)."""
        return self._compute_stats()["count"]

    @property
    def stats_sum(self) -> np.ndarray:
        return self._compute_stats()["sum"]

    @property
    def stats_sumsq(self) -> np.ndarray:
        return self._compute_stats()["sumsq"]


def load_embeddings(root: Path | str, folder: Path | str, *, verify: bool = False) -> EmbeddingStore:
    """Open a finished store folder (its ``meta.json`` says ``kind: vggish-release``).

    Sizes and the index's sha256 are always checked; ``verify=True`` also re-hashes
    the two arrays against ``meta.json`` (:class:`IntegrityError` names the file)."""
    from audioset_fewshot._artifact import load_meta
    from audioset_fewshot._io import sha256_file
    from audioset_fewshot.errors import ArtifactError, IntegrityError

    path = Path(folder)
    meta = load_meta(path / "meta.json", stage=f"{KIND} store", schema_version=SCHEMA_VERSION, fix=REBUILD)
    if meta.get("kind") != KIND:
        raise ArtifactError(f"{path / 'meta.json'}: not a {KIND} store (kind {meta.get('kind')!r}); {REBUILD}")
    n = int(meta["shape"][0])
    index = read_index(path / "index.csv")
    if len(index) != n:
        raise ProcessingError(
            f"{path}: index.csv has {len(index)} rows but the arrays {n}; delete the store's folder and run 'audioset-fewshot run' again to rebuild it"
        )
    for name, size in ((EMBEDDINGS_FILE, n * ROW_BYTES), (MASK_FILE, n * SECONDS)):
        actual = (path / name).stat().st_size
        if actual != size:
            raise IntegrityError(
                f"{path / name}: {actual} bytes, expected {size}; delete the store's folder and run 'audioset-fewshot run' again to rebuild it"
            )
    recorded = meta.get("sha256") or {}
    for name in ("index.csv", EMBEDDINGS_FILE, MASK_FILE) if verify else ("index.csv",):
        want = recorded.get(name)
        if want is not None and sha256_file(path / name) != want:
            raise IntegrityError(
                f"{path / name}: sha256 differs from the one recorded in meta.json (the file changed after it was "
                "written); delete the store's folder and run 'audioset-fewshot run' again to rebuild it"
            )
    emb: np.ndarray
    mask: np.ndarray
    if n:
        emb = np.memmap(path / EMBEDDINGS_FILE, dtype=np.uint8, mode="r", shape=(n, SECONDS, EMBEDDING_DIM))
        mask = np.memmap(path / MASK_FILE, dtype=np.uint8, mode="r", shape=(n, SECONDS))
    else:
        emb, mask = np.zeros((0, SECONDS, EMBEDDING_DIM), np.uint8), np.zeros((0, SECONDS), np.uint8)
    return EmbeddingStore(root=Path(root), key=str(meta["key"]), path=path, embeddings=emb, mask=mask, index=index, meta=meta)


__all__ = [
    "EMBEDDINGS_FILE",
    "INDEX_COLUMNS",
    "KIND",
    "MASK_FILE",
    "ROW_BYTES",
    "EmbeddingRow",
    "EmbeddingStore",
    "load_embeddings",
    "pack_bytes",
    "pack_records",
    "pack_rows",
    "read_index",
    "render_index",
]
