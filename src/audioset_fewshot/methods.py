"""Few-shot methods on a backbone: training on meta-train, checkpoint selection on
validation episodes, scoring of fixed test episodes.

``protonet``
    Episodic training (Adam; squared Euclidean distance of queries to the class
    means of the supports; ``log_softmax(-d)`` and cross-entropy), as MetaAudio.
``simpleshot``
    Pre-train the backbone with a linear classifier over all meta-train classes
    (cross-entropy on batches of clips), then classify with the nearest centroid
    of *CL2N* features: the mean feature of the meta-train clips subtracted, then
    L2-normalised (Wang et al. 2019; MetaAudio's SimpleShot CL2N).
``finetune``
    The SimpleShot-pretrained backbone, frozen; per test episode a new linear
    head (softmax regression on the CL2N features of the supports, all episodes
    at once in one batched optimisation).
``maml``
    First-order MAML (Finn et al. 2017) written with ``torch.func.functional_call``:
    ``inner_steps`` SGD steps of ``inner_lr`` on the supports, the query loss's
    gradient at the adapted weights applied to the initial weights (Adam).  Batch
    norm uses the episode's batch statistics (transductive), as learn2learn's MAML.
    Each test episode is adapted on its own, so this is the slowest method.
``untrained``
    The backbone with its seeded initial weights and the nearest centroid: what
    the architecture alone gives.
``nearest-centroid``
    No network: a clip is its normalised log-mel's mean and standard deviation per
    mel bin over time.

*Pieces* (MetaAudio's variable-length protocol): with ``piece_frames > 0`` a clip is
cut into consecutive pieces of that many frames (the last one repeat-padded); a
training item is one random piece, a support is one random piece (seeded per
episode), and a query is classified by a majority vote over its pieces (ties go
to the class with the smallest summed distance).  MetaAudio cuts the waveform
before the STFT; cutting the log-mel frames is the same up to the frames that
straddle a boundary.

Everything random (weights, episodes, batches, pieces) is drawn from
``numpy.random.default_rng`` streams of the seed; dropout masks come from torch's
generator, seeded with the same seed when a training starts.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from audioset_fewshot.episodes import EpisodeError, EpisodeSampler, FixedEpisode
from audioset_fewshot.errors import UsageError
from audioset_fewshot.torchdata import SplitDataset

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)

TRAINED = ("protonet", "simpleshot", "finetune", "maml")
METHODS = ("protonet", "simpleshot", "finetune", "maml", "untrained", "nearest-centroid")
_TRAIN_EPOCH = 0
_VAL_EPOCH = 7
_PIECE_STREAM = 2001
_BATCH_STREAM = 2002
_EMBED_BATCH = 64
_CHUNK = 512  # episodes scored at once
_LINEAR_CHUNK = 4096  # episodes whose linear heads are fitted in one batched optimisation
_L2 = 0.05  # ridge penalty of the per-episode linear head (per episode: summed over its weights)
_VAL_BASE_ITEMS = 160  # meta-train items whose mean centres features during validation


@dataclass(frozen=True)
class TrainSettings:
    """How to train (one options object for every method)."""

    backbone: str = "crnn"
    n_way: int = 5
    k_shot: int = 5
    q_query: int = 15
    steps: int = 300
    max_seconds: float = 3600.0
    learning_rate: float = 5e-4
    seed: int = 0
    threads: int = 1
    piece_frames: int = 0
    val_episodes: int = 200
    val_every: int = 50
    tasks_per_step: int = 1
    inner_lr: float = 0.4
    inner_steps: int = 8
    batch_size: int = 32
    finetune_steps: int = 100
    finetune_lr: float = 0.05


@dataclass
class Trained:
    """A trained (or untouched) backbone and what its training did."""

    model: nn.Module
    record: dict[str, Any] = field(default_factory=dict)
    base_mean: np.ndarray | None = None  # SimpleShot's CL2N centre, from meta-train features


# ---------------------------------------------------------------------------------------
# pieces and batches


def piece_count(frames: int, piece_frames: int) -> int:
    return 1 if piece_frames <= 0 or piece_frames >= frames else math.ceil(frames / piece_frames)


def cut_pieces(x: np.ndarray, piece_frames: int) -> np.ndarray:
    """``(B, 1, M, F)`` -> ``(B, P, 1, M, piece_frames)``; the last piece repeat-padded."""
    frames = x.shape[-1]
    if piece_frames <= 0 or piece_frames >= frames:
        return x[:, None]
    p = piece_count(frames, piece_frames)
    padded = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, p * piece_frames - frames)], mode="wrap")
    return np.ascontiguousarray(np.moveaxis(padded.reshape(x.shape[:-1] + (p, piece_frames)), -2, 1))


def random_pieces(x: np.ndarray, piece_frames: int, rng: np.random.Generator) -> np.ndarray:
    """One random piece of each item: ``(B, 1, M, F)`` -> ``(B, 1, M, piece_frames)``."""
    pieces = cut_pieces(x, piece_frames)
    pick = rng.integers(0, pieces.shape[1], size=pieces.shape[0])
    return np.ascontiguousarray(pieces[np.arange(pieces.shape[0]), pick])


def input_frames(dataset: SplitDataset, piece_frames: int) -> int:
    frames = dataset.shape[2]
    return frames if piece_frames <= 0 or piece_frames >= frames else piece_frames


def embed_items(model: nn.Module, dataset: SplitDataset, piece_frames: int, items: np.ndarray | None = None) -> np.ndarray:
    """``(items, pieces, dim)`` embeddings of every piece of every item (or of ``items``), eval mode."""
    import torch

    model.eval()
    order = np.arange(len(dataset)) if items is None else np.asarray(items, dtype=np.int64)
    out: list[np.ndarray] = []
    for lo in range(0, len(order), _EMBED_BATCH):
        pieces = cut_pieces(dataset.arrays(order[lo : lo + _EMBED_BATCH]), piece_frames)
        b, p = pieces.shape[:2]
        flat = torch.from_numpy(pieces.reshape((b * p,) + pieces.shape[2:]))
        with torch.no_grad():
            out.append(model(flat).numpy().reshape(b, p, -1))
    return np.concatenate(out).astype(np.float32)


def embed_mel_stats(dataset: SplitDataset) -> np.ndarray:
    """Per-mel-bin mean and std over time of each item's normalised log-mel: ``(items, 1, 2 * n_mels)``;
    for embedding-sequence items ``(seconds, dim)`` the mean over time: ``(items, 1, dim)``."""
    out = []
    for lo in range(0, len(dataset), _EMBED_BATCH):
        x = dataset.arrays(np.arange(lo, min(len(dataset), lo + _EMBED_BATCH))).astype(np.float64)
        if x.ndim == 3:
            out.append(x.mean(axis=1))
            continue
        x = x[:, 0]
        out.append(np.concatenate([x.mean(axis=2), x.std(axis=2)], axis=1))
    return np.concatenate(out).astype(np.float32)[:, None]


# ---------------------------------------------------------------------------------------
# episodes as index arrays and their scoring


@dataclass(frozen=True)
class EpisodeArrays:
    """Fixed episodes as item indices: ``support (E, N, K)``, ``query (E, N, Q)``."""

    support: np.ndarray
    query: np.ndarray

    def __len__(self) -> int:
        return int(self.support.shape[0])

    def head(self, count: int) -> EpisodeArrays:
        return EpisodeArrays(self.support[:count], self.query[:count])


def episode_arrays(dataset: SplitDataset, episodes: Sequence[FixedEpisode]) -> EpisodeArrays:
    """Fixed episodes (clip ids per class, as ``read_episodes`` returns them) as item indices."""
    if not episodes:
        raise UsageError("no episodes to evaluate")
    sup = np.asarray([[[dataset.item_index(c, mid) for c in row] for mid, row in zip(ep.classes, ep.support, strict=True)]
                      for ep in episodes], dtype=np.int64)  # fmt: skip
    qry = np.asarray([[[dataset.item_index(c, mid) for c in row] for mid, row in zip(ep.classes, ep.query, strict=True)]
                      for ep in episodes], dtype=np.int64)  # fmt: skip
    return EpisodeArrays(sup, qry)


def sampled_arrays(dataset: SplitDataset, *, n_way: int, k_shot: int, q_query: int, count: int, seed: int, epoch: int) -> EpisodeArrays:
    """``count`` seeded episodes of ``dataset`` (validation) as index arrays."""
    sampler = EpisodeSampler(dataset, n_way=n_way, k_shot=k_shot, q_query=q_query, episodes=count, seed=seed, epoch=epoch)
    eps = [sampler.episode(i) for i in range(count)]
    return EpisodeArrays(np.stack([e.support for e in eps]), np.stack([e.query for e in eps]))


def support_pieces(arrays: EpisodeArrays, pieces: int, seed: int) -> np.ndarray:
    """The piece each support uses, ``(E, N, K)``, seeded by the episode file's order."""
    rng = np.random.default_rng([seed, _PIECE_STREAM])
    return rng.integers(0, pieces, size=arrays.support.shape)


def cl2n(emb: np.ndarray, base_mean: np.ndarray | None) -> np.ndarray:
    """Centre on the meta-train mean, then L2-normalise (along the last axis)."""
    x = emb - base_mean if base_mean is not None else emb
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


def _vote(dist: np.ndarray) -> np.ndarray:
    """Majority vote over pieces: ``dist (..., P, N)`` -> predicted class ``(...)``."""
    n = dist.shape[-1]
    votes = np.eye(n, dtype=np.float64)[dist.argmin(axis=-1)].sum(axis=-2)  # (..., N)
    tie_break = dist.sum(axis=-2)
    tie_break = tie_break / (tie_break.max(axis=-1, keepdims=True) + 1e-9) * 1e-3  # below one vote
    return np.asarray((votes - tie_break).argmax(axis=-1))


def score_centroid(emb: np.ndarray, arrays: EpisodeArrays, *, seed: int) -> np.ndarray:
    """Per-episode accuracy of the nearest class mean (squared Euclidean) on ``emb (items, P, D)``."""
    pieces = emb.shape[1]
    pick = support_pieces(arrays, pieces, seed)
    acc = np.empty(len(arrays), dtype=np.float64)
    for lo in range(0, len(arrays), _CHUNK):
        sl = slice(lo, lo + _CHUNK)
        protos = emb[arrays.support[sl], pick[sl]].mean(axis=2)  # (e, N, D)
        q = emb[arrays.query[sl]]  # (e, N, Q, P, D)
        dist = ((q * q).sum(-1)[..., None] - 2.0 * np.einsum("enqpd,emd->enqpm", q, protos)
                + (protos * protos).sum(-1)[:, None, None, None, :])  # fmt: skip
        pred = _vote(dist)  # (e, N, Q)
        truth = np.arange(pred.shape[1])[None, :, None]
        acc[sl] = (pred == truth).mean(axis=(1, 2))
    return acc


def score_linear(emb: np.ndarray, arrays: EpisodeArrays, *, seed: int, steps: int, lr: float) -> np.ndarray:
    """Per-episode accuracy of a softmax-regression head fitted on each episode's supports
    (all episodes of a chunk in one batched Adam optimisation; weights start at zero)."""
    import torch
    from torch import nn

    pieces = emb.shape[1]
    pick = support_pieces(arrays, pieces, seed)
    acc = np.empty(len(arrays), dtype=np.float64)
    for lo in range(0, len(arrays), _LINEAR_CHUNK):
        sl = slice(lo, lo + _LINEAR_CHUNK)
        xs = torch.from_numpy(emb[arrays.support[sl], pick[sl]])  # (e, N, K, D)
        e, n, k, d = xs.shape
        xs = xs.reshape(e, n * k, d)
        ys = torch.arange(n).repeat_interleave(k).expand(e, n * k)
        w = torch.zeros(e, d, n, requires_grad=True)
        b = torch.zeros(e, 1, n, requires_grad=True)
        opt = torch.optim.Adam([w, b], lr=lr)
        for _ in range(steps):
            logits = torch.bmm(xs, w) + b
            loss = nn.functional.cross_entropy(logits.reshape(-1, n), ys.reshape(-1), reduction="sum") / (n * k) + _L2 * (w * w).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            q = torch.from_numpy(emb[arrays.query[sl]])  # (e, N, Q, P, D)
            logits = torch.einsum("enqpd,edm->enqpm", q, w) + b[:, None, None]
            pred = _vote(-logits.numpy())
        truth = np.arange(n)[None, :, None]
        acc[sl] = (pred == truth).mean(axis=(1, 2))
    return acc


# ---------------------------------------------------------------------------------------
# training


class _Budget:
    def __init__(self, steps: int, max_seconds: float) -> None:
        self.steps, self.max_seconds, self.t0 = steps, max_seconds, time.perf_counter()

    def over(self) -> bool:
        return time.perf_counter() - self.t0 > self.max_seconds

    def seconds(self) -> float:
        return round(time.perf_counter() - self.t0, 3)


def _episode_shape(dataset: SplitDataset, n_way: int, k_shot: int, q_query: int, what: str) -> tuple[int, int]:
    """The largest (n, q) <= (n_way, q_query) the split can field (with k_shot supports)."""
    sizes = np.asarray([len(v) for v in dataset.labels_to_indices.values()])
    n_used = int(min(n_way, int((sizes >= k_shot + 1).sum())))
    if n_used < 2:
        raise EpisodeError(
            f"the {dataset.split} split has {int((sizes >= k_shot + 1).sum())} classes with at least {k_shot + 1} "
            f"clips; {what} needs two; lower k_shot or obtain more clips"
        )
    q_used = int(min(q_query, np.sort(sizes)[::-1][n_used - 1] - k_shot))
    if (n_used, q_used) != (n_way, q_query):
        log.warning(
            "%s split too small for %d-way %d-shot %d-query %s episodes: using %d-way %d-query", dataset.split, n_way, k_shot, q_query, what, n_used, q_used
        )
    return n_used, q_used


class _Validator:
    """Accuracy on seeded validation episodes; keeps the best weights."""

    def __init__(self, val: SplitDataset | None, s: TrainSettings, k_shot: int, score: Callable[[nn.Module, EpisodeArrays], float]) -> None:
        self.arrays: EpisodeArrays | None = None
        self.score = score
        self.best: float = -1.0
        self.best_step = 0
        self.state: dict[str, torch.Tensor] | None = None
        self.history: list[list[float]] = []
        if val is None or s.val_episodes <= 0:
            return
        try:
            n, q = _episode_shape(val, s.n_way, k_shot, s.q_query, "validation")
            self.arrays = sampled_arrays(val, n_way=n, k_shot=k_shot, q_query=q, count=s.val_episodes, seed=s.seed, epoch=_VAL_EPOCH)
        except EpisodeError as exc:
            log.warning("no checkpoint selection: %s", exc)

    def check(self, model: nn.Module, step: int) -> None:
        if self.arrays is None:
            return
        acc = float(self.score(model, self.arrays))
        self.history.append([step, round(acc, 5)])
        if acc > self.best:
            self.best, self.best_step = acc, step
            self.state = copy.deepcopy(model.state_dict())

    def restore(self, model: nn.Module, record: dict[str, Any]) -> None:
        if self.state is not None:
            model.load_state_dict(self.state)
            record.update(
                {
                    "selected_step": self.best_step,
                    "val_accuracy": round(self.best, 5),
                    "val_history": self.history,
                    "val_episodes": len(self.arrays) if self.arrays is not None else 0,
                }
            )


class _TrainLog:
    """What every trainer does around its optimiser steps: the loss window logged every 10
    steps, validation every ``val_every`` steps and once at the end, the best weights restored."""

    def __init__(self, validator: _Validator, record: dict[str, Any], total: int, val_every: int) -> None:
        self.validator, self.record, self.total, self.val_every = validator, record, total, val_every
        self.window: list[float] = []
        self.done = 0

    def end_step(self, model: nn.Module, step: int) -> None:
        self.done = step + 1
        if self.done % 10 == 0 or self.done == self.total:
            self.record["losses"].append([self.done, round(float(np.mean(self.window)), 5)])
            self.window = []
        if self.done % self.val_every == 0:
            self.validator.check(model, self.done)

    def finish(self, model: nn.Module, budget: _Budget) -> None:
        history = self.validator.history
        if self.done and (not history or history[-1][0] != self.done):
            self.validator.check(model, self.done)
        self.validator.restore(model, self.record)
        self.record.update({"steps": self.done, "seconds": budget.seconds()})


def _batch(dataset: SplitDataset, idx: Sequence[int] | np.ndarray, piece_frames: int, rng: np.random.Generator) -> torch.Tensor:
    import torch

    x = dataset.arrays(idx)
    if piece_frames > 0 and piece_frames < x.shape[-1]:
        x = random_pieces(x, piece_frames, rng)
    return torch.from_numpy(x)


def _steps(budget: _Budget, total: int, what: str) -> Iterator[int]:
    from audioset_fewshot._progress import progress

    for step in progress(range(total), total=total, desc=f"train {what}", unit="step"):
        if budget.over():
            log.info("training stopped by its wall-clock limit after %d of %d steps", step, total)
            return
        yield step


def _proto_logits(support: torch.Tensor, query: torch.Tensor, n_way: int, k_shot: int) -> torch.Tensor:
    import torch

    protos = support.reshape(n_way, k_shot, -1).mean(dim=1)
    return -(torch.cdist(query, protos) ** 2)


def _centroid_val(s: TrainSettings, val: SplitDataset | None, base: Callable[[nn.Module], np.ndarray | None] | None = None
                  ) -> Callable[[nn.Module, EpisodeArrays], float]:  # fmt: skip
    def score(model: nn.Module, arrays: EpisodeArrays) -> float:
        assert val is not None
        emb = embed_items(model, val, s.piece_frames)
        if base is not None:
            emb = cl2n(emb, base(model))
        return float(score_centroid(emb, arrays, seed=s.seed).mean())

    return score


def untrained(dataset: SplitDataset, s: TrainSettings, out_dim: int = 64) -> Trained:
    """The backbone with its seeded initial weights (the sequence encoder for embedding-sequence items)."""
    from audioset_fewshot.models import build_for_items

    shape = tuple(dataset.shape)
    if len(shape) == 3:
        shape = (shape[0], shape[1], input_frames(dataset, s.piece_frames))
    model = build_for_items(s.backbone, shape, seed=s.seed, out_dim=out_dim)
    return Trained(model, {"steps": 0, "seconds": 0.0, "backbone": backbone_label(dataset, s.backbone)})


def backbone_label(dataset: SplitDataset, backbone: str) -> str:
    """What the results call the network: the backbone, or ``sequence`` for embedding-sequence items."""
    return "sequence" if len(dataset.shape) == 2 else backbone


def _episodic_record(s: TrainSettings, n_way: int, k_shot: int, q_query: int, **extra: float | bool) -> dict[str, Any]:
    """What an episodic training records before it starts: its episode shape, optimiser
    settings and ``extra`` (the losses are appended as it runs)."""
    return {"backbone": s.backbone, "n_way": n_way, "k_shot": k_shot, "q_query": q_query, "learning_rate": s.learning_rate,
            "steps_asked": s.steps, "tasks_per_step": s.tasks_per_step, **extra, "losses": []}  # fmt: skip


def train_protonet(train: SplitDataset, val: SplitDataset | None, s: TrainSettings, *, val_k_shot: int) -> Trained:
    """Episodic ProtoNet training (``s.n_way``-way ``s.k_shot``-shot ``s.q_query``-query
    episodes); the checkpoint with the best accuracy on ``val_k_shot``-shot validation
    episodes (the test episodes' K) is kept."""
    import torch
    from torch import nn

    torch.manual_seed(s.seed)
    model = untrained(train, s).model
    k_shot = s.k_shot
    n, q = _episode_shape(train, s.n_way, k_shot, s.q_query, "ProtoNet training")
    record = _episodic_record(s, n, k_shot, q)
    validator = _Validator(val, s, val_k_shot, _centroid_val(s, val))
    budget = _Budget(s.steps, s.max_seconds)
    rng = np.random.default_rng([s.seed, _BATCH_STREAM])
    sampler = EpisodeSampler(train, n_way=n, k_shot=k_shot, q_query=q, episodes=s.steps * s.tasks_per_step, seed=s.seed, epoch=_TRAIN_EPOCH)
    opt = torch.optim.Adam(model.parameters(), lr=s.learning_rate)
    target = torch.arange(n).repeat_interleave(q)
    tlog = _TrainLog(validator, record, s.steps, s.val_every)
    for step in _steps(budget, s.steps, "protonet"):
        model.train()
        opt.zero_grad()
        for t in range(s.tasks_per_step):
            ep = sampler.episode(step * s.tasks_per_step + t)
            emb = model(_batch(train, ep.indices(), s.piece_frames, rng))
            logits = _proto_logits(emb[: n * k_shot], emb[n * k_shot :], n, k_shot)
            loss = nn.functional.cross_entropy(logits, target) / s.tasks_per_step
            loss.backward()
            tlog.window.append(loss.item() * s.tasks_per_step)
        opt.step()
        tlog.end_step(model, step)
    tlog.finish(model, budget)
    return Trained(model.eval(), record)


def train_simpleshot(train: SplitDataset, val: SplitDataset | None, s: TrainSettings, *, k_shot: int) -> Trained:
    """Supervised pre-training over the meta-train classes; CL2N nearest-centroid validation."""
    import torch
    from torch import nn

    torch.manual_seed(s.seed)
    model = untrained(train, s).model
    classifier = nn.Linear(64, train.num_classes)
    with torch.no_grad():
        init = np.random.default_rng([s.seed, _BATCH_STREAM, 1])
        bound = 1.0 / 8.0
        classifier.weight.copy_(torch.from_numpy(init.uniform(-bound, bound, tuple(classifier.weight.shape)).astype(np.float32)))
        classifier.bias.zero_()
    record: dict[str, Any] = {
        "backbone": s.backbone,
        "classes": train.num_classes,
        "batch_size": s.batch_size,
        "learning_rate": s.learning_rate,
        "steps_asked": s.steps,
        "losses": [],
    }

    subset = np.sort(np.random.default_rng([s.seed, _BATCH_STREAM, 2]).permutation(len(train))[:_VAL_BASE_ITEMS])

    def base(m: nn.Module) -> np.ndarray:
        return base_mean(m, train, s.piece_frames, subset)

    validator = _Validator(val, s, k_shot, _centroid_val(s, val, base))
    budget = _Budget(s.steps, s.max_seconds)
    rng = np.random.default_rng([s.seed, _BATCH_STREAM])
    opt = torch.optim.Adam(list(model.parameters()) + list(classifier.parameters()), lr=s.learning_rate)
    targets = torch.from_numpy(train.targets)
    tlog = _TrainLog(validator, record, s.steps, s.val_every)
    for step in _steps(budget, s.steps, "simpleshot"):
        model.train()
        idx = rng.choice(len(train), size=min(s.batch_size, len(train)), replace=False)
        loss = nn.functional.cross_entropy(classifier(model(_batch(train, idx, s.piece_frames, rng))), targets[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        tlog.window.append(loss.item())
        tlog.end_step(model, step)
    tlog.finish(model, budget)
    model.eval()
    return Trained(model, record, base_mean(model, train, s.piece_frames))


def base_mean(model: nn.Module, train: SplitDataset, piece_frames: int, items: np.ndarray | None = None) -> np.ndarray:
    """Mean embedding of every piece of the meta-train items (all, or ``items``): SimpleShot's centre."""
    emb = embed_items(model, train, piece_frames, items)
    return np.asarray(emb.reshape(-1, emb.shape[-1]).mean(axis=0), dtype=np.float32)


# -- first-order MAML with torch.func ------------------------------------------------------


def _adapt(model: nn.Module, params: Mapping[str, torch.Tensor], buffers: Mapping[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
           lr: float, steps: int) -> dict[str, torch.Tensor]:  # fmt: skip
    """``steps`` SGD steps on (x, y) from ``params``; first order: no graph through the updates."""
    import torch
    from torch import nn
    from torch.func import functional_call

    fast = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    buffers = dict(buffers)
    for _ in range(steps):
        loss = nn.functional.cross_entropy(functional_call(model, (fast, buffers), (x,)), y)
        grads = torch.autograd.grad(loss, list(fast.values()))
        fast = {k: (v - lr * g).detach().requires_grad_(True) for (k, v), g in zip(fast.items(), grads, strict=True)}
    return fast


def maml_episode_predictions(model: nn.Module, support: torch.Tensor, query: torch.Tensor, n_way: int, k_shot: int,
                             lr: float, steps: int) -> torch.Tensor:  # fmt: skip
    """Adapt on ``support`` (N*K, 1, M, F) and return query logits ((N*Q*P), N)."""
    import torch
    from torch.func import functional_call

    params = dict(model.named_parameters())
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    y = torch.arange(n_way).repeat_interleave(k_shot)
    model.train()
    fast = _adapt(model, params, buffers, support, y, lr, steps)
    with torch.no_grad():
        out: torch.Tensor = functional_call(model, (fast, buffers), (query,))
    return out


def score_maml(model: nn.Module, dataset: SplitDataset, arrays: EpisodeArrays, s: TrainSettings) -> np.ndarray:
    """Per-episode accuracy of FO-MAML: each episode adapted from the meta-learned weights."""
    import torch

    pick = support_pieces(arrays, piece_count(dataset.shape[2], s.piece_frames), s.seed)
    acc = np.empty(len(arrays), dtype=np.float64)
    n, k = arrays.support.shape[1:]
    q = arrays.query.shape[2]
    from audioset_fewshot._progress import progress

    for e in progress(range(len(arrays)), total=len(arrays), desc="maml test episodes", unit="episode"):
        sup = cut_pieces(dataset.arrays(arrays.support[e].ravel()), s.piece_frames)[np.arange(n * k), pick[e].ravel()]
        qp = cut_pieces(dataset.arrays(arrays.query[e].ravel()), s.piece_frames)  # (N*Q, P, 1, M, F)
        p = qp.shape[1]
        logits = maml_episode_predictions(
            model, torch.from_numpy(np.ascontiguousarray(sup)), torch.from_numpy(qp.reshape((n * q * p,) + qp.shape[2:])), n, k, s.inner_lr, s.inner_steps
        )
        pred = _vote(-logits.numpy().reshape(n, q, p, n))
        acc[e] = float((pred == np.arange(n)[:, None]).mean())
    return acc


def train_maml(train: SplitDataset, val: SplitDataset | None, s: TrainSettings, *, n_way: int, k_shot: int, val_cap: int = 20) -> Trained:
    """First-order MAML; ``n_way`` is the test episodes' (the head has that many outputs)."""
    import torch
    from torch import nn

    torch.manual_seed(s.seed)
    model = untrained(train, s, out_dim=n_way).model
    n, q = _episode_shape(train, n_way, k_shot, s.q_query, "MAML training")
    if n != n_way:
        raise EpisodeError(f"MAML needs {n_way}-way training episodes (its head has {n_way} outputs); the train split has {n} usable classes")
    record = _episodic_record(s, n, k_shot, q, inner_lr=s.inner_lr, inner_steps=s.inner_steps, first_order=True)
    vs = TrainSettings(**{**s.__dict__, "val_episodes": min(s.val_episodes, val_cap)})

    def score(m: nn.Module, arrays: EpisodeArrays) -> float:
        assert val is not None
        return float(score_maml(m, val, arrays, vs).mean())

    validator = _Validator(val, vs, k_shot, score) if val is not None and n_way <= val.num_classes else _Validator(None, vs, k_shot, score)
    budget = _Budget(s.steps, s.max_seconds)
    rng = np.random.default_rng([s.seed, _BATCH_STREAM])
    sampler = EpisodeSampler(train, n_way=n, k_shot=k_shot, q_query=q, episodes=s.steps * s.tasks_per_step, seed=s.seed, epoch=_TRAIN_EPOCH)
    opt = torch.optim.Adam(model.parameters(), lr=s.learning_rate)
    from torch.func import functional_call

    names = [k for k, _ in model.named_parameters()]
    yq = torch.arange(n).repeat_interleave(q)
    ys = torch.arange(n).repeat_interleave(k_shot)
    tlog = _TrainLog(validator, record, s.steps, s.val_every)
    for step in _steps(budget, s.steps, "maml"):
        model.train()
        opt.zero_grad()
        params = dict(model.named_parameters())
        buffers = dict(model.named_buffers())
        for t in range(s.tasks_per_step):
            ep = sampler.episode(step * s.tasks_per_step + t)
            x = _batch(train, ep.indices(), s.piece_frames, rng)
            fast = _adapt(model, params, buffers, x[: n * k_shot], ys, s.inner_lr, s.inner_steps)
            loss = nn.functional.cross_entropy(functional_call(model, (fast, buffers), (x[n * k_shot :],)), yq)
            grads = torch.autograd.grad(loss, [fast[k] for k in names])
            for name, g in zip(names, grads, strict=True):
                p = params[name]
                p.grad = g / s.tasks_per_step if p.grad is None else p.grad + g / s.tasks_per_step
            tlog.window.append(loss.item())
        opt.step()
        tlog.end_step(model, step)
    tlog.finish(model, budget)
    return Trained(model, record)


__all__ = [
    "METHODS",
    "TRAINED",
    "EpisodeArrays",
    "TrainSettings",
    "Trained",
    "base_mean",
    "cl2n",
    "cut_pieces",
    "embed_items",
    "embed_mel_stats",
    "episode_arrays",
    "maml_episode_predictions",
    "piece_count",
    "random_pieces",
    "sampled_arrays",
    "score_centroid",
    "score_linear",
    "score_maml",
    "train_maml",
    "train_protonet",
    "train_simpleshot",
    "untrained",
]
