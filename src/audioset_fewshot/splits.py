"""Class-disjoint meta-splits (train / val / test) with an explicit leakage policy.

AudioSet is multi-label: a clip that carries a train class and a test class is,
under a plain class split, trained on and tested on.  :func:`make_splits` splits
the *classes* (seeded, MetaAudio's size rule) and then builds each split's clip
*pools* under one of three policies over the clips' label sets:

``exclusive`` (default)
    a split's pool keeps only clips whose selected labels all lie in that split.
    The unit is the YouTube video: if any segment of a video carries a label of
    another split, no segment of that video is used in this split, so no YouTube
    ID appears in two splits' pools.
``owner``
    every clip is used once, in its owner class (the plan's owner; for raw
    metadata candidates the selected label with the fewest candidates).  No clip
    is duplicated, but a train clip may still *sound* like a test class.
``none``
    every clip is in the pool of every selected class it carries (what copying a
    clip into every class folder does); the report says how much leaks.

Within a split a clip belongs to every class of that split it carries (except
under ``owner``); the episode guard (:mod:`audioset_fewshot.episodes`) keeps a
clip out of an episode that also contains another class the clip carries.

Sizes follow MetaAudio's rule: ``ceil(r_train * n)`` train classes,
``ceil(r_val * n)`` validation classes, the rest test (142 classes with the
default ratios 0.7 / 0.1 / 0.2 -> 100 / 15 / 27).  Optional grouping:
``siblings`` keeps classes that share an ontology parent in one split (sizes then
follow the rule as closely as the groups allow), ``top-level`` stratifies the
split by top-level category (exact sizes).

The result is written as canonical JSON (``splits.json``): byte-identical for
the same inputs and seed, no pickle.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from audioset_fewshot._io import atomic_write_text, canonical_json, sha256_text
from audioset_fewshot.errors import StageNotReadyError, UsageError, ValidationError
from audioset_fewshot.layout import DatasetLayout, clip_stem
from audioset_fewshot.validate import valid_mid

if TYPE_CHECKING:
    from audioset_fewshot.metadata.ontology import Ontology
    from audioset_fewshot.metadata.segments import SegmentTable
    from audioset_fewshot.selection import SelectedClass

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SPLITS = ("train", "val", "test")
LEAKAGE_POLICIES = ("exclusive", "owner", "none")
GROUPS = ("siblings", "top-level")
RULE = "MetaAudio: ceil(ratio * n) classes for train and val, the rest for test"

# Stream id of the class split in default_rng([seed, STREAM]); fixed forever.
_STREAM = 71


# ---------------------------------------------------------------------------------------
# inputs


@dataclass(frozen=True, order=True)
class SplitClass:
    """One class to split: MID, display name, top-level category, ontology parents."""

    mid: str
    name: str = ""
    top_level: str = ""
    parents: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"mid": self.mid, "name": self.name, "top_level": self.top_level}


@dataclass(frozen=True)
class ClipLabels:
    """One clip's identity and labels, as the split stage needs them.

    ``clip_id`` is ``layout.clip_stem(ytid, start_s)``; ``labels`` are all of the
    segment's labels (selected or not); ``owner_mid`` is the plan's owner, if any.
    """

    clip_id: str
    ytid: str
    labels: tuple[str, ...]
    owner_mid: str | None = None

    @classmethod
    def of(cls, ytid: str, start_s: float, labels: Iterable[str], owner_mid: str | None = None) -> ClipLabels:
        return cls(clip_id=clip_stem(ytid, start_s), ytid=ytid, labels=tuple(sorted(set(labels))), owner_mid=owner_mid)


def _as_class(obj: SplitClass | str | SelectedClass, parents: Mapping[str, Sequence[str]] | None) -> SplitClass:
    if isinstance(obj, SplitClass):
        cls = obj
    elif isinstance(obj, str):
        cls = SplitClass(mid=obj)
    else:  # a selection.SelectedClass or anything with mid / name / top_level
        mid = getattr(obj, "mid", None)
        if mid is None:
            raise UsageError(f"cannot split {obj!r}: expected a MID string or an object with a 'mid' attribute")
        # the top-level category by name, as ontology_classes() records it (a SelectedClass
        # keeps the MID in top_level and the name in top_level_name)
        top = getattr(obj, "top_level_name", None) or getattr(obj, "top_level", "") or ""
        cls = SplitClass(mid=mid, name=str(getattr(obj, "name", "") or ""), top_level=str(top), parents=tuple(getattr(obj, "parents", ()) or ()))
    try:
        valid_mid(cls.mid)
    except ValidationError as err:
        raise UsageError(f"cannot split classes: {err}") from err
    if parents is not None and cls.mid in parents:
        cls = SplitClass(cls.mid, cls.name, cls.top_level, tuple(sorted(parents[cls.mid])))
    return cls


# ---------------------------------------------------------------------------------------
# records


@dataclass(frozen=True)
class PoolStats:
    """Leakage figures of one split's pool (clips = distinct clip ids in the pool)."""

    clips: int
    ytids: int
    leaky_clips: int  # clips carrying a selected label of another split
    shared_ytids: int  # YouTube IDs also present in another split's pool

    @property
    def leaky_fraction(self) -> float:
        return self.leaky_clips / self.clips if self.clips else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "clips": self.clips,
            "ytids": self.ytids,
            "leaky_clips": self.leaky_clips,
            "leaky_fraction": round(self.leaky_fraction, 6),
            "shared_ytids": self.shared_ytids,
        }


@dataclass(frozen=True)
class LeakageReport:
    """Per split: the pool with every clip kept (``before``) and under the policy (``after``)."""

    before: dict[str, PoolStats]
    after: dict[str, PoolStats]
    multi_label_fraction: float  # candidate clips carrying two or more selected labels

    def to_dict(self) -> dict[str, Any]:
        return {
            "before": {s: self.before[s].to_dict() for s in SPLITS},
            "after": {s: self.after[s].to_dict() for s in SPLITS},
            "multi_label_fraction": round(self.multi_label_fraction, 6),
        }


@dataclass(frozen=True)
class MetaSplits:
    """The class split, the clip pools and the leakage report.

    ``classes[split]`` are sorted by MID.  ``pools[split][mid]`` are sorted clip ids
    (empty mappings when no clips were given).  ``multi_labels`` maps each pooled
    clip that carries two or more selected labels to those labels (the episode
    guard needs them).  ``content_sha256`` hashes everything else.
    """

    seed: int
    ratios: tuple[float, float, float]
    leakage: str
    group: str | None
    classes: dict[str, tuple[SplitClass, ...]]
    pools: dict[str, dict[str, tuple[str, ...]]]
    multi_labels: dict[str, tuple[str, ...]]
    report: LeakageReport | None
    inputs: dict[str, str]
    content_sha256: str = ""
    schema_version: int = SCHEMA_VERSION
    _split_of: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    ran: bool = field(default=True, repr=False, compare=False)  # False: build_splits found splits.json current

    def __post_init__(self) -> None:
        object.__setattr__(self, "_split_of", {c.mid: s for s in SPLITS for c in self.classes[s]})

    # -- queries ---------------------------------------------------------------------------
    def mids(self, split: str) -> tuple[str, ...]:
        return tuple(c.mid for c in self.classes[check_split(split)])

    def names(self, split: str) -> tuple[str, ...]:
        return tuple(c.name for c in self.classes[check_split(split)])

    def split_of(self, mid: str) -> str:
        try:
            return self._split_of[mid]
        except KeyError:
            raise UsageError(f"class {mid!r} is not in these splits") from None

    def sizes(self) -> dict[str, int]:
        return {s: len(self.classes[s]) for s in SPLITS}

    def pool_ids(self, split: str) -> tuple[str, ...]:
        """Distinct clip ids of a split's pool, sorted."""
        return tuple(sorted({c for ids in self.pools[check_split(split)].values() for c in ids}))

    def pool_sha256(self, split: str) -> str:
        return sha256_text(canonical_json({m: list(ids) for m, ids in self.pools[check_split(split)].items()}))

    # -- serialisation -------------------------------------------------------------------------
    def _body(self, *, include_pools: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "schema_version": self.schema_version,
            "stage": "splits",
            "params": {"seed": self.seed, "ratios": list(self.ratios), "leakage": self.leakage, "group": self.group},
            "rule": RULE,
            "inputs": dict(self.inputs),
            "sizes": self.sizes(),
            "classes": {s: [c.to_dict() for c in self.classes[s]] for s in SPLITS},
            "pool_counts": {s: {m: len(ids) for m, ids in self.pools[s].items()} for s in SPLITS},
            "pool_sha256": {s: self.pool_sha256(s) for s in SPLITS},
            "leakage_report": self.report.to_dict() if self.report is not None else None,
        }
        if include_pools:
            body["pools"] = {s: {m: list(ids) for m, ids in self.pools[s].items()} for s in SPLITS}
            body["multi_labels"] = {c: list(m) for c, m in self.multi_labels.items()}
        return body

    def to_dict(self, *, include_pools: bool = True) -> dict[str, Any]:
        body = self._body(include_pools=include_pools)
        body["content_sha256"] = self.content_sha256
        return body

    def to_json(self) -> str:
        """Canonical JSON text of ``splits.json``."""
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "splits.json") -> MetaSplits:
        try:
            if data.get("schema_version") != SCHEMA_VERSION:
                raise UsageError(
                    f"{source}: schema_version {data.get('schema_version')!r} is not {SCHEMA_VERSION}; rebuild it with 'audioset-fewshot splits --force'"
                )
            params = data["params"]
            classes = {
                s: tuple(SplitClass(mid=valid_mid(c["mid"]), name=str(c["name"]), top_level=str(c["top_level"])) for c in data["classes"][s]) for s in SPLITS
            }
            pools = {s: {valid_mid(m): tuple(str(i) for i in ids) for m, ids in data.get("pools", {}).get(s, {}).items()} for s in SPLITS}
            multi = {str(c): tuple(str(m) for m in mids) for c, mids in data.get("multi_labels", {}).items()}
            rep = data.get("leakage_report")
            report = None
            if rep is not None:

                def stats(d: Mapping[str, Any]) -> PoolStats:
                    return PoolStats(int(d["clips"]), int(d["ytids"]), int(d["leaky_clips"]), int(d["shared_ytids"]))

                report = LeakageReport(
                    {s: stats(rep["before"][s]) for s in SPLITS}, {s: stats(rep["after"][s]) for s in SPLITS}, float(rep["multi_label_fraction"])
                )
            out = cls(
                seed=int(params["seed"]),
                ratios=tuple(float(r) for r in params["ratios"]),  # type: ignore[arg-type]
                leakage=str(params["leakage"]),
                group=params["group"],
                classes=classes,
                pools=pools,
                multi_labels=multi,
                report=report,
                inputs={str(k): str(v) for k, v in data["inputs"].items()},
                content_sha256=str(data["content_sha256"]),
            )
        except (KeyError, TypeError, ValueError, ValidationError) as err:
            raise UsageError(f"{source}: malformed splits file ({type(err).__name__}: {err}); rebuild it with 'audioset-fewshot splits --force'") from err
        if "pools" in data and out._hash() != out.content_sha256:
            raise UsageError(f"{source}: content hash mismatch (the file was edited); rebuild it with 'audioset-fewshot splits --force'")
        return out

    def _hash(self) -> str:
        return sha256_text(canonical_json(self._body()))


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return split


# ---------------------------------------------------------------------------------------
# the class split


def split_sizes(n: int, ratios: Sequence[float]) -> tuple[int, int, int]:
    """MetaAudio's rule: ceil for train and val, the rest to test."""
    check_ratios(ratios)
    # round first so that 0.7 * 10 = 7.000000000000001 does not become 8
    n_train = math.ceil(round(ratios[0] * n, 9))
    n_val = math.ceil(round(ratios[1] * n, 9))
    n_test = n - n_train - n_val
    if n_test < 1:
        raise UsageError(
            f"{n} classes are too few to split with ratios {list(ratios)}: the test split would be empty; select more classes or lower the train / val ratios"
        )
    return n_train, n_val, n_test


def check_ratios(ratios: Sequence[float]) -> None:
    if len(ratios) != 3 or any(not math.isfinite(r) or r <= 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
        raise UsageError(f"ratios must be three positive fractions summing to 1 (train, val, test), got {list(ratios)}")


def _sibling_groups(classes: Sequence[SplitClass]) -> list[list[int]]:
    """Union-find over classes sharing any parent; groups of indices, each sorted."""
    parent = list(range(len(classes)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_child: dict[str, int] = {}
    for i, c in enumerate(classes):
        for p in c.parents:
            j = first_child.setdefault(p, i)
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    groups: dict[int, list[int]] = {}
    for i in range(len(classes)):
        groups.setdefault(find(i), []).append(i)
    return [groups[k] for k in sorted(groups)]


def _assign(classes: Sequence[SplitClass], *, seed: int, ratios: Sequence[float], group: str | None) -> list[int]:
    """Split index (0 train, 1 val, 2 test) of every class (classes sorted by MID)."""
    n = len(classes)
    targets = split_sizes(n, ratios)
    rng = np.random.default_rng([seed, _STREAM])
    out = [0] * n
    if group is None:
        perm = rng.permutation(n)
        bounds = (targets[0], targets[0] + targets[1])
        for pos, i in enumerate(perm):
            out[int(i)] = 0 if pos < bounds[0] else 1 if pos < bounds[1] else 2
        return out
    if group == "siblings":
        groups = _sibling_groups(classes)
        rank = np.argsort(rng.permutation(len(groups)))
        # largest groups first (ties in seeded order), each to the split furthest below its target
        ranked = sorted(range(len(groups)), key=lambda g: (-len(groups[g]), int(rank[g])))
        counts = [0, 0, 0]
        for g in ranked:
            deficits = [targets[s] - counts[s] for s in range(3)]
            s = max(range(3), key=lambda s: (deficits[s] / max(targets[s], 1), deficits[s], -s))
            for i in groups[g]:
                out[i] = s
            counts[s] += len(groups[g])
        return out
    if group == "top-level":
        keys = rng.random(n)
        order = sorted(range(n), key=lambda i: (classes[i].top_level, keys[i]))
        # an evenly interleaved label sequence with exact counts, rotated by a seeded offset:
        # each top-level block gets a share of every split close to the ratios
        seq: list[int] = []
        counts = [0, 0, 0]
        for pos in range(n):
            s = max(range(3), key=lambda s: (targets[s] * (pos + 1) / n - counts[s], -s))
            seq.append(s)
            counts[s] += 1
        shift = int(rng.integers(n))
        for pos, i in enumerate(order):
            out[i] = seq[(pos + shift) % n]
        return out
    raise UsageError(f"unknown group {group!r}; expected one of {', '.join(GROUPS)} or none")


# ---------------------------------------------------------------------------------------
# pools and leakage


def _owner(clip: ClipLabels, selected: Sequence[str], counts: Mapping[str, int]) -> str:
    if clip.owner_mid is not None and clip.owner_mid in counts:
        return clip.owner_mid
    # the plan's default rule for clips without an owner: fewest candidates, then MID
    return min(selected, key=lambda m: (counts[m], m))


def _stats(pools: Mapping[str, Mapping[str, Sequence[str]]], clip_splits: Mapping[str, set[str]], ytid_of: Mapping[str, str]) -> dict[str, PoolStats]:
    ids = {s: {c for members in pools[s].values() for c in members} for s in SPLITS}
    ytids = {s: {ytid_of[c] for c in ids[s]} for s in SPLITS}
    out: dict[str, PoolStats] = {}
    for s in SPLITS:
        others = set().union(*(ytids[o] for o in SPLITS if o != s))
        leaky = sum(1 for c in ids[s] if clip_splits[c] - {s})
        out[s] = PoolStats(clips=len(ids[s]), ytids=len(ytids[s]), leaky_clips=leaky, shared_ytids=len(ytids[s] & others))
    return out


def _pools(clips: Sequence[ClipLabels], split_of: Mapping[str, str], policy: str) -> tuple[dict[str, dict[str, list[str]]], dict[str, set[str]]]:
    """Pools under ``policy`` and, per clip, the set of splits its selected labels fall in."""
    pools: dict[str, dict[str, list[str]]] = {s: {} for s in SPLITS}
    for m, s in split_of.items():
        pools[s][m] = []
    clip_splits: dict[str, set[str]] = {}
    ytid_splits: dict[str, set[str]] = {}
    selected_of: dict[str, list[str]] = {}
    counts = dict.fromkeys(split_of, 0)
    for c in clips:
        sel = [m for m in c.labels if m in split_of]
        selected_of[c.clip_id] = sel
        sp = {split_of[m] for m in sel}
        clip_splits[c.clip_id] = sp
        ytid_splits.setdefault(c.ytid, set()).update(sp)
        for m in sel:
            counts[m] += 1
    for c in clips:
        sel = selected_of[c.clip_id]
        if not sel:
            continue
        if policy == "owner":
            owner = _owner(c, sel, counts)
            pools[split_of[owner]][owner].append(c.clip_id)
            continue
        if policy == "exclusive" and len(ytid_splits[c.ytid]) > 1:
            continue
        for m in sel:
            pools[split_of[m]][m].append(c.clip_id)
    for s in SPLITS:
        for m in pools[s]:
            pools[s][m].sort()
    return pools, clip_splits


def clips_sha256(clips: Iterable[ClipLabels]) -> str:
    """Hash of the clip list (id, labels, owner), independent of input order."""
    rows = sorted((c.clip_id, list(c.labels), c.owner_mid or "") for c in clips)
    return sha256_text(canonical_json(rows))


def classes_sha256(classes: Iterable[SplitClass]) -> str:
    return sha256_text(canonical_json(sorted([c.mid, c.name, c.top_level, list(c.parents)] for c in classes)))


def make_splits(
    classes: Iterable[SplitClass | str | SelectedClass],
    *,
    seed: int = 0,
    ratios: Sequence[float] = (0.7, 0.1, 0.2),
    leakage: str = "exclusive",
    group: str | None = None,
    clips: Iterable[ClipLabels] | None = None,
    parents: Mapping[str, Sequence[str]] | None = None,
) -> MetaSplits:
    """Split ``classes`` into class-disjoint train / val / test and build the clip pools.

    ``classes``: MIDs, :class:`SplitClass` records or ``selection.SelectedClass``
    objects (input order does not matter).  ``clips``: every candidate or obtained
    clip with its full label set; without clips the pools are empty and only the
    class split is made.  ``parents``: MID -> parent MIDs, needed by
    ``group="siblings"`` when the classes do not carry them.
    """
    if leakage not in LEAKAGE_POLICIES:
        raise UsageError(f"unknown leakage policy {leakage!r}; expected one of {', '.join(LEAKAGE_POLICIES)}")
    if group is not None and group not in GROUPS:
        raise UsageError(f"unknown group {group!r}; expected one of {', '.join(GROUPS)} or none")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UsageError(f"seed must be a non-negative integer, got {seed!r}")
    ratios_t = tuple(float(r) for r in ratios)
    check_ratios(ratios_t)
    by_mid: dict[str, SplitClass] = {}
    for obj in classes:
        c = _as_class(obj, parents)
        by_mid[c.mid] = c
    ordered = [by_mid[m] for m in sorted(by_mid)]
    if group == "siblings" and not any(c.parents for c in ordered):
        raise UsageError("group 'siblings' needs the classes' ontology parents; pass parents= (MID -> parent MIDs)")
    assignment = _assign(ordered, seed=int(seed), ratios=ratios_t, group=group)
    split_classes = {s: tuple(c for c, a in zip(ordered, assignment, strict=True) if SPLITS[a] == s) for s in SPLITS}
    split_of = {c.mid: SPLITS[a] for c, a in zip(ordered, assignment, strict=True)}

    clip_list = list(clips) if clips is not None else []
    seen: set[str] = set()
    for clip in clip_list:
        if clip.clip_id in seen:
            raise ValidationError(f"clip {clip.clip_id} is listed twice; each clip must appear once with all its labels")
        seen.add(clip.clip_id)
    inputs = {"classes_sha256": classes_sha256(ordered), "clips_sha256": clips_sha256(clip_list)}
    report: LeakageReport | None = None
    pools_out: dict[str, dict[str, tuple[str, ...]]] = {s: {} for s in SPLITS}
    multi: dict[str, tuple[str, ...]] = {}
    if clip_list:
        before, clip_splits = _pools(clip_list, split_of, "none")
        after, _ = _pools(clip_list, split_of, leakage) if leakage != "none" else (before, clip_splits)
        ytid_of = {c.clip_id: c.ytid for c in clip_list}
        n_selected = sum(1 for c in clip_list if any(m in split_of for m in c.labels))
        n_multi = sum(1 for c in clip_list if sum(1 for m in c.labels if m in split_of) >= 2)
        report = LeakageReport(
            before=_stats(before, clip_splits, ytid_of),
            after=_stats(after, clip_splits, ytid_of),
            multi_label_fraction=n_multi / n_selected if n_selected else 0.0,
        )
        pools_out = {s: {m: tuple(ids) for m, ids in after[s].items()} for s in SPLITS}
        pooled = {c for s in SPLITS for ids in after[s].values() for c in ids}
        for clip in clip_list:
            if clip.clip_id in pooled:
                sel = tuple(m for m in clip.labels if m in split_of)
                if len(sel) >= 2:
                    multi[clip.clip_id] = sel
        multi = dict(sorted(multi.items()))
    out = MetaSplits(
        seed=int(seed),
        ratios=ratios_t,  # type: ignore[arg-type]
        leakage=leakage,
        group=group,
        classes=split_classes,
        pools=pools_out,
        multi_labels=multi,
        report=report,
        inputs=inputs,
    )
    object.__setattr__(out, "content_sha256", out._hash())
    return out


# ---------------------------------------------------------------------------------------
# the stage on a dataset root


def read_splits(root_or_file: Path | str) -> MetaSplits:
    """Read ``splits.json`` (a dataset root or the file itself) and check its hash."""
    import json

    p = Path(root_or_file)
    path = DatasetLayout(p).splits_json if p.is_dir() else p
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise StageNotReadyError(f"{path} does not exist; make the splits first with 'audioset-fewshot splits --root {path.parent}'") from err
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise UsageError(f"{path}: not valid JSON ({err}); rebuild it with 'audioset-fewshot splits --force'") from err
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a JSON object; rebuild it with 'audioset-fewshot splits --force'")
    return MetaSplits.from_dict(data, source=str(path))


def root_clips(root: Path | str) -> list[ClipLabels]:
    """The clips of a dataset root with their labels: the features index if features
    exist (the clips a dataset can serve), else the manifest's clips.csv."""
    layout = DatasetLayout(Path(root))
    if layout.features_dir.is_dir() and any(layout.features_dir.iterdir()):
        from audioset_fewshot.process import load_features

        store = load_features(layout.root)
        return [ClipLabels.of(r.ytid, r.start_s, r.labels, r.owner_mid) for r in store.index]
    if layout.clips_csv.exists():
        from audioset_fewshot.manifest.clips import read_clips

        return [ClipLabels.of(r.ytid, r.start_s, r.labels, r.owner_mid) for r in read_clips(layout.clips_csv, root=layout.root)]
    raise StageNotReadyError(
        f"{layout.root} has neither features ({layout.features_dir}) nor a manifest ({layout.clips_csv}); "
        "run 'audioset-fewshot manifest' (and 'process') first, or use 'splits --metadata-dir' to preview"
    )


def ontology_classes(mids: Iterable[str], ontology: Ontology | None = None) -> list[SplitClass]:
    """SplitClass records (name, top-level category name, parents) for ``mids`` from
    the ontology (the packaged one unless given)."""
    from audioset_fewshot.metadata.ontology import load_ontology

    onto = ontology if ontology is not None else load_ontology()
    out = []
    for mid in sorted(set(mids)):
        if mid in onto:
            out.append(SplitClass(mid=mid, name=onto.name(mid), top_level=onto.name(onto.top_level(mid)), parents=tuple(sorted(onto.parents(mid)))))
        else:  # a class the ontology does not know (a demo's synthetic class, say)
            out.append(SplitClass(mid=mid, name=mid))
    return out


def build_splits(
    root: Path | str,
    *,
    seed: int = 0,
    ratios: Sequence[float] = (0.7, 0.1, 0.2),
    leakage: str = "exclusive",
    group: str | None = None,
    force: bool = False,
    clips: Sequence[ClipLabels] | None = None,
    classes: Sequence[SplitClass] | None = None,
) -> MetaSplits:
    """The splits stage on a dataset root: split the classes that own clips, write
    ``splits.json``.  Unchanged inputs and parameters: returns the existing file's
    record without rewriting it (``force=True`` rewrites)."""
    layout = DatasetLayout(Path(root))
    clip_list = list(clips) if clips is not None else root_clips(layout.root)
    if not clip_list:
        raise StageNotReadyError(f"{layout.root} has no clips to split; download and process some first")
    if classes is None:
        owners = {c.owner_mid for c in clip_list if c.owner_mid}
        if not owners:
            raise StageNotReadyError(f"{layout.root}: the clips have no owner classes; rebuild the manifest")
        classes = ontology_classes(owners)
    splits = make_splits(classes, seed=seed, ratios=ratios, leakage=leakage, group=group, clips=clip_list)
    if not force and layout.splits_json.exists():
        try:
            old = read_splits(layout.splits_json)
        except UsageError:
            old = None
        if old is not None and old.content_sha256 == splits.content_sha256:
            log.info("splits.json is up to date (%s)", old.content_sha256[:12])
            return dataclasses.replace(old, ran=False)
    atomic_write_text(layout.splits_json, splits.to_json())
    log.info("wrote %s (%s)", layout.splits_json, splits.content_sha256[:12])
    return splits


__all__ = [
    "GROUPS",
    "LEAKAGE_POLICIES",
    "SCHEMA_VERSION",
    "SPLITS",
    "ClipLabels",
    "LeakageReport",
    "MetaSplits",
    "PoolStats",
    "SplitClass",
    "build_splits",
    "candidate_clips",
    "check_split",
    "make_splits",
    "ontology_classes",
    "read_splits",
    "root_clips",
    "split_sizes",
    "splits_from_metadata",
]


def candidate_clips(table: SegmentTable, mids: Iterable[str]) -> list[ClipLabels]:
    """Every segment of a ``metadata.SegmentTable`` that carries one of ``mids``, with
    all its labels (no owner: the ``owner`` policy then uses the fewest-candidates
    rule).  Segments listed twice (same YouTube ID and start) are merged."""
    wanted = [table.label_index(m) for m in set(mids)]
    codes = np.asarray([w for w in wanted if w is not None], dtype=np.int64)
    if codes.size == 0:
        return []
    hit = np.isin(table.label_idx, codes)
    rows_of_hits = np.searchsorted(table.label_ptr, np.flatnonzero(hit), side="right") - 1
    by_id: dict[str, ClipLabels] = {}
    for row in np.unique(rows_of_hits).tolist():
        c = ClipLabels.of(str(table.ytid[row]), float(table.start_s[row]), table.labels(row))
        old = by_id.get(c.clip_id)
        if old is not None:
            c = ClipLabels(c.clip_id, c.ytid, tuple(sorted(set(old.labels) | set(c.labels))))
        by_id[c.clip_id] = c
    return [by_id[k] for k in sorted(by_id)]


def splits_from_metadata(
    *,
    metadata_dir: Path | str | None = None,
    cache_dir: Path | str | None = None,
    urls: Mapping[str, str] | None = None,
    sources: Sequence[str] = ("balanced", "eval", "unbalanced"),
    min_quality: float = 0.8,
    all_levels: bool = False,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    seed: int = 0,
    ratios: Sequence[float] = (0.7, 0.1, 0.2),
    leakage: str = "exclusive",
    group: str | None = None,
) -> MetaSplits:
    """Split the classes the selection would choose, with pools over every candidate
    segment of the metadata: a preview before anything is downloaded (nothing written)."""
    from audioset_fewshot.config import MetadataConfig, SelectionConfig
    from audioset_fewshot.selection import select_from_config

    metadata = MetadataConfig(metadata_dir=None if metadata_dir is None else str(metadata_dir), cache_dir=None if cache_dir is None else str(cache_dir))
    if urls is not None:
        metadata = dataclasses.replace(metadata, urls={**metadata.urls, **dict(urls)})
    rule = SelectionConfig(min_quality=min_quality, all_levels=all_levels, include=list(include), exclude=list(exclude))
    chosen = select_from_config(metadata, rule, sources=sources)
    selection, table = chosen.selection, chosen.table
    assert table is not None  # counts=True: the segment lists were read
    classes = ontology_classes(selection.mids, chosen.ontology)
    return make_splits(classes, seed=seed, ratios=ratios, leakage=leakage, group=group, clips=candidate_clips(table, selection.mids))
