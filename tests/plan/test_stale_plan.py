"""A changed selection (or metadata) after a plan: ``download`` and ``run`` both re-plan,
and ``lock.json`` describes the selection that produced the clips."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from audioset_fewshot.config import load_config
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.plan import ensure_plan, plan_changes, read_plan

ENV = {**os.environ, "AUDIOSET_FEWSHOT_PROGRESS": "0"}


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audioset_fewshot", *args], capture_output=True, text=True, timeout=timeout, env=ENV, check=False)


def _config(path: Path, root: Path, metadata_dir: Path, *, min_quality: float, extra: str = "") -> Path:
    path.write_text(
        f"root: {root}\nmetadata:\n  metadata_dir: {metadata_dir}\nselection:\n  min_quality: {min_quality}\n"
        f"plan:\n  max_per_class: 5\n  sources: [balanced]\n{extra}"
    )
    return path


def test_download_and_run_replan_after_min_quality_changes(shared_metadata_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    layout = DatasetLayout(root)
    cfg = _config(tmp_path / "c.yaml", root, shared_metadata_dir, min_quality=0.8)
    first = cli("plan", "-c", str(cfg))
    assert first.returncode == 0, first.stderr
    assert "142 classes" in first.stdout
    assert read_plan(layout).params["selection"]["min_quality"] == 0.8

    _config(cfg, root, shared_metadata_dir, min_quality=0.9)
    # the disk guard stops the download before any request, after the plan is settled
    dl = cli("download", "-c", str(cfg), "--min-free", "1000TB")
    assert dl.returncode == 1 and "min_free" in dl.stderr, dl.stderr
    assert "(new)" in dl.stdout and "87 classes" in dl.stdout
    after_download = read_plan(layout)
    assert len(after_download.classes) == 87 and after_download.params["selection"]["min_quality"] == 0.9

    # run makes the very same plan: its plan stage leaves the files alone
    run = cli("run", "-c", str(cfg), "--until", "plan")
    assert run.returncode == 0, run.stderr
    report = json.loads((layout.report_dir / "run.json").read_text())
    assert [s["status"] for s in report["stages"] if s["name"] == "plan"] == ["up to date"]
    assert read_plan(layout).content_hash == after_download.content_hash


def test_include_exclude_and_metadata_files_are_part_of_the_plan_key(shared_metadata_dir: Path, tmp_path: Path) -> None:
    meta = tmp_path / "meta"
    meta.mkdir()
    shutil.copy(shared_metadata_dir / "balanced_train_segments.csv", meta)
    root = tmp_path / "root"
    layout = DatasetLayout(root)
    cfg_file = _config(tmp_path / "c.yaml", root, meta, min_quality=0.8)
    plan, written = ensure_plan(load_config(cfg_file), layout)
    assert written and len(plan.classes) == 142
    # unchanged config: the plan on disk is kept
    assert ensure_plan(load_config(cfg_file), layout) == (plan, False)

    dropped = plan.classes[0]
    cfg_file.write_text(cfg_file.read_text().replace("  min_quality: 0.8\n", f"  min_quality: 0.8\n  exclude: ['{dropped}']\n"))
    cfg = load_config(cfg_file)
    assert plan_changes(plan, cfg) == ["selection.exclude"]
    replanned, written = ensure_plan(cfg, layout)
    assert written and dropped not in replanned.classes and len(replanned.classes) == 141

    # a different segment list under the same name re-plans too
    csv_file = meta / "balanced_train_segments.csv"
    lines = csv_file.read_text().splitlines(keepends=True)
    assert lines[0].startswith("# Segments csv created")
    csv_file.write_text("# Segments csv created on another day\n" + "".join(lines[1:]))
    assert plan_changes(replanned, cfg) == ["the segment list 'balanced'"]
    again, written = ensure_plan(cfg, layout)
    assert written and again.inputs["balanced"] != replanned.inputs["balanced"]
    assert set(again.inputs) == {"balanced", "ontology", "quality"}


@pytest.mark.slow
def test_lock_records_the_selection_that_produced_the_clips(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The issue's sequence with a real download: plan at 0.8, config changed to 0.9,
    download, manifest; then run agrees and lock.json says 0.9 and the 0.9 classes."""
    from audioset_fewshot.demo.catalog import build_demo_metadata
    from audioset_fewshot.demo.server import MediaServer

    meta = build_demo_metadata(tmp_path / "meta")
    root = tmp_path / "root"
    layout = DatasetLayout(root)
    cache = tmp_path_factory.getbasetemp() / "demo-media-cache"
    with MediaServer(cache_dir=cache, catalog=dict(meta.catalog), idle_timeout_s=120) as srv:
        dl_section = f"download:\n  base_url: {srv.base_url}\n  max_per_hour: null\n  min_interval_s: 0.0\n  jobs: 4\n  min_free: 0B\n  timeout_s: 30.0\n  backoff_s: 0.1\n"
        cfg = tmp_path / "c.yaml"
        cfg.write_text(f"root: {root}\nmetadata:\n  metadata_dir: {meta.metadata_dir}\nselection:\n  min_quality: 0.8\nplan:\n  max_per_class: 1\n{dl_section}")
        planned = cli("plan", "-c", str(cfg))
        assert planned.returncode == 0, planned.stderr
        old_classes = read_plan(layout).classes
        cfg.write_text(cfg.read_text().replace("min_quality: 0.8", "min_quality: 0.9"))
        dl = cli("download", "-c", str(cfg))
        assert dl.returncode == 0, dl.stderr
        new_plan = read_plan(layout)
        assert 0 < len(new_plan.classes) < len(old_classes)
        man = cli("manifest", "-c", str(cfg))
        assert man.returncode == 0, man.stderr
        lock = json.loads(layout.lock_json.read_text())
        assert lock["selection"]["config"]["min_quality"] == 0.9
        assert lock["selection"]["classes"] == list(new_plan.classes)
        assert lock["plan"]["content_hash"] == new_plan.content_hash
        owners = {line.split(",")[3] for line in layout.clips_csv.read_text().splitlines()[1:]}
        assert owners and owners <= set(new_plan.classes)
        run = cli("run", "-c", str(cfg), "--until", "manifest")
        assert run.returncode == 0, run.stderr
    status = {s["name"]: s["status"] for s in json.loads((layout.report_dir / "run.json").read_text())["stages"]}
    assert status["plan"] == "up to date" and status["manifest"] == "up to date"
    assert json.loads(layout.lock_json.read_text()) == lock
