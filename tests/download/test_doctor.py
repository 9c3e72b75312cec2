"""doctor: each check, the checklist, the exit code, and never a cookie value."""

from __future__ import annotations

import datetime as dt
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from audioset_fewshot.demo.server import MediaServer, SourceSpec
from audioset_fewshot.download.doctor import FAIL, OK, WARN, check_cookies, check_disk, check_writable, check_ytdlp, parse_canary
from audioset_fewshot.errors import UsageError, ValidationError

SECRET = "s3cr3tCookieValue-DoNotLeak"


def cookie_file(tmp_path: Path, *, domain: str = ".youtube.com", expiry: int | None = None, header: bool = True) -> Path:
    exp = int(time.time()) + 86400 if expiry is None else expiry
    text = (
        "# Netscape HTTP Cookie File\n" if header else ""
    ) + f"{domain}\tTRUE\t/\tTRUE\t{exp}\tSID\t{SECRET}\n#HttpOnly_{domain}\tTRUE\t/\tTRUE\t{exp}\tHSID\t{SECRET}2\n"
    p = tmp_path / "cookies.txt"
    p.write_text(text)
    return p


def test_cookie_checks_never_show_values(tmp_path: Path) -> None:
    good = check_cookies(cookie_file(tmp_path))
    assert good.status == OK and "2 live youtube.com cookies" in good.detail
    checks = [
        good,
        check_cookies(cookie_file(tmp_path, domain=".example.com")),
        check_cookies(cookie_file(tmp_path, expiry=1_000_000)),
    ]
    assert [c.status for c in checks] == [OK, FAIL, FAIL]
    assert "none for youtube.com" in checks[1].detail and "expired" in checks[2].detail
    (tmp_path / "json.txt").write_text('{"cookies": [{"name": "SID", "value": "' + SECRET + '"}]}')
    bad = check_cookies(tmp_path / "json.txt")
    assert bad.status == FAIL and "not a Netscape cookies file" in bad.detail
    missing = check_cookies(tmp_path / "nope.txt")
    assert missing.status == FAIL and "cannot read" in missing.detail
    assert all(SECRET not in c.line() for c in [*checks, bad, missing])
    assert check_cookies(None) is None


def test_ytdlp_age_disk_and_root(tmp_path: Path) -> None:
    assert check_ytdlp(today=dt.date(2026, 11, 1)).status == OK
    old = check_ytdlp(today=dt.date(2027, 6, 1))
    assert old.status == WARN and "pip install -U yt-dlp" in old.detail
    assert check_disk(tmp_path, need_bytes=0, min_free_bytes=0).status == OK
    assert check_disk(tmp_path, need_bytes=10**18, min_free_bytes=0).status == WARN
    assert check_disk(tmp_path, need_bytes=0, min_free_bytes=10**18).status == FAIL
    no_plan = check_disk(tmp_path, need_bytes=None, min_free_bytes=0)
    assert no_plan.status == OK and "no plan yet" in no_plan.detail and "needs" not in no_plan.detail
    assert check_writable(tmp_path / "new" / "root").status == OK
    (tmp_path / "file").write_text("x")
    assert check_writable(tmp_path / "file").status == FAIL
    assert parse_canary("abcdefghijk@30") == ("abcdefghijk", 30.0, 40.0)
    with pytest.raises(ValidationError, match="invalid YouTube ID"):
        parse_canary("../etc/pass@1")
    with pytest.raises(UsageError, match="YTID@START"):
        parse_canary("abcdefghijk@x")


def _doctor(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audioset_fewshot", "doctor", *args], capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.mark.slow
def test_doctor_command_checklist_exit_codes_and_canary(tmp_path: Path) -> None:
    good = _doctor("--root", str(tmp_path / "root"), "--cookies", str(cookie_file(tmp_path)), cwd=tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    for name in ("yt-dlp", "JS runtime", "yt-dlp-ejs", "ffmpeg", "cookies", "root", "disk"):
        assert f"] {name}" in good.stdout
    assert "no plan yet" in good.stdout and "needs 0.00 GB" not in good.stdout  # no plan in a new root
    assert SECRET not in good.stdout + good.stderr
    bad_cookies = tmp_path / "bad.txt"
    bad_cookies.write_text(f"SID={SECRET}\n")
    bad = _doctor("--root", str(tmp_path / "root"), "--cookies", str(bad_cookies), cwd=tmp_path)
    assert bad.returncode == 1 and "[fail] cookies" in bad.stdout and SECRET not in bad.stdout + bad.stderr
    # nor the cookies file's path (it names the account's owner; doctor output is pasted into bug reports)
    assert "cookies.txt" not in good.stdout + good.stderr and str(bad_cookies) not in bad.stdout + bad.stderr

    ok_id, dead_id = "doctorok001", "doctordead1"
    cat = {ok_id: SourceSpec(class_key="demo-class-0", duration_s=12.0), dead_id: SourceSpec(class_key="demo-class-1", duration_s=12.0, fault="unavailable")}
    with MediaServer(cache_dir=tmp_path / "media", catalog=cat, idle_timeout_s=60) as srv:
        cfg = tmp_path / "c.yaml"
        cfg.write_text(f"root: {tmp_path / 'root'}\ndownload:\n  canary_ids: ['{ok_id}@1']\n")
        canary = _doctor("-c", str(cfg), "--canary", "--base-url", srv.base_url, cwd=tmp_path)
        assert canary.returncode == 0, canary.stdout + canary.stderr
        assert f"[  ok] canary {ok_id}: 160000 samples" in canary.stdout
        cfg.write_text(f"root: {tmp_path / 'root'}\ndownload:\n  canary_ids: ['{dead_id}@1']\n")
        dead = _doctor("-c", str(cfg), "--canary", "--base-url", srv.base_url, cwd=tmp_path)
        assert dead.returncode == 1 and f"[fail] canary {dead_id}: unavailable" in dead.stdout


@pytest.mark.slow
def test_doctor_reports_each_session_its_proxy_clients_and_canary(tmp_path: Path) -> None:
    from support.counting_proxy import counting_proxy

    ok_id = "doctorsess1"
    cat = {ok_id: SourceSpec(class_key="demo-class-0", duration_s=12.0)}
    # a PO-token provider plugin in a plugin folder (a folder of plugin packages, as for yt-dlp --plugin-dirs)
    plugin = tmp_path / "plugins" / "afs-test-pot" / "yt_dlp_plugins" / "extractor"
    plugin.mkdir(parents=True)
    (plugin / "getpot_afstest.py").write_text(
        "from yt_dlp.extractor.youtube.pot.provider import PoTokenProvider, PoTokenProviderRejectedRequest, register_provider\n\n\n"
        "@register_provider\nclass AfsTestPTP(PoTokenProvider):\n    PROVIDER_VERSION = '0.1.0'\n    _SUPPORTED_CONTEXTS = None\n"
        "    _SUPPORTED_CLIENTS = None\n\n    def is_available(self):\n        return True\n\n"
        "    def _real_request_pot(self, request):\n        raise PoTokenProviderRejectedRequest('a test provider')\n"
    )
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    dead_port = dead.getsockname()[1]
    with counting_proxy("pa", user="afs", password="DoctorPr0xyPw") as proxy, MediaServer(cache_dir=tmp_path / "media", catalog=cat, idle_timeout_s=60) as srv:
        cfg = tmp_path / "c.yaml"
        cfg.write_text(
            f"root: {tmp_path / 'root'}\ndownload:\n  base_url: {srv.base_url}\n  canary_ids: ['{ok_id}@1']\n  plugin_dirs: ['{tmp_path / 'plugins'}']\n"
            f"  extractor_args: {{youtube: {{player_client: [mweb]}}, youtubepot-bgutilhttp: {{base_url: ['{srv.base_url}']}},"
            f" youtubepot-other: {{base_url: ['http://127.0.0.1:{dead_port}']}}}}\n"
            f"  sessions:\n    - {{name: viaproxy, proxy: '{proxy.url}'}}\n    - {{name: broken, proxy: 'http://127.0.0.1:{dead_port}'}}\n"
        )
        out = _doctor("-c", str(cfg), "--canary", cwd=tmp_path)
        through_proxy = proxy.count("/watch")
    dead.close()
    text = out.stdout + out.stderr
    assert out.returncode == 1, text  # the broken session's proxy and canary, the silent provider
    assert "DoctorPr0xyPw" not in text
    assert re.search(r"\[  ok\] yt-dlp-ejs: version \S+ \(yt-dlp expects \S+\)", text)
    assert re.search(r"\[  ok\] JS runtime: deno \S+ \(", text)
    assert "[  ok] PO-token providers: AfsTest" in text and "Error while importing" not in text
    assert "[  ok] youtubepot-bgutilhttp endpoint:" in text and "[fail] youtubepot-other endpoint:" in text
    assert "[  ok] session viaproxy: guest, proxy http://afs:<redacted>@127.0.0.1:" in text
    assert "[  ok] session viaproxy: player clients: mweb (download.extractor_args)" in text
    assert "[  ok] session viaproxy: proxy" in text and "[fail] session broken: proxy" in text
    assert f"[  ok] canary viaproxy {ok_id}: 160000 samples" in text and "player client mweb" in text
    assert f"[fail] canary broken {ok_id}: network" in text
    assert through_proxy == 1  # the viaproxy canary went through its proxy, the broken one could not
