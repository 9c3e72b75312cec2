"""Download on Dask (a LocalCluster of two worker processes) with the real fetcher, yt-dlp and
ffmpeg against the 127.0.0.1 media server.

Must hold: a Dask run and a local run of the same plan give byte-identical clips.csv and
splits.json; killing a worker mid-download still completes with the same bytes, the ledger
with no duplicate and no lost clip; the scheduler going away ends the run with a clear error
and a rerun resumes from the ledger.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.session_media import prepared_cache
from support.sessions import assert_paused_only, cookie_file

from audioset_fewshot.config import ClusterOptions, DownloadOptions, SessionConfig, config_from_dict
from audioset_fewshot.demo.budget import Budget, SessionBudgets
from audioset_fewshot.demo.server import MediaServer, SourceSpec
from audioset_fewshot.download.distributed import download_on, fits, run_download_dask
from audioset_fewshot.download.ledger import Ledger
from audioset_fewshot.download.runner import run_download
from audioset_fewshot.download.sessions import resolve_sessions
from audioset_fewshot.engine import open_engine
from audioset_fewshot.errors import ConfigError, DownloadError
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.manifest.build import build_manifest
from audioset_fewshot.plan import PlanEntry, SamplingPlan, write_plan
from audioset_fewshot.splits import build_splits

distributed = pytest.importorskip("distributed")

# real ontology classes (Dog, Cat, Speech, Music), so that the splits have names and parents
CLASSES = ("/m/0bt9lr", "/m/01yrx", "/m/09x0r", "/m/04rlf")
N_PER_CLASS = 4
TARGET = 2
FAULTS = {("/m/0bt9lr", 0): "unavailable", ("/m/01yrx", 1): "private"}
FAST = {"max_per_hour": None, "min_interval_s": 0.0, "backoff_s": 0.05, "retries": 1, "min_free": "0B", "timeout_s": 30.0}


def yt(mid: str, k: int) -> str:
    return f"dk{mid[-4:].replace('/', 'x')}{k:05d}"


def ids() -> list[str]:
    return [yt(m, k) for m in CLASSES for k in range(N_PER_CLASS)]


def the_plan() -> SamplingPlan:
    entries = [PlanEntry(f"{yt(m, k)}_1000", yt(m, k), 1.0, 4.0, m, (m,), "balanced", k) for m in CLASSES for k in range(N_PER_CLASS)]
    params = {"seed": 0, "max_per_class": TARGET, "sources": ["balanced"], "owner_policy": "fewest-candidates", "shard": None, "classes": sorted(CLASSES)}
    return SamplingPlan.build(entries, dict.fromkeys(CLASSES, TARGET), params=params)


def catalog() -> dict[str, SourceSpec]:
    return {y: SourceSpec(class_key=f"demo-class-{i % 3}", duration_s=5.0) for i, y in enumerate(ids())}


@pytest.fixture(scope="module")
def media_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sources encoded once for the module (5 s each, m4a only)."""
    return prepared_cache(tmp_path_factory, catalog())


def server(cache: Path, *, latency_s: float = 0.0) -> MediaServer:
    srv = MediaServer(cache_dir=cache, catalog=catalog(), idle_timeout_s=120, latency_s=latency_s)
    for (mid, k), fault in FAULTS.items():
        srv.set_fault(yt(mid, k), fault)
    return srv


@pytest.fixture(scope="module")
def cluster() -> Iterator[distributed.Client]:
    """Two worker processes (two threads each) for the module; bounded start and stop."""
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=True, host="127.0.0.1", dashboard_address=":0", worker_dashboard_address=None, timeout="60s") as lc,
        distributed.Client(lc, timeout="60s") as client,
    ):  # fmt: skip
        client.wait_for_workers(2, timeout=60)
        yield client


@pytest.fixture(scope="module")
def reference(media_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local run of the plan (the pool of run_download), the bytes every Dask run must give."""
    root = tmp_path_factory.mktemp("reference")
    with server(media_cache) as srv:
        rep = run_download(the_plan(), root, DownloadOptions(jobs=2, base_url=srv.base_url, **FAST))
    assert rep.complete and rep.failures_by_reason == {"private": 1, "unavailable": 1}
    return root


def files_of(root: Path) -> dict[str, str]:
    audio = DatasetLayout(root).audio_dir
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(audio.rglob("*")) if p.is_file()}


def ledger_facts(root: Path) -> tuple[dict[str, str], dict[str, int]]:
    """{clip_id: status} and, per ok clip, how many ok attempts the ledger holds."""
    with Ledger(DatasetLayout(root).ledger_file, readonly=True) as led:
        status = {r.clip_id: str(r.status) for r in led.rows()}
        ok_attempts: dict[str, int] = {}
        for a in led.attempts():
            if a.ok:
                ok_attempts[a.clip_id] = ok_attempts.get(a.clip_id, 0) + 1
    return status, ok_attempts


def two_sessions(base_url: str, **extra: object) -> DownloadOptions:
    """The download options of two sessions, a and b (jobs 2 each)."""
    return DownloadOptions(jobs=2, base_url=base_url, sessions=[SessionConfig(name="a"), SessionConfig(name="b")], **{**FAST, **extra})


def assert_same_as(reference: Path, root: Path) -> None:
    """The same files as the reference run, and a ledger where every ok clip has exactly one
    ok attempt (no duplicate) and the ok clips are the reference's (none lost)."""
    assert files_of(root) == files_of(reference)
    status, ok_attempts = ledger_facts(root)
    ref_status, _ = ledger_facts(reference)
    assert status == ref_status
    assert set(ok_attempts) == {c for c, st in status.items() if st == "ok"} and set(ok_attempts.values()) == {1}


@pytest.mark.slow
def test_dask_run_gives_the_local_run_bytes(media_cache: Path, reference: Path, cluster: distributed.Client, tmp_path: Path) -> None:
    local, dask_root = reference, tmp_path / "dask"
    with server(media_cache) as srv:
        # through the engine of the cluster section (cluster.engine dask, the module's scheduler as its address)
        with open_engine(ClusterOptions(engine="dask", address=cluster.scheduler.address)) as engine:
            rep_dask = download_on(engine, the_plan(), dask_root, two_sessions(srv.base_url))
    assert rep_dask.complete, rep_dask.summary_lines()
    assert rep_dask.failures_by_reason == {"private": 1, "unavailable": 1}
    # both sessions were pinned, each to its own worker, and both fetched
    lines = [line for line in rep_dask.summary_lines() if line.startswith("session ")]
    assert len(lines) == 2 and len({line.split(" on ")[1].split(":")[0] for line in lines}) == 2, lines
    assert_same_as(local, dask_root)
    for root in (local, dask_root):
        if not DatasetLayout(root).clips_csv.exists():
            write_plan(the_plan(), DatasetLayout(root))
            build_manifest(root)
            build_splits(root, seed=0, ratios=(0.5, 0.25, 0.25))
    for name in ("manifest/clips.csv", "splits.json"):
        assert (local / name).read_bytes() == (dask_root / name).read_bytes(), name


def _name_and_pid(dask_worker: distributed.Worker) -> tuple[str, int]:
    return str(dask_worker.name), os.getpid()


def when_media_served(srv: MediaServer, count: int, action: Callable[[], None], *, timeout_s: float = 60.0) -> threading.Thread:
    """Run ``action`` (in a thread) once the server has answered ``count`` media requests."""

    def watch() -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if sum(r.kind == "media" and r.status in (200, 206) for r in srv.requests) >= count:
                action()
                return
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.mark.slow
def test_killing_a_worker_mid_download_loses_and_duplicates_nothing(
    media_cache: Path, reference: Path, cluster: distributed.Client, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pids = dict(cluster.run(_name_and_pid).values())
    victim = pids[min(pids)]  # the worker of session "a" (sessions go to workers in name order)
    with server(media_cache, latency_s=0.15) as srv:
        killer = when_media_served(srv, 3, lambda: os.kill(victim, signal.SIGKILL))
        with caplog.at_level("WARNING", logger="audioset_fewshot.download.distributed"):
            rep = run_download_dask(the_plan(), tmp_path, two_sessions(srv.base_url), client=cluster)
        killer.join(timeout=5)
    assert any("left the cluster" in r.getMessage() for r in caplog.records), "the worker was not killed mid-run"
    assert rep.complete, rep.summary_lines()
    assert_same_as(reference, tmp_path)
    cluster.wait_for_workers(2, timeout=60)  # the nanny restarts the worker for the next tests


@pytest.mark.slow
def test_scheduler_going_away_stops_with_a_clear_error_and_a_rerun_resumes(
    media_cache: Path, reference: Path, cluster: distributed.Client, tmp_path: Path
) -> None:
    sched_file = tmp_path / "scheduler.json"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                  "--scheduler-file", str(sched_file)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    worker = None
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file", str(sched_file), "--nthreads", "2",
                                   "--no-nanny", "--no-dashboard", "--death-timeout", "10", "--name", "lone", "--resources", "yt-r=1"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        with distributed.Client(scheduler_file=str(sched_file), timeout="60s") as client, server(media_cache, latency_s=0.15) as srv:
            client.wait_for_workers(1, timeout=60)
            opts = DownloadOptions(jobs=2, base_url=srv.base_url, **FAST)
            # the session bound to the worker by its resource (the only worker that has it)
            bound = DownloadOptions(jobs=2, base_url=srv.base_url, sessions=[SessionConfig(name="r", resource="yt-r")], **FAST)  # type: ignore[arg-type]
            killer = when_media_served(srv, 3, scheduler.kill)
            errors: list[BaseException] = []

            def run() -> None:
                try:
                    run_download_dask(the_plan(), tmp_path, bound, client=client)
                except BaseException as err:  # collected for the assertion below
                    errors.append(err)

            thread = threading.Thread(target=run, daemon=True)
            t0 = time.monotonic()
            thread.start()
            thread.join(timeout=90)
            killer.join(timeout=5)
            assert not thread.is_alive(), "the run did not end after the scheduler went away"
            assert time.monotonic() - t0 < 60
            assert len(errors) == 1 and isinstance(errors[0], DownloadError), errors
            assert re.search(r"scheduler tcp://127\.0\.0\.1:\d+ went away mid-run.*run the same command to resume", str(errors[0])), errors[0]
            status, _ = ledger_facts(tmp_path)
            assert 0 < sum(st == "ok" for st in status.values()) < 8  # stopped mid-run, what was committed is kept
            with Ledger(DatasetLayout(tmp_path).ledger_file, readonly=True) as led:
                assert {a.session for a in led.attempts()} == {"r"}
            # the rerun, on another cluster, resumes from the ledger: the clips already ok are not asked for again
            done = {c.split("_")[0] for c, st in status.items() if st == "ok"}
            srv.reset_log()
            rep = run_download_dask(the_plan(), tmp_path, opts, client=cluster)
            assert rep.complete, rep.summary_lines()
            assert not done & {r.ytid for r in srv.requests}
            assert_same_as(reference, tmp_path)
    finally:
        for proc in (worker, scheduler):
            if proc is not None:
                proc.kill()
                proc.wait(timeout=30)


def test_a_rate_limit_pauses_only_the_session_it_hit(media_cache: Path, cluster: distributed.Client, tmp_path: Path) -> None:
    budgets = SessionBudgets({"sid:alpha": Budget(2, 600.0)})  # alpha may extract twice in 10 min; beta has no limit
    sessions = [SessionConfig(name="a", cookies=str(cookie_file(tmp_path / "a.txt", "alpha"))),
                SessionConfig(name="b", cookies=str(cookie_file(tmp_path / "b.txt", "beta")))]  # fmt: skip
    t0 = time.monotonic()
    with MediaServer(cache_dir=media_cache, catalog=catalog(), idle_timeout_s=60, session_budgets=budgets) as srv:
        for (mid, k), fault in FAULTS.items():
            srv.set_fault(yt(mid, k), fault)
        o = DownloadOptions(jobs=2, sessions=sessions, pause_s=600.0, max_pauses=2, base_url=srv.base_url, **FAST)  # type: ignore[arg-type]
        rep = run_download_dask(the_plan(), tmp_path / "root", o, client=cluster)
        log = srv.requests
    assert time.monotonic() - t0 < 60  # nobody waited out the 600 s pause
    assert rep.complete and rep.failures_by_reason == {"private": 1, "unavailable": 1} and rep.pauses == 1, rep.summary_lines()
    assert budgets.refused.get("sid:alpha", 0) >= 1 and "sid:beta" not in budgets.refused
    # the summary says where each session lives and that a is paused (until HH:MM)
    lines = {line.split()[1]: line for line in rep.summary_lines() if line.startswith("session ")}
    assert re.fullmatch(r"session a on worker \S+: paused until \d\d:\d\d; \d+ clips, 1 pauses", lines["a"]), lines
    assert re.fullmatch(r"session b on worker \S+: idle; \d+ clips, 0 pauses", lines["b"]), lines
    with Ledger(DatasetLayout(tmp_path / "root").ledger_file, readonly=True) as led:
        assert_paused_only(led.attempts(), log, session="a", sid="alpha", other_sid="beta")


@pytest.mark.slow
def test_two_sessions_on_two_workers_fetch_faster_than_one_session_can(media_cache: Path, cluster: distributed.Client, tmp_path: Path) -> None:
    per_s = 1.0  # each session's budget; the server allows each session 2 extractions per second
    classes = CLASSES[2:]  # 8 clips without faults
    entries = [PlanEntry(f"{yt(m, k)}_1000", yt(m, k), 1.0, 4.0, m, (m,), "balanced", k) for m in classes for k in range(N_PER_CLASS)]
    params = {"seed": 0, "max_per_class": N_PER_CLASS, "sources": ["balanced"], "owner_policy": "fewest-candidates", "shard": None, "classes": sorted(classes)}
    plan = SamplingPlan.build(entries, dict.fromkeys(classes, N_PER_CLASS), params=params)
    budgets = SessionBudgets(default=Budget(2, 1.0))
    sessions = [SessionConfig(name=n, cookies=str(cookie_file(tmp_path / f"{n}.txt", f"sid{n}")), max_per_hour=per_s * 3600) for n in ("a", "b")]
    with MediaServer(cache_dir=media_cache, catalog=catalog(), idle_timeout_s=60, session_budgets=budgets) as srv:
        o = DownloadOptions(jobs=2, sessions=sessions, pause_s=600.0, base_url=srv.base_url, **{**FAST, "max_per_hour": "auto"})  # type: ignore[arg-type]
        t0 = time.monotonic()
        rep = run_download_dask(plan, tmp_path / "root", o, client=cluster)
        elapsed = time.monotonic() - t0
        log = srv.requests
    assert rep.complete and rep.failures_by_reason == {} and rep.pauses == 0 and budgets.refused == {}, rep.summary_lines()
    # one session alone needs at least (n - 1) / per_s seconds for n extractions; two share them
    n = len(entries)
    assert elapsed < (n - 1) / per_s, f"{elapsed:.2f} s: no faster than one session"
    watches = {s: sum(1 for r in log if r.kind == "watch" and r.session == s) for s in ("sid:sida", "sid:sidb")}
    assert watches == {"sid:sida": n // 2, "sid:sidb": n // 2}, watches


def test_sessions_bound_by_worker_name_and_one_no_worker_fits(
    media_cache: Path, reference: Path, cluster: distributed.Client, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    names = sorted(str(w["name"]) for w in cluster.scheduler_info(n_workers=-1)["workers"].values())
    sessions = [SessionConfig(name="a", worker=names[-1]), SessionConfig(name="b", worker="no-such-worker")]
    with server(media_cache) as srv, caplog.at_level("WARNING", logger="audioset_fewshot.download.distributed"):
        o = DownloadOptions(jobs=2, sessions=sessions, base_url=srv.base_url, **FAST)  # type: ignore[arg-type]
        rep = run_download_dask(the_plan(), tmp_path, o, client=cluster)
    assert rep.complete, rep.summary_lines()
    lines = {line.split()[1]: line for line in rep.summary_lines() if line.startswith("session ")}
    assert re.fullmatch(rf"session a on worker {names[-1]}: idle; 8 clips, 0 pauses", lines["a"]), lines
    assert lines["b"] == "session b on worker -: waiting for a worker; 0 clips, 0 pauses"
    assert any("no worker of the cluster fits session(s) b (worker 'no-such-worker')" in r.getMessage() for r in caplog.records)
    assert_same_as(reference, tmp_path)


def test_a_session_bound_both_by_name_and_by_resource_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"'download\.sessions\[0\]\.worker' and 'download\.sessions\[0\]\.resource' are exclusive"):
        config_from_dict({"download": {"sessions": [{"name": "a", "worker": "node-a", "resource": "yt-a"}]}})


def test_a_session_fits_the_worker_of_its_name_or_resource() -> None:
    workers = {"w0": {"name": "0", "resources": {}}, "w1": {"name": "node-b", "resources": {"yt-b": 1.0}}}
    by_name, by_resource, free = (resolve_sessions(DownloadOptions(sessions=[s]))[0] for s in (
        SessionConfig(name="a", worker="node-b"), SessionConfig(name="b", resource="yt-b"), SessionConfig(name="c")))  # fmt: skip
    assert [w for w, rec in workers.items() if fits(by_name, rec)] == ["w1"]
    assert [w for w, rec in workers.items() if fits(by_resource, rec)] == ["w1"]
    assert [w for w, rec in workers.items() if fits(free, rec)] == ["w0", "w1"]


@pytest.mark.slow
def test_the_download_command_on_dask(media_cache: Path, reference: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    write_plan(the_plan(), DatasetLayout(root))
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"root: {root}\nplan:\n  seed: 0\n  max_per_class: {TARGET}\n  sources: [balanced]\ndownload:\n  min_interval_s: 0.0\n  timeout_s: 30.0\n")
    env = {**os.environ, "AUDIOSET_FEWSHOT_PROGRESS": "0"}
    with server(media_cache) as srv:
        args = ["download", "-c", str(cfg), "--base-url", srv.base_url, "--max-per-hour", "0", "--jobs", "2", "--min-free", "0B"]
        run = subprocess.run([sys.executable, "-m", "audioset_fewshot", *args, "--engine", "dask", "--cluster-workers", "2"],
                             capture_output=True, text=True, timeout=300, env=env)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert "engine: Dask LocalCluster of 2 workers" in run.stderr
    assert "INFO distributed" not in run.stderr  # Dask's own chatter only with --debug
    assert f"obtained {2 * len(CLASSES)}/{2 * len(CLASSES)} clips" in run.stdout
    assert re.search(r"^session default on worker \S+: idle; 8 clips, 0 pauses$", run.stdout, re.M), run.stdout
    assert_same_as(reference, root)
