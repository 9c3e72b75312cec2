"""Fixtures of the origin tests (builders in support/origin_builders.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.origin_builders import DOG, SPEECH, Seg, real_segments


@pytest.fixture(scope="session")
def dog_segments(shared_metadata_dir: Path) -> list[Seg]:
    return real_segments(shared_metadata_dir, DOG, 6)


@pytest.fixture(scope="session")
def speech_segments(shared_metadata_dir: Path) -> list[Seg]:
    # skip the clips that also carry DOG, so each ID is planned once
    return [s for s in real_segments(shared_metadata_dir, SPEECH, 12) if DOG not in s.labels][:6]
