"""Sessions with the real fetcher (yt-dlp, ffmpeg) against the 127.0.0.1 media server and
a counting proxy of the tests' own (tests/support/counting_proxy.py).

Must hold: a download.ytdlp option and an extractor argument reach yt-dlp; a rate-limit
on one session pauses only that one and the run completes with nothing failed; two
sessions fetch at about twice one session's budget; a session's proxy carries exactly
that session's traffic; secrets never reach a file, a log or the saved config.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.counting_proxy import counting_proxy
from support.session_media import catalog as clip_catalog
from support.session_media import clip_ids, one_class_plan, prepared_cache
from support.sessions import assert_paused_only, cookie_file

from audioset_fewshot.config import DownloadOptions, SessionConfig
from audioset_fewshot.demo.budget import Budget, SessionBudgets
from audioset_fewshot.demo.server import MediaServer, SourceSpec
from audioset_fewshot.download.fetch import fetch_clip
from audioset_fewshot.download.ledger import Ledger
from audioset_fewshot.download.runner import run_download
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.plan import SamplingPlan, write_plan

N = 8
IDS = clip_ids("sess", N)


def yt(k: int) -> str:
    return IDS[k]


def catalog() -> dict[str, SourceSpec]:
    return clip_catalog(IDS, class_key="demo-class-1")


def the_plan(n: int = N) -> SamplingPlan:
    return one_class_plan(IDS[:n])


@pytest.fixture(scope="module")
def media_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepared_cache(tmp_path_factory, catalog())


FAST = {"min_interval_s": 0.0, "backoff_s": 0.05, "retries": 1, "min_free": "0B", "timeout_s": 30.0}


def test_a_ytdlp_option_and_an_extractor_argument_reach_ytdlp(media_cache: Path, tmp_path: Path) -> None:
    with MediaServer(cache_dir=media_cache, catalog=catalog(), idle_timeout_s=60) as srv:
        # an extractor argument, a passthrough option, and a source address (yt-dlp binds it; ffmpeg gets -local_addr)
        params = {"extractor_args": {"youtube": {"player_client": ["mweb"]}}, "http_headers": {"User-Agent": "afs-probe/1"}, "source_address": "127.0.0.1"}
        res = fetch_clip(srv.watch_url(yt(0)), start_s=1.0, end_s=3.0, dest=tmp_path / "a.flac", ytdlp_params=params, timeout_s=30.0)
        assert res.ok, res.message
        assert res.player_client == "mweb"
        watch = [r for r in srv.requests if r.kind == "watch"]
        assert [r.player_client for r in watch] == ["mweb"]  # the server logged which client asked
        assert {r.user_agent for r in srv.requests} == {"afs-probe/1"}  # yt-dlp's and ffmpeg's requests alike


@pytest.mark.slow
def test_a_rate_limit_pauses_only_its_session(media_cache: Path, tmp_path: Path) -> None:
    budgets = SessionBudgets({"sid:alpha": Budget(2, 600.0)})  # alpha may extract twice in 10 min; beta has no limit
    sessions = [SessionConfig(name="a", cookies=str(cookie_file(tmp_path / "a.txt", "alpha"))),
                SessionConfig(name="b", cookies=str(cookie_file(tmp_path / "b.txt", "beta")))]  # fmt: skip
    root = tmp_path / "root"
    t0 = time.monotonic()
    with MediaServer(cache_dir=media_cache, catalog=catalog(), idle_timeout_s=60, session_budgets=budgets) as srv:
        o = DownloadOptions(jobs=2, sessions=sessions, pause_s=600.0, max_pauses=2, base_url=srv.base_url, **FAST)  # type: ignore[arg-type]
        rep = run_download(the_plan(), root, o)
        log = srv.requests
    assert time.monotonic() - t0 < 60  # nobody waited out the 600 s pause
    assert rep.complete and rep.failures_by_reason == {} and rep.pauses == 1
    assert budgets.refused.get("sid:alpha", 0) >= 1 and "sid:beta" not in budgets.refused
    with Ledger(DatasetLayout(root).ledger_file, readonly=True) as led:
        rows = led.rows(in_plan=True)
        attempts = led.attempts()
    assert all(r.status == "ok" and r.attempts == 1 for r in rows)
    by_session = {s: sum(1 for r in rows if r.session == s) for s in ("a", "b")}
    assert by_session["a"] <= 2 and by_session["b"] >= N - 2
    assert_paused_only(attempts, log, session="a", sid="alpha", other_sid="beta")


@pytest.mark.slow
def test_two_sessions_fetch_at_twice_the_budget_and_a_proxy_carries_only_its_session(media_cache: Path, tmp_path: Path) -> None:
    per_hour = 5400.0  # 1.5 extractions per second per session; the server allows 3 per second per session
    budgets = SessionBudgets(default=Budget(3, 1.0))
    root = tmp_path / "root"
    with counting_proxy("pa", user="afs", password="Pr0xyPassw0rd") as proxy:
        sessions = [SessionConfig(name="a", proxy=proxy.url, max_per_hour=per_hour), SessionConfig(name="b", max_per_hour=per_hour)]
        with MediaServer(cache_dir=media_cache, catalog=catalog(), idle_timeout_s=60, session_budgets=budgets) as srv:
            o = DownloadOptions(jobs=4, sessions=sessions, pause_s=600.0, base_url=srv.base_url, **FAST)  # type: ignore[arg-type]
            t0 = time.monotonic()
            rep = run_download(the_plan(), root, o)
            elapsed = time.monotonic() - t0
            log = srv.requests
        passed = list(proxy.passed)
    assert rep.complete and rep.failures_by_reason == {} and rep.pauses == 0 and budgets.refused == {}
    # one session alone needs at least (N - 1) / 1.5 s for N extractions; two share them
    assert elapsed < (N - 1) / 1.5, f"{elapsed:.2f} s: no faster than one session"
    with Ledger(DatasetLayout(root).ledger_file, readonly=True) as led:
        rows = led.rows(in_plan=True)
    via_a = {r.ytid for r in rows if r.session == "a"}
    direct = {r.ytid for r in rows if r.session == "b"}
    assert len(via_a) == len(direct) == N // 2  # spread evenly
    # the proxy carried session a's watch and media requests, and nothing else
    assert passed and all(p.status < 400 for p in passed)
    assert {r.ytid for r in log if r.session == "via:pa"} == via_a
    assert {r.ytid for r in log if r.session == "guest"} == direct
    assert len(passed) == sum(1 for r in log if r.session == "via:pa")
    assert {p.url.split("v=")[-1].split("&")[0] for p in passed if "/watch" in p.url} == via_a


SECRETS = {
    "cookie": "S1dValue-never-stored",
    "proxy": "Pr0xyPassw0rd-never-stored",
    "token": "mweb.gvs+P0T0KEN-never-stored",
    "pw": "Y7dlpPassw0rd-never-stored",
}


@pytest.mark.slow
def test_secrets_never_leave_the_process(media_cache: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    plan = the_plan(2)
    write_plan(plan, DatasetLayout(root))
    cookies = cookie_file(tmp_path / "cookies-file-name-secret.txt", SECRETS["cookie"])
    env = {**os.environ, "AUDIOSET_FEWSHOT_PROGRESS": "0"}
    with counting_proxy("pa", user="afs", password=SECRETS["proxy"]) as proxy, MediaServer(cache_dir=media_cache, catalog=catalog(), idle_timeout_s=60) as srv:
        cfg = tmp_path / "config.yaml"
        cfg.write_text(
            f"root: {root}\nplan:\n  seed: 0\n  max_per_class: 2\n  sources: [balanced]\n"
            f"download:\n  base_url: {srv.base_url}\n  min_free: 0B\n  timeout_s: 30.0\n"
            f"  extractor_args: {{youtube: {{player_client: [mweb], po_token: ['{SECRETS['token']}']}}}}\n"
            f"  ytdlp: {{password: '{SECRETS['pw']}', geo_bypass: false}}\n"
            f"  sessions:\n    - {{name: a, cookies: {cookies}, proxy: '{proxy.url}'}}\n    - {{name: b}}\n"
        )
        run = subprocess.run(
            [sys.executable, "-m", "audioset_fewshot", "--debug", "download", "-c", str(cfg)], capture_output=True, text=True, timeout=120, env=env
        )
        assert run.returncode == 0, run.stderr[-3000:]
        assert proxy.count("/watch") >= 1  # session a did fetch through its proxy
        manifest = subprocess.run(
            [sys.executable, "-m", "audioset_fewshot", "manifest", "--root", str(root)], capture_output=True, text=True, timeout=120, env=env
        )
        assert manifest.returncode == 0, manifest.stderr[-3000:]
    texts = run.stdout + run.stderr + manifest.stdout + manifest.stderr
    assert "yt-dlp" in run.stderr  # the debug log holds yt-dlp's own lines: it was scanned, not empty
    needles = [*SECRETS.values(), cookies.name]
    for s in needles:
        assert s not in texts, s
    files = [p for p in root.rglob("*") if p.is_file()]
    assert any(p.name == "config.yaml" for p in files) and any("manifest" in p.parts for p in files)
    for p in files:
        data = p.read_bytes()
        for s in needles:
            assert s.encode() not in data, (p, s)
    saved = (root / "config.yaml").read_text()
    assert "po_token: [<redacted>]" in saved and f"afs:<redacted>@127.0.0.1:{proxy.url.rsplit(':', 1)[1]}" in saved
