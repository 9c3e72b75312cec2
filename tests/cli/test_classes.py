"""``audioset-fewshot classes`` end to end, as a user runs it (a subprocess), offline."""

from __future__ import annotations

import csv
import io
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest


def run(*args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audioset_fewshot", "classes", *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False)


def test_table_with_counts_per_split(shared_metadata_dir: Path) -> None:
    r = run("--metadata-dir", str(shared_metadata_dir))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["MID", "NAME", "QA", "TOP-LEVEL", "BALANCED", "EVAL", "UNBALANCED", "FLAGS"]
    bark = next(ln for ln in lines if ln.startswith("/m/05tny_ "))
    assert "Bark" in bark and "Animal" in bark
    assert "142 classes selected" in lines[-1] and "--explain NAME" in lines[-1]
    silence = next(ln for ln in lines if ln.startswith("/m/028v0c "))
    assert silence.rstrip().endswith("silence")


def test_json_output(shared_metadata_dir: Path) -> None:
    r = run("--metadata-dir", str(shared_metadata_dir), "--sources", "balanced,eval", "--format", "json", "--min-quality", "0.9")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert isinstance(data, list) and len(data) == 87
    bark = next(d for d in data if d["mid"] == "/m/05tny_")
    assert bark["name"] == "Bark" and bark["top_level_name"] == "Animal" and bark["quality"] == 1.0
    assert set(bark["candidates"]) == {"balanced", "eval"} and bark["candidates"]["balanced"] > 0


def test_csv_output_without_counts() -> None:
    r = run("--no-counts", "--format", "csv", "--all-levels")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert rows[0].keys() == {"mid", "name", "quality", "num_rated", "num_true", "top_level", "top_level_name", "flags"}
    assert any(row["mid"] == "/m/09x0r" for row in rows) and len(rows) > 142


def test_include_unknown_name_exits_2_with_a_suggestion(shared_metadata_dir: Path) -> None:
    r = run("--include", "Dog barking", "--metadata-dir", str(shared_metadata_dir))
    assert r.returncode == 2
    assert "unknown class 'Dog barking'" in r.stderr and "'Bark'" in r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_explain(shared_metadata_dir: Path) -> None:
    r = run("--explain", "Speech", "--no-counts")
    assert r.returncode == 0, r.stderr
    assert (
        r.stdout.strip()
        == "Speech (/m/09x0r) is excluded: not a leaf class (it has 7 children; set selection.all_levels, or 'classes --all-levels', to allow it)"
    )
    r2 = run("--explain", "bark", "--include", "Speech", "--metadata-dir", str(shared_metadata_dir), "--sources", "eval")
    assert r2.returncode == 0 and r2.stdout.startswith("Bark (/m/05tny_) is selected")
    r3 = run("--explain", "Speech", "--include", "Speech", "--no-counts")
    assert "included by request although not a leaf class" in r3.stdout
    r4 = run("--explain", "Dgo", "--no-counts")
    assert r4.returncode == 2 and "Did you mean" in r4.stderr


def test_config_file_and_flags(tmp_path: Path, shared_metadata_dir: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"selection:\n  min_quality: 1.0\n  exclude: [Bark]\nmetadata:\n  metadata_dir: {shared_metadata_dir}\nplan:\n  sources: [eval]\n", encoding="utf-8"
    )
    r = run("-c", str(cfg), "--format", "json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert len(data) == 42 and all(d["mid"] != "/m/05tny_" for d in data)  # 43 at 1.0, minus Bark
    assert set(data[0]["candidates"]) == {"eval"}
    r2 = run("-c", str(cfg), "--min-quality", "0.8", "--format", "json")  # flags beat the file
    assert len(json.loads(r2.stdout)) == 141
    bad = tmp_path / "bad.yaml"
    bad.write_text("selection:\n  min_qualty: 0.5\n", encoding="utf-8")
    r3 = run("-c", str(bad), "--no-counts")
    assert r3.returncode == 2 and "selection.min_quality" in r3.stderr


def test_unreachable_segment_lists_say_what_to_do(tmp_path: Path) -> None:
    """No --metadata-dir and the configured URL does not answer: a clear error, exit 1."""
    with socket.socket() as s:  # a port on 127.0.0.1 that nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"metadata:\n  cache_dir: {tmp_path / 'cache'}\n  urls:\n    eval: http://127.0.0.1:{port}/eval_segments.csv\nplan:\n  sources: [eval]\n",
        encoding="utf-8",
    )
    r = run("-c", str(cfg), timeout=90)
    assert r.returncode == 1
    assert "could not fetch http://127.0.0.1" in r.stderr and "--metadata-dir" in r.stderr and "--no-counts" in r.stderr


def test_missing_list_in_metadata_dir(tmp_path: Path) -> None:
    r = run("--metadata-dir", str(tmp_path), "--sources", "eval")
    assert r.returncode == 1 and "segment list 'eval' not found" in r.stderr and "eval_segments.csv" in r.stderr


@pytest.mark.parametrize("flag", ["--min-quality=1.5", "--sources=evals", "--format=xml"])
def test_bad_flags_exit_2(flag: str) -> None:
    r = run(flag, "--no-counts")
    assert r.returncode == 2, (r.stdout, r.stderr)


def test_explain_needs_no_segment_list(tmp_path: Path) -> None:
    """--explain answers from the packaged ontology and QA counts: nothing is fetched
    (the segment-list URLs point at a closed port on 127.0.0.1, so a fetch would fail)."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text("metadata:\n  urls:\n    balanced: http://127.0.0.1:9/b.csv\n    eval: http://127.0.0.1:9/e.csv\n    unbalanced: http://127.0.0.1:9/u.csv\n")
    r = run("-c", str(cfg), "--explain", "Speech", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "not a leaf class" in r.stdout and "fetching" not in r.stderr


def test_all_lists_why_every_class_left_out_is_out() -> None:
    from audioset_fewshot.metadata import load_ontology

    total = len(load_ontology().mids)
    table = run("--no-counts", "--all")
    assert table.returncode == 0, table.stderr
    head = table.stdout.index("LEFT OUT BECAUSE")
    left = [ln for ln in table.stdout[head:].splitlines()[1:] if ln.startswith("/")]
    selected = int(table.stdout.split(" classes selected")[0].rsplit("\n", 1)[-1])
    assert len(left) + selected == total and f"{len(left)} classes left out" in table.stdout
    speech = next(ln for ln in left if ln.startswith("/m/09x0r "))
    assert "Speech" in speech and "not a leaf class (it has 7 children" in speech
    assert all(len(ln.split("  ")) >= 3 and ln.split("  ")[-1].strip() for ln in left)  # a reason on every line
    data = json.loads(run("--no-counts", "--all", "--format", "json").stdout)
    assert len(data["selected"]) + len(data["left_out"]) == total and all(r["reason"] for r in data["left_out"])
    rows = list(csv.DictReader(io.StringIO(run("--no-counts", "--all", "--format", "csv").stdout)))
    assert len(rows) == total and sum(1 for r in rows if r["left_out_because"]) == len(data["left_out"])
