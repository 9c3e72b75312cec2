"""``origins check``: what an origin holds, before a download relies on it.

:func:`check_origin` opens one origin (layout named or detected), indexes it,
counts its clips per segment list and among the clips of a plan, lists the
names it could not parse and the members or files it rejected, and decodes a
few clips through the shared proof path (in memory, nothing written).  The
returned :class:`OriginCheck` says whether anything usable was found.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from audioset_fewshot.download.origins.base import OriginError, OriginSpec
from audioset_fewshot.download.origins.proof import ProofFailure, clip_samples
from audioset_fewshot.download.origins.registry import START_TOLERANCE_S, open_origin

if TYPE_CHECKING:
    from audioset_fewshot.plan import PlanEntry

SHOWN = 20


@dataclass(frozen=True)
class OriginCheck:
    """The verdict on one origin.  ``per_list``: clips found in each segment list (joined by
    list and ID, and by start where the name carries one); ``not_in_lists``: clips no
    given list holds; ``plan_held``/``plan_total``: planned clips it holds (None without a
    plan); ``decoded``: (clip, "ok ..." or the reason) for the sampled clips."""

    path: str
    layout: str | None
    clips: int
    per_list: Mapping[str, int]
    not_in_lists: int
    plan_held: int | None
    plan_total: int | None
    unparseable: tuple[str, ...]
    rejected: tuple[tuple[str, str], ...]
    decoded: tuple[tuple[str, str], ...]
    error: str | None = None

    @property
    def usable(self) -> bool:
        return self.error is None and self.clips > 0 and any(v.startswith("ok") for _, v in self.decoded)

    def lines(self) -> list[str]:
        if self.error is not None:
            return [f"origin {self.path}: not usable: {self.error}"]
        out = [f"origin {self.path}: layout {self.layout}, {self.clips} clips"]
        if self.per_list:
            lists = ", ".join(f"{k} {v}" for k, v in self.per_list.items())
            out.append(f"  segment lists: {lists}; in no list {self.not_in_lists}")
        if self.plan_total is not None:
            out.append(f"  current plan: holds {self.plan_held} of {self.plan_total} planned clips")
        out.append(f"  unparseable names: {len(self.unparseable)}")
        out += [f"    {n}" for n in self.unparseable[:SHOWN]]
        if len(self.unparseable) > SHOWN:
            out.append(f"    ... and {len(self.unparseable) - SHOWN} more")
        if self.rejected:
            out.append(f"  rejected: {len(self.rejected)}")
            out += [f"    {what}: {why}" for what, why in self.rejected[:SHOWN]]
        ok = sum(v.startswith("ok") for _, v in self.decoded)
        out.append(f"  decode check: {ok}/{len(self.decoded)} sampled clips pass the proof")
        out += [f"    {c}: {v}" for c, v in self.decoded if not v.startswith("ok")]
        if not self.usable:
            out.append("  nothing usable found")
        return out


def check_origin(
    spec: OriginSpec,
    *,
    segments: Mapping[str, Mapping[str, float]] | None = None,
    plan_entries: Sequence[PlanEntry] | None = None,
    sample: int = 3,
    sample_rate_hz: int = 16000,
    class_mids: Sequence[str] | None = None,
) -> OriginCheck:
    """Check one origin.  ``segments``: ``{list: {ytid: start_s}}`` of the segment lists to count
    against; ``plan_entries``: the planned clips (``ytid``, ``start_s``, ``source``)."""
    try:
        origin = open_origin(spec, class_mids=class_mids)
        clips = list(origin.clips())
    except OriginError as err:
        return OriginCheck(spec.path, spec.layout, 0, {}, 0, None, None, (), (), (), error=str(err))
    try:
        per_list: Counter[str] = Counter()
        nowhere = 0
        for c in clips:
            found = False
            for name, ids in (segments or {}).items():
                if c.source is not None and c.source != name:
                    continue
                start = ids.get(c.ytid)
                if start is not None and (c.start_s is None or abs(c.start_s - start) <= START_TOLERANCE_S):
                    per_list[name] += 1
                    found = True
            nowhere += not found
        plan_held = None
        if plan_entries is not None:
            by_id: dict[str, list[Any]] = {}
            for c in clips:
                by_id.setdefault(c.ytid, []).append(c)
            plan_held = 0
            for e in plan_entries:
                if any(
                    (c.source in (None, e.source)) and (c.start_s is None or abs(c.start_s - e.start_s) <= START_TOLERANCE_S) for c in by_id.get(e.ytid, ())
                ):
                    plan_held += 1
        decoded: list[tuple[str, str]] = []
        picks: list[int] = np.linspace(0, len(clips) - 1, num=min(sample, len(clips)), dtype=int).tolist() if clips else []
        for i in sorted(set(picks)):
            c = clips[i]
            try:
                audio = origin.read(c)
                got = clip_samples(audio, sample_rate_hz=sample_rate_hz, duration_s=10.0)
                decoded.append((c.ytid, f"ok ({audio.codec}, {got.source_sample_rate_hz} Hz, {got.source_channels} ch)"))
            except ProofFailure as fail:
                decoded.append((c.ytid, f"{fail.reason}: {fail.message}"))
            except (OriginError, OSError, ValueError, KeyError) as err:
                decoded.append((c.ytid, f"corrupt: {err}"))
        lists = {name: per_list[name] for name in (segments or {})}
        return OriginCheck(spec.path, origin.info.kind, len(clips), lists, nowhere if segments else 0, plan_held,
                           None if plan_entries is None else len(plan_entries), tuple(origin.report.unparseable),
                           tuple(origin.report.rejected), tuple(decoded))  # fmt: skip
    finally:
        origin.close()


def origin_paths(entries: Sequence[str | Mapping[str, Any]] | None) -> dict[str, str]:
    """The local origins of ``download.origins`` as another machine must open them: {the
    origin's name (its path when it has none): the path made absolute, or the URL}
    (``youtube`` is no path)."""
    from audioset_fewshot.download.origins.base import absolute, parse_origins

    out: dict[str, str] = {}
    for spec in parse_origins(entries)[0]:
        path = absolute(spec.path)
        out[spec.name or spec.repo or path] = path
    return out


def unreadable_origins(paths: Mapping[str, str]) -> list[str]:
    """Why this process cannot open each origin of ``paths`` (:func:`origin_paths`) that it
    cannot open: ``cluster doctor`` runs it on every Dask worker."""
    from audioset_fewshot.download.origins._fs import OriginFS

    out: list[str] = []
    for name, path in paths.items():
        try:
            OriginFS(path)
        except OriginError as err:
            out.append(str(err) if name == path else f"{name}: {err}")
    return out
