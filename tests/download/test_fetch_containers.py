"""fetch_clip is exact on every container it accepts, and each container fault ends as stated.

Real yt-dlp and ffmpeg against the 127.0.0.1 demo media server, which lays each source out
as asked (DASH m4a with a sidx, progressive "faststart" m4a, fragmented m4a without an
index, WebM/Opus with its Cues at the front or at the end).  The reference is a whole-file
decode of the served file: the clip must start within 1 ms of the requested time (found by
cross-correlation) and have the level of the same span within 0.1 dB, for a mono source
whose channel count the player response leaves out and for a stereo one.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import soundfile as sf

from audioset_fewshot.demo.server import MediaServer, SourceSpec
from audioset_fewshot.download import reasons as R
from audioset_fewshot.download.fetch import fetch_clip

SR = 16000
SOURCE_S = 8.0
START_S, END_S = 2.3217, 5.3217  # a 3 s segment off any frame boundary
M4A, WEBM = "bestaudio[ext=m4a]", "bestaudio[ext=webm]"
# (name, format selector, itag, SourceSpec layout)
CONTAINERS = {
    "m4a-dash-sidx": (M4A, 140, {"m4a_layout": "dash"}),
    "m4a-faststart": (M4A, 140, {"m4a_layout": "faststart"}),
    "m4a-fragmented": (M4A, 140, {"m4a_layout": "fragmented"}),
    "webm-cues-front": (WEBM, 251, {"webm_cues": "front"}),
    "webm-cues-end": (WEBM, 251, {"webm_cues": "end"}),
}


def _ytid(container: str, tag: str) -> str:
    return (container.replace("-", "")[:8] + tag + "___")[:11]


def _spec(container: str, *, channels: int = 2, duration_s: float = SOURCE_S, **kw: object) -> SourceSpec:
    layout = CONTAINERS[container][2]
    # a mono source's channel count is not reported: the level must come from the decode
    return SourceSpec("/m/09x0r", duration_s=duration_s, channels=channels, report_channels=channels == 2, **layout, **kw)  # type: ignore[arg-type]


def whole_decode(path: Path) -> np.ndarray:
    """The whole served file decoded by ffmpeg: the mean of its channels, at 16 kHz."""
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    native = subprocess.run(
        [exe, "-nostdin", "-v", "error", "-i", str(path), "-c:a", "pcm_f32le", "-f", "wav", "-"], capture_output=True, timeout=60, check=True
    )
    tmp = path.with_name(path.name + ".ref.wav")
    tmp.write_bytes(native.stdout)
    try:
        data, rate = sf.read(str(tmp), dtype="float32", always_2d=True)
    finally:
        tmp.unlink()
    mean = np.ascontiguousarray(data.mean(axis=1, dtype=np.float64).astype(np.float32))
    cmd = [exe, "-nostdin", "-v", "error", "-f", "f32le", "-ar", str(rate), "-ac", "1", "-i", "pipe:0"]
    cmd += ["-af", f"aresample={SR}:resampler=soxr:precision=28", "-f", "f32le", "-"]
    out = subprocess.run(cmd, input=mean.tobytes(), capture_output=True, timeout=60, check=True).stdout
    return np.frombuffer(out, dtype=np.float32).astype(np.float64)


def locate(full: np.ndarray, clip: np.ndarray) -> int:
    n = 1 << int(np.ceil(np.log2(len(full) + len(clip))))
    corr = np.fft.irfft(np.fft.rfft(full, n) * np.conj(np.fft.rfft(clip, n)), n)
    return int(np.argmax(corr[: len(full) - len(clip) + 1]))


def assert_exact(srv: MediaServer, ytid: str, itag: int, dest: Path, start_s: float = START_S) -> None:
    """The clip at ``dest`` starts within 1 ms of ``start_s`` and has the level of the same span (0.1 dB)."""
    clip, rate = sf.read(str(dest), dtype="float64")
    assert rate == SR and len(clip) == round((END_S - START_S) * SR)
    full = whole_decode(srv.media_path(ytid, itag))
    want = round(start_s * SR)
    offset = locate(full, clip) - want
    assert abs(offset) <= SR // 1000, f"the clip starts {offset / SR * 1000:+.3f} ms off"
    ref = full[want : want + len(clip)]
    level_db = 10 * np.log10(np.mean(clip**2) / np.mean(ref**2))
    assert abs(level_db) <= 0.1, f"level {level_db:+.3f} dB against a whole-file decode"


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("container", sorted(CONTAINERS))
def test_clip_starts_at_the_requested_sample_with_the_level_of_a_whole_file_decode(
    media_server: MediaServer, tmp_path: Path, container: str, channels: int
) -> None:
    fmt, itag, _ = CONTAINERS[container]
    ytid = _ytid(container, f"c{channels}")
    media_server.catalog[ytid] = _spec(container, channels=channels)
    dest = tmp_path / "clips" / "c.flac"
    res = fetch_clip(media_server.watch_url(ytid), start_s=START_S, end_s=END_S, dest=dest, format=fmt)
    assert res.ok, res.message
    assert res.itag == str(itag) and not res.fallback
    # the channel count is the decoded one, whatever the player response said
    assert res.source_channels == channels
    assert res.trim_start_s == START_S
    assert_exact(media_server, ytid, itag, dest)
    assert leftovers(dest.parent) == ["c.flac"]


@pytest.mark.parametrize("container", sorted(CONTAINERS))
def test_a_host_that_ignores_range_still_gives_the_exact_clip(media_server: MediaServer, tmp_path: Path, container: str) -> None:
    fmt, itag, _ = CONTAINERS[container]
    ytid = _ytid(container, "ir")
    media_server.catalog[ytid] = _spec(container, fault="ignore-range", duration_s=30.0)
    media_server.prepare([ytid], formats=(itag,))  # encoded: the player response gives a DASH file's indexRange
    dest = tmp_path / "clips" / "r.flac"
    start_s = 20.0 + START_S  # far enough in that the reader must seek (or read past most of the file)
    res = fetch_clip(media_server.watch_url(ytid), start_s=start_s, end_s=start_s + END_S - START_S, dest=dest, format=fmt, timeout_s=30.0)
    assert res.ok, res.message
    # every answer was the whole file (200): the segment was read from the file's start, or
    # (a WebM with its Cues at the end, whose reader seeks to them) downloaded whole; an m4a
    # that is not YouTube's DASH audio (no indexRange) is probed for its layout first (one
    # range request, answered whole and closed at once)
    assert {r.status for r in media_server.requests if r.kind == "media"} == {200}
    reads = 2 if container in ("m4a-faststart", "m4a-fragmented") else 1
    assert res.fallback or container == "webm-cues-end" or len([r for r in media_server.requests if r.kind == "media"]) == reads
    assert_exact(media_server, ytid, itag, dest, start_s)
    assert leftovers(dest.parent) == ["r.flac"]


@pytest.mark.parametrize("container", sorted(CONTAINERS))
def test_a_corrupt_file_fails_within_seconds_without_a_whole_file_read(media_server: MediaServer, tmp_path: Path, container: str) -> None:
    fmt, itag, _ = CONTAINERS[container]
    ytid = _ytid(container, "cx")
    media_server.catalog[ytid] = _spec(container, fault="corrupt")
    media_server.prepare([ytid], formats=(itag,))
    dest = tmp_path / "clips" / "x.flac"
    t0 = time.monotonic()
    res = fetch_clip(media_server.watch_url(ytid), start_s=START_S, end_s=END_S, dest=dest, format=fmt, timeout_s=120.0)
    elapsed = time.monotonic() - t0
    assert not res.ok and res.reason == R.FFMPEG_ERROR and not res.fallback, res.message
    assert "invalid data" in res.message.lower()
    assert elapsed < 5.0, f"a corrupt file took {elapsed:.1f} s to fail"
    assert leftovers(dest.parent) == []


@pytest.mark.parametrize("container", sorted(CONTAINERS))
def test_a_start_past_a_probed_end_is_short_without_a_whole_file_read(media_server: MediaServer, tmp_path: Path, container: str) -> None:
    fmt, itag, _ = CONTAINERS[container]
    ytid = _ytid(container, "pe")
    media_server.catalog[ytid] = _spec(container, report_duration=False)  # only the file knows its length
    media_server.prepare([ytid], formats=(itag,))
    media_server.reset_log()
    dest = tmp_path / "clips" / "p.flac"
    res = fetch_clip(media_server.watch_url(ytid), start_s=SOURCE_S + 2.0, end_s=SOURCE_S + 5.0, dest=dest, format=fmt, timeout_s=30.0)
    assert res.source_duration_s is None  # the extraction did not know it
    assert res.reason == R.QC_REJECT and res.message.startswith("short") and not res.fallback, res.message
    assert leftovers(dest.parent) == []
