"""The demo server answers hostile headers at once: an oversized or malformed Range is
416, an oversized header line 431; it never hangs or drops the connection unanswered."""

from __future__ import annotations

import socket
import time

import pytest

from audioset_fewshot.demo.server import MediaServer, SourceSpec

YT = "hdr_test_01"


def _raw(srv: MediaServer, extra: bytes) -> tuple[int, bytes]:
    """Send one GET with ``extra`` header bytes; return the status and the answer's head."""
    host, port = srv.base_url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"GET /videoplayback?id=" + YT.encode() + b"&itag=140 HTTP/1.1\r\nHost: x\r\n" + extra + b"Connection: close\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data, "the server closed the connection without an answer"
    return int(data.split(b" ", 2)[1]), data


@pytest.fixture
def srv(media_server: MediaServer) -> MediaServer:
    media_server.catalog[YT] = SourceSpec("/m/09x0r", duration_s=3.0)
    return media_server


@pytest.mark.parametrize(
    ("header", "status"),
    [
        (b"Range: bytes=" + b"9" * 5000 + b"-\r\n", 416),
        (b"Range: bytes=0-" + b"9" * 5000 + b"\r\n", 416),
        (b"Range: bytes=abc-def\r\n", 416),
        (b"Range: pages=0-10\r\n", 416),
        (b"Range: bytes=0-1,5-9\r\n", 416),
        (b"X-Long: " + b"a" * 70_000 + b"\r\n", 431),
        (b"Range: bytes=0-99\r\n", 206),
    ],
)
def test_hostile_headers_get_an_answer(srv: MediaServer, header: bytes, status: int) -> None:
    t0 = time.monotonic()
    got, head = _raw(srv, header)
    assert got == status, head[:200]
    assert time.monotonic() - t0 < 30
    if status == 416:
        assert b"Content-Range: bytes */" in head
