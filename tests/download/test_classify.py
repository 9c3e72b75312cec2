"""The failure classifier on real yt-dlp exceptions and YouTube / ffmpeg message texts."""

from __future__ import annotations

import pytest

from audioset_fewshot.download import reasons as R
from audioset_fewshot.download.classify import classify_ffmpeg_error, classify_text, classify_ytdlp_error

# Messages as yt-dlp prints them for YouTube (reason [+ subreason] [+ hint]).
YOUTUBE_MESSAGES = [
    ("ERROR: [youtube] abcdefghijk: Video unavailable. This video has been removed by the uploader", R.UNAVAILABLE),
    ("ERROR: [youtube] abcdefghijk: Video unavailable", R.UNAVAILABLE),
    (
        "ERROR: [youtube] abcdefghijk: Video unavailable. This video is no longer available because the uploader has closed their YouTube account.",
        R.UNAVAILABLE,
    ),
    (
        "ERROR: [youtube] abcdefghijk: Video unavailable. This video is no longer available because the YouTube account associated with this video has been terminated.",
        R.TERMINATED,
    ),
    ("ERROR: [youtube] abcdefghijk: Video unavailable. This video is no longer available due to a copyright claim by Some Label", R.COPYRIGHT),
    ("ERROR: [youtube] abcdefghijk: Video unavailable. This video has been removed for violating YouTube's Terms of Service", R.COPYRIGHT),
    ("ERROR: [youtube] abcdefghijk: Private video. Sign in if you've been granted access to this video. Use --cookies-from-browser or --cookies", R.PRIVATE),
    ("ERROR: [youtube] abcdefghijk: Join this channel to get access to members-only content like this video, and other exclusive perks.", R.MEMBERS_ONLY),
    ("ERROR: [youtube] abcdefghijk: Sign in to confirm your age. This video may be inappropriate for some users. Use --cookies-from-browser", R.AGE_GATED),
    ("ERROR: [youtube] abcdefghijk: The uploader has not made this video available in your country", R.GEO_BLOCKED),
    ("ERROR: [youtube] abcdefghijk: Sign in to confirm you\u2019re not a bot. Use --cookies-from-browser or --cookies for the authentication.", R.BOT_CHECK),
    ("ERROR: [youtube] abcdefghijk: Sign in to confirm you're not a bot. This helps protect our community. Learn more", R.BOT_CHECK),
    (
        "ERROR: [youtube] abcdefghijk: This content isn't available, try again later. The current session has been rate-limited by YouTube for up to an hour.",
        R.RATE_LIMITED,
    ),
    ("ERROR: [youtube] abcdefghijk: This video is DRM protected", R.DRM),
    ("ERROR: [youtube] abcdefghijk: Requested format is not available. Use --list-formats for a list of available formats", R.FORMAT_UNAVAILABLE),
    ("WARNING: [youtube] No supported JavaScript runtime could be found. Only deno is enabled by default", R.JS_MISSING),
    ("ERROR: [youtube] abcdefghijk: All player responses are invalid. Your IP is likely being blocked by Youtube", R.IP_BLOCKED),
    ("ERROR: [youtube] abcdefghijk: The following content is not available on this app.. Watch on the latest version of YouTube.", R.EXTRACTOR_BROKEN),
    ("ERROR: [youtube] abcdefghijk: This video is only available to Music Premium members", R.MEMBERS_ONLY),
    ("ERROR: [youtube] abcdefghijk: This video requires payment to watch", R.MEMBERS_ONLY),
]


@pytest.mark.parametrize(("message", "reason"), YOUTUBE_MESSAGES)
def test_youtube_texts(message: str, reason: str) -> None:
    assert classify_text(message) == reason


def _ytdlp_error(exc: BaseException) -> BaseException:
    """Wrap ``exc`` the way YoutubeDL.extract_info does (DownloadError with exc_info)."""
    import sys

    from yt_dlp.utils import DownloadError

    try:
        raise exc
    except BaseException:  # noqa: BLE001 - capturing exc_info like yt-dlp
        return DownloadError(f"ERROR: {exc}", sys.exc_info())


def test_geo_restricted_error_class_wins() -> None:
    from yt_dlp.utils import GeoRestrictedError

    f = classify_ytdlp_error(_ytdlp_error(GeoRestrictedError("This video is blocked here", countries=["DE"])))
    assert f.reason == R.GEO_BLOCKED and f.permanent


@pytest.mark.parametrize(
    ("status", "reason"), [(429, R.HTTP_429), (500, R.HTTP_5XX), (503, R.HTTP_5XX), (404, R.NOT_FOUND), (410, R.NOT_FOUND), (403, R.HTTP_403)]
)
def test_http_errors_of_the_page_by_status(status: int, reason: str) -> None:
    import io

    from yt_dlp.networking.common import Response
    from yt_dlp.networking.exceptions import HTTPError
    from yt_dlp.utils import ExtractorError

    http = HTTPError(Response(io.BytesIO(b""), "http://127.0.0.1:1/watch?v=abcdefghijk", {}, status=status))
    err = _ytdlp_error(ExtractorError("Unable to download webpage: HTTP Error", cause=http, expected=True))
    assert classify_ytdlp_error(err).reason == reason


def test_transport_error_is_network() -> None:
    from yt_dlp.networking.exceptions import TransportError
    from yt_dlp.utils import ExtractorError

    err = _ytdlp_error(ExtractorError("Unable to download webpage: boom", cause=TransportError("boom"), expected=True))
    assert classify_ytdlp_error(err).reason == R.NETWORK


def test_a_429_seen_only_in_warnings() -> None:
    err = Exception("ERROR: [youtube] abcdefghijk: Something odd happened")
    f = classify_ytdlp_error(err, ["[youtube] abcdefghijk: HTTP Error 429: Too Many Requests; retrying"])
    assert f.reason == R.HTTP_429 and "429" in f.message
    assert classify_ytdlp_error(err).reason == R.UNKNOWN  # without the warning: unknown, not guessed


def test_broken_extraction_is_transient() -> None:
    f = classify_ytdlp_error(_ytdlp_error(RuntimeError("Unable to extract initial player response")))
    assert f.reason == R.EXTRACTOR_BROKEN and not f.permanent


def test_unknown_keeps_the_full_message_and_is_not_unavailable() -> None:
    text = "ERROR: [youtube] abcdefghijk: Something nobody has seen before " + "x" * 500
    f = classify_ytdlp_error(Exception(text))
    assert f.reason == R.UNKNOWN and f.message == text
    assert not f.permanent and R.is_transient(R.UNKNOWN)


@pytest.mark.parametrize(
    ("stderr", "reason"),
    [
        ("Error opening input: Server returned 403 Forbidden (access denied)", R.FORMAT_403),
        ("Error opening input: Server returned 404 Not Found", R.FORMAT_403),
        ("Error opening input: Server returned 429 Too Many Requests", R.HTTP_429),
        ("Error opening input: Server returned 5XX Server Error reply", R.HTTP_5XX),
        ("[http @ 0x1] Error reading HTTP response: Connection timed out\nError during demuxing: Input/output error", R.NETWORK),
        ("[http @ 0x1] Stream ends prematurely at 196793, should be 196796", R.NETWORK),
        ("Connection to tcp://127.0.0.1:9 failed: Connection refused", R.NETWORK),
        ("moov atom not found\nError opening input: Invalid data found when processing input", R.FFMPEG_ERROR),
        ("", R.FFMPEG_ERROR),
    ],
)
def test_ffmpeg_stderr(stderr: str, reason: str) -> None:
    f = classify_ffmpeg_error(stderr, 1)
    assert f.reason == reason
    assert f.message  # never empty, even when ffmpeg said nothing


def test_reason_families() -> None:
    assert R.PERMANENT == {"unavailable", "private", "terminated", "copyright", "members-only", "age-gated", "geo-blocked", "drm", "not-found"}
    assert {"rate-limited", "bot-check", "http-429", "http-5xx", "network", "extractor-broken", "format-403", "unknown"} <= R.TRANSIENT
    assert R.ORIGIN_REASONS == {"corrupt", "short", "silent", "in-no-origin"}
    assert R.LOCAL == {"ffmpeg-error", "qc-reject"} | R.ORIGIN_REASONS
    assert not (R.PERMANENT & R.TRANSIENT) and not (R.PERMANENT & R.LOCAL) and not (R.TRANSIENT & R.LOCAL)
    assert R.PAUSE_REASONS == {"rate-limited", "bot-check", "http-429", "ip-blocked"}
    assert R.is_permanent("private") and not R.is_permanent("rate-limited") and not R.is_permanent(None)
    assert R.should_pause("bot-check") and not R.should_pause("network")
