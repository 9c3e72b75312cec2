"""``features``: log-mel spectrograms of the packed clips, with per-clip statistics.

The transform matches librosa 0.11's defaults (``librosa.feature.melspectrogram``
followed by ``librosa.power_to_db(S, ref=1.0, amin=amin, top_db=top_db)``):

* periodic Hann window of ``n_fft`` samples, ``center=True`` with zero
  (``'constant'``) padding of ``n_fft // 2`` on both sides, so a clip of ``n``
  samples gives ``1 + n // hop_length`` frames (10 s at 16 kHz, hop 512: 313);
* power spectrogram ``|STFT|**power`` projected on a Slaney-scale, Slaney-
  normalised mel filterbank (librosa's ``filters.mel`` default, ``htk=False``);
* dB = ``10 * log10(max(amin, S))`` (``ref = 1``); with ``top_db`` set, values
  are floored at ``max - top_db`` **per clip** (librosa floors per array).

The defaults are MetaAudio's (16 kHz, n_fft 1024, hop 512, 128 mels, power 2)
except the floor: ``amin = 1e-10`` (-100 dB) instead of float epsilon, which
put digital silence at -156 dB and skewed global statistics.

Output folder ``processed/features/<key>/`` where ``key`` hashes every
parameter and the pack's key: ``mels.f32`` raw float32 (rows, n_mels, frames),
``index.csv`` (the pack's rows), ``stats_count.npy`` / ``stats_sum.npy`` /
``stats_sumsq.npy`` (rows, n_mels) float64 = per clip and mel bin the number of
frames, the sum and the sum of squares of the dB values, so statistics of any
set of rows are sums.  ``meta.json`` is written last; it records the sha256 of
every 4 MiB chunk of ``mels.f32`` (each task writes its rows in place; the driver hashes them in row order) and of
the index and statistics files.  A non-finite value is refused when it is
written; :func:`load_features` checks sizes on every open and, with
``verify=True`` (evaluation, ``verify --deep``), every hash and every value.  The folder is built as
``.tmp-<key>`` and renamed into place, so it appears whole or not at all.

``layout="per-file"`` also writes ``processed/per-file/<mid_slug>/<ytid>_<start_ms>.npy``
(one (n_mels, frames) float32 array per clip) for loaders that expect a file
per clip (the seed project's, MetaAudio's).

``torch`` is imported inside the functions that use it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from audioset_fewshot._artifact import ArtifactKey, build_beside, load_meta, read_current, read_json, remove_tree
from audioset_fewshot._integrity import ChunkHasher, check_size, verify_file
from audioset_fewshot._io import atomic_write_json, flush_file, pwrite_at, sha256_file
from audioset_fewshot._progress import progress_bar
from audioset_fewshot.config import FeaturesOptions
from audioset_fewshot.engine import LOCAL, Engine
from audioset_fewshot.errors import IntegrityError, ProcessingError, UsageError
from audioset_fewshot.layout import DatasetLayout, clip_stem
from audioset_fewshot.process._common import check_free_space, current_key, disk_full_is_processing_error, write_current
from audioset_fewshot.process.pack import PackRow, index_problems, load_pack, read_index
from audioset_fewshot.validate import mid_slug

if TYPE_CHECKING:
    import torch

    from audioset_fewshot.release.store import EmbeddingStore

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
BATCH_ROWS = 8  # clips per torch call; small batches stay in cache (tuned on 2 cores)
TASK_ROWS = 4 * BATCH_ROWS  # fewest clips per task (a chunk an executor runs; see chunk_rows)
FeatureRow = PackRow  # the features' index is the pack's index, row for row


# ---------------------------------------------------------------------------------------
# the transform


def hz_to_mel(freq_hz: np.ndarray | float) -> np.ndarray:
    """Slaney mel scale (librosa ``htk=False``): linear below 1 kHz, logarithmic above."""
    f = np.asarray(freq_hz, dtype=np.float64)
    f_sp = 200.0 / 3.0
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, math.log(6.4) / 27.0
    mels = f / f_sp
    with np.errstate(divide="ignore"):
        return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-300) / min_log_hz) / logstep, mels)


def mel_to_hz(mels: np.ndarray | float) -> np.ndarray:
    m = np.asarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3.0
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, math.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filterbank(*, sample_rate_hz: int, n_fft: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None) -> np.ndarray:
    """Slaney-scale, Slaney-normalised triangular filters, shape (n_mels, 1 + n_fft // 2), float32.

    Same construction as ``librosa.filters.mel(sr=, n_fft=, n_mels=, fmin=, fmax=)``:
    triangles between ``n_mels + 2`` points equally spaced in mel, each scaled
    by ``2 / (upper_hz - lower_hz)`` so every filter has unit area in Hz.
    """
    f_max = sample_rate_hz / 2.0 if f_max is None else float(f_max)
    fft_hz = np.linspace(0.0, sample_rate_hz / 2.0, 1 + n_fft // 2)
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    widths = np.diff(edges_hz)
    ramps = edges_hz[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]
    return weights.astype(np.float32)


def n_frames(samples: int, hop_length: int) -> int:
    """Frames of a centred STFT: ``1 + samples // hop_length``."""
    return 1 + samples // hop_length


@dataclass
class LogMel:
    """A batched log-mel transform on torch tensors (CPU).

    ``__call__(x)`` takes float32 audio (batch, samples) in [-1, 1) and returns
    float32 dB (batch, n_mels, frames).  It computes exactly what
    ``torch.stft(x, n_fft, hop_length, window=hann, center=True,
    pad_mode="constant")`` followed by the filterbank computes
    (:meth:`power_spectrogram_stft` is that reference; the tests compare them),
    but faster on a CPU:

    * when ``hop_length`` divides ``n_fft`` the windowed frames are built from
      contiguous blocks of the padded signal (``n_fft / hop`` multiplies into
      one contiguous buffer) instead of torch.stft's strided view, and
      ``torch.fft.rfft`` runs on contiguous rows;
    * the filterbank multiply runs per band of 16 filters over only the FFT bins
      those filters touch (the Slaney bank is ~98 % zeros).
    """

    sample_rate_hz: int = 16000
    n_fft: int = 1024
    hop_length: int = 512
    n_mels: int = 128
    f_min: float = 0.0
    f_max: float | None = None
    power: float = 2.0
    amin: float = 1e-10
    top_db: float | None = None
    band: int = 16
    _window: Any = field(default=None, init=False, repr=False)
    _bands: list[tuple[int, int, int, int, Any]] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        import torch

        fb = mel_filterbank(sample_rate_hz=self.sample_rate_hz, n_fft=self.n_fft, n_mels=self.n_mels, f_min=self.f_min, f_max=self.f_max)
        self.filterbank = fb
        # built in float64 then rounded, as librosa's (scipy's) window is: a float32-computed
        # window is off by up to 2e-7, which moves near-silent mel bins by ~1e-4 dB
        self._window = torch.hann_window(self.n_fft, periodic=True, dtype=torch.float64).to(torch.float32)
        for m0 in range(0, self.n_mels, self.band):
            m1 = min(self.n_mels, m0 + self.band)
            nz = np.flatnonzero(fb[m0:m1].any(axis=0))
            lo, hi = (int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, 1)
            self._bands.append((m0, m1, lo, hi, torch.from_numpy(np.ascontiguousarray(fb[m0:m1, lo:hi].T))))

    def frames(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> windowed, zero-padded (centred) frames (batch, frames, n_fft), contiguous."""
        import torch

        b, n = x.shape
        n_fft, hop = self.n_fft, self.hop_length
        t = n_frames(n, hop)
        xp = torch.nn.functional.pad(x, (n_fft // 2, n_fft // 2))
        if n_fft % hop:
            return xp.unfold(1, n_fft, hop).mul(self._window)
        r = n_fft // hop
        blocks = xp[:, : (t - 1 + r) * hop].reshape(b, t - 1 + r, hop)
        out = torch.empty((b, t, n_fft), dtype=x.dtype)
        for j in range(r):
            torch.mul(blocks[:, j : j + t, :], self._window[j * hop : (j + 1) * hop], out=out[:, :, j * hop : (j + 1) * hop])
        return out

    def power_spectrogram(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> (batch, frames, 1 + n_fft // 2) of ``|STFT| ** power``."""
        import torch

        ri = torch.view_as_real(torch.fft.rfft(self.frames(x), dim=-1))
        p = ri[..., 0].square().add_(ri[..., 1].square())
        if self.power != 2.0:
            p = p.pow_(self.power / 2.0)
        return p

    def power_spectrogram_stft(self, x: torch.Tensor) -> torch.Tensor:
        """The same as :meth:`power_spectrogram` through ``torch.stft`` (the reference)."""
        import torch

        spec = torch.stft(
            x,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.n_fft,
            window=self._window,
            center=True,
            pad_mode="constant",
            normalized=False,
            onesided=True,
            return_complex=True,
        )
        p = spec.abs().pow(self.power)
        return p.transpose(1, 2)

    def mel(self, p: torch.Tensor) -> torch.Tensor:
        """(batch, frames, freq) power -> (batch, frames, n_mels)."""
        import torch

        out = torch.empty((p.shape[0], p.shape[1], self.n_mels), dtype=p.dtype)
        for m0, m1, lo, hi, w in self._bands:
            torch.matmul(p[..., lo:hi], w, out=out[..., m0:m1])
        return out

    def to_db(self, s: torch.Tensor) -> torch.Tensor:
        """10 log10(max(amin, s)), then the per-clip top_db floor; any layout (batch, ..., ...)."""
        db = s.clamp_(min=self.amin).log10_().mul_(10.0)
        if self.top_db is not None:
            db = db.maximum(db.amax(dim=(-2, -1), keepdim=True) - self.top_db)
        return db

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_db(self.mel(self.power_spectrogram(x))).transpose(1, 2).contiguous()


def log_mel(
    audio: np.ndarray,
    *,
    sample_rate_hz: int = 16000,
    n_fft: int = 1024,
    hop_length: int = 512,
    n_mels: int = 128,
    f_min: float = 0.0,
    f_max: float | None = None,
    power: float = 2.0,
    amin: float = 1e-10,
    top_db: float | None = None,
) -> np.ndarray:
    """Log-mel of float audio (samples,) or (batch, samples) -> float32 (..., n_mels, frames)."""
    import torch

    x = np.asarray(audio, dtype=np.float32)
    squeeze = x.ndim == 1
    t = torch.from_numpy(np.ascontiguousarray(x.reshape(1, -1) if squeeze else x))
    with torch.inference_mode():
        y = LogMel(sample_rate_hz, n_fft, hop_length, n_mels, f_min, f_max, power, amin, top_db)(t).numpy()
    return y[0] if squeeze else y


# ---------------------------------------------------------------------------------------
# records


@dataclass(frozen=True)
class FeatureRecord:
    key: str
    path: Path
    rows: int
    n_mels: int
    frames: int
    params: dict[str, Any]
    pack_key: str
    per_file_dir: Path | None = None
    ran: bool = field(default=True, compare=False)  # False: the finished features on disk were current

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.rows, self.n_mels, self.frames)


@dataclass(frozen=True, eq=False)
class FeatureStore:
    """Finished features, memory-mapped.

    ``mels``: float32 (rows, n_mels, frames), read-only.  ``index``: one
    :class:`FeatureRow` per row (ytid, start_s, owner_mid, labels, true_samples,
    length_action).  ``stats_count`` / ``stats_sum`` / ``stats_sumsq``: float64
    (rows, n_mels).  ``meta``: the parameters, input hashes and shape.
    """

    root: Path
    key: str
    path: Path
    mels: np.ndarray
    index: tuple[PackRow, ...]
    meta: dict[str, Any]
    stats_count: np.ndarray
    stats_sum: np.ndarray
    stats_sumsq: np.ndarray
    # lookups built once in __post_init__
    _by_owner: dict[str, np.ndarray] = field(init=False, repr=False)
    _by_clip: dict[tuple[str, float], int] = field(init=False, repr=False)
    _owner_array: np.ndarray = field(init=False, repr=False)
    _plain: np.ndarray = field(init=False, repr=False)  # mels as a plain ndarray (take() gathers from it)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def shape(self) -> tuple[int, int, int]:
        n, m, f = self.mels.shape
        return int(n), int(m), int(f)

    @property
    def owner_mids(self) -> tuple[str, ...]:
        """Owner classes present, sorted."""
        return tuple(sorted({r.owner_mid for r in self.index}))

    @property
    def owners(self) -> np.ndarray:
        """Owner MID of every row (object array), for vectorised selection."""
        return self._owner_array

    def rows_for(self, mid: str) -> np.ndarray:
        """Rows owned by class ``mid`` (int64, ascending)."""
        return self._by_owner.get(mid, np.zeros(0, dtype=np.int64))

    def row_of(self, ytid: str, start_s: float) -> int:
        try:
            return self._by_clip[(ytid, round(start_s, 3))]
        except KeyError:
            raise KeyError(f"clip {ytid} at {start_s:.3f} s is not in features {self.key}") from None

    def take(self, rows: Any, *, out: np.ndarray | None = None) -> np.ndarray:
        """The mels of ``rows`` in the given order, one copy: float32 (len(rows), n_mels, frames).

        ``out`` (C-contiguous float32 of that shape) is filled instead of a new array,
        so a loader can reuse one buffer per batch.
        """
        idx = np.asarray(rows, dtype=np.int64)
        plain = self._plain  # the memmap as a plain ndarray: no memmap subclass made per call
        if out is None:
            return np.take(plain, idx, axis=0)
        # np.take with out= and mode="raise" gathers into a hidden buffer and copies it again
        # (10x slower on an episode); the bounds are checked here, so "wrap" never wraps
        n = plain.shape[0]
        if idx.size and (int(idx.min()) < -n or int(idx.max()) >= n):
            raise IndexError(f"row index out of range for features of {n} rows")
        return np.take(plain, idx, axis=0, out=out, mode="wrap")

    def labels_to_indices(self) -> dict[str, list[int]]:
        """learn2learn-style ``{owner_mid: [row, ...]}``."""
        return {m: rows.tolist() for m, rows in self._by_owner.items()}

    def __post_init__(self) -> None:
        by_owner: dict[str, list[int]] = {}
        for r in self.index:
            by_owner.setdefault(r.owner_mid, []).append(r.row)
        object.__setattr__(self, "_by_owner", {m: np.asarray(v, dtype=np.int64) for m, v in sorted(by_owner.items())})
        object.__setattr__(self, "_by_clip", {(r.ytid, round(r.start_s, 3)): r.row for r in self.index})
        object.__setattr__(self, "_owner_array", np.array([r.owner_mid for r in self.index], dtype=object))
        object.__setattr__(self, "_plain", self.mels.view(np.ndarray))


_STATS = ("count", "sum", "sumsq")


def features_damage(folder: Path, meta: dict[str, Any]) -> list[str]:
    """Every problem of finished features against their meta.json: chunk hashes and
    finite values of ``mels.f32``, hashes of the index and statistics (reads them once)."""
    mels = folder / "mels.f32"
    problems = [f"{mels}: {p}" for p in verify_file(mels, meta.get("content"), float_dtype="float32")]
    problems += index_problems(folder / "index.csv", meta.get("index_csv_sha256"))
    recorded = meta.get("stats_sha256") or {}
    for name in _STATS:
        path = folder / f"stats_{name}.npy"
        problems += index_problems(path, recorded.get(name))
    return problems


def load_features(root: Path | str, *, key: str | None = None, verify: bool = False) -> FeatureStore | EmbeddingStore:
    """Open the last finished features of ``root`` (or those with ``key``), memory-mapped.

    Sizes (and the index's sha256, when recorded) are always checked; ``verify=True``
    also checks every hash and refuses non-finite values (evaluation asks for it).
    A damaged store raises :class:`IntegrityError` naming the file."""
    layout = DatasetLayout(Path(root))
    if key is None:
        key = current_key(layout.features_dir, stage="features", hint="run 'audioset-fewshot process --stage features' first")
    folder = layout.features_dir / key
    if (read_json(folder / "meta.json") or {}).get("kind") == "vggish-release":
        # the released VGGish embeddings (features.kind vggish-release): the same readers serve them
        from audioset_fewshot.release.store import load_embeddings

        return load_embeddings(layout.root, folder, verify=verify)
    meta = load_meta(folder / "meta.json", stage="features", schema_version=SCHEMA_VERSION, fix="run 'audioset-fewshot process --stage features'")
    shape = tuple(int(s) for s in meta["shape"])
    fix = "rebuild them with 'audioset-fewshot process --stage features' (or 'audioset-fewshot run')"
    check_size(folder / "mels.f32", 4 * int(np.prod(shape)), fix=fix)
    problems = features_damage(folder, meta) if verify else []
    if not verify and "index_csv_sha256" in meta:
        problems += index_problems(folder / "index.csv", meta["index_csv_sha256"])
    if problems:
        raise IntegrityError(f"features {key} are damaged: {'; '.join(problems)}; {fix}")
    mels = np.memmap(folder / "mels.f32", dtype=np.float32, mode="r", shape=shape) if shape[0] else np.zeros(shape, np.float32)
    index = read_index(folder / "index.csv")
    if len(index) != shape[0]:
        raise ProcessingError(
            f"{folder}: index.csv has {len(index)} rows but mels.f32 {shape[0]}; rebuild with 'audioset-fewshot process --stage features --force'"
        )
    return FeatureStore(
        root=layout.root,
        key=key,
        path=folder,
        mels=mels,
        index=index,
        meta=meta,
        stats_count=np.load(folder / "stats_count.npy"),
        stats_sum=np.load(folder / "stats_sum.npy"),
        stats_sumsq=np.load(folder / "stats_sumsq.npy"),
    )


# ---------------------------------------------------------------------------------------
# the stage


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Set torch's intra-op threads for a block and restore the caller's setting."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


_TRANSFORM_KEYS = ("n_fft", "hop_length", "n_mels", "f_min", "f_max", "power", "amin", "top_db")


def _transform_params(sample_rate_hz: int, params: dict[str, Any]) -> tuple[Any, ...]:
    """:class:`LogMel`'s positional arguments for the stage's parameters."""
    return (sample_rate_hz, *(params[k] for k in _TRANSFORM_KEYS))


@dataclass(frozen=True)
class _FeatureTask:
    """What a chunk needs besides its rows: the pack array (path, dtype, shape) and the transform."""

    audio_path: str
    dtype: str
    shape: tuple[int, int]
    transform: tuple[Any, ...]


def chunk_rows(rows: int, capacity: int) -> int:
    """Rows per task: about 4 tasks per worker, in whole batches, within
    ``TASK_ROWS``..``8 * TASK_ROWS`` (fewer, larger tasks pay a cluster's per-task
    round trip less often).  Any value gives the same bytes: a task computes its
    rows in batches of ``BATCH_ROWS`` that depend only on the row numbers."""
    want = -(-rows // (4 * max(1, capacity)))
    return min(8 * TASK_ROWS, max(TASK_ROWS, -(-want // BATCH_ROWS) * BATCH_ROWS))


_TRANSFORMS: dict[tuple[Any, ...], LogMel] = {}  # per process: a worker builds the filterbank once


def _features_chunk(args: tuple[_FeatureTask, int, int, str]) -> tuple[int, int, np.ndarray, np.ndarray]:
    """Log-mels of the pack rows ``r0:r1``, written at their place in ``out`` (the
    preallocated float32 (rows, n_mels, frames) file), and their per-row sums and sums
    of squares over frames (float64, returned): one task.  Torch runs in calls of
    ``BATCH_ROWS`` rows that depend only on the row numbers, so the bytes are the same
    wherever and in whatever chunks the rows run; writing in place (a shared
    filesystem for a cluster) keeps the arrays off the wire."""
    import torch

    task, r0, r1, out = args
    if torch.get_num_threads() != 1:  # a Dask worker process: one single-threaded torch per worker, as locally per thread
        torch.set_num_threads(1)
    tf = _TRANSFORMS.get(task.transform)
    if tf is None:
        tf = _TRANSFORMS.setdefault(task.transform, LogMel(*task.transform))
    audio = np.memmap(task.audio_path, dtype=task.dtype, mode="r", shape=task.shape)
    ys, sums, sumsqs = [], [], []
    with torch.inference_mode():  # thread-local: set it in the thread that computes
        for b0 in range(r0, r1, BATCH_ROWS):
            x = torch.from_numpy(audio[b0 : min(r1, b0 + BATCH_ROWS)].astype(np.float32))  # a writable copy
            if task.dtype == "int16":
                x.mul_(float(np.float32(1.0 / 32768.0)))
            y = tf(x)
            y64 = y.to(torch.float64)
            ys.append(y.numpy())
            sums.append(y64.sum(dim=2).numpy())
            sumsqs.append(y64.square_().sum(dim=2).numpy())
    del audio
    y_all = np.concatenate(ys)
    if not np.isfinite(y_all).all():  # never store a NaN: it would silently skew every result
        raise ProcessingError(
            f"features: non-finite log-mel values in rows {r0}..{r1 - 1} of {task.audio_path}; "
            "rebuild the pack with 'audioset-fewshot process --stage pack --force'"
        )
    pwrite_at(out, r0 * y_all[0].nbytes, np.ascontiguousarray(y_all).data)
    return r0, r1, np.concatenate(sums), np.concatenate(sumsqs)


def _check_params(
    sample_rate_hz: int,
    n_fft: int,
    hop_length: int,
    n_mels: int,
    f_min: float,
    f_max: float | None,
    power: float,
    amin: float,
    top_db: float | None,
    layout: str,
) -> None:
    if n_fft < 16 or hop_length < 1 or n_mels < 1:
        raise UsageError(f"features: need n_fft >= 16, hop_length >= 1, n_mels >= 1 (got {n_fft}, {hop_length}, {n_mels})")
    if n_fft > 65536 or hop_length > 65536 or n_mels > 1024:  # a huge value would allocate gigabytes per batch
        raise UsageError(f"features: need n_fft <= 65536, hop_length <= 65536, n_mels <= 1024 (got {n_fft}, {hop_length}, {n_mels})")
    top = sample_rate_hz / 2.0 if f_max is None else f_max
    if not (0.0 <= f_min < top <= sample_rate_hz / 2.0):
        raise UsageError(f"features: need 0 <= f_min < f_max <= {sample_rate_hz / 2:g} Hz (Nyquist), got f_min={f_min}, f_max={f_max}")
    if not (power > 0 and math.isfinite(power)):
        raise UsageError(f"features: power must be > 0, got {power!r}")
    if not (amin > 0 and math.isfinite(amin)):
        raise UsageError(f"features: amin must be > 0 (it is the floor before log10), got {amin!r}")
    if top_db is not None and not (top_db >= 0 and math.isfinite(top_db)):
        raise UsageError(f"features: top_db must be >= 0 or null, got {top_db!r}")
    if layout not in ("packed", "per-file"):
        raise UsageError(f"features: layout must be 'packed' or 'per-file', got {layout!r}")


def features(root: Path | str, options: FeaturesOptions | None = None, *, force: bool = False, engine: Engine | None = None) -> FeatureRecord:
    """Log-mel features of the current pack into ``processed/features/<key>/``, with the
    ``features`` section's options (``FeaturesOptions(n_mels=64)``; default: the defaults).

    ``engine``: where the chunks of ``TASK_ROWS`` rows are computed (default: threads of
    this process, one per core; a Dask engine: its workers, which read the pack from the
    shared root and return the chunk); the driver writes and hashes them in row order.

    A rerun with the same pack and parameters is a no-op returning the same
    record; ``layout="per-file"`` additionally exports one ``.npy`` per clip.
    """
    o = options if options is not None else FeaturesOptions()
    n_fft, hop_length, n_mels, f_min, f_max = o.n_fft, o.hop_length, o.n_mels, o.f_min, o.f_max
    power, amin, top_db, layout = o.power, o.amin, o.top_db, o.layout
    lay = DatasetLayout(Path(root))
    pk = load_pack(lay.root)
    _check_params(pk.sample_rate_hz, n_fft, hop_length, n_mels, f_min, f_max, power, amin, top_db, layout)
    params = {
        "sample_rate_hz": pk.sample_rate_hz,
        "n_fft": int(n_fft),
        "hop_length": int(hop_length),
        "n_mels": int(n_mels),
        "f_min": float(f_min),
        "f_max": None if f_max is None else float(f_max),
        "power": float(power),
        "amin": float(amin),
        "top_db": None if top_db is None else float(top_db),
        "window": "hann-periodic",
        "center": True,
        "pad_mode": "constant",
        "mel_scale": "slaney",
        "mel_norm": "slaney",
        "db_ref": 1.0,
    }
    index_sha = sha256_file(pk.index_path)
    inputs = {"pack_key": pk.key, "pack_index_sha256": index_sha}
    art = ArtifactKey("features", SCHEMA_VERSION, params, inputs)
    key = art.digest
    folder = lay.features_dir / key
    frames = n_frames(pk.samples, hop_length)
    if force:
        remove_tree(folder)
    meta = read_current(folder / "meta.json", art, fix="rebuild them with 'audioset-fewshot process --stage features --force'")
    if meta is not None and (damage := features_damage(folder, meta)):
        log.warning("features: %s are damaged (%s); computing them again", folder, "; ".join(damage))
        meta = None
    ran = meta is None
    if meta is None:
        # never commit features of a damaged pack: its hashes are checked beside the computation
        # (one more reader of the array, not a whole pass before the first batch)
        meta = _compute(
            lay,
            pk,
            folder,
            key=art,
            frames=frames,
            verify_pack=lambda: load_pack(lay.root, key=pk.key, verify=True),
            engine=engine,
        )
    else:
        log.info("features: %s is up to date", folder)
    write_current(lay.features_dir, key)
    per_file = None
    if layout == "per-file":
        per_file = export_per_file(lay.root, key=key, force=force)
    return FeatureRecord(
        key=key, path=folder, rows=int(meta["shape"][0]), n_mels=n_mels, frames=frames, params=params, pack_key=pk.key, per_file_dir=per_file, ran=ran
    )


def _compute(
    lay: DatasetLayout,
    pk: Any,
    folder: Path,
    *,
    key: ArtifactKey,
    frames: int,
    verify_pack: Callable[[], object] | None = None,
    engine: Engine | None = None,
) -> dict[str, Any]:
    """Compute the features into ``.tmp-<key>`` and rename it into place.

    ``verify_pack`` runs in a thread of its own while the batches are computed; the
    folder is committed only when it returned, and its error (a damaged pack) is
    the one raised, whatever else failed meanwhile."""
    params = dict(key.params)
    rows, n_mels = pk.rows, params["n_mels"]
    counts = np.full((rows, n_mels), float(frames), dtype=np.float64)
    sums = np.zeros((rows, n_mels), dtype=np.float64)
    sumsq = np.zeros((rows, n_mels), dtype=np.float64)
    checker = ThreadPoolExecutor(1, thread_name_prefix="features-verify-pack")
    pack_ok = checker.submit(verify_pack) if verify_pack is not None else None
    try:
        with disk_full_is_processing_error("features", lay.features_dir), build_beside(folder) as tmp:
            check_free_space(lay.features_dir, rows * n_mels * frames * 4 + rows * n_mels * 24, stage="features")
            task = _FeatureTask(str(pk.audio_path), pk.dtype, (rows, pk.samples), _transform_params(pk.sample_rate_hz, params))
            # locally: torch ops release the GIL, so one single-threaded torch per core, fed by
            # a thread each, beats intra-op threads on these small batches (and does not
            # spin-wait when the machine is busy); a Dask engine runs the chunks on its workers
            out = tmp / "mels.f32"
            row_bytes = n_mels * frames * 4
            with open(out, "wb") as fh:
                if rows:
                    os.posix_fallocate(fh.fileno(), 0, rows * row_bytes)  # a full disk fails here, not in a worker
            with (
                torch_threads(1),
                (engine or LOCAL).executor(workers=_cores(), threads=True) as ex,
                progress_bar(total=rows, desc="features", unit="clip") as bar,
            ):
                hasher = ChunkHasher()
                step = chunk_rows(rows, ex.capacity)
                chunks = [(task, r0, min(rows, r0 + step), str(out)) for r0 in range(0, rows, step)]
                for r0, r1, s_, ss_ in ex.map(_features_chunk, chunks):
                    sums[r0:r1] = s_
                    sumsq[r0:r1] = ss_
                    # in row order: the chunk hashes run over the file as it fills (reopened, so a
                    # shared filesystem shows what the worker wrote and closed)
                    with open(out, "rb") as rh:
                        rh.seek(r0 * row_bytes)
                        hasher.update(rh.read((r1 - r0) * row_bytes))
                    bar.update(r1 - r0)
            flush_file(out)
            np.save(tmp / "stats_count.npy", counts)
            np.save(tmp / "stats_sum.npy", sums)
            np.save(tmp / "stats_sumsq.npy", sumsq)
            shutil.copyfile(pk.index_path, tmp / "index.csv")
            meta = key.meta(
                shape=[rows, n_mels, frames],
                dtype="float32",
                file="mels.f32",
                stats={
                    "count": "stats_count.npy",
                    "sum": "stats_sum.npy",
                    "sumsq": "stats_sumsq.npy",
                    "dtype": "float64",
                    "shape": [rows, n_mels],
                    "of": "dB values per clip and mel bin over frames",
                },
                content=hasher.record(),
                index_csv_sha256=sha256_file(tmp / "index.csv"),
                stats_sha256={name: sha256_file(tmp / f"stats_{name}.npy") for name in _STATS},
            )
            atomic_write_json(tmp / "meta.json", meta)
            if pack_ok is not None:
                pack_ok.result()  # a damaged pack raises here, before anything is committed
    except BaseException as err:
        if pack_ok is not None and isinstance(err, Exception):
            damaged = pack_ok.exception()  # waits for the check: a damaged pack explains any other failure
            if damaged is not None and damaged is not err:
                raise damaged from err
        raise
    finally:
        checker.shutdown(wait=True)
    log.info("features: %d x %d x %d in %s", rows, n_mels, frames, folder)
    return meta


def export_per_file(root: Path | str, *, key: str | None = None, force: bool = False) -> Path:
    """Write one ``.npy`` (n_mels, frames) float32 per clip under ``processed/per-file/<mid_slug>/``.

    The folder is built beside and swapped in whole; ``per-file/meta.json``
    records the features key, so a rerun for the same features is a no-op.
    """
    store = load_features(root, key=key)
    lay = DatasetLayout(Path(root))
    dest = lay.per_file_dir
    art = ArtifactKey("per-file", SCHEMA_VERSION, {"rows": len(store), "shape": list(store.shape[1:])}, {"features_key": store.key})
    if not force and read_current(dest / "meta.json", art, fix="export again with 'audioset-fewshot process --stage features --force'") is not None:
        return dest
    with disk_full_is_processing_error("per-file export", dest), build_beside(dest) as tmp:
        check_free_space(dest.parent, int(store.mels.nbytes * 1.05), stage="per-file export")
        slugs: set[str] = set()
        for r in store.index:
            slug = mid_slug(r.owner_mid)
            if slug not in slugs:
                (tmp / slug).mkdir(parents=True, exist_ok=True)
                slugs.add(slug)
            np.save(tmp / slug / f"{clip_stem(r.ytid, r.start_s)}.npy", np.asarray(store.mels[r.row]))
        atomic_write_json(tmp / "meta.json", art.meta())
    return dest


__all__ = [
    "FeatureRecord",
    "FeatureRow",
    "FeatureStore",
    "LogMel",
    "export_per_file",
    "features",
    "features_damage",
    "hz_to_mel",
    "load_features",
    "log_mel",
    "mel_filterbank",
    "mel_to_hz",
    "n_frames",
]
