"""Fetching segment lists: local folders, and a real HTTP server on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from audioset_fewshot._io import sha256_bytes
from audioset_fewshot.errors import MetadataError, UsageError
from audioset_fewshot.metadata import read_provenance, read_segments, resolve_segment_files
from audioset_fewshot.metadata.fetch import default_cache_dir, fetch_url, partial_path


@dataclass
class FakeRelease:
    """What the server serves and how it misbehaves; ``requests`` records (path, Range header)."""

    files: dict[str, bytes] = field(default_factory=dict)
    truncate_next: dict[str, int] = field(default_factory=dict)  # path -> bytes to send before dropping
    ignore_range: bool = False
    stall_s: float = 0.0
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    base: str = ""


@pytest.fixture
def release() -> Iterator[FakeRelease]:
    state = FakeRelease()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            rng = self.headers.get("Range")
            state.requests.append((self.path, rng))
            if state.stall_s:
                time.sleep(state.stall_s)
            data = state.files.get(self.path)
            if data is None:
                self.send_error(404, "not found")
                return
            start = 0
            m = re.fullmatch(r"bytes=(\d+)-", rng or "")
            if m and not state.ignore_range:
                start = int(m.group(1))
                if start >= len(data):
                    self.send_error(416, "range not satisfiable")
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            cut = state.truncate_next.pop(self.path, None)
            if cut is not None:
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.block_on_close = False
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def shared_bytes(shared_metadata_dir: Path) -> dict[str, bytes]:
    return {
        "balanced": (shared_metadata_dir / "balanced_train_segments.csv").read_bytes(),
        "eval": (shared_metadata_dir / "eval_segments.csv").read_bytes(),
    }


def _urls(release: FakeRelease) -> dict[str, str]:
    return {s: f"{release.base}/csv/{s}.csv" for s in ("balanced", "eval", "unbalanced")}


def test_fetch_into_cache_with_provenance_then_reuse(release: FakeRelease, shared_bytes, tmp_path: Path) -> None:
    release.files = {f"/csv/{s}.csv": b for s, b in shared_bytes.items()}
    cache = tmp_path / "cache"
    files = resolve_segment_files(("eval", "balanced"), cache_dir=cache, urls=_urls(release))
    assert list(files) == ["balanced", "eval"]
    assert files["balanced"] == cache / "balanced_train_segments.csv"
    assert files["balanced"].read_bytes() == shared_bytes["balanced"]
    prov = read_provenance(files["eval"])
    assert prov is not None
    assert prov["url"] == f"{release.base}/csv/eval.csv" and prov["size"] == len(shared_bytes["eval"])
    assert prov["sha256"] == sha256_bytes(shared_bytes["eval"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", prov["fetched_at"])
    assert json.loads((cache / "eval_segments.csv.provenance.json").read_text())["schema_version"] == 1
    assert len(read_segments(files)) == 22160 + 20371
    n = len(release.requests)
    again = resolve_segment_files(("balanced", "eval"), cache_dir=cache, urls=_urls(release))
    assert again == files and len(release.requests) == n  # no network on a cache hit
    assert not list(cache.glob(".*part*")) and not list(cache.glob(".tmp-*"))


def test_truncated_response_is_resumed_with_a_range_request(release: FakeRelease, shared_bytes, tmp_path: Path) -> None:
    data = shared_bytes["balanced"]
    release.files = {"/csv/balanced.csv": data}
    release.truncate_next = {"/csv/balanced.csv": 300_000}
    path = resolve_segment_files(("balanced",), cache_dir=tmp_path, urls=_urls(release))["balanced"]
    assert path.read_bytes() == data
    assert release.requests == [("/csv/balanced.csv", None), ("/csv/balanced.csv", "bytes=300000-")]
    assert read_provenance(path)["sha256"] == sha256_bytes(data)


def test_partial_file_of_a_killed_run_is_resumed(release: FakeRelease, tmp_path: Path) -> None:
    data = bytes(range(256)) * 1000
    release.files = {"/f.csv": data}
    dest = tmp_path / "f.csv"
    partial_path(dest).write_bytes(data[:12_345])
    partial_path(dest).with_name(partial_path(dest).name + ".url").write_text(f"{release.base}/f.csv")
    fetch_url(f"{release.base}/f.csv", dest, timeout_s=5, retries=0)
    assert dest.read_bytes() == data and not partial_path(dest).exists()
    assert release.requests == [("/f.csv", "bytes=12345-")]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".f.csv.lock", "f.csv", "f.csv.provenance.json"]


def test_partial_file_of_another_url_is_not_resumed(release: FakeRelease, tmp_path: Path) -> None:
    data = b"new content\n" * 100
    release.files = {"/new.csv": data}
    dest = tmp_path / "f.csv"
    partial_path(dest).write_bytes(b"old content of another URL")
    partial_path(dest).with_name(partial_path(dest).name + ".url").write_text(f"{release.base}/old.csv")
    fetch_url(f"{release.base}/new.csv", dest, timeout_s=5, retries=0)
    assert dest.read_bytes() == data and release.requests == [("/new.csv", None)]


def test_one_fetcher_per_file(release: FakeRelease, tmp_path: Path) -> None:
    import fcntl

    release.files = {"/f.csv": b"x\n"}
    dest = tmp_path / "f.csv"
    with open(tmp_path / ".f.csv.lock", "a+b") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        with pytest.raises(MetadataError, match=r"another process has been fetching f\.csv"):
            fetch_url(f"{release.base}/f.csv", dest, timeout_s=5, retries=0, lock_wait_s=0.3)
    assert release.requests == []
    fetch_url(f"{release.base}/f.csv", dest, timeout_s=5, retries=0)  # released: goes ahead
    assert dest.read_bytes() == b"x\n"


def test_server_ignoring_range_restarts_cleanly(release: FakeRelease, tmp_path: Path) -> None:
    data = b"x" * 50_000
    release.files = {"/f.csv": data}
    release.ignore_range = True
    dest = tmp_path / "f.csv"
    partial_path(dest).write_bytes(b"garbage!")
    partial_path(dest).with_name(partial_path(dest).name + ".url").write_text(f"{release.base}/f.csv")
    fetch_url(f"{release.base}/f.csv", dest, timeout_s=5, retries=0)
    assert dest.read_bytes() == data
    assert release.requests == [("/f.csv", "bytes=8-")]  # asked to resume, got the whole file


def test_changed_url_fetches_again_and_force(release: FakeRelease, tmp_path: Path) -> None:
    release.files = {"/a.csv": b"one\n", "/b.csv": b"two\n"}
    dest = tmp_path / "f.csv"
    fetch_url(f"{release.base}/a.csv", dest, timeout_s=5)
    fetch_url(f"{release.base}/b.csv", dest, timeout_s=5)
    assert dest.read_bytes() == b"two\n" and read_provenance(dest)["url"].endswith("/b.csv")
    fetch_url(f"{release.base}/b.csv", dest, timeout_s=5, force=True)
    assert len(release.requests) == 3


def test_http_404_is_a_clear_error_and_leaves_nothing(release: FakeRelease, tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match=r"cannot fetch http://127\.0\.0\.1:\d+/csv/eval\.csv: HTTP 404"):
        resolve_segment_files(("eval",), cache_dir=tmp_path, urls=_urls(release))
    assert not (tmp_path / "eval_segments.csv").exists()


def test_stalled_server_is_bounded_by_the_timeout(release: FakeRelease, tmp_path: Path) -> None:
    release.files = {"/f.csv": b"data\n"}
    release.stall_s = 2.0
    t0 = time.monotonic()
    with pytest.raises(MetadataError, match=r"could not fetch .* after 2 attempts.*--metadata-dir"):
        fetch_url(f"{release.base}/f.csv", tmp_path / "f.csv", timeout_s=0.3, retries=1)
    assert time.monotonic() - t0 < 2.0
    assert not (tmp_path / "f.csv").exists()


def test_only_http_urls(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"only http:// and https://"):
        fetch_url("file:///etc/passwd", tmp_path / "x.csv")
    with pytest.raises(UsageError, match=r"no URL configured for segment list 'eval'"):
        resolve_segment_files(("eval",), cache_dir=tmp_path, urls={"eval": ""})


def test_default_cache_dir_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "audioset-fewshot" / "metadata"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "audioset-fewshot" / "metadata"


# --- local folders -------------------------------------------------------------------------


def test_metadata_dir_uses_official_names_and_the_shared_unbalanced_part(shared_metadata_dir: Path) -> None:
    files = resolve_segment_files(("unbalanced", "balanced", "eval"), metadata_dir=shared_metadata_dir)
    assert list(files) == ["balanced", "eval", "unbalanced"]
    assert files["unbalanced"].name == "unbalanced_train_segments_part.csv"
    assert files["eval"] == shared_metadata_dir / "eval_segments.csv"


def test_metadata_dir_prefers_the_official_unbalanced_name(tmp_path: Path) -> None:
    (tmp_path / "unbalanced_train_segments.csv").write_text("x")
    (tmp_path / "unbalanced_train_segments_part.csv").write_text("x")
    assert resolve_segment_files("unbalanced", metadata_dir=tmp_path)["unbalanced"].name == "unbalanced_train_segments.csv"


def test_metadata_dir_missing_file_or_folder(tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match=r"segment list 'eval' not found: expected .*eval_segments\.csv"):
        resolve_segment_files(("eval",), metadata_dir=tmp_path)
    with pytest.raises(MetadataError, match=r"metadata folder .*nope does not exist"):
        resolve_segment_files(("eval",), metadata_dir=tmp_path / "nope")
    with pytest.raises(UsageError, match=r"unknown segment list 'evals'.*Did you mean 'eval'"):
        resolve_segment_files(("evals",), metadata_dir=tmp_path)


def test_a_host_that_accepts_and_never_answers_is_bounded_and_named(silent_host: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    port = silent_host.rsplit(":", 1)[1]
    t0 = time.monotonic()
    with caplog.at_level("WARNING", logger="audioset_fewshot.metadata.fetch"):
        with pytest.raises(MetadataError, match=rf"after 2 attempts: connected to 127\.0\.0\.1:{port}, but no response within 0\.5 s \(read timeout\)"):
            fetch_url(f"{silent_host}/csv/eval.csv", tmp_path / "eval.csv", timeout_s=0.5, retries=1)
    assert time.monotonic() - t0 < 5.0
    # each attempt is reported when it fails, not only at the end
    assert [r.getMessage() for r in caplog.records if "no response within 0.5 s" in r.getMessage()][0].endswith(
        "(attempt 1 of 2; the partial file is kept and resumed)"
    )


def test_classes_against_a_silent_host_fails_within_the_configured_timeout(silent_host: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"metadata:\n  timeout_s: 0.5\n  urls:\n    eval: {silent_host}/csv/eval.csv\nplan:\n  sources: [eval]\n", encoding="utf-8")
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "audioset_fewshot", "classes", "-c", str(cfg)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert time.monotonic() - t0 < 60
    assert "no response within 0.5 s (read timeout)" in proc.stderr and "attempt 1 of 4" in proc.stderr  # logged at once
    assert "could not fetch" in proc.stderr and "--metadata-dir" in proc.stderr
