"""``rebuild(manifest, root=...)``: download exactly the clips a manifest lists.

No new draw: the manifest (untrusted, validated row by row) becomes an
*exact* plan (:meth:`SamplingPlan.exact`: every entry required, same YouTube
IDs, same trim offsets ``start_s``/``end_s``, same owners and labels), which
the download runner fetches into ``root`` with the manifest's sample rate and
container.  Then the root's own manifest is built and compared with the
original: which clips are no longer available (and why), and whether every
rebuilt file hashes the same.

``root`` must be empty, or a root this same manifest was rebuilt into before
(then the run resumes).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audioset_fewshot._io import json_fields, sha256_file
from audioset_fewshot._root import holds_only_ours
from audioset_fewshot.config import DownloadOptions
from audioset_fewshot.errors import ManifestError, UsageError
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.manifest._files import check_destination
from audioset_fewshot.manifest._ledger import (
    STATUS_FAILED_PERMANENT,
    STATUS_FAILED_TRANSIENT,
    STATUS_OK,
    LedgerClip,
    read_ledger,
)
from audioset_fewshot.manifest.build import ManifestRecord, build_manifest
from audioset_fewshot.manifest.clips import ManifestRow, read_clips
from audioset_fewshot.manifest.diff import ManifestDiff, diff_rows, manifest_path

if TYPE_CHECKING:
    from audioset_fewshot.download.fetch import ClipResult
    from audioset_fewshot.plan import SamplingPlan

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RebuildReport:
    """Outcome per listed clip (clip ids ``<ytid>_<start_ms>``, sorted).

    ``same``: rebuilt and hashes as in the manifest; ``different``: rebuilt
    with other bytes; ``unavailable``: ``{clip_id: reason}`` the server no
    longer serves (permanent); ``failed``: ``{clip_id: reason}`` transient
    failures (a rerun retries them); ``pending``: not tried (a stopped run).
    """

    manifest: Path
    root: Path
    listed: int
    same: tuple[str, ...] = ()
    different: tuple[str, ...] = ()
    unavailable: Mapping[str, str] = field(default_factory=dict)
    failed: Mapping[str, str] = field(default_factory=dict)
    pending: tuple[str, ...] = ()
    record: ManifestRecord | None = None
    diff: ManifestDiff | None = None
    causes: tuple[str, ...] = ()  # why clips differ or are gone, one sentence each

    @property
    def identical(self) -> bool:
        """Every listed clip was rebuilt with the same bytes."""
        return len(self.same) == self.listed

    def to_dict(self) -> dict[str, Any]:
        return {**json_fields(self, leave_out=("record", "diff")), "same": len(self.same), "identical": self.identical}


def exact_plan(rows: list[ManifestRow], *, manifest_sha256: str) -> SamplingPlan:
    """The exact plan of a manifest: one required entry per row, ranks in manifest order."""
    from audioset_fewshot.plan import PlanEntry, SamplingPlan

    ranks: dict[str, int] = {}
    entries = []
    for r in sorted(rows, key=lambda r: (r.owner_mid, r.ytid, r.start_s)):
        rank = ranks.get(r.owner_mid, 0)
        ranks[r.owner_mid] = rank + 1
        entries.append(PlanEntry(r.clip_id, r.ytid, r.start_s, r.end_s, r.owner_mid, tuple(sorted(r.labels)), r.source, rank))
    classes = sorted(ranks)
    return SamplingPlan.exact(entries, params={"rebuild_of": manifest_sha256, "classes": classes})


def check_origin_revisions(lock_json: Path, origins: Sequence[str | Mapping[str, Any]]) -> None:
    """Refuse (``UsageError``) an origin that names a recorded mirror (by name or repository)
    with another revision than the one ``lock_json`` recorded for it."""
    import json

    from audioset_fewshot.download.origins import parse_origins

    if not lock_json.is_file():
        return
    try:
        recorded = json.loads(lock_json.read_text(encoding="utf-8")).get("origins") or []
    except (OSError, ValueError, AttributeError) as err:
        raise ManifestError(f"{lock_json}: not a readable lock ({err})") from err
    specs, _ = parse_origins(origins)
    for rec in recorded:
        if not isinstance(rec, dict) or not rec.get("revision"):
            continue
        for spec in specs:
            if rec.get("name") not in (spec.name, spec.repo) and (rec.get("repo") is None or rec.get("repo") != spec.repo):
                continue
            if spec.revision != rec["revision"]:
                raise UsageError(
                    f"origin {rec.get('name')}: the manifest was built from revision {rec['revision']} (lock.json), but download.origins"
                    f" gives {spec.revision or 'no revision'}; pin revision: {rec['revision']} for {spec.path!r}, or drop that origin"
                )


def _uniform(values: set[Any], what: str, path: Path) -> Any:
    if len(values) > 1:
        raise ManifestError(f"{path}: clips with different {what} ({', '.join(map(str, sorted(values)))}); rebuild needs one {what}")
    return next(iter(values))


def rebuild(
    manifest: Path | str,
    root: Path | str,
    options: DownloadOptions | None = None,
    *,
    fetch: Callable[..., ClipResult] | None = None,
) -> RebuildReport:
    """Download the clips of ``manifest`` (a clips.csv or a root) into ``root`` and compare.

    ``options``: the download options, as for :func:`download.runner.run_download`
    (the sample rate and container come from the manifest).  Per-clip failures are
    in the report.  With ``options.origins``, a mirror named with another revision
    than the one the manifest's ``lock.json`` recorded is refused before anything is read.
    """
    from audioset_fewshot.download.runner import run_download
    from audioset_fewshot.plan import read_plan, write_plan

    src = manifest_path(manifest)
    rows = read_clips(src)
    if not rows:
        raise ManifestError(f"{src}: the manifest lists no clips; nothing to rebuild")
    sample_rate_hz = _uniform({r.sample_rate_hz for r in rows}, "sample rates", src)
    audio_format = _uniform({r.path.rsplit(".", 1)[-1] for r in rows}, "containers", src)
    if options is not None and options.origins:
        check_origin_revisions(src.parent / "lock.json", options.origins)
    dest = check_destination(root, sources=[Path(manifest)] if Path(manifest).is_dir() else [], what="rebuild")
    layout = DatasetLayout(dest)
    plan = exact_plan(rows, manifest_sha256=sha256_file(src))
    if layout.plan_meta_file.exists():
        old = read_plan(layout)
        if old.content_hash != plan.content_hash:
            raise UsageError(f"{dest} already holds another plan; rebuild into an empty folder (or the folder this manifest was rebuilt into)")
    elif not holds_only_ours(dest):
        raise UsageError(f"{dest} is not empty; rebuild into an empty folder")
    write_plan(plan, layout)
    o = dataclasses.replace(options or DownloadOptions(), audio_format=audio_format, sample_rate_hz=sample_rate_hz)
    run_download(plan, dest, o, fetch=fetch)
    record = build_manifest(dest)
    ledger = {c.clip_id: c for c in read_ledger(layout.ledger_file)}
    want = {r.clip_id: r for r in rows}
    same: list[str] = []
    different: list[str] = []
    pending: list[str] = []
    unavailable: dict[str, str] = {}
    failed: dict[str, str] = {}
    for cid in sorted(want):
        c = ledger.get(cid)
        if c is None:
            pending.append(cid)
        elif c.status == STATUS_OK:
            (same if c.sha256 == want[cid].sha256 else different).append(cid)
        elif c.status == STATUS_FAILED_PERMANENT:
            unavailable[cid] = c.reason or "unknown"
        elif c.status == STATUS_FAILED_TRANSIENT:
            failed[cid] = c.reason or "unknown"
        else:
            pending.append(cid)
    causes = _causes(want, ledger, different, base_url=o.base_url)
    for cause in causes:
        log.warning("%s", cause)
    diff = diff_rows(rows, read_clips(layout.clips_csv, root=dest), a=src, b=layout.clips_csv)
    return RebuildReport(
        manifest=src, root=dest, listed=len(rows), same=tuple(same), different=tuple(different), unavailable=unavailable, failed=failed,
        pending=tuple(pending), record=record, diff=diff, causes=causes,
    )  # fmt: skip


def _causes(want: Mapping[str, ManifestRow], ledger: Mapping[str, LedgerClip], different: list[str], *, base_url: str) -> tuple[str, ...]:
    """Name why rebuilt clips differ: another length (the host serves other media for
    these IDs: for a demo manifest, a server without the demo's catalogue) or the same
    length with other bytes (another ffmpeg / yt-dlp, or the video was re-encoded)."""
    from audioset_fewshot.download.ytdlp_demo import is_demo_url

    other_length = [cid for cid in different if ledger[cid].samples != want[cid].samples]
    same_length = [cid for cid in different if cid not in set(other_length)]
    # a source too short for the listed segment: the host has other media under this ID
    too_short = sorted(cid for cid, c in ledger.items() if cid in want and c.status != STATUS_OK and (c.message or "").startswith("short"))
    out: list[str] = []
    demo = is_demo_url(f"{base_url.rstrip('/')}/watch?v=aaaaaaaaaaa")
    if other_length or too_short:
        text = (
            f"{len(other_length) + len(too_short)} clip(s) came back with another length than the manifest lists "
            f"({len(too_short)} source(s) too short for their segment, e.g. {(too_short or other_length)[0]}): "
            f"the host at {base_url} serves other media under these IDs than the one the manifest was made from"
        )
        if demo:
            text += (
                "; a demo manifest rebuilds only against its own catalogue: start "
                "'audioset-fewshot serve-demo --root DEMO' and pass the URL it prints as --base-url"
            )
        out.append(text)
    if same_length:
        out.append(
            f"{len(same_length)} rebuilt clip(s) have the listed length but other bytes (e.g. {same_length[0]}): "
            "another ffmpeg or yt-dlp version than the manifest's lock.json records, or the video was re-encoded"
        )
    return tuple(out)
