"""``normalize``: feature normalisation fitted on a chosen set of rows.

Modes:

* ``none``        identity;
* ``per_sample``  each example minus its own mean, over its own std (no fitting);
* ``global``      one mean and one std over every value of the fitted rows;
* ``channel``     one mean and std per mel bin over the fitted rows.

``global`` and ``channel`` are fitted on the rows you pass, normally the
meta-train rows once splits exist (fitting on every row leaks test statistics
into training).  They are pooled in float64 from the per-clip sums the features
stage stored (count, sum, sum of squares per clip and mel bin), so no feature is
read again.  ``std`` is the population standard deviation (ddof = 0).

A fitted normaliser is cached as JSON in ``processed/norm/`` under a name built
from (mode, features key, sha256 of the sorted unique rows): a second fit of the
same thing reads it back.  JSON floats round-trip exactly.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from audioset_fewshot._io import atomic_write_json, sha256_bytes
from audioset_fewshot.errors import UsageError
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.process._common import disk_full_is_processing_error, read_json
from audioset_fewshot.process.features import FeatureStore

if TYPE_CHECKING:
    from audioset_fewshot.release.store import EmbeddingStore

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MODES = ("none", "per_sample", "global", "channel")
Mode = Literal["none", "per_sample", "global", "channel"]


@dataclass(frozen=True)
class Stats:
    """Pooled statistics of a set of rows: per mel bin and over everything (float64)."""

    count: np.ndarray  # (n_mels,) values per bin
    channel_mean: np.ndarray  # (n_mels,)
    channel_std: np.ndarray  # (n_mels,)
    global_mean: float
    global_std: float


def _rows_array(store: FeatureStore | EmbeddingStore, rows: Sequence[int] | np.ndarray) -> np.ndarray:
    r = np.unique(np.asarray(rows, dtype=np.int64))
    if r.size == 0:
        raise UsageError("normalize: cannot fit on an empty set of rows")
    if r[0] < 0 or r[-1] >= len(store):
        raise UsageError(f"normalize: rows must be within 0..{len(store) - 1}, got {int(r[0])}..{int(r[-1])}")
    return r


def rows_sha256(rows: Sequence[int] | np.ndarray) -> str:
    """sha256 of the sorted unique rows as little-endian int64 (order and repeats do not matter)."""
    return sha256_bytes(np.unique(np.asarray(rows, dtype=np.int64)).astype("<i8").tobytes())


def stats_from_sums(store: FeatureStore | EmbeddingStore, rows: Sequence[int] | np.ndarray) -> Stats:
    """Pool the stored per-clip sums over ``rows`` (no feature is read)."""
    r = _rows_array(store, rows)
    c = store.stats_count[r].sum(axis=0, dtype=np.float64)
    s = store.stats_sum[r].sum(axis=0, dtype=np.float64)
    ss = store.stats_sumsq[r].sum(axis=0, dtype=np.float64)
    mean = s / c
    std = np.sqrt(np.maximum(ss / c - mean * mean, 0.0))
    total, gs, gss = float(c.sum()), float(s.sum()), float(ss.sum())
    gmean = gs / total
    gstd = math.sqrt(max(gss / total - gmean * gmean, 0.0))
    return Stats(count=c, channel_mean=mean, channel_std=std, global_mean=gmean, global_std=gstd)


def compute_stats_direct(store: FeatureStore | EmbeddingStore, rows: Sequence[int] | np.ndarray, *, block_rows: int = 256) -> Stats:
    """The same statistics computed from the features themselves (two passes, float64).

    Slow on purpose: it is the reference the per-clip sums are checked against.
    """
    r = _rows_array(store, rows)
    n_mels, frames = store.mels.shape[1], store.mels.shape[2]
    count = np.full(n_mels, float(r.size * frames))
    s = np.zeros(n_mels)
    for i in range(0, r.size, block_rows):
        s += store.mels[r[i : i + block_rows]].astype(np.float64).sum(axis=(0, 2))
    mean = s / count
    gmean = float(s.sum() / count.sum())
    dev = np.zeros(n_mels)
    gdev = 0.0
    for i in range(0, r.size, block_rows):
        x = store.mels[r[i : i + block_rows]].astype(np.float64)
        dev += np.square(x - mean[None, :, None]).sum(axis=(0, 2))
        gdev += float(np.square(x - gmean).sum())
    return Stats(count=count, channel_mean=mean, channel_std=np.sqrt(dev / count), global_mean=gmean, global_std=math.sqrt(gdev / count.sum()))


@dataclass(frozen=True, eq=False)
class Normalizer:
    """``apply(x)`` normalises numpy arrays or torch tensors shaped (..., n_mels, frames).

    ``mean`` / ``std`` are float64 scalars (global) or (n_mels,) arrays (channel);
    None for ``none`` and ``per_sample``.  ``eps`` keeps a zero std from dividing by zero.
    """

    mode: Mode
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    eps: float = 1e-8
    feature_key: str | None = None
    rows_sha256: str | None = None
    rows: int = 0
    path: Path | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Normalizer):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self.mode, self.feature_key, self.rows_sha256))

    def apply(self, x: Any) -> Any:
        if self.mode == "none":
            return x
        is_torch = type(x).__module__.split(".")[0] == "torch"
        if self.mode == "per_sample":
            if is_torch:
                m = x.mean(dim=(-2, -1), keepdim=True)
                sd = x.std(dim=(-2, -1), keepdim=True, correction=0)
            else:
                m = x.mean(axis=(-2, -1), keepdims=True)
                sd = x.std(axis=(-2, -1), keepdims=True)
            return (x - m) / (sd + self.eps)
        if self.mean is None or self.std is None:
            raise UsageError(f"normalize: a {self.mode} normaliser needs mean and std; build it with fit_normalizer")
        mean = np.asarray(self.mean, dtype=np.float64)
        scale = 1.0 / (np.asarray(self.std, dtype=np.float64) + self.eps)
        if self.mode == "channel":
            mean, scale = mean[:, None], scale[:, None]
        if is_torch:
            import torch

            dt = x.dtype if x.is_floating_point() else torch.float32
            return (x.to(dt) - torch.as_tensor(mean, dtype=dt, device=x.device)) * torch.as_tensor(scale, dtype=dt, device=x.device)
        dt = x.dtype if np.issubdtype(np.asarray(x).dtype, np.floating) else np.float32
        return ((np.asarray(x, dtype=dt) - mean.astype(dt)) * scale.astype(dt)).astype(dt, copy=False)

    __call__ = apply

    def to_dict(self) -> dict[str, Any]:
        def enc(a: np.ndarray | None) -> Any:
            if a is None:
                return None
            arr = np.asarray(a, dtype=np.float64)
            return float(arr) if arr.ndim == 0 else [float(v) for v in arr]

        return {
            "schema_version": SCHEMA_VERSION,
            "mode": self.mode,
            "mean": enc(self.mean),
            "std": enc(self.std),
            "eps": self.eps,
            "feature_key": self.feature_key,
            "rows_sha256": self.rows_sha256,
            "rows": self.rows,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, path: Path | None = None) -> Normalizer:
        def dec(v: Any) -> np.ndarray | None:
            return None if v is None else np.asarray(v, dtype=np.float64)

        return cls(
            mode=d["mode"],
            mean=dec(d["mean"]),
            std=dec(d["std"]),
            eps=float(d["eps"]),
            feature_key=d.get("feature_key"),
            rows_sha256=d.get("rows_sha256"),
            rows=int(d.get("rows", 0)),
            path=path,
        )


def normalizer_path(root: Path, *, mode: str, feature_key: str, rows_hash: str) -> Path:
    return DatasetLayout(root).norm_dir / f"{mode}-{feature_key}-{rows_hash[:16]}.json"


def fit_normalizer(
    store: FeatureStore | EmbeddingStore, rows: Sequence[int] | np.ndarray | None = None, *, mode: Mode = "global", eps: float = 1e-8, cache: bool = True
) -> Normalizer:
    """Fit a normaliser of ``mode`` on ``rows`` of ``store`` (all rows when None).

    ``global`` / ``channel`` pool the per-clip sums in float64 and are cached in
    ``processed/norm/`` by (mode, features key, rows hash); ``none`` and
    ``per_sample`` need no fitting.
    """
    if mode not in MODES:
        raise UsageError(f"normalize: mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode in ("none", "per_sample"):
        return Normalizer(mode=mode, eps=eps, feature_key=store.key)
    r = np.arange(len(store)) if rows is None else _rows_array(store, rows)
    rh = rows_sha256(r)
    path = normalizer_path(store.root, mode=mode, feature_key=store.key, rows_hash=rh)
    if cache:
        cached = read_json(path)
        if (
            cached
            and cached.get("schema_version") == SCHEMA_VERSION
            and cached.get("rows_sha256") == rh
            and cached.get("feature_key") == store.key
            and cached.get("mode") == mode
            and cached.get("eps") == eps
        ):
            return Normalizer.from_dict(cached, path=path)
    st = stats_from_sums(store, r)
    if mode == "global":
        norm = Normalizer(
            mode=mode,
            mean=np.asarray(st.global_mean, dtype=np.float64),
            std=np.asarray(st.global_std, dtype=np.float64),
            eps=eps,
            feature_key=store.key,
            rows_sha256=rh,
            rows=int(r.size),
        )
    else:
        norm = Normalizer(mode=mode, mean=st.channel_mean, std=st.channel_std, eps=eps, feature_key=store.key, rows_sha256=rh, rows=int(r.size))
    if cache:
        with disk_full_is_processing_error("normalize", path.parent):
            atomic_write_json(path, norm.to_dict())
        norm = Normalizer.from_dict(norm.to_dict(), path=path)
    log.info("normalize: %s fitted on %d rows of features %s", mode, r.size, store.key)
    return norm


__all__ = ["MODES", "Normalizer", "Stats", "compute_stats_direct", "fit_normalizer", "rows_sha256", "stats_from_sums"]
