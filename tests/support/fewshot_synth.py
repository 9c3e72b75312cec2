"""A synthetic processed dataset root for the meta-learning tests: a real
``process.FeatureStore`` (in memory) whose log-mels depend on the class
(spectral peaks and a modulation rate per class, plus noise and gain per clip),
and a real ``splits.json`` made from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from audioset_fewshot.process.features import FeatureStore
from audioset_fewshot.process.pack import PackRow
from audioset_fewshot.splits import ClipLabels, MetaSplits, SplitClass, build_splits


def class_mids(n: int) -> list[str]:
    return [f"/m/s{i:03d}" for i in range(n)]


def make_store(
    root: Path, *, n_classes: int = 20, per_class: int = 12, n_mels: int = 32, frames: int = 48, seed: int = 0, multi: float = 0.1, noise_db: float = 6.0
) -> FeatureStore:
    rng = np.random.default_rng([seed, 1])
    mids = class_mids(n_classes)
    bins = np.arange(n_mels)[:, None]
    t = np.arange(frames)[None, :]
    rows: list[PackRow] = []
    mels = np.empty((n_classes * per_class, n_mels, frames), dtype=np.float32)
    for c, mid in enumerate(mids):
        crng = np.random.default_rng([seed, 2, c])
        centres = crng.uniform(0, n_mels, size=3)
        rate = crng.uniform(0.05, 0.4)
        template = sum(20.0 * np.exp(-0.5 * ((bins - mu) / 2.0) ** 2) for mu in centres) * (1 + 0.5 * np.sin(rate * t))
        for j in range(per_class):
            r = c * per_class + j
            gain = rng.normal(0.0, 3.0)
            mels[r] = (template + gain - 40.0 + rng.normal(0.0, noise_db, size=(n_mels, frames))).astype(np.float32)
            labels = {mid}
            if rng.random() < multi:
                labels.add(mids[int(rng.integers(n_classes))])
            ytid = f"{c:05d}{j:06d}"
            rows.append(PackRow(row=r, ytid=ytid, start_s=float(j), owner_mid=mid, labels=tuple(sorted(labels)), true_samples=160000, length_action="none"))
    count = np.full((len(rows), n_mels), frames, dtype=np.float64)
    return FeatureStore(
        root=Path(root),
        key="synthetic",
        path=Path(root) / "processed" / "features" / "synthetic",
        mels=mels,
        index=tuple(rows),
        meta={"shape": list(mels.shape)},
        stats_count=count,
        stats_sum=mels.astype(np.float64).sum(axis=2),
        stats_sumsq=(mels.astype(np.float64) ** 2).sum(axis=2),
    )


def make_root(root: Path, *, seed: int = 0, leakage: str = "exclusive", **kw: object) -> tuple[FeatureStore, MetaSplits]:
    store = make_store(root, **kw)  # type: ignore[arg-type]
    clips = [ClipLabels.of(r.ytid, r.start_s, r.labels, r.owner_mid) for r in store.index]
    names = [SplitClass(m, name=f"class {m[-3:]}") for m in sorted({r.owner_mid for r in store.index})]
    splits = build_splits(root, seed=seed, leakage=leakage, clips=clips, classes=names)
    return store, splits


def write_features_dir(root: Path, store: FeatureStore) -> None:
    """Lay ``store`` out on disk as the process stage does, so ``load_features(root)`` opens it."""
    import json

    from audioset_fewshot._integrity import hash_file
    from audioset_fewshot._io import sha256_file
    from audioset_fewshot.layout import DatasetLayout
    from audioset_fewshot.process._common import write_current
    from audioset_fewshot.process.features import SCHEMA_VERSION
    from audioset_fewshot.process.pack import render_index

    features_dir = DatasetLayout(root).features_dir
    folder = features_dir / store.key
    folder.mkdir(parents=True, exist_ok=True)
    np.ascontiguousarray(store.mels, dtype=np.float32).tofile(folder / "mels.f32")
    (folder / "index.csv").write_text(render_index(store.index), encoding="utf-8")
    for name in ("stats_count", "stats_sum", "stats_sumsq"):
        np.save(folder / f"{name}.npy", getattr(store, name))
    meta = {
        "schema_version": SCHEMA_VERSION,
        "shape": list(store.mels.shape),
        # the hashes the features stage records, so that a verified open (evaluation) accepts it
        "content": hash_file(folder / "mels.f32"),
        "index_csv_sha256": sha256_file(folder / "index.csv"),
        "stats_sha256": {name: sha256_file(folder / f"stats_{name}.npy") for name in ("count", "sum", "sumsq")},
    }
    (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    write_current(features_dir, store.key)
