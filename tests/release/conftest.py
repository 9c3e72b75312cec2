"""A small release in the official layout, written once per session from real segments."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from audioset_fewshot.release.labels import packaged_label_indices, read_label_indices
from audioset_fewshot.release.writer import Segment, write_release, write_tar_gz

from .release_data import class_centres, real_rows, segments_from_table


@dataclass(frozen=True)
class SmallRelease:
    folder: Path  # the unpacked audioset_v1_embeddings folder
    tar_gz: Path
    segments: tuple[Segment, ...]


@pytest.fixture(scope="session")
def small_release(tmp_path_factory: pytest.TempPathFactory, shared_metadata_dir: Path) -> SmallRelease:
    table = real_rows(shared_metadata_dir)
    mids = read_label_indices(packaged_label_indices())
    numbers = {m: i for i, m in enumerate(mids)}
    rng = np.random.default_rng(3)
    rows = np.sort(rng.choice(len(table.ytid), 400, replace=False))
    short = {int(r): 7 for r in rows[::9]}  # some segments have fewer than 10 seconds
    segs = segments_from_table(table, rows, numbers, class_centres(mids), seconds_of=short)
    base = tmp_path_factory.mktemp("release")
    folder = write_release(base, segs)
    tar = write_tar_gz(folder, base / "features.tar.gz")
    return SmallRelease(folder=folder, tar_gz=tar, segments=tuple(segs))
