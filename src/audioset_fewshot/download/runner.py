"""The download runner: a bounded pool of workers walking down the plan.

``run_download(plan, root, options)`` takes, for every class, candidates in the
plan's rank order until the class holds its target, never more: at most
``target - obtained - in_flight - waiting`` clips of a class are in flight, so
the final set is the first ``target`` obtainable candidates of each class,
whatever the timing, the number of workers or the interruptions.

* Only the main thread writes the ledger; workers return results.  Each result
  is committed before the next clip is started.
* Transient failures are retried with exponential backoff and seeded jitter, up
  to ``retries`` times per run; permanent ones are never retried unless
  ``retry_failed``.
* Sessions (:mod:`.sessions`): every clip is fetched by one session, picked on
  the main thread when the clip is submitted (a weighted round-robin over the
  sessions that are neither paused nor retired); each session has its own
  :class:`~audioset_fewshot.download.governor.RateGovernor`.  A rate-limit /
  bot-check / 429 result pauses *that* session only; the interrupted clip is
  re-queued for any session and its attempt is not counted.  A session
  rate-limited again after ``max_pauses`` pauses is retired; the run stops with
  :class:`DownloadError` only when every session is.  Without
  ``download.sessions`` there is one session: the whole pool pauses, as before.
* Early abort: when the first ``early_abort`` attempts all fail with the same
  non-permanent reason, the run stops with an actionable message.
* Resume: a rerun skips ok and permanent rows, retries transient ones, removes
  stray temp files and files of clips the ledger does not hold as ok; an ok row
  whose file vanished, or whose file is not the one downloaded (its sha256,
  checked when its size or mtime changed: :mod:`.clipcheck`), is fetched again.
* One run per root (``fcntl.flock`` on ``ROOT/.lock``: :class:`LockError`); the
  run stops cleanly (:class:`DiskFullError`) before free disk falls below
  ``min_free``.
* Cookies go to the fetcher only (``fetch_clip`` hands yt-dlp the file's text in
  memory, so yt-dlp never rewrites it): never logged, copied or stored; the
  sessions' secrets (proxy passwords, tokens) are scrubbed from every message
  before it reaches the ledger (:func:`.sessions.scrub`).
"""

from __future__ import annotations

import bisect
import concurrent.futures as cf
import contextlib
import hashlib
import heapq
import logging
import shutil
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from audioset_fewshot._io import remove_stray_temps
from audioset_fewshot._progress import ProgressBar, progress_bar
from audioset_fewshot._root import RootLock
from audioset_fewshot.config import DownloadOptions, parse_size
from audioset_fewshot.download import reasons
from audioset_fewshot.download.clipcheck import damaged_clips
from audioset_fewshot.download.governor import AUTO, GovernorClosed, Permit, Rate, RateGovernor, host_rate
from audioset_fewshot.download.ledger import ClassTotals, ClipStatus, Ledger, class_status, utc_now
from audioset_fewshot.download.origins.registry import OriginSet
from audioset_fewshot.download.sessions import Session, SessionPool, scrub, unknown_ytdlp_keys
from audioset_fewshot.errors import DiskFullError, DownloadError, UsageError
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.validate import valid_youtube_id

if TYPE_CHECKING:
    from audioset_fewshot.download.fetch import ClipResult
    from audioset_fewshot.plan import SamplingPlan

logger = logging.getLogger(__name__)

_STREAM_BACKOFF = 0x5E7  # rng stream of the retry jitter
# ~bytes of a 10 s clip at 16 kHz, 16-bit mono: FLAC about 200-320 KB, WAV 320 KB
_BYTES_PER_SAMPLE = {"flac": 1.6, "wav": 2.0}

_cookie_warning_done = False

# a configuration error (reasons.CONFIG) on the first attempts, all alike: the run stops after this many
CONFIG_ABORT_AFTER = 3

ACTIONABLE = {
    reasons.EXTRACTOR_BROKEN: "yt-dlp cannot extract videos: update it (pip install -U yt-dlp yt-dlp-ejs) and check that a JS runtime (deno) is installed; 'audioset-fewshot doctor' checks both",
    reasons.FORMAT_403: "every media URL is refused (HTTP 403): update yt-dlp (pip install -U yt-dlp), or pass --cookies; 'audioset-fewshot doctor' helps",
    reasons.HTTP_403: "the site refuses every request (HTTP 403): update yt-dlp, check --base-url, or pass --cookies",
    reasons.NETWORK: "no network connection to the media host: check the connection, a proxy, or --base-url",
    reasons.HTTP_5XX: "the media host answers with server errors: try again later",
    reasons.FFMPEG_ERROR: "ffmpeg fails on every clip: check the ffmpeg binary with 'audioset-fewshot doctor'",
    reasons.UNKNOWN: "every attempt fails with an unknown error: rerun with --debug and see the ledger's messages",
    reasons.IP_BLOCKED: "YouTube blocks this address: give the session a proxy or an account's cookies (download.sessions)",
}


# ---------------------------------------------------------------------------------------
# records


@dataclass(frozen=True)
class ClassProgress:
    mid: str
    target: int
    obtained: int
    candidates: int
    failed_permanent: int
    failed_transient: int
    untried: int

    @property
    def shortfall(self) -> int:
        return max(0, self.target - self.obtained)


@dataclass(frozen=True)
class DownloadEstimate:
    clips_to_fetch: int
    seconds_per_extraction: float
    hours: float
    bytes: int

    def text(self) -> str:
        if self.seconds_per_extraction <= 0:
            rate = "governor rate unlimited"
        else:
            span = f"{self.hours:.1f} h" if self.hours >= 1 else f"{self.hours * 60:.0f} min"
            rate = f"about {span} at {3600 / self.seconds_per_extraction:.0f} extractions/h"
        return f"{self.clips_to_fetch} clips to fetch, {rate}, about {self.bytes / 1e6:.0f} MB of audio"


@dataclass(frozen=True)
class DownloadReport(ClassTotals):
    """What a run did and where each class stands (read from the ledger at the end)."""

    root: str
    plan_hash: str
    classes: tuple[ClassProgress, ...]
    failures_by_reason: Mapping[str, int]
    attempts: int
    requests: int
    obtained_now: int
    pauses: int
    elapsed_s: float
    estimate: DownloadEstimate | None = None
    attempt_reasons: Mapping[str, int] = field(default_factory=dict)
    # ok clips of the plan per origin ("youtube" or a local origin's name; download.origins)
    by_origin: Mapping[str, int] = field(default_factory=dict)
    # one line per session of a run on a cluster: "NAME on WORKER: state; N clips, P pauses"
    sessions: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        return all(c.obtained >= c.target for c in self.classes)

    def summary_lines(self) -> list[str]:
        lines = [
            f"obtained {self.obtained}/{self.target} clips in {len(self.classes)} classes"
            f" ({self.obtained_now} this run, {self.attempts} attempts, {self.requests} extractions, {self.pauses} pauses, {self.elapsed_s:.1f} s)"
        ]
        short = [c for c in self.classes if c.shortfall]
        shown = self.classes if len(self.classes) <= 20 else short
        for c in shown:
            lines.append(
                f"  {c.mid}: {c.obtained}/{c.target} (candidates {c.candidates}, failed {c.failed_permanent} permanent + {c.failed_transient} transient)"
            )
        if len(shown) < len(self.classes):
            lines.append(f"  ... and {len(self.classes) - len(shown)} complete classes")
        if self.by_origin and set(self.by_origin) != {"youtube"}:
            lines.append("clips by origin: " + ", ".join(f"{o} {n}" for o, n in self.by_origin.items()))
        lines += [f"session {s}" for s in self.sessions]
        if self.failures_by_reason:
            lines.append("failures by reason: " + ", ".join(f"{r} {n}" for r, n in sorted(self.failures_by_reason.items())))
        return lines


# ---------------------------------------------------------------------------------------
# helpers


def watch_url(base_url: str, ytid: str) -> str:
    """``{base_url}/watch?v={ytid}`` for a validated ID."""
    return f"{base_url.rstrip('/')}/watch?v={valid_youtube_id(ytid)}"


def bytes_per_clip(*, audio_format: str = "flac", sample_rate_hz: int = 16000, duration_s: float = 10.0) -> int:
    return int(_BYTES_PER_SAMPLE.get(audio_format, 2.0) * sample_rate_hz * duration_s)


def _jitter(seed: int, clip_id: str, attempt: int) -> float:
    key = int.from_bytes(hashlib.blake2b(clip_id.encode(), digest_size=8).digest(), "big")
    return float(np.random.default_rng([int(seed) & 0xFFFFFFFF, _STREAM_BACKOFF, key, attempt]).uniform(0.5, 1.5))


def backoff_delay(backoff_s: float, attempt: int, *, seed: int, clip_id: str) -> float:
    """Delay before retry number ``attempt`` (1-based): backoff_s * 2**(attempt-1) * jitter."""
    return backoff_s * (2 ** (attempt - 1)) * _jitter(seed, clip_id, attempt)


def warn_cookies_once() -> None:
    """The one-time warning when cookies are used (never their values)."""
    global _cookie_warning_done
    if _cookie_warning_done:
        return
    _cookie_warning_done = True
    logger.warning(
        "using YouTube cookies: the account they belong to may be rate-limited or banned; use a throwaway account,"
        " and export fresh cookies when YouTube rotates them (they are passed to yt-dlp only, never stored)"
    )


@dataclass
class _ClassState:
    mid: str
    target: int
    queue: deque[Any]
    obtained: int = 0
    in_flight: int = 0
    waiting: int = 0
    # takeable candidates ranked below an ok clip although the class has its target (a shard
    # stopped early, or a transient failure was skipped): fetched whatever ``need`` says, so
    # that the class ends with its first ``target`` obtainable candidates in rank order
    gaps: deque[Any] = field(default_factory=deque)
    ok_entries: list[Any] = field(default_factory=list)

    @property
    def need(self) -> int:
        return self.target - self.obtained - self.in_flight - self.waiting


@dataclass
class _Outcome:
    entry: Any
    permit: Permit | None
    started_at: str
    elapsed_s: float
    result: Any = None
    closed: bool = False
    session: Session | None = None
    origin_failures: list[Any] = field(default_factory=list)  # failed proofs at local origins before this result


def _default_fetch() -> Callable[..., ClipResult]:
    from audioset_fewshot.download.fetch import fetch_clip

    return fetch_clip


def estimate_download(plan: SamplingPlan, *, root: Path | str, max_per_hour: Rate = AUTO, min_interval_s: float | Literal["auto"] = AUTO, audio_format: str = "flac",
                      sample_rate_hz: int = 16000, base_url: str = "https://www.youtube.com") -> DownloadEstimate:  # fmt: skip
    """Clips still to fetch (from the ledger when there is one), hours at the governor's
    rate for the host of ``base_url`` (:func:`~.governor.host_rate`), and disk for them."""
    max_per_hour, min_interval_s = host_rate(max_per_hour, min_interval_s, base_url=base_url)
    layout = DatasetLayout(Path(root))
    done: Counter[str] = Counter()
    if layout.ledger_file.exists():
        with Ledger(layout.ledger_file, readonly=True) as led:
            for r in led.rows("ok"):
                done[r.owner_mid] += 1
    todo = 0
    for mid, entries in plan.by_class().items():
        todo += max(0, min(plan.target(mid), len(entries)) - done[mid])
    gov = RateGovernor(max_per_hour=max_per_hour, min_interval_s=min_interval_s)
    spe = gov.seconds_per_extraction()
    mean_dur = float(np.mean([e.end_s - e.start_s for e in plan.entries])) if plan.entries else 10.0
    return DownloadEstimate(
        todo, spe, todo * spe / 3600.0, todo * bytes_per_clip(audio_format=audio_format, sample_rate_hz=sample_rate_hz, duration_s=mean_dur)
    )


# ---------------------------------------------------------------------------------------
# the run


def fetch_kwargs(options: DownloadOptions, session: Session | None = None) -> dict[str, Any]:
    """The keywords a clip fetcher takes from the download options (``fetch_clip``'s):
    the clip's format and bounds, and the session's cookies, proxy and yt-dlp
    parameters (``session``; default: the first session of the options)."""
    spec = session.spec if session is not None else SessionPool.from_options(options).sessions[0].spec
    return {
        "sample_rate_hz": options.sample_rate_hz, "audio_format": options.audio_format, "format": options.format,
        "timeout_s": options.timeout_s, **spec.fetch_kwargs(),
    }  # fmt: skip


def run_download(
    plan: SamplingPlan,
    root: Path | str,
    options: DownloadOptions | None = None,
    *,
    fetch: Callable[..., ClipResult] | None = None,
) -> DownloadReport:
    """Download ``plan`` into ``root`` (resumable; see the module docstring) with the
    ``download`` section's options (``DownloadOptions(jobs=8)``; default: the defaults).

    ``options.origins``: ``download.origins``, the ordered list of places a clip may come from
    (default ``["youtube"]``; see :mod:`audioset_fewshot.download.origins`): a planned clip
    is read from the first local origin that holds it, without asking YouTube.

    ``fetch``: the clip fetcher (default ``download.fetch.fetch_clip``), called as
    ``fetch(url, start_s=, end_s=, dest=, **fetch_kwargs(options))`` and returning a
    ``ClipResult``.  On a Dask cluster: :func:`.distributed.download_on`.
    """
    return download_with(_Run, plan, root, options, fetch=fetch)


def download_with(make_run: Callable[..., _Run], plan: SamplingPlan, root: Path | str, options: DownloadOptions | None = None, *,
                  fetch: Callable[..., ClipResult] | None = None) -> DownloadReport:  # fmt: skip
    """The run around the fetching: checks, sessions, root lock, ledger sync and
    reconciliation, origins, estimate and report, with ``make_run(**keywords)`` (a
    :class:`_Run`) doing the fetching: the local pool (:func:`run_download`) or a Dask
    cluster (:mod:`.distributed`)."""
    o = options if options is not None else DownloadOptions()
    if o.jobs < 1:
        raise UsageError(f"jobs must be at least 1, got {o.jobs}")
    if o.cookies and o.cookies_from_browser:
        raise UsageError("give either cookies or cookies_from_browser, not both")
    min_free_bytes = parse_size(o.min_free, key="download.min_free")
    fetch = fetch or _default_fetch()
    sessions = SessionPool.from_options(o)  # refuses a secret redacted in a saved config
    if any(s.spec.signed_in for s in sessions.sessions):
        warn_cookies_once()
    unknown = unknown_ytdlp_keys(o.ytdlp)
    if unknown:
        logger.warning("download.ytdlp: %s not documented by this yt-dlp as YoutubeDL parameters; passed on, yt-dlp may ignore them", ", ".join(unknown))
    if len(sessions.sessions) > 1:
        logger.info("%d sessions: %s", len(sessions.sessions), "; ".join(s.spec.describe() for s in sessions.sessions))
    layout = DatasetLayout(Path(root))
    seed = int((plan.params or {}).get("seed", 0) or 0)
    origin_set = OriginSet(o.origins)
    origin_set.check_paths()  # a missing or unreadable origin stops the run before it touches the root
    t_start = time.monotonic()
    with RootLock(layout):
        removed = remove_stray_temps(layout.audio_dir)
        if removed:
            logger.info("removed %d stray temp files left by an interrupted run", len(removed))
        with Ledger(layout.ledger_file) as ledger:
            ledger.sync_plan(plan)
            _reconcile_files(ledger, layout)
            _reset_for_changed_origins(ledger, origin_set)
            # the hourly budget is the sessions' together ("auto": YouTube's per session for a remote host, none for the loopback demo server)
            max_per_hour, min_interval_s = sessions.combined_rate()
            estimate = estimate_download(plan, root=layout.root, max_per_hour=max_per_hour, min_interval_s=min_interval_s, audio_format=o.audio_format,
                                         sample_rate_hz=o.sample_rate_hz, base_url=o.base_url)  # fmt: skip
            logger.info("plan %s: %s", plan.content_hash[:12], estimate.text())
            run = make_run(plan=plan, ledger=ledger, layout=layout, sessions=sessions, fetch=fetch, options=o, min_free_bytes=min_free_bytes, seed=seed,
                       origins=origin_set)  # fmt: skip
            try:
                run.execute()
            finally:
                if origin_set.opened:
                    ledger.set_meta("origins", origin_set.ledger_meta(plan.entries))
                elif ledger.meta("origins") is None or origin_set.fingerprint() != ledger.meta("origins_fingerprint"):
                    ledger.set_meta("origins", origin_set.ledger_meta(None))
                ledger.set_meta("origins_fingerprint", origin_set.fingerprint())
                origin_set.close()
            return _report(plan, ledger, run, time.monotonic() - t_start, estimate, layout)


def _reconcile_files(ledger: Ledger, layout: DatasetLayout) -> None:
    """An ok row whose file is gone goes back to pending; a clip file that the ledger
    does not hold as ok (written, then killed before the commit) is removed."""
    reset: dict[str, str] = {}
    for r in ledger.rows():
        if r.status == "ok":
            if not r.path or not (layout.root / r.path).is_file():
                reset[r.clip_id] = "pending"
            continue
        for ext in ("flac", "wav"):
            p = layout.clip_path(r.owner_mid, r.ytid, r.start_s, ext=ext)
            if p.exists():
                p.unlink()
    if reset:
        logger.warning("%d clips marked ok have no file any more; they will be fetched again", len(reset))
    ok_rows = [r for r in ledger.rows("ok") if r.clip_id not in reset]
    for clip_id, rel, why in damaged_clips(layout, ok_rows):
        # the file is not what was downloaded (edited, truncated, replaced): fetch it again
        logger.warning("clip %s: %s is damaged (%s); it will be fetched again", clip_id, rel, why)
        p = layout.root / rel
        if p.is_symlink() or p.is_file():
            p.unlink()
        reset[clip_id] = "pending"
    if reset:
        ledger.update_many(reset)


def _reset_for_changed_origins(ledger: Ledger, origin_set: OriginSet) -> None:
    """Clips that failed at the local origins (in no origin, corrupt, short, silent) are
    looked up again only when ``download.origins`` changed since the last run."""
    if ledger.meta("origins_fingerprint") in (None, origin_set.fingerprint()):
        return
    again = {r.clip_id: "pending" for r in ledger.rows(["failed-permanent", "failed-transient"]) if r.reason in reasons.ORIGIN_REASONS}
    if again:
        logger.info("download.origins changed: %d clips no origin could give are looked up again", len(again))
        ledger.update_many(again)


def _report(plan: Any, ledger: Ledger, run: _Run, elapsed_s: float, estimate: DownloadEstimate, layout: DatasetLayout) -> DownloadReport:
    rows = {r.clip_id: r for r in ledger.rows(in_plan=True)}
    classes = []
    failures: Counter[str] = Counter()
    by_origin: Counter[str] = Counter(r.origin or "youtube" for r in rows.values() if r.status == "ok")
    per_class = class_status(rows.values())
    for mid, entries in plan.by_class().items():
        st = per_class.get(mid, Counter())
        for e in entries:
            r = rows.get(e.clip_id)
            if r is not None and r.status.failed:
                failures[r.reason or reasons.UNKNOWN] += 1
        classes.append(
            ClassProgress(
                mid, plan.target(mid), st[ClipStatus.OK], len(entries), st[ClipStatus.FAILED_PERMANENT], st[ClipStatus.FAILED_TRANSIENT], st[ClipStatus.PENDING]
            )
        )
    return DownloadReport(
        root=str(layout.root), plan_hash=plan.content_hash, classes=tuple(classes), failures_by_reason=dict(sorted(failures.items())),
        attempts=run.attempts, requests=run.extractions, obtained_now=run.obtained_now, pauses=run.pauses, elapsed_s=elapsed_s,
        estimate=estimate, attempt_reasons=dict(sorted(run.attempt_reasons.items())), by_origin=dict(sorted(by_origin.items())),
        sessions=run.session_lines(),
    )  # fmt: skip


class _Run:
    """State of one run; :meth:`execute` is the main loop (main thread only)."""

    def __init__(self, *, plan: SamplingPlan, ledger: Ledger, layout: DatasetLayout, sessions: SessionPool, fetch: Callable[..., ClipResult],
                 options: DownloadOptions, min_free_bytes: int, seed: int, origins: OriginSet | None = None) -> None:  # fmt: skip
        self.plan, self.ledger, self.layout, self.sessions, self.fetch = plan, ledger, layout, sessions, fetch
        o = options
        self.jobs, self.retries, self.retry_failed, self.backoff_s = o.jobs, o.retries, o.retry_failed, o.backoff_s
        self.max_pauses, self.early_abort, self.min_free_bytes, self.seed = o.max_pauses, o.early_abort, min_free_bytes, seed
        self.base_url, self.audio_format = o.base_url, o.audio_format
        # the keywords of each session's fetch calls, built once
        self.session_kwargs = {s.name: fetch_kwargs(o, s) for s in sessions.sessions}
        self.fetch_kwargs = self.session_kwargs[sessions.sessions[0].name]
        self.est_clip_bytes = bytes_per_clip(audio_format=o.audio_format, sample_rate_hz=o.sample_rate_hz)
        retry_failed = o.retry_failed
        self.origins = origins or OriginSet(None)
        # clips whose local origins all failed the proof while no session could take them: not read again this run
        self.origins_tried: set[str] = set()
        self.attempts = 0
        self.extractions = 0
        self.obtained_now = 0
        self.attempt_reasons: Counter[str] = Counter()
        self.run_attempts: Counter[str] = Counter()
        self.first_results: list[tuple[bool, str | None, bool]] = []
        self.retry_heap: list[tuple[float, int, Any]] = []
        self._seq = 0
        self.stop_exc: BaseException | None = None
        rows = {r.clip_id: r for r in ledger.rows(in_plan=True)}
        takeable = {"pending", "failed-transient"} | ({"failed-permanent"} if retry_failed else set())
        self.classes: dict[str, _ClassState] = {}
        self.gap_ids: set[str] = set()
        for mid, entries in plan.by_class().items():
            st = _ClassState(mid, plan.target(mid), deque())
            for e in entries:  # rank order
                status = rows[e.clip_id].status
                if status == "ok":
                    st.obtained += 1
                    st.ok_entries.append(e)
                elif status in takeable:
                    st.queue.append(e)
            if st.obtained >= st.target and st.ok_entries:
                top = st.ok_entries[-1].rank
                while st.queue and st.queue[0].rank < top:
                    gap = st.queue.popleft()
                    st.gaps.append(gap)
                    self.gap_ids.add(gap.clip_id)
            self.classes[mid] = st
        self._order = list(self.classes)
        self._rr = 0

    @property
    def pauses(self) -> int:
        """Pauses of this run (of every session)."""
        return self.sessions.pauses

    def session_lines(self) -> tuple[str, ...]:
        """One line per session for the summary (none for the local pool's one session)."""
        return ()

    # -- worker (runs in a pool thread; never touches the ledger) ---------------------------
    def _from_origins(self, entry: Any) -> tuple[_Outcome | None, list[Any]]:
        """The hook before YouTube: the clip from the first local origin holding it (an
        outcome; also when YouTube is not an origin), else None and the origins' failed proofs."""
        if not self.origins.has_local:
            return None, []
        dest = self.layout.clip_path(entry.owner_mid, entry.ytid, entry.start_s, ext=self.audio_format)
        started = utc_now()
        t0 = time.monotonic()
        found, tried = self.origins.take(entry, dest=dest, sample_rate_hz=self.fetch_kwargs["sample_rate_hz"], audio_format=self.audio_format)
        if found is not None or not self.origins.youtube:
            return _Outcome(entry, None, started, time.monotonic() - t0, found or self.origins.nowhere(entry, tried), origin_failures=tried), tried
        return None, tried

    def _work(self, entry: Any, session: Session | None) -> _Outcome:
        """One clip: from the local origins, else (``session``: a usable one) from YouTube;
        without a session the clip goes back to wait for one."""
        dest = self.layout.clip_path(entry.owner_mid, entry.ytid, entry.start_s, ext=self.audio_format)
        local, tried = self._from_origins(entry) if entry.clip_id not in self.origins_tried else (None, [])
        if local is not None:
            return local
        if session is None:
            return _Outcome(entry, None, utc_now(), 0.0, closed=True, origin_failures=tried)
        try:  # a session paused meanwhile: give the clip back (another session takes it)
            permit = session.governor.acquire(wait_out_pause=False)
        except GovernorClosed:
            return _Outcome(entry, None, utc_now(), 0.0, closed=True, origin_failures=tried, session=session)
        started = utc_now()
        t0 = time.monotonic()
        kwargs = self.session_kwargs[session.name]
        result = self.fetch(watch_url(self.base_url, entry.ytid), start_s=entry.start_s, end_s=entry.end_s, dest=dest, **kwargs)
        return _Outcome(entry, permit, started, time.monotonic() - t0, result, origin_failures=tried, session=session)

    # -- scheduling ----------------------------------------------------------------------------
    def _next_entry(self) -> Any | None:
        n = len(self._order)
        for mid in self._order:
            st = self.classes[mid]
            if st.gaps:
                return st.gaps.popleft()
        for k in range(n):
            st = self.classes[self._order[(self._rr + k) % n]]
            if st.need > 0 and st.queue:
                self._rr = (self._rr + k + 1) % n
                return st.queue.popleft()
        return None

    def _take(self) -> Any | None:
        """The next clip: a due retry still needed, else the next one in rank order."""
        now = time.monotonic()
        while self.retry_heap and self.retry_heap[0][0] <= now:
            entry = heapq.heappop(self.retry_heap)[2]
            st = self.classes[entry.owner_mid]
            st.waiting -= 1
            if entry.clip_id not in self.gap_ids and st.obtained + st.in_flight + st.waiting >= st.target:
                st.queue.appendleft(entry)  # no longer needed
                continue
            return entry
        return self._next_entry()

    def _untake(self, entry: Any) -> None:
        """``entry`` back where :meth:`_take` found it first: a gap to the class's gaps, any
        other clip to the head of its queue (taken again before every later rank)."""
        st = self.classes[entry.owner_mid]
        (st.gaps if entry.clip_id in self.gap_ids else st.queue).appendleft(entry)

    def _held(self, entry: Any) -> list[Any]:
        """Where the local origins hold ``entry`` (none when it failed at all of them before
        in this run)."""
        if not self.origins.has_local or entry.clip_id in self.origins_tried:
            return []
        return self.origins.located(entry)

    def _check_disk(self, in_flight: int) -> None:
        self.layout.root.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.layout.root).free
        if free - (in_flight + 1) * self.est_clip_bytes < self.min_free_bytes:
            raise DiskFullError(
                f"free disk at {self.layout.root} is {free / 1e9:.2f} GB, at the limit min_free={self.min_free_bytes / 1e9:.2f} GB:"
                " the download stopped cleanly; free some space (or lower --min-free) and run the same command again to continue"
            )

    def _has_work(self) -> bool:
        return any(st.gaps or (st.need > 0 and st.queue) for st in self.classes.values())

    def _submit(self, pool: cf.ThreadPoolExecutor, futures: dict[cf.Future[_Outcome], Any], entry: Any, session: Session | None) -> None:
        self._check_disk(len(futures))
        self.classes[entry.owner_mid].in_flight += 1
        futures[pool.submit(self._work, entry, session)] = entry

    def _run_bar(self) -> ProgressBar:
        """The run's one progress bar (clips of the classes' targets), after a first disk check
        when there is anything to fetch."""
        if any(st.need > 0 and st.queue for st in self.classes.values()):
            self._check_disk(0)
        total = sum(st.target for st in self.classes.values())
        self._postfix = ""
        return progress_bar(total=total, desc="download", unit="clip", initial=sum(min(st.obtained, st.target) for st in self.classes.values()))

    def execute(self) -> None:
        futures: dict[cf.Future[_Outcome], Any] = {}
        with self._run_bar() as bar:
            self._bar = bar
            pool = cf.ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="afs-download")
            try:
                self._loop(pool, futures)
            except BaseException as err:  # commit what finishes, then re-raise
                self.sessions.close()
                for fut in list(futures):
                    fut.cancel()
                grace = time.monotonic() + (5.0 if isinstance(err, KeyboardInterrupt) else float(self.fetch_kwargs.get("timeout_s", 120)) + 10.0)
                with contextlib.suppress(BaseException):
                    while futures and time.monotonic() < grace:
                        done, _ = cf.wait(list(futures), timeout=0.5)
                        for fut in done:
                            entry = futures.pop(fut)
                            if not fut.cancelled() and fut.exception() is None:
                                self._handle(fut.result())
                            else:
                                self.classes[entry.owner_mid].in_flight -= 1
                raise
            finally:
                pool.shutdown(wait=False, cancel_futures=True)

    def _fill_pool(self, pool: cf.ThreadPoolExecutor, futures: dict[cf.Future[_Outcome], Any]) -> None:
        """Submit clips up to ``jobs`` in flight: any clip while a session is usable, else only
        clips the local origins hold (they need no session).  A clip that must wait goes back
        to the head of its class; the filling stops after a round of the classes without a
        submission."""
        misses = 0
        while len(futures) < self.jobs and misses <= len(self.classes):
            usable = any(s.usable for s in self.sessions.sessions)
            if not usable and not self.origins.has_local:
                return
            entry = self._take()
            if entry is None:
                return
            if not usable and not self._held(entry):
                self._untake(entry)
                misses += 1
                continue
            misses = 0
            self._submit(pool, futures, entry, self.sessions.pick() if usable else None)

    def _loop(self, pool: cf.ThreadPoolExecutor, futures: dict[cf.Future[_Outcome], Any]) -> None:
        while True:
            if self.stop_exc is not None:
                raise self.stop_exc
            self._fill_pool(pool, futures)
            usable = any(s.usable for s in self.sessions.sessions)  # else wait for a pause to end
            if not futures and not self.retry_heap and (usable or not self._has_work()):
                return
            timeout = 0.5
            if self.retry_heap:
                timeout = max(0.0, min(timeout, self.retry_heap[0][0] - time.monotonic()))
            if not usable:
                timeout = max(0.0, min(timeout, self.sessions.resume_in_s()))
            if not futures:  # every session paused, nothing in flight: wait for the first to resume
                time.sleep(timeout)
            done, _ = cf.wait(list(futures), timeout=timeout, return_when=cf.FIRST_COMPLETED) if futures else (set(), set())
            for fut in done:
                futures.pop(fut)
                self._handle(fut.result())  # a worker's bug re-raises here
            text = self.sessions.status_text()
            if self.origins.has_local:  # clips per origin while the run goes
                text = " ".join([text] * bool(text) + [f"{o} {n}" for o, n in sorted(self.origins.obtained.items())])
            if text != self._postfix:  # "paused until HH:MM" while the pool waits
                self._postfix = text
                self._bar.set_postfix_str(text, refresh=True)

    def _handle(self, out: _Outcome) -> None:
        entry = out.entry
        st = self.classes[entry.owner_mid]
        st.in_flight -= 1
        for failed in out.origin_failures:  # each origin that held the clip but failed the proof
            self.ledger.record_attempt(entry.clip_id, failed, counted=False, started_at=out.started_at, elapsed_s=failed.elapsed_s)
        if out.closed:  # the run stops, or the session paused before the clip started: not an attempt
            if out.origin_failures:  # recorded: not read again this run
                self.origins_tried.add(entry.clip_id)
            st.queue.appendleft(entry)
            return
        session = out.session
        sname = session.name if session is not None else None
        res = out.result
        self.extractions += int(getattr(res, "extractions", 1) or 0)
        relpath = self.layout.clip_relpath(entry.owner_mid, entry.ytid, entry.start_s, ext=self.audio_format)
        reason = getattr(res, "reason", None)
        if not res.ok and reasons.should_pause(reason) and session is not None:
            # the session is throttled: pause that session, re-queue this clip for any session, do not count it
            self.ledger.record_attempt(entry.clip_id, res, counted=False, started_at=out.started_at, elapsed_s=out.elapsed_s, relpath=relpath,
                                       session=sname, message=self._message(res))  # fmt: skip
            self.attempt_reasons[reason or reasons.UNKNOWN] += 1
            self._requeue(entry, 0.0)
            self._pause(session, out.permit, reason)
            return
        self.attempts += 1
        self.run_attempts[entry.clip_id] += 1
        self.ledger.record_attempt(entry.clip_id, res, counted=True, started_at=out.started_at, elapsed_s=out.elapsed_s, relpath=relpath if res.ok else None,
                                   session=sname if out.permit is not None else None, message=self._message(res))  # fmt: skip
        if res.ok:
            st.obtained += 1
            self.obtained_now += 1
            self._bar.update(1)
            self.origins.obtained[str(getattr(res, "origin", None) or "youtube")] += 1

            bisect.insort(st.ok_entries, entry, key=lambda e: e.rank)
            if entry.clip_id in self.gap_ids and st.obtained > st.target:
                self._demote_surplus(st)
        else:
            self.attempt_reasons[reason or reasons.UNKNOWN] += 1
            if reason == reasons.NETWORK and self.attempt_reasons[reason] == 1:
                # say it now: on a network that swallows requests every attempt waits out its timeouts
                logger.warning("%s: %s (retried; the run stops after %d attempts that all fail like this)", entry.clip_id,
                               self._message(res) or reason, self.early_abort or self.retries + 1)  # fmt: skip
            if not res.permanent and self.run_attempts[entry.clip_id] <= self.retries:
                k = self.run_attempts[entry.clip_id]
                self._requeue(entry, backoff_delay(self.backoff_s, k, seed=self.seed, clip_id=entry.clip_id))
        self._early_abort_check(bool(res.ok), reason, bool(getattr(res, "permanent", False)))

    def _message(self, res: Any) -> str | None:
        """The result's message with every session secret scrubbed (a proxy URL in an error)."""
        msg = getattr(res, "message", None)
        return scrub(msg, self.sessions.secrets) if isinstance(msg, str) and msg else msg

    def _pause(self, session: Session, permit: Permit | None, reason: str | None) -> None:
        """A rate-limit signal of ``session``: pause it, or retire it after ``max_pauses``
        pauses; the run stops when every session is retired."""
        pauses = session.governor.pauses
        length = self.sessions.rate_limited(session, permit)
        single = len(self.sessions.sessions) == 1
        who = "this session" if single else f"session {session.name}"
        if session.retired:
            if self.sessions.exhausted:
                every = "" if single else f" (every one of the {len(self.sessions.sessions)} sessions)"
                self.stop_exc = DownloadError(
                    f"the media host rate-limited {who} again ({reason}) after {pauses} pauses (max_pauses={self.max_pauses}){every}:"
                    " the download stopped; what was obtained is kept. Run the same command again later (in an hour or more),"
                    " lower --max-per-hour, add a session (download.sessions), or raise --max-pauses"
                )
            else:
                logger.warning("%s from the media host: %s stopped for this run after %d pauses; the other sessions go on", reason, who, pauses)
        elif length is not None:
            hint = reasons.PAUSE_HINTS.get(reason or "", "")
            scope = "all workers" if single else f"session {session.name} (the other sessions go on)"
            logger.warning("%s from the media host: pausing %s for %.0f s (%s)%s", reason, scope, length, session.governor.paused_until_text(), hint)

    def _demote_surplus(self, st: _ClassState) -> None:
        """A gap filled above the target: the class's highest-ranked ok clip is no longer among
        its first ``target`` obtainable ones; it goes back to pending and its file is removed."""
        last = st.ok_entries.pop()
        self.ledger.mark(last.clip_id, "pending", reason="surplus", message="ranked after the class's first target obtainable candidates")
        for ext in ("flac", "wav"):
            with contextlib.suppress(FileNotFoundError):
                self.layout.clip_path(last.owner_mid, last.ytid, last.start_s, ext=ext).unlink()
        st.obtained -= 1
        st.queue.appendleft(last)  # still a candidate, after every lower rank

    def _requeue(self, entry: Any, delay_s: float) -> None:
        self.classes[entry.owner_mid].waiting += 1
        self._seq += 1
        heapq.heappush(self.retry_heap, (time.monotonic() + delay_s, self._seq, entry))

    def _early_abort_check(self, ok: bool, reason: str | None, permanent: bool) -> None:
        limit = max(self.early_abort, CONFIG_ABORT_AFTER)
        if len(self.first_results) >= limit:
            return
        self.first_results.append((ok, reason, permanent))
        n = len(self.first_results)
        kinds = set(self.first_results)
        if len(kinds) != 1:
            return
        ok0, r0, p0 = next(iter(kinds))
        if ok0 or p0:
            return
        if reasons.is_config(r0) and n == CONFIG_ABORT_AFTER:
            # a configuration error is the same on every clip: stop at once, with the fix
            self.stop_exc = DownloadError(
                f"the first {n} attempts all failed with {r0!r}, a configuration error: {reasons.CONFIG_FIXES[r0 or '']}."
                " Nothing is lost: run the same command again once fixed"
            )
        elif self.early_abort > 0 and n == self.early_abort:
            hint = ACTIONABLE.get(r0 or reasons.UNKNOWN, "check 'audioset-fewshot doctor' and the ledger's messages")
            self.stop_exc = DownloadError(
                f"the first {self.early_abort} attempts all failed with {r0!r}; stopping instead of burning the plan: {hint}."
                " Nothing is lost: run the same command again once fixed"
            )
