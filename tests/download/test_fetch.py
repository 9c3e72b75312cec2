"""fetch_clip with the real yt-dlp and ffmpeg against the 127.0.0.1 demo media server."""

from __future__ import annotations

import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import soundfile as sf

from audioset_fewshot.demo.server import CC_BY, PAGE_HTTP_FAULTS, PLAYABILITY_FAULTS, MediaServer, SourceSpec
from audioset_fewshot.download import reasons as R
from audioset_fewshot.download.fetch import ClipResult, fetch_clip, parse_watch_url
from audioset_fewshot.errors import UsageError, ValidationError

SR = 16000
M4A = "bestaudio[ext=m4a]/bestaudio"
OPUS = "bestaudio[ext=webm]"

CATALOG = {
    "clip44k_aaa": SourceSpec(
        "/m/09x0r", duration_s=16.0, sample_rate_hz=44100, license=CC_BY, uploader="Alice", channel_id="UCalice00000000000000000", upload_date="20120304"
    ),
    "clip48k_bbb": SourceSpec("/m/0bt9lr", duration_s=16.0, sample_rate_hz=48000),
    "-dashfirst1": SourceSpec("/m/07yv9", duration_s=12.0),  # real IDs may start with '-'
    "mono_source": SourceSpec("/m/07yv9", duration_s=6.0, channels=1),
}


@pytest.fixture
def srv(media_server: MediaServer) -> MediaServer:
    media_server.catalog.update(CATALOG)
    return media_server


def decode_reference(path: Path) -> np.ndarray:
    """The whole served file decoded by ffmpeg: mean of the channels, resampled to 16 kHz."""
    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-nostdin",
        "-v",
        "error",
        "-i",
        str(path),
        "-af",
        "pan=mono|c0=0.5*c0+0.5*c1,aresample=16000:resampler=soxr:precision=28",
        "-f",
        "f32le",
        "-",
    ]
    out = subprocess.run(cmd, capture_output=True, timeout=60, check=True).stdout
    return np.frombuffer(out, dtype=np.float32).astype(np.float64)


def locate(full: np.ndarray, clip: np.ndarray) -> int:
    """Offset (samples) of ``clip`` in ``full`` by FFT cross-correlation."""
    n = 1 << int(np.ceil(np.log2(len(full) + len(clip))))
    corr = np.fft.irfft(np.fft.rfft(full, n) * np.conj(np.fft.rfft(clip, n)), n)
    return int(np.argmax(corr[: len(full) - len(clip) + 1]))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize(("fmt", "itag"), [(M4A, 140), (OPUS, 251)])
@pytest.mark.parametrize("ytid", ["clip44k_aaa", "clip48k_bbb"])
@pytest.mark.parametrize("start_s", [0.0, 3.217])
def test_clip_matches_source_start_within_1ms_and_exact_length(srv: MediaServer, tmp_path: Path, fmt: str, itag: int, ytid: str, start_s: float) -> None:
    dest = tmp_path / "clips" / f"{ytid}.flac"
    res = fetch_clip(srv.watch_url(ytid), start_s=start_s, end_s=start_s + 10.0, dest=dest, format=fmt)
    assert res.ok, res.message
    assert res.itag == str(itag)
    info = sf.info(str(dest))
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (SR, 1, 160_000, "PCM_16")
    assert res.samples == 160_000
    clip, _ = sf.read(str(dest), dtype="float64")
    full = decode_reference(srv.media_path(ytid, itag))
    offset = locate(full, clip)
    assert abs(offset - round(start_s * SR)) <= SR // 1000, f"clip starts {offset - round(start_s * SR)} samples off"
    ref = full[offset : offset + len(clip)]
    # same level (the mean of the channels, not ffmpeg's louder -ac 1 downmix) and same content
    assert np.std(clip) / np.std(ref) == pytest.approx(1.0, abs=0.02)
    assert np.corrcoef(clip, ref)[0, 1] > 0.99
    assert leftovers(dest.parent) == [dest.name]


def test_result_records_what_a_manifest_needs(srv: MediaServer, tmp_path: Path) -> None:
    srv.reset_log()
    res = fetch_clip(srv.watch_url("clip44k_aaa"), start_s=1.5, end_s=11.5, dest=tmp_path / "a.flac")
    assert isinstance(res, ClipResult) and res.ok
    assert (res.itag, res.codec, res.container) == ("140", "mp4a.40.2", "m4a_dash")
    assert (res.source_sample_rate_hz, res.source_channels) == (44100, 2)
    assert (res.license, res.uploader, res.channel_id, res.upload_date) == (CC_BY, "Alice", "UCalice00000000000000000", "20120304")
    assert res.trim_start_s == 1.5 and res.trim_end_s == pytest.approx(11.5)
    assert res.path == tmp_path / "a.flac" and res.sha256 is not None and len(res.sha256) == 64
    assert set(res.tool_versions) >= {"yt_dlp", "ffmpeg", "soundfile"}
    assert res.rms_dbfs is not None and -60 < res.rms_dbfs < 0
    assert res.fallback is False and res.reason is None and res.permanent is False
    # exactly one extraction (one watch request), then ffmpeg's range reads
    kinds = [r.kind for r in srv.requests]
    assert res.extractions == 1 and kinds.count("watch") == 1 and kinds.count("media") >= 1
    assert all(r.range is not None for r in srv.requests if r.kind == "media")
    d = res.to_dict()
    assert d["path"] == str(tmp_path / "a.flac") and d["schema_version"] == 1


def test_wav_output_and_a_dash_leading_id(srv: MediaServer, tmp_path: Path) -> None:
    dest = tmp_path / "-dashfirst1_2.000.wav"
    res = fetch_clip(srv.watch_url("-dashfirst1"), start_s=2.0, end_s=12.0, dest=dest, audio_format="wav")
    assert res.ok, res.message
    info = sf.info(str(dest))
    assert (info.format, info.subtype, info.frames) == ("WAV", "PCM_16", 160_000)


def test_shorter_labelled_segment_keeps_its_true_length(srv: MediaServer, tmp_path: Path) -> None:
    res = fetch_clip(srv.watch_url("clip48k_bbb"), start_s=8.5, end_s=16.0, dest=tmp_path / "b.flac")
    assert res.ok, res.message
    assert res.samples == 120_000 == sf.info(str(tmp_path / "b.flac")).frames
    assert res.padded_samples <= 0.1 * SR


@pytest.mark.parametrize(("start_s", "end_s"), [(8.0, 18.0), (12.0, 22.0), (20.0, 30.0)])
def test_segment_past_the_end_of_the_source_is_short(srv: MediaServer, tmp_path: Path, start_s: float, end_s: float) -> None:
    srv.reset_log()
    res = fetch_clip(srv.watch_url("-dashfirst1"), start_s=start_s, end_s=end_s, dest=tmp_path / "p.flac")  # a 12 s source
    assert res.reason == R.QC_REJECT and res.message.startswith("short") and not res.fallback, res.message
    assert leftovers(tmp_path) == []
    if start_s > 13.0:  # known from the extraction alone: no media request at all
        assert [r.kind for r in srv.requests] == ["watch"]


@pytest.mark.parametrize("fmt", [M4A, OPUS])
def test_mono_source(srv: MediaServer, tmp_path: Path, fmt: str) -> None:
    res = fetch_clip(srv.watch_url("mono_source"), start_s=1.0, end_s=5.0, dest=tmp_path / "m.flac", format=fmt)
    assert res.ok and res.source_channels == 1 and res.samples == 64_000, res.message


def test_other_sample_rate(srv: MediaServer, tmp_path: Path) -> None:
    res = fetch_clip(srv.watch_url("clip44k_aaa"), start_s=0.0, end_s=2.5, dest=tmp_path / "c.flac", sample_rate_hz=22050)
    assert res.ok and res.samples == 55_125 == sf.info(str(tmp_path / "c.flac")).frames


def test_ffmpeg_default_downmix_is_louder_than_the_mean_we_write(tmp_path: Path) -> None:
    """Numerical check of the downmix: ours is (L+R)/2; ffmpeg's -ac 1 is ~1.41x that."""
    from audioset_fewshot.download.fetch import _downmix_filter

    t = np.arange(SR) / SR
    left = 0.3 * np.sin(2 * np.pi * 440 * t)
    right = 0.2 * np.sin(2 * np.pi * 440 * t + 0.3)
    src = tmp_path / "stereo.wav"
    sf.write(str(src), np.stack([left, right], axis=1), SR, subtype="FLOAT")

    def run(args: list[str]) -> np.ndarray:
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(src), *args, "-f", "f32le", "-"]
        return np.frombuffer(subprocess.run(cmd, capture_output=True, timeout=30, check=True).stdout, dtype=np.float32)

    ours = run(["-af", _downmix_filter(2)])
    default = run(["-ac", "1"])
    np.testing.assert_allclose(ours, (left + right) / 2, atol=1e-6)
    assert np.std(default) / np.std(ours) == pytest.approx(np.sqrt(2), rel=0.01)


@pytest.mark.slow
def test_bytes_on_the_wire_for_10s_of_a_5min_source_are_under_15_percent(media_server: MediaServer, tmp_path: Path) -> None:
    ytid = "fiveminute1"
    media_server.catalog[ytid] = SourceSpec("/m/09x0r", duration_s=300.0)
    media_server.prepare([ytid], formats=(140,))  # generate before counting
    whole = media_server.media_size(ytid, 140)
    media_server.reset_log()
    res = fetch_clip(media_server.watch_url(ytid), start_s=150.0, end_s=160.0, dest=tmp_path / "five.flac")
    assert res.ok, res.message
    served = media_server.bytes_served(ytid)
    assert served <= 0.15 * whole, f"{served} of {whole} bytes ({served / whole:.1%})"
    clip, _ = sf.read(str(tmp_path / "five.flac"), dtype="float64")
    full = decode_reference(media_server.media_path(ytid, 140))
    assert abs(locate(full, clip) - 150 * SR) <= SR // 1000


# --- faults ----------------------------------------------------------------------------

FAULT_REASONS = {
    "unavailable": R.UNAVAILABLE,
    "private": R.PRIVATE,
    "terminated": R.TERMINATED,
    "copyright": R.COPYRIGHT,
    "members-only": R.MEMBERS_ONLY,
    "age-gated": R.AGE_GATED,
    "geo-blocked": R.GEO_BLOCKED,
    "bot-check": R.BOT_CHECK,
    "rate-limited": R.RATE_LIMITED,
    "page-403": R.HTTP_403,
    "page-404": R.NOT_FOUND,
    "page-429": R.HTTP_429,
    "page-500": R.HTTP_5XX,
    "page-503": R.HTTP_5XX,
    "media-403": R.FORMAT_403,
    "media-404": R.FORMAT_403,
    "media-429": R.HTTP_429,
    "media-500": R.HTTP_5XX,
    "media-503": R.HTTP_5XX,
    "stall": R.NETWORK,
    "truncated": R.NETWORK,
    "corrupt": R.FFMPEG_ERROR,
    "silence": R.QC_REJECT,
    "short": R.QC_REJECT,
}
MESSAGE_TEXT = {
    "unavailable": "This video has been removed by the uploader",
    "private": "Private video",
    "terminated": "YouTube account associated with this video has been terminated",
    "age-gated": "Sign in to confirm your age",
    "geo-blocked": "not made this video available in your country",
    "bot-check": "not a bot",
    "rate-limited": "This content isn't available, try again later",
    "silence": "silence",
    "short": "short",
    "truncated": "ends prematurely",
}


@pytest.mark.parametrize("fault", sorted(FAULT_REASONS))
def test_each_fault_gives_its_reason_and_leaves_no_file(srv: MediaServer, tmp_path: Path, fault: str) -> None:
    ytid = ("f-" + fault.replace("-", "_") + "_" * 11)[:11]
    srv.catalog[ytid] = SourceSpec("/m/09x0r", duration_s=12.0, fault=fault)
    if fault not in PLAYABILITY_FAULTS and fault not in PAGE_HTTP_FAULTS:
        srv.prepare([ytid], formats=(140,))  # media faults: encode before the timed read
    dest = tmp_path / "out" / f"{ytid}.flac"
    t0 = time.monotonic()
    res = fetch_clip(srv.watch_url(ytid), start_s=1.0, end_s=11.0, dest=dest, timeout_s=4.0)
    elapsed = time.monotonic() - t0
    assert not res.ok
    assert res.reason == FAULT_REASONS[fault], res.message
    assert res.permanent == R.is_permanent(res.reason)
    assert res.message
    if fault in MESSAGE_TEXT:
        assert MESSAGE_TEXT[fault].lower() in res.message.lower()
    assert res.path is None and res.sha256 is None
    assert leftovers(dest.parent) == []  # neither the clip nor a temp file
    assert elapsed < 8.0


def test_server_that_cannot_seek_falls_back_to_whole_file(srv: MediaServer, tmp_path: Path) -> None:
    ytid = "noseek_aaaa"
    srv.catalog[ytid] = SourceSpec("/m/09x0r", duration_s=40.0, fault="no-seek")  # long enough to need a seek
    dest = tmp_path / "ns.flac"
    res = fetch_clip(srv.watch_url(ytid), start_s=28.0, end_s=38.0, dest=dest)
    assert res.ok and res.fallback, (res.message, res.fallback, [(r.range, r.status, r.body_bytes) for r in srv.requests])
    assert leftovers(tmp_path) == ["ns.flac"]
    clip, _ = sf.read(str(dest), dtype="float64")
    full = decode_reference(srv.media_path(ytid, 140))
    assert abs(locate(full, clip) - 28 * SR) <= SR // 1000


@pytest.mark.parametrize("layout", ["dash", "fragmented"])  # fragments without an index: the range search stalls first
def test_stalled_media_is_bounded_by_the_timeout(srv: MediaServer, tmp_path: Path, layout: str) -> None:
    ytid = f"stalled_{layout[:3]}"
    srv.catalog[ytid] = SourceSpec("/m/09x0r", duration_s=12.0, fault="stall", m4a_layout=layout)
    srv.prepare([ytid])
    t0 = time.monotonic()
    res = fetch_clip(srv.watch_url(ytid), start_s=1.0, end_s=11.0, dest=tmp_path / "s.flac", timeout_s=3.0)
    assert res.reason == R.NETWORK and not res.permanent
    assert time.monotonic() - t0 < 5.0
    assert leftovers(tmp_path) == []


def test_a_read_slower_than_the_timeout_is_killed_and_leaves_nothing(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    """Bytes keep coming (so ffmpeg's own -rw_timeout never fires): the subprocess timeout ends it."""
    cache = tmp_path_factory.getbasetemp() / "demo-media-cache"
    with MediaServer(cache_dir=cache, catalog=CATALOG, bandwidth_bps=3000) as slow:
        slow.prepare(["clip44k_aaa"], formats=(140,))
        t0 = time.monotonic()
        res = fetch_clip(slow.watch_url("clip44k_aaa"), start_s=2.0, end_s=12.0, dest=tmp_path / "slow.flac", timeout_s=3.0)
        assert res.reason == R.NETWORK and "timed out" in res.message
        assert time.monotonic() - t0 < 6.0
    assert leftovers(tmp_path) == []


def test_rate_limit_burst_signals_a_pause_then_clears(srv: MediaServer, tmp_path: Path) -> None:
    srv.rate_limit_burst(1)
    first = fetch_clip(srv.watch_url("clip44k_aaa"), start_s=0.0, end_s=1.0, dest=tmp_path / "r.flac")
    assert first.reason == R.RATE_LIMITED and R.should_pause(first.reason)
    assert "rate-limited by YouTube" in first.message
    second = fetch_clip(srv.watch_url("clip44k_aaa"), start_s=0.0, end_s=1.0, dest=tmp_path / "r.flac")
    assert second.ok


def test_unreachable_host_is_a_network_failure(tmp_path: Path) -> None:
    with MediaServer(cache_dir=tmp_path / "m") as gone:
        url = gone.watch_url("clip44k_aaa")
    res = fetch_clip(url, start_s=0.0, end_s=1.0, dest=tmp_path / "x.flac", timeout_s=5.0)
    assert res.reason == R.NETWORK and not (tmp_path / "x.flac").exists()


def test_concurrent_fetches_from_threads(srv: MediaServer, tmp_path: Path) -> None:
    jobs = [("clip44k_aaa", 0.5 * i) for i in range(3)] + [("clip48k_bbb", 1.0 * i) for i in range(3)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda j: fetch_clip(srv.watch_url(j[0]), start_s=j[1], end_s=j[1] + 4.0, dest=tmp_path / f"{j[0]}_{j[1]:.3f}.flac"), jobs))
    assert all(r.ok for r in results), [r.message for r in results]
    assert len({r.sha256 for r in results}) == len(jobs)


def test_cookies_go_to_ytdlp_only(srv: MediaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    written: list[str] = []
    watching = [False]

    def audit(event: str, args: tuple) -> None:  # every file Python opens for writing during a fetch
        if watching[0] and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            mode, flags = args[1], args[2]
            if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR)):
                written.append(os.fsdecode(args[0]))

    sys.addaudithook(audit)  # audit hooks cannot be removed: it is gated by `watching`
    secret = "s3cr3t-cookie-value-123"
    jar = tmp_path / "cookies.txt"
    jar.write_text(f"# Netscape HTTP Cookie File\n.127.0.0.1\tTRUE\t/\tFALSE\t0\tSID\t{secret}\n")
    before = jar.read_bytes()
    srv.set_fault("clip48k_bbb", "private")
    srv.reset_log()
    res = fetch_clip(srv.watch_url("clip48k_bbb"), start_s=0.0, end_s=1.0, dest=tmp_path / "c.flac", cookies=str(jar))
    assert res.reason == R.PRIVATE
    assert secret not in repr(res.to_dict())
    assert [(r.kind, r.has_cookie) for r in srv.requests] == [("watch", True)]  # yt-dlp sent them
    srv.set_fault("clip48k_bbb", None)
    srv.reset_log()
    watching[0] = True
    try:
        res = fetch_clip(srv.watch_url("clip48k_bbb"), start_s=0.0, end_s=1.0, dest=tmp_path / "c.flac", cookies=str(jar))
    finally:
        watching[0] = False
    assert res.ok and secret not in repr(res.to_dict())
    # the only files written: the clip beside its destination and the server's own media cache
    # (no copy of the cookies anywhere, not even a temporary one)
    allowed = (tmp_path, srv.cache_dir.resolve())
    assert written and all(p == os.devnull or any(Path(p).resolve().is_relative_to(a) for a in allowed) for p in written), written
    assert not any(Path(p).name == jar.name or "cookie" in Path(p).name for p in written), written
    assert not any(r.has_cookie for r in srv.requests if r.kind == "media")  # ffmpeg never gets them
    assert jar.read_bytes() == before  # yt-dlp got the text in memory: the user's file is never rewritten
    with pytest.raises(UsageError, match="cannot read the cookies file"):
        fetch_clip(srv.watch_url("clip48k_bbb"), start_s=0.0, end_s=1.0, dest=tmp_path / "c.flac", cookies=str(tmp_path / "missing.txt"))


# --- hostile input ---------------------------------------------------------------------

HOSTILE = ["../x", "-o", "abcdefghijkl", "abcdefghij\u00e9", "abc/../defg", "abcdefghij%", "", "abcdefghij\n"]


@pytest.mark.parametrize("bad", HOSTILE)
def test_hostile_ids_are_refused_before_any_request(srv: MediaServer, tmp_path: Path, bad: str) -> None:
    srv.reset_log()
    url = f"{srv.base_url}/watch?v={bad}"
    with pytest.raises(ValidationError, match=r"invalid (YouTube ID|watch URL)"):
        fetch_clip(url, start_s=0.0, end_s=10.0, dest=tmp_path / "h.flac")
    assert srv.requests == [] and leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "http://127.0.0.1:1/other?v=abcdefghijk",
        "http://127.0.0.1:1/watch?v=abcdefghijk&v=bcdefghijkl",
        "http://a b/watch?v=abcdefghijk",
        "-i",
    ],
)
def test_malformed_urls_are_refused(url: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="invalid watch URL"):
        fetch_clip(url, start_s=0.0, end_s=10.0, dest=tmp_path / "h.flac")


def test_bad_options_are_usage_errors(tmp_path: Path) -> None:
    url = "http://127.0.0.1:1/watch?v=abcdefghijk"
    with pytest.raises(ValidationError, match="0 <= start < end"):
        fetch_clip(url, start_s=5.0, end_s=5.0, dest=tmp_path / "x.flac")
    with pytest.raises(UsageError, match="audio_format must be one of flac, wav"):
        fetch_clip(url, start_s=0.0, end_s=1.0, dest=tmp_path / "x.flac", audio_format="mp3")
    with pytest.raises(UsageError, match="exclusive"):
        fetch_clip(url, start_s=0.0, end_s=1.0, dest=tmp_path / "x.flac", cookies="a", cookies_from_browser="firefox")


def test_parse_watch_url_canonicalises() -> None:
    assert parse_watch_url("https://www.youtube.com/watch?v=--PJHxphWEs") == ("--PJHxphWEs", "https://www.youtube.com/watch?v=--PJHxphWEs")


def test_fetch_prints_nothing(srv: MediaServer, tmp_path: Path) -> None:
    """yt-dlp and ffmpeg output is captured: the library writes nothing to stdout/stderr."""
    import sys

    srv.set_fault("clip48k_bbb", "bot-check")
    code = (
        "import sys; from audioset_fewshot.download.fetch import fetch_clip; "
        f"a = fetch_clip({srv.watch_url('clip44k_aaa')!r}, start_s=1.0, end_s=3.0, dest={str(tmp_path / 'p.flac')!r}); "
        f"b = fetch_clip({srv.watch_url('clip48k_bbb')!r}, start_s=1.0, end_s=3.0, dest={str(tmp_path / 'q.flac')!r}); "
        "sys.exit(0 if a.ok and b.reason == 'bot-check' else 3)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "" and out.stderr == ""
