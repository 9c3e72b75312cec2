from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from support.manifest_helpers import DOG, SPEECH, Clip, make_root, ytid

from audioset_fewshot.errors import UsageError
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.manifest import read_clips
from audioset_fewshot.manifest.build import build_manifest
from audioset_fewshot.manifest.merge import merge_roots
from audioset_fewshot.manifest.verify import verify
from audioset_fewshot.plan import read_plan

PARAMS = {"max_per_class": 2, "classes": [DOG, SPEECH]}


def _shards(tmp_path: Path) -> tuple[Path, Path, list[Clip]]:
    everything = [
        Clip(ytid(1), SPEECH, 0), Clip(ytid(2), SPEECH, 1, status="failed-permanent"), Clip(ytid(3), SPEECH, 2),
        Clip(ytid(4), DOG, 0), Clip(ytid(5), DOG, 1), Clip(ytid(6), DOG, 2),
    ]  # fmt: skip
    s0 = [c for c in everything if int(c.ytid[3:]) % 2 == 0]
    s1 = [c for c in everything if int(c.ytid[3:]) % 2 == 1]
    a = make_root(tmp_path / "s0", s0, targets={SPEECH: 1, DOG: 1}, params={**PARAMS, "shard": "0/2"})
    b = make_root(tmp_path / "s1", s1, targets={SPEECH: 1, DOG: 1}, params={**PARAMS, "shard": "1/2"})
    return a.root, b.root, everything


def test_merge_keeps_lowest_ranks_and_reports_surplus(tmp_path: Path) -> None:
    a, b, _ = _shards(tmp_path)
    rep = merge_roots([a, b], into=tmp_path / "merged")
    rows = read_clips(tmp_path / "merged/manifest/clips.csv", root=tmp_path / "merged")
    # speech: ranks 0 (ok), 1 (failed), 2 (ok) -> both ok; dog: ranks 0,1 kept, rank 2 surplus
    assert sorted(r.ytid for r in rows) == [ytid(1), ytid(3), ytid(4), ytid(5)]
    assert rep.surplus == (f"{ytid(6)}_30000",)
    assert verify(tmp_path / "merged").ok  # the surplus file was not copied
    plan = read_plan(DatasetLayout(tmp_path / "merged"))
    assert plan.params["shard"] is None and plan.targets == {DOG: 2, SPEECH: 2} and len(plan.entries) == 6
    unavailable = (tmp_path / "merged/manifest/unavailable.csv").read_text()
    assert ytid(2) in unavailable
    again = merge_roots([a, b], into=tmp_path / "merged")
    assert again.record is not None and again.record.written == () and again.clips == 4


def test_merge_equals_one_unsharded_root(tmp_path: Path) -> None:
    a, b, everything = _shards(tmp_path)
    whole = [c for c in everything if c.ytid != ytid(6)]  # one run stops at 2 dog clips
    one = make_root(tmp_path / "one", whole + [Clip(ytid(6), DOG, 2, status="pending")], targets={SPEECH: 2, DOG: 2}, params=PARAMS | {"shard": None})
    build_manifest(one.root)
    merge_roots([a, b], into=tmp_path / "merged")
    assert (tmp_path / "merged/manifest/clips.csv").read_bytes() == one.clips_csv.read_bytes()
    assert (tmp_path / "merged/manifest/lock.json").read_bytes() == one.lock_json.read_bytes()


def test_overlap_resolution_and_conflicts(tmp_path: Path) -> None:
    a = make_root(tmp_path / "a", [Clip(ytid(1), SPEECH, 0), Clip(ytid(2), SPEECH, 1, status="failed-transient")])
    b = make_root(tmp_path / "b", [Clip(ytid(1), SPEECH, 0, status="failed-permanent"), Clip(ytid(2), SPEECH, 1)])
    rep = merge_roots([a.root, b.root], into=tmp_path / "m")
    rows = read_clips(tmp_path / "m/manifest/clips.csv")
    assert [r.ytid for r in rows] == [ytid(1), ytid(2)]  # ok beats failed, whichever root
    assert rep.from_root == {str(a.root.resolve()): 1, str(b.root.resolve()): 1}
    assert any("failed permanently" in c for c in rep.conflicts)


def test_merge_refuses_bad_destinations_and_other_plans(tmp_path: Path) -> None:
    a, b, _ = _shards(tmp_path)
    with pytest.raises(UsageError, match="overlaps"):
        merge_roots([a, b], into=a / "sub")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    with pytest.raises(UsageError, match="not empty"):
        merge_roots([a, b], into=busy)
    other = make_root(tmp_path / "other", [Clip(ytid(9), SPEECH, 0)], params={"seed": 7})
    with pytest.raises(UsageError, match="differs .* in .*seed"):
        merge_roots([a, other.root], into=tmp_path / "m2")


def test_gap_reported_when_a_shard_stopped_early(tmp_path: Path) -> None:
    # shard 0 reached its target (1) at rank 0 and never tried rank 2; shard 1 holds ranks 1 and 3
    s0 = [Clip(ytid(1), SPEECH, 0), Clip(ytid(3), SPEECH, 2, status="pending")]
    s1 = [Clip(ytid(2), SPEECH, 1, status="failed-permanent"), Clip(ytid(4), SPEECH, 3)]
    a = make_root(tmp_path / "a", s0, targets={SPEECH: 1}, params={"max_per_class": 2, "classes": [SPEECH], "shard": "0/2"})
    b = make_root(tmp_path / "b", s1, targets={SPEECH: 1}, params={"max_per_class": 2, "classes": [SPEECH], "shard": "1/2"})
    rep = merge_roots([a.root, b.root], into=tmp_path / "m")
    assert rep.clips == 2 and rep.gaps == {SPEECH: 1} and not rep.same_as_one_run


def test_merge_carries_the_unsharded_config(tmp_path: Path) -> None:
    from audioset_fewshot.config import Config, load_config, write_config

    rule = {"min_quality": 0.9, "all_levels": False, "include": [], "exclude": [DOG]}
    s0 = [Clip(ytid(1), SPEECH, 0)]
    s1 = [Clip(ytid(2), SPEECH, 1)]
    a = make_root(tmp_path / "s0", s0, targets={SPEECH: 1}, params={**PARAMS, "classes": [SPEECH], "shard": "0/2", "selection": rule}).root
    b = make_root(tmp_path / "s1", s1, targets={SPEECH: 1}, params={**PARAMS, "classes": [SPEECH], "shard": "1/2", "selection": rule}).root
    for r, shard in ((a, "0/2"), (b, "1/2")):
        cfg = Config()
        write_config(DatasetLayout(r).config_file, dataclasses.replace(cfg, plan=dataclasses.replace(cfg.plan, shard=shard)))
    merge_roots([a, b], into=tmp_path / "merged")
    merged = load_config(tmp_path / "merged/config.yaml")
    assert merged.plan.shard is None and merged.root == str((tmp_path / "merged").resolve())
    lock = json.loads((tmp_path / "merged/manifest/lock.json").read_text())
    # the selection comes from the plans that produced the clips, not from config.yaml (min_quality 0.8)
    assert lock["selection"]["config"] == rule and lock["selection"]["classes"] == [SPEECH]
