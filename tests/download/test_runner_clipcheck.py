"""A clip damaged after its download is noticed by the next run and fetched again;
an intact root is checked from size and mtime alone (no clip is read twice)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from audioset_fewshot.config import DownloadOptions
from audioset_fewshot.demo.server import MediaServer, SourceSpec
from audioset_fewshot.download.ledger import Ledger
from audioset_fewshot.download.runner import run_download
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.plan import PlanEntry, SamplingPlan

MID = "/m/0cc"
FAST = {"max_per_hour": None, "min_interval_s": 0.0, "backoff_s": 0.05, "retries": 1, "min_free": "0B", "timeout_s": 30.0}


def _ids() -> list[str]:
    return [f"cc{k:09d}" for k in range(3)]


def _plan() -> SamplingPlan:
    entries = [PlanEntry(f"{y}_1000", y, 1.0, 11.0, MID, (MID,), "balanced", k) for k, y in enumerate(_ids())]
    return SamplingPlan.build(
        entries, {MID: 3}, params={"seed": 0, "max_per_class": 3, "sources": ["balanced"], "owner_policy": "fewest-candidates", "shard": None, "classes": [MID]}
    )


@pytest.fixture(scope="module")
def media_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("media-cc")
    with MediaServer(cache_dir=cache, catalog=_catalog(), idle_timeout_s=60) as srv:
        srv.prepare(_ids(), formats=(140,), workers=2)
    return cache


def _catalog() -> dict[str, SourceSpec]:
    return {y: SourceSpec(class_key="demo-class-0", duration_s=12.0) for y in _ids()}


def _files(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((root / "audio").rglob("*")) if p.is_file()}


def test_a_damaged_clip_is_fetched_again_and_an_intact_one_is_not_read(media_cache: Path, tmp_path: Path) -> None:
    layout = DatasetLayout(tmp_path)
    with MediaServer(cache_dir=media_cache, catalog=_catalog(), idle_timeout_s=60) as srv:
        assert run_download(_plan(), tmp_path, DownloadOptions(jobs=2, base_url=srv.base_url, **FAST)).complete
        good = _files(tmp_path)
        srv.reset_log()
        run_download(_plan(), tmp_path, DownloadOptions(jobs=2, base_url=srv.base_url, **FAST))
        assert srv.requests == []
        cache = json.loads(layout.clip_stat_cache.read_text())["files"]
        assert sorted(cache) == sorted(good)  # every clip hashed once, with its size and mtime
        # damage one clip in place (same size): the next run notices and fetches it again
        victim = sorted(good)[1]
        with open(tmp_path / victim, "r+b") as fh:
            fh.seek(5000)
            byte = fh.read(1)
            fh.seek(5000)
            fh.write(bytes([byte[0] ^ 0xFF]))
        os.utime(tmp_path / victim, ns=(1, 1))  # a changed mtime is what makes it hashed again
        rep = run_download(_plan(), tmp_path, DownloadOptions(jobs=2, base_url=srv.base_url, **FAST))
        assert rep.complete and rep.obtained_now == 1
        assert {r.ytid for r in srv.requests} == {victim.split("/")[-1].rsplit("_", 1)[0]}
        assert _files(tmp_path) == good
        with Ledger(layout.ledger_file, readonly=True) as led:
            assert len(led.rows("ok")) == 3
