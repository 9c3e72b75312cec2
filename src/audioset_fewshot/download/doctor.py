"""Pre-flight checks before a download: ``audioset-fewshot doctor``.

Each check returns a :class:`Check` with a status: ``ok``, ``warn`` (the run
can go on, but something is off) or ``fail`` (the run would fail).  Nothing
here prints; the command prints the checklist.  Cookie *values* are never
read into a message: only the file's shape, domains and expiry times.

Once for the install: yt-dlp (version, age), yt-dlp-ejs against the solver
version this yt-dlp expects, the JS runtimes yt-dlp finds with the configured
``js_runtimes`` (name, version, path), ffmpeg, the PO-token provider plugins
yt-dlp loaded (with ``plugin_dirs``) and whether each configured provider's
HTTP endpoint (``extractor_args: {youtubepot-NAME: {base_url: [...]}}``)
answers.  Per session (:mod:`.sessions`): who it is (without secrets), its
cookies, the player clients yt-dlp will use for it, whether its proxy accepts
connections, and with ``--canary`` its own canary downloads.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from audioset_fewshot.config import DownloadOptions, parse_size, redact_url
from audioset_fewshot.download.sessions import SessionSpec, player_clients, resolve_sessions, scrub, unknown_ytdlp_keys
from audioset_fewshot.errors import UsageError
from audioset_fewshot.validate import valid_youtube_id

if TYPE_CHECKING:
    from audioset_fewshot.download.fetch import ClipResult

OK, WARN, FAIL = "ok", "warn", "fail"
YTDLP_MAX_AGE_DAYS = 60


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str

    def line(self) -> str:
        return f"[{self.status:>4}] {self.name}: {self.detail}"


@dataclass(frozen=True)
class DoctorReport:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.status != FAIL for c in self.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.status == FAIL)

    def lines(self) -> list[str]:
        return [c.line() for c in self.checks]


def _is_youtube(base_url: str) -> bool:
    host = re.sub(r"^[a-z]+://", "", base_url.lower()).split("/")[0].split(":")[0]
    return host == "youtube.com" or host.endswith(".youtube.com")


# ---------------------------------------------------------------------------------------
# the checks


def check_ytdlp(*, today: _dt.date | None = None) -> Check:
    try:
        from yt_dlp.version import __version__ as version
    except ImportError:
        return Check("yt-dlp", FAIL, "not installed: pip install -U yt-dlp")
    today = today or _dt.date.today()
    m = re.match(r"(\d{4})\.(\d{1,2})\.(\d{1,2})", version)
    if not m:
        return Check("yt-dlp", WARN, f"version {version} (cannot tell its age)")
    released = _dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    age = (today - released).days
    if age > YTDLP_MAX_AGE_DAYS:
        return Check("yt-dlp", WARN, f"version {version} is {age} days old; YouTube changes often: pip install -U yt-dlp yt-dlp-ejs")
    return Check("yt-dlp", OK, f"version {version} ({age} days old)")


def _major_minor(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:2])


def check_ejs() -> Check:
    """yt-dlp-ejs (the challenge solver scripts) against the version this yt-dlp expects
    (it refuses a script whose major.minor differs)."""
    try:
        from importlib.metadata import version as _version

        installed = _version("yt-dlp-ejs")
    except Exception:  # PackageNotFoundError and friends
        return Check("yt-dlp-ejs", WARN, "not installed: pip install -U yt-dlp-ejs (or allow download.remote_components: [ejs:github])")
    try:
        from yt_dlp.extractor.youtube.jsc._builtin.vendor import VERSION as expected
    except ImportError:
        return Check("yt-dlp-ejs", OK, f"version {installed} (this yt-dlp names no expected version)")
    if _major_minor(installed) != _major_minor(str(expected)):
        return Check(
            "yt-dlp-ejs", WARN, f"version {installed}, but this yt-dlp expects {expected}: pip install -U yt-dlp yt-dlp-ejs (they are released together)"
        )
    return Check("yt-dlp-ejs", OK, f"version {installed} (yt-dlp expects {expected})")


def check_js_runtimes(options: DownloadOptions) -> list[Check]:
    """The JS runtimes yt-dlp itself finds with ``download.js_runtimes`` (default: deno)."""
    import yt_dlp

    from audioset_fewshot.download.sessions import ytdlp_params

    params = {k: v for k, v in ytdlp_params(options).items() if k == "js_runtimes"}
    bad = FAIL if _is_youtube(options.base_url) else WARN
    try:
        with yt_dlp.YoutubeDL({"quiet": True, "no_warnings": True, **params}) as ydl:
            runtimes = {name: rt.info for name, rt in ydl._js_runtimes.items()}
    except Exception as err:  # yt-dlp's own validation of js_runtimes
        return [Check("JS runtime", FAIL, f"yt-dlp refuses download.js_runtimes: {err}")]
    found = [f"{i.name} {i.version} ({i.path})" for i in runtimes.values() if i is not None]
    missing = [name for name, i in runtimes.items() if i is None]
    if not found:
        return [Check("JS runtime", bad, f"yt-dlp finds none of {', '.join(runtimes) or 'deno'}: pip install deno, or set download.js_runtimes")]
    extra = f"; not found: {', '.join(missing)}" if missing else ""
    return [Check("JS runtime", OK, ", ".join(found) + extra)]


def check_pot_providers(options: DownloadOptions, *, timeout_s: float = 5.0) -> list[Check]:
    """PO-token provider plugins yt-dlp loaded, and each configured provider endpoint
    (``extractor_args`` ``youtubepot-NAME: {base_url: [URL]}``): does it answer?"""
    import urllib.error
    import urllib.request

    from audioset_fewshot.download.fetch import _use_plugin_dirs

    checks: list[Check] = []
    try:
        _use_plugin_dirs(options.plugin_dirs)
        from yt_dlp import globals as ytg
        from yt_dlp.extractor.youtube.pot._registry import _pot_providers
        from yt_dlp.plugins import load_all_plugins

        if not ytg.all_plugins_loaded.value:
            load_all_plugins()
        names = sorted(str(getattr(p, "PROVIDER_NAME", k)) for k, p in _pot_providers.value.items())
    except Exception as err:  # a broken plugin: say so, do not crash the checklist
        return [Check("PO-token providers", WARN, f"loading yt-dlp plugins failed: {type(err).__name__}: {err}")]
    wanted = {k: v for k, v in options.extractor_args.items() if k.lower().startswith("youtubepot-")}
    if names:
        checks.append(Check("PO-token providers", OK, ", ".join(names)))
    else:
        status = WARN if wanted else OK
        checks.append(
            Check(
                "PO-token providers",
                status,
                "none found"
                + (
                    " although extractor_args names one: check download.plugin_dirs (folders that hold plugin packages, as for yt-dlp's plugin-dirs option)"
                    if wanted
                    else " (mweb and other clients may need one)"
                ),
            )
        )
    for key, args in sorted(wanted.items()):
        for base in args.get("base_url", []):
            shown = redact_url(base)
            req = urllib.request.Request(base.rstrip("/") + "/ping")
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            try:
                with opener.open(req, timeout=timeout_s) as resp:
                    checks.append(Check(f"{key} endpoint", OK, f"{shown} answers (HTTP {resp.status})"))
            except urllib.error.HTTPError as err:
                checks.append(Check(f"{key} endpoint", OK, f"{shown} answers (HTTP {err.code})"))
            except (urllib.error.URLError, OSError, ValueError) as err:
                why = getattr(err, "reason", err)
                checks.append(Check(f"{key} endpoint", FAIL, f"{shown} does not answer within {timeout_s:g} s ({why}): start the provider or fix base_url"))
    return checks


def effective_clients(spec: SessionSpec, options: DownloadOptions, *, js_available: bool) -> tuple[tuple[str, ...], str]:
    """The player clients yt-dlp's YouTube extractor will use for this session, and why."""
    asked = player_clients(options)
    if asked:
        return asked, "download.extractor_args"
    try:
        from yt_dlp.extractor.youtube._video import YoutubeIE

        if spec.signed_in:
            return tuple(YoutubeIE._DEFAULT_AUTHED_CLIENTS), "yt-dlp's default with cookies"
        if js_available:
            return tuple(YoutubeIE._DEFAULT_CLIENTS), "yt-dlp's default"
        return tuple(YoutubeIE._DEFAULT_JSLESS_CLIENTS), "yt-dlp's default without a JS runtime"
    except (ImportError, AttributeError):
        return (), "yt-dlp's default"


def check_proxy(proxy: str | None, *, name: str, timeout_s: float = 5.0) -> Check | None:
    """Does the session's proxy accept a connection?"""
    import socket
    import urllib.parse

    if not proxy:
        return None
    parts = urllib.parse.urlsplit(proxy)
    port = parts.port or (443 if parts.scheme == "https" else 1080 if parts.scheme.startswith("socks") else 80)
    shown = redact_url(proxy)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout_s):
            pass
    except OSError as err:
        return Check(f"{name}: proxy", FAIL, f"{shown} refuses or drops connections ({err.strerror or err}): start it or fix the session's proxy")
    return Check(f"{name}: proxy", OK, f"{shown} accepts connections")


def check_sessions(options: DownloadOptions, *, js_available: bool) -> list[Check]:
    """Per session: who it is, its cookies, its player clients, its proxy."""
    checks: list[Check] = []
    specs = resolve_sessions(options)
    for spec in specs:
        label = f"session {spec.name}"
        checks.append(Check(label, OK, spec.describe().split(": ", 1)[1]))
        if spec.cookies:
            c = check_cookies(spec.cookies)
            if c is not None:
                checks.append(Check(f"{label}: cookies" if len(specs) > 1 else "cookies", c.status, c.detail))
        elif spec.cookies_from_browser:
            checks.append(
                Check(f"{label}: cookies" if len(specs) > 1 else "cookies", OK, f"read from browser {spec.cookies_from_browser!r} by yt-dlp at run time")
            )
        clients, why = effective_clients(spec, options, js_available=js_available)
        checks.append(Check(f"{label}: player clients", OK, f"{', '.join(clients) or '?'} ({why})"))
        p = check_proxy(spec.proxy, name=label)
        if p is not None:
            checks.append(p)
    return checks


def check_ffmpeg() -> Check:
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except Exception as err:  # the binary may be missing for this platform
        return Check("ffmpeg", FAIL, f"no ffmpeg binary ({type(err).__name__}): pip install -U imageio-ffmpeg")
    try:
        out = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError) as err:
        return Check("ffmpeg", FAIL, f"{exe} does not run: {err}")
    first = (out.stdout or "").split("\n")[0].strip()
    if out.returncode != 0 or not first:
        return Check("ffmpeg", FAIL, f"{exe} -version failed (exit {out.returncode})")
    return Check("ffmpeg", OK, f"{first} ({exe})")


def check_cookies(path: Path | str | None, *, now: float | None = None) -> Check | None:
    """A Netscape cookies file: readable, the right format, a youtube.com domain, not
    all expired.  Only domains, counts and expiry times are looked at; neither the
    values nor the file's path are shown (a path names the account's owner, and
    doctor's output is pasted into bug reports)."""
    if path is None:
        return None
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        return Check("cookies", FAIL, f"cannot read the cookies file: {err.strerror}")
    now = time.time() if now is None else now
    rows = 0
    yt_rows = 0
    yt_live = 0
    yt_latest = 0
    bad_lines = 0
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("#HttpOnly_"):
            s = s[len("#HttpOnly_") :]
        elif not s or s.startswith("#"):
            continue
        parts = line.rstrip("\n").split("\t")
        if len(parts) != 7:
            bad_lines += 1
            continue
        rows += 1
        domain = parts[0].removeprefix("#HttpOnly_").lstrip(".").lower()
        try:
            expiry = int(parts[4] or 0)
        except ValueError:
            bad_lines += 1
            continue
        if domain == "youtube.com" or domain.endswith(".youtube.com"):
            yt_rows += 1
            if expiry == 0 or expiry > now:
                yt_live += 1
            yt_latest = max(yt_latest, expiry)
    header_ok = text.lstrip().startswith(("# Netscape HTTP Cookie File", "# HTTP Cookie File"))
    if rows == 0 or (bad_lines and not header_ok):
        return Check(
            "cookies",
            FAIL,
            "the cookies file is not a Netscape cookies file (export it with a 'cookies.txt' browser extension or yt-dlp --cookies-from-browser)",
        )
    if yt_rows == 0:
        return Check("cookies", FAIL, f"the cookies file has {rows} cookies but none for youtube.com: export them while logged in to YouTube")
    if yt_live == 0:
        when = time.strftime("%Y-%m-%d", time.gmtime(yt_latest)) if yt_latest else "?"
        return Check("cookies", FAIL, f"every youtube.com cookie in the cookies file has expired (latest {when}): export fresh cookies")
    return Check(
        "cookies", OK, f"Netscape format, {yt_live} live youtube.com cookies (values not shown); YouTube rotates them, re-export when downloads start failing"
    )


def _existing_parent(path: Path) -> Path:
    p = path.resolve()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_disk(root: Path, *, need_bytes: int | None, min_free_bytes: int) -> Check:
    """Free disk against the plan's estimate; ``need_bytes=None``: no plan yet (min_free only)."""
    base = _existing_parent(root)
    free = shutil.disk_usage(base).free
    want = (need_bytes or 0) + min_free_bytes
    if need_bytes is None:
        text = (
            f"{free / 1e9:.2f} GB free at {base}; no plan yet, so no size estimate (min_free {min_free_bytes / 1e9:.2f} GB;"
            " 'audioset-fewshot plan' writes one, then run doctor again)"
        )
    else:
        text = f"{free / 1e9:.2f} GB free at {base}; the plan needs about {need_bytes / 1e9:.2f} GB plus min_free {min_free_bytes / 1e9:.2f} GB"
    if free < min_free_bytes:
        return Check("disk", FAIL, text + ": free some space or lower --min-free")
    if free < want:
        return Check("disk", WARN, text + ": the run will stop early (a rerun continues once space is freed)")
    return Check("disk", OK, text)


def check_writable(root: Path) -> Check:
    target = root if root.exists() else _existing_parent(root)
    if not target.is_dir():
        return Check("root", FAIL, f"{target} is not a folder")
    try:
        fd, name = tempfile.mkstemp(prefix=".tmp-doctor-", dir=target)
        os.close(fd)
        os.unlink(name)
    except OSError as err:
        return Check("root", FAIL, f"cannot write in {target}: {err.strerror}; choose another --root or fix its permissions")
    where = "" if root.exists() else f" (it will be created under {target})"
    return Check("root", OK, f"{root} is writable{where}")


def parse_canary(spec: str) -> tuple[str, float, float]:
    """``"YTID"`` or ``"YTID@START"`` -> (ytid, start_s, end_s), a 10 s segment."""
    ytid, _, start = str(spec).partition("@")
    try:
        start_s = float(start) if start else 0.0
    except ValueError as err:
        raise UsageError(f"canary {spec!r}: expected YTID or YTID@START_SECONDS") from err
    return valid_youtube_id(ytid), start_s, start_s + 10.0


def check_canary(
    canaries: Sequence[tuple[str, float, float]],
    options: DownloadOptions | None = None,
    *,
    fetch: Callable[..., ClipResult] | None = None,
    session: SessionSpec | None = None,
) -> list[Check]:
    """Download each canary segment into a temp folder, with the download options' host
    and fetch settings and ``session``'s cookies, proxy and yt-dlp parameters (default:
    the first session), and check its exact length."""
    from audioset_fewshot.download.runner import fetch_kwargs, watch_url

    o = options if options is not None else DownloadOptions()
    spec = session if session is not None else resolve_sessions(o)[0]
    kwargs = {**fetch_kwargs(o), **spec.fetch_kwargs()}
    prefix = "canary" if len(o.sessions) < 2 else f"canary {spec.name}"

    if fetch is None:
        from audioset_fewshot.download.fetch import fetch_clip

        fetch = fetch_clip
    if not canaries:
        return [Check("canary", FAIL, "no canary IDs: set download.canary_ids in the config or write a plan first")]
    checks = []
    with tempfile.TemporaryDirectory(prefix="afs-canary-") as tmp:
        for ytid, start_s, end_s in canaries:
            dest = Path(tmp) / f"{ytid}.{o.audio_format}"
            t0 = time.monotonic()
            res = fetch(watch_url(o.base_url, ytid), start_s=start_s, end_s=end_s, dest=dest, **kwargs)
            dt = time.monotonic() - t0
            want = int(round((end_s - start_s) * o.sample_rate_hz))
            if not res.ok:
                checks.append(Check(f"{prefix} {ytid}", FAIL, f"{res.reason}: {scrub((res.message or '')[:200], spec.secrets())}"))
            elif res.samples != want:
                checks.append(Check(f"{prefix} {ytid}", FAIL, f"{res.samples} samples, expected exactly {want}"))
            else:
                client = f", player client {res.player_client}" if getattr(res, "player_client", None) else ""
                checks.append(Check(f"{prefix} {ytid}", OK, f"{res.samples} samples at {o.sample_rate_hz} Hz in {dt:.1f} s{client}"))
    return checks


def run_doctor(
    root: Path | str,
    options: DownloadOptions | None = None,
    *,
    need_bytes: int | None = None,
    canaries: Sequence[tuple[str, float, float]] | None = None,
) -> DoctorReport:
    """Run every check with the ``download`` section's options (base URL, cookies, the
    free disk to keep, the fetch settings of the canaries).  ``canaries``: also
    download those segments; ``need_bytes``: the plan's download estimate, None when
    there is no plan yet."""

    o = options if options is not None else DownloadOptions()
    root = Path(root)
    js = check_js_runtimes(o)
    checks: list[Check] = [check_ytdlp(), *js, check_ejs(), check_ffmpeg(), *check_pot_providers(o)]
    unknown = unknown_ytdlp_keys(o.ytdlp)
    if unknown:
        checks.append(Check("download.ytdlp", WARN, f"not YoutubeDL parameters of this yt-dlp: {', '.join(unknown)}"))
    checks += check_sessions(o, js_available=js[0].status == OK)
    checks.append(check_writable(root))
    checks.append(check_disk(root, need_bytes=need_bytes, min_free_bytes=parse_size(o.min_free, key="download.min_free")))
    if canaries is not None:
        for spec in resolve_sessions(o):
            checks += check_canary(canaries, o, session=spec)
    return DoctorReport(tuple(checks))
