from __future__ import annotations

import json
import math

import pytest
from support.process_clips import STANDARD, Clip, make_root

from audioset_fewshot.config import CleanOptions
from audioset_fewshot.errors import ManifestError, UsageError
from audioset_fewshot.process import clean, read_clean

EXPECTED = {  # ytid -> (verdict, reason) with min_duration_s=4
    "aaaaaaaaaa1": ("keep", "ok"),
    "aaaaaaaaaa2": ("keep", "ok"),
    "aaaaaaaaaa3": ("keep", "ok"),
    "bbbbbbbbbb1": ("keep", "ok"),
    "bbbbbbbbbb2": ("reject", "digital-silence"),
    "bbbbbbbbbb3": ("reject", "too-short"),
    "bbbbbbbbbb4": ("reject", "undecodable"),
    "-bbbbbbbbb5": ("keep", "ok"),
    "cccccccccc1": ("reject", "silent"),
    "cccccccccc2": ("reject", "clipped"),
    "cccccccccc3": ("reject", "undecodable"),
    "cccccccccc4": ("reject", "missing"),
    "cccccccccc5": ("keep", "ok"),
    "dddddddddd1": ("keep", "silence-class"),
    "dddddddddd2": ("keep", "silence-class"),
}


def test_every_clip_gets_the_right_verdict(dataset) -> None:  # type: ignore[no-untyped-def]
    rep = clean(dataset.root, CleanOptions(min_duration_s=4.0))
    got = {v.ytid: (v.verdict, v.reason) for v in rep.verdicts}
    assert got == EXPECTED
    by = {v.ytid: v for v in rep.verdicts}
    assert by["bbbbbbbbbb3"].duration_s == pytest.approx(3.0)
    assert by["bbbbbbbbbb2"].rms_dbfs == -math.inf and by["bbbbbbbbbb2"].peak == 0.0
    assert by["cccccccccc5"].sample_rate_hz == 44100
    assert by["bbbbbbbbbb4"].duration_s is None
    # policy drop: every reject is dropped, every keep kept; nothing vanishes
    assert len(rep.verdicts) == len(STANDARD)
    assert all((v.action == "kept") == (v.verdict == "keep") for v in rep.verdicts)
    assert rep.by_reason == {"clipped": 1, "digital-silence": 1, "missing": 1, "ok": 6, "silence-class": 2, "silent": 1, "too-short": 1, "undecodable": 2}
    assert (rep.kept, rep.dropped, rep.rejected) == (8, 7, 7)


def test_a_3s_clip_passes_a_lower_minimum(dataset) -> None:  # type: ignore[no-untyped-def]
    rep = clean(dataset.root, CleanOptions(min_duration_s=1.0))
    assert {v.ytid: v.reason for v in rep.verdicts}["bbbbbbbbbb3"] == "ok"


def test_keep_policy_keeps_quality_rejects_but_never_unreadable(dataset) -> None:  # type: ignore[no-untyped-def]
    rep = clean(dataset.root, CleanOptions(min_duration_s=4.0, policy="keep"))
    actions = {v.ytid: v.action for v in rep.verdicts}
    assert actions["bbbbbbbbbb2"] == actions["cccccccccc2"] == actions["bbbbbbbbbb3"] == "kept"
    assert actions["bbbbbbbbbb4"] == actions["cccccccccc3"] == actions["cccccccccc4"] == "dropped"
    assert {v.ytid: v.verdict for v in rep.verdicts}["bbbbbbbbbb2"] == "reject"  # the verdict stays recorded


def test_clean_csv_is_sorted_deterministic_and_read_back(dataset) -> None:  # type: ignore[no-untyped-def]
    rep = clean(dataset.root)
    first = dataset.clean_csv.read_bytes()
    lines = first.decode().splitlines()
    assert lines[0].startswith("ytid,start_s,owner_mid,path,verdict,reason,action")
    keys = [(ln.split(",")[2], ln.split(",")[0]) for ln in lines[1:]]
    assert keys == sorted(keys)
    assert clean(dataset.root, force=True) == rep
    assert dataset.clean_csv.read_bytes() == first
    assert read_clean(dataset.clean_csv) == rep.verdicts
    meta = json.loads(dataset.clean_csv.with_suffix(".json").read_text())
    assert meta["schema_version"] == 1 and meta["params"]["min_duration_s"] == 1.0
    assert meta["inputs"]["clips_csv_sha256"] == rep.clips_sha256
    assert meta["outputs"]["clean_csv_sha256"] == rep.sha256


def test_rerun_is_a_noop_until_inputs_or_params_change(dataset) -> None:  # type: ignore[no-untyped-def]
    rep = clean(dataset.root)
    mtime = dataset.clean_csv.stat().st_mtime_ns
    assert clean(dataset.root) == rep
    assert dataset.clean_csv.stat().st_mtime_ns == mtime
    other = clean(dataset.root, CleanOptions(silence_dbfs=-90.0))  # the quiet clip (-80 dBFS) now passes
    assert {v.ytid: v.reason for v in other.verdicts}["cccccccccc1"] == "ok"
    make_root(dataset.root, [*STANDARD[:3]])  # a new manifest: clean runs again
    assert len(clean(dataset.root).verdicts) == 3


def test_bad_parameters_and_missing_manifest(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError, match="silence_dbfs must be <= 0"):
        clean(tmp_path, CleanOptions(silence_dbfs=3.0))
    with pytest.raises(UsageError, match="policy must be 'drop' or 'keep'"):
        clean(tmp_path, CleanOptions(policy="maybe"))  # type: ignore[arg-type]
    with pytest.raises(ManifestError, match="no such manifest"):
        clean(tmp_path)


def test_parallel_clean_gives_the_same_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    clips = [Clip(f"p{i:010d}", "/m/09x0r", "silence" if i % 7 == 0 else "noise") for i in range(70)]
    lay = make_root(tmp_path / "r", clips)
    serial = clean(lay.root)
    text = lay.clean_csv.read_bytes()
    assert clean(lay.root, CleanOptions(workers=2), force=True) == serial
    assert lay.clean_csv.read_bytes() == text
    assert serial.by_reason == {"digital-silence": 10, "ok": 60}
