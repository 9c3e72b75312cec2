"""Read a few binary values of a parquet column chunk.

:func:`read_binary_values` returns the values of ``rows`` of one row group's
column (``audio.bytes``) and the number of bytes it read from the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO, Any


def _chunk_bytes(metadata: Any, row_group: int, column_path: str) -> int:
    rg = metadata.row_group(row_group)
    for j in range(rg.num_columns):
        col = rg.column(j)
        if col.path_in_schema == column_path:
            return int(col.total_compressed_size)
    raise ValueError(f"no column {column_path!r} in row group {row_group}")


def read_row_group_values(fh: IO[bytes], metadata: Any, *, row_group: int, rows: Sequence[int], column_path: str) -> tuple[dict[int, bytes | None], int]:
    """The fallback: decode the whole column chunk of the row group with pyarrow."""
    import pyarrow.parquet as pq

    top, _, leaf = column_path.partition(".")
    pf = pq.ParquetFile(fh, metadata=metadata)
    col = pf.read_row_group(row_group, columns=[top]).column(top).combine_chunks()
    if leaf:
        col = col.field(leaf)
    out: dict[int, bytes | None] = {}
    for r in rows:
        value = col[r].as_py()
        out[r] = None if value is None else bytes(value)
    return out, _chunk_bytes(metadata, row_group, column_path)


def read_binary_values(fh: IO[bytes], metadata: Any, *, row_group: int, rows: Sequence[int], column_path: str) -> tuple[dict[int, bytes | None], int]:
    """``({row: value}, bytes read)`` for ``rows`` of one row group."""
    return read_row_group_values(fh, metadata, row_group=row_group, rows=rows, column_path=column_path)
