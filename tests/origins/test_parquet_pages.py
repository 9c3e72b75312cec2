"""Selective reads of parquet pages: the values of a few rows, read with a fraction of the bytes.

Files are written as Hugging Face's ``datasets`` writes audio (pyarrow defaults, 100 rows per
row group, no page index) and in the other shapes pyarrow can give (no dictionary, no
compression, data page v2, small pages, zstd, page index, nulls); every value read must equal
pyarrow's own decoding.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from audioset_fewshot.download.origins.parquet_pages import ChunkReader, read_binary_values

AUDIO_T = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def _flac(i: int, seconds: float = 0.5) -> bytes:
    rng = np.random.default_rng(i)
    n = int(48000 * seconds)
    x = 0.2 * np.sin(2 * np.pi * (200 + 10 * i) * np.arange(n) / 48000)[:, None] + 0.05 * rng.standard_normal((n, 2))
    buf = io.BytesIO()
    sf.write(buf, x, 48000, format="FLAC", subtype="PCM_24")
    return buf.getvalue()


@pytest.fixture(scope="module")
def values() -> list[bytes | None]:
    out: list[bytes | None] = [_flac(i) for i in range(300)]
    return out


def _file(values: list[bytes | None], **kw: Any) -> tuple[io.BytesIO, Any]:
    table = pa.table({
        "video_id": [f"id{i:09d}" for i in range(len(values))],
        "audio": pa.array([None if v is None else {"bytes": v, "path": f"audio/bal_train/{i}.flac"} for i, v in enumerate(values)], AUDIO_T),
    })  # fmt: skip
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=100, **kw)
    buf.seek(0)
    return buf, pq.ParquetFile(buf).metadata


def test_datasets_style_file_reads_one_percent_with_little_more_than_the_clips(values: list[bytes | None]) -> None:
    buf, md = _file(values)
    assert md.num_row_groups == 3 and not md.row_group(0).column(1).has_offset_index
    chunk = ChunkReader(buf, md, "audio.bytes")
    wanted = {0: [41], 1: [3], 2: [99]}  # 1 % of the rows
    read = selected = 0
    for rg, rows in wanted.items():
        got, n = read_binary_values(buf, md, row_group=rg, rows=rows, column_path="audio.bytes", chunk=chunk)
        read += n
        for r in rows:
            assert got[r] == values[rg * 100 + r]
            selected += len(values[rg * 100 + r] or b"")
    row_groups = sum(md.row_group(rg).column(1).total_compressed_size for rg in wanted)
    assert chunk.fallbacks == 0
    assert read <= 1.5 * selected, (read, selected)
    assert row_groups > 30 * read  # the row-group read costs ~100x


@pytest.mark.parametrize(
    "kw",
    [
        {"use_dictionary": False},
        {"compression": "none"},
        {"data_page_version": "2.0"},
        {"data_page_size": 60_000, "use_dictionary": False},
        {"write_page_index": True},
        {"compression": "zstd"},
    ],
    ids=["plain", "uncompressed", "v2", "small-pages", "page-index", "zstd"],
)
def test_every_shape_reads_the_right_values(values: list[bytes | None], kw: dict[str, Any]) -> None:
    vals = list(values[:250])
    vals[7] = None
    vals[120] = b""
    buf, md = _file(vals, **kw)
    chunk = ChunkReader(buf, md, "audio.bytes")
    for rg, rows in ((0, [3, 7, 99, 0]), (1, [20, 0, 50]), (2, [49, 10])):
        got, _ = read_binary_values(buf, md, row_group=rg, rows=rows, column_path="audio.bytes", chunk=chunk)
        for r in rows:
            assert got[r] == vals[rg * 100 + r], (kw, rg, r)
    if kw.get("compression") != "zstd":
        assert chunk.fallbacks == 0


def test_an_encoding_it_does_not_read_falls_back_to_the_row_group(values: list[bytes | None]) -> None:
    buf, md = _file(
        list(values[:100]), use_dictionary=False, column_encoding={"audio.bytes": "DELTA_LENGTH_BYTE_ARRAY", "audio.path": "PLAIN", "video_id": "PLAIN"}
    )
    chunk = ChunkReader(buf, md, "audio.bytes")
    got, n = read_binary_values(buf, md, row_group=0, rows=[5], column_path="audio.bytes", chunk=chunk)
    assert got[5] == values[5] and chunk.fallbacks == 1
    assert n >= md.row_group(0).column(1).total_compressed_size
