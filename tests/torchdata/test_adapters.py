"""learn2learn- and torchmeta-style adapters, tested by protocol (neither library is imported)."""

from __future__ import annotations

import sys

import pytest
from support.fewshot_synth import make_root

from audioset_fewshot.adapters.learn2learn import TaskSet, audioset_tasksets
from audioset_fewshot.adapters.torchmeta import AudiosetClassDataset, AudiosetMetaDataset, BatchMetaDataLoader, ClassSplitter
from audioset_fewshot.errors import UsageError


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("adapters")
    store, splits = make_root(path, n_classes=30, per_class=12, multi=0.15)
    return path, store, splits


def test_learn2learn_tasksets_sample_like_taskdataset(root) -> None:
    path, store, _ = root
    tasksets = audioset_tasksets(path, train_ways=5, train_samples=4, test_ways=3, test_samples=6, features=store)
    train, validation, test = tasksets  # a 3-tuple, as learn2learn's BenchmarkTasksets
    assert tasksets.validation is validation
    X, y = train.sample()
    assert tuple(X.shape) == (20, 1, 32, 48) and y.tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4 + [4] * 4
    X2, _ = tasksets.test.sample()
    assert tuple(X2.shape) == (18, 1, 32, 48)
    # the j-th sample() is the same in every run
    again = audioset_tasksets(path, train_ways=5, train_samples=4, test_ways=3, test_samples=6, features=store)
    assert (again.train.sample()[0] == X).all()
    # dataset attributes learn2learn users reach for
    ds = train.dataset
    assert set(ds.labels) == set(ds.labels_to_indices) and len(ds.indices_to_labels) == len(ds)
    assert "torch" not in sys.modules["audioset_fewshot.adapters.learn2learn"].__dict__


def test_learn2learn_fixed_num_tasks(root) -> None:
    path, store, _ = root
    tasksets = audioset_tasksets(path, train_ways=3, train_samples=2, test_ways=2, test_samples=2, num_tasks=4, features=store)
    t = tasksets.train
    assert isinstance(t, TaskSet) and len(t) == 4
    fixed = {tuple(t.task_indices(i)) for i in range(4)}
    for _ in range(10):
        t.sample()
    assert t.state_dict()["draws"] == 10
    with pytest.raises(IndexError):
        t.task_indices(4)
    assert len(fixed) == 4


def test_torchmeta_class_and_combination_datasets(root) -> None:
    path, store, splits = root
    classes = AudiosetClassDataset(path, meta_train=True, features=store)
    assert len(classes) == classes.num_classes == len([m for m in splits.mids("train") if splits.pools["train"][m]])
    items = classes[0]
    x, target = items[0]
    assert tuple(x.shape) == (1, 32, 48) and target == 0
    meta = AudiosetMetaDataset(num_classes_per_task=5, class_dataset=classes)
    with pytest.raises(UsageError, match="ClassSplitter"):
        meta[(0, 1, 2, 3, 4)]
    meta = ClassSplitter(meta, num_train_per_class=2, num_test_per_class=3)
    task = meta[(0, 1, 2, 3, 4)]
    (xtr, ytr), (xte, yte) = task["train"], task["test"]
    assert tuple(xtr.shape) == (10, 1, 32, 48) and tuple(xte.shape) == (15, 1, 32, 48)
    assert ytr.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4] and yte.tolist() == [c for c in range(5) for _ in range(3)]
    again = meta[(0, 1, 2, 3, 4)]
    assert (again["test"][0] == xte).all()  # same tuple, same task
    with pytest.raises(UsageError, match="meta_train"):
        AudiosetClassDataset(path, meta_train=True, meta_test=True, features=store)


def test_torchmeta_batch_loader(root) -> None:
    path, store, _ = root
    meta = AudiosetMetaDataset(
        path, num_classes_per_task=3, meta_split="test", features=store, dataset_transform=ClassSplitter(num_train_per_class=1, num_test_per_class=4)
    )
    loader = BatchMetaDataLoader(meta, batch_size=4, num_batches=2)
    batches = list(loader)
    assert len(batches) == 2 == len(loader)
    train_inputs, train_targets = batches[0]["train"]
    test_inputs, test_targets = batches[0]["test"]
    assert tuple(train_inputs.shape) == (4, 3, 1, 32, 48) and tuple(train_targets.shape) == (4, 3)
    assert tuple(test_inputs.shape) == (4, 12, 1, 32, 48) and tuple(test_targets.shape) == (4, 12)
    assert (list(BatchMetaDataLoader(meta, batch_size=4, num_batches=1))[0]["test"][0] == test_inputs).all()
