"""Must-hold: manifests of real downloads (the runner, real yt-dlp and ffmpeg against the
127.0.0.1 media server).

* two independent downloads of one plan give identical clips.csv and lock.json;
* delete one file, corrupt another, add a stray one: ``verify`` names all three, exit 1;
* ``rebuild`` into an empty root, ``diff`` with the original: no difference but the
  clip the server now reports unavailable;
* two shards downloaded separately and merged give the clips.csv of one unsharded run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.manifest_helpers import write_segment_list

from audioset_fewshot.config import DownloadOptions
from audioset_fewshot.demo.server import CC_BY, MediaServer, SourceSpec
from audioset_fewshot.download.runner import run_download
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.manifest import read_clips
from audioset_fewshot.manifest.build import build_manifest
from audioset_fewshot.manifest.diff import diff_manifests
from audioset_fewshot.manifest.merge import merge_roots
from audioset_fewshot.manifest.rebuild import rebuild
from audioset_fewshot.metadata import read_segments
from audioset_fewshot.plan import make_plan, shard_of, write_plan

SPEECH, DOG = "/m/09x0r", "/m/0bt9lr"
MAX_PER_CLASS = 3
FAST = {"jobs": 3, "max_per_hour": None, "min_interval_s": 0.0, "backoff_s": 0.02, "retries": 1, "min_free": "0B", "timeout_s": 30.0}


def _ids() -> dict[str, list[str]]:
    """Four candidates per class, two in each of two shards (so that a shard's target,
    ceil(3 / 2) = 2, holds every clip the unsharded run would take from it)."""
    out: dict[str, list[str]] = {}
    k = 0
    for tag, mid in (("sp", SPEECH), ("dg", DOG)):
        per_shard: dict[int, list[str]] = {0: [], 1: []}
        while min(len(v) for v in per_shard.values()) < 2:
            y = f"mf{tag}{k:07d}"
            k += 1
            s = shard_of(y, 2)
            if len(per_shard[s]) < 2:
                per_shard[s].append(y)
        out[mid] = per_shard[0] + per_shard[1]
    return out


IDS = _ids()
ALL_IDS = [y for ys in IDS.values() for y in ys]
DEAD = IDS[DOG][1]  # private from the start


def catalog() -> dict[str, SourceSpec]:
    return {
        y: SourceSpec(class_key=f"demo-class-{i % 2}", duration_s=12.0, title=f"Clip {i}", uploader=f"Uploader {i}", license=CC_BY if i % 3 == 0 else "Standard YouTube License")
        for i, y in enumerate(ALL_IDS)
    }  # fmt: skip


@pytest.fixture(scope="module")
def media_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("media")
    with MediaServer(cache_dir=cache, catalog=catalog(), idle_timeout_s=60) as srv:
        srv.prepare(ALL_IDS, formats=(140,), workers=2)
    return cache


def server(cache: Path) -> MediaServer:
    srv = MediaServer(cache_dir=cache, catalog=catalog(), idle_timeout_s=120)
    srv.set_fault(DEAD, "private")
    return srv


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory):  # -> SegmentTable
    path = tmp_path_factory.mktemp("meta") / "balanced_train_segments.csv"
    return read_segments({"balanced": write_segment_list(path, [(y, mid) for mid, ys in IDS.items() for y in ys])})


def download(table, root: Path, srv: MediaServer, *, shard: tuple[int, int] | None = None) -> DatasetLayout:
    plan = make_plan([SPEECH, DOG], table, seed=0, max_per_class=MAX_PER_CLASS, sources=["balanced"], shard=shard)
    layout = DatasetLayout(root)
    write_plan(plan, layout)
    run_download(plan, root, DownloadOptions(base_url=srv.base_url, **FAST))
    build_manifest(root)
    return layout


@pytest.fixture(scope="module")
def original(media_cache: Path, table, tmp_path_factory: pytest.TempPathFactory) -> DatasetLayout:
    with server(media_cache) as srv:
        return download(table, tmp_path_factory.mktemp("orig") / "root", srv)


def test_two_downloads_identical_manifest(original: DatasetLayout, media_cache: Path, table, tmp_path: Path) -> None:
    with server(media_cache) as srv:
        again = download(table, tmp_path / "again", srv)
    rows = read_clips(original.clips_csv, root=original.root)
    assert len(rows) == 2 * MAX_PER_CLASS and DEAD not in {r.ytid for r in rows}
    assert DEAD in original.unavailable_csv.read_text()
    assert again.clips_csv.read_bytes() == original.clips_csv.read_bytes()
    lock_a, lock_b = (json.loads(p.read_text()) for p in (original.lock_json, again.lock_json))
    assert lock_a["content_hash"] == lock_b["content_hash"]
    assert lock_a["tool_versions"]["yt_dlp"] and lock_a["tool_versions"]["ffmpeg"] and lock_a["tool_versions"]["yt_dlp_ejs"]
    assert again.lock_json.read_bytes() == original.lock_json.read_bytes()


def test_verify_names_missing_corrupt_and_stray(original: DatasetLayout, tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(original.root, root)
    rows = read_clips(original.clips_csv)
    (root / rows[0].path).unlink()
    corrupt = root / rows[1].path
    data = bytearray(corrupt.read_bytes())
    data[-100] ^= 0x55
    corrupt.write_bytes(bytes(data))
    stray = root / "audio" / "m_09x0r" / "stray.flac"
    shutil.copyfile(root / rows[2].path, stray)
    proc = subprocess.run([sys.executable, "-m", "audioset_fewshot", "verify", "--root", str(root)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(ln.startswith("missing") and rows[0].path in ln for ln in lines)
    assert any(ln.startswith("corrupt-hash") and rows[1].path in ln for ln in lines)
    assert any(ln.startswith("unexpected") and "audio/m_09x0r/stray.flac" in ln for ln in lines)
    assert "3 problem(s)" in lines[-1]


def test_rebuild_then_diff_shows_only_the_gone_clip(original: DatasetLayout, media_cache: Path, tmp_path: Path) -> None:
    rows = read_clips(original.clips_csv)
    gone = rows[-1]
    with server(media_cache) as srv:
        srv.set_fault(gone.ytid, "unavailable")
        rep = rebuild(original.clips_csv, tmp_path / "rebuilt", DownloadOptions(base_url=srv.base_url, **FAST))
        requested = {r.ytid for r in srv.requests if r.kind == "watch"}
        proc = subprocess.run(
            [sys.executable, "-m", "audioset_fewshot", "rebuild", str(original.root), "--root", str(tmp_path / "by-cli"), "--base-url", srv.base_url,
             "--jobs", "2", "--max-per-hour", "0", "--min-interval-s", "0", "--backoff-s", "0.02", "--retries", "1", "--min-free", "0B", "--format", "json"],
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
    assert proc.returncode == 1, proc.stderr  # a listed clip is gone: not rebuilt as listed
    assert json.loads(proc.stdout)["unavailable"] == {gone.clip_id: "unavailable"}
    assert requested == {r.ytid for r in rows}  # exactly the listed clips: no new draw, no top-up
    assert rep.unavailable == {gone.clip_id: "unavailable"}
    assert len(rep.same) == len(rows) - 1 and not rep.different and not rep.failed
    d = diff_manifests(original.root, tmp_path / "rebuilt")
    assert d.only_a == (gone.clip_id,) and not d.only_b and not d.changed
    proc = subprocess.run(
        [sys.executable, "-m", "audioset_fewshot", "diff", str(original.root), str(tmp_path / "rebuilt"), "--format", "json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr  # the manifests differ (one clip gone)
    assert json.loads(proc.stdout)["totals"] == {"same": len(rows) - 1, "changed": 0, "only_a": 1, "only_b": 0}


def test_two_shards_merged_equal_one_run(original: DatasetLayout, media_cache: Path, table, tmp_path: Path) -> None:
    with server(media_cache) as srv:
        s0 = download(table, tmp_path / "s0", srv, shard=(0, 2))
        s1 = download(table, tmp_path / "s1", srv, shard=(1, 2))
    assert s0.clips_csv.read_bytes() != original.clips_csv.read_bytes()
    rep = merge_roots([s0.root, s1.root], into=tmp_path / "merged")
    merged = DatasetLayout(tmp_path / "merged")
    assert merged.clips_csv.read_bytes() == original.clips_csv.read_bytes()
    assert json.loads(merged.lock_json.read_text())["clips"] == json.loads(original.lock_json.read_text())["clips"]
    assert rep.clips == 2 * MAX_PER_CLASS and rep.same_as_one_run and not rep.conflicts
    proc = subprocess.run([sys.executable, "-m", "audioset_fewshot", "verify", "--root", str(merged.root)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_rebuild_against_other_media_names_the_cause_and_fails(original: DatasetLayout, media_cache: Path, tmp_path: Path) -> None:
    """A host that serves other media under the listed IDs (for a demo manifest: a server
    without the demo's catalogue) is named as the cause, and the CLI exits 1."""
    rows = read_clips(original.clips_csv)
    short, other = rows[0], rows[1]
    specs = catalog()
    specs[short.ytid] = SourceSpec(class_key="demo-class-0", duration_s=5.0)  # ends before the 1-11 s segment
    specs[other.ytid] = SourceSpec(class_key="demo-class-9", duration_s=12.0)  # same length, other sound
    with MediaServer(cache_dir=media_cache, catalog=specs, idle_timeout_s=120) as srv:
        proc = subprocess.run(
            [sys.executable, "-m", "audioset_fewshot", "rebuild", str(original.root), "--root", str(tmp_path / "other"), "--base-url", srv.base_url,
             "--jobs", "2", "--max-per-hour", "0", "--min-interval-s", "0", "--backoff-s", "0.02", "--retries", "1", "--min-free", "0B"],
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"different content: {other.clip_id}" in proc.stdout
    why = [ln for ln in proc.stderr.splitlines() if ln.startswith("why: ")]
    assert any("1 source(s) too short for their segment" in ln and short.clip_id in ln and "serve-demo --root DEMO" in ln for ln in why), proc.stderr
    assert any(f"other bytes (e.g. {other.clip_id})" in ln for ln in why), proc.stderr
