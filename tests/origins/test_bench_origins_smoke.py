"""The origins benchmark runs end to end on a tiny corpus and reports every figure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_origins.py"


def test_bench_origins_smoke(shared_metadata_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "AUDIOSET_FEWSHOT_SHARED_METADATA": str(shared_metadata_dir), "AUDIOSET_FEWSHOT_PROGRESS": "0"}
    out = subprocess.run([sys.executable, str(BENCH), "--quick", "--clips", "6", "--work", str(tmp_path), "--json", str(tmp_path / "o.json")],
                         capture_output=True, text=True, timeout=600, env=env, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    doc = json.loads((tmp_path / "o.json").read_text())
    rows = {r["key"]: r for r in doc["rows"]}
    assert set(rows) == {
        f"origins.{k}"
        for k in (
            "ingest_vs_today",
            "ingest_vs_decode",
            "ingest_rss",
            "ingest_cpu",
            "ingest_cpu_per_clip",
            "ingest_idle_projection",
            "bytes_read",
            "bytes_row_groups",
        )
    }
    assert doc["figures"]["ours"]["clips"] == 6 and doc["figures"]["today"]["clips"] == 6
    assert rows["origins.bytes_read"]["ratio"] <= 1.5  # the page reader reads little more than the clip
    assert "ingest 6 x 10 s 48 kHz FLAC from parquet" in out.stdout
