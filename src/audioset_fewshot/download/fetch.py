"""Fetch one labelled segment: yt-dlp extraction, one ffmpeg read of the segment, proof.

:func:`fetch_clip` does, for one (video, start, end):

1. validate the watch URL and its YouTube ID (a hostile ID never reaches a URL,
   a path or a subprocess);
2. ``YoutubeDL.extract_info(url, download=False)`` exactly once, with a logger
   that captures yt-dlp's warnings (a 429 often shows only there) and yt-dlp's
   own format selection (``bestaudio[ext=m4a]/bestaudio``);
3. one ffmpeg process that seeks on the *input* (``-ss`` before ``-i``) to half a
   second before the start and reads only the segment over HTTP in bounded range
   requests, with the format's HTTP headers, ``-rw_timeout``, a subprocess timeout
   and captured stderr; it cuts the decoded audio at the exact first sample by
   the decoded frames' time (:func:`_decode_cmd`; whatever the container: DASH
   m4a with a ``sidx``, progressive or fragmented m4a, WebM with its Cues at
   either end) and writes it, at the source's rate and with the channels the
   decoder gives, to a temp file beside ``dest``; a second, local ffmpeg turns
   it into 16 kHz mono (the *mean* of the decoded channels: ffmpeg's ``-ac 1``
   downmix of stereo is about 1.41x that, and the extraction's channel count
   may be missing) 16-bit FLAC or WAV.  A fragmented m4a *without an index* (no
   ``sidx``, no ``mfra``), where ffmpeg's demuxer would walk every fragment of
   the file, is first searched with a few bounded range requests (:mod:`.fmp4`,
   :func:`_fragments_read`): its init segment and the fragments of the segment
   are decoded locally the same way; any surprise hands the read back to ffmpeg;
4. proof with soundfile: decodable, exact length (a 10 s segment is exactly
   ``10 * sample_rate_hz`` samples: the last few ms are padded or trimmed and
   the counts recorded), not all zero; then fsync and ``os.replace``.

A per-clip failure is *data*: a :class:`ClipResult` with ``ok=False`` and a
reason from :mod:`.reasons`.  Only misuse (a bad ID, bad times, a bad option)
raises.  If the segment read fails in a way a whole-file read would avoid (the
server refuses a seek, or ignores Range where the container needs one), the
audio-only format is downloaded whole (bounded in size and time) and cut
locally; ``fallback=True`` records it.  A file that does not decode from its
first bytes (corrupt) fails at once, and a start past the end (as extracted, or
as ffmpeg probes it from the container) is ``short`` without a whole-file read.

Digital silence: an all-zero clip is rejected here as ``qc-reject`` (there is
nothing to keep).  Quiet but non-zero clips are kept; their RMS is recorded in
``rms_dbfs`` and the clean stage applies the configured silence threshold.

Thread safety: :func:`fetch_clip` keeps no shared state (each call builds its
own ``YoutubeDL``), so workers may call it concurrently.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import logging
import math
import os
import re
import struct
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audioset_fewshot._io import TMP_PREFIX, atomic_path, sha256_file
from audioset_fewshot.download import fmp4
from audioset_fewshot.download import reasons as R
from audioset_fewshot.download.classify import Failure, classify_ffmpeg_error, classify_ytdlp_error
from audioset_fewshot.download.ytdlp_demo import demo_extractor, is_demo_url
from audioset_fewshot.errors import DiskFullError, DownloadError, UsageError, ValidationError
from audioset_fewshot.validate import valid_segment_times, valid_youtube_id

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
AUDIO_FORMATS = ("flac", "wav")
# Shortfall of the ffmpeg output we pad silently (AAC/Opus frame granularity, resampler
# edges); a larger shortfall is a short source or a truncated read.
PAD_TOLERANCE_S = 0.1
# ffmpeg's HTTP reads: bounded range requests (by default ffmpeg asks for "bytes=N-" and the
# server sends until the connection closes: megabytes of a long file for a 10 s read).
# 256 KiB holds the header of a DASH m4a and, after the seek, ~10 s of 128 kbit/s audio, so a
# 10 s clip costs ~2 media requests (each request costs a round trip).  The initial size
# (0 = request_size) is also used for the first read after every seek.  Each request goes on
# its own connection (-multiple_requests 0): a host that ignores Range answers a bounded
# request with the whole file, and ffmpeg, reusing the connection, would read the rest of
# that body as the next answer (garbage, then a wait for -rw_timeout, three times over).
HTTP_REQUEST_SIZE = 256 * 1024
HTTP_INITIAL_REQUEST_SIZE = 0
FALLBACK_MAX_BYTES = 512 * 1024 * 1024
# The decode starts this long before the segment (see _decode_cmd): longer than any codec's
# pre-roll (AAC 2048 samples, Opus 80 ms), short enough to cost a few kilobytes.
SEEK_PREROLL_S = 0.5
OPUS_FRAME_S = 0.02  # the frame length of YouTube's Opus audio (see _opus_snap)

_HOST_RE = re.compile(r"[A-Za-z0-9.-]+(?::[0-9]{1,5})?")
_LOOPBACK = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class ClipResult:
    """The outcome of one :func:`fetch_clip` call (a success or a classified failure).

    Times are in seconds of the source; ``trim_start_s``/``trim_end_s`` are the
    exact span the clip covers (``trim_end_s = trim_start_s + samples / rate``).
    ``padded_samples``/``trimmed_samples`` count what was added to / cut from the
    end of ffmpeg's output to reach the exact length.
    """

    ok: bool
    ytid: str
    start_s: float
    end_s: float
    reason: str | None = None
    permanent: bool = False
    message: str = ""
    path: Path | None = None
    sha256: str | None = None
    samples: int = 0
    sample_rate_hz: int = 16000
    audio_format: str = "flac"
    itag: str | None = None
    codec: str | None = None
    container: str | None = None
    source_sample_rate_hz: int | None = None
    source_channels: int | None = None
    source_duration_s: float | None = None
    trim_start_s: float | None = None
    trim_end_s: float | None = None
    padded_samples: int = 0
    trimmed_samples: int = 0
    rms_dbfs: float | None = None
    license: str | None = None
    uploader: str | None = None
    channel_id: str | None = None
    title: str | None = None
    upload_date: str | None = None
    fallback: bool = False
    tool_versions: dict[str, str] = field(default_factory=dict)
    extractions: int = 0
    elapsed_s: float = 0.0
    schema_version: int = SCHEMA_VERSION
    # where the clip came from: "youtube", or the name of a local origin (download.origins),
    # its revision (a mirror's), and the origin's own labels when they differ from the list's
    origin: str = "youtube"
    origin_revision: str | None = None
    origin_labels: str | None = None
    # the YouTube player client whose format was read (yt-dlp's ``_client`` of the format)
    player_client: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = None if self.path is None else str(self.path)
        return d


class _Reject(Exception):
    """Internal: the clip failed with a reason (caught in fetch_clip, turned into data)."""

    def __init__(self, failure: Failure, *, fallback: bool = False) -> None:
        super().__init__(failure.message)
        self.failure = failure
        self.fallback = fallback


class _CaptureLogger:
    """A yt-dlp logger that keeps warnings and errors (never prints)."""

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.errors: list[str] = []

    def debug(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    def info(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    def warning(self, msg: str) -> None:
        self.warnings.append(msg)
        log.debug("yt-dlp warning: %s", msg)

    def error(self, msg: str) -> None:
        self.errors.append(msg)
        log.debug("yt-dlp error: %s", msg)


# --- helpers ------------------------------------------------------------------------------


def parse_watch_url(url: str) -> tuple[str, str]:
    """Validate a watch URL; return ``(ytid, canonical_url)``.

    Accepted: ``http(s)://HOST[:PORT]/watch?v=<11-char id>`` and nothing else, so a
    hostile ID (``../x``, ``-o``, 12 characters, non-ASCII) is refused before it
    can reach a URL, a path or a subprocess.
    """
    if not isinstance(url, str) or not url.isascii() or any(c.isspace() for c in url):
        raise ValidationError(f"invalid watch URL {url!r}: expected http(s)://HOST/watch?v=<11-character YouTube ID>")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not _HOST_RE.fullmatch(parts.netloc) or parts.path != "/watch" or parts.fragment:
        raise ValidationError(f"invalid watch URL {url!r}: expected http(s)://HOST/watch?v=<11-character YouTube ID>")
    query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
    ids = query.get("v", [])
    if len(ids) != 1:
        raise ValidationError(f"invalid watch URL {url!r}: expected exactly one v=<YouTube ID> parameter")
    ytid = valid_youtube_id(ids[0])
    return ytid, f"{parts.scheme}://{parts.netloc}/watch?v={ytid}"


def watch_url(base_url: str, ytid: str) -> str:
    """``base_url`` + ``/watch?v=<ytid>`` after validating the ID."""
    return f"{base_url.rstrip('/')}/watch?v={valid_youtube_id(ytid)}"


@functools.cache
def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    try:
        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except RuntimeError as err:  # pragma: no cover - the binary ships with the wheel
        raise DownloadError(f"no ffmpeg binary found ({err}); reinstall imageio-ffmpeg") from err


@functools.cache
def tool_versions() -> dict[str, str]:
    """Versions of the tools that shape a clip (recorded with every result)."""
    import imageio_ffmpeg
    import soundfile
    import yt_dlp.version

    try:
        out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-version"], capture_output=True, timeout=20, check=False).stdout
        ff = out.decode(errors="replace").splitlines()[0].split(" Copyright")[0].removeprefix("ffmpeg version ").strip()
    except (OSError, subprocess.TimeoutExpired, IndexError):  # pragma: no cover
        ff = "unknown"
    ejs = "none"  # yt-dlp's challenge solver scripts (a package of their own since 2025)
    with contextlib.suppress(Exception):
        from importlib.metadata import version as _dist_version

        ejs = _dist_version("yt-dlp-ejs")
    return {
        "yt_dlp": str(yt_dlp.version.__version__),
        "yt_dlp_ejs": ejs,
        "ffmpeg": ff,
        "imageio_ffmpeg": str(imageio_ffmpeg.__version__),
        "soundfile": str(soundfile.__version__),
        "libsndfile": str(soundfile.__libsndfile_version__),
    }


def _downmix_filter(channels: int) -> str:
    """A pan filter giving the *mean* of ``channels`` channels (ffmpeg's -ac 1 is not a mean)."""
    if channels <= 1:
        return "pan=mono|c0=c0"
    w = 1.0 / channels
    return "pan=mono|c0=" + "+".join(f"{w:.10g}*c{i}" for i in range(channels))


_PROXY_ENV = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY")


def _env_for(url: str, proxy: str | None = None) -> dict[str, str]:
    """ffmpeg's environment: an explicit ``proxy`` (given to ffmpeg as -http_proxy) is
    used for every host, 127.0.0.1 included, so no_proxy goes; without one, loopback
    traffic never goes through the environment's proxy."""
    env = dict(os.environ)
    host = urllib.parse.urlsplit(url).hostname or ""
    if proxy or host in _LOOPBACK:
        for k in _PROXY_ENV:
            env.pop(k, None)
    return env


def _headers_arg(headers: dict[str, Any] | None) -> str:
    lines = []
    for k, v in (headers or {}).items():
        k, v = str(k), str(v)
        if "\r" in k or "\n" in k or "\r" in v or "\n" in v:
            continue
        lines.append(f"{k}: {v}\r\n")
    return "".join(lines)


def _cookie_stream(path: Path) -> io.StringIO:
    """The cookies file's text in memory, for yt-dlp alone.

    yt-dlp accepts a text stream as ``cookiefile`` and writes its jar back to it
    when it closes: with a stream that write stays in memory, so the user's file
    is never rewritten by concurrent workers and no copy ever touches the disk.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        why = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
        raise UsageError(f"cannot read the cookies file {path}: {why}; export it again (Netscape format)") from err
    return io.StringIO(text)


def _parse_cookies_from_browser(spec: str) -> tuple[str | None, ...]:
    browser, _, profile = spec.partition(":")
    return (browser.strip().lower(), profile or None, None, None)


def _remaining(deadline: float) -> float:
    return deadline - time.monotonic()


# --- the stage --------------------------------------------------------------------------


def fetch_clip(
    url: str,
    *,
    start_s: float,
    end_s: float,
    dest: Path | str,
    sample_rate_hz: int = 16000,
    audio_format: str = "flac",
    format: str = "bestaudio[ext=m4a]/bestaudio",
    timeout_s: float = 120.0,
    cookies: str | None = None,
    cookies_from_browser: str | None = None,
    proxy: str | None = None,
    ytdlp_params: Mapping[str, Any] | None = None,
    plugin_dirs: Sequence[str] = (),
) -> ClipResult:
    """Fetch ``[start_s, end_s)`` of the video at ``url`` into ``dest`` (see module docstring).

    ``proxy``: every request of the clip (yt-dlp's and ffmpeg's, the whole-file fallback's)
    goes through it, even to 127.0.0.1.  ``ytdlp_params``: further YoutubeDL parameters,
    set after ours (a session's: :meth:`.sessions.SessionSpec.fetch_kwargs`; a key we set
    ourselves is refused by the config); ``plugin_dirs``: yt-dlp plugin folders.

    Returns a :class:`ClipResult`; ``dest`` exists afterwards only if ``ok``.
    Raises :class:`ValidationError` / :class:`UsageError` for a hostile URL or ID,
    bad times or options, and :class:`DiskFullError` when the disk is full.
    """
    t0 = time.monotonic()
    ytid, url = parse_watch_url(url)
    start_s, end_s = valid_segment_times(start_s, end_s)
    if audio_format not in AUDIO_FORMATS:
        raise UsageError(f"audio_format must be one of {', '.join(AUDIO_FORMATS)}, got {audio_format!r}")
    if not 8000 <= int(sample_rate_hz) <= 48000:
        raise UsageError(f"sample_rate_hz must be between 8000 and 48000, got {sample_rate_hz}")
    if not (math.isfinite(timeout_s) and timeout_s > 0):
        raise UsageError(f"timeout_s must be a positive number of seconds, got {timeout_s}")
    if cookies and cookies_from_browser:
        raise UsageError("cookies and cookies_from_browser are exclusive: pass one")
    dest = Path(dest)
    sample_rate_hz = int(sample_rate_hz)
    deadline = t0 + float(timeout_s)
    base: dict[str, Any] = {"ytid": ytid, "start_s": start_s, "end_s": end_s, "sample_rate_hz": sample_rate_hz, "audio_format": audio_format}
    versions = tool_versions()

    def done(**kw: Any) -> ClipResult:
        return ClipResult(**base, tool_versions=dict(versions), elapsed_s=round(time.monotonic() - t0, 4), **kw)

    def extract() -> tuple[dict[str, Any] | None, Failure | None]:
        return _extract(url, format=format, deadline=deadline, cookies=cookies, cookies_from_browser=cookies_from_browser, proxy=proxy,
                        params=ytdlp_params or {}, plugin_dirs=plugin_dirs)  # fmt: skip

    info, failure = extract()
    meta: dict[str, Any] = {"extractions": 1}
    if info is not None:
        meta.update(
            license=info.get("license"),
            uploader=info.get("uploader"),
            channel_id=info.get("channel_id"),
            title=info.get("title"),
            upload_date=info.get("upload_date"),
            itag=None if info.get("format_id") is None else str(info.get("format_id")),
            codec=info.get("acodec"),
            container=info.get("container") or info.get("ext"),
            source_sample_rate_hz=info.get("asr"),
            source_channels=info.get("audio_channels"),
            source_duration_s=None if info.get("duration") is None else float(info["duration"]),
            player_client=None if info.get("_client") is None else str(info["_client"]),
        )
    if failure is not None or info is None:
        failure = failure or Failure(R.EXTRACTOR_BROKEN, "yt-dlp returned nothing")
        return done(ok=False, reason=failure.reason, permanent=failure.permanent, message=failure.message, **meta)
    length = meta.get("source_duration_s")
    if length is not None and start_s >= length + 1.0:  # lengthSeconds is whole seconds
        msg = f"short: the source ({length:g} s) ends before the segment {start_s:g}-{end_s:g} s starts"
        return done(ok=False, reason=R.QC_REJECT, permanent=False, message=msg, **meta)

    def read(info: dict[str, Any]) -> dict[str, Any]:
        return _read_segment(info, start_s=start_s, end_s=end_s, dest=dest, sample_rate_hz=sample_rate_hz, audio_format=audio_format, deadline=deadline,
                             proxy=proxy, source_address=(ytdlp_params or {}).get("source_address"))  # fmt: skip

    try:
        try:
            outcome = read(info)
        except _Reject as rej:
            if rej.failure.reason != R.FORMAT_403:
                raise
            # the media URL was refused after a good extraction (expired, or bound to a PO token
            # or a client): extract once more and read again; a second refusal is transient
            log.info("%s: media URL refused (%s); extracting again", ytid, rej.failure.message[:200])
            info, failure = extract()
            meta["extractions"] = 2
            if failure is not None or info is None:
                failure = failure or Failure(R.EXTRACTOR_BROKEN, "yt-dlp returned nothing")
                return done(ok=False, reason=failure.reason, permanent=failure.permanent, message=failure.message, **meta)
            outcome = read(info)
    except _Reject as rej:
        f = rej.failure
        return done(ok=False, reason=f.reason, permanent=f.permanent, message=f.message, fallback=rej.fallback, **meta)
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise DiskFullError(f"disk full while writing {dest}: free space, then run again") from err
        raise
    # the decoded channel count and rate replace what the extraction said
    return done(ok=True, path=dest, **{**meta, **outcome})


def _use_plugin_dirs(dirs: Sequence[str]) -> None:
    """yt-dlp's plugin folders are process-wide (each holds plugin packages, as for
    ``--plugin-dirs``): add ``dirs`` before the others.  Before the first YoutubeDL they
    are loaded with the rest; once plugins are loaded, the new folders are loaded too."""
    if not dirs:
        return
    import importlib

    from yt_dlp import globals as ytg
    from yt_dlp.plugins import load_all_plugins

    wanted = [str(Path(d).expanduser()) for d in dirs]
    with _PLUGIN_LOCK:
        if all(d in ytg.plugin_dirs.value for d in wanted):
            return
        ytg.plugin_dirs.value = [*wanted, *(d for d in ytg.plugin_dirs.value if d not in wanted)]
        if ytg.all_plugins_loaded.value:
            importlib.invalidate_caches()  # yt-dlp's plugin finder forgets the folders it searched
            load_all_plugins()


_PLUGIN_LOCK = threading.Lock()


def _extract(url: str, *, format: str, deadline: float, cookies: str | None, cookies_from_browser: str | None, proxy: str | None = None,
             params: Mapping[str, Any] | None = None, plugin_dirs: Sequence[str] = ()) -> tuple[dict[str, Any] | None, Failure | None]:  # fmt: skip
    """``extract_info(download=False)`` once; returns (info, None) or (None, failure)."""
    import yt_dlp

    _use_plugin_dirs(plugin_dirs)

    logger = _CaptureLogger()
    # every connection and every read of yt-dlp waits at most this long (a third of the clip's budget, at most 30 s)
    socket_timeout_s = max(1.0, min(30.0, _remaining(deadline) / 3))
    opts: dict[str, Any] = {
        "quiet": True,
        "no_warnings": False,
        "noprogress": True,
        "logger": logger,
        "format": format,
        "noplaylist": True,
        "skip_download": True,
        "cachedir": False,
        "socket_timeout": socket_timeout_s,
        "extractor_retries": 1,
        "color": {"stdout": "no_color", "stderr": "no_color"},
    }
    if cookies_from_browser:
        opts["cookiesfrombrowser"] = _parse_cookies_from_browser(cookies_from_browser)
    demo = is_demo_url(url)
    if proxy:
        opts["proxy"] = proxy  # yt-dlp bypasses an explicit proxy for no host (no "no" entry)
    elif demo:
        opts["proxy"] = ""  # loopback: never through the environment's proxy
    if cookies:
        opts["cookiefile"] = _cookie_stream(Path(cookies))
    for key, value in (params or {}).items():  # the user's parameters, after ours (a clash was refused by the config)
        opts.setdefault(key, value)
    if isinstance(opts.get("impersonate"), str):
        from yt_dlp.networking.impersonate import ImpersonateTarget

        opts["impersonate"] = ImpersonateTarget.from_str(opts["impersonate"].lower())
    try:
        # the demo host needs only its own extractor: skip loading yt-dlp's ~1800 (70 ms of CPU)
        with yt_dlp.YoutubeDL(opts, auto_init=not demo) as ydl:
            ie_key = None
            if demo:
                ie = demo_extractor()()
                ydl.add_info_extractor(ie)
                ie_key = ie.ie_key()
            info = ydl.extract_info(url, download=False, ie_key=ie_key)
    except yt_dlp.utils.YoutubeDLError as err:
        failure = classify_ytdlp_error(err, logger.warnings + logger.errors)
        if failure.reason == R.NETWORK:  # say what was waited for, and how long
            host = urllib.parse.urlsplit(url).netloc
            waited = (f"no answer from {host} within {socket_timeout_s:.3g} s" if "timed out" in failure.message.lower()
                      else f"no connection to {host}")  # fmt: skip
            failure = Failure(
                R.NETWORK, f"{waited} while extracting {url} (yt-dlp socket_timeout {socket_timeout_s:.3g} s, a third of download.timeout_s): {failure.message}"
            )
        return None, failure
    if not isinstance(info, dict):
        return None, Failure(R.EXTRACTOR_BROKEN, f"yt-dlp returned no information for {url}")
    if info.get("requested_formats"):  # a merged selection: keep its audio part
        audio = [f for f in info["requested_formats"] if f.get("acodec") not in (None, "none")]
        if audio:
            info = {**info, **audio[0]}
    media = info.get("url")
    if not isinstance(media, str) or not media.startswith(("http://", "https://")):
        return None, Failure(R.EXTRACTOR_BROKEN, f"yt-dlp chose format {info.get('format_id')!r} without an http(s) URL")
    return info, None


def _http_args(headers: str, rw_timeout_s: float, local: bool, proxy: str | None = None, source_address: str | None = None) -> list[str]:
    if local:
        return ["-protocol_whitelist", "file"]
    args = ["-protocol_whitelist", "http,https,httpproxy,tcp,tls,crypto", "-rw_timeout", str(int(rw_timeout_s * 1e6))]
    if proxy:  # every host, 127.0.0.1 included (the environment's no_proxy is cleared: _env_for)
        args += ["-http_proxy", proxy]
    if source_address:
        args += ["-local_addr", source_address]
    args += ["-request_size", str(HTTP_REQUEST_SIZE), "-initial_request_size", str(HTTP_INITIAL_REQUEST_SIZE), "-multiple_requests", "0"]
    return [*args, "-headers", headers] if headers else args


def _opus_snap(seek_s: float) -> str:
    """An ``asetpts`` filter putting the first decoded Opus frame back on the 20 ms frame grid.

    WebM stores timestamps in whole milliseconds, so after a seek the first frame's time is
    up to a millisecond off (a continuous decode from the start is not: it counts samples);
    YouTube's Opus frames are 20 ms, so the true time is the nearest multiple of 20 ms.  A
    first frame more than 1 ms off the grid (other frame sizes) keeps its own time.  The
    frames after it follow by sample count."""
    t = f"(STARTPTS*TB+{seek_s:.6f})"
    grid = f"(round({t}/{OPUS_FRAME_S})*{OPUS_FRAME_S})"
    first = f"if(lte(abs({grid}-{t}),0.001),{grid},{t})"
    return f"asetpts='({first}-{seek_s:.6f})/TB+N/SR/TB'"


def _decode_cmd(
    src: str,
    raw: Path,
    *,
    start_s: float,
    duration_s: float,
    headers: str,
    rw_timeout_s: float,
    local: bool,
    opus: bool = False,
    proxy: str | None = None,
    source_address: str | None = None,
) -> list[str]:
    """ffmpeg reading ``[start_s, start_s + duration_s)`` of ``src`` into a float WAV at the
    source's own rate and channel count (what the decoder gives, whatever the extraction said).

    The seek is on the *input*, :data:`SEEK_PREROLL_S` before the start and without ffmpeg's
    own trimming (``-noaccurate_seek``): the demuxer lands on a packet at or before that
    point (range requests near the segment on every container that has an index), the
    decoder converges (AAC's overlap, Opus's pre-roll) and ``atrim`` then cuts at the exact
    sample of the start by the decoded frames' timestamps.  A source that cannot seek (a
    host that ignores Range; fragments without an index, when :func:`_fragments_read`
    gave up) is read from its start instead;
    the timestamps, and so the cut, are the same."""
    # -xerror: a read error mid-stream must fail the run (by default ffmpeg treats it as
    # the end of the input, exits 0 and leaves a short or empty file)
    cmd = [
        ffmpeg_exe(),
        "-nostdin",
        "-hide_banner",
        "-nostats",
        "-loglevel",
        "level+info",
        "-xerror",
        "-y",
        *_http_args(headers, rw_timeout_s, local, proxy, source_address),
    ]
    preroll = min(start_s, SEEK_PREROLL_S)
    seek_s = start_s - preroll
    if seek_s > 0:
        cmd += ["-noaccurate_seek", "-ss", f"{seek_s:.6f}"]
    # no -t on the input: after -noaccurate_seek it would count from wherever the demuxer
    # landed (a WebM cluster starts seconds earlier); the end of atrim ends the read
    cmd += ["-i", src]
    cmd += ["-map", "0:a:0", "-vn", "-sn", "-dn", "-map_metadata", "-1"]
    trim = f"atrim=start={preroll:.6f}:duration={duration_s:.6f}"
    cmd += ["-af", f"{_opus_snap(seek_s)},{trim}" if opus and seek_s > 0 else trim, "-c:a", "pcm_f32le", "-f", "wav", str(raw)]
    return cmd


def _encode_cmd(raw: Path, out: Path, *, channels: int, sample_rate_hz: int, audio_format: str) -> list[str]:
    """ffmpeg turning the decoded span (``channels`` channels) into the clip: the mean of
    the channels, resampled with soxr, 16-bit FLAC or WAV."""
    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-xerror", "-y", "-protocol_whitelist", "file", "-i", str(raw)]
    cmd += ["-map", "0:a:0", "-vn", "-sn", "-dn", "-map_metadata", "-1"]
    cmd += ["-af", f"{_downmix_filter(channels)},aresample={sample_rate_hz}:resampler=soxr:precision=28"]
    cmd += ["-ar", str(sample_rate_hz), "-ac", "1"]
    if audio_format == "flac":
        cmd += ["-c:a", "flac", "-sample_fmt", "s16", "-f", "flac"]
    else:
        cmd += ["-c:a", "pcm_s16le", "-f", "wav", "-bitexact"]
    cmd.append(str(out))
    return cmd


def _run_ffmpeg(cmd: list[str], *, deadline: float, env: dict[str, str]) -> tuple[Failure | None, str, float | None]:
    """Run ffmpeg within the deadline; return (failure or None, its warnings and errors,
    the input's probed duration in seconds when it logged one)."""
    budget = _remaining(deadline)
    if budget <= 0.5:
        return Failure(R.NETWORK, "timed out before the segment read could start"), "", None
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=budget, check=False, env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as err:  # subprocess.run has killed ffmpeg
        tail = _errors_only((err.stderr or b"").decode(errors="replace"))[-500:]
        return Failure(R.NETWORK, f"segment read timed out after {budget:.1f} s{': ' + tail if tail else ''}"), tail, None
    except FileNotFoundError as err:
        raise DownloadError(f"cannot run ffmpeg at {cmd[0]}: {err}; reinstall imageio-ffmpeg") from err
    text = proc.stderr.decode(errors="replace")
    stderr, probed = _errors_only(text), _probed_duration(text)
    if proc.returncode != 0:
        return classify_ffmpeg_error(stderr, proc.returncode), stderr, probed
    return None, stderr, probed


# the decode logs at level "info" with level tags, for the input's probed duration; only
# its errors are kept as its message (as with -loglevel error)
_LEVEL_TAG_RE = re.compile(r"\[(warning|info|verbose|debug|trace)\] ")
_PROBED_RE = re.compile(r"\[info\] +Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")


def _errors_only(stderr: str) -> str:
    """ffmpeg's stderr without its info lines, and without level tags."""
    lines = [ln for ln in stderr.splitlines() if not _LEVEL_TAG_RE.search(ln)]
    return "\n".join(re.sub(r"\[(error|fatal|panic)\] ", "", ln) for ln in lines) + ("\n" if lines else "")


def _probed_duration(stderr: str) -> float | None:
    """The input's duration as ffmpeg probed it from the container (None: not given)."""
    m = _PROBED_RE.search(stderr)
    return None if m is None else int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))


def _wants_fallback(f: Failure) -> bool:
    """Failures a whole-file read may avoid: the server refused a range (ffmpeg prints a 416
    as "4XX Client Error, but not one of 40{0,1,3,4}"), a seek failed, or the demuxer met
    garbage after the start.  A file whose start does not decode (``Error opening input:
    Invalid data``: a corrupt file) is not one: reading it whole would give the same bytes."""
    msg = f.message.lower()
    if "invalid data" in msg:
        # garbage at the start is a corrupt file; garbage later is a read that went astray
        # (a seek answered from the file's start by a host that ignores Range)
        return "error opening input" not in msg
    return f.reason == R.FFMPEG_ERROR or "416" in msg or "seek" in msg or "4xx client error" in msg


def _raw_path(dest: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=TMP_PREFIX + "raw.", suffix=".wav", dir=dest.parent)
    os.close(fd)
    return Path(name)


@dataclass(frozen=True)
class _Read:
    """One segment read's fixed terms: the span, the clip's format, the deadline, ffmpeg's environment."""

    start_s: float
    end_s: float
    sample_rate_hz: int
    audio_format: str
    deadline: float
    env: dict[str, str]


def _read_segment(info: dict[str, Any], *, start_s: float, end_s: float, dest: Path, sample_rate_hz: int, audio_format: str, deadline: float,
                  proxy: str | None = None, source_address: str | None = None) -> dict[str, Any]:  # fmt: skip
    """The segment read (and, if needed, the whole-file fallback), proved and committed to ``dest``."""
    media_url: str = info["url"]
    rw_timeout_s = max(1.0, min(30.0, _remaining(deadline) / 4))
    env = _env_for(media_url, proxy)
    span: dict[str, Any] = {"start_s": start_s, "duration_s": end_s - start_s, "opus": str(info.get("acodec") or "").startswith("opus")}
    job = _Read(start_s, end_s, sample_rate_hz, audio_format, deadline, env)
    fallback = False
    dest.parent.mkdir(parents=True, exist_ok=True)
    raw = _raw_path(dest)
    try:
        with atomic_path(dest, suffix="." + audio_format) as tmp:
            checked = _fragments_read(info, raw, tmp, job, span=span, proxy=proxy) if source_address is None else None
            if checked is None:
                cmd = _decode_cmd(media_url, raw, headers=_headers_arg(info.get("http_headers")), rw_timeout_s=rw_timeout_s, local=False, proxy=proxy,
                                  source_address=source_address, **span)  # fmt: skip
                checked = _decode_and_check(cmd, raw, tmp, info, job)
            if isinstance(checked, Failure) and _wants_fallback(checked):
                log.info("%s: segment read failed (%s); downloading the audio format whole", info.get("id"), checked.message[:200])
                fallback = True
                first = checked
                checked = _fallback_read(info, raw, tmp, job, span=span, proxy=proxy)
                if isinstance(checked, Failure):  # say what sent it there, too
                    checked = Failure(checked.reason, f"{checked.message} (after the segment read failed: {first.message})")
            if isinstance(checked, Failure):
                raise _Reject(checked, fallback=fallback)
            result = dict(checked)
            result["sha256"] = sha256_file(tmp)
    finally:
        with contextlib.suppress(FileNotFoundError):
            raw.unlink()
    result["fallback"] = fallback
    return result


def _decode_and_check(cmd: list[str], raw: Path, tmp: Path, info: dict[str, Any], job: _Read) -> Failure | dict[str, Any]:
    """Run the decode ``cmd`` (writing ``raw``), then the encode into ``tmp``, then prove it."""
    import soundfile as sf

    start_s, end_s, sample_rate_hz, deadline, env = job.start_s, job.end_s, job.sample_rate_hz, job.deadline, job.env

    failure, stderr, probed_s = _run_ffmpeg(cmd, deadline=deadline, env=env)
    if failure is not None:
        return failure
    try:
        decoded = sf.info(str(raw))
    except (sf.LibsndfileError, RuntimeError) as err:
        return classify_ffmpeg_error(stderr, 0) if stderr.strip() else Failure(R.FFMPEG_ERROR, f"ffmpeg wrote an undecodable file: {err}")
    known = info.get("duration")
    length_s = float(known) if isinstance(known, (int, float)) else probed_s
    if decoded.frames == 0:
        if length_s is not None and length_s > start_s + PAD_TOLERANCE_S:
            # the source covers the start, yet nothing came: the read could not reach it
            # (a WebM with its Cues at the end, from a host that ignores Range)
            return Failure(R.FFMPEG_ERROR, f"no audio read at {start_s:g} s of a {length_s:g} s source: cannot seek to it")
        src = f"{length_s:g} s" if length_s is not None else "unknown length"
        return Failure(R.QC_REJECT, f"short: the source ({src}) has no audio in the segment {start_s:g}-{end_s:g} s")
    enc = _encode_cmd(raw, tmp, channels=int(decoded.channels), sample_rate_hz=sample_rate_hz, audio_format=job.audio_format)
    failure, enc_err, _ = _run_ffmpeg(enc, deadline=deadline, env=env)
    if failure is not None:
        return failure
    checked = _check_output(tmp, info, start_s=start_s, end_s=end_s, sample_rate_hz=sample_rate_hz, stderr=stderr + enc_err)
    if isinstance(checked, dict):
        checked["source_channels"] = int(decoded.channels)
        checked["source_sample_rate_hz"] = int(decoded.samplerate)
    return checked


def _check_output(tmp: Path, info: dict[str, Any], *, start_s: float, end_s: float, sample_rate_hz: int, stderr: str) -> Failure | dict[str, Any]:
    """Prove ffmpeg's output: decodable, mono at the rate, exact length (pad/trim the last
    few ms, rewriting ``tmp``), not all zero.  Returns the clip's fields or a Failure."""
    import soundfile as sf

    duration_s = end_s - start_s
    expected = int(round(duration_s * sample_rate_hz))
    src_duration = info.get("duration")
    try:
        data, sr = sf.read(str(tmp), dtype="int16", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        if stderr.strip():  # ffmpeg said why (a read error it did not treat as fatal)
            return classify_ffmpeg_error(stderr, 0)
        if src_duration is not None and start_s >= float(src_duration) - 1.0:
            # nothing after the seek point: ffmpeg writes a header without samples
            return Failure(R.QC_REJECT, f"short: the source ({src_duration} s) has no audio in the segment {start_s:g}-{end_s:g} s")
        return Failure(R.FFMPEG_ERROR, f"ffmpeg wrote an undecodable file: {err}")
    if sr != sample_rate_hz or data.shape[1] != 1:
        return Failure(R.FFMPEG_ERROR, f"ffmpeg wrote {data.shape[1]} channel(s) at {sr} Hz, expected mono at {sample_rate_hz} Hz")
    got = data.shape[0]
    tolerance = int(round(PAD_TOLERANCE_S * sample_rate_hz))
    if got < expected - tolerance:
        if src_duration is not None and float(src_duration) >= end_s - PAD_TOLERANCE_S:
            # the source is long enough: the read was cut short (a truncated body, a read error)
            detail = stderr.strip()[-500:] or "no message from ffmpeg"
            reason = classify_ffmpeg_error(stderr, 0).reason if stderr.strip() else R.NETWORK
            # an HTTP status or network error if ffmpeg named one, else most likely a cut body
            reason = R.NETWORK if reason == R.FFMPEG_ERROR else reason
            if "invalid data" in stderr.lower():
                # the demuxer met bytes it did not expect (a seek answered from the file's
                # start by a host that ignores Range): a whole-file read is the way out
                reason = R.FFMPEG_ERROR
            return Failure(
                reason, f"truncated read: got {got / sample_rate_hz:.3f} s of the {duration_s:.3f} s segment of a {src_duration} s source ({detail})"
            )
        src = f"{src_duration} s" if src_duration is not None else "unknown length"
        return Failure(R.QC_REJECT, f"short: the source ({src}) gave {got / sample_rate_hz:.3f} s of the {duration_s:.3f} s segment {start_s:g}-{end_s:g} s")
    samples = data[:expected, 0]
    padded = max(0, expected - got)
    trimmed = max(0, got - expected)
    if padded:
        samples = np.concatenate([samples, np.zeros(padded, dtype=np.int16)])
    if not np.any(samples):
        return Failure(R.QC_REJECT, f"silence: the {duration_s:.3f} s segment is digital silence (all samples zero)")
    if padded or trimmed:
        fmt = "FLAC" if tmp.suffix == ".flac" else "WAV"
        sf.write(str(tmp), samples, sample_rate_hz, subtype="PCM_16", format=fmt)
    rms = float(np.sqrt(np.mean((samples.astype(np.float64) / 32768.0) ** 2)))
    return {
        "samples": int(expected),
        "trim_start_s": start_s,
        "trim_end_s": start_s + expected / sample_rate_hz,
        "padded_samples": int(padded),
        "trimmed_samples": int(trimmed),
        "rms_dbfs": round(20.0 * math.log10(rms), 3) if rms > 0 else None,
    }


def _set_proxy(req: urllib.request.Request, proxy: str) -> None:
    """Send ``req`` through ``proxy`` whatever its host (``Request.set_proxy`` skips
    urllib's no_proxy bypass), with the proxy's credentials as Proxy-Authorization."""
    import base64

    parts = urllib.parse.urlsplit(proxy)
    hostport = parts.hostname or ""
    if parts.port:
        hostport += f":{parts.port}"
    if parts.username is not None:
        cred = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        req.add_header("Proxy-Authorization", "Basic " + base64.b64encode(cred.encode()).decode("ascii"))
    req.set_proxy(hostport, urllib.parse.urlsplit(req.full_url).scheme)


def _open_media(info: dict[str, Any], *, proxy: str | None, timeout_s: float, byte_range: tuple[int, int] | None = None) -> Any:
    """An HTTP response for the format's URL, with the format's headers (as ffmpeg gets them),
    through ``proxy`` if one is set (to any host) and never through the environment's proxy
    for a loopback host (as ffmpeg's environment, :func:`_env_for`); ``byte_range``: the
    inclusive bytes to ask for.  Raises what ``urlopen`` raises."""
    media_url: str = info["url"]
    handlers: list[Any] = []
    if proxy or (urllib.parse.urlsplit(media_url).hostname or "") in _LOOPBACK:
        handlers.append(urllib.request.ProxyHandler({}))  # no environment proxy; an explicit one is set on the request
    req = urllib.request.Request(media_url, headers={str(k): str(v) for k, v in (info.get("http_headers") or {}).items()})
    if byte_range is not None:
        req.add_header("Range", f"bytes={byte_range[0]}-{byte_range[1]}")
    if proxy:
        _set_proxy(req, proxy)
    return urllib.request.build_opener(*handlers).open(req, timeout=timeout_s)


_CONTENT_RANGE_RE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


def _read_range(info: dict[str, Any], first: int, last: int, *, proxy: str | None, deadline: float) -> tuple[bytes, int]:
    """Bytes ``first..last`` of the format and the file's size, by ``deadline`` (each wait
    at most 10 s); a host that does not answer with exactly that range (206 and its
    Content-Range), or no time left, is a LayoutError: the caller reads the file as before."""
    if _remaining(deadline) <= 0:
        raise fmp4.LayoutError("the fragment search ran out of its time")
    timeout_s = max(0.5, min(10.0, _remaining(deadline)))
    with _open_media(info, proxy=proxy, timeout_s=timeout_s, byte_range=(first, last)) as resp:
        m = _CONTENT_RANGE_RE.fullmatch(str(resp.headers.get("Content-Range") or "").strip())
        if resp.status != 206 or m is None or int(m.group(1)) != first:
            raise fmp4.LayoutError(f"the host answered a range request with {resp.status} {resp.headers.get('Content-Range')!r}")
        want = int(m.group(2)) - first + 1
        data: bytes = resp.read(want)
    if len(data) != want:
        raise fmp4.LayoutError(f"got {len(data)} of {want} bytes at {first}")
    return data, int(m.group(3))


def _fragments_read(info: dict[str, Any], raw: Path, tmp: Path, job: _Read, *, span: dict[str, Any], proxy: str | None) -> Failure | dict[str, Any] | None:
    """The segment of a fragmented m4a *without an index* (no sidx, no mfra), which ffmpeg
    would read whole: find its fragments with bounded range reads (:mod:`.fmp4`), decode the
    init segment and those fragments locally.  ``None``: not that layout, or any surprise on
    the way (a host that ignores Range, a malformed box, a failed read): the caller reads
    the segment with ffmpeg as for every other container."""
    if str(info.get("ext") or "") not in ("m4a", "mp4") or info.get("container") == "m4a_dash":
        return None  # not an MP4, or YouTube's DASH audio (its sidx lets ffmpeg seek): no probe, no round trip
    # the fragment holding the decode's start (a little before the pre-roll: the AAC edit list)
    seek_s = max(0.0, job.start_s - SEEK_PREROLL_S - 0.1)
    # a third of the time left: a search that stalls leaves ffmpeg's read the rest
    deadline = time.monotonic() + _remaining(job.deadline) / 3
    try:
        # a few KiB tell the layout (an indexed or progressive file costs only this probe)
        head, size = _read_range(info, 0, min(fmp4.PROBE_BYTES, fmp4.HEAD_BYTES) - 1, proxy=proxy, deadline=deadline)
        init = fmp4.parse_init(head)
        if init is None:
            return None
        if size > len(head):
            head += _read_range(info, len(head), min(size, fmp4.HEAD_BYTES) - 1, proxy=proxy, deadline=deadline)[0]
        found = fmp4.locate(lambda a, z: _read_range(info, a, z, proxy=proxy, deadline=deadline)[0], file_size=size, head=head, init=init,
                            start_s=seek_s, end_s=job.end_s + 0.1, max_bytes=max(fmp4.HEAD_BYTES, size // 2))  # fmt: skip
    except (fmp4.LayoutError, struct.error, urllib.error.URLError, OSError, ValueError) as err:
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            raise
        log.debug("%s: no fragment read (%s); ffmpeg reads the segment", info.get("id"), err)
        return None
    log.debug("%s: %d bytes of %d in %d range reads (fragments from %.3f s)", info.get("id"), found.bytes_read, size, found.reads, found.start_s)
    fd, name = tempfile.mkstemp(prefix=TMP_PREFIX + "frag.", suffix=".m4a", dir=tmp.parent)
    local = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(found.data)
        # the local file starts at found.start_s of the source: seek and trim by its own clock
        cmd = _decode_cmd(str(local), raw, headers="", rw_timeout_s=1.0, local=True, **{**span, "start_s": job.start_s - found.start_s})
        checked = _decode_and_check(cmd, raw, tmp, info, job)
    finally:
        with contextlib.suppress(FileNotFoundError):
            local.unlink()
    if isinstance(checked, Failure) and checked.reason != R.QC_REJECT:
        log.info("%s: the local fragments did not decode (%s); ffmpeg reads the segment", info.get("id"), checked.message[:200])
        return None
    return checked


def _fallback_read(info: dict[str, Any], raw: Path, tmp: Path, job: _Read, *, span: dict[str, Any], proxy: str | None = None) -> Failure | dict[str, Any]:
    """Download the chosen audio-only format whole (bounded), then cut the segment locally."""
    deadline = job.deadline
    limit = FALLBACK_MAX_BYTES
    fd, whole_name = tempfile.mkstemp(prefix=TMP_PREFIX + "whole.", suffix="." + str(info.get("ext") or "bin"), dir=tmp.parent)
    os.close(fd)
    whole = Path(whole_name)
    try:
        timeout = max(1.0, min(30.0, _remaining(deadline)))
        try:
            with _open_media(info, proxy=proxy, timeout_s=timeout) as resp, open(whole, "wb") as fh:
                total = 0
                while True:
                    if _remaining(deadline) <= 0:
                        return Failure(R.NETWORK, "whole-file fallback timed out")
                    block = resp.read(256 * 1024)
                    if not block:
                        break
                    total += len(block)
                    if total > limit:
                        return Failure(R.FFMPEG_ERROR, f"whole-file fallback refused: the format is over {limit} bytes")
                    fh.write(block)
                announced = resp.headers.get("Content-Length")
                if announced is not None and int(announced) != total:
                    return Failure(R.NETWORK, f"whole-file fallback got {total} of {announced} bytes")
        except urllib.error.HTTPError as err:
            return Failure(classify_ffmpeg_error(f"Server returned {err.code}", None).reason, f"whole-file fallback: HTTP Error {err.code}: {err.reason}")
        except (urllib.error.URLError, OSError, ValueError) as err:
            if isinstance(err, OSError) and err.errno == errno.ENOSPC:
                raise
            return Failure(R.NETWORK, f"whole-file fallback failed: {err}")
        cmd = _decode_cmd(str(whole), raw, headers="", rw_timeout_s=1.0, local=True, **span)
        return _decode_and_check(cmd, raw, tmp, info, job)
    finally:
        with contextlib.suppress(FileNotFoundError):
            whole.unlink()
