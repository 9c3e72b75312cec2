"""Offline demo metadata: real AudioSet classes, synthetic segments, a media catalog.

:func:`build_demo_metadata` picks about 30 *real* leaf classes of the packaged
ontology that pass the default selection (leaf, not blacklisted, QA >= 0.8),
spread over the top-level categories and fixed by a seed, and writes segment
lists for them in the *official* layout (three comment lines with correct
counts, ``YTID, start_seconds, end_seconds, "labels"``) into a folder, so that
the normal ``metadata.metadata_dir`` path reads them like the real release.

Each class gets about ``per_class`` candidate segments with synthetic but valid
11-character YouTube IDs (some begin with ``-``, some contain ``_``, as real
ones do); a few segments carry two selected classes (multi-label) and some
carry an ancestor label as real AudioSet rows do.  It also returns the
``catalog`` for the media server: one :class:`~audioset_fewshot.demo.server.SourceSpec`
per ID whose ``class_key`` is the class MID (so the timbre depends on the
class), short sources (10.5-12 s: generating the media is the demo's main cost), mostly mono,
44.1 or 48 kHz, some Creative Commons licences, about 15 % unavailable with
mixed reasons and a few silent or corrupt sources.

Everything is deterministic for a seed: the files are byte-identical and are
only rewritten when their content would change, so the metadata hashes (and
with them the plan) stay the same from one demo run to the next.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from audioset_fewshot._io import write_text_if_changed
from audioset_fewshot.validate import valid_youtube_id

if TYPE_CHECKING:
    from audioset_fewshot.demo.server import SourceSpec

log = logging.getLogger(__name__)

DEMO_SEED_STREAM = 9001
_PICK_STREAM = 1
_SEG_STREAM = 3

# Official file names, as ``metadata.resolve_segment_files`` expects them in a metadata_dir.
SEGMENT_FILES = {
    "balanced": "balanced_train_segments.csv",
    "eval": "eval_segments.csv",
    "unbalanced": "unbalanced_train_segments.csv",
}
CREATED_LINE = "# Segments csv created Wed Nov 25 00:00:00 2026 (audioset-fewshot offline demo)"
COLUMNS_LINE = "# YTID, start_seconds, end_seconds, positive_labels"

CC_LICENSE = "Creative Commons Attribution license (reuse allowed)"
STANDARD_LICENSE = "Standard YouTube License"

# Faults of unavailable sources, in the order they are dealt out (mixed reasons).
UNAVAILABLE_FAULTS = ("unavailable", "private", "terminated", "geo-blocked", "age-gated", "copyright", "unavailable", "members-only")
QC_FAULTS = ("silence", "corrupt")

_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


@dataclass(frozen=True)
class DemoSegment:
    """One synthetic segment as written to a list."""

    ytid: str
    start_s: float
    end_s: float
    labels: tuple[str, ...]
    source: str
    class_key: str  # the class whose timbre the source has
    duration_s: float
    sample_rate_hz: int
    channels: int
    license: str
    fault: str | None


@dataclass(frozen=True)
class DemoClass:
    mid: str
    name: str
    top_level: str


@dataclass(frozen=True)
class DemoMetadata:
    """What :func:`build_demo_metadata` wrote and what the media server must serve.

    ``files``: ``{source: path}`` of the segment lists in ``metadata_dir``;
    ``catalog``: ``{ytid: SourceSpec}`` for :class:`~audioset_fewshot.demo.server.MediaServer`.
    """

    metadata_dir: Path
    classes: tuple[DemoClass, ...]
    segments: tuple[DemoSegment, ...]
    files: Mapping[str, Path]
    catalog: Mapping[str, SourceSpec]
    seed: int

    @property
    def mids(self) -> tuple[str, ...]:
        return tuple(c.mid for c in self.classes)


# ---------------------------------------------------------------------------------------
# class choice


def pick_demo_classes(*, seed: int = 0, n_classes: int = 30) -> tuple[DemoClass, ...]:
    """``n_classes`` leaf classes passing the default selection, spread over top-level categories.

    Deterministic for a seed: each top-level category's classes are shuffled by
    ``default_rng([DEMO_SEED_STREAM, seed, _PICK_STREAM])`` and taken round-robin.
    Classes flagged ``silence`` are left out (their clips fail a silence check by
    nature).  Returned sorted by MID.
    """
    from audioset_fewshot.config import MetadataConfig, SelectionConfig
    from audioset_fewshot.selection import FLAG_SILENCE, select_from_config

    selection = select_from_config(MetadataConfig(), SelectionConfig(), counts=False).selection
    groups: dict[str, list[DemoClass]] = {}
    for c in selection.chosen:
        if FLAG_SILENCE in c.flags:
            continue
        groups.setdefault(c.top_level, []).append(DemoClass(c.mid, c.name, c.top_level))
    rng = np.random.default_rng([DEMO_SEED_STREAM, seed, _PICK_STREAM])
    queues: list[list[DemoClass]] = []
    for top in sorted(groups):
        members = sorted(groups[top], key=lambda d: d.mid)
        order = rng.permutation(len(members))
        queues.append([members[i] for i in order])
    picked: list[DemoClass] = []
    while len(picked) < n_classes and any(queues):
        for q in queues:
            if q and len(picked) < n_classes:
                picked.append(q.pop(0))
    return tuple(sorted(picked, key=lambda d: d.mid))


# ---------------------------------------------------------------------------------------
# segments


def _make_id(rng: np.random.Generator, used: set[str], kind: int) -> str:
    """A fresh valid YouTube ID; ``kind`` 1 = begins with '-', 2 = contains '_'."""
    while True:
        chars = [_ID_ALPHABET[i] for i in rng.integers(0, len(_ID_ALPHABET), 11)]
        if kind == 1:
            chars[0] = "-"
        elif kind == 2:
            chars[int(rng.integers(1, 10))] = "_"
        ytid = "".join(chars)
        if ytid not in used:
            used.add(ytid)
            return valid_youtube_id(ytid)


def _nearest_parent(mid: str) -> str | None:
    from audioset_fewshot.metadata import load_ontology

    onto = load_ontology()
    parents = [p for p in onto.parents(mid) if not onto.is_blacklisted(p)]
    return parents[0] if parents else None


def make_demo_segments(
    classes: tuple[DemoClass, ...],
    *,
    seed: int = 0,
    per_class: int = 15,
    unavailable_fraction: float = 0.15,
    multi_label_fraction: float = 0.06,
) -> tuple[DemoSegment, ...]:
    """The synthetic segments of the demo (see module docstring), sorted by YouTube ID."""
    used: set[str] = set()
    segments: list[DemoSegment] = []
    mids = [c.mid for c in classes]
    unavailable_i = 0
    qc_i = 0
    for ci, cls in enumerate(classes):
        rng = np.random.default_rng([DEMO_SEED_STREAM, seed, _SEG_STREAM, ci])
        parent = _nearest_parent(cls.mid)
        # which candidates of this class are dead, silent/corrupt (fixed counts, mixed positions)
        n_dead = int(round(per_class * unavailable_fraction + rng.uniform(-0.5, 0.5)))
        n_qc = 1 if ci % 6 == 0 else 0
        slots = rng.permutation(per_class)
        dead = set(slots[:n_dead].tolist())
        qc = set(slots[n_dead : n_dead + n_qc].tolist())
        for j in range(per_class):
            kind = 1 if rng.random() < 0.12 else 2 if rng.random() < 0.2 else 0
            ytid = _make_id(rng, used, kind)
            # short sources (generating media costs ~25-40 ms per second of audio and format)
            duration_s = float(rng.choice([10.5, 11.0, 11.5, 12.0]))
            start_s = float(rng.integers(0, int(round((duration_s - 10.0) * 2)) + 1)) / 2.0
            end_s = start_s + 10.0
            labels = {cls.mid}
            if parent is not None and rng.random() < 0.5:
                labels.add(parent)
            if len(mids) > 1 and rng.random() < multi_label_fraction:
                other = mids[(ci + 1 + int(rng.integers(0, len(mids) - 1))) % len(mids)]
                labels.add(other)
            fault: str | None = None
            if j in dead:
                fault = UNAVAILABLE_FAULTS[unavailable_i % len(UNAVAILABLE_FAULTS)]
                unavailable_i += 1
            elif j in qc:
                fault = QC_FAULTS[qc_i % len(QC_FAULTS)]
                qc_i += 1
            u = rng.random()
            source = "balanced" if u < 0.6 else "eval" if u < 0.88 else "unbalanced"
            segments.append(
                DemoSegment(
                    ytid=ytid,
                    start_s=start_s,
                    end_s=end_s,
                    labels=tuple(sorted(labels)),
                    source=source,
                    class_key=cls.mid,
                    duration_s=duration_s,
                    sample_rate_hz=int(rng.choice([44100, 48000])),
                    channels=2 if rng.random() < 0.3 else 1,  # mostly mono: half the encoding cost
                    license=CC_LICENSE if rng.random() < 0.3 else STANDARD_LICENSE,
                    fault=fault,
                )
            )
    return tuple(sorted(segments, key=lambda s: (s.ytid, s.start_s)))


def render_segment_list(segments: list[DemoSegment] | tuple[DemoSegment, ...]) -> str:
    """Text of one segment list in the official layout (header counts are exact)."""
    rows = sorted(segments, key=lambda s: (s.ytid, s.start_s))
    labels = [m for s in rows for m in s.labels]
    header = f"# num_ytids={len({s.ytid for s in rows})}, num_segs={len(rows)}, num_unique_labels={len(set(labels))}, num_positive_labels={len(labels)}"
    lines = [CREATED_LINE, header, COLUMNS_LINE]
    for s in rows:
        lines.append(f'{s.ytid}, {s.start_s:.3f}, {s.end_s:.3f}, "{",".join(s.labels)}"')
    return "\n".join(lines) + "\n"


def demo_catalog(segments: tuple[DemoSegment, ...]) -> dict[str, SourceSpec]:
    """``{ytid: SourceSpec}`` for the media server."""
    import hashlib

    from audioset_fewshot.demo.server import SourceSpec

    out: dict[str, SourceSpec] = {}
    for s in segments:
        channel = hashlib.sha256(s.class_key.encode("utf-8")).hexdigest()[:22]
        out[s.ytid] = SourceSpec(
            class_key=s.class_key,
            duration_s=s.duration_s,
            sample_rate_hz=s.sample_rate_hz,
            channels=s.channels,
            # titles carry HTML-special characters on purpose: every page that shows them must escape them
            title=f'Demo <{s.class_key}> clip {s.ytid} & "friends"',
            uploader=f"Demo channel {channel[:6]} <b>&amp;</b>",
            channel_id=f"UC{channel}",
            license=s.license,
            fault=s.fault,
        )
    return out


def build_demo_metadata(
    dest_dir: Path | str,
    *,
    seed: int = 0,
    n_classes: int = 30,
    per_class: int = 15,
    unavailable_fraction: float = 0.15,
    multi_label_fraction: float = 0.06,
) -> DemoMetadata:
    """Write the demo segment lists into ``dest_dir`` and return them with the media catalog."""
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    classes = pick_demo_classes(seed=seed, n_classes=n_classes)
    segments = make_demo_segments(classes, seed=seed, per_class=per_class, unavailable_fraction=unavailable_fraction, multi_label_fraction=multi_label_fraction)
    files: dict[str, Path] = {}
    for source, name in SEGMENT_FILES.items():
        path = dest / name
        write_text_if_changed(path, render_segment_list([s for s in segments if s.source == source]))
        files[source] = path
    catalog = demo_catalog(segments)
    log.info("demo metadata: %d classes, %d segments in %s", len(classes), len(segments), dest)
    return DemoMetadata(metadata_dir=dest, classes=classes, segments=segments, files=files, catalog=catalog, seed=seed)
