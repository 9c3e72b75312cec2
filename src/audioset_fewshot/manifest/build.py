"""``build_manifest(root)``: the dataset as a recipe, written from the ledger and the files.

Files under ``ROOT/manifest/`` (all sorted, ``\\n`` line ends):

* ``clips.csv`` -- one row per obtained clip (schema in :mod:`.clips`); no
  timestamps, so the same set of clips gives the same bytes.
* ``by_class/<mid_slug>.csv`` -- one file per planned class with the seed
  project's per-class columns ``YID, MID, CLASS NAME, FILE NAME, OG FILE, SR``:
  ``YID`` the YouTube ID, ``MID`` the owner class, ``CLASS NAME`` its ontology
  name, ``FILE NAME`` the clip's path relative to the root
  (``audio/<mid_slug>/<ytid>_<start_ms>.flac``), ``OG FILE`` the YouTube URL
  of the segment (``https://www.youtube.com/watch?v=<ytid>&t=<start>s``; the
  exact times are in clips.csv) and ``SR`` the sample rate of our file in Hz.
* ``unavailable.csv`` -- every planned clip that failed
  (``ytid,start_s,end_s,owner_mid,source,status,reason``), so that others can
  skip dead IDs.  Clips never tried (a class reached its target first) are
  not listed.
* ``lock.json`` -- schema version, plan hash and parameters (seed, classes,
  sources, ...), the selection rule the plan recorded (``selection.config``:
  min_quality, all_levels, include, exclude; names resolved to MIDs), sha256
  of every metadata file the plan used (segment lists, ontology, QA counts), tool versions
  (yt-dlp, ffmpeg, the package), the sha256 of clips.csv, unavailable.csv and
  the per-class files, and ``content_hash`` over all of that.  No timestamps.
* ``provenance.csv`` -- when and how each clip was obtained (timestamps,
  attempts, trim offsets, fallback): the one non-deterministic file.

A class keeps at most its target: when a root holds more ``ok`` clips of a
class than the plan asks for (a merge of shards), the lowest ranks are kept,
which is the set one unsharded run would have.  A rerun with an unchanged
ledger rewrites nothing.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audioset_fewshot import __version__
from audioset_fewshot._artifact import render_table
from audioset_fewshot._io import canonical_json, json_fields, sha256_file, sha256_text, write_text_if_changed
from audioset_fewshot.errors import ManifestError, ValidationError
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.manifest._ledger import (
    STATUS_FAILED_PERMANENT,
    STATUS_FAILED_TRANSIENT,
    STATUS_OK,
    LedgerClip,
    read_ledger,
    read_ledger_meta,
)
from audioset_fewshot.manifest.clips import ManifestRow, PathGuard, clean_text, render_clips
from audioset_fewshot.validate import mid_slug

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
BY_CLASS_COLUMNS: tuple[str, ...] = ("YID", "MID", "CLASS NAME", "FILE NAME", "OG FILE", "SR")
UNAVAILABLE_COLUMNS: tuple[str, ...] = ("ytid", "start_s", "end_s", "owner_mid", "source", "status", "reason")
PROVENANCE_COLUMNS: tuple[str, ...] = (
    "ytid", "start_s", "owner_mid", "obtained_at", "attempts", "trim_start_s", "trim_end_s",
    "padded_samples", "fallback", "upload_date",
)  # fmt: skip
YOUTUBE_WATCH = "https://www.youtube.com/watch?v="


@dataclass(frozen=True)
class ManifestRecord:
    """What :func:`build_manifest` wrote (or found up to date).

    ``written``: manifest files rewritten by this call, relative to the root
    (empty on a no-op rerun; not part of equality).  ``missing_files``: clips
    the ledger calls ok whose file is gone (``verify`` reports them too).
    ``surplus``: clip ids left out because their class already had its target.
    """

    root: Path
    schema_version: int
    plan_hash: str
    clips: int
    classes: int
    unavailable: int
    clips_sha256: str
    content_hash: str
    missing_files: tuple[str, ...] = ()
    surplus: tuple[str, ...] = ()
    written: tuple[str, ...] = field(default=(), compare=False)

    def to_dict(self) -> dict[str, Any]:
        return json_fields(self)


# ---------------------------------------------------------------------------------------
# helpers


def _fmt_time(t: float) -> str:
    return f"{t:.3f}"


def segment_url(ytid: str, start_s: float) -> str:
    """The public YouTube URL of a segment (whole seconds, as YouTube's ``t=`` wants)."""
    return f"{YOUTUBE_WATCH}{ytid}&t={int(math.floor(start_s))}s"


_csv_text = render_table  # the one CSV writer of every artifact


def _class_names(mids: Sequence[str]) -> dict[str, str]:
    """Ontology names of ``mids`` (the MID itself for a class the ontology lacks)."""
    from audioset_fewshot.metadata.ontology import load_ontology

    onto = load_ontology()
    return {m: (onto.name(m) if m in onto else m) for m in mids}


def manifest_row(clip: LedgerClip, *, where: str = "ledger") -> ManifestRow:
    """The manifest row of an ``ok`` ledger row (fields checked, free text cleaned)."""
    if clip.path is None or clip.sha256 is None or clip.samples is None or clip.sample_rate_hz is None:
        raise ManifestError(f"{where}: clip {clip.clip_id} is 'ok' but lacks path/sha256/samples/sample rate; rerun the download to redo it")
    return ManifestRow(
        owner_mid=clip.owner_mid,
        ytid=clip.ytid,
        start_s=round(clip.start_s, 3),
        end_s=round(clip.end_s, 3),
        labels=tuple(sorted(clip.labels)),
        source=clip.source,
        path=clip.path,
        sample_rate_hz=int(clip.sample_rate_hz),
        samples=int(clip.samples),
        sha256=clip.sha256,
        itag=clean_text(clip.itag),
        codec=clean_text(clip.codec),
        license=clean_text(clip.license),
        channel_id=clean_text(clip.channel_id),
        origin=clean_text(clip.origin) or "youtube",
        origin_revision=clean_text(clip.origin_revision),
        source_sample_rate_hz="" if clip.source_sample_rate_hz is None else str(int(clip.source_sample_rate_hz)),
    )


def select_ok(clips: Sequence[LedgerClip], targets: Mapping[str, int] | None) -> tuple[list[LedgerClip], list[LedgerClip]]:
    """Split the ok rows into (kept, surplus): per owner class, the lowest ranks up to its target."""
    by_owner: dict[str, list[LedgerClip]] = {}
    for c in clips:
        if c.status == STATUS_OK:
            by_owner.setdefault(c.owner_mid, []).append(c)
    kept: list[LedgerClip] = []
    surplus: list[LedgerClip] = []
    for mid in sorted(by_owner):
        rows = sorted(by_owner[mid], key=lambda c: (c.rank, c.clip_id))
        limit = len(rows) if targets is None or mid not in targets else int(targets[mid])
        kept += rows[:limit]
        surplus += rows[limit:]
    return kept, surplus


def _tool_versions(kept: Sequence[LedgerClip], ledger_meta: Mapping[str, str]) -> dict[str, Any]:
    seen: dict[str, set[str]] = {}
    for c in kept:
        for tool, version in (c.tool_versions or {}).items():
            seen.setdefault(str(tool), set()).add(str(version))
    if not seen and ledger_meta.get("tool_versions"):
        try:
            data = json.loads(ledger_meta["tool_versions"])
            if isinstance(data, dict):
                seen = {str(k): {str(v)} for k, v in data.items()}
        except ValueError:
            pass
    out: dict[str, Any] = {t: (sorted(v)[0] if len(v) == 1 else sorted(v)) for t, v in sorted(seen.items())}
    out["audioset-fewshot"] = __version__
    return out


def _origins_lock(ledger_meta: Mapping[str, str], rows: Sequence[ManifestRow]) -> list[dict[str, Any]] | None:
    """lock.json's ``origins``: each origin of ``download.origins`` (name, kind, revision,
    repository; never a local path), how many planned clips it held when the run opened it
    (``held``) and how many manifest clips came from it (``clips``).  None for a root that
    only ever used YouTube (its lock stays as it was)."""
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.origin] = counts.get(r.origin, 0) + 1
    listed: list[dict[str, Any]] = []
    try:
        data = json.loads(ledger_meta.get("origins") or "[]")
    except ValueError:
        data = []
    if isinstance(data, list):
        listed = [dict(d) for d in data if isinstance(d, dict) and isinstance(d.get("name"), str)]
    if set(counts) <= {"youtube"} and all(d.get("kind") == "youtube" for d in listed):
        return None
    names = {d["name"] for d in listed}
    for name in sorted(set(counts) - names):  # clips from an origin no longer listed
        listed.append({"name": name, "kind": "youtube" if name == "youtube" else "unknown", "revision": None, "repo": None})
    out = []
    for d in listed:
        entry = {k: d.get(k) for k in ("name", "kind", "revision", "repo")}
        if "held" in d:
            entry["held"] = int(d["held"])
        entry["clips"] = counts.get(d["name"], 0)
        out.append(entry)
    return out


@dataclass(frozen=True)
class _PlanSummary:
    """What the manifest needs of the plan, read from plan.json (no parse of plan.csv)."""

    content_hash: str
    params: dict[str, Any]
    inputs: dict[str, str]
    targets: dict[str, int] | None

    @property
    def classes(self) -> tuple[str, ...]:
        mids = set(self.targets or {}) | {str(m) for m in self.params.get("classes", ()) or ()}
        return tuple(sorted(mids))


def _read_plan_summary(layout: DatasetLayout) -> _PlanSummary:
    """plan.json, checked against plan.csv's sha256 (a full parse costs seconds on big plans)."""
    from audioset_fewshot.plan import read_plan_meta

    try:
        meta = read_plan_meta(layout)
    except ValidationError as err:
        raise ManifestError(str(err)) from err
    if meta.get("csv_sha256") != sha256_file(layout.plan_file):
        raise ManifestError(f"{layout.plan_dir}: plan.csv does not match plan.json (edited by hand?); rerun 'audioset-fewshot plan'")
    targets = meta.get("targets")
    return _PlanSummary(
        content_hash=str(meta.get("content_hash", "")),
        params=dict(meta.get("params") or {}),
        inputs={str(k): str(v) for k, v in (meta.get("inputs") or {}).items()},
        targets=None if targets is None else {str(k): int(v) for k, v in targets.items()},
    )


def _write_if_changed(path: Path, text: str, layout: DatasetLayout, written: list[str]) -> None:
    if write_text_if_changed(path, text):
        written.append(path.relative_to(layout.root).as_posix())


# ---------------------------------------------------------------------------------------
# the stage


def render_manifest(root: Path | str) -> tuple[dict[Path, str], set[Path], ManifestRecord]:
    """Compute every manifest file of ``root`` without writing: ``({path: text},
    {per-class paths}, record)``.  :func:`build_manifest` writes them."""
    layout = DatasetLayout(Path(root))
    plan = _read_plan_summary(layout)
    clips = read_ledger(layout.ledger_file)
    meta = read_ledger_meta(layout.ledger_file)
    ledger_plan = meta.get("plan_hash")
    if ledger_plan and ledger_plan != plan.content_hash:
        raise ManifestError(
            f"{layout.ledger_file} records plan {ledger_plan[:12]}..., but {layout.plan_meta_file} holds plan {plan.content_hash[:12]}...; "
            f"rerun 'audioset-fewshot download --root {layout.root}' to bring the ledger up to date"
        )

    kept, surplus = select_ok(clips, plan.targets)
    rows: list[ManifestRow] = []
    missing: list[str] = []
    guard = PathGuard(layout.root)
    where = str(layout.ledger_file)
    for c in kept:
        row = manifest_row(c, where=where)
        try:
            _, is_file = guard.check_file(row.path)
        except ValidationError as err:
            raise ManifestError(f"{where}: clip {c.clip_id}: {err}") from err
        if not is_file:
            missing.append(row.path)
        rows.append(row)
    clips_text = render_clips(rows)

    # per-class files, one per planned class
    classes = sorted(set(plan.classes) | {r.owner_mid for r in rows})
    names = _class_names(classes)
    per_class: dict[str, list[list[str]]] = {m: [] for m in classes}
    for r in sorted(rows, key=lambda r: (r.owner_mid, r.ytid, r.start_s)):
        per_class[r.owner_mid].append([r.ytid, r.owner_mid, names[r.owner_mid], r.path, segment_url(r.ytid, r.start_s), str(r.sample_rate_hz)])
    texts: dict[Path, str] = {layout.clips_csv: clips_text}
    by_class_paths: set[Path] = set()
    by_class_hashes: dict[str, str] = {}
    for mid in classes:
        p = layout.by_class_dir / f"{mid_slug(mid)}.csv"
        text = _csv_text(BY_CLASS_COLUMNS, per_class[mid])
        texts[p] = text
        by_class_paths.add(p)
        by_class_hashes[mid] = sha256_text(text)

    failed = [c for c in clips if c.status in (STATUS_FAILED_PERMANENT, STATUS_FAILED_TRANSIENT)]
    failed.sort(key=lambda c: (c.owner_mid, c.ytid, c.start_s))
    unavailable_text = _csv_text(
        UNAVAILABLE_COLUMNS,
        [[c.ytid, _fmt_time(c.start_s), _fmt_time(c.end_s), c.owner_mid, c.source, c.status, clean_text(c.reason)] for c in failed],
    )
    texts[layout.unavailable_csv] = unavailable_text

    provenance_text = _csv_text(
        PROVENANCE_COLUMNS,
        [
            [
                c.ytid, _fmt_time(c.start_s), c.owner_mid, clean_text(c.obtained_at), str(c.attempts),
                "" if c.trim_start_s is None else f"{c.trim_start_s:.6f}",
                "" if c.trim_end_s is None else f"{c.trim_end_s:.6f}",
                "" if c.padded_samples is None else str(c.padded_samples),
                "" if c.fallback is None else str(int(c.fallback)),
                clean_text(c.upload_date),
            ]
            for c in sorted(kept, key=lambda c: (c.owner_mid, c.ytid, c.start_s))
        ],
    )  # fmt: skip
    texts[layout.provenance_csv] = provenance_text

    clips_sha = sha256_text(clips_text)
    params = plan.params
    body = {
        "schema_version": SCHEMA_VERSION,
        "plan": {
            "content_hash": plan.content_hash,
            "params": params,
            "targets": None if plan.targets is None else dict(plan.targets),
        },
        "seed": params.get("seed"),
        # the rule that produced the plan (and so the clips), as the plan recorded it
        "selection": {"classes": list(params.get("classes", classes))} | ({"config": dict(params["selection"])} if params.get("selection") else {}),
        "metadata_sha256": dict(plan.inputs),
        "tool_versions": _tool_versions(kept, meta),
        "clips": {"count": len(rows), "sha256": clips_sha},
        "unavailable": {"count": len(failed), "sha256": sha256_text(unavailable_text)},
        "by_class_sha256": by_class_hashes,
    }
    origins = _origins_lock(meta, rows)
    if origins is not None:
        body["origins"] = origins
    content_hash = sha256_text(canonical_json(body))
    texts[layout.lock_json] = canonical_json({**body, "content_hash": content_hash})

    record = ManifestRecord(
        root=layout.root,
        schema_version=SCHEMA_VERSION,
        plan_hash=plan.content_hash,
        clips=len(rows),
        classes=len(classes),
        unavailable=len(failed),
        clips_sha256=clips_sha,
        content_hash=content_hash,
        missing_files=tuple(sorted(missing)),
        surplus=tuple(c.clip_id for c in surplus),
    )
    return texts, by_class_paths, record


def build_manifest(root: Path | str) -> ManifestRecord:
    """Write ``ROOT/manifest/`` from the ledger and the plan; return what it holds.

    Idempotent: files whose content is unchanged are not rewritten, so a rerun
    with an unchanged ledger writes nothing (``record.written == ()``).
    Raises ``StageNotReadyError`` without a plan or ledger, ``ManifestError``
    when the ledger belongs to another plan.
    """
    layout = DatasetLayout(Path(root))
    texts, by_class_paths, record = render_manifest(layout.root)
    written: list[str] = []
    # clips.csv last but one and lock.json last: a reader that sees the lock sees its files
    rank = {layout.clips_csv: 1, layout.lock_json: 2}
    order = sorted(texts, key=lambda p: (rank.get(p, 0), str(p)))
    for path in order:
        _write_if_changed(path, texts[path], layout, written)
    if layout.by_class_dir.is_dir():
        for stale in sorted(layout.by_class_dir.glob("*.csv")):
            if stale not in by_class_paths and not stale.is_symlink():
                stale.unlink()
                written.append(stale.relative_to(layout.root).as_posix())
    if record.missing_files:
        log.warning(
            "%d clip(s) marked ok in the ledger have no file (first: %s); run 'audioset-fewshot verify'", len(record.missing_files), record.missing_files[0]
        )
    return dataclasses.replace(record, written=tuple(written))
