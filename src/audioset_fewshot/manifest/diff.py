"""``diff_manifests(a, b)``: compare two manifests (or two roots).

A clip is identified by (YouTube ID, start in ms).  Four groups, per class
(the clip's owner MID; A's owner when both have the clip) and in total:
``same`` (in both, same sha256), ``changed`` (in both, different content),
``only_a`` and ``only_b``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audioset_fewshot.layout import DatasetLayout, clip_stem
from audioset_fewshot.manifest.clips import ManifestRow, read_clips

GROUPS = ("same", "changed", "only_a", "only_b")


def manifest_path(path_or_root: Path | str) -> Path:
    """A clips.csv file as given, or a root's ``manifest/clips.csv``."""
    p = Path(path_or_root)
    return DatasetLayout(p).clips_csv if p.is_dir() else p


@dataclass(frozen=True)
class ManifestDiff:
    """Clip ids (``<ytid>_<start_ms>``) in each group, sorted, per class and in total."""

    a: Path
    b: Path
    same: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    only_a: tuple[str, ...] = ()
    only_b: tuple[str, ...] = ()
    per_class: dict[str, dict[str, int]] = field(default_factory=dict)
    # clips in both whose origin differs ({clip_id: (A's origin, B's origin)}): from a mirror in
    # one, from YouTube in the other (download.origins); their bytes may still be the same
    origin_changed: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def identical(self) -> bool:
        return not (self.changed or self.only_a or self.only_b)

    def totals(self) -> dict[str, int]:
        return {g: len(getattr(self, g)) for g in GROUPS}

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": str(self.a),
            "b": str(self.b),
            "identical": self.identical,
            "totals": self.totals(),
            "per_class": {m: dict(v) for m, v in sorted(self.per_class.items())},
            **{g: list(getattr(self, g)) for g in GROUPS},
            "origin_changed": {cid: list(v) for cid, v in sorted(self.origin_changed.items())},
        }


def diff_rows(a_rows: list[ManifestRow], b_rows: list[ManifestRow], *, a: Path = Path("A"), b: Path = Path("B")) -> ManifestDiff:
    """Compare two lists of manifest rows (see :func:`diff_manifests`)."""
    a_map = {clip_stem(r.ytid, r.start_s): r for r in a_rows}
    b_map = {clip_stem(r.ytid, r.start_s): r for r in b_rows}
    groups: dict[str, list[str]] = {g: [] for g in GROUPS}
    origin_changed: dict[str, tuple[str, str]] = {}
    per_class: dict[str, dict[str, int]] = {}

    def count(mid: str, group: str, cid: str) -> None:
        groups[group].append(cid)
        per_class.setdefault(mid, {g: 0 for g in GROUPS})[group] += 1

    for cid in sorted(set(a_map) | set(b_map)):
        ra, rb = a_map.get(cid), b_map.get(cid)
        if ra is not None and rb is not None:
            count(ra.owner_mid, "same" if ra.sha256 == rb.sha256 else "changed", cid)
            if ra.origin != rb.origin:
                origin_changed[cid] = (ra.origin, rb.origin)
        elif ra is not None:
            count(ra.owner_mid, "only_a", cid)
        elif rb is not None:
            count(rb.owner_mid, "only_b", cid)
    return ManifestDiff(a=a, b=b, per_class=per_class, origin_changed=origin_changed, **{g: tuple(v) for g, v in groups.items()})


def diff_manifests(a: Path | str, b: Path | str) -> ManifestDiff:
    """Compare manifests ``a`` and ``b`` (each a clips.csv or a dataset root).

    Both are untrusted: a malformed row raises ``ManifestError`` naming file
    and line.  Only the manifests are read, never the audio.
    """
    pa, pb = manifest_path(a), manifest_path(b)
    return diff_rows(read_clips(pa), read_clips(pb), a=pa, b=pb)
