"""Reason classes of a failed clip, and which of them are permanent.

A reason is a short stable string stored in the ledger.  Three families:

* permanent: YouTube will not serve this video to us (retrying is useless
  unless the user asks with ``retry_failed``);
* transient: try again later (rate limits, bot checks, HTTP 429/5xx, network,
  a broken extractor, a refused media URL); some of them also tell the
  download governor to pause the whole pool (:data:`PAUSE_REASONS`);
* local: our own processing refused the result (ffmpeg failed, the clip did
  not pass the checks).

``unknown`` keeps the full message; it is treated as transient and never
silently reported as ``unavailable``.
"""

from __future__ import annotations

# permanent
UNAVAILABLE = "unavailable"
PRIVATE = "private"
TERMINATED = "terminated"
COPYRIGHT = "copyright"
MEMBERS_ONLY = "members-only"
AGE_GATED = "age-gated"
GEO_BLOCKED = "geo-blocked"
DRM = "drm"
NOT_FOUND = "not-found"

# transient
RATE_LIMITED = "rate-limited"
BOT_CHECK = "bot-check"
HTTP_429 = "http-429"
HTTP_403 = "http-403"
HTTP_5XX = "http-5xx"
NETWORK = "network"
EXTRACTOR_BROKEN = "extractor-broken"
FORMAT_403 = "format-403"
# the session's address is blocked (YouTube's "Sign in to confirm you're not a bot" after the
# IP was flagged, or an HTTP 403 on every watch page): pause that session only
IP_BLOCKED = "ip-blocked"
# configuration errors: the same on every clip until the setup changes (the runner stops
# after the first few attempts, with the fix: :data:`CONFIG_FIXES`)
JS_MISSING = "js-missing"  # no JavaScript runtime or challenge solver (yt-dlp-ejs): formats missing
FORMAT_UNAVAILABLE = "format-unavailable"  # "Requested format is not available": download.format matches nothing
SABR_ONLY = "sabr-only"  # YouTube serves the session's player clients only by SABR streaming

# local
FFMPEG_ERROR = "ffmpeg-error"
QC_REJECT = "qc-reject"
# local, for clips read from a local origin (download.origins): the bytes do not decode, the
# clip is shorter than its segment, or it is digital silence; and a clip that no origin holds
# while youtube is not among the origins (looked up again only when the origins change)
CORRUPT = "corrupt"
SHORT = "short"
SILENT = "silent"
IN_NO_ORIGIN = "in-no-origin"

UNKNOWN = "unknown"

PERMANENT: frozenset[str] = frozenset({UNAVAILABLE, PRIVATE, TERMINATED, COPYRIGHT, MEMBERS_ONLY, AGE_GATED, GEO_BLOCKED, DRM, NOT_FOUND})
CONFIG: frozenset[str] = frozenset({JS_MISSING, FORMAT_UNAVAILABLE, SABR_ONLY})
TRANSIENT: frozenset[str] = (
    frozenset({RATE_LIMITED, BOT_CHECK, HTTP_429, HTTP_403, HTTP_5XX, NETWORK, EXTRACTOR_BROKEN, FORMAT_403, IP_BLOCKED, UNKNOWN}) | CONFIG
)
ORIGIN_REASONS: frozenset[str] = frozenset({CORRUPT, SHORT, SILENT, IN_NO_ORIGIN})
LOCAL: frozenset[str] = frozenset({FFMPEG_ERROR, QC_REJECT}) | ORIGIN_REASONS
ALL: frozenset[str] = PERMANENT | TRANSIENT | LOCAL

# Reasons that mean "YouTube is throttling this session": the runner pauses that session.
PAUSE_REASONS: frozenset[str] = frozenset({RATE_LIMITED, BOT_CHECK, HTTP_429, IP_BLOCKED})
# What to suggest when a session pauses for a reason (appended to the log line).
PAUSE_HINTS: dict[str, str] = {
    IP_BLOCKED: "; YouTube blocks this session's address: give it a proxy (download.sessions[].proxy) or an account's cookies",
    BOT_CHECK: "; YouTube wants a signed-in session: give this session an account's cookies, or a proxy",
}


# The fix of each configuration error (the runner's message when it stops for one).
CONFIG_FIXES: dict[str, str] = {
    JS_MISSING: (
        "yt-dlp found no JavaScript runtime or challenge solver, so YouTube's formats cannot be unlocked: install deno"
        " (or set download.js_runtimes: [node] etc.) and 'pip install -U yt-dlp-ejs', or allow the solver download with"
        " download.remote_components: [ejs:github]; 'audioset-fewshot doctor' checks all three"
    ),
    FORMAT_UNAVAILABLE: (
        "yt-dlp says 'Requested format is not available' for every clip: download.format matches none of the formats offered"
        " (the default is bestaudio[ext=m4a]/bestaudio); also check download.extractor_args player_client and 'audioset-fewshot doctor'"
    ),
    SABR_ONLY: (
        "YouTube serves this session's player clients only by SABR streaming, which yt-dlp cannot read: choose other clients,"
        " e.g. download.extractor_args: {youtube: {player_client: [mweb]}} (with a PO-token provider plugin), or tv"
    ),
}


def is_config(reason: str | None) -> bool:
    """True for reasons that are the same on every clip until the setup changes."""
    return reason in CONFIG


def is_permanent(reason: str | None) -> bool:
    """True for reasons where retrying cannot help (the video is gone or closed to us)."""
    return reason in PERMANENT


def is_transient(reason: str | None) -> bool:
    """True for reasons worth retrying later (includes ``unknown``)."""
    return reason in TRANSIENT


def should_pause(reason: str | None) -> bool:
    """True when the session should pause (rate limit, bot check, 429, a blocked address)."""
    return reason in PAUSE_REASONS
