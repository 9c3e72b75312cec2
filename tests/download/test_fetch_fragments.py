"""A fragmented m4a without an index (no sidx, no mfra) is read in a few range requests, not whole.

Real ffmpeg-muxed files from the 127.0.0.1 demo media server; its request log counts the
bytes served.  The clip is held to the containers' bar (start within 1 ms, level within
0.1 dB of a whole-file decode); a malformed fragment, or a host that ignores Range, sends
the read back to ffmpeg's own (whole-file) path, which is exact too.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from audioset_fewshot.demo.server import MediaServer, SourceSpec
from audioset_fewshot.download import fmp4
from audioset_fewshot.download.fetch import fetch_clip
from tests.download.test_fetch_containers import assert_exact, leftovers

M4A = "bestaudio[ext=m4a]"


def _spec(duration_s: float, *, channels: int = 2, layout: str = "fragmented", fault: str | None = None) -> SourceSpec:
    return SourceSpec("/m/09x0r", duration_s=duration_s, channels=channels, m4a_layout=layout, fault=fault)


def _reader(data: bytes, log: list[tuple[int, int]]) -> fmp4.Reader:
    def read(first: int, last: int) -> bytes:
        log.append((first, last))
        return data[first : last + 1]

    return read


@pytest.mark.slow
def test_a_late_segment_of_a_long_file_reads_a_small_part_of_it_and_is_exact(media_server: MediaServer, tmp_path: Path) -> None:
    ytid = "fragLong150"
    media_server.catalog[ytid] = _spec(300.0)
    media_server.prepare([ytid], formats=(140,))
    size = media_server.media_size(ytid, 140)
    media_server.reset_log()
    dest = tmp_path / "clips" / "late.flac"
    start_s = 150.0 + 0.3217  # off any frame or fragment boundary
    res = fetch_clip(media_server.watch_url(ytid), start_s=start_s, end_s=start_s + 3.0, dest=dest, format=M4A, timeout_s=60.0)
    assert res.ok and not res.fallback, res.message
    served = media_server.bytes_served(ytid)
    media = [r for r in media_server.requests if r.kind == "media"]
    # ffmpeg's mov demuxer alone reads ~110 % of such a file; the fragment search ~13 %
    assert served < 0.25 * size, f"{served} of {size} bytes served in {len(media)} requests"
    assert {r.status for r in media} == {206} and len(media) <= fmp4.MAX_READS + 1
    assert res.trim_start_s == start_s
    assert_exact(media_server, ytid, 140, dest, start_s)
    assert leftovers(dest.parent) == ["late.flac"]


def test_the_fragments_read_covers_the_segment_with_bounded_reads(media_server: MediaServer) -> None:
    ytid = "fragSrch030"
    media_server.catalog[ytid] = _spec(30.0, channels=1)
    data = media_server.media_path(ytid, 140).read_bytes()
    head = data[: fmp4.HEAD_BYTES]
    init = fmp4.parse_init(head)
    assert init is not None and init.timescale == 44100
    every = fmp4.fragments_in(data, 0)
    assert every[0].offset == init.size and every[-1].end == len(data)
    for start_s in (0.0, 0.7, 12.3, 25.0, 29.5):
        log: list[tuple[int, int]] = []
        found = fmp4.locate(_reader(data, log), file_size=len(data), head=head, init=init, start_s=start_s, end_s=start_s + 3.0, max_bytes=len(data))
        # the first fragment starts at or before the start, the next one after it
        first = every.index(found.first)
        t0 = every[0].time
        assert (found.first.time - t0) / init.timescale <= start_s
        assert first == len(every) - 1 or (every[first + 1].time - t0) / init.timescale > start_s
        assert found.start_s == (found.first.time - t0) / init.timescale
        # whole fragments, from there to one that starts at or after the end (or the file's end)
        body = found.data[init.size :]
        assert found.data[: init.size] == data[: init.size] and body == data[found.first.offset : found.first.offset + len(body)]
        after = [f for f in every if f.offset == found.first.offset + len(body)]
        assert (after and (after[0].time - t0) / init.timescale >= start_s + 3.0) or found.first.offset + len(body) == len(data)
        assert len(log) == found.reads <= fmp4.MAX_READS


def test_indexed_and_progressive_m4a_are_left_to_ffmpeg(media_server: MediaServer) -> None:
    for ytid, layout in (("fragDash030", "dash"), ("fragFast030", "faststart")):
        media_server.catalog[ytid] = _spec(5.0, layout=layout)
        head = media_server.media_path(ytid, 140).read_bytes()[: fmp4.HEAD_BYTES]
        assert fmp4.parse_init(head) is None, layout
    with pytest.raises(fmp4.LayoutError, match="no ftyp"):
        fmp4.parse_init(b"\x1aE\xdf\xa3" + bytes(60))  # a WebM


def _break_fragments(path: Path, from_s: float, to_s: float) -> int:
    """Rename the ``mfhd`` of the fragments starting in ``[from_s, to_s]`` (ffmpeg skips the
    box; the fragment search refuses the moof); returns how many were broken."""
    data = bytearray(path.read_bytes())
    init = fmp4.parse_init(bytes(data[: fmp4.HEAD_BYTES]))
    assert init is not None
    frags = fmp4.fragments_in(bytes(data), 0)
    broken = 0
    for f in frags:
        if from_s <= (f.time - frags[0].time) / init.timescale <= to_s:
            assert struct.unpack_from(">4s", data, f.offset + 12)[0] == b"mfhd"
            data[f.offset + 12 : f.offset + 16] = b"free"
            broken += 1
    path.write_bytes(bytes(data))
    return broken


def test_a_malformed_fragment_falls_back_to_ffmpegs_read_and_is_exact(media_server: MediaServer, tmp_path: Path) -> None:
    ytid = "fragBad030_"
    media_server.catalog[ytid] = _spec(30.0)
    path = media_server.media_path(ytid, 140)
    start_s = 20.0 + 0.3217
    assert _break_fragments(path, start_s - 3.0, start_s + 4.0) >= 5
    media_server.reset_log()
    dest = tmp_path / "clips" / "bad.flac"
    res = fetch_clip(media_server.watch_url(ytid), start_s=start_s, end_s=start_s + 3.0, dest=dest, format=M4A, timeout_s=60.0)
    assert res.ok and not res.fallback, res.message
    # the fragment search gave up; ffmpeg read the file from its start (the way it reads such a file)
    assert media_server.bytes_served(ytid) > path.stat().st_size * 0.6
    assert_exact(media_server, ytid, 140, dest, start_s)
    assert leftovers(dest.parent) == ["bad.flac"]


def test_the_fragment_reads_go_through_the_proxy_with_the_formats_headers(media_server: MediaServer, tmp_path: Path) -> None:
    from support.counting_proxy import counting_proxy

    ytid = "fragProxy30"
    media_server.catalog[ytid] = _spec(30.0)
    media_server.prepare([ytid], formats=(140,))
    media_server.reset_log()
    dest = tmp_path / "clips" / "p.flac"
    with counting_proxy("fp", user="afs", password="Fr4gPr0xyPw") as proxy:
        res = fetch_clip(media_server.watch_url(ytid), start_s=20.3, end_s=23.3, dest=dest, format=M4A, timeout_s=60.0, proxy=proxy.url)
        passed = list(proxy.passed)
    assert res.ok and not res.fallback, res.message
    media = [r for r in media_server.requests if r.kind == "media"]
    # range reads only (the search and the segment), every one through the proxy, with the
    # User-Agent yt-dlp gives the format (as ffmpeg sends it), never urllib's own
    assert len(media) >= 3 and {r.status for r in media} == {206}
    assert {r.session for r in media_server.requests} == {"via:fp"}
    assert len(passed) == len(media_server.requests)
    agents = {r.user_agent for r in media}
    assert len(agents) == 1 and "Python-urllib" not in str(agents)
    assert media_server.bytes_served(ytid) < 0.6 * media_server.media_size(ytid, 140)


def test_youtubes_dash_audio_costs_no_probe(media_server: MediaServer, tmp_path: Path) -> None:
    # yt-dlp calls every YouTube audio format "m4a_dash", and YouTube's has its sidx (the
    # player response's indexRange): ffmpeg seeks in it alone, without a layout probe first
    ranges: dict[str, tuple[str | None, list[str | None]]] = {}
    for ytid, layout in (("probeDash30", "dash"), ("probeFrag30", "fragmented")):
        media_server.catalog[ytid] = _spec(30.0, layout=layout)
        media_server.prepare([ytid], formats=(140,))
        media_server.reset_log()
        res = fetch_clip(media_server.watch_url(ytid), start_s=20.3, end_s=23.3, dest=tmp_path / f"{layout}.flac", format=M4A, timeout_s=60.0)
        assert res.ok, res.message
        ranges[layout] = (res.container, [r.range for r in media_server.requests if r.kind == "media"])
    assert ranges["dash"][0] == "m4a_dash" and f"bytes=0-{fmp4.PROBE_BYTES - 1}" not in ranges["dash"][1]
    assert ranges["fragmented"][0] == "m4a" and ranges["fragmented"][1][0] == f"bytes=0-{fmp4.PROBE_BYTES - 1}"
