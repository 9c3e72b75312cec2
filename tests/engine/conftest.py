"""Fixtures of the engine tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.dask_cluster import Scheduler, start_scheduler, stop


@pytest.fixture
def scheduler(tmp_path: Path) -> Iterator[Scheduler]:
    """A scheduler and one worker with this session's software, both ended after the test."""
    sched, procs = start_scheduler(tmp_path)
    try:
        yield sched
    finally:
        stop(procs)
