"""YouTube sessions: who asks, with which cookies, address and budget.

YouTube limits a *session*, not a tool: about 300 extractions per hour for a guest
and about 2,000 for a signed-in account, then "rate-limited for up to an hour".
``download.sessions`` lists several sessions (each its own cookies or browser,
proxy, source address and ``max_per_hour``); without it there is one session,
``default``, made of ``download.cookies``, ``download.proxy``, ... (today's
behaviour).

* :func:`resolve_sessions` turns the download options into frozen
  :class:`SessionSpec` records: the session's name, budget (``"auto"`` resolved:
  300 guest, 2,000 with cookies, none for a loopback host) and
  :meth:`SessionSpec.fetch_kwargs`, the keywords ``fetch_clip`` takes for it
  (its cookies, its proxy and the yt-dlp parameters: ``download.ytdlp`` plus the
  first-class fields, :func:`ytdlp_params`).
* :class:`Session` is a spec with its own :class:`~.governor.RateGovernor`: its
  own permits, its own pause, its own pause count, and ``retired`` once it was
  rate-limited again after ``max_pauses`` pauses.
* :class:`SessionPool` hands out the session for the next clip
  (:meth:`SessionPool.pick`): a smooth weighted round-robin over the sessions
  that are neither paused nor retired, weighted by their budgets, so work is
  spread fairly (a session with twice the budget gets every other pick) and
  deterministically (the k-th pick depends only on the sessions, their weights
  and which of them were usable at the first k picks).  A rate-limit or
  bot-check signal (:meth:`SessionPool.rate_limited`) pauses that session only;
  the run stops (:attr:`SessionPool.exhausted`) only when every session is
  retired.

Secrets (cookies, proxy passwords, tokens) go to the fetcher and nowhere else:
:meth:`SessionSpec.describe` shows a session without them, and :func:`scrub`
removes their values from any text (a yt-dlp message) before it is stored or
logged.
"""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from audioset_fewshot.config import REDACTED, DownloadOptions, is_secret_key, redact_url, redacted_keys
from audioset_fewshot.download.governor import AUTO, Permit, Rate, RateGovernor, host_rate, is_loopback_host
from audioset_fewshot.errors import UsageError

DEFAULT_SESSION = "default"
GUEST_MAX_PER_HOUR = 300.0  # YouTube's budget of a guest session (2026)
SIGNED_IN_MAX_PER_HOUR = 2000.0  # ... and of a session with an account's cookies


@dataclass(frozen=True)
class SessionSpec:
    """One session, resolved: its budget is a number (or None = unlimited)."""

    name: str
    cookies: str | None = None
    cookies_from_browser: str | None = None
    proxy: str | None = None
    source_address: str | None = None
    max_per_hour: float | None = None
    min_interval_s: float = 0.0
    # the yt-dlp parameters of every session (download.ytdlp + first-class fields), and this
    # session's own (source_address) on top: :func:`ytdlp_params`
    ytdlp: Mapping[str, Any] = field(default_factory=dict)
    plugin_dirs: tuple[str, ...] = ()
    # on a Dask cluster (cluster.engine: dask): the worker hosting the session, by name or resource
    worker: str | None = None
    resource: str | None = None

    @property
    def signed_in(self) -> bool:
        return bool(self.cookies or self.cookies_from_browser)

    def fetch_kwargs(self) -> dict[str, Any]:
        """The keywords of ``fetch_clip`` that belong to this session."""
        return {
            "cookies": self.cookies,
            "cookies_from_browser": self.cookies_from_browser,
            "proxy": self.proxy,
            "ytdlp_params": dict(self.ytdlp),
            "plugin_dirs": self.plugin_dirs,
        }

    def describe(self) -> str:
        """The session in one line, without secrets (for logs and ``doctor``)."""
        who = "cookies" if self.cookies else f"browser {self.cookies_from_browser}" if self.cookies_from_browser else "guest"
        parts = [f"session {self.name}: {who}"]
        if self.proxy:
            parts.append(f"proxy {redact_url(self.proxy)}")
        if self.source_address:
            parts.append(f"source address {self.source_address}")
        parts.append("no budget" if not self.max_per_hour else f"{self.max_per_hour:g} extractions/h")
        return ", ".join(parts)

    def secrets(self) -> frozenset[str]:
        """The secret values of this session (what :func:`scrub` removes from texts)."""
        out: set[str] = set()
        if self.cookies:
            out.add(self.cookies)
        if self.proxy:
            pw = urllib.parse.urlsplit(self.proxy).password
            if pw:
                out |= {pw, urllib.parse.unquote(pw)}
        out |= _secret_values(self.ytdlp, secret=False)
        return frozenset(s for s in out if len(s) >= 4)


def _secret_values(value: Any, *, secret: bool) -> set[str]:
    out: set[str] = set()
    if isinstance(value, str):
        if secret:
            out.add(value)
        pw = urllib.parse.urlsplit(value).password if "://" in value else None
        if pw:
            out |= {pw, urllib.parse.unquote(pw)}
    elif isinstance(value, (list, tuple)):
        for v in value:
            out |= _secret_values(v, secret=secret)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            out |= _secret_values(v, secret=secret or is_secret_key(str(k)))
    return out


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value replaced by the redaction marker."""
    for s in sorted(secrets, key=len, reverse=True):
        if s and s in text:
            text = text.replace(s, REDACTED)
    return text


def _js_runtimes(items: Sequence[str]) -> dict[str, dict[str, str]]:
    """``["deno", "node:/usr/bin/node"]`` -> yt-dlp's ``{"deno": {}, "node": {"path": ...}}``."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        name, _, path = item.partition(":")
        out[name.lower()] = {"path": path} if path else {}
    return out


def ytdlp_params(o: DownloadOptions) -> dict[str, Any]:
    """The YoutubeDL parameters every session passes: ``download.ytdlp`` as it is, then
    the first-class fields under yt-dlp's names (``sleep_requests`` ->
    ``sleep_interval_requests``, ``js_runtimes`` -> ``{runtime: {path}}``, ...).  The
    fetcher sets its own keys first; config validation refuses a clash
    (:data:`~audioset_fewshot.config.YTDLP_OWN_KEYS`)."""
    params: dict[str, Any] = dict(o.ytdlp)
    if o.extractor_args:
        params["extractor_args"] = {k.lower(): {a: list(v) for a, v in args.items()} for k, args in o.extractor_args.items()}
    if o.js_runtimes:
        params["js_runtimes"] = _js_runtimes(o.js_runtimes)
    if o.remote_components:
        params["remote_components"] = list(o.remote_components)
    if o.impersonate:
        params["impersonate"] = o.impersonate  # a string: the fetcher makes yt-dlp's ImpersonateTarget
    if o.sleep_requests:
        params["sleep_interval_requests"] = float(o.sleep_requests)
    return params


def unknown_ytdlp_keys(keys: Iterable[str]) -> list[str]:
    """The keys of ``download.ytdlp`` that the installed yt-dlp does not document as
    YoutubeDL parameters, each with the closest documented one (a typo is passed on and
    silently ignored by yt-dlp: say so)."""
    keys = list(keys)
    if not keys:
        return []
    import re

    import yt_dlp

    from audioset_fewshot.errors import closest

    documented = set(re.findall(r"^    ([a-z_][a-z0-9_]*):", yt_dlp.YoutubeDL.__doc__ or "", re.M))
    out = []
    for key in keys:
        if documented and key not in documented:
            sugg = closest(key, sorted(documented))
            out.append(f"{key}" + (f" (did you mean {sugg[0]}?)" if sugg else ""))
    return out


def player_clients(o: DownloadOptions) -> tuple[str, ...]:
    """The player clients asked for (``extractor_args.youtube.player_client``); empty =
    yt-dlp's defaults."""
    for key, args in o.extractor_args.items():
        if key.lower() == "youtube":
            return tuple(args.get("player_client", ()))
    return ()


def _budget(max_per_hour: Rate, *, signed_in: bool, base_url: str) -> float | None:
    if max_per_hour == AUTO:
        if is_loopback_host(base_url):
            return None
        return SIGNED_IN_MAX_PER_HOUR if signed_in else GUEST_MAX_PER_HOUR
    return float(max_per_hour) if max_per_hour else None


def resolve_sessions(o: DownloadOptions) -> tuple[SessionSpec, ...]:
    """The sessions of the download options (see the module docstring), in order.

    Raises :class:`UsageError` when a secret of the config was redacted when it was
    saved in a root (it cannot be used: give the config file again)."""
    hidden = redacted_keys_of(o)
    if hidden:
        raise UsageError(
            f"config key '{hidden[0]}' holds a secret that was left out when the config was saved in the dataset root"
            " (secrets are never stored): give the config file that has it again with -c FILE"
        )
    common = ytdlp_params(o)
    dirs = tuple(o.plugin_dirs)
    _, min_interval_s = host_rate(AUTO, o.min_interval_s, base_url=o.base_url)
    if not o.sessions:
        # the one session keeps download.max_per_hour ("auto": a guest's budget, whatever the cookies)
        rate = _budget(o.max_per_hour, signed_in=False, base_url=o.base_url)
        mine = {**common, **({"source_address": o.source_address} if o.source_address else {})}
        return (SessionSpec(DEFAULT_SESSION, o.cookies, o.cookies_from_browser, o.proxy, o.source_address, rate, min_interval_s, mine, dirs),)
    out = []
    for s in o.sessions:
        signed_in = bool(s.cookies or s.cookies_from_browser)
        mine = {**common, **({"source_address": s.source_address} if s.source_address else {})}
        rate = _budget(s.max_per_hour, signed_in=signed_in, base_url=o.base_url)
        out.append(SessionSpec(s.name, s.cookies, s.cookies_from_browser, s.proxy, s.source_address, rate, min_interval_s, mine, dirs, s.worker, s.resource))
    return tuple(out)


def redacted_keys_of(o: DownloadOptions) -> list[str]:
    """Keys of the download options that still hold a redaction marker."""
    from audioset_fewshot.config import Config

    return redacted_keys(Config(download=o))


def all_secrets(specs: Iterable[SessionSpec]) -> frozenset[str]:
    """Every secret value of ``specs`` (:meth:`SessionSpec.secrets`)."""
    out: set[str] = set()
    for s in specs:
        out |= s.secrets()
    return frozenset(out)


class Session:
    """A session at run time: its spec, its own governor (permits and pause), and
    whether it is retired (rate-limited again after ``max_pauses`` pauses)."""

    def __init__(self, spec: SessionSpec, *, pause_s: float, max_pause_s: float) -> None:
        self.spec = spec
        self.name = spec.name
        self.governor = RateGovernor(max_per_hour=spec.max_per_hour, min_interval_s=spec.min_interval_s, pause_s=pause_s, max_pause_s=max_pause_s)
        self.retired = False

    @property
    def paused(self) -> bool:
        return self.governor.paused_for() > 0

    @property
    def usable(self) -> bool:
        return not self.retired and not self.paused

    @property
    def weight(self) -> float:
        """The share of picks this session gets: its budget (equal shares when unlimited)."""
        return float(self.spec.max_per_hour or 1.0)

    def __repr__(self) -> str:
        state = "retired" if self.retired else "paused" if self.paused else "active"
        return f"Session({self.name!r}, {state}, pauses={self.governor.pauses})"


class SessionPool:
    """The sessions of one run and the rule that picks the session of the next clip."""

    def __init__(self, specs: Sequence[SessionSpec], *, pause_s: float = 3600.0, max_pause_s: float = 14400.0, max_pauses: int = 4) -> None:
        if not specs:
            raise UsageError("a download needs at least one session")
        self.sessions: tuple[Session, ...] = tuple(Session(s, pause_s=pause_s, max_pause_s=max_pause_s) for s in specs)
        self.by_name: dict[str, Session] = {s.name: s for s in self.sessions}
        self.max_pauses = max_pauses
        self.secrets = all_secrets(specs)
        self._credit = {s.name: 0.0 for s in self.sessions}
        self._lock = threading.Lock()

    @classmethod
    def from_options(cls, o: DownloadOptions) -> SessionPool:
        return cls(resolve_sessions(o), pause_s=o.pause_s, max_pause_s=o.max_pause_s, max_pauses=o.max_pauses)

    # -- choosing ----------------------------------------------------------------------------
    def pick(self) -> Session | None:
        """The session of the next clip (smooth weighted round-robin over the usable
        sessions), or None when every session is paused or retired."""
        with self._lock:
            usable = [s for s in self.sessions if s.usable]
            if not usable:
                return None
            total = sum(s.weight for s in usable)
            for s in usable:
                self._credit[s.name] += s.weight
            best = max(usable, key=lambda s: self._credit[s.name])  # the first on a tie: deterministic
            self._credit[best.name] -= total
            return best

    # -- state -------------------------------------------------------------------------------
    @property
    def exhausted(self) -> bool:
        """True when every session is retired: the run stops."""
        return all(s.retired for s in self.sessions)

    @property
    def pauses(self) -> int:
        return sum(s.governor.pauses for s in self.sessions)

    def combined_rate(self) -> tuple[float | None, float]:
        """``(max_per_hour, min_interval_s)`` of all sessions together (for estimates):
        the sum of the budgets (None when one is unlimited), the interval divided by
        the number of sessions."""
        rates = [s.spec.max_per_hour for s in self.sessions]
        total = None if any(not r for r in rates) else float(sum(r for r in rates if r))
        return total, min(s.spec.min_interval_s for s in self.sessions) / len(self.sessions)

    def resume_in_s(self) -> float:
        """Seconds until a paused session may be picked again (0 when one is usable now;
        inf when every session is retired)."""
        waits = [s.governor.paused_for() for s in self.sessions if not s.retired]
        return min(waits) if waits else float("inf")

    def rate_limited(self, session: Session, permit: Permit | None) -> float | None:
        """A rate-limit / bot-check signal from an attempt of ``session`` that got
        ``permit``: pause that session (returns the pause length in seconds), or retire it
        when it was paused ``max_pauses`` times already (returns None).  A signal from an
        attempt started before the session's current pause belongs to that pause (None)."""
        if permit is not None and permit.epoch != session.governor.epoch:
            return None
        if session.governor.pauses >= self.max_pauses:
            session.retired = True
            return None
        return session.governor.pause(epoch=None if permit is None else permit.epoch)

    def close(self) -> None:
        """Wake every worker waiting for a permit of any session (the run is stopping)."""
        for s in self.sessions:
            s.governor.close()

    def status_text(self) -> str:
        """``"a paused until 12:40, b active"`` when there are several sessions or one is
        paused; empty otherwise."""
        parts = []
        for s in self.sessions:
            if s.retired:
                parts.append(f"{s.name} stopped")
            elif (text := s.governor.paused_until_text()) is not None:
                parts.append(f"{s.name} {text}" if len(self.sessions) > 1 else text)
        return ", ".join(parts)
