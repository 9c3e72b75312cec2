"""The download ledger: SQLite (WAL) under ``ROOT/ledger.sqlite``.

One row per planned clip in ``clips`` (its status, reason, attempt count and,
once obtained, everything the manifest needs), one row per attempt in
``attempts``, and ``meta`` (``schema_version``, ``plan_hash``, ...).  Only one
thread writes (the runner's main thread; workers return results), and every
state change is committed at once, so a killed run loses nothing committed.

The tables ``clips`` and ``attempts`` are generated from their typed records,
:class:`LedgerRow` and :class:`AttemptRow` (one column per field, in order): a new
column is one new field, and a ledger written before it gains the column on open.

Statuses: ``pending``, ``ok``, ``failed-permanent``, ``failed-transient``.
Columns beyond the contract: ``in_plan`` (1 when the clip is in the plan last
synced; rows with results that left the plan are kept with 0),
``tool_versions`` (JSON), ``extractions`` (total over attempts).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sqlite3
import time
import typing
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, Protocol

from audioset_fewshot.errors import DownloadError, StorageError
from audioset_fewshot.plan import PlanEntry

SCHEMA_VERSION = 1
STATUSES = ("pending", "ok", "failed-permanent", "failed-transient")  # the values of ClipStatus

# result fields copied from a ClipResult into the clip row when a clip is obtained
_RESULT_FIELDS = (
    "sha256", "samples", "sample_rate_hz", "itag", "codec", "container", "source_sample_rate_hz",
    "source_channels", "trim_start_s", "trim_end_s", "padded_samples", "license", "uploader",
    "channel_id", "title", "upload_date", "origin", "origin_revision", "origin_labels", "player_client",
)  # fmt: skip


def recover_hint(path: Path) -> str:
    """What to do about a damaged ledger: never delete it (that would forget every clip)."""
    return (
        f"rebuild it from the clips on disk and the manifest with 'audioset-fewshot recover --root {path.parent}' "
        "(it keeps every downloaded clip; do not delete the ledger, a new one would fetch them all again)"
    )


def sqlite_storage_error(err: sqlite3.OperationalError, path: Path) -> StorageError | None:
    """SQLite's "database or disk is full" or read-only refusal as a :class:`StorageError`
    naming the ledger and the fix (None for any other error)."""
    name = str(getattr(err, "sqlite_errorname", ""))
    if name == "SQLITE_FULL":
        return StorageError(
            f"cannot write the ledger {path}: the disk is full (SQLite: {err}); free some space (or choose a root on a bigger disk)"
            " and run the same command again: every clip committed before is kept"
        )
    if name.startswith("SQLITE_READONLY"):
        return StorageError(f"cannot write the ledger {path}: it is read-only (SQLite: {err}); make the root writable and run the same command again")
    return None


def utc_now() -> str:
    """ISO-8601 UTC time with milliseconds: ``2026-11-25T08:50:00.123Z``."""
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1000):03d}Z"


def _sql(declaration: str) -> dict[str, str]:
    """Field metadata: the column's whole SQL declaration, where the type alone says too little."""
    return {"sql": declaration}


class ClipStatus(StrEnum):
    """Where a planned clip stands (a ``str``: ``ClipStatus.OK == "ok"``)."""

    PENDING = "pending"
    OK = "ok"
    FAILED_PERMANENT = "failed-permanent"
    FAILED_TRANSIENT = "failed-transient"

    @property
    def failed(self) -> bool:
        return self in (ClipStatus.FAILED_PERMANENT, ClipStatus.FAILED_TRANSIENT)


@dataclass(frozen=True)
class LedgerRow(PlanEntry):
    """One clip of the ledger, typed: the one record every reader gets (the columns of
    table ``clips``, in order; see the module docstring): the plan entry it was made
    from, then where its download stands.  ``labels`` are sorted, ``tool_versions`` is
    the parsed JSON, flags are booleans, ``status`` a :class:`ClipStatus`."""

    clip_id: str = field(metadata=_sql("TEXT PRIMARY KEY"))  # the plan entry's first field, keyed here
    status: ClipStatus = ClipStatus.PENDING
    reason: str | None = None
    message: str | None = None
    attempts: int = 0
    created_at: str = field(default="", metadata=_sql("TEXT NOT NULL"))  # always written with the row
    updated_at: str = field(default="", metadata=_sql("TEXT NOT NULL"))
    obtained_at: str | None = None
    path: str | None = None
    sha256: str | None = None
    samples: int | None = None
    sample_rate_hz: int | None = None
    itag: str | None = None
    codec: str | None = None
    container: str | None = None
    source_sample_rate_hz: int | None = None
    source_channels: int | None = None
    trim_start_s: float | None = None
    trim_end_s: float | None = None
    padded_samples: int | None = None
    license: str | None = None
    uploader: str | None = None
    channel_id: str | None = None
    title: str | None = None
    upload_date: str | None = None
    fallback: bool | None = None
    in_plan: bool = True
    tool_versions: Mapping[str, str] | None = None
    extractions: int = 0
    # where an ok clip came from (download.origins): "youtube" or a local origin's name, the
    # origin's revision, and its own labels when they differ from the segment list's
    origin: str | None = None
    origin_revision: str | None = None
    origin_labels: str | None = None
    # who fetched an ok clip (download.sessions; "default" without sessions), with which yt-dlp
    # and which YouTube player client; each attempt records the same three
    session: str | None = None
    yt_dlp_version: str | None = None
    player_client: str | None = None
    # a new column is one more line above (nullable or with a default): new ledgers get it
    # in CREATE TABLE, older ones gain it on open (Ledger._init_schema)

    @classmethod
    def from_db(cls, row: Mapping[str, Any], versions: dict[str | None, Mapping[str, str] | None] | None = None) -> LedgerRow:
        """The record of one ``clips`` row as SQLite returns it (``versions``: a cache of
        parsed tool-version JSON, the same text on nearly every row)."""
        data = dict(row)
        cache = versions if versions is not None else {}
        tv = data.get("tool_versions")
        if tv not in cache:
            cache[tv] = _versions(tv)
        data["tool_versions"] = cache[tv]
        data["labels"] = tuple(sorted(x for x in str(data.get("labels") or "").split(";") if x))
        data["status"] = ClipStatus(data["status"])
        data["in_plan"] = bool(data.get("in_plan", 1))
        fb = data.get("fallback")
        data["fallback"] = None if fb is None else bool(fb)
        data["attempts"] = int(data.get("attempts") or 0)
        data["extractions"] = int(data.get("extractions") or 0)
        return cls(**data)


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


class _HasCounts(Protocol):
    @property
    def obtained(self) -> int: ...
    @property
    def target(self) -> int: ...


class ClassTotals:
    """``obtained`` and ``target`` summed over ``classes`` (one progress line per class):
    the totals of the runner's report and of ``status``."""

    classes: Sequence[_HasCounts]

    @property
    def obtained(self) -> int:
        return sum(c.obtained for c in self.classes)

    @property
    def target(self) -> int:
        return sum(c.target for c in self.classes)


def class_status(rows: Iterable[LedgerRow]) -> dict[str, Counter[ClipStatus]]:
    """``{owner_mid: Counter({status: n})}`` of ``rows``: the one per-class aggregation
    the runner's summary, ``status``, the report and the pipeline use."""
    out: dict[str, Counter[ClipStatus]] = {}
    for r in rows:
        out.setdefault(r.owner_mid, Counter())[r.status] += 1
    return out


@dataclass(frozen=True)
class AttemptRow:
    """One attempt of table ``attempts`` (the table is generated from this record, as
    ``clips`` is from :class:`LedgerRow`)."""

    attempt_id: int = field(metadata=_sql("INTEGER PRIMARY KEY AUTOINCREMENT"))
    clip_id: str
    started_at: str
    finished_at: str
    elapsed_s: float | None
    ok: int
    reason: str | None = None
    permanent: int = 0
    counted: int = 1
    message: str | None = None
    extractions: int = 0
    session: str | None = None
    yt_dlp_version: str | None = None
    player_client: str | None = None


def _sql_columns(record: type) -> tuple[tuple[str, str], ...]:
    """``((column, SQL declaration), ...)`` of a record, one per field in order: the type
    from the annotation (int/bool INTEGER, float REAL, str/enum/tuple/mapping TEXT, the last
    two stored as text), NOT NULL unless the field may be None, DEFAULT from the field's
    default; a field's ``sql`` metadata overrides the whole declaration."""
    hints = typing.get_type_hints(record)
    out: list[tuple[str, str]] = []
    for f in dataclasses.fields(record):
        decl = f.metadata.get("sql")
        if decl is None:
            args = typing.get_args(hints[f.name])
            nullable = type(None) in args
            base = next(a for a in args if a is not type(None)) if nullable else hints[f.name]
            kind = typing.get_origin(base) or base
            if issubclass(kind, int):  # bool is an int
                decl = "INTEGER"
            elif issubclass(kind, float):
                decl = "REAL"
            elif issubclass(kind, (str, tuple, Mapping)):
                decl = "TEXT"
            else:
                raise TypeError(f"{record.__name__}.{f.name}: no SQL type for {base!r}")
            if not nullable:
                decl += " NOT NULL"
            if f.default is not dataclasses.MISSING and f.default is not None:
                d = f.default
                decl += f" DEFAULT {int(d)}" if isinstance(d, (bool, int)) else f" DEFAULT '{d}'"
        out.append((f.name, decl))
    return tuple(out)


_TABLES: dict[str, tuple[tuple[str, str], ...]] = {"clips": _sql_columns(LedgerRow), "attempts": _sql_columns(AttemptRow)}
_SCHEMA: tuple[str, ...] = (
    *(f"CREATE TABLE IF NOT EXISTS {t} ({', '.join(f'{n} {d}' for n, d in cols)})" for t, cols in _TABLES.items()),
    "CREATE INDEX IF NOT EXISTS clips_owner ON clips(owner_mid, rank)",
    "CREATE INDEX IF NOT EXISTS clips_status ON clips(status)",
    "CREATE INDEX IF NOT EXISTS attempts_clip ON attempts(clip_id)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)


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
            raise DownloadError(
                f"{self.path} is a symbolic link; a ledger is never opened through a link: put the real file there "
                f"(or rebuild it from the files with 'audioset-fewshot recover --root {self.path.parent}')"
            )
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
            raise DownloadError(
                f"{self.path}: ledger schema_version {version}, this version reads {SCHEMA_VERSION}; use a matching audioset-fewshot or a new root"
            )
        if version == 0 and (self.readonly or (self._existed and not self._safe_to_start())):
            raise DownloadError(f"{self.path} holds no ledger (empty or garbled); {recover_hint(self.path)}")
        if self.readonly:
            return
        if version == 0:
            with self._tx():
                for stmt in _SCHEMA:
                    self._db.execute(stmt)
                self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                self._db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('created_at', ?)", (utc_now(),))
                self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        # a ledger written before a column joined its record gains the column (NULL or its default)
        missing: list[tuple[str, str, str]] = []
        for table, cols in _TABLES.items():
            have = {str(r[1]) for r in self._db.execute(f"PRAGMA table_info({table})")}  # table: a constant
            missing += [(table, name, decl) for name, decl in cols if name not in have]
        if missing:
            with self._tx():
                for table, name, decl in missing:  # names and declarations come from the records
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")

    def _safe_to_start(self) -> bool:
        """An existing file without a ledger in it may become a new ledger only when it holds
        no table and no clip file lies beside it (a first run killed before its first commit)."""
        if self._db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]:
            return False
        audio = self.path.parent / "audio"
        return not (audio.is_dir() and any(p.is_file() for p in audio.rglob("*")))

    class _Tx:
        """One write transaction; a disk that refuses the write (full, read-only) is a
        :class:`StorageError` naming the ledger and the fix, and the transaction is rolled back."""

        def __init__(self, db: sqlite3.Connection, path: Path) -> None:
            self.db, self.path = db, path

        def __enter__(self) -> None:
            try:
                self.db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as err:
                mapped = sqlite_storage_error(err, self.path)
                if mapped is None:
                    raise
                raise mapped from err

        def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
            if exc is None:
                try:
                    self.db.execute("COMMIT")
                    return
                except sqlite3.OperationalError as err:
                    exc = err
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            mapped = sqlite_storage_error(exc, self.path) if isinstance(exc, sqlite3.OperationalError) else None
            if mapped is not None:
                raise mapped from exc
            if exc_type is None:  # the commit failed otherwise
                raise exc

    def _tx(self) -> Ledger._Tx:
        return Ledger._Tx(self._db, self.path)

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
        versions: dict[str | None, Mapping[str, str] | None] = {}
        return [LedgerRow.from_db(r, versions) for r in self._db.execute(sql, args)]

    def row(self, clip_id: str) -> LedgerRow | None:
        r = self._db.execute("SELECT * FROM clips WHERE clip_id = ?", (clip_id,)).fetchone()
        return None if r is None else LedgerRow.from_db(r)

    def attempts(self, clip_id: str | None = None) -> list[AttemptRow]:
        if clip_id is None:
            cur = self._db.execute("SELECT * FROM attempts ORDER BY attempt_id")
        else:
            cur = self._db.execute("SELECT * FROM attempts WHERE clip_id = ? ORDER BY attempt_id", (clip_id,))
        return [AttemptRow(**dict(r)) for r in cur]

    def counts(self) -> dict[str, dict[str, int]]:
        """``{owner_mid: {status: n}}`` over rows in the plan (:func:`class_status`)."""
        return {mid: {str(k): n for k, n in sorted(c.items())} for mid, c in sorted(class_status(self.rows(in_plan=True)).items())}

    def raw_rows(self, table: Literal["clips", "attempts"]) -> list[dict[str, Any]]:
        """Every row of ``table`` as stored (column -> value), to copy results between
        ledgers (``merge``); readers of results use :meth:`rows`."""
        if table not in ("clips", "attempts"):
            raise DownloadError(f"unknown ledger table {table!r}; expected clips or attempts")
        return [dict(r) for r in self._db.execute(f"SELECT * FROM {table}")]  # table is one of two constants

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
        session: str | None = None,
        message: str | None = None,
    ) -> LedgerRow:
        """Record one attempt (a ``ClipResult``) and move the clip to its new status, in one
        transaction.  ``counted=False``: the attempt was interrupted by a pool pause (rate
        limit): recorded with its reason, but the clip's attempt count does not grow and
        its status becomes ``failed-transient`` only if it had no result yet.  ``session``:
        the session that made the attempt; ``message``: the text to store instead of the
        result's (the runner's, with secrets scrubbed)."""
        now = utc_now()
        ok = bool(getattr(result, "ok", False))
        reason = getattr(result, "reason", None)
        permanent = bool(getattr(result, "permanent", False))
        if message is None:
            message = getattr(result, "message", None)
        extractions = int(getattr(result, "extractions", 0) or 0)
        tv = getattr(result, "tool_versions", None) or {}
        yt_dlp_version = tv.get("yt_dlp") if isinstance(tv, Mapping) and extractions else None
        player_client = getattr(result, "player_client", None)
        with self._tx():
            self._db.execute(
                "INSERT INTO attempts(clip_id, started_at, finished_at, elapsed_s, ok, reason, permanent, counted, message, extractions,"
                " session, yt_dlp_version, player_client) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (clip_id, started_at or now, now, elapsed_s, int(ok), reason, int(permanent), int(counted), message, extractions,
                 session, yt_dlp_version, player_client),
            )  # fmt: skip
            inc = 1 if counted else 0
            if ok:
                values = {f: _plain(getattr(result, f, None)) for f in _RESULT_FIELDS}
                values["fallback"] = int(bool(getattr(result, "fallback", False)))
                values["tool_versions"] = json.dumps(dict(tv), sort_keys=True) if tv else None
                values["session"], values["yt_dlp_version"] = session, yt_dlp_version
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

    def copy_results(self, rows: Mapping[str, Mapping[str, Any]], attempts: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        """Copy the results of ``rows`` (``{clip_id: raw clips row}`` from another ledger of
        the same plan) onto this ledger's rows, keeping their plan columns, and append
        their ``attempts``; one transaction, then a WAL checkpoint (``merge``)."""
        plan_cols = {"clip_id", "in_plan", "owner_mid", "rank", "labels", "source"}
        cols = [r[1] for r in self._db.execute("PRAGMA table_info(clips)")]
        att_cols = [r[1] for r in self._db.execute("PRAGMA table_info(attempts)") if r[1] != "attempt_id"]
        with self._tx():
            for cid in sorted(rows):
                row = rows[cid]
                names = [c for c in cols if c in row and c not in plan_cols]
                self._db.execute(f"UPDATE clips SET {', '.join(f'{c} = ?' for c in names)} WHERE clip_id = ?", [row[c] for c in names] + [cid])
                for a in sorted(attempts.get(cid, ()), key=lambda a: a.get("attempt_id", 0)):
                    names_a = [c for c in att_cols if c in a]
                    self._db.execute(f"INSERT INTO attempts({', '.join(names_a)}) VALUES ({', '.join('?' * len(names_a))})", [a[c] for c in names_a])
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def mark(self, clip_id: str, status: str, *, reason: str | None = None, message: str | None = None) -> None:
        """Set a clip's status by hand (e.g. back to pending when its file vanished)."""
        if status not in STATUSES:
            raise DownloadError(f"unknown ledger status {status!r}; expected one of {', '.join(STATUSES)}")
        with self._tx():
            if status == "ok":
                self._db.execute(
                    "UPDATE clips SET status = ?, reason = ?, message = ?, updated_at = ? WHERE clip_id = ?", (status, reason, message, utc_now(), clip_id)
                )
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
