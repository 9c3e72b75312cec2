"""The seeded sampling plan: which candidates each class tries, in which order.

``make_plan(selection, table, *, seed, max_per_class, sources, owner_policy,
shard)`` lists, for every selected class, ALL the segments it owns in an order
fixed by a hash of ``(seed, MID, YouTube ID, start)``.  The order therefore
never depends on what was already downloaded: the runner walks down each
class's list until it holds ``targets[mid]`` clips (top-up on failure), and the
plan itself never changes when clips fail.

Ownership: a segment is downloaded once even when it carries several selected
labels.  Its owner is one of them (``owner_policy``):

* ``"fewest-candidates"`` (default): the selected label with the fewest
  candidates in the chosen ``sources`` (ties by MID), so that rare classes keep
  their scarce clips;
* ``"first-label"``: the first selected label in the segment's label list.

The segment keeps all its labels (sorted).  ``rank`` is the position in the
owner class's order, computed before sharding, so ranks from several shards
are comparable (a merge takes the lowest ranks).

Sharding (``shard=(i, n)``) keeps the segments whose YouTube ID hashes to
``i`` modulo ``n``; a shard's target per class is ``ceil(max_per_class / n)``.

A plan in which every entry is required (``targets is None``), as ``rebuild``
needs to re-download exactly what a manifest lists, is made with
:meth:`SamplingPlan.exact`.

Files: ``plan/plan.csv`` (one row per entry, sorted by owner MID then rank) and
``plan/plan.json`` (schema version, parameters, sha256 of the metadata files,
targets, shortfalls, content hash); byte-identical for the same inputs.

From a config there is one way in: :func:`plan_from_config` (metadata ->
:func:`~audioset_fewshot.selection.select_from_config` -> :func:`make_plan`).  A
plan made from a ``ClassSelection`` records the selection rule and the sha256 of
the ontology and QA files, so :func:`ensure_plan` notices a changed selection
or metadata (:func:`plan_changes`) and plans again.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from audioset_fewshot._artifact import load_meta, read_json, read_table
from audioset_fewshot._io import atomic_write_json, atomic_write_text, canonical_json, sha256_file, sha256_text
from audioset_fewshot.config import SOURCES, Config, PlanConfig
from audioset_fewshot.errors import StageNotReadyError, UsageError, ValidationError
from audioset_fewshot.layout import DatasetLayout, clip_stem, start_ms
from audioset_fewshot.selection import ClassSelection
from audioset_fewshot.validate import valid_mid, valid_segment_times, valid_youtube_id

if TYPE_CHECKING:
    from audioset_fewshot.metadata.segments import SegmentTable
    from audioset_fewshot.selection import MetadataSelection

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
OWNER_POLICIES = ("fewest-candidates", "first-label")
CSV_COLUMNS = ("clip_id", "ytid", "start_s", "end_s", "owner_mid", "labels", "source", "rank")


@dataclass(frozen=True)
class PlanEntry:
    """One planned segment.  ``labels`` are all labels of the segment, sorted."""

    clip_id: str
    ytid: str
    start_s: float
    end_s: float
    owner_mid: str
    labels: tuple[str, ...]
    source: str
    rank: int

    def to_row(self) -> dict[str, str]:
        return {
            "clip_id": self.clip_id,
            "ytid": self.ytid,
            "start_s": f"{self.start_s:.3f}",
            "end_s": f"{self.end_s:.3f}",
            "owner_mid": self.owner_mid,
            "labels": ";".join(self.labels),
            "source": self.source,
            "rank": str(self.rank),
        }

    @classmethod
    def from_row(cls, row: Mapping[str, str], *, where: str = "plan") -> PlanEntry:
        try:
            ytid = valid_youtube_id(row["ytid"])
            start_s, end_s = valid_segment_times(float(row["start_s"]), float(row["end_s"]))
            owner = valid_mid(row["owner_mid"])
            labels = tuple(valid_mid(x) for x in row["labels"].split(";") if x)
            source = row["source"]
            rank = int(row["rank"])
            clip_id = row["clip_id"]
        except (KeyError, ValueError, TypeError, AttributeError) as err:
            raise ValidationError(f"{where}: malformed plan row {dict(row)!r}: {err}") from err
        if clip_id != clip_stem(ytid, start_s):
            raise ValidationError(f"{where}: clip_id {clip_id!r} does not match ytid/start ({clip_stem(ytid, start_s)!r})")
        if source not in SOURCES:
            raise ValidationError(f"{where}: unknown source {source!r} (expected one of {', '.join(SOURCES)})")
        return cls(clip_id, ytid, start_s, end_s, owner, labels, source, rank)


@dataclass(frozen=True)
class SamplingPlan:
    """The plan: entries sorted by (owner_mid, rank).

    ``targets``: clips to obtain per owner class; ``None`` means every entry is
    required (see :meth:`exact`).  ``shortfalls``: ``{mid: {"candidates": n,
    "target": t}}`` for classes that own fewer candidates than their target.
    """

    entries: tuple[PlanEntry, ...]
    targets: Mapping[str, int] | None
    params: Mapping[str, Any] = field(default_factory=dict)
    inputs: Mapping[str, str] = field(default_factory=dict)
    shortfalls: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    content_hash: str = ""

    @classmethod
    def build(
        cls,
        entries: Iterable[PlanEntry],
        targets: Mapping[str, int] | None,
        *,
        params: Mapping[str, Any] | None = None,
        inputs: Mapping[str, str] | None = None,
        shortfalls: Mapping[str, Mapping[str, int]] | None = None,
    ) -> SamplingPlan:
        ordered = tuple(sorted(entries, key=lambda e: (e.owner_mid, e.rank, e.clip_id)))
        seen: set[str] = set()
        for e in ordered:
            if e.clip_id in seen:
                raise ValidationError(f"plan lists clip {e.clip_id} twice; a clip has exactly one owner")
            seen.add(e.clip_id)
        tg = None if targets is None else {k: int(targets[k]) for k in sorted(targets)}
        sf = {k: dict(v) for k, v in sorted((shortfalls or {}).items())}
        plan = cls(ordered, tg, dict(params or {}), dict(sorted((inputs or {}).items())), sf, "")
        return cls(ordered, tg, plan.params, plan.inputs, sf, _content_hash(plan))

    @classmethod
    def exact(cls, entries: Iterable[PlanEntry], *, params: Mapping[str, Any] | None = None) -> SamplingPlan:
        """A plan in which every entry is required (``targets=None``): ``rebuild`` uses it
        to download exactly the clips a manifest lists.  Give each entry a distinct
        ``rank`` within its owner (e.g. its position in the manifest)."""
        return cls.build(entries, None, params={"exact": True, **dict(params or {})})

    @property
    def classes(self) -> tuple[str, ...]:
        """Owner classes in sorted order (those with a target, and those with entries)."""
        mids = {e.owner_mid for e in self.entries}
        if self.targets is not None:
            mids |= set(self.targets)
        return tuple(sorted(mids))

    def by_class(self) -> dict[str, list[PlanEntry]]:
        """``{owner_mid: [entries in rank order]}`` (every class of :attr:`classes`)."""
        out: dict[str, list[PlanEntry]] = {m: [] for m in self.classes}
        for e in self.entries:
            out[e.owner_mid].append(e)
        return out

    def target(self, mid: str) -> int:
        """Clips to obtain for ``mid``: its target, or all its entries for an exact plan."""
        if self.targets is None:
            return sum(1 for e in self.entries if e.owner_mid == mid)
        return int(self.targets.get(mid, 0))

    def csv_text(self) -> str:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for e in self.entries:
            writer.writerow(e.to_row())
        return buf.getvalue()

    def meta(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "params": dict(self.params),
            "inputs": dict(self.inputs),
            "targets": None if self.targets is None else dict(self.targets),
            "shortfalls": {k: dict(v) for k, v in self.shortfalls.items()},
            "num_entries": len(self.entries),
            "csv_sha256": sha256_text(self.csv_text()),
            "content_hash": self.content_hash,
        }


def _content_hash(plan: SamplingPlan) -> str:
    """sha256 over the entries, the targets and the parameters (not the file paths)."""
    body = {
        "schema_version": SCHEMA_VERSION,
        "csv_sha256": sha256_text(plan.csv_text()),
        "targets": None if plan.targets is None else dict(plan.targets),
        "params": dict(plan.params),
        "inputs": dict(plan.inputs),
    }
    return sha256_text(canonical_json(body))


# ---------------------------------------------------------------------------------------
# the plan function


def order_key(seed: int, mid: str, ytid: str, start_s: float) -> int:
    """The fixed position key of a candidate in class ``mid``'s order (64-bit)."""
    data = f"{int(seed)}\x00{mid}\x00{ytid}\x00{start_ms(start_s)}".encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8, person=b"afs-plan-order").digest(), "big")


def shard_of(ytid: str, n: int) -> int:
    """The shard (0..n-1) of a YouTube ID: a stable hash, the same on every machine."""
    digest = hashlib.blake2b(ytid.encode("ascii"), digest_size=8, person=b"afs-plan-shard").digest()
    return int.from_bytes(digest, "big") % n


def _selected_mids(selection: ClassSelection | Iterable[str]) -> list[str]:
    mids: Iterable[str] = selection.mids if isinstance(selection, ClassSelection) else [selection] if isinstance(selection, str) else selection
    out = sorted({valid_mid(m) for m in mids})
    if not out:
        raise UsageError(
            "the class selection is empty: nothing to plan (lower selection.min_quality or name classes in selection.include; "
            "preview the choice with 'audioset-fewshot classes --min-quality 0.5')"
        )
    return out


def make_plan(
    selection: ClassSelection | Iterable[str],
    table: SegmentTable,
    *,
    seed: int,
    max_per_class: int,
    sources: Sequence[str] = SOURCES,
    owner_policy: str = "fewest-candidates",
    shard: tuple[int, int] | None = None,
) -> SamplingPlan:
    """Plan the download of ``selection``'s classes from ``table`` (a ``SegmentTable``).

    ``selection``: a ``ClassSelection`` (its ``mids``) or an iterable of MIDs.
    Returns the plan; write it with :func:`write_plan`.  Pure: the same inputs
    give the same plan, byte for byte.
    """
    mids = _selected_mids(selection)
    if isinstance(max_per_class, bool) or not isinstance(max_per_class, int) or max_per_class < 1:
        raise UsageError(f"max_per_class must be a positive integer, got {max_per_class!r}")
    if owner_policy not in OWNER_POLICIES:
        raise UsageError(f"owner_policy {owner_policy!r} is not one of {', '.join(OWNER_POLICIES)}")
    given = list(sources)
    bad = [s for s in given if s not in SOURCES]
    if bad or not given:
        raise UsageError(f"sources {given!r}: choose from {', '.join(SOURCES)}")
    sources = [s for s in SOURCES if s in given]  # one order, whatever order they were given in
    if shard is not None:
        i, n = int(shard[0]), int(shard[1])
        if n < 1 or not 0 <= i < n:
            raise UsageError(f"shard {shard!r} needs 0 <= I < N")
        shard = (i, n)

    vocab = list(table.label_vocab)
    vocab_pos = {m: k for k, m in enumerate(vocab)}
    ptr = np.asarray(table.label_ptr, dtype=np.int64)
    idx = np.asarray(table.label_idx, dtype=np.int64)
    src = np.asarray(table.source)
    n_rows = len(ptr) - 1
    src_ok = np.isin(src, [SOURCES.index(s) for s in sources])

    # (row, label) pairs restricted to selected labels in chosen sources
    row_of = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(ptr))
    sel_vocab = np.array(sorted(vocab_pos[m] for m in mids if m in vocab_pos), dtype=np.int64)
    keep = np.isin(idx, sel_vocab) & src_ok[row_of]
    pair_rows = row_of[keep]
    pair_labels = idx[keep]
    counts = np.bincount(pair_labels, minlength=len(vocab)) if len(vocab) else np.zeros(0, dtype=np.int64)

    # owner per row: pairs are in label order within each row (CSR order)
    rank_key: dict[int, tuple[int, str]] = {}
    for v in sel_vocab.tolist():
        rank_key[v] = (int(counts[v]), vocab[v])
    owners: dict[int, int] = {}
    for r, v in zip(pair_rows.tolist(), pair_labels.tolist()):
        cur = owners.get(r)
        if cur is None:
            owners[r] = v
        elif owner_policy == "fewest-candidates" and rank_key[v] < rank_key[cur]:
            owners[r] = v

    ytids = table.ytid
    starts = table.start_s
    ends = table.end_s
    per_class: dict[str, list[tuple[int, str, int]]] = {m: [] for m in mids}
    seen_clips: set[str] = set()
    for r in sorted(owners):  # SOURCES order; the first copy of a duplicated segment wins
        ytid = str(ytids[r])
        start_s = float(starts[r])
        cid = clip_stem(ytid, start_s)
        if cid in seen_clips:
            continue
        seen_clips.add(cid)
        mid = vocab[owners[r]]
        per_class[mid].append((order_key(seed, mid, ytid, start_s), cid, r))

    target_each = max_per_class if shard is None else math.ceil(max_per_class / shard[1])
    entries: list[PlanEntry] = []
    shortfalls: dict[str, dict[str, int]] = {}
    for mid in mids:
        items = sorted(per_class[mid])
        owned = 0
        for rank, (_, cid, r) in enumerate(items):
            ytid = str(ytids[r])
            if shard is not None and shard_of(ytid, shard[1]) != shard[0]:
                continue
            owned += 1
            labels = tuple(sorted(vocab[k] for k in idx[ptr[r] : ptr[r + 1]].tolist()))
            entries.append(PlanEntry(cid, ytid, float(starts[r]), float(ends[r]), mid, labels, SOURCES[int(src[r])], rank))
        if owned < target_each:
            shortfalls[mid] = {"candidates": owned, "target": target_each}

    files = getattr(table, "files", {}) or {}
    inputs = {s: str(files[s][1]) for s in sorted(files) if s in sources}
    params: dict[str, Any] = {
        "seed": int(seed),
        "max_per_class": int(max_per_class),
        "sources": sources,
        "owner_policy": owner_policy,
        "shard": None if shard is None else f"{shard[0]}/{shard[1]}",
        "classes": mids,
    }
    if isinstance(selection, ClassSelection):
        # the rule and its input files are part of the plan's key: a changed selection re-plans
        params["selection"] = selection.key
        inputs.update(selection.inputs)
    return SamplingPlan.build(entries, {m: target_each for m in mids}, params=params, inputs=inputs, shortfalls=shortfalls)


# ---------------------------------------------------------------------------------------
# files


def write_plan(plan: SamplingPlan, layout: DatasetLayout) -> bool:
    """Write ``plan/plan.csv`` + ``plan/plan.json``; return False (no write) when the files
    already hold this plan (same content hash)."""
    old = read_json(layout.plan_meta_file) or {}  # a damaged plan.json is simply written again
    if old.get("content_hash") == plan.content_hash and layout.plan_file.is_file() and old.get("csv_sha256") == sha256_file(layout.plan_file):
        return False
    atomic_write_text(layout.plan_file, plan.csv_text())
    atomic_write_json(layout.plan_meta_file, plan.meta())
    return True


def read_plan_meta(layout: DatasetLayout) -> dict[str, Any]:
    """``plan/plan.json`` of a root, checked for presence and schema (the cheap part of
    :func:`read_plan`, for readers that need the parameters and hashes only)."""
    if not layout.plan_file.exists() or not layout.plan_meta_file.exists():
        raise StageNotReadyError(f"no plan in {layout.plan_dir}; run 'audioset-fewshot plan --root {layout.root}' first")
    return load_meta(layout.plan_meta_file, stage="plan", schema_version=SCHEMA_VERSION, fix="rerun 'audioset-fewshot plan'")


def read_plan(layout: DatasetLayout) -> SamplingPlan:
    """Read and check the plan of a dataset root (hash verified)."""
    meta = read_plan_meta(layout)
    rows = read_table(layout.plan_file, CSV_COLUMNS, missing=f"run 'audioset-fewshot plan --root {layout.root}' first", fix="rerun 'audioset-fewshot plan'")
    entries = [PlanEntry.from_row(row, where=f"{layout.plan_file}:{n}") for n, row in rows]
    plan = SamplingPlan.build(entries, meta.get("targets"), params=meta.get("params"), inputs=meta.get("inputs"), shortfalls=meta.get("shortfalls"))
    if plan.content_hash != meta.get("content_hash"):
        raise ValidationError(f"{layout.plan_dir}: the plan files do not match their recorded hash (edited by hand?); rerun 'audioset-fewshot plan'")
    return plan


# ---------------------------------------------------------------------------------------
# from a configuration: metadata -> selection -> plan

_PLAN_PARAM_KEYS = ("seed", "max_per_class", "sources", "owner_policy", "shard")


def plan_from_selection(chosen: MetadataSelection, options: PlanConfig) -> SamplingPlan:
    """The plan of a selection made by :func:`~audioset_fewshot.selection.select_from_config`
    (which must have read the segment lists), with the ``plan`` section's options."""
    from audioset_fewshot.config import parse_shard

    if chosen.table is None:
        raise UsageError("planning needs the segment lists: select with counts=True")
    shard = parse_shard(options.shard, key="plan.shard") if options.shard else None
    return make_plan(
        chosen.selection, chosen.table, seed=options.seed, max_per_class=options.max_per_class, sources=options.sources,
        owner_policy=options.owner_policy, shard=shard,
    )  # fmt: skip


def plan_from_config(cfg: Config) -> SamplingPlan:
    """Read the metadata, select the classes and make the plan, all as ``cfg`` says
    (sections ``metadata``, ``selection``, ``plan``)."""
    from audioset_fewshot.selection import select_from_config

    return plan_from_selection(select_from_config(cfg.metadata, cfg.selection, sources=cfg.plan.sources), cfg.plan)


def plan_changes(plan: SamplingPlan, cfg: Config) -> list[str]:
    """What differs between ``plan`` and the plan ``cfg`` would make, without parsing the
    segment lists: the plan parameters, the selection rule, and the sha256 of the
    ontology, the QA counts and the segment lists the plan recorded.  Empty = current.

    An exact plan (``rebuild``) and a plan made from a bare list of MIDs (no selection
    recorded) are keyed by their plan parameters only."""
    if plan.params.get("exact"):
        return []
    pc = cfg.plan
    want: dict[str, Any] = {
        "seed": pc.seed, "max_per_class": pc.max_per_class, "sources": [s for s in SOURCES if s in pc.sources],
        "owner_policy": pc.owner_policy, "shard": pc.shard,
    }  # fmt: skip
    changed = [f"plan.{k}" for k in _PLAN_PARAM_KEYS if plan.params.get(k) != want[k]]
    recorded = plan.params.get("selection")
    if recorded is None:
        return changed
    from audioset_fewshot.metadata import load_ontology, quality_sha256, resolve_segment_files

    onto = load_ontology()
    sc = cfg.selection
    rule = {
        "min_quality": float(sc.min_quality), "all_levels": bool(sc.all_levels),
        "include": sorted(dict.fromkeys(onto.resolve(n) for n in sc.include)),
        "exclude": sorted(dict.fromkeys(onto.resolve(n) for n in sc.exclude)),
    }  # fmt: skip
    changed += [f"selection.{k}" for k in rule if recorded.get(k) != rule[k]]
    if plan.inputs.get("ontology", onto.sha256) != onto.sha256:
        changed.append("the ontology")
    if plan.inputs.get("quality", "") not in ("", quality_sha256()):
        changed.append("the QA counts")
    if not changed:
        mc = cfg.metadata
        files = resolve_segment_files(want["sources"], metadata_dir=mc.metadata_dir, cache_dir=mc.cache_dir, urls=mc.urls, timeout_s=mc.timeout_s)
        changed += [f"the segment list {s!r}" for s, path in files.items() if plan.inputs.get(s) != sha256_file(path)]
    return changed


def ensure_plan(cfg: Config, layout: DatasetLayout, *, rebuild: bool = False) -> tuple[SamplingPlan, bool]:
    """The plan of ``layout``: the one on disk when it is the plan ``cfg`` makes (same plan
    parameters, selection rule and metadata hashes; no segment list parsed), else a new
    one from the metadata, written.  Returns (plan, written)."""
    if not rebuild and layout.plan_file.exists() and layout.plan_meta_file.exists():
        plan = read_plan(layout)
        changes = plan_changes(plan, cfg)
        if not changes:
            return plan, False
        log.info("the plan of %s is stale (%s changed): planning again", layout.root, ", ".join(changes))
    plan = plan_from_config(cfg)
    return plan, write_plan(plan, layout)
