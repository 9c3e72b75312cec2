"""Helpers for the metadata tests: small segment lists in the official layout."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

HEADER_CREATED = "# Segments csv created Sun Mar  5 10:54:31 2017\n"
HEADER_COLUMNS = "# YTID, start_seconds, end_seconds, positive_labels\n"


def format_row(ytid: str, start_s: float, end_s: float, labels: Sequence[str]) -> str:
    return f'{ytid}, {start_s:.3f}, {end_s:.3f}, "{",".join(labels)}"\n'


def segment_text(
    rows: Sequence[tuple[str, float, float, Sequence[str]]] | None = None,
    *,
    lines: Sequence[str] = (),
    num_segs: int | None = None,
    num_positive: int | None = None,
) -> str:
    """File text in the official layout; ``lines`` are raw data lines appended after ``rows``."""
    rows = list(rows or [])
    body = [format_row(*r) for r in rows] + [ln if ln.endswith("\n") else ln + "\n" for ln in lines]
    n = len(rows) + len(lines) if num_segs is None else num_segs
    pos = sum(len(r[3]) for r in rows) if num_positive is None else num_positive
    uniq = len({lab for r in rows for lab in r[3]})
    counts = f"# num_ytids={n}, num_segs={n}, num_unique_labels={uniq}, num_positive_labels={pos}\n"
    return HEADER_CREATED + counts + HEADER_COLUMNS + "".join(body)


@pytest.fixture
def write_segments(tmp_path: Path):
    """``write_segments(name, rows=..., lines=..., num_segs=...) -> Path`` under tmp_path."""

    def _write(name: str = "balanced_train_segments.csv", rows=None, **kw) -> Path:
        p = tmp_path / name
        p.write_text(segment_text(rows, **kw), encoding="utf-8", newline="")
        return p

    return _write
