"""SIGTERM during a download is handled like Ctrl-C: what finished is committed, the exit
code is 143, and a rerun ends with exactly the clips and files of an uninterrupted run."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from support.download_cli import download_cmd, write_download_config

from audioset_fewshot.config import DownloadOptions
from audioset_fewshot.demo.server import MediaServer, SourceSpec
from audioset_fewshot.download.ledger import Ledger
from audioset_fewshot.download.runner import run_download
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.plan import PlanEntry, SamplingPlan, write_plan

MIDS = ("/m/0tdog", "/m/0tcat")
FAST = {"max_per_hour": None, "min_interval_s": 0.0, "backoff_s": 0.05, "retries": 1, "min_free": "0B", "timeout_s": 30.0}
ENV = {**os.environ, "AUDIOSET_FEWSHOT_PROGRESS": "0"}


def _ids() -> list[str]:
    return [f"st{m[-3:]}{k:06d}" for m in MIDS for k in range(5)]


def _plan() -> SamplingPlan:
    entries = [PlanEntry(f"st{m[-3:]}{k:06d}_1000", f"st{m[-3:]}{k:06d}", 1.0, 11.0, m, (m,), "balanced", k) for m in MIDS for k in range(5)]
    params = {"seed": 0, "max_per_class": 4, "sources": ["balanced"], "owner_policy": "fewest-candidates", "shard": None, "classes": sorted(MIDS)}
    return SamplingPlan.build(entries, dict.fromkeys(MIDS, 4), params=params)


def _catalog() -> dict[str, SourceSpec]:
    return {y: SourceSpec(class_key=f"demo-class-{i % 3}", duration_s=12.0) for i, y in enumerate(_ids())}


@pytest.fixture(scope="module")
def media_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("media-sigterm")
    with MediaServer(cache_dir=cache, catalog=_catalog(), idle_timeout_s=60) as srv:
        srv.prepare(_ids(), formats=(140,), workers=2)
    return cache


def _snapshot(root: Path) -> tuple[list[str], dict[str, str]]:
    with Ledger(DatasetLayout(root).ledger_file, readonly=True) as led:
        ok = sorted(r.clip_id for r in led.rows("ok"))
    files = {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((root / "audio").rglob("*")) if p.is_file()}
    return ok, files


def test_sigterm_during_download_then_rerun_gives_the_uninterrupted_result(media_cache: Path, tmp_path: Path) -> None:
    with MediaServer(cache_dir=media_cache, catalog=_catalog(), idle_timeout_s=120, latency_s=0.15) as srv:
        srv.set_fault(_ids()[1], "unavailable")
        run_download(_plan(), tmp_path / "ref", DownloadOptions(jobs=2, base_url=srv.base_url, **FAST))
        reference = _snapshot(tmp_path / "ref")

        root = tmp_path / "root"
        write_plan(_plan(), DatasetLayout(root))
        cfg = tmp_path / "config.yaml"
        write_download_config(cfg, root, max_per_class=4)
        cmd = download_cmd(cfg, srv.base_url)
        terminated = 0
        progress: list[int] = []
        for delay in np.random.default_rng(15).uniform(0.1, 1.2, size=3):
            seen = len(srv.requests)
            proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + 30
            while len(srv.requests) == seen and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            try:
                proc.wait(timeout=float(delay))
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
            if proc.returncode == 143:
                terminated += 1
                assert "terminated (SIGTERM): what was committed is kept" in err and "Traceback" not in err, err
            else:
                assert proc.returncode == 0, err
            with Ledger(DatasetLayout(root).ledger_file, readonly=True) as led:
                progress.append(len(led.rows("ok")))
        assert terminated >= 1, progress
        done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
    assert _snapshot(root) == reference
    assert not list(root.rglob(".tmp-*"))
