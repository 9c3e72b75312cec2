"""The plan and download commands: byte-identical plans, lock, disk guard, cookies never leak."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.manifest_helpers import write_segment_list

from audioset_fewshot.demo.server import MediaServer, SourceSpec
from audioset_fewshot.download.runner import RootLock
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.plan import PlanEntry, SamplingPlan, read_plan, write_plan

ENV = {**os.environ, "AUDIOSET_FEWSHOT_PROGRESS": "0"}
MID = "/m/0dog"
IDS = ["clidl000001", "clidl000002"]
SECRET = "cookieV4lue-must-never-leak"


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audioset_fewshot", *args], capture_output=True, text=True, timeout=timeout, env=ENV)


def test_plan_command_is_byte_identical(shared_metadata_dir: Path, tmp_path: Path) -> None:
    args = ["plan", "--metadata-dir", str(shared_metadata_dir), "--sources", "balanced", "--max-per-class", "5", "--seed", "3"]
    a = cli(*args, "--root", str(tmp_path / "a"))
    b = cli(*args, "--root", str(tmp_path / "b"))
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    assert "wrote" in a.stdout and "142 classes" in a.stdout
    la, lb = DatasetLayout(tmp_path / "a"), DatasetLayout(tmp_path / "b")
    assert la.plan_file.read_bytes() == lb.plan_file.read_bytes()
    assert la.plan_meta_file.read_bytes() == lb.plan_meta_file.read_bytes()
    again = cli(*args, "--root", str(tmp_path / "a"))
    assert "unchanged" in again.stdout
    plan = read_plan(la)
    assert plan.params["seed"] == 3 and set(plan.targets.values()) == {5}
    bad = cli("plan", "--root", str(tmp_path / "c"), "--metadata-dir", str(shared_metadata_dir), "--include", "Dog barking")
    assert bad.returncode == 2 and "Did you mean" in bad.stderr


def _setup(tmp_path: Path, root: Path) -> Path:
    entries = [PlanEntry(f"{y}_1000", y, 1.0, 11.0, MID, (MID,), "balanced", k) for k, y in enumerate(IDS)]
    params = {"seed": 0, "max_per_class": 2, "sources": ["balanced"], "owner_policy": "fewest-candidates", "shard": None, "classes": [MID]}
    write_plan(SamplingPlan.build(entries, {MID: 2}, params=params), DatasetLayout(root))
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"root: {root}\nplan:\n  seed: 0\n  max_per_class: 2\n  sources: [balanced]\ndownload:\n  min_interval_s: 0.0\n  timeout_s: 30.0\n")
    return cfg


@pytest.mark.slow
def test_download_command_lock_disk_and_cookies(tmp_path: Path) -> None:
    root = tmp_path / "root"
    cfg = _setup(tmp_path, root)
    cookies = tmp_path / "cookies.txt"
    exp = int(time.time()) + 86400
    cookies.write_text(f"# Netscape HTTP Cookie File\n.youtube.com\tTRUE\t/\tTRUE\t{exp}\tSID\t{SECRET}\n")
    cat = {y: SourceSpec(class_key="demo-class-2", duration_s=12.0) for y in IDS}
    with MediaServer(cache_dir=tmp_path / "media", catalog=cat, idle_timeout_s=60) as srv:
        base = ["download", "-c", str(cfg), "--base-url", srv.base_url, "--max-per-hour", "0", "--jobs", "2"]
        # one run per root
        with RootLock(DatasetLayout(root)):
            locked = cli(*base, "--min-free", "0B")
        assert locked.returncode == 1 and "another run is using" in locked.stderr
        # the disk guard stops cleanly before any request; a rerun with space continues
        full = cli(*base, "--min-free", "1000TB")
        assert full.returncode == 1 and "min_free" in full.stderr and "run the same command again" in full.stderr
        assert [r for r in srv.requests if r.kind == "watch"] == []
        ok = cli(*base, "--min-free", "0B", "--cookies", str(cookies))
        assert ok.returncode == 0, ok.stderr
        assert "obtained 2/2" in ok.stdout and "about" in ok.stdout  # estimate printed first
        assert ok.stderr.count("using YouTube cookies") == 1  # the one-time cookie warning
    out = locked.stdout + locked.stderr + full.stdout + full.stderr + ok.stdout + ok.stderr
    assert SECRET not in out
    for p in root.rglob("*"):
        if p.is_file():
            assert SECRET.encode() not in p.read_bytes(), p
    saved = (root / "config.yaml").read_text()
    assert "cookies: <redacted>" in saved and str(cookies) not in saved
    assert len(list((root / "audio").rglob("*.flac"))) == 2


@pytest.mark.slow
def test_download_builds_the_plan_from_metadata_then_reruns_without_requests(tmp_path: Path) -> None:
    """No plan in the root: the command reads the metadata, selects, plans, downloads."""
    a, b = "/m/012ndj", "/m/0130jx"  # leaf classes with QA >= 0.8
    rows = [("mdplan00001", a), ("mdplan00002", a), ("mdplan00003", b), ("mdplan00004", f"{b},{a}")]
    meta = tmp_path / "meta"
    meta.mkdir()
    write_segment_list(meta / "balanced_train_segments.csv", rows)
    root = tmp_path / "root"
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"root: {root}\nplan:\n  max_per_class: 1\n  sources: [balanced]\ndownload:\n  min_interval_s: 0.0\n  timeout_s: 30.0\n")
    cat = {y: SourceSpec(class_key="demo-class-1", duration_s=12.0) for y, _ in rows}
    with MediaServer(cache_dir=tmp_path / "media", catalog=cat, idle_timeout_s=60) as srv:
        args = ["download", "-c", str(cfg), "--metadata-dir", str(meta), "--base-url", srv.base_url, "--max-per-hour", "0", "--min-free", "0B"]
        first = cli(*args)
        assert first.returncode == 0, first.stderr
        assert "(new)" in first.stdout and "obtained 2/2 clips in 2 classes" in first.stdout
        plan = read_plan(DatasetLayout(root))
        assert set(plan.classes) == {a, b} and len(plan.entries) == 4
        shared = [e for e in plan.entries if e.ytid == "mdplan00004"][0]
        assert shared.owner_mid == b and shared.labels == (a, b)  # b has fewer candidates: it owns the shared clip
        srv.reset_log()
        again = cli(*args)
        assert again.returncode == 0 and "(new)" not in again.stdout and srv.requests == []


def test_the_youtube_budget_applies_to_remote_hosts_not_to_the_loopback_demo_server() -> None:
    from audioset_fewshot.config import load_config
    from audioset_fewshot.download.governor import host_rate, is_loopback_host

    d = load_config(None).download
    assert (d.max_per_hour, d.min_interval_s) == ("auto", "auto")
    assert host_rate(d.max_per_hour, d.min_interval_s, base_url="https://www.youtube.com") == (300.0, 1.0)
    assert host_rate(d.max_per_hour, d.min_interval_s, base_url="http://127.0.0.1:8123") == (None, 0.0)
    assert host_rate(100, 2.0, base_url="http://127.0.0.1:8123") == (100.0, 2.0)  # a number set by the user is kept
    assert host_rate(0, "auto", base_url="https://www.youtube.com") == (None, 1.0)  # 0 = unlimited
    assert is_loopback_host("http://localhost:9/x") and is_loopback_host("http://[::1]:80") and not is_loopback_host("http://10.0.0.1")
