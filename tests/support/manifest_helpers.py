"""Helpers of the manifest tests: a small dataset root built with the real plan
writer, the real SQLite ledger and real FLAC files (no download needed)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import soundfile

from audioset_fewshot._io import sha256_file
from audioset_fewshot.download.ledger import Ledger
from audioset_fewshot.layout import DatasetLayout, clip_stem
from audioset_fewshot.plan import PlanEntry, SamplingPlan, write_plan

SPEECH, DOG, CAT = "/m/09x0r", "/m/0bt9lr", "/m/01yrx"
CC_LICENSE = "Creative Commons Attribution license (reuse allowed)"


def write_segment_list(path: Path, rows: Iterable[tuple[str, str]], *, start_s: float = 1.0) -> Path:
    """A segment list in the official layout at ``path``: one 10 s segment at ``start_s``
    per ``(ytid, labels)`` (labels comma-separated), the header's counts exact."""
    rows = list(rows)
    labels = [m for _, lab in rows for m in lab.split(",")]
    lines = [
        "# Segments csv created Sun Mar  5 10:54:31 2017",
        f"# num_ytids={len({y for y, _ in rows})}, num_segs={len(rows)}, num_unique_labels={len(set(labels))}, num_positive_labels={len(labels)}",
        "# YTID, start_seconds, end_seconds, positive_labels",
        *(f'{y}, {start_s:.3f}, {start_s + 10:.3f}, "{lab}"' for y, lab in rows),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@dataclass
class Clip:
    ytid: str
    owner: str
    rank: int
    start_s: float = 30.0
    labels: tuple[str, ...] = ()
    source: str = "balanced"
    status: str = "ok"
    reason: str | None = None
    license: str = ""
    title: str = "a title"
    uploader: str = "someone"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def end_s(self) -> float:
        return self.start_s + 10.0

    @property
    def all_labels(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.labels) | {self.owner}))


def ytid(i: int) -> str:
    return f"vid{i:08d}"


def write_audio(path: Path, seed: int, *, samples: int = 1600, sample_rate_hz: int = 16000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(seed).uniform(-0.5, 0.5, samples).astype(np.float32)
    soundfile.write(str(path), data, sample_rate_hz, format="FLAC", subtype="PCM_16")


def make_root(
    root: Path,
    clips: Iterable[Clip],
    *,
    targets: Mapping[str, int] | None = None,
    params: Mapping[str, Any] | None = None,
    tool_versions: Mapping[str, str] | None = None,
) -> DatasetLayout:
    """Write plan/, ledger.sqlite and audio/ for ``clips`` (ok ones get a real FLAC)."""
    clips = list(clips)
    layout = DatasetLayout(root)
    entries = [PlanEntry(clip_stem(c.ytid, c.start_s), c.ytid, c.start_s, c.end_s, c.owner, c.all_labels, c.source, c.rank) for c in clips]
    if targets is None:
        targets = {}
        for c in clips:
            targets[c.owner] = targets.get(c.owner, 0) + 1
    plan = SamplingPlan.build(
        entries, dict(targets),
        params={"seed": 0, "max_per_class": max(targets.values()), "sources": ["balanced", "eval"], "owner_policy": "fewest-candidates",
                "shard": None, "classes": sorted(targets), **dict(params or {})},
        inputs={"balanced": "a" * 64, "eval": "b" * 64},
    )  # fmt: skip
    write_plan(plan, layout)
    versions = dict(tool_versions or {"yt-dlp": "2026.10.26", "ffmpeg": "7.1"})
    with Ledger(layout.ledger_file) as ledger:
        ledger.sync_plan(plan)
        for c in clips:
            cid = clip_stem(c.ytid, c.start_s)
            if c.status == "pending":
                continue
            if c.status == "ok":
                rel = layout.clip_relpath(c.owner, c.ytid, c.start_s)
                path = root / rel
                write_audio(path, seed=int(c.ytid[3:]))
                result = SimpleNamespace(
                    ok=True, reason=None, permanent=False, message=None, extractions=1, sha256=sha256_file(path),
                    samples=1600, sample_rate_hz=16000, itag="140", codec="aac", container="m4a", source_sample_rate_hz=44100,
                    source_channels=2, trim_start_s=c.start_s, trim_end_s=c.end_s, padded_samples=0, license=c.license,
                    uploader=c.uploader, channel_id="UC" + c.ytid, title=c.title, upload_date="20200101", fallback=False,
                    tool_versions=versions, **c.extra,
                )  # fmt: skip
                ledger.record_attempt(cid, result, relpath=rel)
            else:
                permanent = c.status == "failed-permanent"
                result = SimpleNamespace(
                    ok=False, reason=c.reason or ("unavailable" if permanent else "network"), permanent=permanent, message="boom", extractions=1
                )
                ledger.record_attempt(cid, result)
    return layout


def standard_clips() -> list[Clip]:
    return [
        Clip(ytid(1), SPEECH, 0, labels=(DOG,), license=CC_LICENSE),
        Clip(ytid(2), SPEECH, 1),
        Clip(ytid(3), SPEECH, 2, status="failed-permanent", reason="private"),
        Clip(ytid(4), DOG, 0, source="eval", license=CC_LICENSE, title="Dog\nbarks \u202e evil", uploader="=cmd|x"),
        Clip(ytid(5), DOG, 1, status="failed-transient", reason="http-5xx"),
        Clip(ytid(6), DOG, 2),
        Clip(ytid(7), CAT, 0, start_s=12.5),
    ]
