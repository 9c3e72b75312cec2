"""The pipeline's stages on a release: obtain the planned clips, then pack their embeddings.

``obtain_from_release(plan, root=, release=)`` is the download stage when
``features.kind`` is ``vggish-release``: nothing is fetched.  The release is
indexed (the lists the plan draws from), every class walks down its planned
candidates in rank order, exactly as a download does, and takes each one the
release holds until its target is met.  A candidate the release lacks is
recorded with its own reason:

- ``not-in-release``: no record of this (list, YouTube ID, start);
- ``corrupt-record``: its record fails the payload CRC (the file and record are
  named in ``obtained.json``; the rest of the file was read);
- ``release-damaged``: the file that would hold it is cut short or holds a record
  that does not decode, so the clip may be in the lost part.

The release's label numbers are mapped to MIDs through
``class_labels_indices.csv`` (checked against the ontology) and compared with
the segment list's labels: the segment list wins, disagreements are counted.

Artifacts: ``release/obtained.csv`` (one row per candidate looked at, sorted by
(owner_mid, rank); no paths, no times: the same for the folder and the tar.gz)
and ``release/obtained.json`` (parameters, the release's content hash, its
problems, the counts).  A rerun with the same plan, release and labels file is
a no-op.

``release_features(root, release=)`` is the features stage: the obtained clips'
embeddings packed into ``processed/features/<key>/`` (see :mod:`.store`), rows
in (owner_mid, ytid, start_s) order, keyed by the sha256 of ``obtained.csv``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audioset_fewshot._artifact import ArtifactKey, build_beside, read_current, read_json, read_records, render_table
from audioset_fewshot._io import (
    atomic_write_json,
    atomic_write_text,
    sha256_file,
    sha256_text,
)
from audioset_fewshot.engine import Engine
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.release.index import CORRUPT, ReleaseIndex, index_release
from audioset_fewshot.release.labels import (
    find_label_indices,
    mids_of,
    read_label_indices,
)
from audioset_fewshot.release.source import SPLIT_DIRS, Release, file_name, open_release
from audioset_fewshot.release.store import (
    KIND,
    EmbeddingRow,
    pack_records,
    render_index,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
ORIGIN = KIND
NOT_IN_RELEASE = "not-in-release"
CORRUPT_RECORD = "corrupt-record"
RELEASE_DAMAGED = "release-damaged"
REASONS = (NOT_IN_RELEASE, CORRUPT_RECORD, RELEASE_DAMAGED)
OBTAINED_COLUMNS: tuple[str, ...] = (
    "owner_mid",
    "rank",
    "ytid",
    "start_s",
    "end_s",
    "source",
    "labels",
    "status",
    "reason",
    "seconds",
    "file",
    "record",
    "offset",
    "release_labels",
)
MAX_PROBLEMS_LISTED = 200


@dataclass(frozen=True)
class ObtainedRow:
    """One planned candidate looked up in the release.  ``status`` is ``ok`` or ``failed``;
    ``release_labels`` are the release's own labels (MIDs) when they differ from ``labels``."""

    owner_mid: str
    rank: int
    ytid: str
    start_s: float
    end_s: float
    source: str
    labels: tuple[str, ...]
    status: str
    reason: str
    seconds: int
    file: str
    record: int
    offset: int
    release_labels: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ObtainReport:
    """What the obtain stage found (``obtained.json`` in record form)."""

    obtained: int
    target: int
    looked_up: int
    failures_by_reason: dict[str, int]
    label_disagreements: int
    content_sha256: str
    kind: str
    problems: tuple[str, ...] = ()
    damaged: dict[str, str] = field(default_factory=dict)
    ran: bool = field(default=True, compare=False)  # False: obtained.csv on disk was current

    def to_dict(self) -> dict[str, Any]:
        return {
            "obtained": self.obtained,
            "target": self.target,
            "looked_up": self.looked_up,
            "failures_by_reason": dict(self.failures_by_reason),
            "label_disagreements": self.label_disagreements,
            "content_sha256": self.content_sha256,
            "kind": self.kind,
        }


def release_identity(rel: Release, sources: Sequence[str]) -> str:
    """A cheap fingerprint of a release's files (names, sizes, mtimes): changes when a file does."""
    h = hashlib.sha256()
    if rel.kind == "tar.gz":
        st = rel.path.stat()
        h.update(f"{rel.path}|{st.st_size}|{st.st_mtime_ns}".encode())
        return h.hexdigest()
    assert rel.top is not None
    for s in sources:
        d = rel.top / SPLIT_DIRS[s]
        h.update(f"{d}\n".encode())
        if d.is_dir():
            with os.scandir(d) as it:
                for e in sorted(it, key=lambda e: e.name):
                    st = e.stat()
                    h.update(f"{e.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


FIX = "delete it and run 'audioset-fewshot run' again (the lookup is redone from the release)"


def render_obtained(rows: Sequence[ObtainedRow]) -> str:
    return render_table(
        OBTAINED_COLUMNS,
        (
            [
                r.owner_mid,
                r.rank,
                r.ytid,
                f"{r.start_s:.3f}",
                f"{r.end_s:.3f}",
                r.source,
                ";".join(r.labels),
                r.status,
                r.reason,
                r.seconds,
                r.file,
                r.record,
                r.offset,
                "" if r.release_labels is None else ";".join(r.release_labels),
            ]
            for r in sorted(rows, key=lambda r: (r.owner_mid, r.rank, r.ytid, r.start_s))
        ),
    )


def read_obtained(root: Path | str) -> list[ObtainedRow]:
    """The rows of ``release/obtained.csv``."""
    path = DatasetLayout(Path(root)).release_obtained_csv
    return read_records(
        path, ObtainedRow, missing="run the download stage with features.kind vggish-release first", fix="delete it and run 'audioset-fewshot run' again"
    )


def _missing_reason(idx: ReleaseIndex, source: str, ytid: str) -> str:
    name = file_name(source, ytid)
    if name in idx.damaged or name in idx.unreadable:
        return RELEASE_DAMAGED
    return NOT_IN_RELEASE


def obtain_from_release(
    plan: Any,
    *,
    root: Path | str,
    release: Path | str,
    workers: int = 2,
    labels_csv: Path | str | None = None,
    metadata_dir: Path | str | None = None,
    force: bool = False,
) -> ObtainReport:
    """Look the plan's clips up in the release (see the module docstring)."""
    layout = DatasetLayout(Path(root))
    rel = open_release(release)
    sources = tuple(s for s in SPLIT_DIRS if any(e.source == s for e in plan.entries))
    labels_path = Path(labels_csv) if labels_csv is not None else find_label_indices(metadata_dir, rel.top)
    labels_sha = sha256_file(labels_path)
    key = ArtifactKey(
        "obtain",
        SCHEMA_VERSION,
        {"sources": list(sources)},
        {"plan_hash": plan.content_hash, "release": release_identity(rel, sources), "labels_sha256": labels_sha},
    )
    csv_sha = sha256_file(layout.release_obtained_csv) if layout.release_obtained_csv.is_file() else None
    old = None if force else read_current(layout.release_obtained_json, key, fix=FIX, outputs=lambda m: m.get("outputs", {}).get("obtained_sha256") == csv_sha)
    if old is not None:
        c = old["counts"]
        log.info("%s is up to date", layout.release_obtained_json)
        return ObtainReport(
            obtained=int(c["obtained"]),
            target=int(c["target"]),
            looked_up=int(c["looked_up"]),
            failures_by_reason=dict(c["failures_by_reason"]),
            label_disagreements=int(old["labels"]["disagreements"]),
            content_sha256=str(old["release"]["content_sha256"]),
            kind=str(old["release"]["kind"]),
            problems=tuple(old["release"]["problems"]),
            damaged=dict(old["release"]["damaged"]),
            ran=False,
        )
    mids = read_label_indices(labels_path)
    idx = index_release(rel, sources=sources, workers=workers)
    entries = list(plan.entries)
    found = idx.find([e.source for e in entries], [e.ytid for e in entries], [round(e.start_s * 1000) for e in entries])
    row_of = {e.clip_id: int(r) for e, r in zip(entries, found, strict=True)}
    rows: list[ObtainedRow] = []
    failures: Counter[str] = Counter()
    disagreements = out_of_range = 0
    obtained = target = 0
    for mid, cands in plan.by_class().items():
        want = plan.target(mid)
        target += want
        got = 0
        for e in cands:
            if got >= want:
                break
            r = row_of[e.clip_id]
            if r < 0:
                reason = _missing_reason(idx, e.source, e.ytid)
                failures[reason] += 1
                rows.append(
                    ObtainedRow(e.owner_mid, e.rank, e.ytid, e.start_s, e.end_s, e.source, e.labels, "failed", reason, 0, file_name(e.source, e.ytid), -1, -1)
                )
                continue
            theirs = mids_of(idx.labels(r), mids)
            differs: tuple[str, ...] | None = None
            if theirs is None:
                out_of_range += 1
                disagreements += 1
                differs = ()
            elif theirs != tuple(sorted(e.labels)):
                disagreements += 1
                differs = theirs
            secs = int(idx.seconds[r])
            corrupt = int(idx.status[r]) == CORRUPT
            if corrupt:
                failures[CORRUPT_RECORD] += 1
            else:
                got += 1
            rows.append(
                ObtainedRow(
                    e.owner_mid,
                    e.rank,
                    e.ytid,
                    e.start_s,
                    e.end_s,
                    e.source,
                    e.labels,
                    "failed" if corrupt else "ok",
                    CORRUPT_RECORD if corrupt else "",
                    secs,
                    idx.file_name(r),
                    int(idx.number[r]),
                    int(idx.offset[r]),
                    differs,
                )
            )
        obtained += got
    if disagreements:
        log.warning(
            "release labels differ from the segment lists for %d clips (%d with numbers outside %s); the segment lists win",
            disagreements,
            out_of_range,
            labels_path.name,
        )
    text = render_obtained(rows)
    counts = {"obtained": obtained, "target": target, "looked_up": len(rows), "failures_by_reason": dict(sorted(failures.items()))}
    meta = key.meta(
        origin=ORIGIN,
        paths={"release": str(rel.path), "labels_csv": str(labels_path)},
        outputs={"obtained_sha256": sha256_text(text)},
        release={
            "kind": rel.kind,
            "content_sha256": idx.content_sha256,
            "files": len(idx.files),
            "records": len(idx),
            "by_list": idx.counts(),
            "duplicates": idx.duplicates,
            "problems": list(idx.problems[:MAX_PROBLEMS_LISTED]),
            "problems_total": len(idx.problems),
            "damaged": dict(idx.damaged),
        },
        labels={
            "file": labels_path.name,
            "disagreements": disagreements,
            "out_of_range": out_of_range,
            "rule": "the segment list's labels win; release_labels in obtained.csv keeps the release's own",
        },
        counts=counts,
    )
    atomic_write_text(layout.release_obtained_csv, text)
    atomic_write_json(layout.release_obtained_json, meta)
    log.info("release: %d of %d clips obtained (%s)", obtained, target, ", ".join(f"{k} {v}" for k, v in sorted(failures.items())) or "no failures")
    return ObtainReport(
        obtained=obtained,
        target=target,
        looked_up=len(rows),
        failures_by_reason=dict(sorted(failures.items())),
        label_disagreements=disagreements,
        content_sha256=idx.content_sha256,
        kind=rel.kind,
        problems=idx.problems,
        damaged=dict(idx.damaged),
    )


@dataclass(frozen=True)
class ReleaseFeatures:
    """The packed embeddings of a root: where, how many rows, and the key."""

    key: str
    path: Path
    rows: int
    seconds: int
    dim: int
    longer_than_10s: int = 0
    ran: bool = field(default=True, compare=False)  # False: the finished store on disk was current


def release_features(
    root: Path | str, *, release: Path | str, workers: int = 2, force: bool = False, make_current: bool = True, engine: Engine | None = None
) -> ReleaseFeatures:
    """Pack the obtained clips' embeddings into ``processed/features/<key>/`` (see the module docstring).

    The folder is built as ``.tmp-<key>`` and renamed into place (``meta.json``
    last), and ``processed/features/current.json`` then points at it (unless
    ``make_current`` is False: a second feature set beside a root's log-mels), so
    the log-mel readers (``process.load_features``) find these features.  ``engine``:
    where the release files are decoded (:func:`~audioset_fewshot.release.store.pack_records`)."""

    layout = DatasetLayout(Path(root))
    rows = [r for r in read_obtained(layout.root) if r.status == "ok"]
    obtained_sha = sha256_file(layout.release_obtained_csv)
    meta_in = read_json(layout.release_obtained_json) or {}
    content = str(meta_in.get("release", {}).get("content_sha256", ""))
    params = {"kind": KIND, "seconds": 10, "dim": 128, "dequantise": "q / 255 * 4 - 2; a missing second reads 0.0", "row_order": "owner_mid, ytid, start_s"}
    inputs = {"obtained_sha256": obtained_sha, "release_content_sha256": content}
    art = ArtifactKey("features", SCHEMA_VERSION, params, inputs)
    key = art.digest
    fdir = layout.features_dir
    folder = fdir / key
    current = fdir / "current.json"
    old = None if force else read_current(folder / "meta.json", art, fix=FIX)
    ran = old is None
    if old is None:
        ordered = sorted(rows, key=lambda r: (r.owner_mid, r.ytid, r.start_s))
        jobs: dict[str, tuple[list[int], list[int]]] = {}
        for i, r in enumerate(ordered):
            offs, outs = jobs.setdefault(r.file, ([], []))
            offs.append(r.offset)
            outs.append(i)
        with build_beside(folder) as tmp:
            res = pack_records(
                open_release(release),
                {k: (np.asarray(o, np.int64), np.asarray(w, np.int64)) for k, (o, w) in jobs.items()},
                len(ordered),
                tmp,
                workers=workers,
                engine=engine,
            )
            index = [
                EmbeddingRow(i, r.ytid, r.start_s, r.end_s, r.owner_mid, tuple(sorted(r.labels)), r.source, min(10, r.seconds)) for i, r in enumerate(ordered)
            ]
            atomic_write_text(tmp / "index.csv", render_index(index))
            for name in ("embeddings.u8", "mask.u8"):
                with open(tmp / name, "rb+") as fh:
                    os.fsync(fh.fileno())
            meta: dict[str, Any] = art.meta(
                kind=KIND,
                shape=[len(ordered), 10, 128],
                dtype="uint8",
                files={"embeddings": "embeddings.u8", "mask": "mask.u8", "index": "index.csv"},
                longer_than_10s=res["longer_than_10s"],
                sha256={name: sha256_file(tmp / name) for name in ("index.csv", "embeddings.u8", "mask.u8")},
            )
            atomic_write_json(tmp / "meta.json", meta)
        old = meta
        log.info("release features: %d x 10 x 128 in %s", len(ordered), folder)
    else:
        log.info("release features: %s is up to date", folder)
    if make_current and (read_json(current) or {}).get("key") != key:
        atomic_write_json(current, {"key": key})
    return ReleaseFeatures(key=key, path=folder, rows=int(old["shape"][0]), seconds=10, dim=128, longer_than_10s=int(old.get("longer_than_10s", 0)), ran=ran)


__all__ = [
    "CORRUPT_RECORD",
    "NOT_IN_RELEASE",
    "OBTAINED_COLUMNS",
    "ORIGIN",
    "REASONS",
    "RELEASE_DAMAGED",
    "ObtainReport",
    "ObtainedRow",
    "ReleaseFeatures",
    "obtain_from_release",
    "read_obtained",
    "release_features",
    "release_identity",
    "render_obtained",
]
