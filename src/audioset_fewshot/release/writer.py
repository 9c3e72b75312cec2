"""Write a release in Google's layout: this project's own TFRecord writer.

Tests and benchmarks use it to make releases whose content they know:
``audioset_v1_embeddings/<split>/<first 2 chars of the ID>.tfrecord``, one
SequenceExample per segment (see :mod:`.records`), and optionally the
``features.tar.gz`` of that folder (deterministic: sorted members, mtime 0).
"""

from __future__ import annotations

import gzip
import os
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audioset_fewshot.release.records import encode
from audioset_fewshot.release.source import SPLIT_DIRS, TOP, file_name
from audioset_fewshot.release.tfrecord import write_records


@dataclass(frozen=True, eq=False)
class Segment:
    """One segment to write: ``source`` is a segment-list name (balanced, eval, unbalanced);
    ``labels`` are class indices (rows of ``class_labels_indices.csv``); ``embedding`` uint8 (seconds, 128)."""

    source: str
    ytid: str
    start_s: float
    end_s: float
    labels: tuple[int, ...]
    embedding: np.ndarray


def write_release(dest: Path | str, segments: Iterable[Segment], *, empty_splits: bool = True) -> Path:
    """Write ``segments`` under ``dest/audioset_v1_embeddings/``; returns that folder.

    Segments go to their file in the order given.  ``empty_splits`` also makes the
    split folders that received nothing (a real release always has all three)."""
    top = Path(dest) / TOP
    by_file: dict[str, list[bytes]] = {}
    for seg in segments:
        by_file.setdefault(file_name(seg.source, seg.ytid), []).append(encode(seg.ytid, seg.start_s, seg.end_s, seg.labels, seg.embedding))
    if empty_splits:
        for d in SPLIT_DIRS.values():
            (top / d).mkdir(parents=True, exist_ok=True)
    for name in sorted(by_file):
        path = top / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            write_records(fh, by_file[name])
    return top


def write_tar_gz(folder: Path | str, dest: Path | str, *, compresslevel: int = 1) -> Path:
    """``features.tar.gz`` of a release folder (the folder holding the split folders),
    members named ``audioset_v1_embeddings/<split>/<xx>.tfrecord``, sorted, mtime 0."""
    src = Path(folder)
    out = Path(dest)
    tmp = out.with_name(out.name + ".tmp")
    with (
        open(tmp, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=compresslevel, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w|", format=tarfile.GNU_FORMAT) as tar,
    ):
        for d in sorted(p for p in src.iterdir() if p.is_dir()):
            info = tarfile.TarInfo(f"{TOP}/{d.name}")
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
            for f in sorted(d.glob("*.tfrecord")):
                info = tarfile.TarInfo(f"{TOP}/{d.name}/{f.name}")
                info.size, info.mode, info.mtime = f.stat().st_size, 0o644, 0
                with open(f, "rb") as fh:
                    tar.addfile(info, fh)
    os.replace(tmp, out)
    return out


__all__ = ["Segment", "write_release", "write_tar_gz"]
