"""torchmeta-style datasets over a processed dataset root.

Code written as::

    dataset = Omniglot(root, num_classes_per_task=5, meta_train=True, ...)
    dataset = ClassSplitter(dataset, num_train_per_class=5, num_test_per_class=15)
    for batch in BatchMetaDataLoader(dataset, batch_size=16):
        train_inputs, train_targets = batch["train"]   # [16, 25, 1, n_mels, frames], [16, 25]
        test_inputs, test_targets = batch["test"]      # [16, 75, ...], [16, 75]

runs with ``AudiosetMetaDataset(root, num_classes_per_task=5, meta_train=True)``
in place of ``Omniglot``.  Pieces: :class:`AudiosetClassDataset` (one item per
class: the dataset of that class's clips), :class:`AudiosetMetaDataset` (a
combination meta-dataset: item = a tuple of class indices), :func:`ClassSplitter`
and :class:`BatchMetaDataLoader`.  Targets are 0..N-1 in task order (torchmeta's
``Categorical``); every task passes the multi-label episode guard, and the
clips of a tuple of classes are drawn from ``default_rng([seed, *classes])``,
so ``dataset[(3, 7, 1, 4, 9)]`` is the same task in every run.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from audioset_fewshot.episodes import EpisodeError, EpisodeSampler
from audioset_fewshot.errors import UsageError
from audioset_fewshot.torchdata import Normaliser, SplitDataset

if TYPE_CHECKING:
    import torch

    from audioset_fewshot.torchdata import Batch, Features

_TUPLE_STREAM = 9201


def _meta_split(meta_train: bool, meta_val: bool, meta_test: bool, meta_split: str | None) -> str:
    if meta_split is not None:
        names = {"train": "train", "val": "val", "test": "test"}
        if meta_split not in names:
            raise UsageError(f"meta_split must be 'train', 'val' or 'test', got {meta_split!r}")
        return names[meta_split]
    flags = [name for name, on in (("train", meta_train), ("val", meta_val), ("test", meta_test)) if on]
    if len(flags) != 1:
        raise UsageError("set exactly one of meta_train, meta_val, meta_test (or meta_split)")
    return flags[0]


class ClassItems:
    """The clips of one class: ``(Tensor[1, n_mels, frames], class_index)`` items."""

    def __init__(self, dataset: SplitDataset, class_index: int) -> None:
        self.dataset, self.class_index = dataset, class_index
        self.indices = list(dataset.labels_to_indices[class_index])

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, j: int) -> tuple[torch.Tensor, int]:
        x, _ = self.dataset[self.indices[j]]
        return x, self.class_index


class AudiosetClassDataset:
    """torchmeta ``ClassDataset`` look-alike: ``len`` = classes, item = a class's clips."""

    def __init__(
        self,
        root: Path | str,
        *,
        meta_train: bool = False,
        meta_val: bool = False,
        meta_test: bool = False,
        meta_split: str | None = None,
        features: Features | None = None,
        norm: str | Normaliser = "global",
        dataset: SplitDataset | None = None,
    ) -> None:
        split = _meta_split(meta_train, meta_val, meta_test, meta_split)
        self.meta_split = split
        self.dataset = dataset if dataset is not None else SplitDataset(root, split, features=features, norm=norm)

    @property
    def num_classes(self) -> int:
        return self.dataset.num_classes

    def __len__(self) -> int:
        return self.num_classes

    def __getitem__(self, class_index: int) -> ClassItems:
        if not 0 <= class_index < self.num_classes:
            raise IndexError(f"class {class_index} out of range 0..{self.num_classes - 1}")
        return ClassItems(self.dataset, class_index)


class _ClassSplitterTransform:
    def __init__(self, num_train_per_class: int, num_test_per_class: int) -> None:
        if num_train_per_class < 1 or num_test_per_class < 0:
            raise UsageError("ClassSplitter needs num_train_per_class >= 1 and num_test_per_class >= 0")
        self.num_train_per_class, self.num_test_per_class = int(num_train_per_class), int(num_test_per_class)


def ClassSplitter(
    dataset: AudiosetMetaDataset | None = None, *, num_train_per_class: int, num_test_per_class: int, shuffle: bool = True
) -> AudiosetMetaDataset | _ClassSplitterTransform:  # noqa: N802 - torchmeta's name
    """torchmeta's ``ClassSplitter``: with a meta-dataset, returns it with tasks split
    into ``"train"`` / ``"test"``; without, returns the transform (``dataset_transform=``).
    ``shuffle`` is accepted for compatibility (clips are always drawn at random, seeded)."""
    transform = _ClassSplitterTransform(num_train_per_class, num_test_per_class)
    if dataset is None:
        return transform
    dataset.dataset_transform = transform
    return dataset


class AudiosetMetaDataset:
    """torchmeta ``CombinationMetaDataset`` look-alike: item = a tuple of class indices
    -> a task (``{"train": (x, y), "test": (x, y)}`` once a ClassSplitter is set)."""

    def __init__(
        self,
        root: Path | str | None = None,
        *,
        num_classes_per_task: int,
        meta_train: bool = False,
        meta_val: bool = False,
        meta_test: bool = False,
        meta_split: str | None = None,
        features: Features | None = None,
        norm: str | Normaliser = "global",
        class_dataset: AudiosetClassDataset | None = None,
        dataset_transform: _ClassSplitterTransform | None = None,
        seed: int = 0,
    ) -> None:
        if class_dataset is None:
            if root is None:
                raise UsageError("give a dataset root or a class_dataset")
            class_dataset = AudiosetClassDataset(
                root, meta_train=meta_train, meta_val=meta_val, meta_test=meta_test, meta_split=meta_split, features=features, norm=norm
            )
        self.dataset = class_dataset
        self.num_classes_per_task = int(num_classes_per_task)
        if not 2 <= self.num_classes_per_task <= class_dataset.num_classes:
            raise UsageError(f"num_classes_per_task must be 2..{class_dataset.num_classes} for this split, got {num_classes_per_task}")
        self.dataset_transform = dataset_transform
        self.seed = int(seed)

    def __len__(self) -> int:
        return math.comb(self.dataset.num_classes, self.num_classes_per_task)

    def _sampler(self) -> EpisodeSampler:
        t = self.dataset_transform
        if not isinstance(t, _ClassSplitterTransform):
            raise UsageError("set a ClassSplitter first: ClassSplitter(dataset, num_train_per_class=K, num_test_per_class=Q)")
        key = (t.num_train_per_class, t.num_test_per_class)
        cached = getattr(self, "_cached", None)
        if cached is None or cached[0] != key:
            sampler = EpisodeSampler(self.dataset.dataset, n_way=self.num_classes_per_task, k_shot=key[0], q_query=key[1], episodes=2**62, seed=self.seed)
            cached = (key, sampler)
            self._cached = cached
        return cached[1]

    def task_indices(self, classes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(support, query) dataset indices, shaped (N, K) and (N, Q), for a tuple of classes."""
        classes = [int(c) for c in classes]
        if len(classes) != self.num_classes_per_task or len(set(classes)) != len(classes):
            raise UsageError(f"a task is {self.num_classes_per_task} distinct class indices, got {classes}")
        sampler = self._sampler()
        rng = np.random.default_rng([self.seed, _TUPLE_STREAM, *classes])
        picks = sampler.draw_items(classes, rng)
        if picks is None:
            raise EpisodeError(f"classes {classes} cannot field {sampler.k_shot + sampler.q_query} clips each that carry no other class of the task")
        stacked = np.stack(picks)
        return stacked[:, : sampler.k_shot], stacked[:, sampler.k_shot :]

    def _task(self, support: np.ndarray, query: np.ndarray) -> dict[str, Batch]:
        import torch

        n, k = support.shape
        q = query.shape[1]
        ds = self.dataset.dataset
        x_tr, _ = ds.batch(support.ravel())
        x_te, _ = ds.batch(query.ravel())
        return {"train": (x_tr, torch.arange(n).repeat_interleave(k)), "test": (x_te, torch.arange(n).repeat_interleave(q))}

    def __getitem__(self, index: Sequence[int]) -> dict[str, Batch]:
        support, query = self.task_indices(index)
        return self._task(support, query)

    def episode(self, i: int, *, epoch: int = 0) -> dict[str, Batch]:
        """Task ``i`` of the seeded sequence (classes drawn too), as the loader yields them."""
        ep = self._sampler().episode(i, epoch=epoch)
        return self._task(ep.support, ep.query)


class BatchMetaDataLoader:
    """torchmeta's ``BatchMetaDataLoader``: batches of tasks stacked into
    ``{"train": (Tensor[B, N*K, ...], Tensor[B, N*K]), "test": (...)}``.  Batch ``b``
    holds tasks ``b*batch_size ... b*batch_size + batch_size - 1`` of the dataset's
    seeded sequence of ``epoch``; ``num_batches`` bounds the iteration (torchmeta's
    loader runs until stopped)."""

    def __init__(
        self, dataset: AudiosetMetaDataset, *, batch_size: int = 1, num_batches: int | None = None, epoch: int = 0, shuffle: bool = True, num_workers: int = 0
    ) -> None:
        if batch_size < 1:
            raise UsageError(f"batch_size must be >= 1, got {batch_size}")
        self.dataset, self.batch_size, self.num_batches, self.epoch = dataset, int(batch_size), num_batches, int(epoch)

    def __iter__(self) -> Iterator[dict[str, Batch]]:
        import torch

        b = 0
        while self.num_batches is None or b < self.num_batches:
            tasks = [self.dataset.episode(b * self.batch_size + t, epoch=self.epoch) for t in range(self.batch_size)]
            yield {part: (torch.stack([t[part][0] for t in tasks]), torch.stack([t[part][1] for t in tasks])) for part in ("train", "test")}
            b += 1

    def __len__(self) -> int:
        if self.num_batches is None:
            raise TypeError("this loader is unlimited (num_batches=None): it has no length")
        return self.num_batches


__all__ = ["AudiosetClassDataset", "AudiosetMetaDataset", "BatchMetaDataLoader", "ClassItems", "ClassSplitter"]
