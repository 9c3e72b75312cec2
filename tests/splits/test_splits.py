"""Class-disjoint splits: sizes, determinism, grouping, leakage policies, the file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audioset_fewshot.errors import StageNotReadyError, UsageError, ValidationError
from audioset_fewshot.splits import (
    SPLITS,
    ClipLabels,
    MetaSplits,
    SplitClass,
    build_splits,
    candidate_clips,
    make_splits,
    ontology_classes,
    read_splits,
    split_sizes,
)


def mids(n: int) -> list[str]:
    return [f"/m/c{i:03d}" for i in range(n)]


@pytest.fixture(scope="module")
def shared_candidates(shared_metadata_dir: Path) -> tuple[list[SplitClass], list[ClipLabels]]:
    """The 142 leaf, non-blacklisted classes with QA >= 0.8 and every candidate segment."""
    from audioset_fewshot.metadata import load_ontology, load_quality, read_segments, resolve_segment_files
    from audioset_fewshot.selection import select_classes

    files = resolve_segment_files(("balanced", "eval", "unbalanced"), metadata_dir=shared_metadata_dir)
    table = read_segments(files)
    onto = load_ontology()
    sel = select_classes(onto, load_quality(), min_quality=0.8)
    return ontology_classes(sel.mids, onto), candidate_clips(table, sel.mids)


def test_metaaudio_rule_142_gives_100_15_27() -> None:
    assert split_sizes(142, (0.7, 0.1, 0.2)) == (100, 15, 27)
    assert split_sizes(10, (0.7, 0.1, 0.2)) == (7, 1, 2)  # 0.7 * 10 is not rounded up to 8
    s = make_splits(mids(142), seed=0)
    assert s.sizes() == {"train": 100, "val": 15, "test": 27}


def test_same_seed_byte_identical_other_seed_differs() -> None:
    a = make_splits(mids(142), seed=0).to_json()
    b = make_splits(list(reversed(mids(142))), seed=0).to_json()  # input order does not matter
    c = make_splits(mids(142), seed=1).to_json()
    assert a == b
    assert json.loads(a)["classes"] != json.loads(c)["classes"]


def test_shared_metadata_splits_are_disjoint_and_leak_free(shared_candidates) -> None:
    classes, clips = shared_candidates
    assert len(classes) == 142
    s = make_splits(classes, seed=0, clips=clips)
    assert s.sizes() == {"train": 100, "val": 15, "test": 27}
    # class-disjoint
    sets = [set(s.mids(x)) for x in SPLITS]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    # default policy: no YouTube ID in two splits' pools, no pooled clip carries another split's label
    ytid_of = {c.clip_id: c.ytid for c in clips}
    labels_of = {c.clip_id: c.labels for c in clips}
    ytids = {x: {ytid_of[c] for c in s.pool_ids(x)} for x in SPLITS}
    assert not (ytids["train"] & ytids["val"] or ytids["train"] & ytids["test"] or ytids["val"] & ytids["test"])
    for x in SPLITS:
        others = set().union(*(set(s.mids(o)) for o in SPLITS if o != x))
        assert all(not (set(labels_of[c]) & others) for c in s.pool_ids(x))
    rep = s.report
    assert rep is not None
    assert rep.before["test"].leaky_fraction > 0.1  # the problem is real on AudioSet ...
    assert all(rep.after[x].leaky_clips == 0 and rep.after[x].shared_ytids == 0 for x in SPLITS)  # ... and gone
    # a pooled clip belongs to every class of its split that it carries
    for x in SPLITS:
        for mid, ids in s.pools[x].items():
            assert all(mid in labels_of[c] for c in ids)


def test_owner_and_none_policies(shared_candidates) -> None:
    classes, clips = shared_candidates
    none = make_splits(classes, seed=0, clips=clips, leakage="none")
    owner = make_splits(classes, seed=0, clips=clips, leakage="owner")
    assert none.report.after == none.report.before
    assert none.report.after["test"].shared_ytids > 0
    # owner: each clip used once, in one class
    seen: dict[str, int] = {}
    for x in SPLITS:
        for ids in owner.pools[x].values():
            for c in ids:
                seen[c] = seen.get(c, 0) + 1
    assert set(seen.values()) == {1}
    assert all(owner.report.after[x].shared_ytids == 0 for x in SPLITS)
    assert owner.report.after["test"].leaky_clips > 0  # the label still leaks; the report says so


def test_exclusive_works_per_youtube_video() -> None:
    a, b, c, d = mids(4)
    classes = [SplitClass(a), SplitClass(b), SplitClass(c), SplitClass(d)]
    # place classes deterministically: try seeds until a, b land in different splits
    for seed in range(50):
        s = make_splits(classes, seed=seed, ratios=(0.25, 0.25, 0.5))
        if s.split_of(a) != s.split_of(b):
            break
    clips = [ClipLabels.of("AAAAAAAAAAA", 0.0, [a]), ClipLabels.of("AAAAAAAAAAA", 30.0, [b]), ClipLabels.of("BBBBBBBBBBB", 0.0, [a, "/m/unselected"])]
    s = make_splits(classes, seed=seed, ratios=(0.25, 0.25, 0.5), clips=clips)
    # both segments of video AAAAAAAAAAA are dropped (the video carries labels of two splits)
    assert s.pools[s.split_of(a)][a] == ("BBBBBBBBBBB_0",)
    assert s.pools[s.split_of(b)][b] == ()


def test_group_siblings_keeps_parents_together() -> None:
    classes = [SplitClass(m, parents=(f"/m/p{i // 4}",)) for i, m in enumerate(mids(40))]
    s = make_splits(classes, seed=3, group="siblings")
    for g in range(10):
        members = [c.mid for i, c in enumerate(classes) if i // 4 == g]
        assert len({s.split_of(m) for m in members}) == 1
    assert sum(s.sizes().values()) == 40
    with pytest.raises(UsageError, match="needs the classes' ontology parents"):
        make_splits(mids(10), seed=0, group="siblings")


def test_group_top_level_stratifies_with_exact_sizes() -> None:
    classes = [SplitClass(m, top_level=f"top{i % 2}") for i, m in enumerate(mids(100))]
    s = make_splits(classes, seed=5, group="top-level")
    assert s.sizes() == {"train": 70, "val": 10, "test": 20}
    for top in ("top0", "top1"):
        test_share = sum(1 for c in s.classes["test"] if c.top_level == top)
        assert 8 <= test_share <= 12  # about 20 % of each category's 50 classes


def test_ontology_groups_on_real_classes(shared_candidates) -> None:
    classes, _ = shared_candidates
    s = make_splits(classes, seed=0, group="siblings")
    parent_split: dict[str, set[str]] = {}
    for c in classes:
        for p in c.parents:
            parent_split.setdefault(p, set()).add(s.split_of(c.mid))
    assert all(len(v) == 1 for v in parent_split.values())
    assert abs(s.sizes()["train"] - 100) <= 10


@settings(max_examples=40, deadline=None)
@given(n=st.integers(min_value=7, max_value=300), seed=st.integers(min_value=0, max_value=2**32))
def test_property_partition(n: int, seed: int) -> None:
    s = make_splits(mids(n), seed=seed)
    all_mids = [m for x in SPLITS for m in s.mids(x)]
    assert sorted(all_mids) == mids(n)
    assert tuple(s.sizes().values()) == split_sizes(n, (0.7, 0.1, 0.2))


def test_bad_inputs_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="too few to split"):
        make_splits(mids(2), seed=0)
    with pytest.raises(UsageError, match="summing to 1"):
        make_splits(mids(10), seed=0, ratios=(0.5, 0.5, 0.5))
    with pytest.raises(UsageError, match="unknown leakage policy 'sometimes'"):
        make_splits(mids(10), seed=0, leakage="sometimes")
    with pytest.raises(UsageError, match="invalid class id"):
        make_splits(["not-a-mid", *mids(5)], seed=0)
    with pytest.raises(ValidationError, match="listed twice"):
        make_splits(mids(10), seed=0, clips=[ClipLabels.of("AAAAAAAAAAA", 0, ["/m/c000"])] * 2)


def _clips(n_classes: int, per_class: int) -> list[ClipLabels]:
    out = []
    ms = mids(n_classes)
    for i, m in enumerate(ms):
        for j in range(per_class):
            labels = [m] + ([ms[(i + 1) % n_classes]] if j == 0 else [])
            out.append(ClipLabels.of(f"{i:05d}{j:06d}", 0.0, labels, owner_mid=m))
    return out


def test_file_roundtrip_noop_and_tamper(tmp_path: Path) -> None:
    clips = _clips(12, 5)
    s = build_splits(tmp_path, seed=2, clips=clips, classes=[SplitClass(m, name=m) for m in mids(12)])
    path = tmp_path / "splits.json"
    text = path.read_text()
    assert text == s.to_json()
    again = read_splits(tmp_path)
    assert again.content_sha256 == s.content_sha256 and again.pools == s.pools and again.multi_labels == s.multi_labels
    mtime = path.stat().st_mtime_ns
    build_splits(tmp_path, seed=2, clips=clips, classes=[SplitClass(m, name=m) for m in mids(12)])
    assert path.stat().st_mtime_ns == mtime  # unchanged inputs: no rewrite
    data = json.loads(text)
    data["pools"]["test"][next(iter(data["pools"]["test"]))].append("ZZZZZZZZZZZ_0")
    path.write_text(json.dumps(data))
    with pytest.raises(UsageError, match="content hash mismatch"):
        read_splits(tmp_path)
    assert "pickle" not in text


def test_root_without_clips_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(StageNotReadyError, match="audioset-fewshot manifest"):
        build_splits(tmp_path, seed=0)
    with pytest.raises(StageNotReadyError, match="make the splits first"):
        read_splits(tmp_path)


def test_cli_metadata_preview_json_and_report(shared_metadata_dir: Path, tmp_path: Path) -> None:
    base = [sys.executable, "-m", "audioset_fewshot", "splits", "--metadata-dir", str(shared_metadata_dir)]
    out = subprocess.run(base + ["--format", "json"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["sizes"] == {"train": 100, "val": 15, "test": 27}
    assert "pools" not in data and data["leakage_report"]["after"]["test"]["shared_ytids"] == 0
    out = subprocess.run(base + ["--report", "--leakage", "none", "--seed", "4"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "nothing written" in out.stdout and "leaky%" in out.stdout
    assert not (tmp_path / "splits.json").exists()
    bad = subprocess.run(base + ["--leakage", "sometimes"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert bad.returncode == 2


def _write_manifest(root: Path, clips: list[ClipLabels], *, source: str) -> None:
    """ROOT/manifest/clips.csv listing ``clips`` (the audio files are never read by splits)."""
    from audioset_fewshot.manifest.clips import ManifestRow, write_clips

    rows = [
        ManifestRow(owner_mid=c.owner_mid, ytid=c.ytid, start_s=0.0, end_s=10.0, labels=c.labels, source=source,
                    path=f"audio/{c.owner_mid[1:].replace('/', '_', 1)}/{c.ytid}_0.flac", sample_rate_hz=16000, samples=160000,
                    sha256="0" * 64, itag="140", codec="aac", license="", channel_id="")
        for c in clips
    ]  # fmt: skip
    write_clips(root / "manifest" / "clips.csv", rows)


def test_cli_on_root_with_manifest(tmp_path: Path) -> None:
    _write_manifest(tmp_path, _clips(10, 3), source="balanced")
    out = subprocess.run([sys.executable, "-m", "audioset_fewshot", "splits", "--root", str(tmp_path), "--report"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    s = read_splits(tmp_path / "splits.json")
    assert isinstance(s, MetaSplits) and s.sizes() == {"train": 7, "val": 1, "test": 2}
    assert str(tmp_path / "splits.json") in out.stdout


def test_cli_flags_ratios_group_and_format(tmp_path: Path) -> None:
    _write_manifest(tmp_path, _clips(20, 2), source="eval")
    base = [sys.executable, "-m", "audioset_fewshot", "splits", "--root", str(tmp_path)]
    out = subprocess.run(
        base + ["--ratios", "0.5,0.25,0.25", "--group", "none", "--format", "json", "--seed", "3"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["sizes"] == {"train": 10, "val": 5, "test": 5} and data["params"]["seed"] == 3
    assert json.loads((tmp_path / "splits.json").read_text())["content_sha256"] == data["content_sha256"]
    bad = subprocess.run(base + ["--ratios", "0.5,0.5"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "ratios" in bad.stderr


@settings(max_examples=30, deadline=None)
@given(data=st.data(), seed=st.integers(0, 1000))
def test_property_exclusive_pools_share_no_video(data, seed: int) -> None:
    ms = mids(12)
    n_videos = data.draw(st.integers(1, 40))
    clips = []
    for v in range(n_videos):
        for seg in range(data.draw(st.integers(1, 3))):
            labels = data.draw(st.sets(st.sampled_from(ms + ["/m/other"]), min_size=1, max_size=3))
            clips.append(ClipLabels.of(f"v{v:010d}", 10.0 * seg, labels))
    s = make_splits(ms, seed=seed, clips=clips)
    ytids = {x: {c.ytid for c in clips if c.clip_id in set(s.pool_ids(x))} for x in SPLITS}
    assert not (ytids["train"] & ytids["val"] or ytids["train"] & ytids["test"] or ytids["val"] & ytids["test"])
    owner = make_splits(ms, seed=seed, clips=clips, leakage="owner")
    assert sum(len(owner.pool_ids(x)) for x in SPLITS) == sum(1 for c in clips if set(c.labels) & set(ms))


def test_top_level_grouping_same_from_selection_and_ontology(shared_metadata_dir: Path) -> None:
    """A selection's classes and ontology_classes() of the same MIDs split identically
    under group="top-level" (both key the category by name)."""
    from audioset_fewshot.metadata import load_ontology, load_quality
    from audioset_fewshot.selection import select_classes
    from audioset_fewshot.splits import make_splits, ontology_classes

    sel = select_classes(load_ontology(), load_quality())
    a = make_splits(list(sel.chosen), seed=3, group="top-level")
    b = make_splits(ontology_classes(sel.mids), seed=3, group="top-level")
    assert all(a.mids(s) == b.mids(s) for s in ("train", "val", "test"))
