"""Read a few values of a parquet BYTE_ARRAY column without reading its row group.

Hugging Face's ``datasets`` writes audio parquet with 100 rows per row group,
pyarrow's default page size and no page index.  With pyarrow's defaults the
100 FLAC files of a row group (~140 MB at 48 kHz) land in *one* dictionary
page (or, after a dictionary fallback, in a few large PLAIN pages), snappy
compressed; reading the row group to get one clip costs ~100x the clip.

:func:`read_binary_values` reads only what holds the wanted rows:

1. the column chunk's page headers are walked with small range reads (Thrift
   compact protocol, :class:`_Thrift`), giving each page's offset, size,
   encoding and row span;
2. the data page holding a row is read (for dictionary encoding it holds only
   the small indices) and its definition levels and indices decoded
   (RLE / bit-packed hybrid);
3. the wanted value is located inside its (dictionary or PLAIN) page by
   walking the 4-byte length prefixes of the PLAIN encoding.  An uncompressed
   page is read by offset.  A snappy page is walked tag by tag
   (:class:`_SnappyPage`): only the tags and the literal bytes that make up the
   wanted value (and the length prefixes) are read; a copy is resolved from the
   bytes it refers to.

Anything else (another codec, an encoding other than PLAIN / dictionary, a
repeated column, a malformed header) falls back to decoding the row group's
column with pyarrow.  The walk of a row group's pages is cached by the caller
(:class:`ChunkReader`), so many clips of one row group share it.
"""

from __future__ import annotations

import logging
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

log = logging.getLogger(__name__)

HEADER_READ = 256  # first read of a page header; most are ~30-60 bytes
TAG_READ = 64  # bytes read at a snappy tag (the tag, and a short literal after it)
MAX_COPY_DEPTH = 200

# parquet enums
_DATA_PAGE, _INDEX_PAGE, _DICTIONARY_PAGE, _DATA_PAGE_V2 = 0, 1, 2, 3
_PLAIN, _PLAIN_DICTIONARY, _RLE, _RLE_DICTIONARY = 0, 2, 3, 8


class Unsupported(Exception):
    """Internal: this chunk needs the row-group fallback (with the reason)."""


def read_varint(next_byte: Callable[[], int], *, max_shift: int, what: str) -> int:
    """An unsigned LEB128 integer (Thrift's varints and snappy's length), read a byte at a time."""
    shift = result = 0
    while True:
        b = next_byte()
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result
        shift += 7
        if shift > max_shift:
            raise Unsupported(f"malformed {what}")


class CountingReader:
    """Range reads on a seekable file, counting the bytes read."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh = fh
        self.bytes_read = 0
        self.reads = 0
        self._lock = threading.Lock()

    def pread(self, offset: int, size: int) -> bytes:
        with self._lock:
            self.fh.seek(offset)
            data = self.fh.read(size)
        self.bytes_read += len(data)
        self.reads += 1
        return data


# ---------------------------------------------------------------------------------------
# Thrift compact protocol (just what PageHeader needs)


class _Thrift:
    """A Thrift compact-protocol reader over range reads starting at ``offset``."""

    def __init__(self, reader: CountingReader, offset: int, limit: int) -> None:
        self.reader, self.start, self.limit = reader, offset, limit
        self.buf = reader.pread(offset, min(HEADER_READ, limit - offset))
        self.pos = 0

    def _need(self, n: int) -> None:
        while self.pos + n > len(self.buf):
            if self.start + len(self.buf) >= self.limit:
                raise Unsupported("page header runs past the column chunk")
            more = self.reader.pread(self.start + len(self.buf), min(max(n, len(self.buf)), self.limit - self.start - len(self.buf)))
            if not more:
                raise Unsupported("file ends inside a page header")
            self.buf += more

    def byte(self) -> int:
        self._need(1)
        b = self.buf[self.pos]
        self.pos += 1
        return b

    def varint(self) -> int:
        return read_varint(self.byte, max_shift=70, what="varint in a page header")

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def skip_bytes(self, n: int) -> None:
        self._need(n)
        self.pos += n

    def value(self, ftype: int) -> Any:
        if ftype in (1, 2):
            return ftype == 1
        if ftype == 3:
            return self.byte()
        if ftype in (4, 5, 6):
            return self.zigzag()
        if ftype == 7:
            self.skip_bytes(8)
            return None
        if ftype == 8:
            n = self.varint()
            self.skip_bytes(n)  # statistics min/max: not needed
            return None
        if ftype in (9, 10):
            head = self.byte()
            size, etype = head >> 4, head & 0x0F
            if size == 15:
                size = self.varint()
            return [self.value(etype) if etype not in (1, 2) else bool(self.byte()) for _ in range(size)]
        if ftype == 11:
            size = self.varint()
            if size:
                kv = self.byte()
                for _ in range(size):
                    self.value(kv >> 4)
                    self.value(kv & 0x0F)
            return None
        if ftype == 12:
            return self.struct()
        raise Unsupported(f"unknown thrift type {ftype} in a page header")

    def struct(self) -> dict[int, Any]:
        out: dict[int, Any] = {}
        last = 0
        while True:
            head = self.byte()
            if head == 0:
                return out
            delta, ftype = head >> 4, head & 0x0F
            fid = last + delta if delta else self.zigzag()
            out[fid] = self.value(ftype)
            last = fid


@dataclass(frozen=True)
class _Page:
    kind: int
    data_offset: int  # first byte after the header
    compressed_size: int
    uncompressed_size: int
    num_values: int
    encoding: int
    first_row: int = 0
    # data page v2 only
    def_len: int = 0
    rep_len: int = 0
    v2_compressed: bool = True


def _read_pages(reader: CountingReader, start: int, end: int) -> list[_Page]:
    """Walk the page headers of a column chunk ``[start, end)``."""
    pages: list[_Page] = []
    pos = start
    row = 0
    while pos < end:
        t = _Thrift(reader, pos, end)
        h = t.struct()
        kind, usize, csize = h.get(1), h.get(2), h.get(3)
        if not isinstance(kind, int) or not isinstance(usize, int) or not isinstance(csize, int) or csize < 0 or usize < 0:
            raise Unsupported(f"malformed page header at offset {pos}")
        data = pos + t.pos
        if kind == _DICTIONARY_PAGE:
            d = h.get(7) or {}
            pages.append(_Page(kind, data, csize, usize, int(d.get(1, 0)), int(d.get(2, _PLAIN))))
        elif kind == _DATA_PAGE:
            d = h.get(5) or {}
            n = int(d.get(1, 0))
            pages.append(_Page(kind, data, csize, usize, n, int(d.get(2, _PLAIN)), first_row=row))
            row += n
        elif kind == _DATA_PAGE_V2:
            d = h.get(8) or {}
            n = int(d.get(3, d.get(1, 0)))
            pages.append(_Page(kind, data, csize, usize, n, int(d.get(4, _PLAIN)), first_row=row, def_len=int(d.get(5, 0)),
                               rep_len=int(d.get(6, 0)), v2_compressed=bool(d.get(7, True))))  # fmt: skip
            row += n
        pos = data + csize
    return pages


# ---------------------------------------------------------------------------------------
# page bodies: random access into the uncompressed bytes


class _RawPage:
    """An uncompressed page body: bytes by offset."""

    def __init__(self, reader: CountingReader, offset: int, size: int) -> None:
        self.reader, self.offset, self.size = reader, offset, size

    def get(self, start: int, n: int) -> bytes:
        if start < 0 or start + n > self.size:
            raise Unsupported("a value runs past its page")
        return self.reader.pread(self.offset + start, n)


class _MemPage:
    """A page body already in memory (decompressed whole)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)

    def get(self, start: int, n: int) -> bytes:
        if start < 0 or start + n > self.size:
            raise Unsupported("a value runs past its page")
        return self.data[start : start + n]


@dataclass
class _Seg:
    u_start: int
    length: int
    literal_at: int  # file offset of a literal's bytes, or -1 for a copy
    copy_offset: int = 0


@dataclass
class _SnappyPage:
    """A snappy page body read lazily: tags are walked on demand with small reads, and only
    the bytes asked for are read (literals) or resolved (copies)."""

    reader: CountingReader
    offset: int  # file offset of the compressed body
    csize: int
    size: int = 0
    segs: list[_Seg] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    c_pos: int = 0
    u_pos: int = 0
    _buf: bytes = b""
    _buf_at: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.size = self._varint()

    def _byte(self) -> int:
        rel = self.c_pos - self._buf_at
        if rel < 0 or rel >= len(self._buf):
            if self.c_pos >= self.csize:
                raise Unsupported("snappy stream ends early")
            self._buf_at = self.c_pos
            self._buf = self.reader.pread(self.offset + self.c_pos, min(TAG_READ, self.csize - self.c_pos))
            rel = 0
        self.c_pos += 1
        return self._buf[rel]

    def _varint(self) -> int:
        return read_varint(self._byte, max_shift=35, what="snappy length")

    def _walk_to(self, target: int) -> None:
        while self.u_pos < target:
            if self.c_pos >= self.csize:
                raise Unsupported("snappy stream ends before the wanted bytes")
            tag = self._byte()
            kind = tag & 3
            if kind == 0:
                n = tag >> 2
                if n >= 60:
                    k = n - 59
                    n = int.from_bytes(bytes(self._byte() for _ in range(k)), "little")
                n += 1
                seg = _Seg(self.u_pos, n, self.offset + self.c_pos)
                self.c_pos += n  # skip the literal: read only if asked for
            elif kind == 1:
                n = 4 + ((tag >> 2) & 7)
                seg = _Seg(self.u_pos, n, -1, ((tag >> 5) << 8) | self._byte())
            else:
                n = (tag >> 2) + 1
                width = 2 if kind == 2 else 4
                seg = _Seg(self.u_pos, n, -1, int.from_bytes(bytes(self._byte() for _ in range(width)), "little"))
            if seg.literal_at < 0 and (seg.copy_offset == 0 or seg.copy_offset > self.u_pos):
                raise Unsupported("malformed snappy copy")
            self.segs.append(seg)
            self.starts.append(seg.u_start)
            self.u_pos += n

    def _resolve(self, a: int, b: int, depth: int) -> bytes:
        import bisect

        if depth > MAX_COPY_DEPTH:
            raise Unsupported("snappy copies nest too deeply")
        out = bytearray()
        p = a
        while p < b:
            i = bisect.bisect_right(self.starts, p) - 1
            seg = self.segs[i]
            take = min(b, seg.u_start + seg.length) - p
            if seg.literal_at >= 0:
                out += self.reader.pread(seg.literal_at + (p - seg.u_start), take)
                p += take
            else:
                src0 = seg.u_start - seg.copy_offset
                if seg.copy_offset >= seg.length:  # the source lies wholly before the copy
                    src = src0 + (p - seg.u_start)
                    out += self._resolve(src, src + take, depth + 1)
                else:  # an overlapping copy repeats the copy_offset bytes before it (a run)
                    pattern = self._resolve(src0, seg.u_start, depth + 1)
                    phase = (p - seg.u_start) % seg.copy_offset
                    reps = (phase + take) // seg.copy_offset + 1
                    out += (pattern * reps)[phase : phase + take]
                p += take
        return bytes(out)

    def get(self, start: int, n: int) -> bytes:
        if start < 0 or start + n > self.size:
            raise Unsupported("a value runs past its page")
        with self.lock:
            self._walk_to(start + n)
            return self._resolve(start, start + n, 0)


def _body(reader: CountingReader, page: _Page, codec: str, *, skip: int = 0) -> _RawPage | _SnappyPage | _MemPage:
    """Random access to a page body's uncompressed bytes (``skip``: v2 levels, stored raw)."""
    offset, csize = page.data_offset + skip, page.compressed_size - skip
    if codec == "UNCOMPRESSED" or (page.kind == _DATA_PAGE_V2 and not page.v2_compressed):
        return _RawPage(reader, offset, csize)
    if codec == "SNAPPY":
        return _SnappyPage(reader, offset, csize)
    if codec in ("ZSTD", "GZIP", "LZ4_RAW", "BROTLI"):
        import pyarrow as pa

        raw = reader.pread(offset, csize)
        name = {"LZ4_RAW": "lz4_raw"}.get(codec, codec.lower())
        return _MemPage(pa.decompress(raw, decompressed_size=page.uncompressed_size - skip, codec=name).to_pybytes())
    raise Unsupported(f"codec {codec}")


# ---------------------------------------------------------------------------------------
# levels and indices


def _rle_hybrid(data: bytes, bit_width: int, count: int) -> list[int]:
    """Decode ``count`` values of the RLE / bit-packed hybrid encoding."""
    out: list[int] = []
    pos = 0
    byte_width = (bit_width + 7) // 8
    while len(out) < count and pos < len(data):
        shift = header = 0
        while True:
            b = data[pos]
            pos += 1
            header |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
        if header & 1:  # bit-packed groups of 8
            n = (header >> 1) * 8
            nbytes = (header >> 1) * bit_width
            chunk = int.from_bytes(data[pos : pos + nbytes], "little")
            pos += nbytes
            mask = (1 << bit_width) - 1 if bit_width else 0
            out += [(chunk >> (k * bit_width)) & mask for k in range(n)]
        else:
            n = header >> 1
            value = int.from_bytes(data[pos : pos + byte_width], "little") if byte_width else 0
            pos += byte_width
            out += [value] * n
    if len(out) < count:
        raise Unsupported("RLE data ends early")
    return out[:count]


def _plain_value(body: Any, start: int, k: int, cache: dict[int, int]) -> tuple[int, int]:
    """Offset and length of the ``k``-th PLAIN BYTE_ARRAY value starting at ``start``
    (``cache``: known value offsets of this page, filled as the walk goes)."""
    known = max((j for j in cache if j <= k), default=None)
    j, off = (0, start) if known is None else (known, cache[known])
    while True:
        (length,) = struct.unpack("<I", body.get(off, 4))
        cache[j] = off
        if j == k:
            return off + 4, length
        off += 4 + length
        j += 1


# ---------------------------------------------------------------------------------------
# the chunk reader


@dataclass
class _ChunkState:
    pages: list[_Page]
    dict_body: Any = None
    dict_cache: dict[int, int] = field(default_factory=dict)
    bodies: dict[int, Any] = field(default_factory=dict)
    offsets: dict[int, dict[int, int]] = field(default_factory=dict)
    levels: dict[int, tuple[list[int], list[int] | None, int]] = field(default_factory=dict)


class ChunkReader:
    """Selective reads of one BYTE_ARRAY column across a parquet file's row groups, with the
    page walk of recently used row groups cached (thread-safe)."""

    def __init__(self, fh: IO[bytes], metadata: Any, column_path: str, *, cache_row_groups: int = 16) -> None:
        self.reader = CountingReader(fh)
        self.fh = fh
        self.metadata = metadata
        self.column_path = column_path
        self.fallbacks = 0
        self._states: OrderedDict[int, _ChunkState] = OrderedDict()
        self._cache = cache_row_groups
        self._lock = threading.Lock()
        self.col_index = -1
        schema = metadata.schema
        for j in range(metadata.num_columns):
            if schema.column(j).path == column_path:
                self.col_index = j
        if self.col_index < 0:
            raise ValueError(f"no column {column_path!r}")
        col = schema.column(self.col_index)
        self.max_def = int(col.max_definition_level)
        self.max_rep = int(col.max_repetition_level)
        self.physical = str(col.physical_type)

    @property
    def bytes_read(self) -> int:
        return self.reader.bytes_read

    def _state(self, rg: int) -> _ChunkState:
        with self._lock:
            st = self._states.get(rg)
            if st is not None:
                self._states.move_to_end(rg)
                return st
        col = self.metadata.row_group(rg).column(self.col_index)
        start = int(col.data_page_offset)
        if col.has_dictionary_page and col.dictionary_page_offset is not None and 0 < int(col.dictionary_page_offset) < start:
            start = int(col.dictionary_page_offset)
        pages = _read_pages(self.reader, start, start + int(col.total_compressed_size))
        st = _ChunkState(pages)
        with self._lock:
            self._states[rg] = st
            while len(self._states) > self._cache:
                self._states.popitem(last=False)
        return st

    def _levels(self, st: _ChunkState, i: int, page: _Page, codec: str) -> tuple[list[int], list[int] | None, int]:
        """(definition levels, dictionary indices or None, offset of the values in the body)."""
        cached = st.levels.get(i)
        if cached is not None:
            return cached
        bit_width = self.max_def.bit_length()
        if page.kind == _DATA_PAGE_V2:
            raw_levels = self.reader.pread(page.data_offset, page.rep_len + page.def_len)
            defs = _rle_hybrid(raw_levels[page.rep_len :], bit_width, page.num_values) if self.max_def else [0] * page.num_values
            body = _body(self.reader, page, codec, skip=page.rep_len + page.def_len)
            values_at = 0
        else:
            body = _body(self.reader, page, codec)
            values_at = 0
            if self.max_def:
                (n,) = struct.unpack("<I", body.get(0, 4))
                defs = _rle_hybrid(body.get(4, n), bit_width, page.num_values)
                values_at = 4 + n
            else:
                defs = [0] * page.num_values
        st.bodies[i] = body
        indices = None
        if page.encoding in (_RLE_DICTIONARY, _PLAIN_DICTIONARY):
            non_null = sum(d == self.max_def for d in defs)
            rest = body.get(values_at, body.size - values_at)
            indices = _rle_hybrid(rest[1:], rest[0], non_null) if non_null else []
        elif page.encoding != _PLAIN:
            raise Unsupported(f"encoding {page.encoding}")
        st.levels[i] = (defs, indices, values_at)
        return st.levels[i]

    def read(self, rg: int, rows: Sequence[int]) -> dict[int, bytes | None]:
        """``{row: value}`` for ``rows`` (0-based within the row group)."""
        if self.max_rep or self.physical != "BYTE_ARRAY":
            raise Unsupported("not a flat BYTE_ARRAY column")
        codec = str(self.metadata.row_group(rg).column(self.col_index).compression)
        st = self._state(rg)
        out: dict[int, bytes | None] = {}
        data_pages = [(i, p) for i, p in enumerate(st.pages) if p.kind in (_DATA_PAGE, _DATA_PAGE_V2)]
        for row in rows:
            hit = next(((i, p) for i, p in data_pages if p.first_row <= row < p.first_row + p.num_values), None)
            if hit is None:
                raise Unsupported(f"row {row} is in no data page")
            i, page = hit
            defs, indices, values_at = self._levels(st, i, page, codec)
            local = row - page.first_row
            if defs[local] != self.max_def:
                out[row] = None
                continue
            k = sum(d == self.max_def for d in defs[:local])
            if indices is not None:
                dpage = next((p for p in st.pages if p.kind == _DICTIONARY_PAGE), None)
                if dpage is None or dpage.encoding not in (_PLAIN, _PLAIN_DICTIONARY):
                    raise Unsupported("dictionary-encoded page without a PLAIN dictionary page")
                if st.dict_body is None:
                    st.dict_body = _body(self.reader, dpage, codec)
                off, n = _plain_value(st.dict_body, 0, indices[k], st.dict_cache)
                out[row] = st.dict_body.get(off, n)
            else:
                body = st.bodies[i]
                off, n = _plain_value(body, values_at, k, st.offsets.setdefault(i, {}))
                out[row] = body.get(off, n)
        return out


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
    rgm = metadata.row_group(row_group)
    size = sum(int(rgm.column(j).total_compressed_size) for j in range(rgm.num_columns) if rgm.column(j).path_in_schema.split(".")[0] == top)
    return out, size


def read_binary_values(
    fh: IO[bytes], metadata: Any, *, row_group: int, rows: Sequence[int], column_path: str, chunk: ChunkReader | None = None
) -> tuple[dict[int, bytes | None], int]:
    """``({row: value}, bytes read)`` for ``rows`` of one row group: the selected pages
    (see the module docstring), else the row group's column through pyarrow."""
    reader = chunk or ChunkReader(fh, metadata, column_path)
    before = reader.bytes_read
    try:
        return reader.read(row_group, rows), reader.bytes_read - before
    except (Unsupported, struct.error, IndexError) as why:
        log.debug("parquet row group %d: reading the whole column chunk (%s)", row_group, why)
        reader.fallbacks += 1
        values, size = read_row_group_values(fh, metadata, row_group=row_group, rows=rows, column_path=column_path)
        return values, reader.bytes_read - before + size
