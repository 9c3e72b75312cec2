"""Who is asking the demo server, and whether that session is over its budget.

YouTube limits a session, not a tool, and tells a session apart by its account
(the ``SID`` cookie) or, for a guest, by the address it comes from.  On
127.0.0.1 every client has the same address, so the demo server tells guests
apart by the proxy they came through: the ``Via`` header a proxy adds
(``Via: 1.1 proxy-a``, RFC 9110).  :func:`session_of` gives the identity:
``sid:<value>``, ``via:<proxy name>`` or ``guest``.

:class:`SessionBudgets` holds a budget per identity (``max_watches`` watch
requests in any ``window_s`` seconds: YouTube's "about 300 an hour", at test
scale); a watch request beyond it is answered like YouTube's rate limit (the
``rate-limited`` playability fault: "This content isn't available, try again
later."), and the identity stays limited until its window has room again.  An
identity in ``blocked`` gets the ``ip-blocked`` answer on every watch request
(an address YouTube has flagged).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie

GUEST = "guest"


@dataclass(frozen=True)
class Budget:
    """At most ``max_watches`` watch requests in any ``window_s`` seconds."""

    max_watches: int
    window_s: float


def session_of(cookie_header: str | None, via_header: str | None) -> str:
    """The identity of a request: its account (``sid:VALUE`` of the SID cookie), else the
    last proxy it came through (``via:NAME``), else ``guest``."""
    if cookie_header:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(cookie_header)
        except CookieError:
            jar = SimpleCookie()
        if "SID" in jar and jar["SID"].value:
            return f"sid:{jar['SID'].value}"
    if via_header:
        last = via_header.split(",")[-1].split()
        if len(last) >= 2:
            return f"via:{last[1]}"
    return GUEST


class SessionBudgets:
    """Per-identity budgets (``budgets[identity]``, or ``default`` for every identity
    not named) and the watch requests each identity made, in a sliding window."""

    def __init__(self, budgets: Mapping[str, Budget] | None = None, *, default: Budget | None = None, blocked: Iterable[str] = (),
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.budgets = dict(budgets or {})
        self.blocked = frozenset(blocked)
        self.default = default
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, deque[float]] = {}
        self.refused: dict[str, int] = {}

    def budget(self, identity: str) -> Budget | None:
        return self.budgets.get(identity, self.default)

    def fault(self, identity: str) -> str | None:
        """The answer a watch request of ``identity`` gets: ``ip-blocked`` for a blocked
        identity, ``rate-limited`` over its budget, None to serve it (and count it)."""
        if identity in self.blocked:
            return "ip-blocked"
        return None if self.admit(identity) else "rate-limited"

    def admit(self, identity: str) -> bool:
        """Count a watch request of ``identity``; False when it is over its budget (the
        refused request does not use the budget up further)."""
        b = self.budget(identity)
        with self._lock:
            now = self._clock()
            seen = self._seen.setdefault(identity, deque())
            if b is not None:
                while seen and seen[0] <= now - b.window_s:
                    seen.popleft()
                if len(seen) >= b.max_watches:
                    self.refused[identity] = self.refused.get(identity, 0) + 1
                    return False
            seen.append(now)
            return True
