"""Fixtures of the process tests: dataset roots built from real FLAC clips (see support/process_clips.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.process_clips import DOG, MUSIC, SPEECH, STANDARD, Clip, make_root

from audioset_fewshot.layout import DatasetLayout


@pytest.fixture
def dataset(tmp_path: Path) -> DatasetLayout:
    """A root with every kind of clip in STANDARD and its clips.csv."""
    return make_root(tmp_path / "root", STANDARD)


@pytest.fixture
def tone_root(tmp_path: Path) -> DatasetLayout:
    """A clean root: 12 good clips over 3 classes."""
    clips = [Clip(f"t{c}{i:09d}", mid, "tone" if i % 2 else "noise") for c, mid in enumerate((SPEECH, DOG, MUSIC)) for i in range(4)]
    return make_root(tmp_path / "tones", clips)
