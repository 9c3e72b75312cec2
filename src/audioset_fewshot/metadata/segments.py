"""Streaming parser of AudioSet segment lists and the class -> candidate-rows index.

The official layout (three comment lines, then one row per segment)::

    # Segments csv created Sun Mar  5 10:54:31 2017
    # num_ytids=22160, num_segs=22160, num_unique_labels=527, num_positive_labels=52874
    # YTID, start_seconds, end_seconds, positive_labels
    --PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088"

YouTube IDs may begin with ``-`` and contain ``_``; the label list is one
double-quoted field.  The file is read in big blocks and each block is parsed
with vectorised numpy work (no Python object per row): lines that match the
official layout exactly take that fast path, every other line goes through a
per-line parser that either accepts it (extra spaces, CRLF) or raises
:class:`~audioset_fewshot.errors.ParseError` naming the file, the line number
and what is wrong.  Memory stays bounded by the block size plus the result
(about 70 bytes per segment).

Header counts: ``num_segs`` must equal the rows read (else ParseError: the file
is truncated or edited).  ``num_positive_labels``, ``num_unique_labels`` and
``num_ytids`` may differ slightly (known for the shared copies, where a few long
label lists were cut); both values are kept (``headers`` as declared,
``observed`` as read) and a warning is logged.  The declared header values are
the denominators of coverage statistics.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from audioset_fewshot.config import SOURCES
from audioset_fewshot.errors import MetadataError, ParseError, UnknownNameError, UsageError, closest
from audioset_fewshot.validate import is_mid, is_youtube_id, valid_mid

log = logging.getLogger(__name__)

BLOCK_BYTES = 8 << 20
_MAX_HEADER_LINES = 16
_MAX_LINE_BYTES = 1 << 16
_TIME_MAX_CHARS = 20  # longer time fields take the per-line path
_MID_MAX_BYTES = 16  # longer labels take the per-line path (then fail: MIDs are <= 13 chars)

_COUNTS_RE = re.compile(rb"num_ytids\s*=\s*(\d+)\s*,\s*num_segs\s*=\s*(\d+)\s*,\s*num_unique_labels\s*=\s*(\d+)\s*,\s*num_positive_labels\s*=\s*(\d+)")
_CREATED_RE = re.compile(rb"Segments csv created\s*(.*)")
_NUMBER_RE = re.compile(r"[+]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")

_ID_LUT = np.zeros(256, dtype=bool)
for _c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-":
    _ID_LUT[_c] = True
_MIDCHAR_LUT = _ID_LUT.copy()
_MIDCHAR_LUT[ord("-")] = False
_ID_CODE = np.zeros(256, dtype=np.uint64)
_ID_CODE[np.flatnonzero(_ID_LUT)] = np.arange(64, dtype=np.uint64)
_LOWER_LUT = np.zeros(256, dtype=bool)
_LOWER_LUT[ord("a") : ord("z") + 1] = True
_POW10 = np.array([10.0**k for k in range(23)])
_POW10_INT = np.array([10**k for k in range(19)], dtype=np.int64)
_HASH_MUL = np.uint64(0x9E3779B97F4A7C15)


# ---------------------------------------------------------------------------------------
# records


@dataclass(frozen=True)
class SegmentHeader:
    """The counts line of a segment list (declared), or the same counts as read (observed)."""

    num_ytids: int
    num_segs: int
    num_unique_labels: int
    num_positive_labels: int
    created: str = ""

    def to_dict(self) -> dict[str, int | str]:
        return {
            "num_ytids": self.num_ytids,
            "num_segs": self.num_segs,
            "num_unique_labels": self.num_unique_labels,
            "num_positive_labels": self.num_positive_labels,
            "created": self.created,
        }


@dataclass(frozen=True, eq=False)
class SegmentTable:
    """Every segment of the given lists, concatenated in ``config.SOURCES`` order.

    Arrays (n = number of segments): ``ytid`` ``<U11``; ``start_s`` / ``end_s``
    float64 seconds; ``source`` int8 index into ``config.SOURCES``;
    ``label_ptr`` int64 (n+1) and ``label_idx`` int32 as CSR into
    ``label_vocab`` (sorted tuple of MIDs): the labels of row i are
    ``label_vocab[label_idx[label_ptr[i]:label_ptr[i+1]]]``.
    """

    ytid: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    source: np.ndarray
    label_ptr: np.ndarray
    label_idx: np.ndarray
    label_vocab: tuple[str, ...]
    headers: dict[str, SegmentHeader]
    observed: dict[str, SegmentHeader]
    files: dict[str, tuple[Path, str]]
    _vocab_pos: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self._vocab_pos:
            self._vocab_pos.update({m: i for i, m in enumerate(self.label_vocab)})

    def __len__(self) -> int:
        return int(self.ytid.shape[0])

    @property
    def sources(self) -> tuple[str, ...]:
        """The lists this table holds, in ``config.SOURCES`` order."""
        return tuple(s for s in SOURCES if s in self.files)

    def labels(self, i: int) -> tuple[str, ...]:
        """The MIDs of row ``i``, in file order."""
        lo, hi = int(self.label_ptr[i]), int(self.label_ptr[i + 1])
        return tuple(self.label_vocab[j] for j in self.label_idx[lo:hi])

    def source_name(self, i: int) -> str:
        return SOURCES[int(self.source[i])]

    def label_index(self, mid: str) -> int | None:
        """Position of ``mid`` in ``label_vocab`` (None if no row carries it)."""
        return self._vocab_pos.get(mid)

    def source_rows(self, source: str) -> slice:
        """Rows of one list (a contiguous slice, since lists are concatenated)."""
        if source not in SOURCES:
            raise UsageError(f"unknown segment list {source!r}; expected one of {', '.join(SOURCES)}")
        code = SOURCES.index(source)
        lo = int(np.searchsorted(self.source, code, side="left"))
        hi = int(np.searchsorted(self.source, code, side="right"))
        return slice(lo, hi)

    def provenance(self) -> dict[str, dict[str, object]]:
        """Per list: path, sha256, declared and observed header counts (for artifacts)."""
        return {
            s: {"path": str(p), "sha256": h, "header": self.headers[s].to_dict(), "observed": self.observed[s].to_dict()}
            for s, (p, h) in sorted(self.files.items(), key=lambda kv: SOURCES.index(kv[0]))
        }


@dataclass(frozen=True, eq=False)
class CandidateIndex:
    """Class -> rows of a :class:`SegmentTable` carrying that label (CSR over ``mids``)."""

    mids: tuple[str, ...]
    ptr: np.ndarray
    flat_rows: np.ndarray
    source: np.ndarray
    sources: tuple[str, ...]
    _pos: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self._pos:
            self._pos.update({m: i for i, m in enumerate(self.mids)})

    def __contains__(self, mid: object) -> bool:
        return mid in self._pos

    def _slot(self, mid: str) -> int:
        pos = self._pos.get(mid)
        if pos is None:
            raise UnknownNameError("indexed class", mid, closest(mid, self.mids))
        return pos

    def rows(self, mid: str) -> np.ndarray:
        """Sorted int64 rows carrying ``mid`` (a read-only view)."""
        p = self._slot(mid)
        out = self.flat_rows[self.ptr[p] : self.ptr[p + 1]]
        out.flags.writeable = False
        return out

    def count(self, mid: str) -> int:
        p = self._slot(mid)
        return int(self.ptr[p + 1] - self.ptr[p])

    def counts_by_source(self, mid: str) -> dict[str, int]:
        """``{source: rows}`` for every list of the table (zeros included)."""
        rows = self.rows(mid)
        counts = np.bincount(self.source[rows], minlength=len(SOURCES))
        return {s: int(counts[SOURCES.index(s)]) for s in self.sources}

    def counts(self) -> dict[str, int]:
        sizes = np.diff(self.ptr)
        return {m: int(sizes[i]) for i, m in enumerate(self.mids)}


# ---------------------------------------------------------------------------------------
# per-line parser: the reference semantics, used for lines off the fast path


def _number(field_text: str, what: str, path: Path, line_no: int) -> float:
    text = field_text.strip()
    if not _NUMBER_RE.fullmatch(text):
        raise ParseError(path, line_no, f"{what} {text!r} is not a finite number of seconds")
    value = float(text)
    if not math.isfinite(value):
        raise ParseError(path, line_no, f"{what} {text!r} is not a finite number of seconds")
    return value


def parse_line(line: str, *, path: Path | str = "<string>", line_no: int = 0) -> tuple[str, float, float, tuple[str, ...]] | None:
    """Parse one data line: ``(ytid, start_s, end_s, labels)``, or None for a blank/comment line.

    Raises ParseError naming ``path`` and ``line_no`` for anything malformed."""
    p = Path(path)
    s = line.strip()
    if not s or s.startswith("#"):
        return None
    if len(s) > _MAX_LINE_BYTES:
        raise ParseError(p, line_no, f"line is {len(s)} characters long; not a segment row")
    head = s.split(",", 3)
    if len(head) != 4:
        raise ParseError(p, line_no, f"expected 4 fields 'YTID, start_seconds, end_seconds, \"labels\"', got {len(head)}: {s[:80]!r}")
    ytid = head[0].strip()
    if not is_youtube_id(ytid):
        raise ParseError(p, line_no, f"invalid YouTube ID {ytid[:40]!r}: expected exactly 11 characters of A-Z, a-z, 0-9, '_' or '-'")
    start = _number(head[1], "start time", p, line_no)
    end = _number(head[2], "end time", p, line_no)
    if not 0 <= start < end:
        raise ParseError(p, line_no, f"segment times must satisfy 0 <= start < end, got start={head[1].strip()} end={head[2].strip()}")
    rest = head[3].strip()
    if not rest.startswith('"'):
        raise ParseError(
            p, line_no, f'the label list must be one double-quoted field such as "/m/09x0r,/t/dd00088"; missing the opening quote in {rest[:60]!r}'
        )
    if len(rest) < 2 or not rest.endswith('"'):
        raise ParseError(p, line_no, f"the label list {rest[:60]!r} is missing its closing quote")
    inner = rest[1:-1]
    if '"' in inner:
        raise ParseError(p, line_no, f"stray quote inside the label list {rest[:60]!r}")
    labels = tuple(t.strip() for t in inner.split(","))
    if labels == ("",):
        raise ParseError(p, line_no, "empty label list: every segment carries at least one label")
    for t in labels:
        if not is_mid(t):
            raise ParseError(p, line_no, f"invalid label {t[:40]!r} in the label list: expected MIDs such as '/m/09x0r'")
    return ytid, start, end, labels


# ---------------------------------------------------------------------------------------
# label vocabulary: 16-byte tokens -> global ids, by a verified 64-bit hash


class _Vocab:
    def __init__(self) -> None:
        self.names: list[str] = []
        self._keys = np.empty(0, dtype=np.uint64)  # sorted
        self._ids = np.empty(0, dtype=np.int32)
        self._hi = np.empty(0, dtype=np.uint64)  # by id
        self._lo = np.empty(0, dtype=np.uint64)
        self._by_name: dict[str, int] = {}

    @staticmethod
    def _key(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        return hi ^ (lo * _HASH_MUL)

    def lookup(self, tok: np.ndarray) -> np.ndarray:
        """``tok``: (m, 16) uint8, zero padded -> int32 ids (new tokens are added)."""
        words = np.ascontiguousarray(tok).view("<u8")
        hi, lo = words[:, 0], words[:, 1]
        key = self._key(hi, lo)
        ids = self._find(key)
        missing = ids < 0
        if missing.any():
            ukeys, first = np.unique(key[missing], return_index=True)
            rows = np.flatnonzero(missing)[first]
            for k, r in zip(ukeys.tolist(), rows.tolist(), strict=True):
                name = bytes(tok[r]).rstrip(b"\x00").decode("ascii")
                self._add(np.uint64(k), hi[r], lo[r], name)
            ids = self._find(key)
        bad = (self._hi[ids] != hi) | (self._lo[ids] != lo)
        if bad.any():  # a 64-bit hash collision between two different labels
            raise MetadataError("label hash collision while parsing segment lists; please report this file")
        return ids

    def _find(self, key: np.ndarray) -> np.ndarray:
        if self._keys.size == 0:
            return np.full(key.shape, -1, dtype=np.int32)
        pos = np.searchsorted(self._keys, key)
        pos_c = np.minimum(pos, self._keys.size - 1)
        hit = self._keys[pos_c] == key
        return np.where(hit, self._ids[pos_c], -1).astype(np.int32)

    def _add(self, key: np.uint64, hi: np.uint64, lo: np.uint64, name: str) -> int:
        if name in self._by_name:  # pragma: no cover - same bytes always hash alike
            return self._by_name[name]
        new_id = len(self.names)
        self.names.append(name)
        self._by_name[name] = new_id
        pos = int(np.searchsorted(self._keys, key))
        if pos < self._keys.size and self._keys[pos] == key:
            raise MetadataError("label hash collision while parsing segment lists; please report this file")
        self._keys = np.insert(self._keys, pos, key)
        self._ids = np.insert(self._ids, pos, new_id)
        self._hi = np.append(self._hi, hi)
        self._lo = np.append(self._lo, lo)
        return new_id

    def ids_for(self, labels: Iterable[str]) -> list[int]:
        """Ids of labels parsed by :func:`parse_line` (any length; the fast path only sees <= 16 bytes)."""
        out = []
        for name in labels:
            raw = name.encode("ascii")
            if len(raw) > _MID_MAX_BYTES:
                if name not in self._by_name:
                    self._by_name[name] = len(self.names)
                    self.names.append(name)
                    # keep the by-id arrays aligned; a long label never matches a 16-byte token
                    self._hi = np.append(self._hi, np.uint64(0))
                    self._lo = np.append(self._lo, np.uint64(0))
                out.append(self._by_name[name])
                continue
            tok = np.zeros((1, _MID_MAX_BYTES), dtype=np.uint8)
            tok[0, : len(raw)] = np.frombuffer(raw, dtype=np.uint8)
            out.append(int(self.lookup(tok)[0]))
        return out


# ---------------------------------------------------------------------------------------
# block parser


@dataclass
class _Block:
    ids: np.ndarray  # (g, 11) uint8
    start: np.ndarray
    end: np.ndarray
    ntok: np.ndarray  # int64 per row
    tok: np.ndarray  # int32 vocab ids, row-major


_PAD = 64  # zero bytes after a block, so fixed-width windows never run off its end


def _gather(b: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """(len(starts), width) bytes ``b[s:s+width]``: a row copy from a strided window view.

    ``b`` carries ``_PAD`` zero bytes at its end and every start lies inside it."""
    windows = np.lib.stride_tricks.sliding_window_view(b, width)
    return windows[np.minimum(starts, b.size - width)]


def _parse_decimal(b: np.ndarray, s: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fields b[s:e] of the form ``digits[.digits]`` -> (float64 values, ok mask).

    Exact: the digits form an integer below 2**53 which is divided by a power of
    ten, both exact in float64, so IEEE division gives the correctly rounded
    value, identical to ``float(text)``."""
    length = e - s
    ok = (length >= 1) & (length <= _TIME_MAX_CHARS)
    n = s.size
    values = np.zeros(n, dtype=np.float64)
    if n == 0:
        return values, ok
    width = int(length[ok].max()) if ok.any() else 1
    ch = _gather(b, s, width)
    inside = np.arange(width)[None, :] < length[:, None]
    digit = (ch >= 48) & (ch <= 57) & inside
    dot = (ch == 46) & inside
    ok &= ((digit | dot) == inside).all(axis=1)
    ndots = dot.sum(axis=1)
    ndig = digit.sum(axis=1)
    ok &= (ndots <= 1) & (ndig >= 1) & (ndig <= 15)
    after_dot = np.cumsum(dot, axis=1) > 0
    frac = (digit & after_dot).sum(axis=1)
    # each digit's power of ten: the number of digits that follow it in the field
    power = np.where(digit, ndig[:, None] - np.cumsum(digit, axis=1), 0)
    dvals = np.where(digit, ch.astype(np.int64) - 48, 0)
    mant = (dvals * _POW10_INT[np.minimum(power, 18)]).sum(axis=1)
    values = mant.astype(np.float64) / _POW10[np.minimum(frac, 22)]
    return values, ok


def _parse_block(buf: bytes, first_line: int, path: Path, vocab: _Vocab) -> _Block:
    """Parse complete lines (``buf`` ends with ``\\n``); ``first_line`` is the file line number of the first."""
    b = np.zeros(len(buf) + _PAD, dtype=np.uint8)
    b[: len(buf)] = np.frombuffer(buf, dtype=np.uint8)
    nl = np.flatnonzero(b[: len(buf)] == 10)
    n = nl.size
    starts = np.empty(n, dtype=np.int64)
    if n:
        starts[0] = 0
        starts[1:] = nl[:-1] + 1
    ends = nl.astype(np.int64)
    ends = ends - ((ends > starts) & (b[np.maximum(ends - 1, 0)] == 13))
    last = len(buf) - 1

    q = np.flatnonzero(b[: len(buf)] == 34)
    c = np.flatnonzero(b[: len(buf)] == 44)
    if q.size == 0:
        q = np.array([last + 1], dtype=np.int64)
    if c.size == 0:
        c = np.array([last + 1], dtype=np.int64)
    qi = np.searchsorted(q, starts)
    nq = np.searchsorted(q, ends) - qi
    q_open = q[np.minimum(qi, q.size - 1)]
    q_close = q[np.minimum(qi + 1, q.size - 1)]
    good = (nq == 2) & (q_close == ends - 1)
    ci = np.searchsorted(c, starts)
    ce = np.searchsorted(c, q_open)
    good &= (ce - ci) == 3
    c1 = c[np.minimum(ci, c.size - 1)]
    c2 = c[np.minimum(ci + 1, c.size - 1)]
    c3 = c[np.minimum(ci + 2, c.size - 1)]
    good &= c1 == starts + 11
    sp = lambda pos: b[np.minimum(pos + 1, last)] == 32  # noqa: E731 - tiny local helper
    good &= sp(c1) & sp(c2) & sp(c3) & (c3 + 2 == q_open)
    ids = _gather(b, starts, 11)
    good &= _ID_LUT[ids].all(axis=1)
    start_v, ok_s = _parse_decimal(b, c1 + 2, c2)
    end_v, ok_e = _parse_decimal(b, c2 + 2, c3)
    good &= ok_s & ok_e & (start_v < end_v)

    # labels of the (so far) good lines: tokens between q_open, inner commas, q_close
    ce_end = np.searchsorted(c, q_close)
    k = np.where(good, ce_end - ce, 0)
    g_idx = np.flatnonzero(good)
    kg = k[g_idx]
    ntok_g = kg + 1
    # inner commas of good line i are c[ce_i : ce_end_i]: gather them in order via a repeat
    total_inner = int(kg.sum())
    if total_inner:
        off = np.repeat(ce[g_idx] - (np.cumsum(kg) - kg), kg)
        inner = c[np.arange(total_inner) + off]
    else:
        inner = np.empty(0, dtype=np.int64)
    t_total = int(ntok_g.sum())
    tok_line = np.repeat(g_idx, ntok_g)
    first_tok = np.cumsum(ntok_g) - ntok_g
    t_in_line = np.arange(t_total) - np.repeat(first_tok, ntok_g)
    inner_off = np.repeat(np.cumsum(kg) - kg, ntok_g)
    k_line = np.repeat(kg, ntok_g)
    if inner.size:
        prev_comma = inner[np.clip(inner_off + t_in_line - 1, 0, inner.size - 1)]
        next_comma = inner[np.clip(inner_off + t_in_line, 0, inner.size - 1)]
    else:
        prev_comma = next_comma = np.zeros(t_total, dtype=np.int64)
    t_start = np.where(t_in_line == 0, q_open[tok_line] + 1, prev_comma + 1)
    t_end = np.where(t_in_line == k_line, q_close[tok_line], next_comma)
    t_len = t_end - t_start
    tok = _gather(b, t_start, _MID_MAX_BYTES)
    col = np.arange(_MID_MAX_BYTES)[None, :]
    inside = col < t_len[:, None]
    tok = np.where(inside, tok, 0).astype(np.uint8)
    t_ok = (t_len >= 4) & (t_len <= _MID_MAX_BYTES)
    t_ok &= (tok[:, 0] == 47) & _LOWER_LUT[tok[:, 1]] & (tok[:, 2] == 47)
    t_ok &= (_MIDCHAR_LUT[tok] | ~inside | (col < 3)).all(axis=1)
    if not t_ok.all():
        good[np.unique(tok_line[~t_ok])] = False
        keep = good[tok_line]
        tok, tok_line = tok[keep], tok_line[keep]
        g_idx = np.flatnonzero(good)
        ntok_g = k[g_idx] + 1
    tok_ids = vocab.lookup(tok) if tok.shape[0] else np.empty(0, dtype=np.int32)

    block = _Block(ids=ids[g_idx], start=start_v[g_idx], end=end_v[g_idx], ntok=ntok_g.astype(np.int64), tok=tok_ids)
    slow = np.flatnonzero(~good)
    if slow.size:
        block = _merge_slow(block, g_idx, tok_line, slow, b, starts, ends, first_line, path, vocab)
    return block


def _merge_slow(
    block: _Block,
    g_idx: np.ndarray,
    tok_line: np.ndarray,
    slow: np.ndarray,
    b: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    first_line: int,
    path: Path,
    vocab: _Vocab,
) -> _Block:
    """Lines off the fast path: parse each with :func:`parse_line` (raises on the first bad one)."""
    rows: list[tuple[int, str, float, float, list[int]]] = []
    for i in slow.tolist():
        raw = b[starts[i] : ends[i]].tobytes()
        line_no = first_line + i
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ParseError(path, line_no, f"not UTF-8 text ({err.reason} at byte {err.start})") from err
        parsed = parse_line(text, path=path, line_no=line_no)
        if parsed is None:
            continue
        ytid, start, end, labels = parsed
        rows.append((i, ytid, start, end, vocab.ids_for(labels)))
    if not rows:
        return block
    s_line = np.array([r[0] for r in rows], dtype=np.int64)
    s_ids = np.frombuffer("".join(r[1] for r in rows).encode("ascii"), dtype=np.uint8).reshape(-1, 11)
    s_ntok = np.array([len(r[4]) for r in rows], dtype=np.int64)
    s_tok = np.array([t for r in rows for t in r[4]], dtype=np.int32)
    s_tok_line = np.repeat(s_line, s_ntok)
    line = np.concatenate([g_idx, s_line])
    order = np.argsort(line, kind="stable")
    t_line = np.concatenate([tok_line, s_tok_line])
    t_order = np.argsort(t_line, kind="stable")
    return _Block(
        ids=np.concatenate([block.ids, s_ids])[order],
        start=np.concatenate([block.start, [r[2] for r in rows]])[order],
        end=np.concatenate([block.end, [r[3] for r in rows]])[order],
        ntok=np.concatenate([block.ntok, s_ntok])[order],
        tok=np.concatenate([block.tok, s_tok])[t_order],
    )


# ---------------------------------------------------------------------------------------
# file reader


@dataclass
class _FileResult:
    ids: np.ndarray
    start: np.ndarray
    end: np.ndarray
    ntok: np.ndarray
    tok: np.ndarray
    header: SegmentHeader
    sha256: str


def _read_header(fh: BinaryIO, path: Path, digest: hashlib._Hash) -> tuple[SegmentHeader, int, bytes, int]:
    """Consume the leading comment lines; return (header, lines consumed, first data bytes)."""
    counts = None
    created = ""
    counts_line = 0
    consumed = 0
    pending = b""
    while consumed < _MAX_HEADER_LINES:
        line = fh.readline(_MAX_LINE_BYTES)
        if not line:
            break
        digest.update(line)
        if consumed == 0 and line.startswith(b"\xef\xbb\xbf"):  # a UTF-8 BOM added by an editor
            line = line[3:]
        if not line.lstrip().startswith(b"#"):
            pending = line
            break
        consumed += 1
        m = _COUNTS_RE.search(line)
        if m:
            counts = tuple(int(x) for x in m.groups())
            counts_line = consumed
        mc = _CREATED_RE.search(line)
        if mc:
            created = mc.group(1).decode("utf-8", "replace").strip()
    if counts is None:
        raise ParseError(
            path,
            max(consumed, 1),
            "missing the header line '# num_ytids=..., num_segs=..., num_unique_labels=..., num_positive_labels=...' "
            "of the official AudioSet layout (three comment lines, then one row per segment)",
        )
    header = SegmentHeader(num_ytids=counts[0], num_segs=counts[1], num_unique_labels=counts[2], num_positive_labels=counts[3], created=created)
    return header, consumed, pending, counts_line


def _iter_blocks(fh: BinaryIO, pending: bytes, digest: hashlib._Hash, block_bytes: int, path: Path) -> Iterator[bytes]:
    carry = pending
    while True:
        chunk = fh.read(block_bytes)
        if not chunk:
            break
        digest.update(chunk)
        data = carry + chunk if carry else chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            carry = data
            if len(carry) > 4 * block_bytes:
                raise MetadataError(f"{path}: a line is longer than {len(carry)} bytes; this is not an AudioSet segment list")
            continue
        yield data[: cut + 1]
        carry = data[cut + 1 :]
    if carry:
        yield carry + b"\n"


def _distinct_ids(ids: np.ndarray) -> int:
    """Number of distinct 11-byte IDs, exactly: one sort of a 64-bit key, ties settled on the bytes."""
    if ids.shape[0] == 0:
        return 0
    codes = _ID_CODE[ids]
    key = np.zeros(ids.shape[0], dtype=np.uint64)
    for j in range(10):
        key |= codes[:, j] << np.uint64(6 * j)
    key ^= codes[:, 10] * _HASH_MUL
    ks = np.sort(key)
    if not (ks[1:] == ks[:-1]).any():
        return int(ids.shape[0])
    # rare: equal keys (same ID twice, or a key collision); settle those rows on the raw bytes
    dup_keys = np.unique(ks[1:][ks[1:] == ks[:-1]])
    involved = np.flatnonzero(np.isin(key, dup_keys))
    raw = {bytes(ids[i]) for i in involved.tolist()}
    return int(ids.shape[0]) - involved.size + len(raw)


def read_segment_file(path: Path | str, *, vocab: _Vocab | None = None, block_bytes: int = BLOCK_BYTES) -> tuple[_FileResult, _Vocab]:
    """Parse one segment list; returns the raw columns and the label vocabulary used."""
    p = Path(path)
    vocab = vocab if vocab is not None else _Vocab()
    digest = hashlib.sha256()
    blocks: list[_Block] = []
    try:
        fh = open(p, "rb")
    except OSError as err:
        raise MetadataError(f"cannot read segment list {p}: {err.strerror or err}") from err
    with fh:
        header, consumed, pending, counts_line = _read_header(fh, p, digest)
        line_no = consumed + 1
        for buf in _iter_blocks(fh, pending, digest, max(int(block_bytes), 64), p):
            blocks.append(_parse_block(buf, line_no, p, vocab))
            line_no += buf.count(b"\n")
    if blocks:
        ids = np.concatenate([bl.ids for bl in blocks])
        start = np.concatenate([bl.start for bl in blocks])
        end = np.concatenate([bl.end for bl in blocks])
        ntok = np.concatenate([bl.ntok for bl in blocks])
        tok = np.concatenate([bl.tok for bl in blocks])
    else:
        ids = np.empty((0, 11), dtype=np.uint8)
        start = end = np.empty(0, dtype=np.float64)
        ntok = np.empty(0, dtype=np.int64)
        tok = np.empty(0, dtype=np.int32)
    del blocks
    n = int(start.size)
    if n != header.num_segs:
        raise ParseError(
            p,
            counts_line,
            f"the header says num_segs={header.num_segs} but the file has {n} segment rows: "
            "the file is truncated or was edited; fetch it again (or delete it from the cache)",
        )
    return _FileResult(ids=ids, start=start, end=end, ntok=ntok, tok=tok, header=header, sha256=digest.hexdigest()), vocab


def _observe(res: _FileResult, path: Path) -> SegmentHeader:
    obs = SegmentHeader(
        num_ytids=_distinct_ids(res.ids),
        num_segs=int(res.start.size),
        num_unique_labels=int(np.unique(res.tok).size),
        num_positive_labels=int(res.tok.size),
        created=res.header.created,
    )
    h = res.header
    for name in ("num_ytids", "num_unique_labels", "num_positive_labels"):
        declared, seen = getattr(h, name), getattr(obs, name)
        if declared != seen:
            log.warning("%s: header says %s=%d, the file has %d (kept both; the header value is the denominator)", path, name, declared, seen)
    return obs


def read_segments(files: Mapping[str, Path | str], *, block_bytes: int = BLOCK_BYTES) -> SegmentTable:
    """Parse one or several segment lists (``{source: path}``) into one :class:`SegmentTable`.

    Rows are concatenated in ``config.SOURCES`` order whatever the mapping's
    order; ``label_vocab`` is the sorted set of labels seen."""
    unknown = [s for s in files if s not in SOURCES]
    if unknown:
        sugg = closest(unknown[0], SOURCES)
        hint = f" Did you mean {sugg[0]!r}?" if sugg else ""
        raise UsageError(f"unknown segment list {unknown[0]!r}; expected one of {', '.join(SOURCES)}.{hint}")
    if not files:
        raise UsageError("no segment lists given; expected some of " + ", ".join(SOURCES))
    vocab = _Vocab()
    results: dict[str, _FileResult] = {}
    for source in SOURCES:
        if source in files:
            results[source], vocab = read_segment_file(files[source], vocab=vocab, block_bytes=block_bytes)
    headers = {s: r.header for s, r in results.items()}
    observed = {s: _observe(r, Path(files[s])) for s, r in results.items()}
    order = sorted(range(len(vocab.names)), key=vocab.names.__getitem__)
    remap = np.empty(len(order), dtype=np.int32)
    remap[np.array(order, dtype=np.int64)] = np.arange(len(order), dtype=np.int32)
    label_vocab = tuple(vocab.names[i] for i in order)
    ids = np.concatenate([r.ids for r in results.values()])
    ytid = ids.view("S11").reshape(-1).astype("<U11")
    del ids
    start = np.concatenate([r.start for r in results.values()])
    end = np.concatenate([r.end for r in results.values()])
    source_codes = np.concatenate([np.full(r.start.size, SOURCES.index(s), dtype=np.int8) for s, r in results.items()])
    ntok = np.concatenate([r.ntok for r in results.values()])
    label_ptr = np.zeros(ntok.size + 1, dtype=np.int64)
    np.cumsum(ntok, out=label_ptr[1:])
    tok = np.concatenate([r.tok for r in results.values()])
    label_idx = remap[tok] if tok.size else tok.astype(np.int32)
    files_out = {s: (Path(files[s]), r.sha256) for s, r in results.items()}
    return SegmentTable(
        ytid=ytid,
        start_s=start,
        end_s=end,
        source=source_codes,
        label_ptr=label_ptr,
        label_idx=label_idx.astype(np.int32, copy=False),
        label_vocab=label_vocab,
        headers=headers,
        observed=observed,
        files=files_out,
    )


def build_candidate_index(table: SegmentTable, mids: Iterable[str] | None = None) -> CandidateIndex:
    """Class -> rows index in one pass over the labels of every row.

    ``mids``: the classes to index (e.g. a selection's ``mids``); None = every
    label in the table.  A class no row carries gets an empty entry.  Rows are
    sorted within each class, and a label repeated on one row counts once."""
    if mids is None:
        wanted = tuple(table.label_vocab)
    else:
        wanted = tuple(dict.fromkeys(valid_mid(m) for m in mids))
    lut = np.full(len(table.label_vocab) + 1, -1, dtype=np.int64)
    for pos, m in enumerate(wanted):
        j = table.label_index(m)
        if j is not None:
            lut[j] = pos
    n = len(table)
    ntok = np.diff(table.label_ptr)
    slot = lut[table.label_idx] if table.label_idx.size else np.empty(0, dtype=np.int64)
    keep = slot >= 0
    token_row = np.repeat(np.arange(n, dtype=np.int64), ntok)[keep]
    slot = slot[keep]
    order = np.argsort(slot, kind="stable")
    rows = token_row[order]
    slot = slot[order]
    if rows.size > 1:
        dup = np.flatnonzero((slot[1:] == slot[:-1]) & (rows[1:] == rows[:-1])) + 1
        if dup.size:
            rows = np.delete(rows, dup)
            slot = np.delete(slot, dup)
    ptr = np.zeros(len(wanted) + 1, dtype=np.int64)
    np.cumsum(np.bincount(slot, minlength=len(wanted)), out=ptr[1:])
    return CandidateIndex(mids=wanted, ptr=ptr, flat_rows=rows, source=table.source, sources=table.sources)
