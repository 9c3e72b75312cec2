"""Choose AudioSet classes, with a reason for every class left out.

A class is chosen when all of these hold (the default rule, as in MetaAudio and
the seed project):

- it is a leaf of the ontology (unless ``all_levels``);
- its ``restrictions`` contain neither ``blacklist`` nor ``abstract``;
- it has a QA row with ``num_rated > 0`` and ``num_true / num_rated >= min_quality``;
- if a :class:`~audioset_fewshot.metadata.CandidateIndex` is given, at least one
  segment of the indexed lists carries it.

``include`` forces classes in whatever the rule says (the reason it would have
been left out is kept in ``SelectedClass.note``); ``exclude`` removes classes.
On the official metadata this gives 142 classes at ``min_quality=0.8`` (263,
219, 190, 87, 43 at 0.5, 0.6, 0.7, 0.9, 1.0).

:func:`select_from_config` is the one way from a config's ``metadata`` and
``selection`` sections to a selection (``plan``, ``download``, ``run``,
``classes``, the splits preview and the demo all use it).

"Silence" (``/m/028v0c``) is flagged ``"silence"``: its clips fail a silence
check by nature, so later stages must not drop them for being quiet.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from audioset_fewshot._io import json_fields
from audioset_fewshot.config import SOURCES, MetadataConfig, SelectionConfig
from audioset_fewshot.errors import UsageError
from audioset_fewshot.metadata.ontology import Ontology
from audioset_fewshot.metadata.quality import QualityCount
from audioset_fewshot.metadata.segments import CandidateIndex, SegmentTable

SCHEMA_VERSION = 1
# the parameters of the rule, as recorded in a plan (``plan.json`` params ``selection``)
SELECTION_KEYS = ("min_quality", "all_levels", "include", "exclude")
SILENCE_MID = "/m/028v0c"
FLAG_SILENCE = "silence"
FLAG_FORCED = "included"
# compare rates with a tolerance so that 7/10 >= 0.7 whatever the float rounding
_EPS = 1e-9


@dataclass(frozen=True)
class SelectedClass:
    mid: str
    name: str
    quality: float | None
    top_level: str
    top_level_name: str
    flags: tuple[str, ...] = ()
    num_rated: int = 0
    num_true: int = 0
    candidates: Mapping[str, int] | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return json_fields(self)


@dataclass(frozen=True, eq=False)
class ClassSelection:
    """The chosen classes (ontology order) and ``excluded: {mid: reason}`` for every other class."""

    chosen: tuple[SelectedClass, ...]
    excluded: dict[str, str]
    params: dict[str, Any]
    ontology: Ontology = field(repr=False)
    # sha256 of the ontology and QA files the rule read ({"ontology": ..., "quality": ...})
    inputs: Mapping[str, str] = field(default_factory=dict)

    @property
    def mids(self) -> tuple[str, ...]:
        return tuple(c.mid for c in self.chosen)

    @property
    def key(self) -> dict[str, Any]:
        """The rule's parameters (names resolved to MIDs): part of a plan's key and of lock.json."""
        return {k: self.params[k] for k in SELECTION_KEYS}

    def __len__(self) -> int:
        return len(self.chosen)

    def __contains__(self, mid: object) -> bool:
        return any(c.mid == mid for c in self.chosen)

    def get(self, name_or_mid: str) -> SelectedClass | None:
        mid = self.ontology.resolve(name_or_mid)
        for c in self.chosen:
            if c.mid == mid:
                return c
        return None

    def explain(self, name_or_mid: str) -> str:
        """One sentence: why this class is in or out (unknown names raise UnknownNameError)."""
        mid = self.ontology.resolve(name_or_mid)
        label = self.ontology.label(mid)
        chosen = self.get(mid)
        if chosen is not None:
            q = "no QA rate" if chosen.quality is None else f"QA rate {chosen.quality:.2f} ({chosen.num_true}/{chosen.num_rated})"
            why = chosen.note or f"a leaf class, not blacklisted or abstract, {q} >= {self.params['min_quality']}"
            extra = ""
            if FLAG_SILENCE in chosen.flags:
                extra = "; flagged 'silence': its clips are silent by nature, so the silence check does not reject them"
            top = f"; top-level category: {chosen.top_level_name}"
            if chosen.candidates is not None:
                top += "; candidate segments: " + ", ".join(f"{s} {n}" for s, n in chosen.candidates.items())
            return f"{label} is selected: {why}{top}{extra}"
        return f"{label} is excluded: {self.excluded[mid]}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "params": dict(self.params),
            "ontology_sha256": self.ontology.sha256,
            "chosen": [c.to_dict() for c in self.chosen],
            "excluded": dict(sorted(self.excluded.items())),
        }


def _fmt_rate(q: QualityCount) -> str:
    rate = q.rate
    return "no rating" if rate is None else f"{rate:.2f} ({q.num_true}/{q.num_rated})"


def _resolve_all(ontology: Ontology, names: Iterable[str], what: str) -> list[str]:
    if isinstance(names, str):
        names = (names,)
    return list(dict.fromkeys(ontology.resolve(n) for n in names))


def select_classes(
    ontology: Ontology,
    quality: Mapping[str, QualityCount],
    *,
    min_quality: float = 0.8,
    all_levels: bool = False,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    candidates: CandidateIndex | None = None,
) -> ClassSelection:
    """Apply the selection rule (module docstring) to every ontology class."""
    if not isinstance(min_quality, (int, float)) or isinstance(min_quality, bool) or not 0.0 <= float(min_quality) <= 1.0:
        raise UsageError(f"min_quality must be a number between 0 and 1, got {min_quality!r}")
    inc = _resolve_all(ontology, include, "include")
    exc = _resolve_all(ontology, exclude, "exclude")
    both = [m for m in inc if m in exc]
    if both:
        raise UsageError(f"{ontology.label(both[0])} is both included and excluded; drop it from one of the lists")
    chosen: list[SelectedClass] = []
    excluded: dict[str, str] = {}
    for cls in ontology:
        mid = cls.mid
        reasons: list[str] = []
        if not all_levels and not cls.is_leaf:
            n = len(cls.child_ids)
            reasons.append(
                f"not a leaf class (it has {n} {'child' if n == 1 else 'children'}; set selection.all_levels, or 'classes --all-levels', to allow it)"
            )
        if cls.is_blacklisted:
            reasons.append("blacklisted in the ontology (restrictions: blacklist)")
        if cls.is_abstract:
            reasons.append("abstract in the ontology (restrictions: abstract): no segment is labelled with it directly")
        q = quality.get(mid)
        if q is None:
            reasons.append("no QA row in qa_true_counts.csv, so its label quality is unknown")
        elif q.num_rated == 0:
            reasons.append("no QA rating (num_rated = 0), so its label quality is unknown")
        elif (q.rate or 0.0) < min_quality - _EPS:
            reasons.append(f"QA rate {_fmt_rate(q)} is below min_quality {min_quality}")
        counts: dict[str, int] | None = None
        if candidates is not None:
            counts = candidates.counts_by_source(mid) if mid in candidates else {s: 0 for s in candidates.sources}
            if sum(counts.values()) == 0:
                reasons.append(f"no segment of the lists {', '.join(candidates.sources)} carries it")
        if mid in exc:
            excluded[mid] = "excluded by request (exclude)" + (f"; also {'; '.join(reasons)}" if reasons else "")
            continue
        if reasons and mid not in inc:
            excluded[mid] = "; ".join(reasons)
            continue
        flags: list[str] = []
        note = ""
        if mid in inc and reasons:
            flags.append(FLAG_FORCED)
            note = "included by request although " + "; ".join(reasons)
        elif mid in inc:
            note = ""
        if mid == SILENCE_MID:
            flags.append(FLAG_SILENCE)
        top = ontology.top_level(mid)
        chosen.append(
            SelectedClass(
                mid=mid,
                name=cls.name,
                quality=q.rate if q is not None else None,
                top_level=top,
                top_level_name=ontology.name(top),
                flags=tuple(flags),
                num_rated=q.num_rated if q is not None else 0,
                num_true=q.num_true if q is not None else 0,
                candidates=counts,
                note=note,
            )
        )
    params = {
        "min_quality": float(min_quality),
        "all_levels": bool(all_levels),
        "include": sorted(inc),
        "exclude": sorted(exc),
        "candidate_sources": list(candidates.sources) if candidates is not None else None,
    }
    return ClassSelection(chosen=tuple(chosen), excluded=excluded, params=params, ontology=ontology, inputs={"ontology": ontology.sha256})


# ---------------------------------------------------------------------------------------
# the one way from a configuration to a selection


@dataclass(frozen=True, eq=False)
class MetadataSelection:
    """The metadata, read once, and the classes chosen from it: what ``plan``, ``download``,
    ``run``, ``classes``, the splits preview and the demo share.  ``table`` is None when
    the segment lists were not read (``counts=False``)."""

    ontology: Ontology
    quality: Mapping[str, QualityCount]
    table: SegmentTable | None
    selection: ClassSelection


def select_from_config(
    metadata: MetadataConfig,
    options: SelectionConfig,
    *,
    sources: Sequence[str] = SOURCES,
    counts: bool = True,
) -> MetadataSelection:
    """Read the ontology, the QA counts and (with ``counts``) the segment lists of
    ``sources`` as ``metadata`` says, then apply the selection rule with ``options``.

    Every class no segment of the lists carries is left out with a reason.  The
    selection records the sha256 of the ontology and QA files it read."""
    from audioset_fewshot.metadata import build_candidate_index, load_ontology, load_quality, quality_sha256, read_segments, resolve_segment_files

    onto = load_ontology()
    quality = load_quality()

    def rule(candidates: CandidateIndex | None) -> ClassSelection:
        return select_classes(
            onto, quality, min_quality=options.min_quality, all_levels=options.all_levels, include=tuple(options.include),
            exclude=tuple(options.exclude), candidates=candidates,
        )  # fmt: skip

    # names are checked before any segment list is read or fetched
    selection = rule(None)
    table: SegmentTable | None = None
    if counts:
        files = resolve_segment_files(
            tuple(sources), metadata_dir=metadata.metadata_dir, cache_dir=metadata.cache_dir, urls=metadata.urls, timeout_s=metadata.timeout_s
        )
        table = read_segments(files)
        selection = rule(build_candidate_index(table, onto.mids))
    selection = dataclasses.replace(selection, inputs={"ontology": onto.sha256, "quality": quality_sha256()})
    return MetadataSelection(ontology=onto, quality=quality, table=table, selection=selection)
