"""The demo server's faults, defined once: what each fault name does and which change the media file.

Playability faults answer the watch page with YouTube's own reason texts; page
and media HTTP faults answer with a status code; media-body faults damage the
transfer or the file.  :data:`SOURCE_FAULTS` are the ones that change the media
file itself (the media cache, the player response and the demo's media
preparation use them); ``_RANDOM_FAULTS`` are drawn at a server's ``fault_rate``.
"""

from __future__ import annotations

from typing import Any

# Playability faults: the watch endpoint answers 200 with a non-OK playabilityStatus,
# using YouTube's own reason texts.
PLAYABILITY_FAULTS: dict[str, dict[str, Any]] = {
    "unavailable": {"status": "ERROR", "reason": "Video unavailable", "subreason": "This video has been removed by the uploader"},
    "private": {"status": "LOGIN_REQUIRED", "reason": "Private video", "subreason": "Sign in if you've been granted access to this video"},
    "terminated": {
        "status": "ERROR",
        "reason": "Video unavailable",
        "subreason": "This video is no longer available because the YouTube account associated with this video has been terminated.",
    },
    "copyright": {
        "status": "ERROR",
        "reason": "Video unavailable",
        "subreason": "This video is no longer available due to a copyright claim by Demo Rights Holder",
    },
    "members-only": {
        "status": "UNPLAYABLE",
        "reason": "Join this channel to get access to members-only content like this video, and other exclusive perks.",
    },
    "age-gated": {"status": "LOGIN_REQUIRED", "reason": "Sign in to confirm your age", "subreason": "This video may be inappropriate for some users."},
    "geo-blocked": {"status": "UNPLAYABLE", "reason": "Video unavailable", "subreason": "The uploader has not made this video available in your country"},
    "bot-check": {
        "status": "LOGIN_REQUIRED",
        "reason": "Sign in to confirm you\u2019re not a bot",
        "subreason": "This helps protect our community. Learn more",
    },
    "rate-limited": {"status": "UNPLAYABLE", "reason": "This content isn't available, try again later."},
}
# HTTP status faults on the watch endpoint.
PAGE_HTTP_FAULTS: dict[str, int] = {"page-403": 403, "page-404": 404, "page-429": 429, "page-500": 500, "page-503": 503}
# HTTP status faults on the media endpoint.
MEDIA_HTTP_FAULTS: dict[str, int] = {"media-403": 403, "media-404": 404, "media-429": 429, "media-500": 500, "media-503": 503}
# Faults in the media body or the audio itself.
#   stall: send part of the body, then nothing (until the client gives up or the server stops)
#   truncated: every media response ends after a third of the bytes it announced
#   corrupt: seeded garbage bytes instead of the encoded audio
#   silence: the source is digital silence
#   short: the source is SHORT_SOURCE_S long (shorter than any 10 s segment)
#   no-seek: range requests that do not start at byte 0 get 416 (a server that cannot seek)
MEDIA_BODY_FAULTS = ("stall", "truncated", "corrupt", "silence", "short", "no-seek")
FAULTS: frozenset[str] = frozenset(PLAYABILITY_FAULTS) | frozenset(PAGE_HTTP_FAULTS) | frozenset(MEDIA_HTTP_FAULTS) | frozenset(MEDIA_BODY_FAULTS)

# The faults that change the media file itself (the rest are answers of the server): the
# one set the media cache, the player response and the demo's media preparation use.
SOURCE_FAULTS: frozenset[str] = frozenset({"silence", "short", "corrupt"})
# Faults drawn at ``fault_rate``: (name, weight, sticky).  Sticky faults hit every
# request for the ID (the video is gone); the others hit only the first request of
# their kind, so a retry succeeds, as with YouTube's transient errors.
_STICKY_WEIGHTS = {"unavailable": 0.30, "private": 0.18, "terminated": 0.08, "copyright": 0.05, "age-gated": 0.05, "geo-blocked": 0.04,
                   "members-only": 0.02, "silence": 0.03, "short": 0.03}  # fmt: skip
_TRANSIENT_WEIGHTS = {"page-503": 0.07, "media-500": 0.07, "media-403": 0.05, "truncated": 0.03}
_RANDOM_FAULTS: tuple[tuple[str, float, bool], ...] = tuple((name, w, True) for name, w in _STICKY_WEIGHTS.items()) + tuple(
    (name, w, False) for name, w in _TRANSIENT_WEIGHTS.items()
)


def _source_fault(fault: str | None) -> str | None:
    """The part of ``fault`` that shapes the media file (see :data:`SOURCE_FAULTS`)."""
    return fault if fault in SOURCE_FAULTS else None


def fault_names() -> list[str]:
    """Every fault name the server understands, sorted."""
    return sorted(FAULTS)
