from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from support.manifest_helpers import CAT, DOG, SPEECH, Clip, make_root, standard_clips, ytid

from audioset_fewshot.errors import ManifestError, StageNotReadyError
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.manifest import read_clips
from audioset_fewshot.manifest.build import BY_CLASS_COLUMNS, build_manifest


def test_build_writes_every_file(small_root: DatasetLayout) -> None:
    rec = build_manifest(small_root.root)
    assert (rec.clips, rec.classes, rec.unavailable) == (5, 3, 2)
    rows = read_clips(small_root.clips_csv, root=small_root.root)
    assert [r.ytid for r in rows] == [ytid(7), ytid(1), ytid(2), ytid(4), ytid(6)]  # sorted by owner, ytid
    assert rows[1].labels == tuple(sorted((SPEECH, DOG)))
    with open(small_root.by_class_dir / "m_0bt9lr.csv", newline="") as fh:
        by_class = list(csv.reader(fh))
    assert tuple(by_class[0]) == BY_CLASS_COLUMNS
    assert by_class[1] == [ytid(4), DOG, "Dog", f"audio/m_0bt9lr/{ytid(4)}_30000.flac", f"https://www.youtube.com/watch?v={ytid(4)}&t=30s", "16000"]
    unavailable = small_root.unavailable_csv.read_text().splitlines()
    assert unavailable[1:] == [
        f"{ytid(3)},30.000,40.000,{SPEECH},balanced,failed-permanent,private",
        f"{ytid(5)},30.000,40.000,{DOG},balanced,failed-transient,http-5xx",
    ]
    lock = json.loads(small_root.lock_json.read_text())
    assert lock["clips"]["count"] == 5
    assert lock["tool_versions"]["yt-dlp"] == "2026.10.26" and "audioset-fewshot" in lock["tool_versions"]
    assert lock["metadata_sha256"] == {"balanced": "a" * 64, "eval": "b" * 64}
    assert lock["content_hash"] == rec.content_hash
    assert "obtained_at" not in small_root.lock_json.read_text()
    assert "obtained_at" in small_root.provenance_csv.read_text().splitlines()[0]


def test_rerun_is_a_noop_and_same_record(small_root: DatasetLayout) -> None:
    first = build_manifest(small_root.root)
    mtimes = {p: p.stat().st_mtime_ns for p in small_root.manifest_dir.rglob("*.*")}
    second = build_manifest(small_root.root)
    assert second.written == () and second == first
    assert {p: p.stat().st_mtime_ns for p in small_root.manifest_dir.rglob("*.*")} == mtimes


def test_same_clips_give_identical_bytes_without_timestamps(tmp_path: Path) -> None:
    a = make_root(tmp_path / "a", standard_clips())
    b = make_root(tmp_path / "b", list(reversed(standard_clips())))
    ra, rb = build_manifest(a.root), build_manifest(b.root)
    assert a.clips_csv.read_bytes() == b.clips_csv.read_bytes()
    assert a.lock_json.read_bytes() == b.lock_json.read_bytes()
    assert ra.content_hash == rb.content_hash


def test_surplus_beyond_target_keeps_lowest_ranks(tmp_path: Path) -> None:
    clips = [Clip(ytid(i), SPEECH, rank) for i, rank in ((1, 5), (2, 0), (3, 2))]
    lay = make_root(tmp_path / "r", clips, targets={SPEECH: 2})
    rec = build_manifest(lay.root)
    assert [r.ytid for r in read_clips(lay.clips_csv)] == [ytid(2), ytid(3)]
    assert rec.surplus == (f"{ytid(1)}_30000",)


def test_missing_file_reported_not_hidden(small_root: DatasetLayout) -> None:
    (small_root.root / f"audio/m_09x0r/{ytid(2)}_30000.flac").unlink()
    rec = build_manifest(small_root.root)
    assert rec.missing_files == (f"audio/m_09x0r/{ytid(2)}_30000.flac",)
    assert rec.clips == 5


def test_stale_class_file_removed(small_root: DatasetLayout) -> None:
    build_manifest(small_root.root)
    stale = small_root.by_class_dir / "m_0abc.csv"
    stale.write_text("x")
    rec = build_manifest(small_root.root)
    assert not stale.exists() and "manifest/by_class/m_0abc.csv" in rec.written


def test_youtube_text_is_made_safe(tmp_path: Path) -> None:
    clips = [Clip(ytid(1), CAT, 0, license='Creative\nCommons\u202e,"x"')]
    lay = make_root(tmp_path / "r", clips)
    build_manifest(lay.root)
    (row,) = read_clips(lay.clips_csv)
    assert row.license == 'Creative Commons ,"x"'


def test_needs_plan_and_ledger(tmp_path: Path) -> None:
    with pytest.raises(StageNotReadyError, match="no plan"):
        build_manifest(tmp_path)


def test_ledger_of_another_plan_refused(small_root: DatasetLayout, tmp_path: Path) -> None:
    other = make_root(tmp_path / "other", [Clip(ytid(9), CAT, 0)])
    small_root.ledger_file.unlink()
    (other.ledger_file).rename(small_root.ledger_file)
    with pytest.raises(ManifestError, match="records plan"):
        build_manifest(small_root.root)
