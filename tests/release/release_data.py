"""Releases in Google's layout written with the project's own writer, from real segments.

Embeddings are class-separable: every class (MID) has a fixed random centre in
the whitened space and each second of a clip is the mean of its labels'
centres plus noise, quantised exactly as Google's postprocessor does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from audioset_fewshot.metadata import read_segments, resolve_segment_files
from audioset_fewshot.release.records import EMBEDDING_DIM, quantize
from audioset_fewshot.release.writer import Segment

SOURCE_FILES = {"balanced": "balanced_train_segments.csv", "eval": "eval_segments.csv", "unbalanced": "unbalanced_train_segments_part.csv"}


def class_centres(mids: Sequence[str], *, seed: int = 7, scale: float = 1.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([seed, 1])
    return {m: rng.normal(0.0, scale, EMBEDDING_DIM) for m in sorted(mids)}


def embedding_for(
    ytid: str, start_ms: int, labels: Sequence[str], centres: dict[str, np.ndarray], *, seconds: int = 10, noise: float = 0.35, seed: int = 7
) -> np.ndarray:
    """uint8 (seconds, 128) for one clip: mean of its labels' centres + per-second noise."""
    key = int.from_bytes(ytid.encode("ascii"), "little") % (2**63)
    rng = np.random.default_rng([seed, 2, key, start_ms])
    known = [centres[m] for m in labels if m in centres]
    centre = np.mean(known, axis=0) if known else np.zeros(EMBEDDING_DIM)
    return quantize(centre[None, :] + rng.normal(0.0, noise, (seconds, EMBEDDING_DIM)))


def real_rows(metadata_dir: Path, sources: Iterable[str] = ("balanced", "eval", "unbalanced")):
    """The SegmentTable of the shared metadata."""
    return read_segments(resolve_segment_files(tuple(sources), metadata_dir=metadata_dir))


def segments_from_table(
    table, rows: Iterable[int], label_numbers: dict[str, int], centres: dict[str, np.ndarray], *, seconds_of: dict[int, int] | None = None
) -> list[Segment]:
    from audioset_fewshot.config import SOURCES

    out = []
    for r in rows:
        r = int(r)
        ytid = str(table.ytid[r])
        start_ms = round(float(table.start_s[r]) * 1000)
        labels = table.labels(r)
        secs = (seconds_of or {}).get(r, 10)
        out.append(
            Segment(
                SOURCES[int(table.source[r])],
                ytid,
                float(table.start_s[r]),
                float(table.end_s[r]),
                tuple(sorted(label_numbers[m] for m in labels if m in label_numbers)),
                embedding_for(ytid, start_ms, labels, centres, seconds=secs),
            )
        )
    return out
