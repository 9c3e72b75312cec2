"""The runner with the real fetcher, yt-dlp and ffmpeg against the 127.0.0.1 media server.

Must hold: a finished run reruns with zero requests for ok / permanently failed clips;
a rate-limit burst pauses the pool and fails no clip; kill -9 at random moments, then a
rerun, gives exactly the clips and files of an uninterrupted run, and no partial file.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from support.download_cli import download_cmd, write_download_config

from audioset_fewshot.config import DownloadOptions
from audioset_fewshot.demo.server import MediaServer, SourceSpec
from audioset_fewshot.download.ledger import Ledger
from audioset_fewshot.download.runner import run_download
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.plan import PlanEntry, SamplingPlan, write_plan

DOG, CAT = "/m/0dog", "/m/0cat"
N_PER_CLASS = 6
TARGET = 3
# faults by (class, rank): permanent ones and a sticky transient one (media 403)
FAULTS = {(DOG, 0): "unavailable", (DOG, 2): "media-403", (CAT, 1): "private", (CAT, 3): "unavailable"}


def yt(mid: str, k: int) -> str:
    return f"rs{mid[-3:]}{k:06d}"


def ids() -> list[str]:
    return [yt(m, k) for m in (DOG, CAT) for k in range(N_PER_CLASS)]


def the_plan() -> SamplingPlan:
    entries = [PlanEntry(f"{yt(m, k)}_1000", yt(m, k), 1.0, 11.0, m, (m,), "balanced", k) for m in (DOG, CAT) for k in range(N_PER_CLASS)]
    params = {"seed": 0, "max_per_class": TARGET, "sources": ["balanced"], "owner_policy": "fewest-candidates", "shard": None, "classes": [CAT, DOG]}
    return SamplingPlan.build(entries, {DOG: TARGET, CAT: TARGET}, params=params)


@pytest.fixture(scope="module")
def media_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sources encoded once for the module (12 s each, m4a only)."""
    cache = tmp_path_factory.mktemp("media")
    with MediaServer(cache_dir=cache, catalog=catalog(), idle_timeout_s=60) as srv:
        srv.prepare(ids(), formats=(140,), workers=2)
    return cache


def catalog() -> dict[str, SourceSpec]:
    return {y: SourceSpec(class_key=f"demo-class-{i % 3}", duration_s=12.0) for i, y in enumerate(ids())}


def server(cache: Path, *, latency_s: float = 0.0) -> MediaServer:
    srv = MediaServer(cache_dir=cache, catalog=catalog(), idle_timeout_s=120, latency_s=latency_s)
    for (mid, k), fault in FAULTS.items():
        srv.set_fault(yt(mid, k), fault)
    return srv


FAST = {"max_per_hour": None, "min_interval_s": 0.0, "backoff_s": 0.05, "retries": 1, "min_free": "0B", "timeout_s": 30.0}


def snapshot(root: Path) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Per class ok clip ids (ledger) and sha256 of every file under audio/."""
    layout = DatasetLayout(root)
    with Ledger(layout.ledger_file) as led:
        per_class: dict[str, list[str]] = {}
        for r in led.rows("ok"):
            per_class.setdefault(r.owner_mid, []).append(r.clip_id)
    files = {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(layout.audio_dir.rglob("*")) if p.is_file()}
    return per_class, files


def test_run_rerun_zero_requests_and_exact_clips(media_cache: Path, tmp_path: Path) -> None:
    with server(media_cache) as srv:
        rep = run_download(the_plan(), tmp_path, DownloadOptions(jobs=3, base_url=srv.base_url, **FAST))
        assert rep.complete, rep.summary_lines()
        per_class, files = snapshot(tmp_path)
        assert sorted(per_class[DOG]) == [f"{yt(DOG, k)}_1000" for k in (1, 3, 4)]
        assert sorted(per_class[CAT]) == [f"{yt(CAT, k)}_1000" for k in (0, 2, 4)]
        assert len(files) == 6
        for rel in files:
            data, sr = sf.read(tmp_path / rel, dtype="int16")
            assert sr == 16000 and data.shape == (160000,) and np.any(data)
        with Ledger(DatasetLayout(tmp_path).ledger_file) as led:
            assert led.row(f"{yt(DOG, 0)}_1000").status == "failed-permanent"
            transient = led.row(f"{yt(DOG, 2)}_1000")
            assert transient.status == "failed-transient" and transient.attempts == 2  # 1 + retries
        assert rep.failures_by_reason == {"format-403": 1, "private": 1, "unavailable": 2}
        srv.reset_log()
        rep2 = run_download(the_plan(), tmp_path, DownloadOptions(jobs=3, base_url=srv.base_url, **FAST))
        # nothing for ok or permanently failed clips; the transient failure ranks inside DOG's
        # set (below an ok clip), so it is tried again, still fails, and nothing changes
        assert {r.ytid for r in srv.requests} == {yt(DOG, 2)}
        assert rep2.obtained_now == 0 and rep2.complete
        assert snapshot(tmp_path) == (per_class, files)


def test_rate_limit_burst_pauses_the_pool_and_fails_nothing(media_cache: Path, tmp_path: Path) -> None:
    with server(media_cache) as srv:
        for mid, k in FAULTS:
            srv.set_fault(yt(mid, k), None)
        srv.rate_limit_burst(3)
        t0 = time.monotonic()
        rep = run_download(the_plan(), tmp_path, DownloadOptions(jobs=3, base_url=srv.base_url, **{**FAST, "pause_s": 1.0, "max_pauses": 3, "retries": 0}))
        assert time.monotonic() - t0 >= 1.0
        assert rep.complete and rep.pauses >= 1
        assert rep.failures_by_reason == {}
        assert rep.attempt_reasons.get("rate-limited", 0) >= 1
        with Ledger(DatasetLayout(tmp_path).ledger_file) as led:
            assert not led.rows(["failed-permanent", "failed-transient"])
            paused = [a for a in led.attempts() if a.reason == "rate-limited"]
            assert paused and all(a.counted == 0 for a in paused)
            # the clips hit by the burst are ok and their attempt count is 1
            assert all(led.row(a.clip_id).status == "ok" and led.row(a.clip_id).attempts == 1 for a in paused)
        watch = [r for r in srv.requests if r.kind == "watch"]
        # after the burst no request came before the pause ended
        first_fail = min(r.time for r in watch if r.fault == "rate-limited")
        after = [r.time for r in watch if r.fault is None and r.time > first_fail]
        assert after and min(after) - first_fail >= 0.9


@pytest.mark.slow
def test_kill_9_then_rerun_gives_the_uninterrupted_result(media_cache: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(20261125)
    env = {**os.environ, "AUDIOSET_FEWSHOT_PROGRESS": "0"}
    # 150 ms per request stretches the run over a few seconds, so that the kills land mid-run
    with server(media_cache, latency_s=0.15) as srv:
        ref_root = tmp_path / "ref"
        run_download(the_plan(), ref_root, DownloadOptions(jobs=2, base_url=srv.base_url, **FAST))
        reference = snapshot(ref_root)

        root = tmp_path / "killed"
        write_plan(the_plan(), DatasetLayout(root))
        cfg = tmp_path / "config.yaml"
        write_download_config(cfg, root, max_per_class=3)
        kills = 0
        progress: list[int] = []
        for i, delay in enumerate(rng.uniform(0.0, 1.5, size=4)):
            # the first interruption is a Ctrl-C (SIGINT), the others kill -9; each lands at a
            # seeded random moment after the process has started fetching (the server saw it)
            sig = signal.SIGINT if i == 0 else signal.SIGKILL
            seen = len(srv.requests)
            proc = subprocess.Popen(download_cmd(cfg, srv.base_url), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + 30
            while len(srv.requests) == seen and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            try:
                proc.wait(timeout=float(delay))
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, sig)
                kills += sig == signal.SIGKILL
            _, err = proc.communicate(timeout=30)
            if sig == signal.SIGINT and proc.returncode != 0:
                assert proc.returncode == 130 and "run the same command again to resume" in err, err
            if DatasetLayout(root).ledger_file.exists():
                with Ledger(DatasetLayout(root).ledger_file) as led:
                    progress.append(len(led.rows("ok")))
        assert kills >= 1
        assert any(0 < n < 2 * TARGET for n in progress), progress  # at least one kill landed mid-run
        print("ok clips after each interruption:", progress, "kills:", kills)
        done = subprocess.run(download_cmd(cfg, srv.base_url), env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "obtained 6/6" in done.stdout
    assert snapshot(root) == reference
    leftovers = [p for p in root.rglob(".tmp-*")]
    assert leftovers == []


def test_a_host_that_accepts_and_never_answers_is_named_at_once_and_stops_the_run(silent_host: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Every yt-dlp connection and read is bounded (socket_timeout, a third of timeout_s);
    the first such failure is logged at once, saying what was waited for; the run stops
    after early_abort attempts that all fail so."""
    from audioset_fewshot.errors import DownloadError

    port = silent_host.rsplit(":", 1)[1]
    plan = the_plan()
    write_plan(plan, DatasetLayout(tmp_path / "root"))
    t0 = time.monotonic()
    with (
        caplog.at_level("WARNING", logger="audioset_fewshot.download.runner"),
        pytest.raises(DownloadError, match=r"first 3 attempts all failed with 'network'.*check the connection"),
    ):
        run_download(plan, tmp_path / "root", DownloadOptions(base_url=silent_host, jobs=1, retries=0, early_abort=3, timeout_s=6.0, min_free="0B"))
    assert time.monotonic() - t0 < 60
    first = [r.getMessage() for r in caplog.records if "no answer from" in r.getMessage()]
    assert len(first) == 1, first
    m = re.search(rf"no answer from 127\.0\.0\.1:{port} within ([0-9.]+) s while extracting .* \(yt-dlp socket_timeout ([0-9.]+) s", first[0])
    assert m and 0 < float(m.group(1)) == float(m.group(2)) <= 2.0, first[0]  # at most a third of timeout_s
    with Ledger(DatasetLayout(tmp_path / "root").ledger_file, readonly=True) as led:
        messages = [r.message or "" for r in led.rows() if r.status.startswith("failed")]
    assert messages and all(f"no answer from 127.0.0.1:{port} within" in m for m in messages)
