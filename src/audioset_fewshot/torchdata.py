"""PyTorch datasets over a processed dataset root and its splits.

:class:`SplitDataset` is map-style: item ``i`` is ``(Tensor[1, n_mels, frames],
label)`` with ``label`` the dense class number within the split (``Tensor[10, 128]``,
seconds x dimensions, when the features are the VGGish release's embeddings).  Everything a
sampler needs is available without reading a single spectrogram:

- ``class_ids`` / ``class_names``: MID and name of each dense label;
- ``clip_ids``, ``rows`` (feature rows), ``targets`` (dense label per item),
  ``label_sets`` (all AudioSet labels of each item's clip), ``carried_labels``
  (per item, the dense labels of this split its clip carries: the episode guard);
- learn2learn's names: ``labels_to_indices`` ``{label: [item, ...]}``,
  ``indices_to_labels`` ``{item: label}``, ``labels`` (the distinct labels);
- easyfsl's: ``get_labels()``, the plain list of every item's label, so that
  ``easyfsl.samplers.TaskSampler(dataset, ...)`` samples episodes from it as is.

A clip of a split carrying two classes of that split is two items (one per
class), except under the ``owner`` leakage policy.  Normalisation statistics
(``global`` / ``channel``) are fitted on the *train* split's clips only, whatever
split the dataset serves.

``torch`` is imported only when a tensor is made.
"""

from __future__ import annotations

import logging
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import numpy as np

from audioset_fewshot.errors import StageNotReadyError, UsageError
from audioset_fewshot.splits import MetaSplits, check_split, read_splits

if TYPE_CHECKING:
    import torch

    from audioset_fewshot.process.features import FeatureStore
    from audioset_fewshot.release.store import EmbeddingStore

    # what a dataset reads items from: log-mel features, or the VGGish release's embeddings
    Features: TypeAlias = FeatureStore | EmbeddingStore
    # a batch: (data, dense labels)
    Batch: TypeAlias = tuple[torch.Tensor, torch.Tensor]

log = logging.getLogger(__name__)

NORM_MODES = ("none", "per_sample", "global", "channel")


def _torch() -> Any:
    import torch

    return torch


class Normaliser(Protocol):
    """A fitted normaliser (:class:`~audioset_fewshot.process.normalize.Normalizer`, or your own):
    ``apply`` maps a float array (numpy or torch, ``(..., n_mels, frames)``) to one of the same shape."""

    def apply(self, x: Any) -> Any: ...


def fit_train_normalizer(store: Features, splits: MetaSplits, norm: str | Normaliser) -> Normaliser:
    """A normaliser fitted on the train split's clips (``norm``: a mode or an object with ``apply``)."""
    if not isinstance(norm, str):
        if not callable(getattr(norm, "apply", None)):
            raise UsageError(f"norm must be one of {', '.join(NORM_MODES)} or an object with an apply(x) method, got {norm!r}")
        return norm
    if norm not in NORM_MODES:
        raise UsageError(f"unknown norm {norm!r}; expected one of {', '.join(NORM_MODES)}")
    train_ids = set(splits.pool_ids("train"))
    rows = np.asarray(sorted(r.row for r in store.index if r.clip_id in train_ids), dtype=np.int64)
    if norm in ("global", "channel") and rows.size == 0:
        raise StageNotReadyError(f"cannot fit '{norm}' normalisation: no train-split clip has features")
    from audioset_fewshot.process.normalize import Mode, fit_normalizer

    return fit_normalizer(store, rows if rows.size else None, mode=typing.cast("Mode", norm))


class SplitDataset:
    """Map-style dataset of one split (``train`` / ``val`` / ``test``); see module docstring.

    ``features``: a ``process.FeatureStore`` (default: ``load_features(root)``);
    ``norm``: ``none | per_sample | global | channel`` or a fitted normaliser;
    ``splits``: a :class:`~audioset_fewshot.splits.MetaSplits` (default: ``root/splits.json``).
    """

    def __init__(
        self, root: Path | str, split: str, *, features: Features | None = None, norm: str | Normaliser = "global", splits: MetaSplits | None = None
    ) -> None:
        self.root = Path(root)
        self.split = check_split(split)
        self.splits = splits if splits is not None else read_splits(self.root)
        if features is None:
            from audioset_fewshot.process import load_features

            features = load_features(self.root)
        self.features = features
        row_of = {r.clip_id: r for r in features.index}
        names = dict(zip(self.splits.mids(split), self.splits.names(split), strict=True))
        pools = self.splits.pools[split]
        mids = [m for m in sorted(pools) if any(c in row_of for c in pools[m])]
        self.class_ids: tuple[str, ...] = tuple(mids)
        self.class_names: tuple[str, ...] = tuple(names.get(m, m) or m for m in mids)
        number = {m: i for i, m in enumerate(mids)}
        clip_ids: list[str] = []
        rows: list[int] = []
        targets: list[int] = []
        missing = 0
        for m in mids:
            for clip in pools[m]:
                r = row_of.get(clip)
                if r is None:
                    missing += 1
                    continue
                clip_ids.append(clip)
                rows.append(int(r.row))
                targets.append(number[m])
        if missing:
            log.info("%s split: %d pooled clips have no features (rejected by clean or not obtained)", split, missing)
        if not clip_ids:
            raise StageNotReadyError(f"split {split!r} of {self.root} has no clips with features; obtain and process more clips")
        self.clip_ids: tuple[str, ...] = tuple(clip_ids)
        self.rows = np.asarray(rows, dtype=np.int64)
        self.targets = np.asarray(targets, dtype=np.int64)
        self.label_sets: tuple[tuple[str, ...], ...] = tuple(tuple(row_of[c].labels) for c in clip_ids)
        carried: list[tuple[int, ...]] = []
        for c, own in zip(clip_ids, targets, strict=True):
            mine = {number[m] for m in row_of[c].labels if m in number} | {own}
            carried.append(tuple(sorted(mine)))
        self.carried_labels: tuple[tuple[int, ...], ...] = tuple(carried)
        self.labels_to_indices: dict[int, list[int]] = {c: [] for c in range(len(mids))}
        for i, t in enumerate(targets):
            self.labels_to_indices[t].append(i)
        self.indices_to_labels: dict[int, int] = dict(enumerate(targets))
        self.labels: list[int] = list(range(len(mids)))
        self.normalizer = fit_train_normalizer(features, self.splits, norm)

    # -- metadata ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.clip_ids)

    def get_labels(self) -> list[int]:
        """Every item's dense label, in item order (what easyfsl's ``TaskSampler`` reads)."""
        return self.targets.tolist()

    @property
    def num_classes(self) -> int:
        return len(self.class_ids)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one item's tensor: (1, n_mels, frames); (10, 128) for the VGGish release's embeddings."""
        item = getattr(self.features, "item_shape", None)
        if item is not None:
            return tuple(int(s) for s in item)
        return (1, int(self.features.mels.shape[1]), int(self.features.mels.shape[2]))

    # -- data ------------------------------------------------------------------------------------
    def arrays(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Normalised float32 (len(indices), *shape) for item indices (numpy, no torch)."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"item index out of range 0..{len(self) - 1}")
        rows = self.rows[idx]
        # one sorted fancy read of the memmap, then back to the asked order
        order = np.argsort(rows, kind="stable")
        block = np.empty((idx.size,) + tuple(self.features.mels.shape[1:]), dtype=np.float32)
        block[order] = self.features.mels[rows[order]]
        x = self.normalizer.apply(block)
        if getattr(self.features, "item_shape", None) is not None:
            # embeddings are stored as (dimension, second) "channels x frames" so that per-channel
            # normalisation applies unchanged; an item is (seconds, dimensions)
            return np.ascontiguousarray(np.swapaxes(x, 1, 2), dtype=np.float32)
        return np.ascontiguousarray(x[:, None], dtype=np.float32)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        torch = _torch()
        if not -len(self) <= int(i) < len(self):
            raise IndexError(f"item {i} out of range for a dataset of {len(self)} items")
        i = int(i) % len(self)
        x = self.arrays([i])[0]
        return torch.from_numpy(x), int(self.targets[i])

    def batch(self, indices: Sequence[int] | np.ndarray) -> Batch:
        """``(Tensor[B, 1, n_mels, frames], Tensor[B] dense labels)`` for item indices."""
        torch = _torch()
        idx = np.asarray(indices, dtype=np.int64)
        return torch.from_numpy(self.arrays(idx)), torch.from_numpy(self.targets[idx].copy())

    def item_index(self, clip_id: str, class_id: str) -> int:
        """The item of ``clip_id`` under class ``class_id`` (a MID)."""
        lookup = getattr(self, "_lookup", None)
        if lookup is None:
            lookup = {(c, self.class_ids[t]): i for i, (c, t) in enumerate(zip(self.clip_ids, self.targets.tolist(), strict=True))}
            self._lookup = lookup
        try:
            return lookup[(clip_id, class_id)]
        except KeyError:
            raise UsageError(
                f"clip {clip_id} of class {class_id} is not in the {self.split} split's items "
                "(episodes and features out of step? rerun 'audioset-fewshot episodes --force')"
            ) from None


__all__ = ["NORM_MODES", "Normaliser", "SplitDataset", "fit_train_normalizer"]
