"""Short demo clips of one class, their catalogue and plan, and a media cache encoded once
(the session, proxy and error-taxonomy tests against the media server share them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from audioset_fewshot.demo.server import MediaServer, SourceSpec
from audioset_fewshot.plan import PlanEntry, SamplingPlan

MID = "/m/0dog"


def clip_ids(prefix: str, n: int) -> list[str]:
    """``n`` YouTube-shaped IDs: ``prefix`` (4 characters) and a number."""
    return [f"{prefix}{k:07d}" for k in range(n)]


def catalog(ids: list[str], *, class_key: str = "demo-class-1") -> dict[str, SourceSpec]:
    """4 s sources: enough for a 2 s segment at 1 s."""
    return {y: SourceSpec(class_key=class_key, duration_s=4.0) for y in ids}


def one_class_plan(ids: list[str]) -> SamplingPlan:
    """Every ID a candidate of one class, the target all of them, segment 1-3 s."""
    entries = [PlanEntry(f"{y}_1000", y, 1.0, 3.0, MID, (MID,), "balanced", k) for k, y in enumerate(ids)]
    params = {"seed": 0, "max_per_class": len(ids), "sources": ["balanced"], "owner_policy": "fewest-candidates", "shard": None, "classes": [MID]}
    return SamplingPlan.build(entries, {MID: len(ids)}, params=params)


def prepared_cache(tmp_path_factory: pytest.TempPathFactory, cat: dict[str, SourceSpec]) -> Path:
    """A media cache with the m4a of every source of ``cat`` encoded."""
    cache = tmp_path_factory.mktemp("media")
    with MediaServer(cache_dir=cache, catalog=cat, idle_timeout_s=60) as srv:
        srv.prepare(list(cat), formats=(140,), workers=2)
    return cache
