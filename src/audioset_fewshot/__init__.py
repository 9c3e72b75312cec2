"""audioset-fewshot: AudioSet as a clean, reproducible few-shot dataset.

Data flows one way, one module or subpackage per stage::

    metadata -> selection -> plan -> download -> manifest -> process
             -> splits -> episodes -> torchdata -> pipeline / cli

The names most users need are here, one stage function and its options each::

    import audioset_fewshot as af

    cfg = af.load_config("config.yaml")
    plan = af.plan_from_config(cfg)
    af.run_download(plan, cfg.root, af.DownloadOptions(jobs=8))
    af.build_manifest(cfg.root)
    af.clean(cfg.root); af.pack(cfg.root); af.features(cfg.root, af.FeaturesOptions(n_mels=64))
    af.build_splits(cfg.root)
    train = af.SplitDataset(cfg.root, "train")

or all of it at once: ``af.run(cfg)`` (the baseline: ``audioset_fewshot.evaluate.evaluate``;
the name ``evaluate`` here is its module).  Every name is imported on first use
(:pep:`562`), so ``import audioset_fewshot`` stays cheap: heavy dependencies
(torch, yt_dlp) load only with the stage that needs them.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY: dict[str, str] = {
    # configuration and options (one section per stage)
    "Config": "audioset_fewshot.config",
    "load_config": "audioset_fewshot.config",
    "write_config": "audioset_fewshot.config",
    "SelectionOptions": "audioset_fewshot.config",
    "PlanOptions": "audioset_fewshot.config",
    "DownloadOptions": "audioset_fewshot.config",
    "CleanOptions": "audioset_fewshot.config",
    "PackOptions": "audioset_fewshot.config",
    "FeaturesOptions": "audioset_fewshot.config",
    "SplitsOptions": "audioset_fewshot.config",
    "EpisodesOptions": "audioset_fewshot.config",
    "EvaluateOptions": "audioset_fewshot.config",
    "DatasetLayout": "audioset_fewshot.layout",
    "AudiosetFewshotError": "audioset_fewshot.errors",
    # stages, in data-flow order
    "load_ontology": "audioset_fewshot.metadata",
    "read_segments": "audioset_fewshot.metadata",
    "select_classes": "audioset_fewshot.selection",
    "select_from_config": "audioset_fewshot.selection",
    "make_plan": "audioset_fewshot.plan",
    "plan_from_config": "audioset_fewshot.plan",
    "read_plan": "audioset_fewshot.plan",
    "write_plan": "audioset_fewshot.plan",
    "SamplingPlan": "audioset_fewshot.plan",
    "run_download": "audioset_fewshot.download.runner",
    "build_manifest": "audioset_fewshot.manifest",
    "read_clips": "audioset_fewshot.manifest",
    "verify": "audioset_fewshot.manifest",
    "rebuild": "audioset_fewshot.manifest",
    "clean": "audioset_fewshot.process",
    "pack": "audioset_fewshot.process",
    "features": "audioset_fewshot.process",
    "load_features": "audioset_fewshot.process",
    "build_splits": "audioset_fewshot.splits",
    "read_splits": "audioset_fewshot.splits",
    "EpisodeSampler": "audioset_fewshot.episodes",
    "write_episodes": "audioset_fewshot.episodes",
    "read_episodes": "audioset_fewshot.episodes",
    "accuracy_ci": "audioset_fewshot.episodes",
    "SplitDataset": "audioset_fewshot.torchdata",
    "write_report": "audioset_fewshot.report",
    "run": "audioset_fewshot.pipeline",
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'audioset_fewshot' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
