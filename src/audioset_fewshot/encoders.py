"""Outside encoders in the HEAR style, evaluated on our fixed episodes.

An encoder is a Python module (an importable name, or a path to a ``.py`` file)
with the two functions of the HEAR 2021 API (Turian et al.,
https://hearbenchmark.com/hear-api.html):

- ``load_model(model_file_path: str = "") -> model``; the model has an integer
  ``sample_rate`` attribute;
- ``get_scene_embeddings(audio, model) -> Tensor[n_clips, dim]`` for ``audio`` a
  float32 ``Tensor[n_clips, n_samples]`` in [-1, 1] at ``model.sample_rate``.

The test split's clips are read from the packed waveforms (mono, the pack's
rate), resampled with soxr when the encoder wants another rate, embedded in
batches, and the frozen embeddings are classified per episode by the nearest
centroid or a linear head.  Whether the encoder was trained on AudioSet labels
cannot be known from its code: the user declares it, and such an encoder is
marked *not class-disjoint* in the results table (it has seen our test classes).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from audioset_fewshot.errors import UsageError
from audioset_fewshot.torchdata import SplitDataset

log = logging.getLogger(__name__)

_BATCH = 16


def load_encoder_module(spec: str) -> ModuleType:
    """The module named ``spec`` (``package.module``) or the file ``spec`` (``path/to/enc.py``)."""
    if not spec:
        raise UsageError("no encoder given: pass a module name or a .py file with load_model and get_scene_embeddings")
    if spec.endswith(".py") or "/" in spec:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise UsageError(f"encoder file {path} does not exist")
        name = f"_audioset_fewshot_encoder_{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]}"
        loader_spec = importlib.util.spec_from_file_location(name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise UsageError(f"cannot import {path} as a Python module")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[name] = module
        loader_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(spec)
        except ImportError as exc:
            raise UsageError(f"cannot import encoder module {spec!r}: {exc}") from exc
    missing = [f for f in ("load_model", "get_scene_embeddings") if not callable(getattr(module, f, None))]
    if missing:
        raise UsageError(f"encoder {spec!r} lacks {', '.join(missing)} (the HEAR API: load_model(path) and get_scene_embeddings(audio, model))")
    return module


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def encoder_identity(spec: str, weights: str | None) -> dict[str, str]:
    """What names an encoder in the results: its name and the hashes of its source and weights."""
    module = load_encoder_module(spec)
    source = getattr(module, "__file__", None)
    out = {
        "name": Path(spec).stem if spec.endswith(".py") else spec,
        "spec": spec,
        "source_sha256": _file_sha256(Path(source)) if source and Path(source).is_file() else "",
    }
    if weights:
        wp = Path(weights).expanduser()
        out["weights"] = weights
        out["weights_sha256"] = _file_sha256(wp) if wp.is_file() else ""
    return out


def clip_audio(root: Path, dataset: SplitDataset) -> tuple[np.ndarray, int]:
    """The packed waveforms of ``dataset``'s items, as a read-only memory map and index rows."""
    from audioset_fewshot.process.pack import load_pack

    pack = load_pack(root)
    return pack.open(), int(pack.sample_rate_hz)


def embed_with_encoder(root: Path, dataset: SplitDataset, spec: str, weights: str | None) -> tuple[np.ndarray, dict[str, Any]]:
    """``(items, 1, dim)`` scene embeddings of every item of ``dataset`` and a record."""
    import torch

    module = load_encoder_module(spec)
    t0 = time.perf_counter()
    model = module.load_model(weights or "")
    rate = getattr(model, "sample_rate", None)
    if not isinstance(rate, int) or rate <= 0:
        raise UsageError(f"encoder {spec!r}: load_model() returned a model without an integer sample_rate attribute")
    audio, pack_rate = clip_audio(root, dataset)
    out: list[np.ndarray] = []
    with torch.no_grad():
        for lo in range(0, len(dataset), _BATCH):
            rows = dataset.rows[lo : lo + _BATCH]
            x = np.asarray(audio[rows])
            x = x.astype(np.float32) / np.float32(32768.0) if x.dtype == np.int16 else x.astype(np.float32)
            if rate != pack_rate:
                import soxr

                x = np.stack([soxr.resample(a, pack_rate, rate) for a in x]).astype(np.float32)
            emb = module.get_scene_embeddings(torch.from_numpy(np.ascontiguousarray(x)), model)
            arr = emb.detach().cpu().numpy() if hasattr(emb, "detach") else np.asarray(emb)
            if arr.ndim != 2 or arr.shape[0] != len(rows):
                raise UsageError(f"encoder {spec!r}: get_scene_embeddings returned shape {arr.shape}, expected ({len(rows)}, dim)")
            out.append(arr.astype(np.float32))
    emb_all = np.concatenate(out)[:, None]
    record = {
        "steps": 0,
        "seconds": 0.0,
        "encoder": spec,
        "sample_rate": rate,
        "dim": int(emb_all.shape[-1]),
        "embed_seconds": round(time.perf_counter() - t0, 3),
    }
    return emb_all, record


__all__ = ["clip_audio", "embed_with_encoder", "encoder_identity", "load_encoder_module"]
