"""The demo media server: watch documents, ranges, caching, faults, log, bounded lifetime."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from audioset_fewshot.demo.server import CC_BY, FAULTS, MediaServer, SourceSpec, default_spec
from audioset_fewshot.demo.signals import RHYTHMS, class_structure, synthesize
from audioset_fewshot.errors import UsageError, ValidationError

SPEC = SourceSpec("/m/09x0r", duration_s=6.0, license=CC_BY, title="A title", uploader="Bob", channel_id="UCbob0000000000000000000", upload_date="20190102")
YT = "srv_test_01"


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(urllib.request.Request(url, headers=headers or {}), timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


@pytest.fixture
def srv(media_server: MediaServer) -> MediaServer:
    media_server.catalog[YT] = SPEC
    return media_server


def test_binds_loopback_on_an_ephemeral_port(srv: MediaServer) -> None:
    assert srv.base_url.startswith("http://127.0.0.1:")
    assert int(srv.base_url.rsplit(":", 1)[1]) > 0
    assert srv.watch_url(YT) == f"{srv.base_url}/watch?v={YT}"


def test_watch_document_looks_like_a_player_response(srv: MediaServer) -> None:
    srv.prepare([YT])
    status, headers, body = get(srv.watch_url(YT))
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    doc = json.loads(body)
    assert doc["playabilityStatus"]["status"] == "OK"
    want = {"videoId": YT, "title": "A title", "author": "Bob", "channelId": "UCbob0000000000000000000", "lengthSeconds": "6"}
    assert doc["videoDetails"].items() >= want.items()
    micro = doc["microformat"]["playerMicroformatRenderer"]
    assert micro["uploadDate"] == "2019-01-02" and micro["license"] == CC_BY
    fmts = {f["itag"]: f for f in doc["streamingData"]["adaptiveFormats"]}
    assert set(fmts) == {140, 251}
    assert fmts[140]["mimeType"] == 'audio/mp4; codecs="mp4a.40.2"' and fmts[251]["mimeType"] == 'audio/webm; codecs="opus"'
    assert fmts[140]["audioSampleRate"] == "44100" and fmts[251]["audioSampleRate"] == "48000" and fmts[140]["audioChannels"] == 2
    assert int(fmts[140]["contentLength"]) == srv.media_size(YT, 140)
    assert fmts[140]["url"].startswith(srv.base_url + "/videoplayback?")


@pytest.mark.parametrize(
    ("fault", "status", "text"),
    [
        ("private", "LOGIN_REQUIRED", "Private video"),
        ("terminated", "ERROR", "YouTube account associated with this video has been terminated"),
        ("bot-check", "LOGIN_REQUIRED", "not a bot"),
        ("rate-limited", "UNPLAYABLE", "This content isn't available, try again later."),
        ("geo-blocked", "UNPLAYABLE", "The uploader has not made this video available in your country"),
    ],
)
def test_playability_faults_use_youtube_texts_and_no_formats(srv: MediaServer, fault: str, status: str, text: str) -> None:
    srv.set_fault(YT, fault)
    code, _, body = get(srv.watch_url(YT))
    doc = json.loads(body)
    assert code == 200 and doc["playabilityStatus"]["status"] == status
    assert text in json.dumps(doc["playabilityStatus"], ensure_ascii=False)
    assert "streamingData" not in doc
    assert get(srv.media_url(YT, 140))[0] == 403  # a dead video's media is refused too


def test_ranges(srv: MediaServer) -> None:
    size = srv.media_size(YT, 140)
    whole = srv.media_path(YT, 140).read_bytes()
    code, headers, body = get(srv.media_url(YT, 140))
    assert code == 200 and body == whole and headers["Accept-Ranges"] == "bytes"
    code, headers, body = get(srv.media_url(YT, 140), {"Range": "bytes=100-199"})
    assert code == 206 and body == whole[100:200] and headers["Content-Range"] == f"bytes 100-199/{size}"
    code, _, body = get(srv.media_url(YT, 140), {"Range": "bytes=-50"})
    assert code == 206 and body == whole[-50:]
    code, _, body = get(srv.media_url(YT, 140), {"Range": f"bytes={size - 10}-"})
    assert code == 206 and body == whole[-10:]
    code, headers, _ = get(srv.media_url(YT, 140), {"Range": f"bytes={size}-"})
    assert code == 416 and headers["Content-Range"] == f"bytes */{size}"


def test_log_and_bytes(srv: MediaServer) -> None:
    srv.prepare([YT])
    srv.reset_log()
    get(srv.watch_url(YT))
    get(srv.media_url(YT, 251), {"Range": "bytes=0-999"})
    recs = srv.requests
    assert [(r.kind, r.ytid, r.status) for r in recs] == [("watch", YT, 200), ("media", YT, 206)]
    assert recs[1].range == "bytes=0-999" and recs[1].body_bytes == 1000
    assert srv.bytes_served(YT) == 1000 and srv.bytes_served("otherid0000") == 0
    assert srv.bytes_served(kind=None) == 1000 + recs[0].body_bytes


def test_media_is_generated_once_and_cached_on_disk(tmp_path: Path) -> None:
    cat = {YT: SPEC}
    with MediaServer(cache_dir=tmp_path / "c", catalog=cat) as a:
        path = a.media_path(YT, 140)
        mtime = path.stat().st_mtime_ns
    with MediaServer(cache_dir=tmp_path / "c", catalog=cat) as b:
        assert b.media_path(YT, 140) == path and path.stat().st_mtime_ns == mtime
    assert not [p for p in (tmp_path / "c").iterdir() if p.name.startswith(".tmp-")]
    # another spec (or seed) is another file
    with MediaServer(cache_dir=tmp_path / "c", catalog={YT: SourceSpec("/m/09x0r", duration_s=5.0)}) as c:
        assert c.media_path(YT, 140) != path


def test_concurrent_first_requests_encode_once(tmp_path: Path) -> None:
    with MediaServer(cache_dir=tmp_path / "c", catalog={YT: SPEC}) as s:
        results: list[Path] = []
        threads = [threading.Thread(target=lambda: results.append(s.media_path(YT, 251))) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(set(results)) == 1 and len(list((tmp_path / "c").glob("*.webm"))) == 1


def test_page_http_faults_and_burst(srv: MediaServer) -> None:
    srv.set_fault(YT, "page-429")
    assert get(srv.watch_url(YT))[0] == 429
    srv.set_fault(YT, "media-500")
    assert get(srv.media_url(YT, 140))[0] == 500
    srv.set_fault(YT, None)
    srv.rate_limit_burst(2)
    other = "burst_other"
    docs = [json.loads(get(srv.watch_url(y))[2]) for y in (other, YT)]
    assert all(d["playabilityStatus"]["status"] == "UNPLAYABLE" for d in docs)
    assert json.loads(get(srv.watch_url(YT))[2])["playabilityStatus"]["status"] == "OK"


def test_seeded_fault_rate_is_deterministic_and_roughly_the_rate(tmp_path: Path) -> None:
    ids = [f"rate{i:07d}" for i in range(400)]
    a = MediaServer(cache_dir=tmp_path, seed=3, fault_rate=0.25)
    b = MediaServer(cache_dir=tmp_path, seed=3, fault_rate=0.25)
    fa = [a.fault_for(y) for y in ids]
    assert fa == [b.fault_for(y) for y in ids]
    share = sum(f is not None for f in fa) / len(ids)
    assert 0.15 < share < 0.35
    assert {f for f in fa if f} <= FAULTS
    assert all(MediaServer(cache_dir=tmp_path, fault_rate=0.0).fault_for(y) is None for y in ids[:50])


def test_transient_random_faults_hit_once(tmp_path: Path) -> None:
    with MediaServer(cache_dir=tmp_path, seed=1, fault_rate=1.0) as s:
        y = next(f"tr{i:09d}" for i in range(10_000) if s.fault_for(f"tr{i:09d}") == "page-503")
        assert get(s.watch_url(y))[0] == 503
        s.catalog[y] = SourceSpec("/m/09x0r", duration_s=1.0)  # keeps the drawn fault (catalog has none)
        assert get(s.watch_url(y))[0] == 200


def test_hostile_ids_get_400_and_no_file(srv: MediaServer, tmp_path: Path) -> None:
    for bad in ("../../etc/pa", "-o", "abcdefghijkl", "%2e%2e%2fabcdefg"):
        assert get(f"{srv.base_url}/watch?v={bad}")[0] == 400
        assert get(f"{srv.base_url}/videoplayback?id={bad}&itag=140")[0] == 400
    assert get(f"{srv.base_url}/nothing")[0] == 404
    with pytest.raises(ValidationError, match="invalid YouTube ID"):
        srv.watch_url("../x")
    with pytest.raises(ValidationError):
        MediaServer(cache_dir=tmp_path, catalog={"bad id": SPEC})


def test_bad_options() -> None:
    with pytest.raises(UsageError, match="unknown fault 'nope'"):
        SourceSpec("/m/x", fault="nope")
    with pytest.raises(UsageError, match="sample_rate_hz must be 44100 or 48000"):
        SourceSpec("/m/x", sample_rate_hz=16000)
    with pytest.raises(UsageError, match="fault_rate"):
        MediaServer(cache_dir=Path("."), fault_rate=2.0)


def test_idle_timeout_stops_the_server(tmp_path: Path) -> None:
    s = MediaServer(cache_dir=tmp_path, idle_timeout_s=0.5).start()
    deadline = time.monotonic() + 10
    while s.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not s.running
    s.stop()


def test_max_requests_stops_the_server(tmp_path: Path) -> None:
    with MediaServer(cache_dir=tmp_path, max_requests=2) as s:
        url = f"{s.base_url}/nothing"
        get(url)
        get(url)
        deadline = time.monotonic() + 10
        while s.running and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not s.running
        with pytest.raises(OSError):
            get(url)


def test_stop_is_bounded_with_a_stalled_client(tmp_path: Path) -> None:
    s = MediaServer(cache_dir=tmp_path, catalog={YT: SourceSpec("/m/09x0r", duration_s=2.0, fault="stall")}).start()
    s.prepare([YT], formats=(140,))
    host, port = s.base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", f"/videoplayback?id={YT}&itag=140")
    resp = conn.getresponse()
    assert resp.status == 200 and len(resp.read(1000)) == 1000
    t0 = time.monotonic()
    s.stop()
    assert time.monotonic() - t0 < 5
    with pytest.raises((OSError, http.client.IncompleteRead)):
        resp.read()  # the stalled response ends (closed) instead of hanging
    conn.close()


def test_latency_and_bandwidth_cap(tmp_path: Path) -> None:
    with MediaServer(cache_dir=tmp_path, catalog={YT: SPEC}, latency_s=0.3, bandwidth_bps=100_000) as s:
        s.prepare([YT], formats=(140,))
        t0 = time.monotonic()
        code, _, body = get(s.media_url(YT, 140), {"Range": "bytes=0-59999"})
        assert code == 206 and len(body) == 60_000
        assert time.monotonic() - t0 >= 0.3 + 0.5  # latency + 60 kB at 100 kB/s (lower bounds only)


def test_default_spec_is_deterministic_and_valid() -> None:
    a, b = default_spec("abcdefghijk", seed=0), default_spec("abcdefghijk", seed=0)
    assert a == b and a.sample_rate_hz in (44100, 48000) and a.channels == 2 and len(a.upload_date) == 8
    assert default_spec("abcdefghijk", seed=1) != a or default_spec("bcdefghijkl", seed=0) != a


def test_signals_depend_on_class_and_id() -> None:
    a = synthesize("/m/a", "aaaaaaaaaaa", seed=0, duration_s=1.0, sample_rate_hz=44100, channels=2)
    assert a.shape == (44100, 2) and a.dtype == np.float32 and float(np.max(np.abs(a))) <= 1.0
    np.testing.assert_array_equal(a, synthesize("/m/a", "aaaaaaaaaaa", seed=0, duration_s=1.0, sample_rate_hz=44100, channels=2))
    assert not np.array_equal(a, synthesize("/m/a", "bbbbbbbbbbb", seed=0, duration_s=1.0, sample_rate_hz=44100, channels=2))
    assert class_structure("/m/a") == class_structure("/m/a") != class_structure("/m/b")


def _onset_strength(x: np.ndarray, sr: int) -> np.ndarray:
    """Positive frame-to-frame change of the log energy in 10 ms frames."""
    frames = x[: (len(x) // (sr // 100)) * (sr // 100)].reshape(-1, sr // 100)
    energy = np.log(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-9)
    return np.maximum(np.diff(energy), 0.0)


def test_classes_differ_in_structure_not_in_their_average_spectrum() -> None:
    """Every rhythm family is used; a class's clips vary in pitch (the spectrum is a nuisance)
    while they keep the class's onset rate."""
    from audioset_fewshot.demo.catalog import pick_demo_classes

    structures = [class_structure(c.mid) for c in pick_demo_classes(seed=0, n_classes=30)]
    assert {s.rhythm for s in structures} == set(RHYTHMS)
    assert len({s.family for s in structures}) >= 6
    pulse = next(c.mid for c in pick_demo_classes(seed=0, n_classes=30) if class_structure(c.mid).rhythm == "pulse")
    st = class_structure(pulse)
    sr = 16000
    centroids, rates = [], []
    for i in range(4):
        x = synthesize(pulse, f"id{i:09d}", seed=0, duration_s=6.0, sample_rate_hz=sr, channels=1)[:, 0]
        spec = np.abs(np.fft.rfft(x)) ** 2
        centroids.append(float((np.fft.rfftfreq(len(x), 1 / sr) * spec).sum() / spec.sum()))
        onset = _onset_strength(x, sr)
        ac = np.correlate(onset - onset.mean(), onset - onset.mean(), mode="full")[len(onset) - 1 :]
        lo, hi = int(100 / (st.rate_hz * 1.4)), int(100 / (st.rate_hz * 0.7)) + 1
        rates.append(100.0 / (lo + int(np.argmax(ac[lo:hi]))))
    assert max(centroids) / min(centroids) > 1.3  # pitch and brightness vary from clip to clip
    assert all(abs(r / st.rate_hz - 1.0) < 0.2 for r in rates), (rates, st.rate_hz)  # the pulse rate does not


def test_socket_timeout_bounds_a_silent_client(tmp_path: Path) -> None:
    with MediaServer(cache_dir=tmp_path, socket_timeout_s=0.5) as s:
        host, port = s.base_url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(b"GET /watch?v=")  # never finishes the request line
            t0 = time.monotonic()
            assert sock.recv(100) == b""  # the server hangs up after its socket timeout
            assert time.monotonic() - t0 < 4


def test_a_long_transfer_is_not_idleness(tmp_path: Path) -> None:
    s = MediaServer(cache_dir=tmp_path, catalog={YT: SPEC}, idle_timeout_s=0.4, bandwidth_bps=50_000)
    s.prepare([YT], formats=(140,))  # before start: generation is not a request
    with s:
        code, _, body = get(s.media_url(YT, 140), {"Range": "bytes=0-49999"})  # ~1 s, longer than the idle timeout
        assert code == 206 and len(body) == 50_000
