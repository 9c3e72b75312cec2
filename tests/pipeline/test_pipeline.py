"""The pipeline runner and the ``run`` command without the demo server (fast)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from audioset_fewshot.config import Config, load_config
from audioset_fewshot.demo.session import demo_config, demo_overrides
from audioset_fewshot.download.governor import host_rate
from audioset_fewshot.errors import UsageError
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.pipeline import RAN, STAGES, UP_TO_DATE, check_stage, run


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audioset_fewshot", *args], capture_output=True, text=True, timeout=timeout)


def test_stages_in_data_flow_order() -> None:
    assert STAGES == ("selection", "plan", "download", "manifest", "clean", "pack", "features", "splits", "episodes", "evaluate", "report")
    assert check_stage("plan") == "plan"
    assert check_stage(None) is None
    with pytest.raises(UsageError, match="unknown stage 'plna'.*Did you mean 'plan'"):
        check_stage("plna")


def test_run_until_plan_on_real_metadata_then_up_to_date(tmp_path: Path, shared_metadata_dir: Path) -> None:
    root = tmp_path / "root"
    cfg = load_config(None, {"metadata.metadata_dir": str(shared_metadata_dir), "plan.sources": ["balanced", "eval"], "plan.max_per_class": 5})
    first = run(cfg, root=root, until="plan")
    assert [s.name for s in first.stages] == ["selection", "plan"]
    assert first.stage("plan").status == RAN
    assert first.stage("selection").summary["classes"] == 142
    layout = DatasetLayout(root)
    assert layout.plan_file.is_file()
    saved = load_config(layout.config_file)
    assert saved.root == str(root) and saved.plan.max_per_class == 5
    assert json.loads((layout.report_dir / "run.json").read_text(encoding="utf-8"))["until"] == "plan"
    second = run(cfg, root=root, until="plan")
    assert second.stage("plan").status == UP_TO_DATE
    # a changed parameter reruns the stage
    third = run(
        load_config(None, {"metadata.metadata_dir": str(shared_metadata_dir), "plan.sources": ["balanced", "eval"], "plan.max_per_class": 6}),
        root=root,
        until="plan",
    )
    assert third.stage("plan").status == RAN


def test_run_command_until_plan(tmp_path: Path, shared_metadata_dir: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"metadata:\n  metadata_dir: {shared_metadata_dir}\nplan:\n  sources: [balanced]\n", encoding="utf-8")
    proc = _cli("run", "-c", str(cfg), "--root", str(tmp_path / "r"), "--until", "plan")
    assert proc.returncode == 0, proc.stderr
    assert "plan" in proc.stdout and "ran" in proc.stdout
    again = _cli("run", "-c", str(cfg), "--root", str(tmp_path / "r"), "--until", "plan")
    assert again.returncode == 0
    assert any(line.startswith("plan") and "up to date" in line for line in again.stdout.splitlines())


def test_run_command_usage_errors(tmp_path: Path) -> None:
    bad = _cli("run", "--root", str(tmp_path), "--until", "nowhere")
    assert bad.returncode == 2
    assert "nowhere" in bad.stderr
    cache = _cli("run", "--root", str(tmp_path), "--media-cache", str(tmp_path / "m"))
    assert cache.returncode == 2
    assert "--demo" in cache.stderr


def test_demo_overrides_fit_the_demo_and_keep_the_url_out_of_content_keys(tmp_path: Path) -> None:
    over = demo_overrides(tmp_path, metadata_dir=tmp_path / "m", base_url="http://127.0.0.1:1234")
    cfg = demo_config(Config(), over)
    assert cfg.download.base_url == "http://127.0.0.1:1234"
    # the default rate is the host's: no cap against the loopback demo server
    assert host_rate(cfg.download.max_per_hour, cfg.download.min_interval_s, base_url=cfg.download.base_url) == (None, 0.0)
    # a knob the user set survives; the root, metadata and URL are always the demo's
    mine = demo_config(load_config(None, {"evaluate.steps": 7, "download.max_per_hour": 50.0, "root": "elsewhere"}), over)
    assert mine.evaluate.steps == 7 and mine.download.max_per_hour == 50.0 and mine.root == str(tmp_path)
    assert mine.episodes.k_shot == 5
    cfg = load_config(None, over)
    assert cfg.download.base_url == "http://127.0.0.1:1234"
    assert cfg.episodes.n_way == 5 and cfg.episodes.k_shot == 5 and cfg.episodes.split == "test"
    assert cfg.evaluate.steps <= 300
    assert cfg.download.pause_s <= 3.0
    assert cfg.download.max_per_hour == Config().download.max_per_hour == "auto"
    # only the download section knows the URL (a new port each run keeps the plan and ledger keys)
    assert [k for k, v in over.items() if v == "http://127.0.0.1:1234"] == ["download.base_url"]


def test_demo_until_plan_is_fast_and_stable_across_server_ports(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    first = _cli("run", "--demo", "--root", str(root), "--until", "plan")
    assert first.returncode == 0, first.stderr
    layout = DatasetLayout(root)
    assert (root / "demo-metadata" / "balanced_train_segments.csv").is_file()
    assert not (root / ".demo-media").exists() or not any((root / ".demo-media").iterdir())  # no media before download
    plan = json.loads(layout.plan_meta_file.read_text(encoding="utf-8"))
    assert len(plan["targets"]) == 30
    second = _cli("run", "--demo", "--root", str(root), "--until", "plan")
    assert second.returncode == 0, second.stderr
    assert any(line.startswith("plan") and "up to date" in line for line in second.stdout.splitlines())
    # the saved config says "demo root"; the server's ephemeral port is stored nowhere in it
    saved = load_config(layout.config_file)
    assert saved.demo and saved.download.base_url == Config().download.base_url
    assert "http://127.0.0.1" not in layout.config_file.read_text(encoding="utf-8")
    assert "metadata_dir: demo-metadata" in layout.config_file.read_text(encoding="utf-8")  # relative to the root
    # a demo root resumes as a demo without --demo, from another folder; download refuses to send it to YouTube
    resumed = subprocess.run([sys.executable, "-m", "audioset_fewshot", "run", "--root", str(root), "--until", "plan"],
                             capture_output=True, text=True, timeout=300, cwd=tmp_path / "demo" / "demo-metadata")  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert any(line.startswith("plan") and "up to date" in line for line in resumed.stdout.splitlines())
    assert json.loads((layout.report_dir / "run.json").read_text(encoding="utf-8"))["demo"] is True
    refused = _cli("download", "--root", str(root))
    assert refused.returncode == 2 and "is a demo root" in refused.stderr and f"serve-demo --root {root}" in refused.stderr


def test_a_root_resumes_with_root_from_any_folder(tmp_path: Path, shared_metadata_dir: Path) -> None:
    """Made in folder A with relative paths; resumed from folder B, which has a metadata
    folder of the same (relative) name with other lists in it: the root's own are used."""
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        folder.mkdir()
    shutil.copytree(shared_metadata_dir, a / "meta")
    (b / "meta").mkdir()  # decoy: a metadata folder with no lists at all
    made = subprocess.run([sys.executable, "-m", "audioset_fewshot", "run", "--root", "data", "--metadata-dir", "meta", "--until", "plan"],
                          capture_output=True, text=True, timeout=300, cwd=a)  # fmt: skip
    assert made.returncode == 0, made.stderr
    text = (a / "data" / "config.yaml").read_text(encoding="utf-8")
    assert "\nroot: .\n" in text and f"metadata_dir: {a / 'meta'}" in text  # the root itself; outside it, absolute
    again = subprocess.run([sys.executable, "-m", "audioset_fewshot", "run", "--root", str(a / "data"), "--until", "plan"],
                           capture_output=True, text=True, timeout=300, cwd=b)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert any(line.startswith("plan") and "up to date" in line for line in again.stdout.splitlines())
    relative = subprocess.run([sys.executable, "-m", "audioset_fewshot", "run", "--root", "../a/data", "--until", "plan"],
                              capture_output=True, text=True, timeout=300, cwd=b)  # fmt: skip
    assert relative.returncode == 0 and "up to date" in relative.stdout, relative.stderr
    assert not (b / "data").exists()


def test_a_saved_config_is_read_relative_to_its_folder(tmp_path: Path) -> None:
    from audioset_fewshot.config import rooted, write_config

    root = tmp_path / "root"
    cfg = load_config(None, {"root": str(root), "metadata.metadata_dir": str(root / "lists"), "metadata.cache_dir": str(tmp_path / "cache")})
    assert rooted(cfg, root).root == "." and rooted(cfg, root).metadata.metadata_dir == "lists"
    write_config(root / "config.yaml", cfg, root=root)
    moved = tmp_path / "moved"
    shutil.move(str(root), moved)  # a root moves as a whole: inside paths follow it
    back = load_config(moved / "config.yaml")
    assert back.root == str(moved) and back.metadata.metadata_dir == str(moved / "lists")
    assert back.metadata.cache_dir == str(tmp_path / "cache")
