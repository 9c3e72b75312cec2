"""The download ledger: SQLite (WAL) under ``ROOT/ledger.sqlite``.

One row per planned clip in ``clips`` (its status, reason, attempt count and,
once obtained, everything the manifest needs), one row per attempt in
``attempts``, and ``meta`` (``schema_version``, ``plan_hash``, ...).  Only one
thread writes (the runner's main thread; workers return results), and every
state change is committed at once, so a killed run loses nothing committed.

Statuses: ``pending``, ``ok``, ``failed-permanent``, ``failed-transient``.
Columns beyond the contract: ``in_plan`` (1 when the clip is in the plan last
synced; rows with results that left the plan are kept with 0),
``tool_versions`` (JSON), ``extractions`` (total over attempts).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audioset_fewshot.errors import DownloadError

SCHEMA_VERSION = 1
STATUSES = ("pending", "ok", "failed-permanent", "failed-transient")

_CLIP_COLUMNS: tuple[tuple[str, str], ...] = (
    ("clip_id", "TEXT PRIMARY KEY"),
    ("ytid", "TEXT NOT NULL"),
    ("start_s", "REAL NOT NULL"),
    ("end_s", "REAL NOT NULL"),
    ("owner_mid", "TEXT NOT NULL"),
    ("labels", "TEXT NOT NULL"),
    ("source", "TEXT NOT NULL"),
    ("rank", "INTEGER NOT NULL"),
    ("status", "TEXT NOT NULL DEFAULT 'pending'"),
    ("reason", "TEXT"),
    ("message", "TEXT"),
    ("attempts", "INTEGER NOT NULL DEFAULT 0"),
    ("created_at", "TEXT NOT NULL"),
    ("updated_at", "TEXT NOT NULL"),
    ("obtained_at", "TEXT"),
    ("path", "TEXT"),
    ("sha256", "TEXT"),
    ("samples", "INTEGER"),
    ("sample_rate_hz", "INTEGER"),
    ("itag", "TEXT"),
    ("codec", "TEXT"),
    ("container", "TEXT"),
    ("source_sample_rate_hz", "INTEGER"),
    ("source_channels", "INTEGER"),
    ("trim_start_s", "REAL"),
    ("trim_end_s", "REAL"),
    ("padded_samples", "INTEGER"),
    ("license", "TEXT"),
    ("uploader", "TEXT"),
    ("channel_id", "TEXT"),
    ("title", "TEXT"),
    ("upload_date", "TEXT"),
    ("fallback", "INTEGER"),
    ("in_plan", "INTEGER NOT NULL DEFAULT 1"),
    ("tool_versions", "TEXT"),
    ("extractions", "INTEGER NOT NULL DEFAULT 0"),
    # where an ok clip came from (download.origins): "youtube" or a local origin's name, the
    # origin's revision, and its own labels when they differ from the segment list's
    ("origin", "TEXT"),
    ("origin_revision", "TEXT"),
    ("origin_labels", "TEXT"),
)
# columns added after schema 1 was first written: an older ledger gains them on open
_ADDED_COLUMNS = ("origin", "origin_revision", "origin_labels")

# result fields copied from a ClipResult into the clip row when a clip is obtained
_RESULT_FIELDS = (
    "sha256", "samples", "sample_rate_hz", "itag", "codec", "container", "source_sample_rate_hz",
    "source_channels", "trim_start_s", "trim_end_s", "padded_samples", "license", "uploader",
    "channel_id", "title", "upload_date", "origin", "origin_revision", "origin_labels",
)  # fmt: skip

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS clips ({", ".join(f"{n} {t}" for n, t in _CLIP_COLUMNS)});
CREATE INDEX IF NOT EXISTS clips_owner ON clips(owner_mid, rank);
CREATE INDEX IF NOT EXISTS clips_status ON clips(status);
CREATE TABLE IF NOT EXISTS attempts (
    attempt_id INTEGER PRIMARY KEY AUTOINCREMENT,
    clip_id TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    elapsed_s REAL,
    ok INTEGER NOT NULL,
    reason TEXT,
    permanent INTEGER NOT NULL DEFAULT 0,
    counted INTEGER NOT NULL DEFAULT 1,
    message TEXT,
    extractions INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS attempts_clip ON attempts(clip_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def recover_hint(path: Path) -> str:
    """What to do about a damaged ledger: never delete it (that would forget every clip)."""
    return (f"rebuild it from the clips on disk and the manifest with 'audioset-fewshot recover --root {path.parent}' "
            "(it keeps every downloaded clip; do not delete the ledger, a new one would fetch them all again)")


def utc_now() -> str:
    """ISO-8601 UTC time with milliseconds: ``2026-11-25T08:50:00.123Z``."""
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1000):03d}Z"


@dataclass(frozen=True)
class LedgerRow:
    """One clip row (see the module docstring for the columns)."""

    clip_id: str
    ytid: str
    start_s: float
    end_s: float
    owner_mid: str
    labels: str
    source: str
    rank: int
    status: str
    reason: str | None
    message: str | None
    attempts: int
    created_at: str
    updated_at: str
    obtained_at: str | None
    path: str | None
    sha256: str | None
    samples: int | None
    sample_rate_hz: int | None
    itag: str | None
    codec: str | None
    container: str | None
    source_sample_rate_hz: int | None
    source_channels: int | None
    trim_start_s: float | None
    trim_end_s: float | None
    padded_samples: int | None
    license: str | None
    uploader: str | None
    channel_id: str | None
    title: str | None
    upload_date: str | None
    fallback: int | None
    in_plan: int
    tool_versions: str | None
    extractions: int
    origin: str | None = None
    origin_revision: str | None = None
    origin_labels: str | None = None

    @property
    def label_tuple(self) -> tuple[str, ...]:
        return tuple(x for x in self.labels.split(";") if x)




@dataclass(frozen=True)
class AttemptRow:
    attempt_id: int
    clip_id: str
    started_at: str
    finished_at: str
    elapsed_s: float | None
    ok: int
    reason: str | None
    permanent: int
    counted: int
    message: str | None
    extractions: int


@dataclass(frozen=True)
class SyncReport:
    added: int
    kept: int
    dropped: int
    out_of_plan: int


class Ledger:
    """The SQLite ledger of one dataset root.  Use as a context manager.

    Not thread-safe by design: only the thread that opened it writes.
    """

    def __init__(self, path: Path | str, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        if self.path.is_symlink():  # SQLite would write through it, outside the root
            raise DownloadError(f"{self.path} is a symbolic link; a ledger is never opened through a link: put the real file there "
                                f"(or rebuild it from the files with 'audioset-fewshot recover --root {self.path.parent}')")
        # a ledger file that exists must hold a ledger: starting an empty one over it would
        # treat every downloaded clip as unknown (and a download would remove their files)
        self._existed = self.path.exists()
        if readonly:
            if not self.path.exists():
                raise DownloadError(f"no ledger at {self.path}; run 'audioset-fewshot download' first")
            self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30.0)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        try:
            if not readonly:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
            self._init_schema()
            check = self._db.execute("PRAGMA quick_check").fetchone()
            if check is None or str(check[0]) != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {check[0] if check else 'no answer'}")
            self._db.execute("SELECT COUNT(*) FROM clips").fetchone()
        except sqlite3.DatabaseError as err:
            self._db.close()
            raise DownloadError(f"{self.path} is not a readable ledger ({err}); {recover_hint(self.path)}") from err
        except DownloadError:
            self._db.close()
            raise

    # -- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def _init_schema(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise DownloadError(f"{self.path}: ledger schema_version {version}, this version reads {SCHEMA_VERSION}; use a matching audioset-fewshot or a new root")
        if version == 0 and (self.readonly or self._existed):
            raise DownloadError(f"{self.path} holds no ledger (empty or garbled); {recover_hint(self.path)}")
        if self.readonly:
            return
        if version == 0:
            with self._tx():
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        self._db.execute(stmt)
                self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                self._db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('created_at', ?)", (utc_now(),))
                self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        have = {str(r[1]) for r in self._db.execute("PRAGMA table_info(clips)")}
        types = dict(_CLIP_COLUMNS)
        missing = [c for c in _ADDED_COLUMNS if c not in have]
        if missing:
            with self._tx():
                for col in missing:
                    self._db.execute(f"ALTER TABLE clips ADD COLUMN {col} {types[col]}")

    class _Tx:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def __enter__(self) -> None:
            self.db.execute("BEGIN IMMEDIATE")

        def __exit__(self, exc_type: object, *rest: object) -> None:
            self.db.execute("ROLLBACK" if exc_type is not None else "COMMIT")

    def _tx(self) -> Ledger._Tx:
        return Ledger._Tx(self._db)

    # -- meta -----------------------------------------------------------------------------
    def meta(self, key: str, default: str | None = None) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else str(row[0])

    def meta_items(self) -> dict[str, str]:
        """The whole ``meta`` table as ``{key: value}``."""
        return {str(k): "" if v is None else str(v) for k, v in self._db.execute("SELECT key, value FROM meta ORDER BY key")}

    def set_meta(self, key: str, value: str) -> None:
        with self._tx():
            self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, str(value)))

    # -- plan -----------------------------------------------------------------------------
    def sync_plan(self, plan: Any) -> SyncReport:
        """Make the clip rows match ``plan``: new entries are inserted as pending, pending
        rows that left the plan are dropped, rows with results are never dropped (they are
        kept with ``in_plan = 0``).  Records the plan's hash.  One transaction."""
        now = utc_now()
        planned = {e.clip_id: e for e in plan.entries}
        existing = {r["clip_id"]: r for r in self._db.execute("SELECT clip_id, status, attempts, owner_mid, rank, in_plan FROM clips")}
        added = kept = dropped = out = 0
        with self._tx():
            for cid, e in planned.items():
                old = existing.get(cid)
                if old is None:
                    self._db.execute(
                        "INSERT INTO clips(clip_id, ytid, start_s, end_s, owner_mid, labels, source, rank, status, attempts, created_at, updated_at, in_plan)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, 1)",
                        (cid, e.ytid, e.start_s, e.end_s, e.owner_mid, ";".join(e.labels), e.source, e.rank, now, now),
                    )
                    added += 1
                else:
                    kept += 1
                    if old["owner_mid"] != e.owner_mid or old["rank"] != e.rank or not old["in_plan"]:
                        self._db.execute(
                            "UPDATE clips SET owner_mid = ?, rank = ?, labels = ?, source = ?, in_plan = 1, updated_at = ? WHERE clip_id = ?",
                            (e.owner_mid, e.rank, ";".join(e.labels), e.source, now, cid),
                        )
            for cid, old in existing.items():
                if cid in planned:
                    continue
                if old["status"] == "pending" and old["attempts"] == 0:
                    self._db.execute("DELETE FROM clips WHERE clip_id = ?", (cid,))
                    dropped += 1
                elif old["in_plan"]:
                    self._db.execute("UPDATE clips SET in_plan = 0, updated_at = ? WHERE clip_id = ?", (now, cid))
                    out += 1
                else:
                    out += 1
            self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('plan_hash', ?)", (plan.content_hash,))
            targets = None if plan.targets is None else dict(plan.targets)
            self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('targets', ?)", (json.dumps(targets, sort_keys=True),))
        return SyncReport(added, kept, dropped, out)

    # -- reading --------------------------------------------------------------------------
    def rows(self, status: str | Iterable[str] | None = None, *, in_plan: bool | None = None) -> list[LedgerRow]:
        """Clip rows sorted by (owner_mid, rank, clip_id); filter by status and plan membership."""
        sql = "SELECT * FROM clips"
        where: list[str] = []
        args: list[Any] = []
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            for s in statuses:
                if s not in STATUSES:
                    raise DownloadError(f"unknown ledger status {s!r}; expected one of {', '.join(STATUSES)}")
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            args += statuses
        if in_plan is not None:
            where.append("in_plan = ?")
            args.append(1 if in_plan else 0)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY owner_mid, rank, clip_id"
        return [LedgerRow(**dict(r)) for r in self._db.execute(sql, args)]

    def row(self, clip_id: str) -> LedgerRow | None:
        r = self._db.execute("SELECT * FROM clips WHERE clip_id = ?", (clip_id,)).fetchone()
        return None if r is None else LedgerRow(**dict(r))

    def attempts(self, clip_id: str | None = None) -> list[AttemptRow]:
        if clip_id is None:
            cur = self._db.execute("SELECT * FROM attempts ORDER BY attempt_id")
        else:
            cur = self._db.execute("SELECT * FROM attempts WHERE clip_id = ? ORDER BY attempt_id", (clip_id,))
        return [AttemptRow(**dict(r)) for r in cur]

    def counts(self) -> dict[str, dict[str, int]]:
        """``{owner_mid: {status: n}}`` over rows in the plan."""
        out: dict[str, dict[str, int]] = {}
        for mid, status, n in self._db.execute("SELECT owner_mid, status, COUNT(*) FROM clips WHERE in_plan = 1 GROUP BY owner_mid, status"):
            out.setdefault(mid, {})[status] = int(n)
        return out

    # -- writing --------------------------------------------------------------------------
    def record_attempt(
        self,
        clip_id: str,
        result: Any,
        *,
        counted: bool = True,
        started_at: str | None = None,
        elapsed_s: float | None = None,
        relpath: str | None = None,
    ) -> LedgerRow:
        """Record one attempt (a ``ClipResult``) and move the clip to its new status, in one
        transaction.  ``counted=False``: the attempt was interrupted by a pool pause (rate
        limit): recorded with its reason, but the clip's attempt count does not grow and
        its status becomes ``failed-transient`` only if it had no result yet."""
        now = utc_now()
        ok = bool(getattr(result, "ok", False))
        reason = getattr(result, "reason", None)
        permanent = bool(getattr(result, "permanent", False))
        message = getattr(result, "message", None)
        extractions = int(getattr(result, "extractions", 0) or 0)
        with self._tx():
            self._db.execute(
                "INSERT INTO attempts(clip_id, started_at, finished_at, elapsed_s, ok, reason, permanent, counted, message, extractions)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (clip_id, started_at or now, now, elapsed_s, int(ok), reason, int(permanent), int(counted), message, extractions),
            )
            inc = 1 if counted else 0
            if ok:
                values = {f: _plain(getattr(result, f, None)) for f in _RESULT_FIELDS}
                values["fallback"] = int(bool(getattr(result, "fallback", False)))
                tv = getattr(result, "tool_versions", None)
                values["tool_versions"] = json.dumps(dict(tv), sort_keys=True) if tv else None
                sets = ", ".join(f"{k} = ?" for k in values)
                self._db.execute(
                    f"UPDATE clips SET status = 'ok', reason = NULL, message = NULL, attempts = attempts + ?, extractions = extractions + ?,"
                    f" updated_at = ?, obtained_at = ?, path = ?, {sets} WHERE clip_id = ?",
                    (inc, extractions, now, now, relpath, *values.values(), clip_id),
                )
            else:
                status = "failed-permanent" if permanent else "failed-transient"
                self._db.execute(
                    "UPDATE clips SET status = ?, reason = ?, message = ?, attempts = attempts + ?, extractions = extractions + ?, updated_at = ?"
                    " WHERE clip_id = ?",
                    (status, reason, message, inc, extractions, now, clip_id),
                )
        row = self.row(clip_id)
        if row is None:
            raise DownloadError(f"ledger {self.path}: attempt recorded for clip {clip_id} that is not in the ledger (sync the plan first)")
        return row

    def mark(self, clip_id: str, status: str, *, reason: str | None = None, message: str | None = None) -> None:
        """Set a clip's status by hand (e.g. back to pending when its file vanished)."""
        if status not in STATUSES:
            raise DownloadError(f"unknown ledger status {status!r}; expected one of {', '.join(STATUSES)}")
        with self._tx():
            if status == "ok":
                self._db.execute("UPDATE clips SET status = ?, reason = ?, message = ?, updated_at = ? WHERE clip_id = ?", (status, reason, message, utc_now(), clip_id))
            else:
                self._db.execute(
                    "UPDATE clips SET status = ?, reason = ?, message = ?, updated_at = ?, obtained_at = NULL, path = NULL, sha256 = NULL, samples = NULL WHERE clip_id = ?",
                    (status, reason, message, utc_now(), clip_id),
                )

    def update_many(self, changes: Mapping[str, str]) -> None:
        """``{clip_id: status}`` in one transaction (used to reset rows on resume)."""
        now = utc_now()
        with self._tx():
            for cid, status in changes.items():
                self._db.execute(
                    "UPDATE clips SET status = ?, updated_at = ?, obtained_at = NULL, path = NULL, sha256 = NULL, samples = NULL WHERE clip_id = ?",
                    (status, now, cid),
                )


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (int, float, str)):
        return value
    if isinstance(value, bool):
        return int(value)
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
    except ImportError:  # pragma: no cover
        pass
    return str(value)
