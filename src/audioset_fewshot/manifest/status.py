"""``dataset_status(root)``: where a download stands, from the plan and the ledger.

Per class: obtained / target, pending, failures by reason (permanent and
transient).  Per source list (balanced / eval / unbalanced): segments in the
list (the header denominators of the release files, when known), planned,
attempted, obtained, and the availability rate obtained / attempted.  The
transient failures are the clips a rerun of ``download`` will retry.

Header denominators come from ``plan.json`` (``params.headers`` or a top-level
``headers``: ``{source: {"num_segs": n, ...}}``) when the plan recorded them,
else from the ``headers`` argument (the CLI reads them from ``--metadata-dir``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audioset_fewshot._io import json_fields
from audioset_fewshot.config import SOURCES
from audioset_fewshot.download.ledger import ClassTotals
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.manifest._ledger import (
    STATUS_FAILED_PERMANENT,
    STATUS_FAILED_TRANSIENT,
    STATUS_OK,
    STATUS_PENDING,
    class_status,
    read_ledger,
)
from audioset_fewshot.manifest.build import _class_names, select_ok

OFFICIAL_NAMES = {
    "balanced": "balanced_train_segments.csv",
    "eval": "eval_segments.csv",
    "unbalanced": "unbalanced_train_segments.csv",
}
_HEADER_RE = re.compile(r"num_ytids=(\d+),\s*num_segs=(\d+)")


@dataclass(frozen=True)
class ClassStatus:
    mid: str
    name: str
    target: int
    obtained: int
    pending: int
    failed_permanent: dict[str, int] = field(default_factory=dict)
    failed_transient: dict[str, int] = field(default_factory=dict)
    candidates: int = 0

    @property
    def complete(self) -> bool:
        return self.obtained >= self.target

    def to_dict(self) -> dict[str, Any]:
        return json_fields(self)


@dataclass(frozen=True)
class SourceStatus:
    source: str
    planned: int
    attempted: int
    obtained: int
    failed_permanent: int
    header_segments: int | None = None

    @property
    def availability(self) -> float | None:
        """obtained / (obtained + failed permanently): the share of tried clips YouTube still serves."""
        tried = self.obtained + self.failed_permanent
        return self.obtained / tried if tried else None

    @property
    def coverage(self) -> float | None:
        """obtained / segments in the release list (the header's ``num_segs``), when known."""
        return self.obtained / self.header_segments if self.header_segments else None

    def to_dict(self) -> dict[str, Any]:
        return {**json_fields(self), "coverage": self.coverage, "availability": self.availability}


@dataclass(frozen=True)
class StatusReport(ClassTotals):
    root: Path
    plan_hash: str
    classes: tuple[ClassStatus, ...]
    sources: tuple[SourceStatus, ...]
    to_retry: tuple[str, ...]

    def failures_by_reason(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.classes:
            for r, n in (*c.failed_permanent.items(), *c.failed_transient.items()):
                out[r] = out.get(r, 0) + n
        return dict(sorted(out.items()))

    def to_dict(self) -> dict[str, Any]:
        return {**json_fields(self), "obtained": self.obtained, "target": self.target, "failures_by_reason": self.failures_by_reason()}


def read_headers(metadata_dir: Path | str) -> dict[str, int]:
    """``{source: num_segs}`` from the comment header of the official segment files present
    in ``metadata_dir`` (only the first lines are read)."""
    out: dict[str, int] = {}
    folder = Path(metadata_dir)
    for source, name in OFFICIAL_NAMES.items():
        p = folder / name
        if not p.is_file():
            continue
        with open(p, encoding="utf-8", errors="replace") as fh:
            for _ in range(3):
                m = _HEADER_RE.search(fh.readline())
                if m:
                    out[source] = int(m.group(2))
                    break
    return out


def _plan_headers(layout: DatasetLayout) -> dict[str, int]:
    try:
        meta = json.loads(layout.plan_meta_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    raw = meta.get("headers") or (meta.get("params") or {}).get("headers") or {}
    out: dict[str, int] = {}
    if isinstance(raw, Mapping):
        for src, h in raw.items():
            if isinstance(h, Mapping) and isinstance(h.get("num_segs"), int):
                out[str(src)] = int(h["num_segs"])
            elif isinstance(h, int):
                out[str(src)] = h
    return out


def dataset_status(root: Path | str, *, headers: Mapping[str, int] | None = None) -> StatusReport:
    """Status of the download under ``root`` (plan + ledger; no file is read or written)."""
    from audioset_fewshot.plan import read_plan

    layout = DatasetLayout(Path(root))
    plan = read_plan(layout)
    clips = read_ledger(layout.ledger_file)
    kept, _ = select_ok(clips, plan.targets)
    kept_ids = {c.clip_id for c in kept}
    hdr = {**_plan_headers(layout), **dict(headers or {})}

    mids = sorted(set(plan.classes) | {c.owner_mid for c in clips})
    names = _class_names(mids)
    candidates: dict[str, int] = {}
    for e in plan.entries:
        candidates[e.owner_mid] = candidates.get(e.owner_mid, 0) + 1
    per: dict[str, dict[str, Any]] = {m: {"obtained": 0, "pending": 0, "perm": {}, "trans": {}} for m in mids}
    src: dict[str, dict[str, int]] = {}
    for e in plan.entries:
        src.setdefault(e.source, {"planned": 0, "attempted": 0, "obtained": 0, "perm": 0})["planned"] += 1
    to_retry: list[str] = []
    for c in clips:
        d = per[c.owner_mid]
        s = src.setdefault(c.source, {"planned": 0, "attempted": 0, "obtained": 0, "perm": 0})
        if c.status != STATUS_PENDING or c.attempts:
            s["attempted"] += 1
        if c.status == STATUS_OK:
            if c.clip_id in kept_ids:
                d["obtained"] += 1
            s["obtained"] += 1
        elif c.status == STATUS_FAILED_PERMANENT:
            d["perm"][c.reason or "unknown"] = d["perm"].get(c.reason or "unknown", 0) + 1
            s["perm"] += 1
        elif c.status == STATUS_FAILED_TRANSIENT:
            d["trans"][c.reason or "unknown"] = d["trans"].get(c.reason or "unknown", 0) + 1
            to_retry.append(c.clip_id)
    per_class = class_status(clips)  # the ledger's one per-class aggregation
    classes = tuple(
        ClassStatus(
            mid=m, name=names[m], target=plan.target(m), obtained=per[m]["obtained"], pending=per_class[m][STATUS_PENDING] if m in per_class else 0,
            failed_permanent=dict(sorted(per[m]["perm"].items())), failed_transient=dict(sorted(per[m]["trans"].items())),
            candidates=candidates.get(m, 0),
        )
        for m in mids
    )  # fmt: skip
    sources = tuple(
        SourceStatus(
            source=name, planned=v["planned"], attempted=v["attempted"], obtained=v["obtained"], failed_permanent=v["perm"], header_segments=hdr.get(name)
        )
        for name in SOURCES
        if (v := src.get(name)) is not None
    )
    return StatusReport(root=layout.root, plan_hash=plan.content_hash, classes=classes, sources=sources, to_retry=tuple(sorted(to_retry)))
