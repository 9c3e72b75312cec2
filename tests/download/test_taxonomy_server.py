"""The error cases whose action differs, each with the real yt-dlp and ffmpeg against the
127.0.0.1 media server, each ending with its stated outcome within a bounded time:

* a blocked address (yt-dlp: "Your IP is likely being blocked") pauses that session only;
* a JS challenge nobody solves, a format selector that matches nothing, SABR-only
  streaming: configuration errors, the run stops after the first few attempts, with the fix;
* a media URL refused (403) after a good extraction: extracted once more; a second
  refusal is a transient failure.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import pytest
from support.counting_proxy import counting_proxy
from support.session_media import catalog as clip_catalog
from support.session_media import clip_ids, one_class_plan, prepared_cache

from audioset_fewshot.config import DownloadOptions, SessionConfig
from audioset_fewshot.demo.budget import SessionBudgets
from audioset_fewshot.demo.server import MediaServer, SourceSpec
from audioset_fewshot.download import reasons as R
from audioset_fewshot.download.fetch import fetch_clip
from audioset_fewshot.download.ledger import Ledger
from audioset_fewshot.download.runner import run_download
from audioset_fewshot.errors import DownloadError
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.plan import SamplingPlan

N = 4
IDS = clip_ids("taxo", N)


def yt(k: int) -> str:
    return IDS[k]


def catalog() -> dict[str, SourceSpec]:
    return clip_catalog(IDS, class_key="demo-class-2")


def the_plan(n: int = N) -> SamplingPlan:
    return one_class_plan(IDS[:n])


@pytest.fixture(scope="module")
def media_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepared_cache(tmp_path_factory, catalog())


def options(base_url: str, **kw: object) -> DownloadOptions:
    fast = {"max_per_hour": None, "min_interval_s": 0.0, "backoff_s": 0.05, "retries": 1, "min_free": "0B", "timeout_s": 30.0, "jobs": 1}
    return DownloadOptions(base_url=base_url, **{**fast, **kw})  # type: ignore[arg-type]


def no_files(root: Path) -> bool:
    audio = DatasetLayout(root).audio_dir
    return not audio.exists() or not [p for p in audio.rglob("*") if p.is_file()]


def test_a_blocked_address_pauses_that_session_and_suggests_a_proxy(media_cache: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "root"
    t0 = time.monotonic()
    with (
        counting_proxy("blocked-dc") as proxy,
        MediaServer(cache_dir=media_cache, catalog=catalog(), idle_timeout_s=60, session_budgets=SessionBudgets(blocked={"via:blocked-dc"})) as srv,
    ):
        sessions = [SessionConfig(name="dc", proxy=proxy.url), SessionConfig(name="home")]
        with caplog.at_level(logging.WARNING, logger="audioset_fewshot.download.runner"):
            rep = run_download(the_plan(), root, options(srv.base_url, jobs=2, sessions=sessions, pause_s=600.0))
    assert time.monotonic() - t0 < 60
    assert rep.complete and rep.failures_by_reason == {} and rep.pauses == 1
    with Ledger(DatasetLayout(root).ledger_file, readonly=True) as led:
        assert {r.session for r in led.rows(in_plan=True)} == {"home"}
        blocked = [a for a in led.attempts() if a.reason == R.IP_BLOCKED]
    assert blocked and {a.session for a in blocked} == {"dc"} and not any(a.counted for a in blocked)
    assert "Your IP is likely being blocked" in (blocked[0].message or "")
    assert any("pausing session dc" in m and "proxy" in m and "cookies" in m for m in caplog.messages)


@pytest.mark.parametrize(
    ("fault", "extra", "reason", "fix"),
    [
        ("js-challenge", {}, R.JS_MISSING, "install deno"),
        (None, {"format": "bestaudio[ext=flac]"}, R.FORMAT_UNAVAILABLE, "download.format matches none"),
        ("sabr-only", {}, R.SABR_ONLY, "player_client: [mweb]"),
    ],
)
def test_a_configuration_error_stops_early_with_the_fix(
    media_cache: Path, tmp_path: Path, fault: str | None, extra: dict[str, str], reason: str, fix: str
) -> None:
    root = tmp_path / "root"
    t0 = time.monotonic()
    with MediaServer(cache_dir=media_cache, catalog=catalog(), idle_timeout_s=60) as srv:
        for k in range(N):
            srv.set_fault(yt(k), fault)
        with pytest.raises(DownloadError, match=rf"first 3 attempts all failed with '{reason}', a configuration error: .*{re.escape(fix)}"):
            run_download(the_plan(), root, options(srv.base_url, early_abort=10, **extra))
        watches = [r for r in srv.requests if r.kind == "watch"]
    assert time.monotonic() - t0 < 30 and len(watches) == 3 and no_files(root)
    with Ledger(DatasetLayout(root).ledger_file, readonly=True) as led:
        assert {r.reason for r in led.rows("failed-transient")} == {reason}


def test_sabr_only_spares_the_client_it_suggests(media_cache: Path, tmp_path: Path) -> None:
    with MediaServer(cache_dir=media_cache, catalog=catalog(), idle_timeout_s=60) as srv:
        srv.set_fault(yt(0), "sabr-only")
        params = {"extractor_args": {"youtube": {"player_client": ["mweb"]}}}
        res = fetch_clip(srv.watch_url(yt(0)), start_s=1.0, end_s=3.0, dest=tmp_path / "a.flac", ytdlp_params=params, timeout_s=30.0)
    assert res.ok and res.player_client == "mweb"


def test_a_media_403_after_extraction_extracts_once_more(media_cache: Path, tmp_path: Path) -> None:
    with MediaServer(cache_dir=media_cache, catalog=catalog(), idle_timeout_s=60) as srv:
        srv.set_fault(yt(0), "media-403-once")
        srv.set_fault(yt(1), "media-403")
        t0 = time.monotonic()
        once = fetch_clip(srv.watch_url(yt(0)), start_s=1.0, end_s=3.0, dest=tmp_path / "a.flac", timeout_s=30.0)
        always = fetch_clip(srv.watch_url(yt(1)), start_s=1.0, end_s=3.0, dest=tmp_path / "b.flac", timeout_s=30.0)
        elapsed = time.monotonic() - t0
        watches = [r.ytid for r in srv.requests if r.kind == "watch"]
    assert once.ok and once.extractions == 2
    assert not always.ok and always.reason == R.FORMAT_403 and not always.permanent and always.extractions == 2
    assert watches == [yt(0), yt(0), yt(1), yt(1)] and elapsed < 20
    assert not (tmp_path / "b.flac").exists() and [p.name for p in tmp_path.iterdir()] == ["a.flac"]
