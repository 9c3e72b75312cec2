"""One segment of the release: a ``tensorflow.SequenceExample``, encoded and decoded.

Context features (Google's release notes):

- ``video_id``: bytes_list, the YouTube ID;
- ``start_time_seconds`` / ``end_time_seconds``: float_list;
- ``labels``: int64_list, row indices into ``class_labels_indices.csv``.

Feature list ``audio_embedding``: one bytes_list feature per second, each one
value of 128 bytes (uint8, the PCA-whitened, clipped and quantised VGGish
embedding).  Some segments have fewer than 10 seconds.

Times are float32 in the record; :func:`decode` rounds them to milliseconds
(AudioSet times have 3 decimals), the unit every key of this project uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from audioset_fewshot.errors import AudiosetFewshotError
from audioset_fewshot.release._proto import messages, sequence_example

EMBEDDING_DIM = 128
SECONDS = 10
QUANT_MIN = -2.0
QUANT_MAX = 2.0


class RecordError(AudiosetFewshotError):
    """A payload that is not an AudioSet embedding SequenceExample."""


@dataclass(frozen=True, eq=False)
class EmbeddingRecord:
    """A decoded record: ``embedding`` is uint8 (seconds, 128)."""

    ytid: str
    start_ms: int
    end_ms: int
    labels: tuple[int, ...]
    embedding: np.ndarray

    @property
    def start_s(self) -> float:
        return self.start_ms / 1000.0

    @property
    def end_s(self) -> float:
        return self.end_ms / 1000.0

    @property
    def seconds(self) -> int:
        return int(self.embedding.shape[0])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EmbeddingRecord):
            return NotImplemented
        return (self.ytid, self.start_ms, self.end_ms, self.labels) == (other.ytid, other.start_ms, other.end_ms, other.labels) and np.array_equal(
            self.embedding, other.embedding
        )

    __hash__ = None  # type: ignore[assignment]


def quantize(x: np.ndarray) -> np.ndarray:
    """Google's postprocessor: clip to [-2, 2], scale to 0..255, truncate to uint8."""
    clipped = np.clip(np.asarray(x, dtype=np.float64), QUANT_MIN, QUANT_MAX)
    return ((clipped - QUANT_MIN) * (255.0 / (QUANT_MAX - QUANT_MIN))).astype(np.uint8)


def dequantize(q: np.ndarray) -> np.ndarray:
    """float32 ``q / 255 * 4 - 2`` (the inverse of :func:`quantize` up to 4/255)."""
    return np.asarray(q, dtype=np.float32) * np.float32((QUANT_MAX - QUANT_MIN) / 255.0) + np.float32(QUANT_MIN)


def encode(ytid: str, start_s: float, end_s: float, labels: tuple[int, ...] | list[int], embedding: np.ndarray) -> bytes:
    """The serialised SequenceExample of one segment (``embedding``: uint8 (seconds, 128))."""
    emb = np.asarray(embedding)
    if emb.dtype != np.uint8 or emb.ndim != 2 or emb.shape[1] != EMBEDDING_DIM:
        raise RecordError(f"embedding of {ytid} must be uint8 (seconds, {EMBEDDING_DIM}), got {emb.dtype} {emb.shape}")
    ex = sequence_example()
    ctx = ex.context.feature
    ctx["video_id"].bytes_list.value.append(ytid.encode("ascii"))
    ctx["start_time_seconds"].float_list.value.append(float(start_s))
    ctx["end_time_seconds"].float_list.value.append(float(end_s))
    ctx["labels"].int64_list.value.extend(int(i) for i in labels)
    fl = ex.feature_lists.feature_list["audio_embedding"].feature
    for row in emb:
        fl.add().bytes_list.value.append(row.tobytes())
    return bytes(ex.SerializeToString(deterministic=True))


def _one(ctx: Any, key: str, kind: str) -> Any:
    try:
        feat = ctx[key]
    except KeyError:
        raise RecordError(f"context feature {key!r} is missing") from None
    values = getattr(feat, kind).value
    if len(values) != 1:
        raise RecordError(f"context feature {key!r} has {len(values)} values in {kind}, expected 1")
    return values[0]


# One second of ``audio_embedding`` as protobuf writes it: Feature (field 1 of FeatureList,
# 134 bytes) > BytesList (field 1, 131 bytes) > value (field 1, 128 bytes) > the bytes.
SECOND_HEADER = bytes([0x0A, 0x86, 0x01, 0x0A, 0x83, 0x01, 0x0A, 0x80, 0x01])
SECOND_BYTES = len(SECOND_HEADER) + EMBEDDING_DIM
_HEADER_ROW = np.frombuffer(SECOND_HEADER, dtype=np.uint8)


class RecordParts(NamedTuple):
    """A record's context and the serialised ``audio_embedding`` FeatureList (``blob``);
    a named tuple because millions are made."""

    ytid: str
    start_ms: int
    end_ms: int
    labels: tuple[int, ...]
    blob: bytes


def _varint(b: bytes, pos: int) -> tuple[int, int]:
    """A protobuf varint at ``pos``: (value, next position); (-1, pos) when it runs off the end."""
    value = shift = 0
    while pos < len(b):
        byte = b[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            break
    return -1, pos


_LIST_KEY = b"\x0a\x0f" + b"audio_embedding"


def _split(b: bytes) -> tuple[bytes, bytes] | None:
    """(context bytes, FeatureList bytes of audio_embedding) when the payload is laid out as
    TensorFlow writes it: field 1 (context), then field 2 (feature_lists) holding the one
    entry ``audio_embedding``; None for any other layout (then protobuf parses it all)."""
    if len(b) < 2 or b[0] != 0x0A:
        return None
    n, pos = _varint(b, 1)
    if n < 0 or pos + n >= len(b) or b[pos + n] != 0x12:
        return None
    ctx = b[pos : pos + n]
    n2, p2 = _varint(b, pos + n + 1)
    if n2 < 0 or p2 + n2 != len(b) or p2 >= len(b) or b[p2] != 0x0A:
        return None
    n3, p3 = _varint(b, p2 + 1)
    if n3 < 0 or p3 + n3 != len(b) or b[p3 : p3 + len(_LIST_KEY)] != _LIST_KEY:
        return None
    p4 = p3 + len(_LIST_KEY)
    if p4 >= len(b) or b[p4] != 0x12:
        return None
    n4, p5 = _varint(b, p4 + 1)
    if n4 < 0 or p5 + n4 != len(b):
        return None
    return ctx, b[p5:]


_FEATURES: list[Any] = []


def _features_class() -> Any:
    if not _FEATURES:
        _FEATURES.append(messages()["Features"])
    return _FEATURES[0]


def decode_parts(payload: bytes | memoryview) -> RecordParts:
    """Parse one payload: the context, and the embedding FeatureList still serialised
    (:func:`embeddings_of` turns many of them into arrays at once).

    The usual layout is split by hand (the ``audio_embedding`` bytes are never
    parsed one message per second); anything else is parsed whole by protobuf."""
    b = bytes(payload)
    split = _split(b)
    if split is not None:
        features = _features_class()()
        try:
            features.ParseFromString(split[0])
        except Exception as err:  # protobuf raises its own DecodeError (a plain Exception subclass)
            raise RecordError(f"context does not parse ({type(err).__name__}: {err})") from err
        return _parts(features.feature, split[1])
    ex = sequence_example()
    try:
        ex.ParseFromString(b)
    except Exception as err:  # protobuf raises its own DecodeError (a plain Exception subclass)
        raise RecordError(f"not a SequenceExample ({type(err).__name__}: {err})") from err
    lists = ex.feature_lists.feature_list
    blob = lists["audio_embedding"].SerializeToString() if "audio_embedding" in lists else None
    return _parts(ex.context.feature, blob)


def _parts(ctx: Any, blob: bytes | None) -> RecordParts:
    raw_id = _one(ctx, "video_id", "bytes_list")
    try:
        ytid = bytes(raw_id).decode("ascii")
    except UnicodeDecodeError as err:
        raise RecordError(f"video_id {raw_id!r} is not ASCII") from err
    start = float(_one(ctx, "start_time_seconds", "float_list"))
    end = float(_one(ctx, "end_time_seconds", "float_list"))
    labels = tuple(ctx["labels"].int64_list.value) if "labels" in ctx else ()
    if blob is None:
        raise RecordError(f"record of {ytid} has no 'audio_embedding' feature list")
    return RecordParts(ytid, round(start * 1000), round(end * 1000), labels, blob)


def _embedding_slow(blob: bytes, ytid: str) -> np.ndarray:
    """One FeatureList parsed message by message (any layout protobuf accepts); RecordError if a
    second is not one 128-byte value."""
    fl = messages()["FeatureList"]()
    try:
        fl.ParseFromString(blob)
    except Exception as err:  # protobuf's DecodeError
        raise RecordError(f"record of {ytid}: audio_embedding does not parse ({type(err).__name__}: {err})") from err
    frames = []
    for i, f in enumerate(fl.feature):
        vals = f.bytes_list.value
        if len(vals) != 1 or len(vals[0]) != EMBEDDING_DIM:
            raise RecordError(f"record of {ytid}: second {i} holds {[len(v) for v in vals]} bytes, expected one value of {EMBEDDING_DIM}")
        frames.append(vals[0])
    return np.frombuffer(b"".join(frames), dtype=np.uint8).reshape(len(frames), EMBEDDING_DIM)


def embeddings_of(parts: Sequence[RecordParts]) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str]]]:
    """The embeddings of many records at once: ``(seconds per record (int64), every second
    stacked uint8 (sum(seconds), 128), [(i, message) of records that failed])``.

    A blob made of ``seconds`` 137-byte runs that each start with :data:`SECOND_HEADER` is
    read as one array (one numpy pass per call); any other blob is parsed second by second,
    and one that is not 128-byte seconds gets 0 seconds and a message."""
    n = len(parts)
    seconds = np.zeros(n, dtype=np.int64)
    fast = np.zeros(n, dtype=bool)
    for i, p in enumerate(parts):
        k, rem = divmod(len(p.blob), SECOND_BYTES)
        if rem == 0:
            seconds[i] = k
            fast[i] = True
    blob = np.frombuffer(b"".join(p.blob for p, f in zip(parts, fast, strict=True) if f), dtype=np.uint8).reshape(-1, SECOND_BYTES)
    ok_rows = (blob[:, : len(SECOND_HEADER)] == _HEADER_ROW).all(axis=1)
    if not fast.all() or not ok_rows.all():  # some record is laid out otherwise: check record by record
        return _embeddings_mixed(parts, fast, seconds)
    return seconds, np.ascontiguousarray(blob[:, len(SECOND_HEADER) :]), []


def _embeddings_mixed(parts: Sequence[RecordParts], fast: np.ndarray, seconds: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str]]]:
    chunks: list[np.ndarray] = []
    failed: list[tuple[int, str]] = []
    for i, p in enumerate(parts):
        try:
            if fast[i]:
                arr = np.frombuffer(p.blob, dtype=np.uint8).reshape(-1, SECOND_BYTES)
                if (arr[:, : len(SECOND_HEADER)] == _HEADER_ROW).all():
                    chunks.append(arr[:, len(SECOND_HEADER) :])
                    continue
            emb = _embedding_slow(p.blob, p.ytid)
        except RecordError as err:
            seconds[i] = 0
            failed.append((i, str(err)))
            continue
        seconds[i] = emb.shape[0]
        chunks.append(emb)
    stacked = np.concatenate(chunks) if chunks else np.zeros((0, EMBEDDING_DIM), dtype=np.uint8)
    return seconds, np.ascontiguousarray(stacked), failed


def decode(payload: bytes | memoryview) -> EmbeddingRecord:
    """Decode one record's payload; :class:`RecordError` says what is wrong with it."""
    p = decode_parts(payload)
    _, emb, failed = embeddings_of([p])
    if failed:
        raise RecordError(failed[0][1])
    return EmbeddingRecord(ytid=p.ytid, start_ms=p.start_ms, end_ms=p.end_ms, labels=p.labels, embedding=emb)


__all__ = [
    "EMBEDDING_DIM",
    "QUANT_MAX",
    "QUANT_MIN",
    "SECONDS",
    "EmbeddingRecord",
    "RecordError",
    "RecordParts",
    "SECOND_BYTES",
    "SECOND_HEADER",
    "decode",
    "decode_parts",
    "embeddings_of",
    "dequantize",
    "encode",
    "quantize",
]
