"""Scheduling logic of the runner with an injected fetch function (fast, no network).

The real fetcher against the media server is exercised in test_runner_server.py.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from audioset_fewshot.config import DownloadOptions
from audioset_fewshot.download.ledger import Ledger
from audioset_fewshot.download.runner import RootLock, backoff_delay, run_download, watch_url
from audioset_fewshot.errors import DiskFullError, DownloadError, LockError, ValidationError
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.plan import PlanEntry, SamplingPlan

DOG, CAT = "/m/0dog", "/m/0cat"


@dataclass(frozen=True)
class Res:
    ok: bool
    reason: str | None = None
    permanent: bool = False
    message: str | None = None
    path: Path | None = None
    sha256: str | None = None
    samples: int | None = None
    extractions: int = 1


class FakeFetch:
    """Outcome per YouTube ID: a list of results consumed per call (last one repeats)."""

    def __init__(self, outcomes: dict[str, list[str]] | None = None, delay_s: float = 0.0) -> None:
        self.outcomes = outcomes or {}
        self.calls: list[str] = []
        self.delay_s = delay_s
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0

    def __call__(self, url: str, *, start_s: float, end_s: float, dest: Path, **kw: object) -> Res:
        ytid = url.split("v=")[1]
        with self.lock:
            self.calls.append(ytid)
            seq = self.outcomes.get(ytid, ["ok"])
            n = self.calls.count(ytid)
            kind = seq[min(n, len(seq)) - 1]
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            time.sleep(self.delay_s)
            if kind == "ok":
                dest.parent.mkdir(parents=True, exist_ok=True)
                data = b"fLaC" + ytid.encode()
                dest.write_bytes(data)
                # the real sha256: a rerun checks every ok file against it
                return Res(True, path=dest, sha256=hashlib.sha256(data).hexdigest(), samples=160000)
            permanent = kind in ("unavailable", "private")
            return Res(False, kind, permanent, f"fake {kind}")
        finally:
            with self.lock:
                self.active -= 1


def yt(mid: str, k: int) -> str:
    return f"{mid[-3:]}{k:08d}"


def plan_of(n: int, target: int, mids: tuple[str, ...] = (DOG, CAT)) -> SamplingPlan:
    entries = [PlanEntry(f"{yt(m, k)}_0", yt(m, k), 0.0, 10.0, m, (m,), "balanced", k) for m in mids for k in range(n)]
    return SamplingPlan.build(entries, {m: target for m in mids}, params={"seed": 0})


FAST = {"max_per_hour": None, "min_interval_s": 0.0, "backoff_s": 0.01, "min_free": "0B", "base_url": "http://127.0.0.1:9"}


def test_top_up_in_rank_order_without_overfetch(tmp_path: Path) -> None:
    fetch = FakeFetch({yt(DOG, 1): ["unavailable"], yt(DOG, 3): ["private"], yt(CAT, 0): ["unavailable"]}, delay_s=0.01)
    rep = run_download(plan_of(8, 3), tmp_path, DownloadOptions(jobs=4, **FAST), fetch=fetch)
    with Ledger(DatasetLayout(tmp_path).ledger_file) as led:
        ok = {m: sorted(r.rank for r in led.rows("ok") if r.owner_mid == m) for m in (DOG, CAT)}
    assert ok == {DOG: [0, 2, 4], CAT: [1, 2, 3]}
    assert rep.complete and rep.obtained == 6 and rep.failures_by_reason == {"private": 1, "unavailable": 2}
    assert len(fetch.calls) == 9  # 6 obtained + 3 failed: nothing beyond the need
    assert fetch.max_active <= 4
    assert (tmp_path / "audio" / "m_0dog" / f"{yt(DOG, 0)}_0.flac").is_file()
    # a rerun of a finished plan makes no call at all
    again = FakeFetch()
    rep2 = run_download(plan_of(8, 3), tmp_path, DownloadOptions(jobs=4, **FAST), fetch=again)
    assert again.calls == [] and rep2.complete and rep2.obtained_now == 0


def test_transient_failures_retry_with_backoff(tmp_path: Path) -> None:
    fetch = FakeFetch({yt(DOG, 0): ["http-5xx", "network", "ok"], yt(DOG, 1): ["http-5xx"]})
    rep = run_download(plan_of(3, 2, (DOG,)), tmp_path, DownloadOptions(jobs=2, retries=2, **FAST), fetch=fetch)
    assert fetch.calls.count(yt(DOG, 0)) == 3
    assert fetch.calls.count(yt(DOG, 1)) == 3  # 1 + 2 retries, then the next candidate
    with Ledger(DatasetLayout(tmp_path).ledger_file) as led:
        assert sorted(r.rank for r in led.rows("ok")) == [0, 2]
        assert led.row(f"{yt(DOG, 1)}_0").status == "failed-transient"
    assert rep.complete
    # a rerun retries the transient row, which ranks inside the class's set: it now succeeds,
    # so the class ends with its first two obtainable candidates and rank 2 goes back to pending
    again = FakeFetch()
    run_download(plan_of(3, 2, (DOG,)), tmp_path, DownloadOptions(jobs=2, **FAST), fetch=again)
    assert again.calls == [yt(DOG, 1)]
    with Ledger(DatasetLayout(tmp_path).ledger_file) as led:
        assert sorted(r.rank for r in led.rows("ok")) == [0, 1]
        displaced = led.row(f"{yt(DOG, 2)}_0")
        assert displaced.status == "pending" and displaced.reason == "surplus"
    assert not (tmp_path / "audio" / "m_0dog" / f"{yt(DOG, 2)}_0.flac").exists()
    # and a third run has nothing left to do
    third = FakeFetch()
    run_download(plan_of(3, 2, (DOG,)), tmp_path, DownloadOptions(jobs=2, **FAST), fetch=third)
    assert third.calls == []
    d1 = backoff_delay(5.0, 1, seed=0, clip_id="x")
    assert 2.5 <= d1 <= 7.5 and d1 == backoff_delay(5.0, 1, seed=0, clip_id="x")
    assert 5.0 <= backoff_delay(5.0, 2, seed=0, clip_id="x") <= 15.0


def test_rate_limit_pauses_pool_and_is_not_a_failure(tmp_path: Path) -> None:
    fetch = FakeFetch({yt(DOG, 1): ["rate-limited", "ok"], yt(CAT, 2): ["http-429", "ok"]}, delay_s=0.02)
    t0 = time.monotonic()
    rep = run_download(plan_of(4, 4), tmp_path, DownloadOptions(jobs=3, retries=0, pause_s=0.3, max_pauses=4, **FAST), fetch=fetch)
    assert time.monotonic() - t0 >= 0.3
    assert rep.complete and rep.failures_by_reason == {} and 1 <= rep.pauses <= 2
    with Ledger(DatasetLayout(tmp_path).ledger_file) as led:
        row = led.row(f"{yt(DOG, 1)}_0")
        assert row.status == "ok" and row.attempts == 1  # the paused attempt does not count
        assert [a.counted for a in led.attempts(row.clip_id)] == [0, 1]


def test_too_many_pauses_stop_with_a_clear_message(tmp_path: Path) -> None:
    fetch = FakeFetch({yt(DOG, 0): ["bot-check"]})
    with pytest.raises(DownloadError, match="rate-limited this session.*max_pauses=1"):
        run_download(plan_of(2, 2, (DOG,)), tmp_path, DownloadOptions(jobs=1, pause_s=0.05, max_pauses=1, **FAST), fetch=fetch)
    with Ledger(DatasetLayout(tmp_path).ledger_file) as led:
        assert led.row(f"{yt(DOG, 0)}_0").status == "failed-transient"


def test_early_abort_names_the_fix(tmp_path: Path) -> None:
    fetch = FakeFetch({yt(DOG, k): ["extractor-broken"] for k in range(20)})
    with pytest.raises(DownloadError, match="first 5 attempts all failed with 'extractor-broken'.*deno"):
        run_download(plan_of(20, 20, (DOG,)), tmp_path, DownloadOptions(jobs=2, retries=0, early_abort=5, **FAST), fetch=fetch)
    assert len(fetch.calls) <= 7


def test_lock_disk_and_resume_cleanup(tmp_path: Path) -> None:
    layout = DatasetLayout(tmp_path)
    with RootLock(layout):
        with pytest.raises(LockError, match="another run is using"):
            run_download(plan_of(2, 1), tmp_path, DownloadOptions(**FAST), fetch=FakeFetch())
    fetch = FakeFetch()
    with pytest.raises(DiskFullError, match="min_free.*run the same command again"):
        run_download(plan_of(2, 1), tmp_path, DownloadOptions(**{**FAST, "min_free": "1000TB"}), fetch=fetch)
    assert fetch.calls == []
    # leftovers of a killed run: a temp file and a clip file the ledger does not hold as ok
    stray = layout.audio_dir / "m_0dog" / ".tmp-x.flac.k3j9x_q2.flac"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"partial")
    orphan = layout.clip_path(DOG, yt(DOG, 1), 0.0)
    orphan.write_bytes(b"written then killed")
    rep = run_download(plan_of(2, 1), tmp_path, DownloadOptions(**FAST), fetch=fetch)
    assert rep.complete and not stray.exists() and not orphan.exists()
    # an ok clip whose file vanished is fetched again
    layout.clip_path(DOG, yt(DOG, 0), 0.0).unlink()
    again = FakeFetch()
    run_download(plan_of(2, 1), tmp_path, DownloadOptions(**FAST), fetch=again)
    assert again.calls == [yt(DOG, 0)]


def test_exact_plan_takes_every_entry(tmp_path: Path) -> None:
    plan = SamplingPlan.exact(plan_of(3, 1).entries)
    fetch = FakeFetch()
    rep = run_download(plan, tmp_path, DownloadOptions(jobs=2, **FAST), fetch=fetch)
    assert rep.complete and rep.obtained == 6 and len(fetch.calls) == 6


def test_hostile_id_never_reaches_a_url() -> None:
    with pytest.raises(ValidationError, match="invalid YouTube ID"):
        watch_url("http://127.0.0.1:1", "../../etc/x")
    assert watch_url("http://127.0.0.1:1/", "-abcdefghij") == "http://127.0.0.1:1/watch?v=-abcdefghij"


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(failing=st.sets(st.integers(0, 15)), jobs=st.integers(1, 5), target=st.integers(1, 6))
def test_final_set_is_first_obtainable_in_rank_order(tmp_path_factory: pytest.TempPathFactory, failing: set[int], jobs: int, target: int) -> None:
    """Whatever the workers and the failures: each class ends with its first `target`
    obtainable candidates in rank order, and the plan file never changes."""
    from audioset_fewshot.plan import write_plan

    root = tmp_path_factory.mktemp("prop")
    plan = plan_of(8, target)
    layout = DatasetLayout(root)
    write_plan(plan, layout)
    before = layout.plan_file.read_bytes()
    outcomes = {}
    for k, e in enumerate(plan.entries):
        if k in failing:
            outcomes[e.ytid] = ["unavailable"] if k % 2 else ["http-5xx"]
    fetch = FakeFetch(outcomes)
    run_download(plan, root, DownloadOptions(jobs=jobs, retries=1, **FAST), fetch=fetch)
    with Ledger(layout.ledger_file) as led:
        got = {m: sorted(r.rank for r in led.rows("ok") if r.owner_mid == m) for m in (DOG, CAT)}
    for m, entries in plan.by_class().items():
        good = [e.rank for e in entries if e.ytid not in outcomes][:target]
        assert got[m] == good
    assert layout.plan_file.read_bytes() == before


def test_cookies_reach_the_fetcher_untouched(tmp_path: Path) -> None:
    cookies = tmp_path / "cookies.txt"
    text = "# Netscape HTTP Cookie File\n.youtube.com\tTRUE\t/\tTRUE\t0\tSID\tvalue\n"
    cookies.write_text(text)
    seen: list[object] = []
    inner = FakeFetch()

    def fetch(url: str, **kw: object) -> Res:
        seen.append(kw["cookies"])
        return inner(url, **kw)  # type: ignore[arg-type]

    root = tmp_path / "root"
    run_download(plan_of(2, 2), root, DownloadOptions(jobs=2, cookies=str(cookies), **FAST), fetch=fetch)
    assert seen == [str(cookies)] * 4 and cookies.read_text() == text
    assert not any(b"SID" in p.read_bytes() for p in root.rglob("*") if p.is_file())


def test_permanent_failures_are_retried_only_when_asked(tmp_path: Path) -> None:
    dead = yt(DOG, 1)
    rep = run_download(plan_of(2, 2, (DOG,)), tmp_path, DownloadOptions(**FAST), fetch=FakeFetch({dead: ["unavailable"]}))
    assert not rep.complete and rep.classes[0].obtained == 1 and rep.classes[0].shortfall == 1
    again = FakeFetch()
    run_download(plan_of(2, 2, (DOG,)), tmp_path, DownloadOptions(**FAST), fetch=again)
    assert again.calls == []  # a permanent failure is never retried by default
    revived = FakeFetch()
    rep = run_download(plan_of(2, 2, (DOG,)), tmp_path, DownloadOptions(retry_failed=True, **FAST), fetch=revived)
    assert revived.calls == [dead] and rep.complete
    # permanent failures never trigger the early abort, however many
    many = FakeFetch({yt(DOG, k): ["unavailable"] for k in range(6)})
    rep = run_download(plan_of(8, 2, (DOG,)), tmp_path / "x", DownloadOptions(early_abort=3, **FAST), fetch=many)
    assert rep.complete and len(many.calls) == 8
