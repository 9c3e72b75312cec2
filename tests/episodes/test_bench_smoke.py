"""The episode benchmark's --quick mode runs and prints both rates and the ratio."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_episodes.py"


def test_bench_quick(shared_metadata_dir: Path, tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(BENCH), "--quick", "--work", str(tmp_path)], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "AUDIOSET_FEWSHOT_SHARED_METADATA": str(shared_metadata_dir)})
    assert out.returncode == 0, out.stderr
    assert "142 classes" in out.stdout
    assert "ours: index-only" in out.stdout and "MetaAudio-style" in out.stdout
    assert "ratio ours / dataframe" in out.stdout and "goal >= 10,000 episodes/s" in out.stdout
    assert (tmp_path / "results.jsonl").read_text().count('"bench": "episodes"') == 1
