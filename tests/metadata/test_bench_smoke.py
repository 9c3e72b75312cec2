"""Smoke test of bench/bench_metadata.py on a tiny list: it runs, and ours and the seed approach agree."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_metadata.py"


@pytest.mark.slow
def test_bench_runs_and_both_approaches_count_the_same(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_metadata", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--quick", "--rows", "3000", "--work-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "check: per-class counts agree for 142/142 classes" in out
    assert "index 142 classes, wall (s)" in out and "peak RSS (MiB)" in out
    generated = tmp_path / "unbalanced_train_segments_3000.csv"
    head = generated.read_text(encoding="ascii").splitlines()[:4]
    assert head[0].startswith("# Segments csv created") and head[1].startswith("# num_ytids=3000, num_segs=3000,")
    assert head[2] == "# YTID, start_seconds, end_seconds, positive_labels"
