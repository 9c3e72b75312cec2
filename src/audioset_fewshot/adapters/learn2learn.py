"""learn2learn-style task sets over a processed dataset root.

Code written as::

    tasksets = l2l.vision.benchmarks.get_tasksets("mini-imagenet", train_ways=5, train_samples=10,
                                                  test_ways=5, test_samples=10, root=...)
    X, y = tasksets.train.sample()

runs with ``tasksets = audioset_tasksets(root, train_ways=5, train_samples=10,
test_ways=5, test_samples=10)``.  As in learn2learn, ``*_samples`` counts the
clips per class of a task (support and query together; split them in the
training loop), labels are 0..ways-1 and consecutive (all clips of label 0,
then label 1, ...).  ``data`` is ``Tensor[ways * samples, 1, n_mels, frames]``.

With ``num_tasks = -1`` every ``sample()`` is a new task (task ``j`` of the set
is episode ``j``); with ``num_tasks = N`` the set holds N fixed tasks and
``sample()`` picks one of them.  Both sequences are seeded: the ``j``-th call
of ``sample()`` returns the same task in every run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from audioset_fewshot.episodes import EpisodeSampler
from audioset_fewshot.errors import UsageError
from audioset_fewshot.torchdata import Normaliser, SplitDataset

if TYPE_CHECKING:
    from audioset_fewshot.torchdata import Batch, Features

_PICK_STREAM = 9101  # which fixed task the j-th sample() returns: default_rng([seed, _PICK_STREAM, j])


class TaskSet:
    """A learn2learn ``TaskDataset`` look-alike over a :class:`SplitDataset`."""

    def __init__(self, dataset: SplitDataset, *, ways: int, samples: int, num_tasks: int = -1, seed: int = 0) -> None:
        if num_tasks == 0 or num_tasks < -1:
            raise UsageError(f"num_tasks must be -1 (unlimited) or a positive count, got {num_tasks}")
        self.dataset = dataset
        self.ways, self.samples, self.num_tasks, self.seed = int(ways), int(samples), int(num_tasks), int(seed)
        self._sampler = EpisodeSampler(dataset, n_way=ways, k_shot=samples, q_query=0, episodes=num_tasks if num_tasks > 0 else 2**62, seed=seed)
        self._draws = 0

    def __len__(self) -> int:
        if self.num_tasks < 0:
            raise TypeError("this task set is unlimited (num_tasks=-1): it has no length")
        return self.num_tasks

    def task_indices(self, i: int) -> list[int]:
        """Dataset indices of task ``i`` (class by class)."""
        if self.num_tasks > 0 and not 0 <= i < self.num_tasks:
            raise IndexError(f"task {i} out of range 0..{self.num_tasks - 1}")
        return self._sampler.indices(i)

    def __getitem__(self, i: int) -> Batch:
        idx = self.task_indices(int(i))
        data, _ = self.dataset.batch(idx)
        import torch

        labels = torch.arange(self.ways).repeat_interleave(self.samples)
        return data, labels

    def sample(self) -> Batch:
        """The next task of this set's seeded sequence: ``(data, labels)``."""
        j = self._draws
        self._draws += 1
        if self.num_tasks > 0:
            i = int(np.random.default_rng([self.seed, _PICK_STREAM, j]).integers(self.num_tasks))
        else:
            i = j
        return self[i]

    def state_dict(self) -> dict[str, int]:
        return {"draws": self._draws, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._draws = int(state["draws"])


class TaskSets(NamedTuple):
    """``(train, validation, test)`` like learn2learn's ``BenchmarkTasksets``."""

    train: TaskSet
    validation: TaskSet
    test: TaskSet


def audioset_tasksets(
    root: Path | str,
    *,
    train_ways: int = 5,
    train_samples: int = 10,
    test_ways: int = 5,
    test_samples: int = 10,
    num_tasks: int = -1,
    features: Features | None = None,
    norm: str | Normaliser = "global",
    seed: int = 0,
) -> TaskSets:
    """learn2learn-style task sets of a processed root's train / val / test splits
    (normalisation fitted on the train split)."""
    if features is None:
        from audioset_fewshot.process import load_features

        features = load_features(Path(root))
    train = SplitDataset(root, "train", features=features, norm=norm)
    val = SplitDataset(root, "val", features=features, norm=train.normalizer, splits=train.splits)
    test = SplitDataset(root, "test", features=features, norm=train.normalizer, splits=train.splits)
    return TaskSets(
        TaskSet(train, ways=train_ways, samples=train_samples, num_tasks=num_tasks, seed=seed),
        TaskSet(val, ways=test_ways, samples=test_samples, num_tasks=num_tasks, seed=seed),
        TaskSet(test, ways=test_ways, samples=test_samples, num_tasks=num_tasks, seed=seed),
    )


__all__ = ["TaskSet", "TaskSets", "audioset_tasksets"]
