"""The demo host's yt-dlp extractor: used only for 127.0.0.1 watch URLs, raising yt-dlp's own errors."""

from __future__ import annotations

import pytest

from audioset_fewshot.demo.server import MediaServer, SourceSpec
from audioset_fewshot.download.ytdlp_demo import demo_extractor, is_demo_url


@pytest.mark.parametrize(
    ("url", "demo"),
    [
        ("http://127.0.0.1:8080/watch?v=abcdefghijk", True),
        ("http://127.0.0.1:8080/watch?v=--PJHxphWEs", True),
        ("https://www.youtube.com/watch?v=abcdefghijk", False),
        ("http://localhost:8080/watch?v=abcdefghijk", False),
        ("http://127.0.0.1:8080/watch?v=abcdefghijk&list=x", False),
        ("http://127.0.0.1:8080/watch?v=abcdefghij", False),
        ("http://127.0.0.2:8080/watch?v=abcdefghijk", False),
    ],
)
def test_only_loopback_watch_urls_use_the_demo_extractor(url: str, demo: bool) -> None:
    assert is_demo_url(url) is demo
    assert bool(demo_extractor().suitable(url)) is demo


def _extract(srv: MediaServer, ytid: str) -> dict:
    import yt_dlp

    with yt_dlp.YoutubeDL({"quiet": True, "no_warnings": True, "format": "bestaudio[ext=m4a]/bestaudio", "proxy": ""}, auto_init=False) as ydl:
        ie = demo_extractor()()
        ydl.add_info_extractor(ie)
        return ydl.extract_info(srv.watch_url(ytid), download=False, ie_key=ie.ie_key())


def test_yt_dlp_selects_formats_from_the_demo_document(media_server: MediaServer) -> None:
    media_server.catalog["extr_ok_aaa"] = SourceSpec("/m/09x0r", duration_s=3.0, sample_rate_hz=48000, upload_date="20200229")
    info = _extract(media_server, "extr_ok_aaa")
    assert {f["format_id"] for f in info["formats"]} == {"140", "251"}
    assert (info["format_id"], info["ext"], info["acodec"], info["asr"], info["audio_channels"]) == ("140", "m4a", "mp4a.40.2", 48000, 2)
    assert info["url"].startswith(media_server.base_url + "/videoplayback?")
    assert info["upload_date"] == "20200229" and info["duration"] == 3
    assert "User-Agent" in info["http_headers"]  # yt-dlp's own headers, passed on to ffmpeg


@pytest.mark.parametrize(
    ("fault", "exc_name", "text"),
    [
        ("geo-blocked", "GeoRestrictedError", "The uploader has not made this video available in your country"),
        ("private", "ExtractorError", "Private video. Sign in if you've been granted access to this video. Use --cookies-from-browser or --cookies"),
        ("unavailable", "ExtractorError", "Video unavailable. This video has been removed by the uploader"),
        ("bot-check", "ExtractorError", "Sign in to confirm you\u2019re not a bot. Use --cookies"),
        ("rate-limited", "ExtractorError", "This content isn't available, try again later. The current session has been rate-limited by YouTube"),
        ("page-404", "HTTPError", "HTTP Error 404: Not Found"),  # yt-dlp keeps the HTTPError as the cause
    ],
)
def test_playability_errors_are_yt_dlp_errors(media_server: MediaServer, fault: str, exc_name: str, text: str) -> None:
    import yt_dlp

    media_server.set_fault("extr_f_aaaa", fault)
    with pytest.raises(yt_dlp.utils.DownloadError, match="ERROR: ") as info:
        _extract(media_server, "extr_f_aaaa")
    cause = info.value.exc_info[1]
    assert type(cause).__name__ == exc_name
    assert text in str(info.value)
