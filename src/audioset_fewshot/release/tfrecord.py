"""TFRecord framing, without TensorFlow.

A TFRecord file is a sequence of records, each framed as::

    uint64 length          little-endian
    uint32 masked_crc32c(length bytes)
    byte   data[length]
    uint32 masked_crc32c(data)

with ``masked_crc(x) = ((crc >> 15 | crc << 17) + 0xa282ead8) mod 2**32`` of
the CRC-32C (Castagnoli) of ``x`` (TensorFlow's ``core/lib/hash/crc32c.h``).

:func:`read_records` verifies both CRCs of every record.  A record whose
*payload* CRC does not match is reported (file, record number, byte offset)
and skipped, and reading goes on with the next record: the length was
verified, so the framing is intact.  A length whose CRC does not match, or a
file that ends inside a record, stops the file with :class:`TFRecordError`
naming the file, record and offset: after that nothing can be located.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, NamedTuple

import crc32c as _crc32c

from audioset_fewshot.errors import AudiosetFewshotError

_LEN = struct.Struct("<Q")
_CRC = struct.Struct("<I")
_HEADER = 12  # length + its crc
_MASK_DELTA = 0xA282EAD8
# a record longer than this is not an embedding record: the framing is corrupt
MAX_RECORD_BYTES = 64 << 20


class TFRecordError(AudiosetFewshotError):
    """A TFRecord file that cannot be read on (bad length CRC, truncated, not a TFRecord)."""


def masked_crc(data: bytes | bytearray | memoryview) -> int:
    """TensorFlow's masked CRC-32C of ``data``."""
    crc = _crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame(payload: bytes) -> bytes:
    """One record in TFRecord framing."""
    length = _LEN.pack(len(payload))
    return length + _CRC.pack(masked_crc(length)) + payload + _CRC.pack(masked_crc(payload))


def write_records(fh: BinaryIO, payloads: Iterable[bytes]) -> int:
    """Write ``payloads`` as TFRecords to an open binary file; returns the bytes written."""
    n = 0
    for p in payloads:
        b = frame(p)
        fh.write(b)
        n += len(b)
    return n


class Record(NamedTuple):
    """One record of a file: its number, the byte offset of its frame, and its payload
    (``None`` when the payload CRC did not match: ``corrupt`` then says why).  A named
    tuple, not a dataclass: millions are made, and a tuple is made several times faster."""

    number: int
    offset: int
    payload: memoryview | None
    corrupt: str | None = None


def read_records(data: bytes | bytearray | memoryview, *, name: str = "<bytes>", verify: bool = True) -> Iterator[Record]:
    """Records of a whole TFRecord file held in memory (see the module docstring).

    ``name`` is used in messages.  Yields every record in order; a payload CRC
    mismatch yields a :class:`Record` with ``payload=None`` and ``corrupt`` set.
    """
    view = memoryview(data)
    size = len(view)
    pos = 0
    number = 0
    crc = _crc32c.crc32c  # the masking is inlined below: this loop runs once per record
    unpack_len, unpack_crc = _LEN.unpack_from, _CRC.unpack_from
    while pos < size:
        if size - pos < _HEADER:
            raise TFRecordError(
                f"{name}: truncated at record {number} (byte {pos}): {size - pos} bytes left, a record header needs {_HEADER}; "
                "the file was cut short: download or unpack it again"
            )
        (length,) = unpack_len(view, pos)
        if verify:
            c = crc(view[pos : pos + 8])
            if unpack_crc(view, pos + 8)[0] != ((((c >> 15) | (c << 17)) + _MASK_DELTA) & 0xFFFFFFFF):
                raise TFRecordError(
                    f"{name}: record {number} (byte {pos}): the length field fails its CRC; the rest of the file "
                    "cannot be located (not a TFRecord file, or damaged): download or unpack it again"
                )
        if length > MAX_RECORD_BYTES:
            raise TFRecordError(f"{name}: record {number} (byte {pos}): length {length} is implausible; not a TFRecord file of embeddings")
        end = pos + _HEADER + length + 4
        if end > size:
            raise TFRecordError(
                f"{name}: truncated in record {number} (byte {pos}): it needs {end - pos} bytes, {size - pos} are left; "
                "the file was cut short: download or unpack it again"
            )
        payload = view[pos + _HEADER : end - 4]
        if verify:
            c = crc(payload)
            stored = unpack_crc(view, end - 4)[0]
            if stored != ((((c >> 15) | (c << 17)) + _MASK_DELTA) & 0xFFFFFFFF):
                yield Record(
                    number,
                    pos,
                    None,
                    f"{name}: record {number} (byte {pos}): payload CRC mismatch (stored {stored:#010x}, "
                    f"computed {masked_crc(payload):#010x}); the record is skipped",
                )
                pos = end
                number += 1
                continue
        yield Record(number, pos, payload)
        pos = end
        number += 1


def read_file(path: Path | str, *, verify: bool = True) -> Iterator[Record]:
    """Records of a TFRecord file on disk (read whole: the release's files are small)."""
    p = Path(path)
    return read_records(p.read_bytes(), name=str(p), verify=verify)


__all__ = ["MAX_RECORD_BYTES", "Record", "TFRecordError", "frame", "masked_crc", "read_file", "read_records", "write_records"]
