"""Read-only view of a root's download ledger (``ledger.sqlite``).

The manifest tools only *read* the ledger, by the column names of the
contract in docs/architecture.md ("download"), so that a manifest can be
built, or a status shown, while nothing else is touched.  Columns the ledger
of this version does not have read as ``None``; the tool versions are taken
from a ``tool_versions`` column (JSON) when present, else from the ``meta``
table.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audioset_fewshot.errors import ManifestError, StageNotReadyError

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


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return str(value)


def _int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    return int(value)


def _float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    return float(value)


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


def _connect(path: Path) -> sqlite3.Connection:
    if not path.exists():
        raise StageNotReadyError(f"no ledger at {path}; run 'audioset-fewshot download --root {path.parent}' first")
    try:
        # Read-write open (a read-only open of a WAL database fails when its -shm
        # file is missing); query_only makes sure this connection never writes.
        con = sqlite3.connect(path, timeout=10.0)
        con.row_factory = sqlite3.Row
        con.execute("PRAGMA query_only = ON")
    except sqlite3.Error as err:
        raise ManifestError(f"cannot open the ledger {path}: {err}") from err
    return con


def _row_to_clip(row: tuple[Any, ...], idx: Mapping[str, int], where: str, versions: dict[str, Any]) -> LedgerClip:
    def get(name: str) -> Any:
        i = idx.get(name)
        return None if i is None else row[i]

    try:
        fallback = get("fallback")
        tv = get("tool_versions")
        if tv not in versions:  # the same JSON on nearly every row: parse it once
            versions[tv] = _versions(tv)
        in_plan = get("in_plan")
        return LedgerClip(
            clip_id=str(get("clip_id")),
            ytid=str(get("ytid")),
            start_s=float(get("start_s")),
            end_s=float(get("end_s")),
            owner_mid=str(get("owner_mid")),
            labels=tuple(sorted(x for x in str(get("labels") or "").split(";") if x)),
            source=str(get("source")),
            rank=int(get("rank") or 0),
            status=str(get("status")),
            reason=_text(get("reason")),
            message=_text(get("message")),
            attempts=int(get("attempts") or 0),
            obtained_at=_text(get("obtained_at")),
            path=_text(get("path")),
            sha256=_text(get("sha256")),
            samples=_int(get("samples")),
            sample_rate_hz=_int(get("sample_rate_hz")),
            itag=_text(get("itag")),
            codec=_text(get("codec")),
            container=_text(get("container")),
            trim_start_s=_float(get("trim_start_s")),
            trim_end_s=_float(get("trim_end_s")),
            padded_samples=_int(get("padded_samples")),
            license=_text(get("license")),
            uploader=_text(get("uploader")),
            channel_id=_text(get("channel_id")),
            title=_text(get("title")),
            upload_date=_text(get("upload_date")),
            fallback=None if fallback is None else bool(fallback),
            tool_versions=versions[tv],
            in_plan=bool(1 if in_plan is None else in_plan),
        )
    except (IndexError, KeyError, TypeError, ValueError) as err:
        raise ManifestError(f"{where}: malformed ledger row {row!r}: {err}") from err


_REQUIRED = ("clip_id", "ytid", "start_s", "end_s", "owner_mid", "source", "status")


def read_ledger(path: Path | str, *, in_plan_only: bool = True) -> list[LedgerClip]:
    """The rows of table ``clips`` (by default only those in the current plan),
    sorted by (owner_mid, rank, clip_id)."""
    path = Path(path)
    con = _connect(path)
    con.row_factory = None
    try:
        try:
            cur = con.execute("SELECT * FROM clips")
            idx = {d[0]: i for i, d in enumerate(cur.description)}
            rows = cur.fetchall()
        except sqlite3.Error as err:
            raise ManifestError(f"cannot read table 'clips' of the ledger {path}: {err}") from err
    finally:
        con.close()
    missing = [c for c in _REQUIRED if c not in idx]
    if missing:
        raise ManifestError(f"{path}: table 'clips' lacks column(s) {', '.join(missing)}; is this a ledger of this version?")
    versions: dict[str, Any] = {}
    clips = [_row_to_clip(r, idx, str(path), versions) for r in rows]
    if in_plan_only:
        clips = [c for c in clips if c.in_plan]
    clips.sort(key=lambda c: (c.owner_mid, c.rank, c.clip_id))
    return clips


def read_ledger_meta(path: Path | str) -> dict[str, str]:
    """The ``meta`` table as ``{key: value}`` (empty when the ledger has none)."""
    path = Path(path)
    con = _connect(path)
    try:
        try:
            rows = con.execute("SELECT * FROM meta").fetchall()
        except sqlite3.Error:
            return {}
        out: dict[str, str] = {}
        for r in rows:
            keys = r.keys()
            if "key" in keys and "value" in keys:
                out[str(r["key"])] = "" if r["value"] is None else str(r["value"])
            elif len(keys) >= 2:
                out[str(r[0])] = "" if r[1] is None else str(r[1])
        return out
    finally:
        con.close()
