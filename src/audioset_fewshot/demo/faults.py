"""The demo server's faults, defined once: what each fault name does and which change the media file,
and :class:`FaultTable`, which decides the fault of each request (set per ID, from
the catalog, drawn at a seeded rate, or a burst of rate-limit answers).

Playability faults answer the watch page with YouTube's own reason texts; page
and media HTTP faults answer with a status code; media-body faults damage the
transfer or the file.  :data:`SOURCE_FAULTS` are the ones that change the media
file itself (the media cache, the player response and the demo's media
preparation use them); ``_RANDOM_FAULTS`` are drawn at a server's ``fault_rate``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from audioset_fewshot.demo import signals
from audioset_fewshot.errors import UsageError

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
MEDIA_HTTP_FAULTS: dict[str, int] = {"media-403": 403, "media-404": 404, "media-429": 429, "media-500": 500, "media-503": 503, "media-403-once": 403}
# Faults that hit only the first request of their kind for the ID, even when set per ID
# (media-403-once: a media URL refused once, then served: a fresh extraction fixes it).
ONE_SHOT_FAULTS: frozenset[str] = frozenset({"media-403-once"})
# Faults in the streaming data of an OK watch answer (:mod:`.player`), each as yt-dlp meets it:
#   ip-blocked: the answer is for another video (yt-dlp: "All player responses are invalid.
#     Your IP is likely being blocked by Youtube")
#   js-challenge: every format URL is behind a signature challenge (signatureCipher), which the
#     demo extractor, like yt-dlp without a JS runtime, cannot solve
#   sabr-only: no format has a URL (SABR streaming only), except for the mweb player client
STREAMING_FAULTS = ("ip-blocked", "js-challenge", "sabr-only")
# Faults in the media body or the audio itself.
#   stall: send part of the body, then nothing (until the client gives up or the server stops)
#   truncated: every media response ends after a third of the bytes it announced
#   corrupt: seeded garbage bytes instead of the encoded audio
#   silence: the source is digital silence
#   short: the source is SHORT_SOURCE_S long (shorter than any 10 s segment)
#   no-seek: range requests that do not start at byte 0 get 416 (a server that cannot seek)
#   ignore-range: the Range header is ignored: every media request gets 200 and the whole file
MEDIA_BODY_FAULTS = ("stall", "truncated", "corrupt", "silence", "short", "no-seek", "ignore-range")
FAULTS: frozenset[str] = (
    frozenset(PLAYABILITY_FAULTS) | frozenset(PAGE_HTTP_FAULTS) | frozenset(MEDIA_HTTP_FAULTS) | frozenset(MEDIA_BODY_FAULTS) | frozenset(STREAMING_FAULTS)
)

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


def _is_watch_fault(fault: str) -> bool:
    return fault in PLAYABILITY_FAULTS or fault in PAGE_HTTP_FAULTS or fault in STREAMING_FAULTS


_FAULT_STREAM = 201


class FaultTable:
    """Which fault a request meets: set per ID (:meth:`set`), else the catalog's
    (``catalog_fault(ytid)``), else drawn for the ID at ``fault_rate`` (seeded), and a
    queued burst of watch-page faults (:meth:`burst`) before all of them.  Thread-safe."""

    def __init__(self, *, seed: int, fault_rate: float, catalog_fault: Callable[[str], str | None]) -> None:
        if not 0.0 <= fault_rate <= 1.0:
            raise UsageError(f"fault_rate must be between 0 and 1, got {fault_rate}")
        self.seed = int(seed)
        self.fault_rate = float(fault_rate)
        self._catalog_fault = catalog_fault
        self._lock = threading.Lock()
        self._forced: dict[str, str | None] = {}
        self._transient_used: set[tuple[str, str]] = set()
        self._burst_left = 0
        self._burst_fault = "rate-limited"

    def set(self, ytid: str, fault: str | None) -> None:
        """Force ``fault`` for ``ytid`` (None: no fault, overriding the catalog and the rate)."""
        if fault is not None and fault not in FAULTS:
            raise UsageError(f"unknown fault {fault!r}; known faults: {', '.join(sorted(FAULTS))}")
        with self._lock:
            self._forced[ytid] = fault

    def burst(self, count: int, *, fault: str = "rate-limited") -> None:
        """The next ``count`` watch requests, whatever the ID, answer with ``fault``."""
        if not _is_watch_fault(fault):
            raise UsageError(f"rate_limit_burst needs a watch-page fault, got {fault!r}")
        with self._lock:
            self._burst_left = max(0, int(count))
            self._burst_fault = fault

    def configured(self, ytid: str) -> str | None:
        """The configured fault of ``ytid`` (forced, catalog, or drawn at ``fault_rate``)."""
        with self._lock:
            if ytid in self._forced:
                return self._forced[ytid]
        fault = self._catalog_fault(ytid)
        if fault is not None:
            return fault
        return self._drawn(ytid)[0]

    def active(self, ytid: str, kind: str) -> str | None:
        """The fault applying to this ``kind`` ('watch' | 'media') of request (consumes
        the burst and one-shot drawn faults)."""
        with self._lock:
            if kind == "watch" and self._burst_left > 0:
                self._burst_left -= 1
                return self._burst_fault
            forced = self._forced.get(ytid)
            if forced in ONE_SHOT_FAULTS:
                if ("watch" if _is_watch_fault(forced) else "media") != kind or (ytid, forced) in self._transient_used:
                    return None
                self._transient_used.add((ytid, forced))
                return forced
            if ytid in self._forced:
                return forced
        fault = self._catalog_fault(ytid)
        if fault is not None:
            return fault
        name, sticky = self._drawn(ytid)
        if name is None or sticky:
            return name
        if ("watch" if _is_watch_fault(name) else "media") != kind:
            return None
        with self._lock:
            if (ytid, name) in self._transient_used:
                return None
            self._transient_used.add((ytid, name))
        return name

    def _drawn(self, ytid: str) -> tuple[str | None, bool]:
        if self.fault_rate <= 0.0:
            return None, True
        rng = np.random.default_rng([self.seed, _FAULT_STREAM, signals.stable_int(ytid)])
        if rng.random() >= self.fault_rate:
            return None, True
        weights = np.array([w for _, w, _ in _RANDOM_FAULTS])
        i = int(rng.choice(len(_RANDOM_FAULTS), p=weights / weights.sum()))
        return _RANDOM_FAULTS[i][0], _RANDOM_FAULTS[i][2]
