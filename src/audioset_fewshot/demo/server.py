"""An offline, YouTube-like media server on 127.0.0.1.

Per YouTube ID it serves

* a *watch* endpoint, ``/watch?v=<id>``, answering with a JSON document shaped
  like YouTube's player response (``playabilityStatus``, ``videoDetails``,
  ``microformat.playerMicroformatRenderer``, ``streamingData.adaptiveFormats``
  with itag 140, fragmented m4a/AAC, and itag 251, webm/Opus).  It is read by
  :mod:`audioset_fewshot.download.ytdlp_demo`, a yt-dlp extractor, so
  extraction, format selection and errors run through yt-dlp's own machinery;
* a *media* endpoint, ``/videoplayback?id=<id>&itag=<itag>``, with HTTP Range
  support.  The audio is generated on first use from a seeded signal whose
  timbre depends on the source's ``class_key`` (:mod:`.signals`), encoded with
  the imageio-ffmpeg binary and cached on disk, keyed by everything that
  changes the bytes.

Faults can be set per ID (catalog, :meth:`MediaServer.set_fault`) or drawn
for IDs at a seeded rate (``fault_rate``); latency and a per-connection
bandwidth cap can be added.  Every request is logged (:attr:`MediaServer.requests`).

What is served is defined beside it: the sources and formats in :mod:`.media`,
the faults in :mod:`.faults` (both re-exported here); the demo's own rules
(config, media preparation) in :mod:`.session`.

The server binds 127.0.0.1 on an ephemeral port, is threaded, stops by itself
after ``idle_timeout_s`` without requests or after ``max_requests`` requests,
and every socket and every wait has a bound.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import logging
import os
import re
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audioset_fewshot._io import atomic_path, atomic_write_bytes
from audioset_fewshot.demo import signals
from audioset_fewshot.demo.faults import (
    _RANDOM_FAULTS,
    FAULTS,
    MEDIA_BODY_FAULTS,
    MEDIA_HTTP_FAULTS,
    PAGE_HTTP_FAULTS,
    PLAYABILITY_FAULTS,
    SOURCE_FAULTS,
    _source_fault,
    fault_names,
)
from audioset_fewshot.demo.media import (
    _ENCODER_ARGS,
    CC_BY,
    DEFAULT_ITAG,
    FORMATS,
    SHORT_SOURCE_S,
    STANDARD_LICENSE,
    MediaFormat,
    SourceSpec,
    _format_of,
    default_spec,
)
from audioset_fewshot.errors import AudiosetFewshotError, UsageError
from audioset_fewshot.validate import is_youtube_id, valid_youtube_id

log = logging.getLogger(__name__)


STALL_MAX_S = 120.0  # a stalled connection is closed by the server after this, whatever the client does

_FAULT_STREAM = 201
_CORRUPT_STREAM = 203


class MediaServerError(AudiosetFewshotError):
    """The demo media server could not start or could not generate media."""


@dataclass(frozen=True)
class RequestRecord:
    """One logged request.  ``range`` is the Range header as sent (or None)."""

    time: float
    method: str
    path: str
    ytid: str | None
    kind: str  # 'watch' | 'media' | 'other'
    range: str | None
    status: int
    body_bytes: int
    fault: str | None = None
    has_cookie: bool = False  # whether a Cookie header came (its value is never kept)


# --- the server -----------------------------------------------------------------------


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = False
    request_queue_size = 128  # many workers, each with ffmpeg connections, may connect at once
    owner: MediaServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that hangs up (ffmpeg after its last range) is normal: no traceback on stderr
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


class MediaServer:
    """A YouTube-like media server bound to 127.0.0.1 (see module docstring).

    Use as a context manager::

        with MediaServer(cache_dir=tmp / "media", catalog={"abcdefghijk": SourceSpec("/m/09x0r")}) as srv:
            url = srv.watch_url("abcdefghijk")
    """

    def __init__(
        self,
        *,
        cache_dir: Path | str,
        catalog: Mapping[str, SourceSpec] | None = None,
        seed: int = 0,
        fault_rate: float = 0.0,
        latency_s: float = 0.0,
        bandwidth_bps: float | None = None,
        idle_timeout_s: float = 300.0,
        max_requests: int = 100_000,
        port: int = 0,
        socket_timeout_s: float = 30.0,
    ) -> None:
        if not 0.0 <= fault_rate <= 1.0:
            raise UsageError(f"fault_rate must be between 0 and 1, got {fault_rate}")
        if latency_s < 0 or (bandwidth_bps is not None and bandwidth_bps <= 0):
            raise UsageError("latency_s must be >= 0 and bandwidth_bps > 0 (or None)")
        if idle_timeout_s <= 0 or max_requests < 1:
            raise UsageError("idle_timeout_s must be > 0 and max_requests >= 1")
        self.cache_dir = Path(cache_dir)
        self.catalog: dict[str, SourceSpec] = {}
        for ytid, spec in (catalog or {}).items():
            self.catalog[valid_youtube_id(ytid)] = spec
        self.seed = int(seed)
        self.fault_rate = float(fault_rate)
        self.latency_s = float(latency_s)
        self.bandwidth_bps = None if bandwidth_bps is None else float(bandwidth_bps)
        self.idle_timeout_s = float(idle_timeout_s)
        self.max_requests = int(max_requests)
        self.port = int(port)
        self.socket_timeout_s = float(socket_timeout_s)

        self._lock = threading.Lock()
        self._quiet = threading.Condition(self._lock)  # notified when no request is being answered
        self._gen_locks: dict[str, threading.Lock] = {}
        self._faults: dict[str, str | None] = {}
        self._transient_used: set[tuple[str, str]] = set()
        self._burst_left = 0
        self._burst_fault = "rate-limited"
        self._requests: list[RequestRecord] = []
        self._count = 0
        self._active = 0  # requests being answered (a long transfer is not idleness)
        self._last_activity = time.monotonic()
        self._stop_event = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> MediaServer:
        if self._thread is not None:
            return self
        try:
            httpd = _HTTPServer(("127.0.0.1", self.port), _Handler)
        except OSError as err:
            raise MediaServerError(f"cannot bind 127.0.0.1:{self.port}: {err.strerror}; pass port=0 for a free port") from err
        httpd.owner = self
        httpd.timeout = 0.2
        self._httpd = httpd
        self._stop_event.clear()
        self._last_activity = time.monotonic()
        self._thread = threading.Thread(target=self._serve, name=f"media-server-{self.base_url}", daemon=True)
        self._thread.start()
        log.info("demo media server at %s (cache %s)", self.base_url, self.cache_dir)
        return self

    def _serve(self) -> None:
        httpd = self._httpd
        if httpd is None:  # pragma: no cover - start() sets it before the thread runs
            return
        try:
            while not self._stop_event.is_set():
                httpd.handle_request()
                with self._lock:
                    idle = 0.0 if self._active else time.monotonic() - self._last_activity
                    count = self._count
                if idle > self.idle_timeout_s:
                    log.info("demo media server idle for %.0f s: stopping", idle)
                    break
                if count >= self.max_requests:
                    log.warning("demo media server reached max_requests=%d: stopping", self.max_requests)
                    break
        finally:
            self._stop_event.set()
            httpd.server_close()

    def stop(self, *, timeout_s: float = 10.0) -> None:
        """Stop serving; stalled and throttled responses end within ``timeout_s``."""
        self._stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def __enter__(self) -> MediaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop_event.is_set()

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise MediaServerError("the media server is not started; call start() or use it as a context manager")
        host, port = str(self._httpd.server_address[0]), int(self._httpd.server_address[1])
        return f"http://{host}:{port}"

    def watch_url(self, ytid: str) -> str:
        return f"{self.base_url}/watch?v={valid_youtube_id(ytid)}"

    def media_url(self, ytid: str, fmt: int | str = 140) -> str:
        return f"{self.base_url}/videoplayback?id={valid_youtube_id(ytid)}&itag={_format_of(fmt).itag}"

    # -- configuration -----------------------------------------------------------------
    def spec(self, ytid: str) -> SourceSpec:
        """The spec serving ``ytid``: the catalog's, else :func:`default_spec`."""
        valid_youtube_id(ytid)
        return self.catalog.get(ytid) or default_spec(ytid, seed=self.seed)

    def set_fault(self, ytid: str, fault: str | None) -> None:
        """Force ``fault`` for ``ytid`` (None: no fault, overriding the catalog and the rate)."""
        valid_youtube_id(ytid)
        if fault is not None and fault not in FAULTS:
            raise UsageError(f"unknown fault {fault!r}; known faults: {', '.join(sorted(FAULTS))}")
        with self._lock:
            self._faults[ytid] = fault

    def rate_limit_burst(self, count: int, *, fault: str = "rate-limited") -> None:
        """The next ``count`` watch requests, whatever the ID, answer with ``fault``."""
        if fault not in PLAYABILITY_FAULTS and fault not in PAGE_HTTP_FAULTS:
            raise UsageError(f"rate_limit_burst needs a watch-page fault, got {fault!r}")
        with self._lock:
            self._burst_left = max(0, int(count))
            self._burst_fault = fault

    def fault_for(self, ytid: str) -> str | None:
        """The configured fault of ``ytid`` (explicit, catalog, or drawn at ``fault_rate``)."""
        with self._lock:
            if ytid in self._faults:
                return self._faults[ytid]
        spec = self.catalog.get(ytid)
        if spec is not None and spec.fault is not None:
            return spec.fault
        name, _sticky = self._random_fault(ytid)
        return name

    def _random_fault(self, ytid: str) -> tuple[str | None, bool]:
        if self.fault_rate <= 0.0:
            return None, True
        rng = np.random.default_rng([self.seed, _FAULT_STREAM, signals.stable_int(ytid)])
        if rng.random() >= self.fault_rate:
            return None, True
        weights = np.array([w for _, w, _ in _RANDOM_FAULTS])
        i = int(rng.choice(len(_RANDOM_FAULTS), p=weights / weights.sum()))
        return _RANDOM_FAULTS[i][0], _RANDOM_FAULTS[i][2]

    def _active_fault(self, ytid: str, kind: str) -> str | None:
        """The fault applying to this request (consumes one-shot random faults)."""
        with self._lock:
            if kind == "watch" and self._burst_left > 0:
                self._burst_left -= 1
                return self._burst_fault
            if ytid in self._faults:
                return self._faults[ytid]
        spec = self.catalog.get(ytid)
        if spec is not None and spec.fault is not None:
            return spec.fault
        name, sticky = self._random_fault(ytid)
        if name is None or sticky:
            return name
        fault_kind = "watch" if (name in PLAYABILITY_FAULTS or name in PAGE_HTTP_FAULTS) else "media"
        if fault_kind != kind:
            return None
        with self._lock:
            if (ytid, name) in self._transient_used:
                return None
            self._transient_used.add((ytid, name))
        return name

    # -- log -----------------------------------------------------------------------------
    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of the request log (oldest first).

        A client has its whole response before the handler logs it, so the snapshot
        waits (up to 2 s) until no request is being answered."""
        with self._quiet:
            self._quiet.wait_for(lambda: self._active == 0, timeout=2.0)
            return list(self._requests)

    def reset_log(self) -> None:
        with self._lock:
            self._requests.clear()

    def bytes_served(self, ytid: str | None = None, *, kind: str | None = "media") -> int:
        """Body bytes sent (for ``ytid`` if given; media responses only unless ``kind=None``)."""
        return sum(r.body_bytes for r in self.requests if (ytid is None or r.ytid == ytid) and (kind is None or r.kind == kind))

    def _record(self, rec: RequestRecord) -> None:
        with self._lock:
            self._requests.append(rec)

    def _begin(self) -> None:
        with self._lock:
            self._count += 1
            self._active += 1
            self._last_activity = time.monotonic()

    def _end(self) -> None:
        with self._lock:
            self._active -= 1
            self._last_activity = time.monotonic()
            if self._active == 0:
                self._quiet.notify_all()

    # -- media -----------------------------------------------------------------------------
    def _audio_params(self, ytid: str, fault: str | None) -> tuple[SourceSpec, float, bool]:
        spec = self.spec(ytid)
        duration = min(spec.duration_s, SHORT_SOURCE_S) if fault == "short" else spec.duration_s
        return spec, duration, fault == "silence"

    def _media_target(self, ytid: str, f: MediaFormat, fault: str | None) -> tuple[Path, SourceSpec, float, bool]:
        spec, duration, silent = self._audio_params(ytid, fault)
        key_obj = {
            "generator": signals.GENERATOR_VERSION,
            "ytid": ytid,
            "seed": self.seed,
            "class_key": spec.class_key,
            "duration_s": duration,
            "sample_rate_hz": spec.sample_rate_hz,
            "channels": spec.channels,
            "silent": silent,
            "itag": f.itag,
            "encoder": _ENCODER_ARGS[f.ext],
        }
        key = hashlib.sha256(json.dumps(key_obj, sort_keys=True).encode()).hexdigest()[:20]
        if fault == "corrupt":
            return self.cache_dir / f"{ytid}-{f.itag}-{key}-corrupt.bin", spec, duration, silent
        return self.cache_dir / f"{ytid}-{f.itag}-{key}.{f.ext}", spec, duration, silent

    def cached_size(self, ytid: str, fmt: int | str = 140, *, fault: str | None = None) -> int | None:
        """Size of the encoded file if it is already generated, else None (never generates)."""
        target = self._media_target(ytid, _format_of(fmt), fault)[0]
        try:
            return target.stat().st_size
        except FileNotFoundError:
            return None

    def media_path(self, ytid: str, fmt: int | str = 140, *, fault: str | None = None) -> Path:
        """Path of the encoded file for ``ytid`` (generated and cached on first use)."""
        f = _format_of(fmt)
        target = self._media_target(ytid, f, fault)[0]
        if fault == "corrupt":
            clean = self.media_path(ytid, fmt, fault=None)
            if not target.exists():
                rng = np.random.default_rng([self.seed, _CORRUPT_STREAM, signals.stable_int(ytid)])
                atomic_write_bytes(target, rng.integers(0, 256, clean.stat().st_size, dtype=np.uint8).tobytes())
            return target
        if not target.exists():
            self._generate(ytid, fault, (f,))
        return target

    def _generate(self, ytid: str, fault: str | None, formats: tuple[MediaFormat, ...]) -> None:
        """Encode the missing ``formats`` of one source, synthesising its signal once."""
        with self._lock:
            lock = self._gen_locks.setdefault(f"{ytid}/{fault}", threading.Lock())
        with lock:  # one generator per source: concurrent first requests wait for it
            todo = [(f, self._media_target(ytid, f, fault)) for f in formats]
            todo = [(f, t) for f, t in todo if not t[0].exists()]
            if not todo:
                return
            _, spec, duration, silent = todo[0][1]
            if silent:
                audio = np.zeros((int(round(duration * spec.sample_rate_hz)), spec.channels), dtype=np.float32)
            else:
                audio = signals.synthesize(
                    spec.class_key, ytid, seed=self.seed, duration_s=duration, sample_rate_hz=spec.sample_rate_hz, channels=spec.channels
                )
            raw = audio.astype("<f4", copy=False).tobytes()
            del audio
            for f, (target, *_rest) in todo:
                self._encode(ytid, raw, spec, duration, f, target)

    def media_size(self, ytid: str, fmt: int | str = 140) -> int:
        """Size in bytes of the whole audio file of ``ytid`` in format ``fmt`` (as served)."""
        fault = self.fault_for(ytid)
        return self.media_path(ytid, fmt, fault=_source_fault(fault)).stat().st_size

    def prepare(self, ytids: Iterable[str], *, formats: Iterable[int | str] = (140, 251), workers: int | None = None) -> None:
        """Generate (and cache) the media of ``ytids`` ahead of time, one source per worker."""
        fmts = tuple(_format_of(f) for f in formats)
        jobs: list[tuple[str, str | None]] = []
        for ytid in ytids:
            valid_youtube_id(ytid)
            fault = self.fault_for(ytid)
            jobs.append((ytid, _source_fault(fault)))
        n = workers or max(1, min(8, os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=n) as pool:
            futures: list[Future[Any]] = []
            for ytid, fault in jobs:
                if fault == "corrupt":  # derived from the clean file
                    futures.extend(pool.submit(self.media_path, ytid, f.itag, fault=fault) for f in fmts)
                else:
                    futures.append(pool.submit(self._generate, ytid, fault, fmts))
            for fut in futures:
                fut.result()

    def _encode(self, ytid: str, raw: bytes, spec: SourceSpec, duration_s: float, f: MediaFormat, target: Path) -> None:
        import imageio_ffmpeg

        codec = list(_ENCODER_ARGS[f.ext])
        cmd = [
            imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "f32le", "-ar", str(spec.sample_rate_hz), "-ac", str(spec.channels), "-i", "pipe:0",
            "-map_metadata", "-1", "-fflags", "+bitexact", *codec,
        ]  # fmt: skip
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        timeout = 60.0 + duration_s
        with atomic_path(target, suffix="." + f.ext) as tmp:
            try:
                proc = subprocess.run([*cmd, str(tmp)], input=raw, capture_output=True, timeout=timeout, check=False)
            except subprocess.TimeoutExpired as err:
                raise MediaServerError(f"encoding {ytid} ({f.ext}) took over {timeout:.0f} s") from err
            if proc.returncode != 0:
                raise MediaServerError(f"ffmpeg could not encode {ytid} ({f.ext}): {proc.stderr.decode(errors='replace')[-500:]}")

    # -- watch -------------------------------------------------------------------------
    def player_response(self, ytid: str, fault: str | None) -> dict[str, Any]:
        """The player-response document of ``ytid`` under ``fault`` (see module docstring)."""
        spec, duration, _silent = self._audio_params(ytid, fault)
        date = spec.upload_date
        iso_date = f"{date[:4]}-{date[4:6]}-{date[6:]}"
        length = str(int(round(duration)))
        details = {
            "videoId": ytid,
            "title": spec.title or f"Demo video {ytid}",
            "author": spec.uploader,
            "channelId": spec.channel_id,
            "lengthSeconds": length,
            "isLiveContent": False,
            "isPrivate": fault == "private",
        }
        micro = {
            "playerMicroformatRenderer": {
                "title": {"simpleText": details["title"]},
                "ownerChannelName": spec.uploader,
                "externalChannelId": spec.channel_id,
                "uploadDate": iso_date,
                "publishDate": iso_date,
                "lengthSeconds": length,
                "license": spec.license,  # demo extension: YouTube shows it on the watch page
                "availableCountries": ["DE", "FR", "JP"] if fault == "geo-blocked" else [],
            }
        }
        doc: dict[str, Any] = {"videoDetails": details, "microformat": micro}
        if fault in PLAYABILITY_FAULTS:
            p = PLAYABILITY_FAULTS[fault]
            status: dict[str, Any] = {"status": p["status"], "reason": p["reason"]}
            pemr: dict[str, Any] = {"reason": {"simpleText": p["reason"]}}
            if "subreason" in p:
                pemr["subreason"] = {"runs": [{"text": p["subreason"]}]}
            status["errorScreen"] = {"playerErrorMessageRenderer": pemr}
            doc["playabilityStatus"] = status
            return doc
        doc["playabilityStatus"] = {"status": "OK", "playableInEmbed": True}
        media_fault = _source_fault(fault)
        formats = []
        for f in FORMATS.values():
            # media is generated on its first media request, not here: a watch request stays
            # fast; contentLength is given once the file exists (YouTube always gives it)
            size = self.cached_size(ytid, f.itag, fault=media_fault)
            formats.append(
                {
                    "itag": f.itag,
                    "url": self.media_url(ytid, f.itag),
                    "mimeType": f.mime_type,
                    "bitrate": f.bitrate_bps,
                    **({"contentLength": str(size)} if size is not None else {}),
                    "approxDurationMs": str(int(round(duration * 1000))),
                    "audioQuality": "AUDIO_QUALITY_MEDIUM",
                    "audioSampleRate": str(spec.sample_rate_hz if f.ext == "m4a" else 48000),
                    "audioChannels": spec.channels,
                }
            )
        doc["streamingData"] = {"expiresInSeconds": "21540", "adaptiveFormats": formats}
        return doc


# at most 18 digits a side (a file is < 1 EB); a longer or malformed Range is answered 416, never parsed
_RANGE_RE = re.compile(r"bytes=(\d{0,18})-(\d{0,18})$")
MAX_RANGE_HEADER = 100


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "audioset-fewshot-demo/1"

    def setup(self) -> None:
        self.timeout = self.server.owner.socket_timeout_s  # type: ignore[misc]  # per connection, read by StreamRequestHandler.setup
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def do_GET(self) -> None:
        self._dispatch(head=False)

    # -- plumbing --------------------------------------------------------------------------
    def _dispatch(self, *, head: bool) -> None:
        owner = self.server.owner
        owner._begin()
        try:
            self._answer(owner, head=head)
        finally:
            owner._end()

    def _answer(self, owner: MediaServer, *, head: bool) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(parsed.query)
        started = time.time()
        if owner.latency_s:
            owner._stop_event.wait(owner.latency_s)
        if parsed.path == "/watch":
            ytid = (query.get("v") or [""])[0]
            kind = "watch"
        elif parsed.path == "/videoplayback":
            ytid = (query.get("id") or [""])[0]
            kind = "media"
        else:
            self._finish(started, None, "other", 404, self._send_bytes(404, b"not found\n", "text/plain", head=head))
            return
        if not is_youtube_id(ytid):
            self._finish(started, None, kind, 400, self._send_bytes(400, b"invalid video id\n", "text/plain", head=head))
            return
        try:
            if kind == "watch":
                self._watch(ytid, started, head=head)
            else:
                self._media(ytid, (query.get("itag") or ["140"])[0], started, head=head)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True

    def _finish(self, started: float, ytid: str | None, kind: str, status: int, nbytes: int, fault: str | None = None) -> None:
        rng = self.headers.get("Range")
        cookie = self.headers.get("Cookie") is not None
        self.server.owner._record(RequestRecord(started, self.command, self.path, ytid, kind, rng, status, nbytes, fault, cookie))

    def _send_bytes(self, status: int, body: bytes, ctype: str, *, head: bool, extra: Mapping[str, str] | None = None) -> int:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if head:
            return 0
        return self._write(body)

    def _write(self, body: bytes | memoryview) -> int:
        """Write ``body`` honouring the bandwidth cap; return the bytes written."""
        owner = self.server.owner
        view = memoryview(body)
        if owner.bandwidth_bps is None:
            self.wfile.write(view)
            return len(view)
        chunk = max(1024, int(owner.bandwidth_bps / 20))
        t0 = time.monotonic()
        sent = 0
        while sent < len(view):
            if owner._stop_event.is_set():
                break
            part = view[sent : sent + chunk]
            self.wfile.write(part)
            sent += len(part)
            ahead = sent / owner.bandwidth_bps - (time.monotonic() - t0)
            if ahead > 0:
                owner._stop_event.wait(ahead)
        return sent

    # -- endpoints -------------------------------------------------------------------------
    def _watch(self, ytid: str, started: float, *, head: bool) -> None:
        owner = self.server.owner
        fault = owner._active_fault(ytid, "watch")
        if fault in PAGE_HTTP_FAULTS:
            status = PAGE_HTTP_FAULTS[fault]
            n = self._send_bytes(status, f"HTTP {status}\n".encode(), "text/plain", head=head)
            self._finish(started, ytid, "watch", status, n, fault)
            return
        try:
            doc = owner.player_response(ytid, fault)
        except MediaServerError as err:
            log.error("%s", err)
            n = self._send_bytes(500, b"media generation failed\n", "text/plain", head=head)
            self._finish(started, ytid, "watch", 500, n, fault)
            return
        body = json.dumps(doc, ensure_ascii=False).encode("utf-8")
        n = self._send_bytes(200, body, "application/json; charset=utf-8", head=head)
        self._finish(started, ytid, "watch", 200, n, fault)

    def _media(self, ytid: str, itag: str, started: float, *, head: bool) -> None:
        owner = self.server.owner
        try:
            f = _format_of(itag)
        except UsageError:
            self._finish(started, ytid, "media", 404, self._send_bytes(404, b"no such itag\n", "text/plain", head=head))
            return
        fault = owner._active_fault(ytid, "media")
        if fault in MEDIA_HTTP_FAULTS:
            status = MEDIA_HTTP_FAULTS[fault]
            self._finish(started, ytid, "media", status, self._send_bytes(status, f"HTTP {status}\n".encode(), "text/plain", head=head), fault)
            return
        if fault in PLAYABILITY_FAULTS or fault in PAGE_HTTP_FAULTS:
            # the video is not served at all: media URLs of a dead video answer 403
            self._finish(started, ytid, "media", 403, self._send_bytes(403, b"forbidden\n", "text/plain", head=head), fault)
            return
        try:
            path = owner.media_path(ytid, f.itag, fault=_source_fault(fault))
        except MediaServerError as err:
            log.error("%s", err)
            self._finish(started, ytid, "media", 500, self._send_bytes(500, b"media generation failed\n", "text/plain", head=head), fault)
            return
        size = path.stat().st_size
        first, last = 0, size - 1
        status = 200
        rng_header = self.headers.get("Range")
        if rng_header:
            m = _RANGE_RE.match(rng_header.strip()) if len(rng_header) <= MAX_RANGE_HEADER else None
            if m is None or not (m.group(1) or m.group(2)):
                # oversized (a 5000-digit number) or not one "bytes=a-b" range: refused, not ignored
                n = self._send_bytes(416, b"malformed Range header\n", "text/plain", head=head, extra={"Content-Range": f"bytes */{size}"})
                self._finish(started, ytid, "media", 416, n, fault)
                return
            if m:
                if m.group(1):
                    first = int(m.group(1))
                    last = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
                else:  # suffix range: the last N bytes
                    first = max(0, size - int(m.group(2)))
                if first >= size or first > last or (fault == "no-seek" and first > 0):
                    n = self._send_bytes(416, b"", "text/plain", head=head, extra={"Content-Range": f"bytes */{size}"})
                    self._finish(started, ytid, "media", 416, n, fault)
                    return
                status = 206
        length = last - first + 1
        self.send_response(status)
        self.send_header("Content-Type", f.mime_type.split(";")[0])
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(length))
        if status == 206:
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.end_headers()
        if head:
            self._finish(started, ytid, "media", status, 0, fault)
            return
        sent = 0
        try:
            with open(path, "rb") as fh:
                fh.seek(first)
                if fault == "stall":
                    sent += self._write(fh.read(min(length, 4096)))
                    self.wfile.flush()
                    owner._stop_event.wait(STALL_MAX_S)
                    self.close_connection = True
                    return
                todo = length // 3 if fault == "truncated" else length
                while todo > 0 and not owner._stop_event.is_set():
                    block = fh.read(min(todo, 256 * 1024))
                    if not block:
                        break
                    sent += self._write(block)
                    todo -= len(block)
                if fault == "truncated":
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
        finally:
            self._finish(started, ytid, "media", status, sent, fault)


__all__ = [  # the sources, formats and faults are defined in .media and .faults
    "CC_BY",
    "DEFAULT_ITAG",
    "MEDIA_BODY_FAULTS",
    "MEDIA_HTTP_FAULTS",
    "PAGE_HTTP_FAULTS",
    "PLAYABILITY_FAULTS",
    "SHORT_SOURCE_S",
    "SOURCE_FAULTS",
    "MediaFormat",
    "FAULTS",
    "FORMATS",
    "MediaServer",
    "MediaServerError",
    "RequestRecord",
    "SourceSpec",
    "STANDARD_LICENSE",
    "default_spec",
    "fault_names",
]
