"""``merge_roots(roots, into=...)``: several shards (or machines) become one root.

The roots must hold plans made with the same parameters (seed, classes,
sources, ...; only the shard may differ) from the same metadata.  The merged
root gets:

* the union of the plans, without the shard (the plan one unsharded run would
  have made: ranks are computed before sharding);
* one ledger: for a clip present in several roots the row is chosen
  deterministically -- ``ok`` beats ``failed-permanent`` beats
  ``failed-transient`` beats ``pending``, then the earliest root in the given
  order; disagreements (ok in two roots with different sha256, ok in one and
  permanently failed in another) are reported;
* per class, at most the class's target: the lowest-ranked ``ok`` clips are
  kept (the set one unsharded run would have obtained) and the rest are
  reported as surplus and left ``pending``;
* the files of the kept clips, copied atomically and checked against their
  sha256 (a copy that does not match is reported and left ``pending``);
* its manifest (:func:`build_manifest`).

A shard stops at its own target, ``ceil(max_per_class / n)`` per class.  When
one shard holds more of a class's first obtainable candidates than that, the
merged set can differ from one unsharded run; the report names those classes
(``gaps``: candidates never tried though ranked below a kept clip).  A
``download`` on the merged root fills them: the runner fetches every candidate
ranked below a class's last ok clip first and sends the clips it displaces back
to pending, after which the set is exactly one unsharded run's.

Only ``into`` is written.  ``into`` must be empty or a previous merge.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from audioset_fewshot._io import TMP_PREFIX
from audioset_fewshot.errors import DownloadError, ManifestError, UsageError, ValidationError
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.manifest._files import check_destination, copy_or_report, dest_path
from audioset_fewshot.manifest.build import ManifestRecord, build_manifest
from audioset_fewshot.validate import safe_relpath

log = logging.getLogger(__name__)

_STATUS_ORDER = {"ok": 0, "failed-permanent": 1, "failed-transient": 2, "pending": 3}
_MERGED_KEY = "merged_from"


@dataclass(frozen=True)
class MergeReport:
    into: Path
    roots: tuple[Path, ...]
    clips: int
    from_root: dict[str, int]
    conflicts: tuple[str, ...] = ()
    surplus: tuple[str, ...] = ()
    bad_source: tuple[str, ...] = ()
    gaps: dict[str, int] = field(default_factory=dict)
    record: ManifestRecord | None = field(default=None, compare=False)

    @property
    def same_as_one_run(self) -> bool:
        """True when no class skipped an untried candidate ranked below a kept clip, so the
        merged set is the one a single unsharded run would have obtained (same faults)."""
        return not self.gaps

    def to_dict(self) -> dict[str, Any]:
        return {
            "into": str(self.into),
            "roots": [str(r) for r in self.roots],
            "clips": self.clips,
            "from_root": dict(self.from_root),
            "conflicts": list(self.conflicts),
            "surplus": list(self.surplus),
            "bad_source": list(self.bad_source),
            "gaps": dict(self.gaps),
            "same_as_one_run": self.same_as_one_run,
        }


def _raw_rows(path: Path, table: Literal["clips", "attempts"]) -> list[dict[str, Any]]:
    from audioset_fewshot.download.ledger import Ledger

    if not path.is_file():
        raise ManifestError(f"no ledger at {path}; is {path.parent} a downloaded root?")
    try:
        with Ledger(path, readonly=True) as led:
            return led.raw_rows(table)
    except DownloadError as err:
        raise ManifestError(f"cannot read table {table!r} of the ledger {path}: {err}") from err


def _ledger_meta(path: Path) -> dict[str, str]:
    from audioset_fewshot.download.ledger import Ledger

    try:
        with Ledger(path, readonly=True) as led:
            return led.meta_items()
    except DownloadError as err:
        raise ManifestError(f"cannot read the ledger {path}: {err}") from err


def _merged_plan(plans: Sequence[Any], roots: Sequence[Path]) -> Any:
    from audioset_fewshot.plan import SamplingPlan

    base = {k: v for k, v in plans[0].params.items() if k != "shard"}
    for plan, root in zip(plans[1:], roots[1:], strict=True):
        other = {k: v for k, v in plan.params.items() if k != "shard"}
        if other != base:
            keys = sorted(k for k in set(base) | set(other) if base.get(k) != other.get(k))
            raise UsageError(f"cannot merge {root}: its plan differs from {roots[0]}'s in {', '.join(keys)}; merge only shards of one plan")
        if dict(plan.inputs) != dict(plans[0].inputs):
            raise UsageError(f"cannot merge {root}: its plan was made from other metadata files than {roots[0]}'s")
    entries: dict[str, Any] = {}
    for plan, root in zip(plans, roots, strict=True):
        for e in plan.entries:
            old = entries.get(e.clip_id)
            if old is None:
                entries[e.clip_id] = e
            elif old != e:
                raise UsageError(f"cannot merge {root}: clip {e.clip_id} has another owner, rank or labels than in an earlier root")
    params = {**base, "shard": None} if "shard" in plans[0].params else dict(base)
    if any(p.targets is None for p in plans):
        targets = None
    elif "max_per_class" in base and plans[0].params.get("shard"):
        targets = {m: int(base["max_per_class"]) for m in base.get("classes", sorted({t for p in plans for t in p.targets}))}
    else:
        targets = {}
        for p in plans:
            for m, t in p.targets.items():
                targets[m] = max(int(t), targets.get(m, 0))
    counts: dict[str, int] = {}
    for e in entries.values():
        counts[e.owner_mid] = counts.get(e.owner_mid, 0) + 1
    shortfalls = {}
    if targets is not None:
        shortfalls = {m: {"candidates": counts.get(m, 0), "target": t} for m, t in targets.items() if counts.get(m, 0) < t}
    return SamplingPlan.build(entries.values(), targets, params=params, inputs=plans[0].inputs, shortfalls=shortfalls)


def merge_roots(roots: Sequence[Path | str], *, into: Path | str) -> MergeReport:
    """Merge ``roots`` (in priority order) into ``into``; return what was merged and why."""
    from audioset_fewshot._root import RootLock, holds_only_ours
    from audioset_fewshot.download.ledger import Ledger
    from audioset_fewshot.plan import read_plan, write_plan

    if not roots:
        raise UsageError("merge needs at least one root")
    src_roots = [Path(r).expanduser().resolve() for r in roots]
    if len(set(src_roots)) != len(src_roots):
        raise UsageError("merge: a root is given twice")
    dest = check_destination(into, sources=src_roots, what="merge")
    out = DatasetLayout(dest)
    if out.ledger_file.exists():
        meta = _ledger_meta(out.ledger_file)
        if _MERGED_KEY not in meta:
            raise UsageError(f"{dest} holds a downloaded root, not a merge; merge into an empty folder")
    elif not holds_only_ours(dest):
        raise UsageError(f"{dest} is not empty; merge into an empty folder")

    layouts = [DatasetLayout(r) for r in src_roots]
    plans = [read_plan(lay) for lay in layouts]
    plan = _merged_plan(plans, src_roots)

    # choose one ledger row per clip
    chosen: dict[str, tuple[int, dict[str, Any]]] = {}
    conflicts: list[str] = []
    for i, lay in enumerate(layouts):
        for row in _raw_rows(lay.ledger_file, "clips"):
            if not row.get("in_plan", 1):
                continue
            cid = row["clip_id"]
            prev = chosen.get(cid)
            if prev is None:
                chosen[cid] = (i, row)
                continue
            j, old = prev
            if old["status"] == "ok" and row["status"] == "ok" and old.get("sha256") != row.get("sha256"):
                conflicts.append(f"{cid}: ok in {src_roots[j]} and {src_roots[i]} with different sha256; kept {src_roots[j]}'s")
            elif {old["status"], row["status"]} == {"ok", "failed-permanent"}:
                conflicts.append(f"{cid}: ok in one root, failed permanently ({old.get('reason') or row.get('reason')}) in another; kept the ok one")
            if _STATUS_ORDER.get(row["status"], 9) < _STATUS_ORDER.get(old["status"], 9):
                chosen[cid] = (i, row)
    planned = {e.clip_id: e for e in plan.entries}
    chosen = {cid: v for cid, v in chosen.items() if cid in planned}

    # per class: keep the lowest ranks up to the target
    ok_by_class: dict[str, list[str]] = {}
    for cid, (_, row) in chosen.items():
        if row["status"] == "ok":
            ok_by_class.setdefault(planned[cid].owner_mid, []).append(cid)
    keep: set[str] = set()
    surplus: list[str] = []
    for mid, cids in ok_by_class.items():
        cids.sort(key=lambda c: (planned[c].rank, c))
        limit = len(cids) if plan.targets is None else int(plan.targets.get(mid, 0))
        keep.update(cids[:limit])
        surplus += cids[limit:]

    # candidates never tried but ranked below a kept clip: a shard reached its own target
    # (ceil(max_per_class / n)) before reaching them, so one unsharded run could differ
    gaps: dict[str, int] = {}
    for mid, cids in ok_by_class.items():
        kept_ranks = [planned[c].rank for c in cids if c in keep]
        if not kept_ranks:
            continue
        top = max(kept_ranks)
        n = sum(1 for e in plan.entries if e.owner_mid == mid and e.rank < top and (e.clip_id not in chosen or chosen[e.clip_id][1]["status"] == "pending"))
        if n:
            gaps[mid] = n

    with RootLock(out):
        # copy the kept files
        bad: list[str] = []
        from_root: dict[str, int] = {str(r): 0 for r in src_roots}
        wanted_files: set[str] = set()
        for cid in sorted(keep):
            i, row = chosen[cid]
            e = planned[cid]
            ext = str(row.get("path") or "").rsplit(".", 1)[-1]
            ext = ext if ext in ("flac", "wav") else "flac"
            rel = out.clip_relpath(e.owner_mid, e.ytid, e.start_s, ext=ext)
            try:
                src = safe_relpath(str(row.get("path") or ""), root=src_roots[i])
                sha = str(row.get("sha256") or "")
            except ValidationError as err:
                log.warning("not merged: %s in %s: %s", cid, src_roots[i], err)
                bad.append(cid)
                continue
            if copy_or_report(src, dest_path(rel, root=dest), sha256=sha) == "bad-source":
                log.warning("not merged: %s: %s is missing or does not match its sha256", cid, src)
                bad.append(cid)
                continue
            row["path"] = rel
            wanted_files.add(rel)
            from_root[str(src_roots[i])] += 1
        keep -= set(bad)

        # the merged ledger, written beside and moved into place
        tmp_db = dest / f"{TMP_PREFIX}ledger.sqlite"
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(str(tmp_db) + suffix).unlink(missing_ok=True)
        with Ledger(tmp_db) as ledger:
            ledger.sync_plan(plan)
            ledger.set_meta(_MERGED_KEY, json.dumps([str(r) for r in src_roots]))
        _fill_ledger(tmp_db, chosen, keep, src_roots, layouts)
        for suffix in ("-wal", "-shm"):
            Path(str(out.ledger_file) + suffix).unlink(missing_ok=True)
        os.replace(tmp_db, out.ledger_file)
        write_plan(plan, out)
        _write_config(layouts[0], out)
        # files of an earlier merge that are no longer part of it
        if out.audio_dir.is_dir():
            for p in sorted(out.audio_dir.rglob("*")):
                if (p.is_file() or p.is_symlink()) and p.relative_to(dest).as_posix() not in wanted_files:
                    p.unlink()
        record = build_manifest(dest)
    return MergeReport(
        into=dest, roots=tuple(src_roots), clips=record.clips, from_root=from_root, conflicts=tuple(conflicts),
        surplus=tuple(sorted(surplus)), bad_source=tuple(sorted(bad)), gaps=dict(sorted(gaps.items())), record=record,
    )  # fmt: skip


def _write_config(first: DatasetLayout, out: DatasetLayout) -> None:
    """The first root's saved config, unsharded and pointing at the merged root, so that
    the merged root's lock records the same selection and a later download continues it."""
    import dataclasses

    from audioset_fewshot.config import load_config, write_config
    from audioset_fewshot.errors import AudiosetFewshotError

    if not first.config_file.is_file():
        return
    try:
        cfg = load_config(first.config_file)
    except (AudiosetFewshotError, OSError) as err:
        log.warning("%s not read (%s); the merged root gets no config.yaml", first.config_file, err)
        return
    cfg = dataclasses.replace(cfg, root=str(out.root), plan=dataclasses.replace(cfg.plan, shard=None))
    write_config(out.config_file, cfg, root=out.root)


def _fill_ledger(db_path: Path, chosen: dict[str, tuple[int, dict[str, Any]]], keep: set[str], roots: Sequence[Path], layouts: Sequence[DatasetLayout]) -> None:
    """Copy the chosen rows (and their attempts) into the fresh merged ledger."""
    from audioset_fewshot.download.ledger import Ledger

    rows: dict[str, dict[str, Any]] = {}
    attempts: dict[str, list[dict[str, Any]]] = {}
    attempts_by_root: dict[int, dict[str, list[dict[str, Any]]]] = {}
    for cid in sorted(chosen):
        i, row = chosen[cid]
        if row["status"] == "ok" and cid not in keep:
            continue  # surplus or a bad copy: stays pending, as if never tried
        rows[cid] = row
        if i not in attempts_by_root:
            per: dict[str, list[dict[str, Any]]] = {}
            for a in _raw_rows(layouts[i].ledger_file, "attempts"):
                per.setdefault(a["clip_id"], []).append(a)
            attempts_by_root[i] = per
        attempts[cid] = attempts_by_root[i].get(cid, [])
    with Ledger(db_path) as ledger:
        ledger.copy_results(rows, attempts)
