"""Download on a Dask cluster: sessions pinned to workers, the driver the one writer.

:func:`run_download_dask` downloads a plan exactly as :func:`~.runner.run_download`
does (the same checks, lock, ledger sync, rank-order scheduling with gaps and
surplus, retries, early abort, resume and report: :func:`~.runner.download_with`
and the runner's ``_Run``), with the fetching spread over the workers of a Dask
cluster:

* Each YouTube session (one when none are configured) is pinned to one worker:
  the worker named by the session's ``worker``, else one with the session's
  ``resource``, else the worker hosting the fewest sessions.  Its governor and
  its pause live in that worker's process (:func:`fetch_on_worker`), so a
  session's budget and address stay on one machine.  A rate-limit pauses the
  session it hit; the others go on.  The run stops when every session has been
  rate-limited past ``max_pauses``.
* Workers are stateless: a task fetches one clip into a temp folder of the
  worker and returns its bytes with its result record (:class:`RemoteClip`).
  The driver checks the bytes against the record (sha256, decodable, mono, the
  length), writes the file atomically and commits the ledger row: the driver
  is the only writer of the ledger and of the dataset root.
* A worker that leaves the cluster takes nothing with it: its clips go back to
  the queue without counting an attempt and are sent to the sessions still
  hosted; its sessions are pinned again when a worker that fits joins (a nanny
  restarting a killed worker process does).  A result from a submission the
  driver has given up is never used, so no clip is recorded twice.
* The scheduler going away ends the run with :class:`DownloadError` at once;
  everything committed is kept and a rerun resumes from the ledger.
* One progress bar for the cluster, with each session's state (``fetching``,
  ``paused until HH:MM``, ``waiting for a worker``, ``stopped``) beside it and in
  the report's summary; the Dask dashboard address is logged when there is one.

Paths a session names (a cookies file) are read on the worker that hosts it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import heapq
import io
import logging
import queue
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audioset_fewshot._io import atomic_write_bytes
from audioset_fewshot._progress import progress_bar
from audioset_fewshot.config import DownloadOptions
from audioset_fewshot.download import reasons
from audioset_fewshot.download.governor import RateGovernor, host_rate
from audioset_fewshot.download.ledger import utc_now
from audioset_fewshot.download.runner import DownloadReport, _Outcome, _Run, download_with, fetch_kwargs, watch_url
from audioset_fewshot.errors import DownloadError, UsageError

if TYPE_CHECKING:
    from distributed import Client, Future

    from audioset_fewshot.download.fetch import ClipResult
    from audioset_fewshot.plan import SamplingPlan

logger = logging.getLogger(__name__)

# how often the driver asks the scheduler which workers are alive
WORKER_POLL_S = 1.0
# how long the driver waits for the bytes of a finished task (they are on its worker)
RESULT_TIMEOUT_S = 10.0
# how long the run waits with no session hosted by any worker before it stops
NO_WORKER_TIMEOUT_S = 120.0


# ---------------------------------------------------------------------------------------
# records


@dataclass(frozen=True)
class SessionSpec:
    """One YouTube session as a worker runs it: its budget, its pause and its fetch keywords
    (cookies, format, ...), and where it may live (``worker``: a worker's name;
    ``resource``: a worker resource, e.g. ``dask worker --resources yt-a=1``)."""

    name: str
    max_per_hour: float | None = None
    min_interval_s: float = 0.0
    pause_s: float = 3600.0
    max_pause_s: float = 14400.0
    max_pauses: int = 4
    fetch_kwargs: Mapping[str, Any] = field(default_factory=dict)
    worker: str | None = None
    resource: str | None = None

    def fits(self, worker: Mapping[str, Any]) -> bool:
        """Whether the worker described by ``worker`` (the scheduler's record) may host it."""
        if self.worker is not None:
            return str(worker.get("name")) == self.worker
        if self.resource is not None:
            return self.resource in (worker.get("resources") or {})
        return True


@dataclass(frozen=True)
class ClipJob:
    """What a worker needs to fetch one clip."""

    clip_id: str
    url: str
    start_s: float
    end_s: float
    audio_format: str


@dataclass(frozen=True)
class RemoteClip:
    """What a worker returns for one clip: the result record (its ``path`` is None), the
    clip's bytes when it is ok, and the state of the session after the attempt.
    ``deferred``: not tried, the session is paused (``paused_for_s`` more seconds);
    ``exhausted``: a rate-limit came after ``max_pauses`` pauses, the session stops."""

    clip_id: str
    session: str
    worker: str
    result: ClipResult | None = None
    data: bytes | None = None
    started_at: str = ""
    elapsed_s: float = 0.0
    pauses: int = 0
    paused_for_s: float = 0.0
    deferred: bool = False
    exhausted: bool = False


def sessions_from_options(options: DownloadOptions) -> tuple[SessionSpec, ...]:
    """The sessions of a run: one from the download options (their cookies, budget and pause)."""
    o = options
    max_per_hour, min_interval_s = host_rate(o.max_per_hour, o.min_interval_s, base_url=o.base_url)
    return (
        SessionSpec(
            "default", max_per_hour=max_per_hour, min_interval_s=min_interval_s, pause_s=o.pause_s, max_pause_s=o.max_pause_s,
            max_pauses=o.max_pauses, fetch_kwargs=fetch_kwargs(o),
        ),
    )  # fmt: skip


# ---------------------------------------------------------------------------------------
# the worker side


_GOVERNORS: dict[tuple[str, str], RateGovernor] = {}
_GOVERNORS_LOCK = threading.Lock()


def _session_governor(run_id: str, spec: SessionSpec) -> RateGovernor:
    """The governor of ``spec`` in this worker process for run ``run_id`` (made on first use)."""
    with _GOVERNORS_LOCK:
        gov = _GOVERNORS.get((run_id, spec.name))
        if gov is None:
            gov = RateGovernor(max_per_hour=spec.max_per_hour, min_interval_s=spec.min_interval_s, pause_s=spec.pause_s, max_pause_s=spec.max_pause_s)
            _GOVERNORS[(run_id, spec.name)] = gov
        return gov


def fetch_on_worker(job: ClipJob, spec: SessionSpec, run_id: str, fetch: Callable[..., ClipResult]) -> RemoteClip:
    """A Dask task: fetch one clip under the session's governor, in this worker's process.

    Waits for the session's permit (its budget), or returns ``deferred`` at once while the
    session is paused; pauses the session on a rate-limit signal.  Writes nothing that
    outlives the call: the clip goes to a temp folder and comes back as bytes."""
    from distributed import get_worker

    try:
        worker = get_worker()
        name, local_dir = str(worker.name), worker.local_directory
    except ValueError:  # not in a worker (called directly)
        name, local_dir = "local", None
    gov = _session_governor(run_id, spec)
    while True:
        left = gov.paused_for()
        if left > 0:
            return RemoteClip(job.clip_id, spec.name, name, pauses=gov.pauses, paused_for_s=left, deferred=True)
        permit = gov.try_acquire()
        if permit is not None:
            break
        time.sleep(min(0.5, max(0.005, gov.wait_time())))
    started = utc_now()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="afs-clip-", dir=local_dir) as tmp:
        dest = Path(tmp) / f"clip.{job.audio_format}"
        result = fetch(job.url, start_s=job.start_s, end_s=job.end_s, dest=dest, **spec.fetch_kwargs)
        data = dest.read_bytes() if result.ok else None
    elapsed = time.monotonic() - t0
    exhausted = False
    if not result.ok and reasons.should_pause(result.reason):
        if gov.pauses >= spec.max_pauses:
            exhausted = True
        elif gov.pause(epoch=permit.epoch) is not None:
            logger.warning("session %s on worker %s: %s; paused for %.0f s", spec.name, name, result.reason, gov.paused_for())
    return RemoteClip(job.clip_id, spec.name, name, replace(result, path=None), data, started, elapsed, gov.pauses, gov.paused_for(), exhausted=exhausted)


# ---------------------------------------------------------------------------------------
# the driver


def clip_bytes_problem(data: bytes | None, result: ClipResult) -> str | None:
    """Why ``data`` is not the clip ``result`` describes (None when it is): its sha256, and
    that it decodes as mono at the result's rate with the result's number of samples."""
    import soundfile as sf

    if data is None:
        return "no bytes came back"
    if result.sha256 and hashlib.sha256(data).hexdigest() != result.sha256:
        return "their sha256 differs from the one the worker computed"
    try:
        info = sf.info(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError) as err:
        return f"they do not decode ({err})"
    if info.samplerate != result.sample_rate_hz or info.channels != 1 or info.frames != result.samples:
        return (
            f"they hold {info.frames} samples x {info.channels} channels at {info.samplerate} Hz, expected {result.samples} mono at {result.sample_rate_hz} Hz"
        )
    return None


@dataclass
class _Session:
    """The driver's view of one session: where it lives and what it does."""

    spec: SessionSpec
    address: str | None = None
    worker_name: str = ""
    in_flight: int = 0
    pauses: int = 0
    paused_until: float = 0.0  # time.monotonic()
    stopped: bool = False
    obtained: int = 0

    def state(self, now: float) -> str:
        if self.stopped:
            return "stopped (rate-limited past max_pauses)"
        if self.address is None:
            return "waiting for a worker"
        if self.paused_until > now:
            return "paused until " + time.strftime("%H:%M", time.localtime(time.time() + self.paused_until - now))
        return "fetching" if self.in_flight else "idle"


@dataclass
class _Pending:
    future: Future
    entry: Any
    session: _Session
    origin_failures: list[Any]


class _DaskRun(_Run):
    """The runner's state and bookkeeping, with the fetching done by Dask tasks."""

    def __init__(self, *, client: Client, sessions: Sequence[SessionSpec], **kw: Any) -> None:
        super().__init__(**kw)
        self.client = client
        self.sessions = [_Session(s) for s in sessions]
        self.per_session = self.jobs
        self.run_id = uuid.uuid4().hex
        self.scheduler_address = str(getattr(client.scheduler, "address", "") or "")
        self.pending: dict[str, _Pending] = {}
        self._done: queue.Queue[Future] = queue.Queue()
        self._next_poll = 0.0
        self._no_worker_since: float | None = None

    # -- what the report reads ------------------------------------------------------------
    @property
    def pauses(self) -> int:
        return sum(s.pauses for s in self.sessions)

    def session_lines(self) -> tuple[str, ...]:
        now = time.monotonic()
        return tuple(f"{s.spec.name} on {s.worker_name or 'no worker'}: {s.state(now)}; {s.obtained} clips, {s.pauses} pauses" for s in self.sessions)

    # -- the cluster ----------------------------------------------------------------------
    def _check_scheduler(self, cause: BaseException | None = None) -> None:
        """Raise :class:`DownloadError` when the client has lost its scheduler (or ``cause``,
        an error talking to it, says so)."""
        if self.client.status != "running" or cause is not None:
            why = f"client {self.client.status}" if cause is None else f"{type(cause).__name__}: {cause}"
            raise DownloadError(
                f"the Dask scheduler {self.scheduler_address} went away mid-run ({why}): the download stopped;"
                " every clip committed so far is kept in the ledger. Start the scheduler (or the cluster) again and run the same command to resume"
            ) from cause

    def _poll_workers(self) -> None:
        """Give up the clips of sessions whose worker left; pin sessions that have none."""
        self._next_poll = time.monotonic() + WORKER_POLL_S
        try:
            # bounded: while the client reconnects, a plain scheduler_info() waits for its connect timeouts
            self._check_scheduler()
            scheduler = self.client.scheduler
            if scheduler is None:
                raise OSError("the client has no scheduler")
            info = self.client.sync(scheduler.identity, n_workers=-1, callback_timeout=RESULT_TIMEOUT_S)
            workers: Mapping[str, Mapping[str, Any]] = info["workers"]
        except OSError as err:  # distributed's CommClosedError is one
            self._check_scheduler(err)
            raise
        for s in self.sessions:
            if s.address is not None and s.address not in workers:
                lost = [k for k, p in self.pending.items() if p.session is s]
                logger.warning("worker %s (%s) left the cluster: its %d clips go to the other sessions; session %s waits for a worker",
                               s.worker_name, s.address, len(lost), s.spec.name)  # fmt: skip
                self._give_up([self.pending.pop(k) for k in lost])
                s.address, s.in_flight = None, 0
        hosted = Counter(s.address for s in self.sessions if s.address is not None)
        for s in self.sessions:
            if s.address is not None:
                continue
            fits = [a for a, w in workers.items() if s.spec.fits(w)]
            if not fits:
                continue
            address = min(fits, key=lambda a: (hosted[a], str(workers[a].get("name")), a))
            hosted[address] += 1
            s.address, s.worker_name = address, str(workers[address].get("name"))
            logger.info("session %s on worker %s (%s)", s.spec.name, s.worker_name, address)
        if any(s.address is not None for s in self.sessions):
            self._no_worker_since = None
        elif self._no_worker_since is None:
            self._no_worker_since = time.monotonic()
        elif time.monotonic() - self._no_worker_since > NO_WORKER_TIMEOUT_S:
            binding = "; ".join(f"{s.spec.name}: " + (f"worker {s.spec.worker!r}" if s.spec.worker else f"resource {s.spec.resource!r}" if s.spec.resource else "any worker") for s in self.sessions)  # fmt: skip
            names = ", ".join(sorted(str(w.get("name")) for w in workers.values())) or "none"
            raise DownloadError(
                f"no worker of the Dask cluster has hosted a session for {NO_WORKER_TIMEOUT_S:.0f} s (sessions {binding}; workers: {names}):"
                " start workers, or bind the sessions to workers that exist (by name or resource); what was obtained is kept"
            )

    def _give_up(self, lost: Sequence[_Pending]) -> None:
        """Cancel submissions; their clips go back to their class's queue, no attempt counted."""
        if not lost:
            return
        with contextlib.suppress(Exception):  # the scheduler may be gone already
            self.client.cancel([p.future for p in lost])
        for p in lost:
            p.session.in_flight -= 1
            self._handle(_Outcome(p.entry, None, utc_now(), 0.0, closed=True, origin_failures=p.origin_failures), futures_len=len(self.pending))

    # -- scheduling -----------------------------------------------------------------------
    def _free_session(self, now: float) -> _Session | None:
        """The hosted, running session with the fewest clips in flight (in order on ties)."""
        free = [s for s in self.sessions if s.address is not None and not s.stopped and s.paused_until <= now and s.in_flight < self.per_session]
        return min(free, key=lambda s: s.in_flight) if free else None

    def _take(self, now: float) -> Any | None:
        """The next clip: a due retry still needed, else the next one in rank order."""
        while self.retry_heap and self.retry_heap[0][0] <= now:
            _, _, entry = self._pop_retry()
            st = self.classes[entry.owner_mid]
            if entry.clip_id not in self.gap_ids and st.obtained + st.in_flight + st.waiting >= st.target:
                st.queue.appendleft(entry)  # no longer needed
                continue
            return entry
        return self._next_entry()

    def _pop_retry(self) -> tuple[float, int, Any]:
        item = heapq.heappop(self.retry_heap)
        self.classes[item[2].owner_mid].waiting -= 1
        return item

    def _work_left(self) -> bool:
        return bool(self.pending or self.retry_heap or any(st.gaps or (st.need > 0 and st.queue) for st in self.classes.values()))

    def _start(self, session: _Session, entry: Any) -> None:
        self._check_disk(len(self.pending))
        self.classes[entry.owner_mid].in_flight += 1
        tried: list[Any] = []
        if self.origins.has_local:  # local origins are the driver's: read here, before any session is asked
            dest = self.layout.clip_path(entry.owner_mid, entry.ytid, entry.start_s, ext=self.audio_format)
            t0 = time.monotonic()
            started = utc_now()
            found, tried = self.origins.take(entry, dest=dest, sample_rate_hz=self.fetch_kwargs["sample_rate_hz"], audio_format=self.audio_format)
            if found is not None or not self.origins.youtube:
                self._handle(
                    _Outcome(entry, None, started, time.monotonic() - t0, found or self.origins.nowhere(entry, tried), origin_failures=tried),
                    futures_len=len(self.pending),
                )
                return
        job = ClipJob(entry.clip_id, watch_url(self.base_url, entry.ytid), entry.start_s, entry.end_s, self.audio_format)
        fut = self.client.submit(fetch_on_worker, job, session.spec, self.run_id, self.fetch, workers=[session.address], allow_other_workers=False,
                                 pure=False, key=f"afs-clip-{entry.clip_id}-{uuid.uuid4().hex[:12]}")  # fmt: skip
        self.pending[str(fut.key)] = _Pending(fut, entry, session, tried)
        session.in_flight += 1
        fut.add_done_callback(self._done.put)

    # -- the loop -------------------------------------------------------------------------
    def execute(self) -> None:
        total = sum(st.target for st in self.classes.values())
        with progress_bar(total=total, desc="download", unit="clip", initial=sum(min(st.obtained, st.target) for st in self.classes.values())) as bar:
            self._bar = bar
            self._postfix = ""
            if any(st.need > 0 and st.queue for st in self.classes.values()):
                self._check_disk(0)
            try:
                self._drive()
            finally:
                self._give_up(list(self.pending.values()))
                self.pending.clear()

    def _drive(self) -> None:
        while True:
            if self.stop_exc is not None:
                raise self.stop_exc
            self._check_scheduler()
            now = time.monotonic()
            if now >= self._next_poll:
                self._poll_workers()
            while (session := self._free_session(now)) is not None:
                entry = self._take(now)
                if entry is None:
                    break
                self._start(session, entry)
                if self.stop_exc is not None:
                    raise self.stop_exc
            if not self._work_left():
                return
            timeout = 0.25
            if self.retry_heap:
                timeout = max(0.01, min(timeout, self.retry_heap[0][0] - time.monotonic()))
            with contextlib.suppress(queue.Empty):
                self._finish(self._done.get(timeout=timeout))
                while True:
                    self._finish(self._done.get_nowait())
            text = ", ".join(f"{s.spec.name} {s.state(time.monotonic())}" for s in self.sessions)
            if text != self._postfix:
                self._postfix = text
                self._bar.set_postfix_str(text, refresh=True)

    def _finish(self, fut: Future) -> None:
        """Handle one finished task (a stale one, given up before, is ignored)."""
        p = self.pending.get(str(fut.key))
        if p is None or p.future is not fut:
            return
        del self.pending[str(fut.key)]
        s = p.session
        if fut.status != "finished":
            self._check_scheduler()
            try:
                exc = fut.exception(timeout=RESULT_TIMEOUT_S) if fut.status == "error" else None
            except TimeoutError:
                exc = None
            except OSError as err:
                self._check_scheduler(err)
                raise
            if exc is not None and type(exc).__name__ != "KilledWorker":
                raise exc  # a bug on the worker: what is committed stays, the run stops
            self._give_up([p])  # a lost worker's task: the clip goes to another session
            return
        try:
            rc: RemoteClip = fut.result(timeout=RESULT_TIMEOUT_S)
        except TimeoutError:  # its bytes were on a worker that died since: fetch the clip again
            logger.warning(
                "the result of %s could not be read within %.0f s from worker %s; the clip is fetched again", p.entry.clip_id, RESULT_TIMEOUT_S, s.worker_name
            )
            self._give_up([p])
            return
        except OSError as err:
            self._check_scheduler(err)
            raise
        s.in_flight -= 1
        now = time.monotonic()
        s.pauses = max(s.pauses, rc.pauses)
        if rc.paused_for_s > 0:
            s.paused_until = max(s.paused_until, now + rc.paused_for_s)
        entry = p.entry
        if rc.deferred or rc.result is None:
            self._handle(_Outcome(entry, None, utc_now(), 0.0, closed=True, origin_failures=p.origin_failures), futures_len=len(self.pending))
            return
        res = rc.result
        if not res.ok and reasons.should_pause(res.reason):
            # the session is throttled: its worker paused it; re-queue the clip for any session, uncounted
            relpath = self.layout.clip_relpath(entry.owner_mid, entry.ytid, entry.start_s, ext=self.audio_format)
            self.ledger.record_attempt(entry.clip_id, res, counted=False, started_at=rc.started_at, elapsed_s=rc.elapsed_s, relpath=relpath)
            self.attempt_reasons[res.reason or reasons.UNKNOWN] += 1
            self.classes[entry.owner_mid].in_flight -= 1
            self._requeue(entry, 0.0)
            if rc.exhausted and not s.stopped:
                s.stopped = True
                logger.warning("session %s was rate-limited again (%s) after %d pauses (max_pauses): it stops", s.spec.name, res.reason, s.pauses)
            elif rc.paused_for_s > 0:
                logger.warning("%s from the media host: session %s %s; the other sessions go on", res.reason, s.spec.name, s.state(now))
            if all(x.stopped for x in self.sessions):
                self.stop_exc = DownloadError(
                    f"the media host rate-limited every session again ({res.reason}) after max_pauses={s.spec.max_pauses} pauses each:"
                    " the download stopped; what was obtained is kept. Run the same command again later (in an hour or more),"
                    " lower --max-per-hour, add sessions, or raise --max-pauses"
                )
            return
        result = self._materialize(entry, rc)
        if result.ok:
            s.obtained += 1
        self._handle(_Outcome(entry, None, rc.started_at, rc.elapsed_s, result, origin_failures=p.origin_failures), futures_len=len(self.pending))

    def _materialize(self, entry: Any, rc: RemoteClip) -> ClipResult:
        """The worker's result with its bytes checked and written atomically to the clip's path."""
        res = rc.result
        assert res is not None  # checked by the caller
        if not res.ok:
            return res
        problem = clip_bytes_problem(rc.data, res)
        if problem is not None:
            return replace(res, ok=False, reason=reasons.NETWORK, message=f"the clip's bytes from worker {rc.worker} are damaged: {problem}")
        dest = self.layout.clip_path(entry.owner_mid, entry.ytid, entry.start_s, ext=self.audio_format)
        atomic_write_bytes(dest, rc.data or b"")
        return replace(res, path=dest)


def dashboard_address(client: Client) -> str | None:
    """The Dask dashboard's address, when the scheduler serves one."""
    with contextlib.suppress(Exception):
        if "dashboard" in (client.scheduler_info(n_workers=0).get("services") or {}):
            return str(client.dashboard_link)
    return None


def run_download_dask(
    plan: SamplingPlan,
    root: Path | str,
    options: DownloadOptions | None = None,
    *,
    client: Client,
    sessions: Sequence[SessionSpec] | None = None,
    fetch: Callable[..., Any] | None = None,
) -> DownloadReport:
    """Download ``plan`` into ``root`` on the Dask cluster of ``client`` (see the module
    docstring); ``options.jobs`` clips are in flight per session.  ``sessions``: default
    :func:`sessions_from_options`.  ``fetch``: as for :func:`~.runner.run_download`, a
    function the workers can import.  Returns the runner's :class:`DownloadReport`, with a
    line per session."""
    o = options if options is not None else DownloadOptions()
    specs = tuple(sessions) if sessions is not None else sessions_from_options(o)
    if not specs:
        raise UsageError("a Dask download needs at least one session")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise UsageError(f"session names must be unique, got {', '.join(names)}")
    link = dashboard_address(client)
    if link:
        logger.info("Dask dashboard: %s", link)
    return download_with(functools.partial(_DaskRun, client=client, sessions=specs), plan, root, o, fetch=fetch)
