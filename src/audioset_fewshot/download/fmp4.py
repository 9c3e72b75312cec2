"""Find a time in a fragmented MP4 that has no index, with a few bounded range reads.

A fragmented m4a with a ``sidx`` (YouTube's DASH audio) or a progressive one lets
ffmpeg seek with one or two range requests.  Fragments *without* an index (no
``sidx``, no ``mfra``) do not: ffmpeg's mov demuxer walks every ``moof`` from the
start, reading the whole file for a segment late in it.  :func:`locate` instead
bisects over byte offsets: it reads a small window at an offset, finds the next
``moof`` box there (checked: its ``mfhd``, a ``traf`` with a ``tfdt``, an ``mdat``
right after it) and its start time (``tfdt``, in the ``mdhd`` timescale of the
``moov``), and narrows on the fragment that holds the wanted time.  The init segment
(``ftyp`` + ``moov``) followed by whole fragments from there is itself a valid
fragmented MP4, which the caller decodes locally.

Everything is bounded (reads, bytes per read, total bytes); any surprise in the
structure returns ``None`` (the caller then reads the file as before: correct, only
wasteful).  Boxes are read as ISO/IEC 14496-12 lays them out: a 32-bit big-endian size
(1: a 64-bit size follows the type; 0: to the end of the file), a 4-character type.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

PROBE_BYTES = 4 * 1024  # the first read: ftyp + an empty moov (~1 KiB) and what follows it
HEAD_BYTES = 64 * 1024  # the first reads: ftyp + moov and the first fragments
MIN_WINDOW = 32 * 1024  # a bisection read; at least two fragments' worth (see locate)
MAX_WINDOW = 1024 * 1024
HEADER_SLACK = 8 * 1024  # read past a window so a moof that starts in it is whole
SEGMENT_CHUNK = 256 * 1024  # the fragments of the segment are read in requests this big
MAX_READS = 32
MAX_MOOF_BYTES = 1024 * 1024

# read(first, last) -> the bytes first..last (inclusive, as in a Range header), fewer at the end of the file
Reader = Callable[[int, int], bytes]


class LayoutError(ValueError):
    """The bytes are not the fragmented MP4 this module reads (the caller falls back)."""


@dataclass(frozen=True)
class Init:
    """The init segment: ``size`` bytes (``ftyp`` + ``moov``), the track's timescale (ticks/s)."""

    size: int
    timescale: int


@dataclass(frozen=True)
class Fragment:
    """One ``moof`` + ``mdat``: where it starts, how long it is, its start time in ticks."""

    offset: int
    size: int
    time: int

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True)
class Located:
    """The bytes to decode: the init segment and whole fragments from ``first`` on, whose
    first sample is at ``start_s`` of the source (its ``tfdt`` less the first fragment's:
    the source's own start, as a whole-file decode counts it)."""

    data: bytes
    first: Fragment
    start_s: float
    reads: int
    bytes_read: int


def _boxes(buf: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int, int]]:
    """(type, offset, header length, size) of each box in ``buf[start:end]``; a box that
    does not fit, or a size that makes no sense, ends the walk with a LayoutError."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", buf, pos)
        head = 8
        if size == 1:
            if pos + 16 > end:
                raise LayoutError("a 64-bit box size past the bytes read")
            size = struct.unpack_from(">Q", buf, pos + 8)[0]
            head = 16
        if size < head or pos + size > end:
            raise LayoutError(f"box {kind!r} at {pos} of size {size} does not fit")
        yield kind, pos, head, size
        pos += size


def _child(buf: bytes, box_off: int, head: int, size: int, kind: bytes) -> tuple[int, int, int]:
    for k, off, h, s in _boxes(buf, box_off + head, box_off + size):
        if k == kind:
            return off, h, s
    raise LayoutError(f"no {kind!r} box")


def parse_init(head: bytes) -> Init | None:
    """The init segment of a fragmented MP4 *without an index*, from its first bytes.

    ``None``: not that layout (a ``sidx``, no ``mvex`` in the ``moov``, a ``moov`` that does
    not fit in ``head``: a file ffmpeg seeks in by itself), or ``head`` ends before the
    first ``moof``.  Raises LayoutError when the bytes are not an MP4 at all."""
    if head[4:8] != b"ftyp":
        raise LayoutError("no ftyp box at the start")
    pos = 0
    moov: tuple[int, int, int] | None = None
    while pos + 8 <= len(head):
        size, kind = struct.unpack_from(">I4s", head, pos)
        if kind == b"sidx" or (kind == b"moov" and size > len(head) - pos):
            return None  # indexed, or a moov too big to be an empty one: ffmpeg seeks by itself
        if kind == b"moof":
            break
        if size < 8 or kind == b"mdat":
            return None
        if kind == b"moov":
            moov = (pos, 8, size)
        pos += size
    else:
        return None
    if moov is None:
        return None
    try:
        _child(head, *moov, b"mvex")
    except LayoutError:
        return None
    trak = _child(head, *moov, b"trak")
    mdia = _child(head, *trak, b"mdia")
    off, h, _ = _child(head, *mdia, b"mdhd")
    version = head[off + h]
    timescale = struct.unpack_from(">I", head, off + h + (20 if version == 1 else 12))[0]
    if timescale <= 0:
        raise LayoutError("mdhd timescale is zero")
    return Init(size=pos, timescale=int(timescale))


def _fragment_at(buf: bytes, i: int, base: int) -> Fragment:
    """The fragment whose ``moof`` starts at ``buf[i]`` (``base`` + i in the file)."""
    size, kind = struct.unpack_from(">I4s", buf, i)
    if kind != b"moof" or not 24 < size <= MAX_MOOF_BYTES or i + size + 8 > len(buf):
        raise LayoutError(f"no whole moof at {base + i}")
    mfhd_size, mfhd = struct.unpack_from(">I4s", buf, i + 8)
    if mfhd != b"mfhd" or mfhd_size != 16:
        raise LayoutError(f"moof at {base + i} does not start with an mfhd")
    traf = _child(buf, i, 8, size, b"traf")
    off, h, s = _child(buf, *traf, b"tfdt")
    version = buf[off + h]
    time = struct.unpack_from(">Q" if version == 1 else ">I", buf, off + h + 4)[0]
    mdat_size, mdat = struct.unpack_from(">I4s", buf, i + size)
    if mdat != b"mdat":
        raise LayoutError(f"no mdat after the moof at {base + i}")
    if mdat_size == 1:
        if i + size + 16 > len(buf):
            raise LayoutError(f"the mdat after the moof at {base + i} is cut")
        mdat_size = struct.unpack_from(">Q", buf, i + size + 8)[0]
    if mdat_size < 8:
        raise LayoutError(f"mdat of size {mdat_size} after the moof at {base + i}")
    return Fragment(offset=base + i, size=size + int(mdat_size), time=int(time))


def fragments_in(buf: bytes, base: int, *, limit: int | None = None) -> list[Fragment]:
    """The fragments whose ``moof`` starts in ``buf[:limit]`` (``buf`` is the file from
    ``base``): the first one found by its checked structure, then the chain after it."""
    limit = len(buf) if limit is None else limit
    i = buf.find(b"moof", 4) - 4
    while 0 <= i < limit:
        try:
            frag = _fragment_at(buf, i, base)
        except (LayoutError, struct.error):
            i = buf.find(b"moof", i + 8) - 4
            continue
        chain = [frag]
        while chain[-1].end - base < limit and chain[-1].end - base + 8 <= len(buf):
            try:
                nxt = _fragment_at(buf, chain[-1].end - base, base)
            except struct.error as err:
                raise LayoutError(f"a moof cut at {chain[-1].end}") from err
            if nxt.time <= chain[-1].time:
                raise LayoutError(f"fragment times go back at {nxt.offset}")
            chain.append(nxt)
        return chain
    return []


def locate(read: Reader, *, file_size: int, head: bytes, init: Init, start_s: float, end_s: float, max_bytes: int) -> Located:
    """Read the init segment and the fragments covering ``[start_s, end_s)`` (seconds).

    ``head``: the file's first bytes (already read); ``read``: a ranged reader of the same
    file.  The result starts with the last fragment that begins at or before ``start_s``
    and ends with the first that begins at or after ``end_s`` (or the file's end).
    Raises LayoutError on any surprise, or when more than :data:`MAX_READS` reads or
    ``max_bytes`` would be needed."""
    reads, total = 0, len(head)

    def fetch(first: int, last: int) -> bytes:
        nonlocal reads, total
        reads += 1
        total += last - first + 1
        if reads > MAX_READS or total > max_bytes:
            raise LayoutError(f"more than {MAX_READS} reads or {max_bytes} bytes to find the segment")
        return read(first, last)

    frags = fragments_in(head, 0)
    if not frags or frags[0].offset != init.size:
        raise LayoutError("the first fragment does not follow the moov")
    origin = frags[0].time  # the source's time 0
    target = origin + int(start_s * init.timescale)
    # lo: a fragment at or before the target; every moof at or after `hi` is after it
    lo = max((f for f in frags if f.time <= target), key=lambda f: f.time, default=frags[0])
    hi = file_size if all(f.time <= target for f in frags) else next(f.offset for f in frags if f.time > target)
    window = max(MIN_WINDOW, min(MAX_WINDOW, 2 * frags[0].size))
    # bytes per tick, from the fragments of the first read; then from the narrowed span
    rate = (frags[-1].offset - frags[0].offset) / (frags[-1].time - frags[0].time) if len(frags) > 1 else frags[0].size / init.timescale
    point: tuple[int, int] | None = None  # (offset, time) of a moof after the target
    held = (head, 0)  # the read that holds lo, and where it starts
    halved = True
    while lo.end < hi:
        gap, behind = hi - lo.end, target - lo.time
        if gap <= window:
            mid = lo.end
        elif halved:  # interpolation (AAC is near constant rate); a turn that did not halve
            if point is not None:  # the span is followed by a bisection, so an uneven rate still narrows
                rate = (point[0] - lo.offset) / max(1, point[1] - lo.time)
            mid = min(max(lo.end, int(lo.offset + (target - lo.time) * rate) - window // 4), hi - window)
        else:
            mid = lo.end + gap // 2
        buf = fetch(mid, min(file_size, mid + window + HEADER_SLACK) - 1)
        found = fragments_in(buf, mid, limit=window)
        if not found:
            raise LayoutError(f"no moof in the {window} bytes at {mid}")
        if found[0].time <= lo.time:
            raise LayoutError(f"fragment times go back at {found[0].offset}")
        before = [f for f in found if f.time <= target]
        after = [f for f in found if f.time > target]
        if before:
            lo, held = before[-1], (buf, mid)
        if after:
            point = (after[0].offset, after[0].time)
            hi = min(hi, after[0].offset if before else mid)
        halved = hi - lo.end <= gap // 2 or target - lo.time <= behind // 2
    # the segment: lo and the whole fragments after it, until one starts at or after end_s
    stop = origin + int(end_s * init.timescale)
    # the first request asks for what the span should take at the rate of the first fragments
    # (and one fragment more, for the one after the end); a short guess reads on in chunks
    guess = int((stop - lo.time) * rate * 1.2) + 2 * lo.size + HEADER_SLACK
    chunk = max(MIN_WINDOW, min(guess, 4 * SEGMENT_CHUNK))
    data = bytearray(held[0][lo.offset - held[1] :])  # what a read holds already
    cur = lo.offset  # the next fragment to check
    while True:
        while cur < file_size:
            rel = cur - lo.offset
            if len(data) - rel < min(HEADER_SLACK, file_size - cur):
                break  # its header may not be read yet
            frag = _fragment_at(bytes(data[rel : rel + HEADER_SLACK]), 0, cur)
            if cur == lo.offset and frag != lo:
                raise LayoutError(f"the fragment at {cur} changed between reads")
            if frag.time >= stop and cur != lo.offset:
                return Located(head[: init.size] + bytes(data[:rel]), lo, (lo.time - origin) / init.timescale, reads, total)
            if frag.end > file_size:
                raise LayoutError(f"the fragment at {cur} runs past the end of the file")
            cur = frag.end
        if cur >= file_size:  # the source ends within the segment
            return Located(head[: init.size] + bytes(data[: cur - lo.offset]), lo, (lo.time - origin) / init.timescale, reads, total)
        first = lo.offset + len(data)
        got = fetch(first, min(file_size, first + chunk) - 1)
        chunk = SEGMENT_CHUNK
        if not got:
            raise LayoutError(f"no bytes at {first} of a {file_size}-byte file")
        data += got
