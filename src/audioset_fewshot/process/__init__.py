"""Post-processing: clean, pack, log-mel features, normalisation.

Data flow: ``manifest/clips.csv`` -> :func:`clean` (``processed/clean.csv``)
-> :func:`pack` (``processed/pack/<key>/``) -> :func:`features`
(``processed/features/<key>/``) -> :func:`load_features` / :func:`fit_normalizer`.
"""

from __future__ import annotations

from audioset_fewshot.process.clean import CleanReport, ClipVerdict, clean, read_clean
from audioset_fewshot.process.features import (
    FeatureRecord,
    FeatureRow,
    FeatureStore,
    LogMel,
    export_per_file,
    features,
    load_features,
    log_mel,
    mel_filterbank,
)
from audioset_fewshot.process.normalize import (
    MODES,
    Normalizer,
    Stats,
    compute_stats_direct,
    fit_normalizer,
    rows_sha256,
    stats_from_sums,
)
from audioset_fewshot.process.pack import PackRecord, PackRow, load_pack, pack, read_index

__all__ = [
    "MODES",
    "Normalizer",
    "Stats",
    "compute_stats_direct",
    "fit_normalizer",
    "rows_sha256",
    "stats_from_sums",
    "CleanReport",
    "ClipVerdict",
    "FeatureRecord",
    "FeatureRow",
    "FeatureStore",
    "LogMel",
    "PackRecord",
    "PackRow",
    "clean",
    "export_per_file",
    "features",
    "load_features",
    "load_pack",
    "log_mel",
    "mel_filterbank",
    "pack",
    "read_clean",
    "read_index",
]
