"""The global rate governor shared by all download workers.

YouTube's bound is a per-session budget (about 300 extractions per hour per
address), not bandwidth.  Every worker calls :meth:`RateGovernor.acquire`
before an extraction; the governor hands out permits from a token bucket
(``max_per_hour``; ``None`` or 0 = unlimited) no closer together than
``min_interval_s``.  On a rate-limit / bot-check / 429 signal the runner calls
:meth:`RateGovernor.pause`: no permit is handed out until the pause ends
(``pause_s``, doubling up to ``max_pause_s``); the pool resumes by itself.

The budget belongs to the host, not to the tool: :func:`host_rate` resolves
the ``"auto"`` settings (the defaults) to YouTube's budget for a remote host
and to no budget for a loopback host (the offline demo server on 127.0.0.1,
which has no session budget to protect).  A number set by the user is kept
for any host.

The clock and the sleep are injectable so the logic is testable without
waiting; the runner uses ``time.monotonic`` and a condition variable.
"""

from __future__ import annotations

import ipaddress
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

AUTO: Literal["auto"] = "auto"
# YouTube's per-session budget (2026): about 300 extractions per hour per address.
YOUTUBE_MAX_PER_HOUR = 300.0
YOUTUBE_MIN_INTERVAL_S = 1.0

Rate = float | Literal["auto"] | None


def is_loopback_host(base_url: str) -> bool:
    """True when ``base_url`` points at this machine (127.0.0.0/8, ::1, localhost)."""
    host = urllib.parse.urlsplit(base_url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_rate(max_per_hour: Rate, min_interval_s: float | Literal["auto"], *, base_url: str) -> tuple[float | None, float]:
    """``(max_per_hour, min_interval_s)`` for the host of ``base_url``: an ``"auto"``
    setting becomes YouTube's budget (300 per hour, 1 s apart) for a remote host and
    no limit for a loopback host; a number (or None = unlimited) is kept as given."""
    local = is_loopback_host(base_url)
    rate = (None if local else YOUTUBE_MAX_PER_HOUR) if max_per_hour == AUTO else max_per_hour
    interval = (0.0 if local else YOUTUBE_MIN_INTERVAL_S) if min_interval_s == AUTO else min_interval_s
    return (float(rate) if rate else None), float(interval)


class GovernorClosed(Exception):
    """Raised in a worker waiting for a permit when the run is stopping (internal)."""


class GovernorPaused(GovernorClosed):
    """Raised in a worker waiting for a permit of a paused session that asked not to wait
    the pause out (the runner gives its clip to another session)."""


@dataclass(frozen=True)
class Permit:
    """What a worker got: the pause epoch it started in (a rate-limit result from an
    attempt started before the current pause belongs to that same pause)."""

    epoch: int
    granted_at: float


class RateGovernor:
    def __init__(
        self,
        *,
        max_per_hour: float | None = 300.0,
        min_interval_s: float = 1.0,
        pause_s: float = 3600.0,
        max_pause_s: float = 14400.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.rate_per_s = (float(max_per_hour) / 3600.0) if max_per_hour else 0.0
        self.min_interval_s = max(0.0, float(min_interval_s))
        self.pause_s = max(0.0, float(pause_s))
        self.max_pause_s = max(self.pause_s, float(max_pause_s))
        self._clock = clock
        self._wall = wall_clock
        self._cond = threading.Condition()
        # a bucket of capacity 1 token: a steady rate, no burst after idling (a burst is
        # exactly what trips YouTube's budget)
        self._capacity = 1.0
        self._tokens = 1.0
        self._last_fill = clock()
        self._last_grant: float | None = None
        self._paused_until = 0.0
        self._pause_count = 0
        self._epoch = 0
        self._closed = False
        self.granted = 0

    # -- state ----------------------------------------------------------------------------
    @property
    def pauses(self) -> int:
        return self._pause_count

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def unlimited(self) -> bool:
        return self.rate_per_s <= 0 and self.min_interval_s <= 0

    def seconds_per_extraction(self) -> float:
        """Steady-state seconds between two extractions (0 = unlimited)."""
        per = 1.0 / self.rate_per_s if self.rate_per_s > 0 else 0.0
        return max(per, self.min_interval_s)

    def paused_for(self) -> float:
        """Seconds left in the current pause (0 when not paused)."""
        with self._cond:
            return max(0.0, self._paused_until - self._clock())

    def paused_until_text(self) -> str | None:
        """``"paused until HH:MM"`` (local time) while paused, else None."""
        left = self.paused_for()
        if left <= 0:
            return None
        return "paused until " + time.strftime("%H:%M", time.localtime(self._wall() + left))

    # -- permits --------------------------------------------------------------------------
    def _refill(self, now: float) -> None:
        if self.rate_per_s > 0:
            self._tokens = min(self._capacity, self._tokens + (now - self._last_fill) * self.rate_per_s)
        self._last_fill = now

    def wait_time(self) -> float:
        """Seconds until a permit could be granted (0 = now)."""
        with self._cond:
            return self._wait_time_locked(self._clock())

    def _wait_time_locked(self, now: float) -> float:
        waits = [self._paused_until - now]
        if self.rate_per_s > 0:
            self._refill(now)
            if self._tokens < 1.0:
                waits.append((1.0 - self._tokens) / self.rate_per_s)
        if self.min_interval_s > 0 and self._last_grant is not None:
            waits.append(self._last_grant + self.min_interval_s - now)
        return max(0.0, *waits)

    def try_acquire(self) -> Permit | None:
        """A permit now, or None."""
        with self._cond:
            if self._closed:
                raise GovernorClosed
            now = self._clock()
            if self._wait_time_locked(now) > 0:
                return None
            return self._grant(now)

    def _grant(self, now: float) -> Permit:
        if self.rate_per_s > 0:
            self._tokens -= 1.0
        self._last_grant = now
        self.granted += 1
        return Permit(self._epoch, now)

    def acquire(self, *, timeout_s: float | None = None, wait_out_pause: bool = True) -> Permit:
        """Block until a permit is granted; raise GovernorClosed when the run stops, or
        TimeoutError after ``timeout_s``; with ``wait_out_pause=False``, raise
        GovernorPaused instead of waiting while a pause is under way."""
        deadline = None if timeout_s is None else self._clock() + timeout_s
        with self._cond:
            while True:
                if self._closed:
                    raise GovernorClosed
                now = self._clock()
                if not wait_out_pause and self._paused_until > now:
                    raise GovernorPaused
                wait = self._wait_time_locked(now)
                if wait <= 0:
                    return self._grant(now)
                if deadline is not None:
                    if now >= deadline:
                        raise TimeoutError("no extraction permit within the time limit")
                    wait = min(wait, deadline - now)
                # bounded slices so that a changed clock or a close() is seen promptly
                self._cond.wait(timeout=min(wait, 1.0))

    # -- pauses ---------------------------------------------------------------------------
    def pause(self, *, epoch: int | None = None) -> float | None:
        """Pause the whole pool after a rate-limit signal from an attempt started in
        ``epoch``.  Returns the pause length in seconds, or None when that signal belongs
        to a pause already under way (several workers hit the same limit)."""
        with self._cond:
            if epoch is not None and epoch != self._epoch:
                return None
            now = self._clock()
            length = min(self.max_pause_s, self.pause_s * (2**self._pause_count))
            self._pause_count += 1
            self._epoch += 1
            self._paused_until = max(self._paused_until, now + length)
            # after a pause, start again with one permit (no burst)
            self._tokens = min(self._tokens, 1.0)
            self._cond.notify_all()
            return length

    def close(self) -> None:
        """Wake every waiting worker with GovernorClosed (the run is stopping)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
