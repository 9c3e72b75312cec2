"""Map yt-dlp errors, yt-dlp's logged warnings and ffmpeg's stderr to reason classes.

The order of the rules matters: YouTube composes messages ("Video unavailable.
This video is no longer available because the YouTube account associated with
this video has been terminated."), so the specific texts are tested before the
generic ones.  What matches nothing is ``unknown`` with the full message,
never ``unavailable``.

This module does not import yt-dlp: exceptions are inspected by attribute
(``exc_info``, ``cause``, ``status``) and class name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from audioset_fewshot.download import reasons as R


@dataclass(frozen=True)
class Failure:
    """A classified failure: a reason from :mod:`reasons` and the full message."""

    reason: str
    message: str

    @property
    def permanent(self) -> bool:
        return R.is_permanent(self.reason)


# (reason, lower-case substrings), tested in order against the message text.
_TEXT_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    # yt-dlp: "All player responses are invalid. Your IP is likely being blocked by Youtube"
    (R.IP_BLOCKED, ("your ip is likely being blocked", "ip is likely being blocked")),
    (R.BOT_CHECK, ("not a bot", "confirm you\u2019re not", "confirm you're not", "captcha")),
    (R.RATE_LIMITED, ("try again later", "rate-limited by youtube", "rate limited by youtube")),
    (R.AGE_GATED, ("confirm your age", "age-restricted", "age restricted", "inappropriate for some users")),
    (R.GEO_BLOCKED, ("not made this video available in your country", "not available in your country", "geo restrict", "from your location")),
    (R.TERMINATED, ("account associated with this video has been terminated", "account has been terminated")),
    (R.COPYRIGHT, ("copyright", "terms of service")),
    (R.MEMBERS_ONLY, ("members-only", "members only", "join this channel", "requires payment", "music premium members")),
    (R.DRM, ("drm protected", "this video is drm")),
    (R.PRIVATE, ("private video", "this video is private")),
    (
        R.UNAVAILABLE,
        (
            "video unavailable",
            "removed by the uploader",
            "this video is unavailable",
            "no longer available",
            "isn't available anymore",
            "this video has been removed",
        ),
    ),
    (
        R.JS_MISSING,
        (
            # "No supported JavaScript runtime could be found", "n challenge solving failed: ...
            # Ensure you have a supported JavaScript runtime and challenge solver script ..."
            "javascript runtime",
            "js runtime",
            "challenge solving failed",
            "signature solving failed",
            "challenge solver script",
        ),
    ),
    (R.FORMAT_UNAVAILABLE, ("requested format is not available",)),
    (
        R.EXTRACTOR_BROKEN,
        (
            "signature extraction failed",
            "n challenge",
            "nsig extraction failed",
            "only images are available",
            "no video formats found",
            "unable to extract",
            "failed to parse json",
            "not available on this app",
            "precondition check failed",
        ),
    ),
)

_NETWORK_TEXT = (
    "timed out",
    "timeout",
    "connection refused",
    "connection reset",
    "connection aborted",
    "network is unreachable",
    "temporary failure in name resolution",
    "name or service not known",
    "remote end closed",
    "incompleteread",
    "incomplete read",
    "eof occurred",
    "broken pipe",
    "no route to host",
    "incomplete data",
    "stream ends prematurely",
    "end of file",
    "input/output error",
    "i/o error",
)
_NETWORK_CLASSES = {"TransportError", "IncompleteRead", "SSLError", "ProxyError", "ConnectionError", "TimeoutError", "socket.timeout"}

_HTTP_STATUS_RE = re.compile(r"HTTP Error (\d{3})")
_FFMPEG_STATUS_RE = re.compile(r"(?:Server returned|HTTP error) (\d)(\d\d|XX)", re.IGNORECASE)


def classify_text(text: str) -> str | None:
    """The reason a message's text names, or None if it names none of them."""
    low = text.lower()
    for reason, needles in _TEXT_RULES:
        if any(n in low for n in needles):
            return reason
    return None


def _http_reason(status: int, *, on_media: bool) -> str:
    if status == 429:
        return R.HTTP_429
    if 500 <= status < 600:
        return R.HTTP_5XX
    if on_media and 400 <= status < 500:
        # a refused media URL (403, or 404/410 of an expired URL): a fresh extraction fixes it
        return R.FORMAT_403
    if status in (404, 410):
        return R.NOT_FOUND
    if status == 403:
        return R.HTTP_403
    return R.UNKNOWN


def _chain(exc: BaseException) -> Iterable[BaseException]:
    """The exception and its causes (yt-dlp's ``exc_info``/``cause`` and Python's chain)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        info = getattr(e, "exc_info", None)
        if isinstance(info, tuple) and len(info) > 1 and isinstance(info[1], BaseException):
            todo.append(info[1])
        for attr in ("cause", "__cause__", "__context__"):
            nxt = getattr(e, attr, None)
            if isinstance(nxt, BaseException):
                todo.append(nxt)


# Warnings that explain a "no usable format" error (it says what, they say why).
_JS_WARNINGS = ("javascript runtime", "challenge solving failed", "signature solving failed", "remote component")
_SABR_WARNINGS = ("sabr",)  # "YouTube may have enabled the SABR-only streaming experiment ...", "... forcing SABR streaming ..."


def _cause_in_warnings(reason: str, warnings: Sequence[str]) -> str:
    """A missing-format error whose warnings name the cause: a missing JS runtime or
    solver, or SABR-only streaming."""
    if reason not in (R.FORMAT_UNAVAILABLE, R.EXTRACTOR_BROKEN):
        return reason
    low = [w.lower() for w in warnings]
    if any(n in w for w in low for n in _JS_WARNINGS):
        return R.JS_MISSING
    if any(n in w for w in low for n in _SABR_WARNINGS):
        return R.SABR_ONLY
    return reason


def classify_ytdlp_error(exc: BaseException, warnings: Sequence[str] = ()) -> Failure:
    """Classify an exception raised by ``YoutubeDL.extract_info`` (and the warnings it logged)."""
    message = str(exc).strip() or type(exc).__name__
    chain = list(_chain(exc))
    if any(type(e).__name__ == "GeoRestrictedError" for e in chain):
        return Failure(R.GEO_BLOCKED, message)
    by_text = classify_text(message)
    if by_text is not None:
        cause = _cause_in_warnings(by_text, warnings)
        if cause != by_text:  # keep the warning that says why
            why = next(w for w in warnings if any(n in w.lower() for n in (*_JS_WARNINGS, *_SABR_WARNINGS)))
            return Failure(cause, f"{message} [warning: {why}]")
        return Failure(by_text, message)
    for e in chain:
        status = getattr(e, "status", None)
        if type(e).__name__ == "HTTPError" and isinstance(status, int):
            return Failure(_http_reason(status, on_media=False), message)
    m = _HTTP_STATUS_RE.search(message)
    if m:
        return Failure(_http_reason(int(m.group(1)), on_media=False), message)
    if any(type(e).__name__ in _NETWORK_CLASSES or isinstance(e, (TimeoutError, ConnectionError)) for e in chain):
        return Failure(R.NETWORK, message)
    low = message.lower()
    if any(n in low for n in _NETWORK_TEXT):
        return Failure(R.NETWORK, message)
    # a 429 often shows only in a warning (yt-dlp retries, then fails with a generic error)
    for w in warnings:
        wl = w.lower()
        if "429" in wl or "too many requests" in wl:
            return Failure(R.HTTP_429, f"{message} [warning: {w}]")
        by_text = classify_text(w)
        if by_text is not None:
            return Failure(by_text, f"{message} [warning: {w}]")
    return Failure(R.UNKNOWN, message)


def classify_ffmpeg_error(stderr: str, returncode: int | None) -> Failure:
    """Classify a failed ffmpeg run from its stderr (the media read or the decode)."""
    text = stderr.strip()
    tail = text[-2000:] if text else f"ffmpeg exited with status {returncode} and no message"
    m = _FFMPEG_STATUS_RE.search(text)
    if m:
        first = int(m.group(1))
        rest = m.group(2)
        if rest == "XX":
            low = text.lower()
            status = 429 if ("429" in low or "too many requests" in low) else first * 100
        else:
            status = first * 100 + int(rest)
        return Failure(_http_reason(status, on_media=True), tail)
    low = text.lower()
    if any(n in low for n in _NETWORK_TEXT):
        return Failure(R.NETWORK, tail)
    return Failure(R.FFMPEG_ERROR, tail)
