"""A small forward HTTP proxy on 127.0.0.1 that counts what passes through it.

It answers absolute-URI requests (``GET http://127.0.0.1:PORT/path HTTP/1.1``, what
yt-dlp, ffmpeg's ``-http_proxy`` and urllib send to a proxy), forwards them to the
target with the client's headers (Range included), adds ``Via: 1.1 <name>`` as a
real proxy does (the demo server tells sessions apart by it), and streams the
answer back with its status and headers.  With ``user``/``password`` it demands
``Proxy-Authorization: Basic`` and answers 407 without it.  Only 127.0.0.1
targets are forwarded; every socket has a timeout; CONNECT is refused.
"""

from __future__ import annotations

import base64
import http.client
import http.server
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"}


@dataclass(frozen=True)
class Passed:
    method: str
    url: str
    status: int


class CountingProxy:
    def __init__(self, name: str, *, user: str | None = None, password: str | None = None, timeout_s: float = 20.0) -> None:
        self.name = name
        self.user, self.password = user, password
        self.timeout_s = timeout_s
        self.passed: list[Passed] = []
        self.refused = 0
        self._lock = threading.Lock()
        self._httpd: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """The proxy URL, with credentials when it wants them."""
        assert self._httpd is not None
        cred = f"{self.user}:{self.password}@" if self.user is not None else ""
        return f"http://{cred}127.0.0.1:{self._httpd.server_address[1]}"

    def count(self, path_prefix: str = "") -> int:
        with self._lock:
            return sum(1 for p in self.passed if urllib.parse.urlsplit(p.url).path.startswith(path_prefix))

    def _authorized(self, header: str | None) -> bool:
        if self.user is None:
            return True
        want = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return header == want

    def start(self) -> CountingProxy:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def setup(self) -> None:
                self.timeout = owner.timeout_s  # type: ignore[misc]
                super().setup()

            def do_GET(self) -> None:
                self._forward()

            def do_HEAD(self) -> None:
                self._forward()

            def do_CONNECT(self) -> None:
                self.send_error(501, "CONNECT not supported")

            def _forward(self) -> None:
                if not owner._authorized(self.headers.get("Proxy-Authorization")):
                    with owner._lock:
                        owner.refused += 1
                    self.send_response(407)
                    self.send_header("Proxy-Authenticate", 'Basic realm="test"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                target = urllib.parse.urlsplit(self.path)
                if target.scheme != "http" or target.hostname != "127.0.0.1":
                    self.send_error(403, "only http://127.0.0.1 is forwarded")
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                via = self.headers.get("Via")
                headers["Via"] = f"{via}, 1.1 {owner.name}" if via else f"1.1 {owner.name}"
                conn = http.client.HTTPConnection("127.0.0.1", target.port or 80, timeout=owner.timeout_s)
                try:
                    path = target.path + (f"?{target.query}" if target.query else "")
                    conn.request(self.command, path, headers=headers)
                    resp = conn.getresponse()
                    body = resp.read() if self.command != "HEAD" else b""
                finally:
                    conn.close()
                with owner._lock:
                    owner.passed.append(Passed(self.command, self.path, resp.status))
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in _HOP and k.lower() != "content-length":
                        self.send_header(k, v)
                self.send_header("Content-Length", resp.getheader("Content-Length") or str(len(body)))
                self.end_headers()
                if body:
                    self.wfile.write(body)

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()


@contextmanager
def counting_proxy(name: str, *, user: str | None = None, password: str | None = None) -> Iterator[CountingProxy]:
    proxy = CountingProxy(name, user=user, password=password).start()
    try:
        yield proxy
    finally:
        proxy.stop()
