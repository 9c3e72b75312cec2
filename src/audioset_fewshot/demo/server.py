"""An offline, YouTube-like media server on 127.0.0.1: the HTTP side.

Per YouTube ID it serves

* a *watch* endpoint, ``/watch?v=<id>``, answering with a JSON document shaped
  like YouTube's player response (:mod:`.player`).  It is read by
  :mod:`audioset_fewshot.download.ytdlp_demo`, a yt-dlp extractor, so
  extraction, format selection and errors run through yt-dlp's own machinery;
* a *media* endpoint, ``/videoplayback?id=<id>&itag=<itag>``, with HTTP Range
  support, serving the files of the media cache (:mod:`.cache`: generated on
  first use from the source's :class:`~.media.SourceSpec`, encoded, kept on disk).

Sessions (:mod:`.budget`): every request is tied to a session (its SID cookie, or
the proxy it came through); with ``session_budgets`` a session over its budget of
watch requests is answered like YouTube's rate limit.

Faults (:mod:`.faults`) can be set per ID (catalog, :meth:`MediaServer.set_fault`)
or drawn for IDs at a seeded rate (``fault_rate``); latency and a per-connection
bandwidth cap can be added.  Every request is logged (:attr:`MediaServer.requests`).
The sources, formats and faults are re-exported here; the demo's own rules
(config, media preparation) are in :mod:`.session`.

The server binds 127.0.0.1 on an ephemeral port, is threaded, stops by itself
after ``idle_timeout_s`` without requests or after ``max_requests`` requests,
and every socket and every wait has a bound.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import logging
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audioset_fewshot.demo.budget import SessionBudgets, session_of
from audioset_fewshot.demo.cache import MediaCache, MediaServerError, source_audio
from audioset_fewshot.demo.faults import (
    FAULTS,
    MEDIA_BODY_FAULTS,
    MEDIA_HTTP_FAULTS,
    PAGE_HTTP_FAULTS,
    PLAYABILITY_FAULTS,
    SOURCE_FAULTS,
    FaultTable,
    _source_fault,
    fault_names,
)
from audioset_fewshot.demo.media import (
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
from audioset_fewshot.demo.player import player_response
from audioset_fewshot.errors import UsageError
from audioset_fewshot.validate import is_youtube_id, valid_youtube_id

log = logging.getLogger(__name__)


STALL_MAX_S = 120.0  # a stalled connection is closed by the server after this, whatever the client does


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
    # who asked (:func:`.budget.session_of`: sid:<cookie>, via:<proxy>, guest) and, on a watch
    # request, the YouTube player client the extractor said it is (the ``c`` parameter)
    session: str = "guest"
    player_client: str | None = None
    user_agent: str | None = None


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
        session_budgets: SessionBudgets | None = None,
    ) -> None:
        if latency_s < 0 or (bandwidth_bps is not None and bandwidth_bps <= 0):
            raise UsageError("latency_s must be >= 0 and bandwidth_bps > 0 (or None)")
        if idle_timeout_s <= 0 or max_requests < 1:
            raise UsageError("idle_timeout_s must be > 0 and max_requests >= 1")
        self.catalog: dict[str, SourceSpec] = {}
        for ytid, spec in (catalog or {}).items():
            self.catalog[valid_youtube_id(ytid)] = spec
        self.seed = int(seed)
        self.faults = FaultTable(seed=self.seed, fault_rate=fault_rate, catalog_fault=self._catalog_fault)
        self.media = MediaCache(cache_dir, seed=self.seed, spec_of=self.spec)
        self.latency_s = float(latency_s)
        self.bandwidth_bps = None if bandwidth_bps is None else float(bandwidth_bps)
        self.idle_timeout_s = float(idle_timeout_s)
        self.max_requests = int(max_requests)
        self.port = int(port)
        self.socket_timeout_s = float(socket_timeout_s)
        self.session_budgets = session_budgets or SessionBudgets()

        self._lock = threading.Lock()
        self._quiet = threading.Condition(self._lock)  # notified when no request is being answered
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

    @property
    def cache_dir(self) -> Path:
        return self.media.cache_dir

    @property
    def fault_rate(self) -> float:
        return self.faults.fault_rate

    # -- configuration -----------------------------------------------------------------
    def spec(self, ytid: str) -> SourceSpec:
        """The spec serving ``ytid``: the catalog's, else :func:`default_spec`."""
        valid_youtube_id(ytid)
        return self.catalog.get(ytid) or default_spec(ytid, seed=self.seed)

    def _catalog_fault(self, ytid: str) -> str | None:
        spec = self.catalog.get(ytid)
        return None if spec is None else spec.fault

    def set_fault(self, ytid: str, fault: str | None) -> None:
        """Force ``fault`` for ``ytid`` (None: no fault, overriding the catalog and the rate)."""
        self.faults.set(valid_youtube_id(ytid), fault)

    def rate_limit_burst(self, count: int, *, fault: str = "rate-limited") -> None:
        """The next ``count`` watch requests, whatever the ID, answer with ``fault``."""
        self.faults.burst(count, fault=fault)

    def fault_for(self, ytid: str) -> str | None:
        """The configured fault of ``ytid`` (explicit, catalog, or drawn at ``fault_rate``)."""
        return self.faults.configured(ytid)

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

    # -- media (see .cache) and the watch answer (see .player) ------------------------------
    def media_path(self, ytid: str, fmt: int | str = DEFAULT_ITAG, *, fault: str | None = None) -> Path:
        """Path of the encoded file for ``ytid`` (generated and cached on first use)."""
        return self.media.path(ytid, fmt, fault=fault)

    def media_size(self, ytid: str, fmt: int | str = DEFAULT_ITAG) -> int:
        """Size in bytes of the whole audio file of ``ytid`` in format ``fmt`` (as served)."""
        return self.media_path(ytid, fmt, fault=_source_fault(self.fault_for(ytid))).stat().st_size

    def prepare(self, ytids: Iterable[str], *, formats: Iterable[int | str] = tuple(FORMATS), workers: int | None = None) -> None:
        """Generate (and cache) the media of ``ytids`` ahead of time, one source per worker."""
        jobs = [(valid_youtube_id(y), _source_fault(self.fault_for(y))) for y in ytids]
        self.media.prepare(jobs, formats=formats, workers=workers)

    def player_response(self, ytid: str, fault: str | None, client: str | None = None) -> dict[str, Any]:
        """The player-response document of ``ytid`` under ``fault`` for the player ``client``
        (see :mod:`.player`)."""
        media_fault = _source_fault(fault)
        return player_response(
            ytid,
            source_audio(self.spec(ytid), fault),
            fault,
            media_url=lambda itag: self.media_url(ytid, itag),
            cached_path=lambda itag: self.media.cached_path(ytid, itag, fault=media_fault),
            client=client,
        )


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

    def _session(self) -> str:
        return session_of(self.headers.get("Cookie"), self.headers.get("Via"))

    def _finish(self, started: float, ytid: str | None, kind: str, status: int, nbytes: int, fault: str | None = None) -> None:
        rng = self.headers.get("Range")
        cookie = self.headers.get("Cookie") is not None
        clients = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("c") if kind == "watch" else None
        client = clients[0] if clients else None
        rec = RequestRecord(started, self.command, self.path, ytid, kind, rng, status, nbytes, fault, cookie, self._session(), client,
                            self.headers.get("User-Agent"))  # fmt: skip
        self.server.owner._record(rec)

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
        fault = owner.faults.active(ytid, "watch")
        if fault is None:  # a blocked session, or one over its budget: YouTube's answer
            fault = owner.session_budgets.fault(self._session())
        if fault in PAGE_HTTP_FAULTS:
            status = PAGE_HTTP_FAULTS[fault]
            n = self._send_bytes(status, f"HTTP {status}\n".encode(), "text/plain", head=head)
            self._finish(started, ytid, "watch", status, n, fault)
            return
        try:
            clients = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("c")
            doc = owner.player_response(ytid, fault, clients[0] if clients else None)
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
        fault = owner.faults.active(ytid, "media")
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
        rng_header = None if fault == "ignore-range" else self.headers.get("Range")
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
        if fault != "ignore-range":
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
