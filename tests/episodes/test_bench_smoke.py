"""The episode benchmark's --quick mode runs, prints ours against its bound and today's approach, and writes its JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_episodes.py"


def test_bench_quick(shared_metadata_dir: Path, tmp_path: Path) -> None:
    out_json = tmp_path / "episodes.json"
    out = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--rounds", "1", "--json", str(out_json)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "AUDIOSET_FEWSHOT_SHARED_METADATA": str(shared_metadata_dir)},
    )
    assert out.returncode == 0, out.stderr
    assert "142 classes" in out.stdout and "load average" in out.stdout
    assert "bare numpy" in out.stdout and ">= 60% of bound" in out.stdout
    doc = json.loads(out_json.read_text())
    assert doc["bench"] == "episodes" and doc["quick"] is True and doc["machine"]["cores"] >= 1
    rows = {r["key"]: r for r in doc["rows"]}
    bound, today = rows["episodes.sampling_vs_bare"], rows["episodes.sampling_vs_dataframe"]
    assert bound["kind"] == "bound" and bound["goal"] == 0.6 and isinstance(bound["met"], bool)
    # the ratio is ours over the bound, both measured in this run
    assert abs(bound["ratio"] - bound["values"]["ours"] / bound["values"]["against"]) < 1e-9
    assert 0.05 < bound["ratio"] < 2.0
    assert today["kind"] == "today" and today["ratio"] > 1.0  # index-only sampling beats filtering a dataframe per episode
