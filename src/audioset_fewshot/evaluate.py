"""Baselines that show the whole loop working: a prototypical network and a
nearest-centroid classifier, evaluated on fixed test episodes.

``protonet``
    A small CNN (input average-pooled to about 32 x 40 for CPU speed, then four
    blocks of 3x3 conv, batch norm, ReLU and 2x2 max-pool with 32 channels, then
    a 2x2 average pool: a 128-d embedding) trained on seeded meta-train episodes
    (Adam, squared Euclidean distance to class prototypes, cross-entropy on the
    queries), ``steps`` steps, on the CPU (one thread by default: with two, a
    loaded 2-core machine ran 4-5x slower per step than with one).  Weights are
    initialised from ``default_rng([seed, STREAM])``, not torch's global RNG.
``nearest-centroid``
    No training: the embedding of a clip is its normalised log-mel's mean and
    standard deviation per mel bin over time; each query goes to the nearest
    class centroid of the supports.

On the VGGish release's embeddings (``features.kind: vggish-release``, items
(10, 128): seconds x dimensions) ProtoNet's encoder is two 1-D convolutions
over time followed by the mean over time, and nearest-centroid embeds a clip
as its mean over time.

Every test clip is embedded once; an episode then costs a few array lookups,
so 10,000 episodes take seconds.  The result (mean accuracy, 95 % confidence
interval ``1.96 * std / sqrt(T)`` with the population std, N, K, Q, T, and the
hashes of the splits and the episode file) is written to ``eval/results.json``;
calling again with the same inputs and parameters returns it without training.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audioset_fewshot._io import atomic_write_json
from audioset_fewshot._progress import progress
from audioset_fewshot.episodes import EpisodeError, EpisodeFile, EpisodeSampler, accuracy_ci, read_episodes
from audioset_fewshot.errors import UsageError
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.splits import read_splits
from audioset_fewshot.torchdata import SplitDataset

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
METHODS = ("protonet", "nearest-centroid")
_INIT_STREAM = 1001  # weights: default_rng([seed, _INIT_STREAM])
_TRAIN_EPOCH = 0
_POOLED = (32, 40)  # the CNN sees about this many mel bins x frames
_CHANNELS = 32
_EMBED_BATCH = 128


@dataclass(frozen=True)
class EvalResult:
    """What ``eval/results.json`` holds."""

    method: str
    mean: float
    ci95: float
    n_way: int
    k_shot: int
    q_query: int
    episodes: int
    split: str
    splits_sha256: str
    episodes_sha256: str
    features_key: str
    params: dict[str, Any]
    train: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION, "stage": "evaluate", "method": self.method, "params": self.params,
            "inputs": {"splits_sha256": self.splits_sha256, "episodes_sha256": self.episodes_sha256, "features_key": self.features_key},
            "result": {"mean": self.mean, "ci95": self.ci95, "n_way": self.n_way, "k_shot": self.k_shot, "q_query": self.q_query,
                       "episodes": self.episodes, "split": self.split,
                       "ci": "1.96 * std / sqrt(T), population std (ddof=0)"},
            "train": self.train, "seconds": self.seconds,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, path: Path | None = None) -> EvalResult:
        r, i = d["result"], d["inputs"]
        return cls(method=d["method"], mean=float(r["mean"]), ci95=float(r["ci95"]), n_way=int(r["n_way"]), k_shot=int(r["k_shot"]),
                   q_query=int(r["q_query"]), episodes=int(r["episodes"]), split=str(r["split"]), splits_sha256=i["splits_sha256"],
                   episodes_sha256=i["episodes_sha256"], features_key=i["features_key"], params=d["params"],
                   train=d.get("train", {}), seconds=d.get("seconds", {}), path=path)

    def summary(self) -> str:
        return (f"{self.method}: {self.mean * 100:.2f} % +- {self.ci95 * 100:.2f} % (95 % CI) on {self.episodes} "
                f"{self.n_way}-way {self.k_shot}-shot {self.q_query}-query {self.split} episodes; splits {self.splits_sha256[:12]}")


# ---------------------------------------------------------------------------------------
# torch helpers (imported lazily)


@contextlib.contextmanager
def _threads(n: int) -> Iterator[Any]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield torch
    finally:
        torch.set_num_threads(before)


def build_encoder(n_mels: int, frames: int, *, seed: int, channels: int = _CHANNELS) -> Any:
    """The ProtoNet encoder for (B, 1, n_mels, frames) inputs, seeded weights."""
    import torch
    from torch import nn

    kh, kw = max(1, n_mels // _POOLED[0]), max(1, frames // _POOLED[1])
    layers: list[nn.Module] = [nn.AvgPool2d((kh, kw), ceil_mode=True)] if (kh, kw) != (1, 1) else []
    c_in = 1
    for _ in range(4):
        layers += [nn.Conv2d(c_in, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True)]
        c_in = channels
    layers += [nn.AdaptiveAvgPool2d((2, 2)), nn.Flatten()]
    model = nn.Sequential(*layers)
    rng = np.random.default_rng([seed, _INIT_STREAM])
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                bound = float(np.sqrt(6.0 / fan_in))  # He uniform, for ReLU
                m.weight.copy_(torch.from_numpy(rng.uniform(-bound, bound, size=tuple(m.weight.shape)).astype(np.float32)))
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.fill_(1.0)
                m.bias.zero_()
    return model


def build_sequence_encoder(seconds: int, dim: int, *, seed: int, channels: int = 128) -> Any:
    """The ProtoNet encoder for (B, seconds, dim) embedding sequences (the VGGish release's
    (10, 128) items): two 1-D convolutions over time (kernel 3, batch norm, ReLU), then the
    mean over time: a ``channels``-d embedding.  Seeded weights, as :func:`build_encoder`."""
    import torch
    from torch import nn

    class _OverTime(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Conv1d(dim, channels, 3, padding=1), nn.BatchNorm1d(channels), nn.ReLU(),
                                     nn.Conv1d(channels, channels, 3, padding=1), nn.BatchNorm1d(channels), nn.ReLU())

        def forward(self, x: Any) -> Any:
            return self.net(x.transpose(1, 2)).mean(dim=2)

    model = _OverTime()
    rng = np.random.default_rng([seed, _INIT_STREAM])
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv1d):
                bound = float(np.sqrt(6.0 / (m.in_channels * m.kernel_size[0])))
                m.weight.copy_(torch.from_numpy(rng.uniform(-bound, bound, size=tuple(m.weight.shape)).astype(np.float32)))
                if m.bias is not None:
                    m.bias.zero_()
    return model


_SEQUENCE_ARCHITECTURE = "2x(conv1d over time k3-128, bn, relu), mean over time"


def _proto_logits(torch: Any, support: Any, query: Any, n_way: int, k_shot: int) -> Any:
    protos = support.reshape(n_way, k_shot, -1).mean(dim=1)
    return -torch.cdist(query, protos) ** 2


def train_protonet(dataset: SplitDataset, *, n_way: int, k_shot: int, q_query: int, steps: int, learning_rate: float, seed: int,
                   threads: int = 1) -> tuple[Any, dict[str, Any]]:
    """Meta-train the encoder on seeded episodes of ``dataset``; returns (model, training record)."""
    sizes = np.asarray([len(v) for v in dataset.labels_to_indices.values()])
    n_used = int(min(n_way, int((sizes >= k_shot + 1).sum())))
    if n_used < 2:
        raise EpisodeError(f"the train split has {int((sizes >= k_shot + 1).sum())} classes with at least {k_shot + 1} clips; "
                           "ProtoNet training needs two; lower k_shot or obtain more clips")
    # the largest query count (<= q_query) for which n_used classes have k_shot + q clips
    q_used = int(min(q_query, np.sort(sizes)[::-1][n_used - 1] - k_shot))
    if (n_used, q_used) != (n_way, q_query):
        log.warning("train split too small for %d-way %d-shot %d-query episodes: training with %d-way %d-query",
                    n_way, k_shot, q_query, n_used, q_used)
    shape = dataset.shape
    record: dict[str, Any] = {"steps": steps, "n_way": n_used, "k_shot": k_shot, "q_query": q_used, "learning_rate": learning_rate,
                              "seed": seed, "threads": threads, "losses": []}
    with _threads(threads) as torch:
        model = build_encoder(shape[1], shape[2], seed=seed) if len(shape) == 3 else build_sequence_encoder(shape[0], shape[1], seed=seed)
        if steps == 0:
            return model.eval(), record
        opt = torch.optim.Adam(model.parameters(), lr=learning_rate)
        sampler = EpisodeSampler(dataset, n_way=n_used, k_shot=k_shot, q_query=q_used, episodes=steps, seed=seed, epoch=_TRAIN_EPOCH)
        target = torch.arange(n_used).repeat_interleave(q_used)
        model.train()
        window: list[float] = []
        for step, idx in enumerate(progress(sampler, total=steps, desc="train protonet", unit="step")):
            x, _ = dataset.batch(idx)
            emb = model(x)
            n_sup = n_used * k_shot
            logits = _proto_logits(torch, emb[:n_sup], emb[n_sup:], n_used, k_shot)
            loss = torch.nn.functional.cross_entropy(logits, target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            window.append(loss.item())
            if (step + 1) % 25 == 0 or step + 1 == steps:
                record["losses"].append([step + 1, round(float(np.mean(window)), 5)])
                window = []
        model.eval()
    return model, record


def embed_protonet(model: Any, dataset: SplitDataset, *, threads: int = 1) -> np.ndarray:
    """Embeddings (items, dim) of every item of ``dataset``, model in eval mode."""
    out = []
    with _threads(threads) as torch, torch.no_grad():
        for lo in range(0, len(dataset), _EMBED_BATCH):
            x, _ = dataset.batch(np.arange(lo, min(len(dataset), lo + _EMBED_BATCH)))
            out.append(model(x).numpy())
    return np.concatenate(out).astype(np.float64)


def embed_centroid(dataset: SplitDataset) -> np.ndarray:
    """Per-mel-bin mean and std over time of each item's normalised log-mel: (items, 2 * n_mels);
    for embedding sequences (items shaped (seconds, dim)) the mean over time: (items, dim)."""
    out = []
    for lo in range(0, len(dataset), _EMBED_BATCH):
        if len(dataset.shape) == 2:
            out.append(dataset.arrays(np.arange(lo, min(len(dataset), lo + _EMBED_BATCH))).astype(np.float64).mean(axis=1))
            continue
        x = dataset.arrays(np.arange(lo, min(len(dataset), lo + _EMBED_BATCH)))[:, 0].astype(np.float64)
        out.append(np.concatenate([x.mean(axis=2), x.std(axis=2)], axis=1))
    return np.concatenate(out)


def episode_accuracies(embeddings: np.ndarray, dataset: SplitDataset, episodes: list[Any]) -> np.ndarray:
    """Accuracy of nearest-prototype classification (squared Euclidean) on each fixed episode."""
    acc = np.empty(len(episodes), dtype=np.float64)
    for e, ep in enumerate(progress(episodes, desc="test episodes", unit="episode")):
        sup = [[dataset.item_index(c, mid) for c in row] for mid, row in zip(ep.classes, ep.support, strict=True)]
        qry = [[dataset.item_index(c, mid) for c in row] for mid, row in zip(ep.classes, ep.query, strict=True)]
        protos = np.stack([embeddings[s].mean(axis=0) for s in sup])
        q_idx = np.concatenate([np.asarray(r, dtype=np.int64) for r in qry])
        truth = np.repeat(np.arange(len(qry)), [len(r) for r in qry])
        d = ((embeddings[q_idx][:, None, :] - protos[None, :, :]) ** 2).sum(axis=2)
        acc[e] = float((d.argmin(axis=1) == truth).mean())
    return acc


# ---------------------------------------------------------------------------------------
# the stage


def _load_result(path: Path) -> EvalResult | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("schema_version") != SCHEMA_VERSION:
            return None
        return EvalResult.from_dict(data, path=path)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def evaluate(
    root: Path | str,
    *,
    episodes: EpisodeFile | Path | str,
    method: str = "protonet",
    n_way: int = 5,
    k_shot: int = 5,
    q_query: int = 15,
    steps: int = 300,
    learning_rate: float = 1e-3,
    seed: int = 0,
    norm: Any = "global",
    features: Any = None,
    threads: int = 1,
    force: bool = False,
) -> EvalResult:
    """Train ``method`` on the train split (``n_way``/``k_shot``/``q_query``/``steps``
    describe the training episodes) and evaluate it on the fixed ``episodes`` file.
    Writes ``eval/results.json``; the same inputs and parameters return the stored result."""
    if method not in METHODS:
        raise UsageError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if steps < 0 or learning_rate <= 0:
        raise UsageError(f"steps must be >= 0 and learning_rate > 0, got {steps} and {learning_rate}")
    layout = DatasetLayout(Path(root))
    ep_path = episodes.path if isinstance(episodes, EpisodeFile) else Path(episodes)
    header, fixed = read_episodes(ep_path)
    splits = read_splits(layout.root)
    if header.splits_sha256 != splits.content_sha256:
        raise UsageError(f"{ep_path} was drawn from other splits ({header.splits_sha256[:12]}, now {splits.content_sha256[:12]}); "
                         "rewrite it with 'audioset-fewshot episodes --force'")
    if features is None:
        from audioset_fewshot.process import load_features

        features = load_features(layout.root, verify=True)  # a NaN or a flipped byte must never reach a result
    params: dict[str, Any] = {"method": method, "norm": norm if isinstance(norm, str) else type(norm).__name__}
    if method == "protonet":
        params.update({"n_way": n_way, "k_shot": k_shot, "q_query": q_query, "steps": steps, "learning_rate": learning_rate,
                       "seed": seed, "architecture": f"avgpool->{_POOLED[0]}x{_POOLED[1]}, 4x(conv3x3-{_CHANNELS}, bn, relu, maxpool2), avgpool 2x2"})
        if getattr(features, "item_shape", None) is not None:
            params["architecture"] = _SEQUENCE_ARCHITECTURE
    fkey = str(getattr(features, "key", ""))
    if not force:
        old = _load_result(layout.eval_results)
        if (old is not None and old.params == params and old.splits_sha256 == splits.content_sha256
                and old.episodes_sha256 == header.episodes_sha256 and old.features_key == fkey):
            log.info("%s is up to date", layout.eval_results)
            return old
    t0 = time.perf_counter()
    test = SplitDataset(layout.root, header.split, features=features, norm=norm, splits=splits)
    train_record: dict[str, Any] = {}
    if method == "protonet":
        train = SplitDataset(layout.root, "train", features=features, norm=test.normalizer, splits=splits)
        model, train_record = train_protonet(train, n_way=n_way, k_shot=k_shot, q_query=q_query, steps=steps,
                                             learning_rate=learning_rate, seed=seed, threads=threads)
        t1 = time.perf_counter()
        emb = embed_protonet(model, test, threads=threads)
    else:
        t1 = time.perf_counter()
        emb = embed_centroid(test)
    acc = episode_accuracies(emb, test, fixed)
    t2 = time.perf_counter()
    mean, ci = accuracy_ci(acc)
    result = EvalResult(method=method, mean=mean, ci95=ci, n_way=header.n_way, k_shot=header.k_shot, q_query=header.q_query,
                        episodes=len(fixed), split=header.split, splits_sha256=splits.content_sha256,
                        episodes_sha256=header.episodes_sha256, features_key=fkey, params=params, train=train_record,
                        seconds={"train": round(t1 - t0, 3), "evaluate": round(t2 - t1, 3)}, path=layout.eval_results)
    atomic_write_json(layout.eval_results, result.to_dict())
    log.info("%s", result.summary())
    return result


__all__ = ["METHODS", "EvalResult", "build_encoder", "build_sequence_encoder", "embed_centroid", "embed_protonet", "episode_accuracies", "evaluate", "train_protonet"]
