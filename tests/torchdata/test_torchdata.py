"""SplitDataset: items, learn2learn attributes without audio, train-only normalisation."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from support.fewshot_synth import make_root

from audioset_fewshot.episodes import EpisodeSampler
from audioset_fewshot.errors import UsageError
from audioset_fewshot.torchdata import SplitDataset

SRC = Path(__file__).resolve().parents[2] / "src" / "audioset_fewshot"


@pytest.fixture
def root(tmp_path: Path):
    store, splits = make_root(tmp_path, n_classes=20, per_class=12, multi=0.15)
    return tmp_path, store, splits


def test_items_labels_and_metadata(root) -> None:
    path, store, splits = root
    ds = SplitDataset(path, "test", features=store, norm="none")
    assert ds.class_ids == tuple(sorted(splits.mids("test")))
    assert ds.class_names == tuple(f"class {m[-3:]}" for m in ds.class_ids)
    assert len(ds) == sum(len(v) for v in splits.pools["test"].values())
    x, y = ds[0]
    assert tuple(x.shape) == (1, 32, 48) and str(x.dtype) == "torch.float32"
    assert y == int(ds.targets[0])
    row = store.row_of(ds.clip_ids[0][:11], float(ds.clip_ids[0][12:]) / 1000)
    assert np.array_equal(x.numpy()[0], store.mels[row])
    # learn2learn's names, without touching audio
    assert ds.labels == list(range(ds.num_classes))
    assert all(ds.indices_to_labels[i] == lab for lab, idx in ds.labels_to_indices.items() for i in idx)
    assert sorted(i for v in ds.labels_to_indices.values() for i in v) == list(range(len(ds)))
    assert all(ds.class_ids[t] in labels for t, labels in zip(ds.targets, ds.label_sets, strict=True))
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_normalisation_uses_train_split_only(root) -> None:
    path, store, splits = root
    train_ids = set(splits.pool_ids("train"))
    train_rows = [r.row for r in store.index if r.clip_id in train_ids]
    values = store.mels[train_rows].astype(np.float64)
    ds = SplitDataset(path, "test", features=store, norm="global")
    assert float(ds.normalizer.mean) == pytest.approx(values.mean(), rel=1e-9)
    assert float(ds.normalizer.std) == pytest.approx(values.std(), rel=1e-9)
    all_mean = store.mels.astype(np.float64).mean()
    assert abs(all_mean - values.mean()) > 1e-6  # the test split would have moved it
    x, _ = ds[3]
    raw = store.mels[ds.rows[3]]
    assert np.allclose(x.numpy()[0], (raw - values.mean()) / values.std(), atol=1e-4)
    tr = SplitDataset(path, "train", features=store, norm="channel")
    assert np.allclose(tr.normalizer.mean, values.mean(axis=(0, 2)), rtol=1e-9)
    with pytest.raises(UsageError, match="unknown norm"):
        SplitDataset(path, "test", features=store, norm="minmax")


def test_guard_metadata_and_sampler_on_dataset(root) -> None:
    path, store, _ = root
    ds = SplitDataset(path, "train", features=store, norm="none")
    for i, carried in enumerate(ds.carried_labels):
        assert ds.targets[i] in carried
        assert set(carried) == {ds.class_ids.index(m) for m in ds.label_sets[i] if m in ds.class_ids}
    sampler = EpisodeSampler(ds, n_way=5, k_shot=2, q_query=3, episodes=100, seed=0)
    for idx in sampler:
        assert len({ds.clip_ids[i] for i in idx}) == 25
    x, y = ds.batch(sampler.indices(0))
    assert tuple(x.shape) == (25, 1, 32, 48) and tuple(y.shape) == (25,)


def test_the_sampler_collate_gives_episode_labels_0_to_n_minus_1(root) -> None:
    """The README's snippet: DataLoader(batch_sampler=sampler, collate_fn=sampler.collate)."""
    import torch
    from torch.utils.data import DataLoader

    path, store, _ = root
    ds = SplitDataset(path, "train", features=store, norm="none")
    sampler = EpisodeSampler(ds, n_way=5, k_shot=2, q_query=3, episodes=4, seed=0)
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=sampler.collate)
    for i, (x, y) in enumerate(loader):
        ep = sampler.episode(i)
        assert tuple(x.shape) == (25, 1, 32, 48) and y.dtype == torch.int64
        assert y.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4] + [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3 + [4] * 3
        assert y.tolist() == ep.labels()
        split_x, split_y = ds.batch(ep.indices())
        assert torch.equal(x, split_x)
        assert [ep.classes[j] for j in y.tolist()] == split_y.tolist()  # episode label j is the episode's j-th class
    assert set(ds.batch(sampler.indices(0))[1].tolist()) - set(range(5))  # the split's class numbers are not 0..4
    with pytest.raises(UsageError, match="collate got 3 items"):
        sampler.collate([ds[0], ds[1], ds[2]])


MINE = [
    "splits.py",
    "episodes.py",
    "torchdata.py",
    "evaluate.py",
    "adapters/learn2learn.py",
    "adapters/torchmeta.py",
    "adapters/__init__.py",
    "cli/splits.py",
    "cli/episodes.py",
    "cli/evaluate.py",
]


def test_torch_is_not_imported_at_module_top_level() -> None:
    for path in (SRC / m for m in MINE):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n == "torch" or n.startswith("torch.") for n in names), f"{path} imports torch at top level"
