"""Progress without a terminal: a line at a fixed interval (counts, rate, ETA, state),
written by a timer so that a long pause still logs; quiet when turned off."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from audioset_fewshot._progress import DEFAULT_INTERVAL_S, INTERVAL_ENV, PROGRESS_ENV, LogProgress, progress_bar, progress_interval_s
from audioset_fewshot.demo.server import MediaServer, SourceSpec
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.plan import PlanEntry, SamplingPlan, write_plan


def test_a_line_at_each_interval_with_counts_rate_eta_and_state() -> None:
    out = io.StringIO()
    with LogProgress(total=10, desc="download", unit="clip", interval_s=0.05, initial=2, stream=out) as bar:
        bar.update(3)
        bar.set_postfix_str("paused until 14:05")
        time.sleep(0.3)  # no update meanwhile: the timer still writes
    lines = out.getvalue().splitlines()
    assert len(lines) >= 3, lines
    assert re.search(r"download: 5/10 clip \(50\.0 %\), [0-9.e+-]+ clip/s, ETA \d\d:\d\d:\d\d, paused until 14:05$", lines[0]), lines[0]
    assert re.search(r"download: 5/10 clip \(50\.0 %\), .* stopped after 00:00:00, paused until 14:05$", lines[-1]), lines[-1]


def test_a_task_shorter_than_the_interval_writes_nothing() -> None:
    out = io.StringIO()
    with LogProgress(total=3, desc="quick", interval_s=30.0, stream=out) as bar:
        bar.update(3)
    assert out.getvalue() == ""


def test_which_progress_when(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PROGRESS_ENV, raising=False)  # pytest's stderr is not a terminal
    with progress_bar(total=1, desc="x") as bar:
        assert isinstance(bar, LogProgress)
    monkeypatch.setenv(PROGRESS_ENV, "0")
    with progress_bar(total=1, desc="x") as bar:
        assert not isinstance(bar, LogProgress)
        bar.update(1)
    monkeypatch.setenv(INTERVAL_ENV, "2.5")
    assert progress_interval_s() == 2.5
    monkeypatch.setenv(INTERVAL_ENV, "soon")
    assert progress_interval_s() == DEFAULT_INTERVAL_S == 60.0  # at least once a minute by default


@pytest.mark.slow
def test_a_download_without_a_terminal_logs_progress_lines_and_the_pause(tmp_path: Path) -> None:
    """``download`` with stderr a pipe (as under nohup or SLURM): progress lines at the
    interval, with counts, rate and ETA, and the pool's pause while it lasts."""
    mid, ids = "/m/0dog", [f"proglog{i:04d}" for i in range(4)]
    root = tmp_path / "root"
    entries = [PlanEntry(f"{y}_1000", y, 1.0, 11.0, mid, (mid,), "balanced", k) for k, y in enumerate(ids)]
    params = {"seed": 0, "max_per_class": 4, "sources": ["balanced"], "owner_policy": "fewest-candidates", "shard": None, "classes": [mid]}
    write_plan(SamplingPlan.build(entries, {mid: 4}, params=params), DatasetLayout(root))
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"root: {root}\nplan:\n  max_per_class: 4\n  sources: [balanced]\ndownload:\n  pause_s: 3.0\n  timeout_s: 30.0\n")
    env = {k: v for k, v in os.environ.items() if k != PROGRESS_ENV}
    env[INTERVAL_ENV] = "0.5"
    cat = {y: SourceSpec(class_key="demo-class-3", duration_s=12.0) for y in ids}
    with MediaServer(cache_dir=tmp_path / "media", catalog=cat, idle_timeout_s=60, latency_s=0.3) as srv:
        srv.rate_limit_burst(count=1)  # the first watch request is rate-limited: the pool pauses 3 s
        proc = subprocess.run(
            [sys.executable, "-m", "audioset_fewshot", "download", "-c", str(cfg), "--base-url", srv.base_url, "--jobs", "1", "--min-free", "0B"],
            capture_output=True, text=True, timeout=180, env=env,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if " download: " in ln]
    assert len(lines) >= 4, proc.stderr
    assert all(re.search(r"download: \d/4 clip \(\d+\.\d %\), [0-9.e+-]+ clip/s", ln) for ln in lines), lines
    assert any("paused until" in ln for ln in lines), lines
    assert any("ETA" in ln for ln in lines) and re.search(r"download: 4/4 clip \(100\.0 %\), .* done in", lines[-1]), lines
