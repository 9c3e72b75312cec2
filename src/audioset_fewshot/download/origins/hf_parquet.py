"""The ``hf-parquet`` layout: the Hugging Face mirror ``agkphysics/AudioSet``.

``data/<bal_train|eval|unbal_train>/*.parquet`` with columns ``video_id``
(string), ``audio`` (struct of ``bytes`` = the FLAC file and ``path`` =
``audio/<split>/<ytid>.flac``), ``labels`` (MIDs) and ``human_labels``.  No
start times: clips are joined with the segment lists by (list, YouTube ID).

The index reads the ``video_id`` column only.  A clip is read by
:mod:`.parquet_pages`: only the data pages of ``audio.bytes`` that hold the
wanted rows (Hugging Face's ``datasets`` writes 100 rows of ~1.4 MB FLAC per
row group, so a whole row group costs ~140 MB per clip).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from audioset_fewshot.download.origins._fs import OriginFS
from audioset_fewshot.download.origins.base import IndexedOrigin, OriginAudio, OriginClip, OriginError, OriginInfo, is_ytid, list_of_parts

REQUIRED = "video_id (string) and audio (struct with a binary 'bytes' field)"


def schema_problem(schema: Any) -> str | None:
    """Why a parquet schema is not the mirror's (None when it fits)."""
    import pyarrow as pa

    names = schema.names
    if "video_id" not in names or "audio" not in names:
        missing = [c for c in ("video_id", "audio") if c not in names]
        return f"missing column(s) {', '.join(missing)}; expected {REQUIRED}"
    vid = schema.field("video_id").type
    if not (pa.types.is_string(vid) or pa.types.is_large_string(vid)):
        return f"column video_id is {vid}, expected string"
    audio = schema.field("audio").type
    if not pa.types.is_struct(audio) or audio.get_field_index("bytes") < 0:
        return f"column audio is {audio}, expected a struct with a 'bytes' field"
    b = audio.field("bytes").type
    if not (pa.types.is_binary(b) or pa.types.is_large_binary(b)):
        return f"audio.bytes is {b}, expected binary"
    return None


class HfParquetOrigin(IndexedOrigin):
    """Parquet files of the Hugging Face mirror (see the module docstring)."""

    suffixes = (".parquet",)

    def __init__(self, fs: OriginFS, info: OriginInfo, *, class_mids: Sequence[str] | None = None) -> None:
        super().__init__(fs, info, class_mids=class_mids)
        self._local = threading.local()
        self.bytes_read = 0  # bytes read for audio (pages, or row groups where pages cannot serve)
        self._lock = threading.Lock()
        self._chunks: dict[str, Any] = {}

    def _index(self) -> list[OriginClip]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        out: list[OriginClip] = []
        for rel in self.files():
            try:
                with self.fs.open(rel) as fh:
                    pf = pq.ParquetFile(fh)
                    problem = schema_problem(pf.schema_arrow)
                    if problem is not None:
                        self.report.rejected.append((rel, problem))
                        continue
                    source = list_of_parts(rel.split("/")[:-1])
                    for rg in range(pf.num_row_groups):
                        ids = pf.read_row_group(rg, columns=["video_id"]).column(0).to_pylist()
                        for i, ytid in enumerate(ids):
                            if not isinstance(ytid, str) or not is_ytid(ytid):
                                self.report.unparseable.append(f"{rel}[row group {rg}, row {i}]")
                                continue
                            out.append(OriginClip(ytid=ytid, source=source, start_s=None, locator=(rel, rg, i)))
            except (OSError, pa.ArrowException) as err:
                self.report.rejected.append((rel, f"not a readable parquet file: {err}"))
        return out

    def _file(self, rel: str) -> Any:
        """This thread's ``ParquetFile`` of ``rel`` (pyarrow reads need a file object of their own)."""
        import pyarrow.parquet as pq

        cache: dict[str, tuple[Any, Any]] = self._local.__dict__.setdefault("files", {})
        if rel not in cache:
            fh = self.fs.open(rel)
            cache[rel] = (fh, pq.ParquetFile(fh))
        return cache[rel]

    def _chunk(self, rel: str) -> Any:
        """The shared page reader of ``audio.bytes`` in ``rel`` (its page walks are cached)."""
        from audioset_fewshot.download.origins.parquet_pages import ChunkReader

        with self._lock:
            reader = self._chunks.get(rel)
            if reader is None:
                reader = ChunkReader(self.fs.open(rel, buffered=False), self._file(rel)[1].metadata, "audio.bytes")
                self._chunks[rel] = reader
            return reader

    def labels(self, clip: OriginClip) -> tuple[str, ...] | None:
        import pyarrow as pa

        rel, rg, row = clip.locator
        pf = self._file(str(rel))[1]
        if "labels" not in pf.schema_arrow.names:
            return None
        try:
            value = pf.read_row_group(int(rg), columns=["labels"]).column(0)[int(row)].as_py()
        except pa.ArrowException:
            return None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(sorted(value))
        return None

    def read(self, clip: OriginClip) -> OriginAudio:
        import pyarrow as pa

        from audioset_fewshot.download.origins.parquet_pages import read_binary_values

        rel, rg, row = clip.locator
        try:
            fh, pf = self._file(str(rel))
            values, nbytes = read_binary_values(fh, pf.metadata, row_group=int(rg),
                                                rows=[int(row)], column_path="audio.bytes", chunk=self._chunk(str(rel)))  # fmt: skip
        except (OSError, pa.ArrowException, ValueError) as err:
            raise OriginError(f"origin {self.info.name}: cannot read row {row} of row group {rg} of {rel}: {err}") from err
        with self._lock:
            self.bytes_read += nbytes
        data = values[int(row)]
        if data is None:
            raise OriginError(f"origin {self.info.name}: row {row} of row group {rg} of {rel} has no audio bytes")
        return OriginAudio(codec="flac", data=data)

    def close(self) -> None:
        for fh, _ in self._local.__dict__.get("files", {}).values():
            fh.close()
        self._local.__dict__.get("files", {}).clear()
        with self._lock:
            for reader in self._chunks.values():
                reader.fh.close()
            self._chunks.clear()
