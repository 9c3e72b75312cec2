"""The SQLite ledger: schema, sync with the plan, attempts, durability."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest

from audioset_fewshot.download.ledger import SCHEMA_VERSION, Ledger
from audioset_fewshot.errors import DownloadError
from audioset_fewshot.plan import PlanEntry, SamplingPlan


def _plan(n: int, mid: str = "/m/0dog", target: int = 2) -> SamplingPlan:
    entries = [PlanEntry(f"abcdefghij{k}_0", f"abcdefghij{k}", 0.0, 10.0, mid, (mid,), "balanced", k) for k in range(n)]
    return SamplingPlan.build(entries, {mid: target})


@dataclass(frozen=True)
class Res:
    ok: bool
    reason: str | None = None
    permanent: bool = False
    message: str | None = None
    sha256: str | None = None
    samples: int | None = None
    sample_rate_hz: int | None = None
    itag: str | None = None
    license: str | None = None
    extractions: int = 1
    fallback: bool = False
    tool_versions: dict | None = None


def test_schema_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as led:
        rep = led.sync_plan(_plan(3))
        assert rep.added == 3
        assert led.meta("schema_version") == str(SCHEMA_VERSION)
        assert len(led.rows("pending")) == 3
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    cols = {r[1] for r in db.execute("PRAGMA table_info(clips)")}
    assert {"clip_id", "status", "reason", "attempts", "sha256", "license", "uploader", "fallback", "trim_start_s", "obtained_at"} <= cols
    db.close()


def test_attempts_move_status_and_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    plan = _plan(3)
    with Ledger(path) as led:
        led.sync_plan(plan)
        ids = [e.clip_id for e in plan.entries]
        led.record_attempt(
            ids[0],
            Res(True, sha256="a" * 64, samples=160000, sample_rate_hz=16000, itag="140", license="cc", tool_versions={"yt-dlp": "x"}),
            relpath="audio/m_0dog/x.flac",
        )
        led.record_attempt(ids[1], Res(False, "unavailable", True, "Video unavailable"))
        led.record_attempt(ids[2], Res(False, "http-5xx", False, "HTTP 503"))
        led.record_attempt(ids[2], Res(False, "rate-limited", False, "try again later"), counted=False)
    # a new connection (as after kill -9) sees every committed change
    with Ledger(path) as led:
        r0, r1, r2 = (led.row(i) for i in ids)
        assert r0.status == "ok" and r0.samples == 160000 and r0.path == "audio/m_0dog/x.flac" and r0.attempts == 1
        assert r1.status == "failed-permanent" and r1.reason == "unavailable"
        assert r2.status == "failed-transient" and r2.reason == "rate-limited" and r2.attempts == 1  # the paused attempt is not counted
        att = led.attempts(ids[2])
        assert [a.counted for a in att] == [1, 0]
        assert led.counts() == {"/m/0dog": {"ok": 1, "failed-permanent": 1, "failed-transient": 1}}
        led.mark(ids[0], "pending")
        assert led.row(ids[0]).path is None
        with pytest.raises(DownloadError, match="unknown ledger status"):
            led.mark(ids[0], "done")


def test_sync_never_drops_results(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.sqlite") as led:
        led.sync_plan(_plan(4))
        led.record_attempt("abcdefghij0_0", Res(True), relpath="audio/x.flac")
        smaller = _plan(2, target=1)  # entries 0, 1 only
        smaller = SamplingPlan.build(
            [e for e in smaller.entries if e.rank == 0] + [PlanEntry("abcdefghijZ_0", "abcdefghijZ", 0.0, 10.0, "/m/0dog", ("/m/0dog",), "eval", 5)],
            {"/m/0dog": 1},
        )
        rep = led.sync_plan(smaller)
        assert rep.added == 1 and rep.dropped == 3
        assert {r.clip_id for r in led.rows()} == {"abcdefghij0_0", "abcdefghijZ_0"}
        led.sync_plan(SamplingPlan.build([smaller.entries[1]], {"/m/0dog": 1}))
        kept = led.row("abcdefghij0_0")
        assert kept is not None and kept.status == "ok" and kept.in_plan == 0
        assert led.rows(in_plan=True)[0].clip_id == "abcdefghijZ_0"
        assert led.meta("plan_hash") is not None


def test_foreign_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=99")
    db.commit()
    db.close()
    with pytest.raises(DownloadError, match="schema_version 99"):
        Ledger(path)
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(DownloadError, match="not a readable ledger"):
        Ledger(tmp_path / "junk.sqlite")


def test_one_typed_record_matches_the_schema_and_one_aggregation(tmp_path: Path) -> None:
    import dataclasses

    from audioset_fewshot.download.ledger import ClipStatus, LedgerRow, class_status
    from audioset_fewshot.manifest._ledger import LedgerClip, read_ledger

    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as led:
        led.sync_plan(_plan(4))
        led.record_attempt(
            "abcdefghij0_0",
            Res(ok=True, sha256="ab" * 32, samples=160000, sample_rate_hz=16000, fallback=True, tool_versions={"yt-dlp": "1"}),
            counted=True,
            relpath="audio/x.flac",
        )
        led.record_attempt("abcdefghij1_0", Res(ok=False, reason="private", permanent=True), counted=True)
        cols = [r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(clips)")]
        rows = led.rows()
    # the record is the table: same columns, same order
    assert [f.name for f in dataclasses.fields(LedgerRow)] == cols
    assert LedgerClip is LedgerRow and read_ledger(path) == rows
    ok = rows[0]
    assert ok.status is ClipStatus.OK and ok.status == "ok" and ok.labels == ("/m/0dog",)
    assert ok.fallback is True and ok.in_plan is True and ok.tool_versions == {"yt-dlp": "1"}
    assert rows[1].status is ClipStatus.FAILED_PERMANENT and rows[1].status.failed
    counts = class_status(rows)["/m/0dog"]
    assert (counts[ClipStatus.OK], counts[ClipStatus.FAILED_PERMANENT], counts[ClipStatus.PENDING]) == (1, 1, 2)
    with Ledger(path, readonly=True) as led:
        assert led.counts() == {"/m/0dog": {"failed-permanent": 1, "ok": 1, "pending": 2}}


def test_a_ledger_without_the_session_columns_is_read_and_gains_them(tmp_path: Path) -> None:
    """A ledger written before sessions (no session / yt_dlp_version / player_client
    columns): read-only readers see None, a writer adds the columns and records them."""
    path = tmp_path / "ledger.sqlite"
    plan = _plan(2)
    with Ledger(path) as led:
        led.sync_plan(plan)
        led.record_attempt(plan.entries[0].clip_id, Res(True, sha256="a" * 64, samples=1, tool_versions={"yt_dlp": "2025.1.1"}), relpath="x.flac")
    db = sqlite3.connect(path)
    for table in ("clips", "attempts"):
        for col in ("session", "yt_dlp_version", "player_client"):
            db.execute(f"ALTER TABLE {table} DROP COLUMN {col}")
    db.commit()
    db.close()
    with Ledger(path, readonly=True) as led:
        old = led.row(plan.entries[0].clip_id)
        assert old is not None and old.status == "ok" and old.session is None and old.player_client is None
        assert [a.session for a in led.attempts()] == [None]
    with Ledger(path) as led:
        led.record_attempt(
            plan.entries[1].clip_id, Res(True, sha256="b" * 64, samples=1, tool_versions={"yt_dlp": "2026.11.23"}), relpath="y.flac", session="acct"
        )
        new = led.row(plan.entries[1].clip_id)
        assert new is not None and new.session == "acct" and new.yt_dlp_version == "2026.11.23"
        assert [a.session for a in led.attempts()] == [None, "acct"]


# the clips table as the first schema-1 ledgers wrote it (before origin and session columns)
_FIRST_CLIPS = (
    "CREATE TABLE clips (clip_id TEXT PRIMARY KEY, ytid TEXT NOT NULL, start_s REAL NOT NULL, end_s REAL NOT NULL,"
    " owner_mid TEXT NOT NULL, labels TEXT NOT NULL, source TEXT NOT NULL, rank INTEGER NOT NULL,"
    " status TEXT NOT NULL DEFAULT 'pending', reason TEXT, message TEXT, attempts INTEGER NOT NULL DEFAULT 0,"
    " created_at TEXT NOT NULL, updated_at TEXT NOT NULL, obtained_at TEXT, path TEXT, sha256 TEXT, samples INTEGER,"
    " sample_rate_hz INTEGER, itag TEXT, codec TEXT, container TEXT, source_sample_rate_hz INTEGER, source_channels INTEGER,"
    " trim_start_s REAL, trim_end_s REAL, padded_samples INTEGER, license TEXT, uploader TEXT, channel_id TEXT, title TEXT,"
    " upload_date TEXT, fallback INTEGER, in_plan INTEGER NOT NULL DEFAULT 1, tool_versions TEXT,"
    " extractions INTEGER NOT NULL DEFAULT 0)"
)
_FIRST_ATTEMPTS = (
    "CREATE TABLE attempts (attempt_id INTEGER PRIMARY KEY AUTOINCREMENT, clip_id TEXT NOT NULL, started_at TEXT NOT NULL,"
    " finished_at TEXT NOT NULL, elapsed_s REAL, ok INTEGER NOT NULL, reason TEXT, permanent INTEGER NOT NULL DEFAULT 0,"
    " counted INTEGER NOT NULL DEFAULT 1, message TEXT, extractions INTEGER NOT NULL DEFAULT 0)"
)


def test_schema_is_generated_from_the_records(tmp_path: Path) -> None:
    import dataclasses

    from audioset_fewshot.download.ledger import AttemptRow, LedgerRow

    path = tmp_path / "ledger.sqlite"
    Ledger(path).close()
    db = sqlite3.connect(path)
    info = {t: {str(r[1]): (str(r[2]), int(r[3]), r[4], int(r[5])) for r in db.execute(f"PRAGMA table_info({t})")} for t in ("clips", "attempts")}
    db.close()
    assert list(info["clips"]) == [f.name for f in dataclasses.fields(LedgerRow)]
    assert list(info["attempts"]) == [f.name for f in dataclasses.fields(AttemptRow)]
    # types, nullability and defaults follow the annotations and the fields' defaults
    assert info["clips"]["clip_id"] == ("TEXT", 0, None, 1)
    assert info["clips"]["status"] == ("TEXT", 1, "'pending'", 0)
    assert info["clips"]["start_s"] == ("REAL", 1, None, 0)
    assert info["clips"]["in_plan"] == ("INTEGER", 1, "1", 0)
    assert info["clips"]["fallback"] == ("INTEGER", 0, None, 0)
    assert info["clips"]["labels"] == ("TEXT", 1, None, 0)
    assert info["clips"]["tool_versions"] == ("TEXT", 0, None, 0)
    assert info["attempts"]["counted"] == ("INTEGER", 1, "1", 0)


def test_a_ledger_of_the_first_schema_gains_the_new_columns(tmp_path: Path) -> None:
    import dataclasses

    from audioset_fewshot.download.ledger import AttemptRow, LedgerRow

    path = tmp_path / "ledger.sqlite"
    db = sqlite3.connect(path)
    db.execute(_FIRST_CLIPS)
    db.execute(_FIRST_ATTEMPTS)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute(
        "INSERT INTO clips(clip_id, ytid, start_s, end_s, owner_mid, labels, source, rank, status, created_at, updated_at, path, sha256)"
        " VALUES ('abcdefghij0_0', 'abcdefghij0', 0, 10, '/m/0dog', '/m/0dog', 'balanced', 0, 'ok', 't', 't', 'audio/x.flac', 'ab')"
    )
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    db.commit()
    db.close()
    with Ledger(path) as led:
        (row,) = led.rows()
        assert row.status == "ok" and row.sha256 == "ab" and row.session is None and row.origin is None
        led.record_attempt("abcdefghij0_0", Res(ok=False, reason="private", permanent=True), session="s1")
        assert led.attempts()[0].session == "s1"
    db = sqlite3.connect(path)
    assert [r[1] for r in db.execute("PRAGMA table_info(clips)")] == [f.name for f in dataclasses.fields(LedgerRow)]
    assert [r[1] for r in db.execute("PRAGMA table_info(attempts)")] == [f.name for f in dataclasses.fields(AttemptRow)]
    db.close()
