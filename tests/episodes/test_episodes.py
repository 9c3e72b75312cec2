"""Seeded episodes: order independence, the guard, resumption, fixed files, accuracy_ci."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audioset_fewshot.episodes import (
    EpisodeError,
    EpisodeIndex,
    EpisodeSampler,
    accuracy_ci,
    episodes_path,
    read_episodes,
    split_index,
    write_episodes,
)
from audioset_fewshot.errors import UsageError
from audioset_fewshot.splits import ClipLabels, SplitClass, build_splits, make_splits, read_splits


def multi_label_index(rng: np.random.Generator, n_classes: int = 142, mean_size: int = 200, multi: float = 0.18) -> tuple[EpisodeIndex, dict[int, set[int]]]:
    """Per-class pools like AudioSet candidates: sizes vary, ~18 % of clips carry a second class
    (such a clip is an item in both classes, sharing its clip key)."""
    sizes = rng.integers(30, 2 * mean_size, size=n_classes)
    keys: list[str] = []
    class_items: list[list[int]] = [[] for _ in range(n_classes)]
    clip_classes: dict[str, set[int]] = {}
    for c in range(n_classes):
        for j in range(int(sizes[c])):
            clip = f"c{c}_{j}"
            labels = {c}
            if rng.random() < multi:
                labels.add(int(rng.integers(n_classes)))
            clip_classes[clip] = labels
            for lab in labels:
                class_items[lab].append(len(keys))
                keys.append(clip)
    index = EpisodeIndex(class_items, item_keys=keys)
    item_labels = {i: clip_classes[k] for i, k in enumerate(keys)}
    return index, item_labels


@pytest.fixture(scope="module")
def big_index() -> tuple[EpisodeIndex, dict[int, set[int]]]:
    return multi_label_index(np.random.default_rng(7))


def test_10000_episodes_distinct_guarded_and_order_independent(big_index) -> None:
    index, item_labels = big_index
    n, k, q = 5, 5, 15
    s = EpisodeSampler(index, n_way=n, k_shot=k, q_query=q, episodes=10_000, seed=3)
    n_items = len(item_labels)
    carries = np.zeros((n_items, index.num_classes), dtype=bool)  # item x class: the clip carries the class
    for it, labels in item_labels.items():
        carries[it, list(labels)] = True
    episodes = [s.episode(i) for i in range(10_000)]
    expected = np.concatenate([np.repeat(np.eye(n, dtype=bool), k, axis=0), np.repeat(np.eye(n, dtype=bool), q, axis=0)])
    for ep in episodes:
        idx = ep.indices()
        assert len(idx) == n * (k + q)
        assert len(set(idx)) == n * (k + q)  # distinct items; with the guard below, distinct clips
        # the guard: each item carries its own episode class and no other class of the episode
        assert (carries[np.asarray(idx)][:, list(ep.classes)] == expected).all()
    # episodes 5000-9999 are the same drawn alone as after 0-4999 ...
    alone = EpisodeSampler(index, n_way=n, k_shot=k, q_query=q, episodes=10_000, seed=3)
    alone.load_state_dict({"seed": 3, "epoch": 0, "next": 5000})
    assert list(alone) == [ep.indices() for ep in episodes[5000:]]
    # ... and the same drawn in reverse order
    assert [s.indices(i) for i in range(9999, 9989, -1)] == [ep.indices() for ep in episodes[9990:][::-1]]


def test_distinct_clip_keys_under_multi_membership() -> None:
    # clip "x" is an item of class 0 and of class 1: never twice in one episode
    keys = ["x", "a", "b", "x", "c", "d", "e", "f"]
    index = EpisodeIndex([[0, 1, 2], [3, 4, 5], [6, 7]], item_keys=keys)
    s = EpisodeSampler(index, n_way=2, k_shot=1, q_query=1, episodes=300, seed=0)
    for idx in s:
        clips = [keys[i] for i in idx]
        assert len(set(clips)) == len(clips)


def test_epochs_differ_and_state_roundtrip(big_index) -> None:
    index, _ = big_index
    s = EpisodeSampler(index, n_way=5, k_shot=1, q_query=5, episodes=50, seed=1)
    e0 = list(s)
    s.set_epoch(1)
    e1 = list(s)
    assert e0 != e1
    it = iter(s)
    for _ in range(7):
        next(it)
    state = json.loads(json.dumps(s.state_dict()))
    t = EpisodeSampler(index, n_way=5, k_shot=1, q_query=5, episodes=50, seed=1)
    t.load_state_dict(state)
    assert list(t) == e1[7:]
    with pytest.raises(UsageError, match="resume with the same parameters"):
        EpisodeSampler(index, n_way=3, k_shot=1, q_query=5, episodes=50, seed=1).load_state_dict(state)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(2, 6), k=st.integers(1, 4), q=st.integers(0, 5), i=st.integers(0, 10**6))
def test_property_episode_is_a_function_of_seed_epoch_index(seed: int, n: int, k: int, q: int, i: int) -> None:
    rng = np.random.default_rng(seed % 1000)
    index, item_labels = multi_label_index(rng, n_classes=12, mean_size=20, multi=0.3)
    a = EpisodeSampler(index, n_way=n, k_shot=k, q_query=q, episodes=10**6 + 1, seed=seed)
    b = EpisodeSampler(index, n_way=n, k_shot=k, q_query=q, episodes=10**6 + 1, seed=seed)
    for j in range(3):
        b.indices(j)  # b has drawn other episodes first
    ep = a.episode(i)
    assert ep.indices() == b.indices(i)
    assert ep.support.shape == (n, k) and ep.query.shape == (n, q)
    assert len(set(ep.indices())) == n * (k + q)
    assert ep.labels() == np.repeat(np.arange(n), k).tolist() + np.repeat(np.arange(n), q).tolist()


def test_too_small_and_impossible_guard_raise_clearly() -> None:
    index = EpisodeIndex.from_labels([0] * 3 + [1] * 30 + [2] * 30)
    with pytest.raises(EpisodeError, match="need 3 classes with at least 20 clips"):
        EpisodeSampler(index, n_way=3, k_shot=5, q_query=15, episodes=1, seed=0)
    # every clip of class 0 also carries class 1 and vice versa: a 2-way episode is impossible
    carried = {i: (0, 1) for i in range(10)}
    index = EpisodeIndex.from_labels([0] * 5 + [1] * 5, carried=carried)
    with pytest.raises(EpisodeError, match="episode guard"):
        EpisodeSampler(index, n_way=2, k_shot=1, q_query=1, episodes=1, seed=0, max_attempts=5).episode(0)


def test_usable_as_torch_batch_sampler() -> None:
    import torch
    from torch.utils.data import DataLoader, Dataset

    class Items(Dataset):
        labels_to_indices = {0: list(range(0, 10)), 1: list(range(10, 20)), 2: list(range(20, 30))}

        def __len__(self) -> int:
            return 30

        def __getitem__(self, i: int):
            return torch.tensor([float(i)]), i // 10

    ds = Items()
    sampler = EpisodeSampler(ds, n_way=2, k_shot=2, q_query=3, episodes=4, seed=9)
    batches = list(DataLoader(ds, batch_sampler=sampler))
    assert len(batches) == 4
    x, y = batches[2]
    assert x.shape == (10, 1)
    assert x[:, 0].long().tolist() == sampler.indices(2)
    # supports by class, then queries by class
    ep = sampler.episode(2)
    assert (y[:4] == torch.tensor([ep.classes[0]] * 2 + [ep.classes[1]] * 2)).all()


def test_accuracy_ci() -> None:
    mean, ci = accuracy_ci([0.5, 0.7, 0.6, 0.6])
    assert mean == pytest.approx(0.6)
    assert ci == pytest.approx(1.96 * np.std([0.5, 0.7, 0.6, 0.6]) / 2)
    with pytest.raises(UsageError, match="non-empty"):
        accuracy_ci([])


def _root_with_splits(tmp_path: Path, n_classes: int = 12, per_class: int = 25) -> Path:
    ms = [f"/m/c{i:03d}" for i in range(n_classes)]
    clips = []
    for i, m in enumerate(ms):
        for j in range(per_class):
            labels = [m] + ([ms[(i + 1) % n_classes]] if j % 5 == 0 else [])
            clips.append(ClipLabels.of(f"{i:05d}{j:06d}", 0.0, labels, owner_mid=m))
    build_splits(tmp_path, seed=0, ratios=(0.5, 0.1, 0.4), clips=clips, classes=[SplitClass(m, name=m) for m in ms])
    return tmp_path


def test_fixed_episode_file_deterministic_guarded_and_noop(tmp_path: Path) -> None:
    root = _root_with_splits(tmp_path / "a")
    rec = write_episodes(root, split="test", n_way=3, k_shot=2, q_query=4, count=200, seed=5)
    assert rec.path == episodes_path(root, split="test", n_way=3, k_shot=2, q_query=4, count=200, seed=5)
    assert rec.path.name == "test_3w2s4q_200_seed5.jsonl"
    text = rec.path.read_bytes()
    root2 = _root_with_splits(tmp_path / "b")
    assert write_episodes(root2, split="test", n_way=3, k_shot=2, q_query=4, count=200, seed=5).path.read_bytes() == text
    header, _ = read_episodes(rec.path)
    assert header.splits_sha256 == read_splits(root).content_sha256
    splits = read_splits(root)
    labels = splits.multi_labels
    _, eps = read_episodes(rec.path)
    assert len(eps) == 200
    for ep in eps:
        assert set(ep.classes) <= set(splits.mids("test"))
        clips = [c for row in ep.support + ep.query for c in row]
        assert len(set(clips)) == 3 * 6
        for cls, sup, qry in zip(ep.classes, ep.support, ep.query, strict=True):
            for c in sup + qry:
                assert c in splits.pools["test"][cls]
                assert set(labels.get(c, (cls,))) & set(ep.classes) == {cls}
    mtime = rec.path.stat().st_mtime_ns
    write_episodes(root, split="test", n_way=3, k_shot=2, q_query=4, count=200, seed=5)
    assert rec.path.stat().st_mtime_ns == mtime
    # tampering is detected
    lines = rec.path.read_text().splitlines(keepends=True)
    lines[3] = lines[3].replace('"i":2', '"i":3')
    rec.path.write_text("".join(lines))
    with pytest.raises(UsageError, match="hash or count does not match"):
        read_episodes(rec.path)


def test_split_index_items_are_class_clip_pairs() -> None:
    ms = [f"/m/c{i:03d}" for i in range(10)]
    clips = [ClipLabels.of("AAAAAAAAAAA", 0.0, [ms[0], ms[1]], owner_mid=ms[0])]
    s = make_splits(ms, seed=0, clips=clips, leakage="none")
    for split in ("train", "val", "test"):
        index, mids, items = split_index(s, split)
        assert len(index.class_items) == len(mids)
        assert all(items[i][0] == mids[c] for c, arr in enumerate(index.class_items) for i in arr.tolist())


def test_cli_episodes(tmp_path: Path) -> None:
    root = _root_with_splits(tmp_path)
    cmd = [
        sys.executable,
        "-m",
        "audioset_fewshot",
        "episodes",
        "--root",
        str(root),
        "--split",
        "test",
        "--n-way",
        "3",
        "--k-shot",
        "1",
        "--q-query",
        "5",
        "--count",
        "50",
        "--seed",
        "2",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "test_3w1s5q_50_seed2.jsonl" in out.stdout and "50 episodes" in out.stdout
    bad = subprocess.run(cmd[:-8] + ["--n-way", "30", "--count", "5"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "30-way" in bad.stderr
