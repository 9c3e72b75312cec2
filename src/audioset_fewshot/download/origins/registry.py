"""Open origins, detect their layout, and find a planned clip in them.

:func:`open_origin` turns an :class:`OriginSpec` into a reader of its layout
(named with ``layout:`` or detected from the files); :class:`OriginSet` is the
ordered list ``download.origins`` as the download runner uses it: for a
planned clip the first local origin that holds it wins (an origin that lacks
it is not a failure), a clip that fails the proof moves on to the next origin,
and what no local origin holds goes to YouTube when ``youtube`` is listed,
else it is recorded as ``in-no-origin``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audioset_fewshot.download import reasons as R
from audioset_fewshot.download.origins._fs import OriginFS
from audioset_fewshot.download.origins.base import YOUTUBE, IndexedOrigin, Origin, OriginClip, OriginError, OriginInfo, OriginSpec, absolute, parse_origins

if TYPE_CHECKING:
    from audioset_fewshot.download.fetch import ClipResult
    from audioset_fewshot.plan import PlanEntry

log = logging.getLogger(__name__)

START_TOLERANCE_S = 0.0015  # names carry milliseconds (or 3 decimals)


def packaged_class_mids() -> tuple[str, ...]:
    """The 527 MIDs in the order of ``class_labels_indices.csv`` (shipped in the package):
    the order of PANN's ``target`` columns and of WebDataset ``label_id`` numbers."""
    import csv
    import io
    from importlib import resources

    text = resources.files("audioset_fewshot.metadata").joinpath("data/class_labels_indices.csv").read_text(encoding="utf-8")
    return tuple(row["mid"] for row in csv.DictReader(io.StringIO(text)))


def detect_layout(fs: OriginFS) -> str:
    """The layout of the files under an origin: parquet -> hf-parquet, tar -> webdataset,
    HDF5 -> pann-hdf5, audio files -> directory."""
    from audioset_fewshot.download.origins.directory import AUDIO_EXTS

    exts = Counter(rel.rsplit(".", 1)[-1].lower() for rel in fs.files() if "." in rel.rsplit("/", 1)[-1])
    if exts["parquet"]:
        return "hf-parquet"
    if exts["tar"]:
        return "webdataset"
    if exts["h5"] or exts["hdf5"] or exts["hdf"]:
        return "pann-hdf5"
    if any(exts[e] for e in AUDIO_EXTS):
        return "directory"
    found = ", ".join(f".{e} x{n}" for e, n in exts.most_common(5)) or "no files"
    raise OriginError(
        f"origin {fs.url!r}: no known layout (found {found}); expected parquet files (hf-parquet), tar shards (webdataset),"
        " HDF5 packs (pann-hdf5) or audio files named after their YouTube ID (directory)"
    )


def open_origin(spec: OriginSpec, *, name: str | None = None, class_mids: Sequence[str] | None = None) -> Origin:
    """A reader of ``spec`` (:class:`OriginError` when it is missing, unreadable or of no known layout)."""
    from audioset_fewshot.download.origins.directory import DirectoryOrigin
    from audioset_fewshot.download.origins.hf_parquet import HfParquetOrigin
    from audioset_fewshot.download.origins.pann_hdf5 import PannHdf5Origin
    from audioset_fewshot.download.origins.webdataset import WebDatasetOrigin

    if class_mids is None:
        class_mids = packaged_class_mids()
    fs = OriginFS(spec.path)
    layout = spec.layout or detect_layout(fs)
    info = OriginInfo(name=name or spec.name or spec.repo or layout, kind=layout, revision=spec.revision, repo=spec.repo)
    readers: dict[str, type[IndexedOrigin]] = {"hf-parquet": HfParquetOrigin, "webdataset": WebDatasetOrigin, "pann-hdf5": PannHdf5Origin}
    return readers.get(layout, DirectoryOrigin)(fs, info, class_mids=class_mids)


def origin_labels(origin: Origin, clip: OriginClip) -> tuple[str, ...] | None:
    """The labels the origin records for ``clip`` (None when it records none we can read)."""
    if clip.labels is not None:
        return clip.labels
    reader = getattr(origin, "labels", None)
    if reader is None:
        return None
    try:
        value: tuple[str, ...] | None = reader(clip)
    except (OriginError, OSError, ValueError, KeyError):
        return None
    return value


def _names(specs: Sequence[OriginSpec]) -> list[str]:
    """The name of each origin in the ledger and manifest (never a local path): the user's
    ``name``, else the mirror's repository, else the layout kind; repeats get ``-2``, ``-3``."""
    out: list[str] = []
    seen: Counter[str] = Counter()
    for spec in specs:
        base = spec.name or spec.repo or spec.layout or "origin"
        seen[base] += 1
        out.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return out


class OriginSet:
    """``download.origins`` for one run (thread-safe; local origins open on first use)."""

    def __init__(self, entries: Sequence[str | Mapping[str, Any]] | None, *, class_mids: Sequence[str] | None = None) -> None:
        self.specs, self.youtube = parse_origins(entries)
        self.class_mids = class_mids
        self._lock = threading.Lock()
        self._origins: list[Origin] | None = None
        self._index: dict[str, list[tuple[int, OriginClip]]] = {}
        self.names = _names(self.specs)
        self.obtained: Counter[str] = Counter()

    @property
    def has_local(self) -> bool:
        return bool(self.specs)

    def check_paths(self) -> None:
        """Every local origin exists and is readable (:class:`OriginError` naming the first that
        is not): checked before a run touches the root, without indexing anything."""
        for spec in self.specs:
            OriginFS(spec.path)

    @property
    def opened(self) -> bool:
        return self._origins is not None

    def fingerprint(self) -> str:
        """Changes when the list changes (paths, layouts, names, revisions, youtube or not)."""
        body = [[s.path, s.layout, s.name, s.revision] for s in self.specs] + [["youtube", self.youtube]]
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    def open(self) -> list[Origin]:
        """Open and index every local origin (once)."""
        with self._lock:
            if self._origins is None:
                import dataclasses

                origins = [open_origin(spec, class_mids=self.class_mids) for spec in self.specs]
                # names once the layouts are known: the user's name, the repository, or the kind
                self.names = _names([dataclasses.replace(s, layout=o.info.kind) for s, o in zip(self.specs, origins, strict=True)])
                index: dict[str, list[tuple[int, OriginClip]]] = {}
                for i, (origin, name) in enumerate(zip(origins, self.names, strict=True)):
                    origin.info = dataclasses.replace(origin.info, name=name)
                    clips = origin.clips()
                    if not clips:
                        log.warning("origin %s (%s) holds no clips it can name: %d unparseable, %d rejected", name, origin.info.kind,
                                    len(origin.report.unparseable), len(origin.report.rejected))  # fmt: skip
                    for clip in clips:
                        index.setdefault(clip.ytid, []).append((i, clip))
                self._index = index
                self._origins = origins
            return self._origins

    def infos(self) -> list[OriginInfo]:
        if self._origins is not None:
            return [o.info for o in self._origins]
        return [OriginInfo(name=n, kind=s.layout or "unknown", revision=s.revision, repo=s.repo) for s, n in zip(self.specs, self.names, strict=True)]

    def located(self, entry: PlanEntry) -> list[tuple[int, OriginClip]]:
        """Where a planned entry (``ytid``, ``start_s``, ``source``) is held: (position of the
        origin in :meth:`resolved`, the clip), in list order."""
        self.open()
        out = [
            (i, clip)
            for i, clip in self._index.get(entry.ytid, ())
            if (clip.source is None or clip.source == entry.source) and (clip.start_s is None or abs(clip.start_s - float(entry.start_s)) <= START_TOLERANCE_S)
        ]
        out.sort(key=lambda ic: ic[0])
        return out

    def holders(self, entry: PlanEntry) -> list[tuple[Origin, OriginClip]]:
        """The origins holding a planned entry, in list order."""
        origins = self.open()
        return [(origins[i], clip) for i, clip in self.located(entry)]

    def resolved(self) -> tuple[OriginSpec, ...]:
        """The local origins as opened here: each with its layout and name set and a local
        path made absolute, so that another process (a Dask worker) opens the same reader
        (:func:`open_origin`) without detecting or indexing anything."""
        import dataclasses

        origins = self.open()
        return tuple(
            dataclasses.replace(spec, layout=o.info.kind, name=o.info.name, path=absolute(spec.path)) for spec, o in zip(self.specs, origins, strict=True)
        )

    def held_counts(self, entries: Sequence[PlanEntry]) -> dict[str, int]:
        """Per origin, how many of ``entries`` it holds."""
        counts: Counter[str] = Counter()
        for e in entries:
            for name in {o.info.name for o, _ in self.holders(e)}:
                counts[name] += 1
        return {n: counts[n] for n in self.names}

    def take(self, entry: PlanEntry, *, dest: Path, sample_rate_hz: int, audio_format: str) -> tuple[ClipResult | None, list[ClipResult]]:
        """Read ``entry`` from the first origin that holds it and passes the proof
        (:func:`take_from`)."""
        return take_from(self.holders(entry), entry, dest=dest, sample_rate_hz=sample_rate_hz, audio_format=audio_format)

    def nowhere(self, entry: PlanEntry, failures: Sequence[ClipResult]) -> ClipResult:
        """The final result of a clip no local origin could give while youtube is not listed."""
        from audioset_fewshot.download.fetch import ClipResult

        if failures:
            last = failures[-1]
            return _replace(last, message="; ".join(f.message for f in failures))
        names = ", ".join(self.names) or "none"
        return ClipResult(ok=False, ytid=entry.ytid, start_s=entry.start_s, end_s=entry.end_s, reason=R.IN_NO_ORIGIN, permanent=True,
                          message=f"held by no origin ({names}); add 'youtube' to download.origins to fetch it", origin="")  # fmt: skip

    def close(self) -> None:
        for o in self._origins or ():
            o.close()

    def ledger_meta(self, entries: Sequence[PlanEntry] | None) -> str:
        """JSON for the ledger's ``origins`` meta: each origin's name, kind, revision, repo and
        (when opened) how many planned clips it holds; then youtube when listed."""
        held = self.held_counts(entries) if (entries is not None and self.opened) else {}
        rows: list[dict[str, Any]] = []
        for info in self.infos():
            rows.append({**info.to_dict(), **({"held": held[info.name]} if info.name in held else {})})
        if self.youtube:
            rows.append({"name": YOUTUBE, "kind": YOUTUBE, "revision": None, "repo": None})
        return json.dumps(rows, sort_keys=True)


def take_from(holders: Sequence[tuple[Origin, OriginClip]], entry: PlanEntry, *, dest: Path, sample_rate_hz: int,
              audio_format: str) -> tuple[ClipResult | None, list[ClipResult]]:  # fmt: skip
    """Read ``entry`` from the first of ``holders`` that passes the proof, written to ``dest``.
    Returns (the ok result or None, the failed attempts of earlier origins)."""
    from audioset_fewshot.download.fetch import ClipResult
    from audioset_fewshot.download.origins.proof import prove_origin_clip

    failures: list[ClipResult] = []
    for origin, clip in holders:
        try:
            audio = origin.read(clip)
        except (OriginError, OSError, ValueError, KeyError) as err:
            failures.append(ClipResult(ok=False, ytid=entry.ytid, start_s=entry.start_s, end_s=entry.end_s, reason=R.CORRUPT, permanent=True,
                                       message=f"origin {origin.info.name}: cannot read the clip: {err}", origin=origin.info.name,
                                       origin_revision=origin.info.revision))  # fmt: skip
            continue
        res = prove_origin_clip(audio, info=origin.info, ytid=entry.ytid, start_s=entry.start_s, end_s=entry.end_s, dest=dest,
                                sample_rate_hz=sample_rate_hz, audio_format=audio_format)  # fmt: skip
        if not res.ok:
            failures.append(res)
            continue
        theirs = origin_labels(origin, clip)
        ours = tuple(sorted(entry.labels))
        if theirs is not None and tuple(sorted(theirs)) != ours:
            log.info(
                "%s: origin %s labels %s, the segment list %s (the list's labels are kept)",
                entry.clip_id,
                origin.info.name,
                ";".join(theirs),
                ";".join(ours),
            )
            res = _replace(res, origin_labels=";".join(sorted(theirs)))
        return res, failures
    return None, failures


def _replace(res: ClipResult, **changes: Any) -> ClipResult:
    import dataclasses

    return dataclasses.replace(res, **changes)
