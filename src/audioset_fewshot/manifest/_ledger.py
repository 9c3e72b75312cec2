"""Read-only view of a root's download ledger (``ledger.sqlite``) for the manifest tools.

The rows come from :class:`audioset_fewshot.download.ledger.Ledger` opened
read-only; this module only types them for reading (labels as a sorted tuple,
tool versions as a dict, ``fallback`` and ``in_plan`` as booleans) and turns a
missing or unreadable ledger into the manifest's own errors.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audioset_fewshot.download.ledger import Ledger, LedgerRow
from audioset_fewshot.errors import DownloadError, ManifestError, StageNotReadyError

STATUS_PENDING = "pending"
STATUS_OK = "ok"
STATUS_FAILED_PERMANENT = "failed-permanent"
STATUS_FAILED_TRANSIENT = "failed-transient"


@dataclass(frozen=True)
class LedgerClip:
    """One planned clip as the ledger records it (times in seconds)."""

    clip_id: str
    ytid: str
    start_s: float
    end_s: float
    owner_mid: str
    labels: tuple[str, ...]
    source: str
    rank: int
    status: str
    reason: str | None = None
    message: str | None = None
    attempts: int = 0
    obtained_at: str | None = None
    path: str | None = None
    sha256: str | None = None
    samples: int | None = None
    sample_rate_hz: int | None = None
    itag: str | None = None
    codec: str | None = None
    container: str | None = None
    trim_start_s: float | None = None
    trim_end_s: float | None = None
    padded_samples: int | None = None
    license: str | None = None
    uploader: str | None = None
    channel_id: str | None = None
    title: str | None = None
    upload_date: str | None = None
    fallback: bool | None = None
    tool_versions: Mapping[str, str] | None = None
    in_plan: bool = True
    source_sample_rate_hz: int | None = None
    origin: str | None = None
    origin_revision: str | None = None
    origin_labels: str | None = None


def _versions(value: Any) -> dict[str, str] | None:
    if value in (None, ""):
        return None
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    try:
        data = json.loads(value)
    except (TypeError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    return {str(k): str(v) for k, v in data.items()}


def _open(path: Path) -> Ledger:
    if not path.exists():
        raise StageNotReadyError(f"no ledger at {path}; run 'audioset-fewshot download --root {path.parent}' first")
    try:
        return Ledger(path, readonly=True)
    except DownloadError as err:
        raise ManifestError(f"cannot open the ledger {path}: {err}") from err


def _clip(r: LedgerRow, versions: dict[str | None, dict[str, str] | None]) -> LedgerClip:
    if r.tool_versions not in versions:  # the same JSON on nearly every row: parse it once
        versions[r.tool_versions] = _versions(r.tool_versions)
    return LedgerClip(
        clip_id=r.clip_id, ytid=r.ytid, start_s=float(r.start_s), end_s=float(r.end_s), owner_mid=r.owner_mid,
        labels=tuple(sorted(r.label_tuple)), source=r.source, rank=int(r.rank), status=r.status, reason=r.reason,
        message=r.message, attempts=int(r.attempts or 0), obtained_at=r.obtained_at, path=r.path, sha256=r.sha256,
        samples=r.samples, sample_rate_hz=r.sample_rate_hz, itag=r.itag, codec=r.codec, container=r.container,
        trim_start_s=r.trim_start_s, trim_end_s=r.trim_end_s, padded_samples=r.padded_samples, license=r.license,
        uploader=r.uploader, channel_id=r.channel_id, title=r.title, upload_date=r.upload_date,
        fallback=None if r.fallback is None else bool(r.fallback), tool_versions=versions[r.tool_versions], in_plan=bool(r.in_plan),
        source_sample_rate_hz=r.source_sample_rate_hz, origin=r.origin, origin_revision=r.origin_revision, origin_labels=r.origin_labels,
    )  # fmt: skip


def read_ledger(path: Path | str, *, in_plan_only: bool = True) -> list[LedgerClip]:
    """The rows of table ``clips`` (by default only those in the current plan),
    sorted by (owner_mid, rank, clip_id)."""
    path = Path(path)
    try:
        with _open(path) as led:
            rows = led.rows(in_plan=True if in_plan_only else None)
    except (DownloadError, TypeError) as err:  # a ledger of another version: columns differ
        raise ManifestError(f"cannot read table 'clips' of the ledger {path}: {err}") from err
    versions: dict[str | None, dict[str, str] | None] = {}
    return [_clip(r, versions) for r in rows]


def read_ledger_meta(path: Path | str) -> dict[str, str]:
    """The ``meta`` table as ``{key: value}``."""
    path = Path(path)
    with _open(path) as led:
        return led.meta_items()
