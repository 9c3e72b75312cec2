"""Shards whose share of a class's first obtainable clips exceeds a shard's target
(``ceil(max_per_class / n)``) leave gaps in a merge; ``download`` on the merged root
fills them, and the manifest is then the one of a single unsharded run.

Real yt-dlp + ffmpeg against the media server.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.manifest_helpers import write_segment_list

from audioset_fewshot.config import DownloadOptions
from audioset_fewshot.demo.server import MediaServer, SourceSpec
from audioset_fewshot.download.ledger import Ledger
from audioset_fewshot.download.runner import run_download
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.manifest.build import build_manifest
from audioset_fewshot.manifest.merge import merge_roots
from audioset_fewshot.metadata import read_segments
from audioset_fewshot.plan import make_plan, order_key, read_plan, shard_of, write_plan

MID = "/m/0bt9lr"
TARGET = 3
FAST = {"jobs": 2, "max_per_hour": None, "min_interval_s": 0.0, "backoff_s": 0.02, "retries": 1, "min_free": "0B", "timeout_s": 30.0}


def _uneven_ids() -> list[str]:
    """Six candidates whose three lowest ranks all fall in shard 0 and the rest in shard 1:
    shard 0 stops at ceil(3/2) = 2, so the unsharded run's third clip is never tried."""
    ranked = sorted((f"gap{k:08d}" for k in range(64)), key=lambda y: order_key(0, MID, y, 1.0))
    first = [y for y in ranked if shard_of(y, 2) == 0][:3]
    last_key = order_key(0, MID, first[-1], 1.0)
    rest = [y for y in ranked if shard_of(y, 2) == 1 and order_key(0, MID, y, 1.0) > last_key][:3]
    return first + rest


IDS = _uneven_ids()


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory):  # -> SegmentTable
    path = tmp_path_factory.mktemp("meta") / "balanced_train_segments.csv"
    return read_segments({"balanced": write_segment_list(path, [(y, MID) for y in IDS])})


def _download(table, root: Path, srv: MediaServer, shard: tuple[int, int] | None) -> DatasetLayout:
    plan = make_plan([MID], table, seed=0, max_per_class=TARGET, sources=["balanced"], shard=shard)
    layout = DatasetLayout(root)
    write_plan(plan, layout)
    run_download(plan, root, DownloadOptions(base_url=srv.base_url, **FAST))
    build_manifest(root)
    return layout


def test_merge_gaps_filled_by_download_equal_one_run(table, tmp_path: Path) -> None:
    catalog = {y: SourceSpec(class_key="gap-class", duration_s=12.0) for y in IDS}
    with MediaServer(cache_dir=tmp_path / "media", catalog=catalog, idle_timeout_s=120) as srv:
        one = _download(table, tmp_path / "one", srv, None)
        s0 = _download(table, tmp_path / "s0", srv, (0, 2))
        s1 = _download(table, tmp_path / "s1", srv, (1, 2))
        rep = merge_roots([s0.root, s1.root], into=tmp_path / "merged")
        merged = DatasetLayout(tmp_path / "merged")
        assert rep.gaps == {MID: 1} and not rep.same_as_one_run
        assert merged.clips_csv.read_bytes() != one.clips_csv.read_bytes()  # the gap shows

        srv.reset_log()
        run_download(read_plan(merged), merged.root, DownloadOptions(base_url=srv.base_url, **FAST))
        asked = {r.ytid for r in srv.requests if r.kind == "watch"}
        assert asked == {IDS[2]}  # only the gap was fetched
    build_manifest(merged.root)
    assert merged.clips_csv.read_bytes() == one.clips_csv.read_bytes()
    with Ledger(merged.ledger_file, readonly=True) as led:
        ok = {r.ytid for r in led.rows("ok")}
        displaced = [r for r in led.rows("pending") if r.reason == "surplus"]
    assert ok == set(IDS[:3])
    assert len(displaced) == 1 and displaced[0].ytid not in ok
    # the displaced clip's file is gone: the root holds exactly the manifest's files
    files = sorted(p.name for p in merged.audio_dir.rglob("*.flac"))
    assert files == sorted(f"{y}_1000.flac" for y in IDS[:3])
