"""bench/run.py collects every benchmark's JSON, --check fails on a missed goal, and
bench/readme.py rewrites the README table only from a full run, with the machine line."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str) -> ModuleType:
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory, shared_metadata_dir: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    """``bench/run.py --quick episodes`` once, for real (a few seconds)."""
    out = tmp_path_factory.mktemp("bench") / "results.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--quick", "episodes", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "AUDIOSET_FEWSHOT_SHARED_METADATA": str(shared_metadata_dir)},
    )
    return proc, out


def test_run_collects_the_json_of_each_benchmark(quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, out = quick_run
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    doc = json.loads(out.read_text())
    assert doc["quick"] is True and doc["failed"] == [] and list(doc["benches"]) == ["episodes"]
    assert doc["machine"]["cores"] >= 1 and doc["machine"]["cpu_model"]
    assert len(doc["load_before"]) == 3 and len(doc["load_after"]) == 3
    row = doc["benches"]["episodes"]["rows"][0]
    assert row["kind"] == "bound" and row["goal"] == 0.6 and row["ratio_text"].endswith("%")
    assert "all benchmarks" in proc.stdout and "load average" in proc.stdout and "episodes.sampling_vs_bare" in proc.stdout


def test_check_fails_on_a_missed_goal_and_an_unknown_benchmark(quick_run: tuple[subprocess.CompletedProcess[str], Path], tmp_path: Path) -> None:
    run = _load("run")
    doc = json.loads(quick_run[1].read_text())
    _, missed = run.summary(doc)
    met = doc["benches"]["episodes"]["rows"][0]["met"]
    assert missed == ([] if met else ["episodes.sampling_vs_bare"])
    bad = copy.deepcopy(doc)
    bad["benches"]["episodes"]["rows"][0]["met"] = False
    text, missed = run.summary(bad)
    assert missed == ["episodes.sampling_vs_bare"] and "MISSED" in text
    assert run.main(["no-such-bench", "--json", str(tmp_path / "r.json"), "--check"]) == 1
    assert json.loads((tmp_path / "r.json").read_text())["failed"] == ["no-such-bench"]


def _full(doc: dict[str, Any]) -> dict[str, Any]:
    """The quick episodes run dressed as a full run of every benchmark (for the renderer only)."""
    run = _load("run")
    full = copy.deepcopy(doc)
    full["quick"] = False
    part = full["benches"]["episodes"]
    full["benches"] = {name: {**copy.deepcopy(part), "bench": name} for name in run.BENCHES}
    return full


def test_readme_table_is_rendered_from_the_json_with_the_machine(quick_run: tuple[subprocess.CompletedProcess[str], Path], tmp_path: Path) -> None:
    readme = _load("readme")
    doc = json.loads(quick_run[1].read_text())
    target = tmp_path / "README.md"
    target.write_text(f"# x\n\n## Benchmarks\n\nintro\n\n{readme.BEGIN}\nold table\n{readme.END}\n\n## Next\n", encoding="utf-8")
    with pytest.raises(readme.ReadmeError, match="--quick run"):
        readme.update_readme(doc, target)
    failed = {**_full(doc), "failed": ["download"]}
    with pytest.raises(readme.ReadmeError, match="benchmarks failed in this run"):
        readme.update_readme(failed, target)
    assert "old table" in target.read_text()
    full = _full(doc)
    readme.update_readme(full, target)
    text = target.read_text()
    assert "old table" not in text and text.startswith("# x\n") and text.endswith("\n## Next\n")
    block = text.split(readme.BEGIN)[1].split(readme.END)[0]
    m = doc["machine"]
    assert f"{m['cpu_model']}, {m['cores']} cores" in block and "load average" in block
    row = doc["benches"]["episodes"]["rows"][0]
    assert f"| {row['ours']} | {row['against']} | bound, same run | {row['ratio_text']} |" in block
    readme.update_readme(full, target)  # idempotent: the markers stay, one block
    assert target.read_text() == text
    some = {**_full(doc), "benches": {"episodes": doc["benches"]["episodes"]}, "command": "python bench/run.py episodes"}
    readme.update_readme(some, target)  # a run of some benchmarks: the table lists them and quotes the command
    block = target.read_text().split(readme.BEGIN)[1].split(readme.END)[0]
    assert "`python bench/run.py episodes`" in block and block.count("| bound, same run |") == 1
    assert readme.main([str(quick_run[1]), "--readme", str(target)]) == 2  # the command refuses a quick run too


def test_readme_of_the_repository_has_the_block() -> None:
    readme = _load("readme")
    text = readme.README.read_text(encoding="utf-8")
    assert text.count(readme.BEGIN) == 1 and text.count(readme.END) == 1
    assert "Measured " in text.split(readme.BEGIN)[1].split(readme.END)[0]


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("bench_*.py")))
def test_every_benchmark_starts(script: str) -> None:
    """Each benchmark imports and parses its options (a renamed helper in _report once broke one unseen)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BENCH.parent / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(BENCH / script), "--help"], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--quick" in done.stdout
