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

from dataclasses import dataclass
from typing import Any

import numpy as np

from audioset_fewshot.errors import AudiosetFewshotError
from audioset_fewshot.release._proto import sequence_example

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
        return (self.ytid, self.start_ms, self.end_ms, self.labels) == (other.ytid, other.start_ms, other.end_ms, other.labels) \
            and np.array_equal(self.embedding, other.embedding)

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


def decode(payload: bytes | memoryview) -> EmbeddingRecord:
    """Decode one record's payload; :class:`RecordError` says what is wrong with it."""
    ex = sequence_example()
    try:
        ex.ParseFromString(bytes(payload) if isinstance(payload, memoryview) else payload)
    except Exception as err:  # protobuf raises its own DecodeError (a plain Exception subclass)
        raise RecordError(f"not a SequenceExample ({type(err).__name__}: {err})") from err
    ctx = ex.context.feature
    raw_id = _one(ctx, "video_id", "bytes_list")
    try:
        ytid = bytes(raw_id).decode("ascii")
    except UnicodeDecodeError as err:
        raise RecordError(f"video_id {raw_id!r} is not ASCII") from err
    start = float(_one(ctx, "start_time_seconds", "float_list"))
    end = float(_one(ctx, "end_time_seconds", "float_list"))
    labels = tuple(int(i) for i in ctx["labels"].int64_list.value) if "labels" in ctx else ()
    lists = ex.feature_lists.feature_list
    if "audio_embedding" not in lists:
        raise RecordError(f"record of {ytid} has no 'audio_embedding' feature list")
    frames = []
    for i, f in enumerate(lists["audio_embedding"].feature):
        vals = f.bytes_list.value
        if len(vals) != 1 or len(vals[0]) != EMBEDDING_DIM:
            raise RecordError(f"record of {ytid}: second {i} holds {[len(v) for v in vals]} bytes, expected one value of {EMBEDDING_DIM}")
        frames.append(vals[0])
    emb = np.frombuffer(b"".join(frames), dtype=np.uint8).reshape(len(frames), EMBEDDING_DIM)
    return EmbeddingRecord(ytid=ytid, start_ms=round(start * 1000), end_ms=round(end * 1000), labels=labels, embedding=emb)


__all__ = ["EMBEDDING_DIM", "QUANT_MAX", "QUANT_MIN", "SECONDS", "EmbeddingRecord", "RecordError", "decode", "dequantize", "encode", "quantize"]
