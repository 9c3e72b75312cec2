"""Fixtures of the manifest tests (helpers in support/manifest_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.manifest_helpers import make_root, standard_clips

from audioset_fewshot.layout import DatasetLayout


@pytest.fixture
def small_root(tmp_path: Path) -> DatasetLayout:
    """Three classes, five ok clips, one permanent and one transient failure."""
    return make_root(tmp_path / "root", standard_clips())
