"""Sessions (download.sessions): config, the pick rule, per-session pauses, redaction.

The runner is driven with an injected fetch (fast, no network); the real fetcher with
sessions against the media server is in test_sessions_server.py.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from test_runner_scheduling import CAT, DOG, FAST, FakeFetch, Res, plan_of, yt

from audioset_fewshot.config import REDACTED, DownloadOptions, SessionConfig, config_from_dict, redacted, redacted_keys, render_config
from audioset_fewshot.download.ledger import Ledger
from audioset_fewshot.download.runner import run_download
from audioset_fewshot.download.sessions import DEFAULT_SESSION, SessionPool, SessionSpec, resolve_sessions, scrub, ytdlp_params
from audioset_fewshot.errors import ConfigError, DownloadError, UsageError
from audioset_fewshot.layout import DatasetLayout


def test_no_sessions_is_one_default_session_with_todays_budget() -> None:
    (spec,) = resolve_sessions(DownloadOptions(cookies="/tmp/c.txt", proxy="http://127.0.0.1:3128"))
    assert spec.name == DEFAULT_SESSION and spec.max_per_hour == 300.0 and spec.min_interval_s == 1.0
    assert spec.fetch_kwargs()["cookies"] == "/tmp/c.txt" and spec.fetch_kwargs()["proxy"] == "http://127.0.0.1:3128"


def test_session_budgets_default_by_sign_in_and_host() -> None:
    o = DownloadOptions(sessions=[SessionConfig(name="guest"), SessionConfig(name="acct", cookies="/tmp/c.txt"), SessionConfig(name="own", max_per_hour=50.0)])
    assert [s.max_per_hour for s in resolve_sessions(o)] == [300.0, 2000.0, 50.0]
    local = DownloadOptions(base_url="http://127.0.0.1:8000", sessions=[SessionConfig(name="a"), SessionConfig(name="b", cookies="/tmp/c")])
    assert [s.max_per_hour for s in resolve_sessions(local)] == [None, None]


def test_pick_is_weighted_round_robin_and_skips_paused_sessions() -> None:
    specs = [SessionSpec("a", max_per_hour=200.0), SessionSpec("b", max_per_hour=100.0)]
    pool = SessionPool(specs, pause_s=60.0, max_pauses=1)
    names = [s.name for s in (pool.pick() for _ in range(6)) if s is not None]
    assert names == ["a", "b", "a", "a", "b", "a"]  # 2:1, interleaved, the same every time
    assert names == [s.name for s in (SessionPool(specs).pick() for _ in range(1)) if s] + names[1:]
    a = pool.by_name["a"]
    assert pool.rate_limited(a, None) == 60.0 and a.paused
    assert {pool.pick().name for _ in range(4)} == {"b"}  # type: ignore[union-attr]
    assert pool.rate_limited(a, None) is None and a.retired and not pool.exhausted  # a second signal after max_pauses: retired
    assert pool.rate_limited(pool.by_name["b"], None) == 60.0 and pool.pick() is None and pool.resume_in_s() > 0


def test_config_refuses_clashes_and_bad_sessions() -> None:
    with pytest.raises(ConfigError, match=r"'download.ytdlp.format'.*use download.format"):
        config_from_dict({"download": {"ytdlp": {"format": "best"}}})
    with pytest.raises(ConfigError, match=r"'download.ytdlp.sleep_interval_requests'.*download.sleep_requests"):
        config_from_dict({"download": {"ytdlp": {"sleep_interval_requests": 2}}})
    with pytest.raises(ConfigError, match=r"session name 'a' is used twice"):
        config_from_dict({"download": {"sessions": [{"name": "a"}, {"name": "a"}]}})
    with pytest.raises(ConfigError, match=r"'download.proxy': with download.sessions, give proxy per session"):
        config_from_dict({"download": {"proxy": "http://127.0.0.1:1", "sessions": [{"name": "a"}]}})
    with pytest.raises(ConfigError, match=r"'download.max_per_hour': with download.sessions, each session has its own budget"):
        config_from_dict({"download": {"max_per_hour": 100, "sessions": [{"name": "a"}]}})
    with pytest.raises(ConfigError, match=r"'download.sessions\[0\].proxy'.*not an HTTP proxy URL.*ffmpeg"):
        config_from_dict({"download": {"sessions": [{"name": "a", "proxy": "socks5://u:pw@127.0.0.1:1080"}]}})
    with pytest.raises(ConfigError, match=r"unknown config key 'download.sessions\[0\].proxi'. Did you mean 'download.sessions\[0\].proxy'"):
        config_from_dict({"download": {"sessions": [{"name": "a", "proxi": "x"}]}})
    with pytest.raises(ConfigError, match=r"'download.js_runtimes\[0\]'.*Did you mean 'deno'"):
        config_from_dict({"download": {"js_runtimes": ["denoo"]}})


def test_first_class_fields_become_ytdlp_params() -> None:
    o = config_from_dict(
        {"download": {"ytdlp": {"geo_bypass": False}, "sleep_requests": 1.5, "js_runtimes": ["node:/usr/bin/node"], "remote_components": ["ejs:github"],
                      "extractor_args": {"YouTube": {"player_client": ["mweb"]}}, "impersonate": "chrome"}}
    ).download  # fmt: skip
    assert ytdlp_params(o) == {
        "geo_bypass": False, "sleep_interval_requests": 1.5, "js_runtimes": {"node": {"path": "/usr/bin/node"}}, "remote_components": ["ejs:github"],
        "extractor_args": {"youtube": {"player_client": ["mweb"]}}, "impersonate": "chrome",
    }  # fmt: skip


def test_secrets_are_redacted_when_saved_and_refused_when_read_back() -> None:
    cfg = config_from_dict(
        {"download": {"extractor_args": {"youtube": {"po_token": ["mweb.gvs+TOKEN123"]}}, "ytdlp": {"password": "HUNTER22"},
                      "sessions": [{"name": "a", "cookies": "/tmp/secret-cookies.txt", "proxy": "http://bob:PROXYPW9@127.0.0.1:3128"}]}}
    )  # fmt: skip
    text = render_config(redacted(cfg))
    for secret in ("TOKEN123", "HUNTER22", "secret-cookies", "PROXYPW9"):
        assert secret not in text
    assert "http://bob:<redacted>@127.0.0.1:3128" in text
    back = config_from_dict(__import__("yaml").safe_load(text))
    assert redacted_keys(back)
    with pytest.raises(UsageError, match=r"config key 'download.extractor_args.youtube.po_token\[0\]' holds a secret.*-c FILE"):
        resolve_sessions(back.download)
    assert scrub("proxy http://bob:PROXYPW9@h failed", SessionPool(resolve_sessions(cfg.download)).secrets) == f"proxy http://bob:{REDACTED}@h failed"


class _SessionFetch(FakeFetch):
    """A fake whose outcome depends on the session (by its proxy): session ``a`` is
    rate-limited on its first ``limited`` calls."""

    def __init__(self, limited: int) -> None:
        super().__init__(delay_s=0.01)
        self.by_session: dict[str | None, int] = {}
        self.limited = limited
        self.guard = threading.Lock()

    def __call__(self, url: str, *, start_s: float, end_s: float, dest: Path, **kw: object) -> Res:
        proxy = kw.get("proxy")
        with self.guard:
            n = self.by_session[proxy] = self.by_session.get(proxy, 0) + 1
        if proxy == "http://127.0.0.1:1" and n <= self.limited:
            return Res(False, "rate-limited", False, "The current session has been rate-limited by YouTube for up to an hour")
        return super().__call__(url, start_s=start_s, end_s=end_s, dest=dest)


def _two(**kw: object) -> DownloadOptions:
    sessions = [SessionConfig(name="a", proxy="http://127.0.0.1:1"), SessionConfig(name="b", proxy="http://127.0.0.1:2")]
    return DownloadOptions(sessions=sessions, **{**FAST, "jobs": 2, "retries": 0, **kw})  # type: ignore[arg-type]


def test_a_rate_limit_pauses_one_session_the_other_finishes_the_run(tmp_path: Path) -> None:
    fetch = _SessionFetch(limited=1)
    rep = run_download(plan_of(6, 6), tmp_path, _two(pause_s=60.0, max_pauses=2), fetch=fetch)
    assert rep.complete and rep.failures_by_reason == {} and rep.pauses == 1
    with Ledger(DatasetLayout(tmp_path).ledger_file, readonly=True) as led:
        rows = led.rows(in_plan=True)
        attempts = led.attempts()
    assert all(r.status == "ok" and r.attempts == 1 for r in rows)
    assert {r.session for r in rows} == {"b"}  # a paused for 60 s after its first call: b did the rest
    limited = [a for a in attempts if a.reason == "rate-limited"]
    assert len(limited) == 1 and limited[0].session == "a" and not limited[0].counted


def test_the_run_stops_only_when_every_session_is_past_max_pauses(tmp_path: Path) -> None:
    class Always(FakeFetch):
        def __call__(self, url: str, *, start_s: float, end_s: float, dest: Path, **kw: object) -> Res:
            return Res(False, "bot-check", False, "Sign in to confirm you're not a bot")

    with pytest.raises(DownloadError, match=r"every one of the 2 sessions"):
        run_download(plan_of(4, 4, (DOG, CAT)), tmp_path, _two(pause_s=0.05, max_pauses=1), fetch=Always())


def test_work_is_spread_over_sessions(tmp_path: Path) -> None:
    fetch = _SessionFetch(limited=0)
    run_download(plan_of(8, 8, (DOG,)), tmp_path, _two(jobs=1), fetch=fetch)
    assert fetch.by_session == {"http://127.0.0.1:1": 4, "http://127.0.0.1:2": 4}
    assert [yt(DOG, k) for k in range(8)] == fetch.calls  # rank order, whatever the session


def test_an_undocumented_ytdlp_key_is_named_with_the_closest_parameter() -> None:
    from audioset_fewshot.download.sessions import unknown_ytdlp_keys

    assert unknown_ytdlp_keys(["geo_bypass", "http_headers", "geo_bypas"]) == ["geo_bypas (did you mean geo_bypass?)"]
