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
* Local origins (``download.origins``) are read on the workers too: the driver
  indexes them once (to know which origin holds a clip, and for the ledger's
  counts) and sends each held clip as an :class:`OriginJob` to any worker,
  which keeps one reader per origin in its process, proves the clip
  (:func:`~.origins.registry.take_from`, as a local run does) and returns its
  bytes with the failed proofs of earlier origins (:func:`read_on_worker`).  A
  clip no origin gives goes on to YouTube, through a session, when
  ``youtube`` is listed.  The reads have slots of their own (``jobs`` per
  session) and go on while the sessions are paused.  The origins must be readable at the same path on
  every worker (a shared file system) or through a URL.
* A worker that leaves the cluster takes nothing with it: its clips go back to
  the queue without counting an attempt and are sent to the sessions still
  hosted; its sessions are pinned again: an unbound one to another worker at
  once, a bound one when a worker that fits joins (a nanny restarting a killed
  worker process does).  A result from a submission the driver has given up is
  never used, so no clip is recorded twice.
* The scheduler going away ends the run with :class:`DownloadError` at once;
  everything committed is kept and a rerun resumes from the ledger.
* One progress bar for the cluster, with each session's state (``fetching``,
  ``paused until HH:MM``, ``waiting for a worker``, ``stopped``) beside it and in
  the report's summary; the Dask dashboard address is logged when there is one.

Paths a session names (a cookies file) are read on the worker that hosts it;
its secrets travel in the task's keywords, never in a repr Dask could log.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import logging
import queue
import tempfile
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audioset_fewshot._io import atomic_write_bytes
from audioset_fewshot.config import DownloadOptions
from audioset_fewshot.download import reasons
from audioset_fewshot.download.governor import GovernorClosed, Permit
from audioset_fewshot.download.ledger import utc_now
from audioset_fewshot.download.runner import DownloadReport, _Outcome, _Run, download_with, run_download, watch_url
from audioset_fewshot.download.sessions import Session, SessionPool, SessionSpec
from audioset_fewshot.errors import DownloadError

if TYPE_CHECKING:
    from distributed import Client, Future

    from audioset_fewshot.download.fetch import ClipResult
    from audioset_fewshot.download.origins import Origin, OriginClip, OriginSpec
    from audioset_fewshot.engine import Engine
    from audioset_fewshot.plan import PlanEntry, SamplingPlan

logger = logging.getLogger(__name__)

# how often the driver asks the scheduler which workers are alive
WORKER_POLL_S = 1.0
# how long the driver waits for the bytes of a finished task (they are on its worker)
RESULT_TIMEOUT_S = 10.0
# how long the run waits with no session hosted by any worker before it stops
NO_WORKER_TIMEOUT_S = 120.0


# ---------------------------------------------------------------------------------------
# records


def fits(spec: SessionSpec, worker: Mapping[str, Any]) -> bool:
    """Whether the worker described by ``worker`` (the scheduler's record of it) may host the
    session: the one named ``spec.worker``, one with ``spec.resource``, or any."""
    if spec.worker is not None:
        return str(worker.get("name")) == spec.worker
    if spec.resource is not None:
        return spec.resource in (worker.get("resources") or {})
    return True


@dataclass(frozen=True)
class ClipJob:
    """What a worker needs to fetch one clip: where, which span, and the session's keywords
    of ``fetch_clip`` (its cookies, proxy, yt-dlp parameters; the clip's format)."""

    clip_id: str
    url: str
    start_s: float
    end_s: float
    audio_format: str
    # secrets (cookies, a proxy password, tokens) are in here: never in a repr, so never in
    # a log line Dask writes about a task's arguments
    fetch_kwargs: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True)
class OriginJob:
    """What a worker needs to read one clip from the local origins: the planned entry, where
    it is held (position in ``origins``, the origin's clip record; in list order), the
    origins as the driver resolved them, and the format of the clip to write."""

    entry: PlanEntry
    holders: tuple[tuple[int, OriginClip], ...]
    origins: tuple[OriginSpec, ...]
    class_mids: tuple[str, ...] | None
    sample_rate_hz: int
    audio_format: str


@dataclass(frozen=True)
class PauseRules:
    """How a session pauses (the download options' ``pause_s``, ``max_pause_s``, ``max_pauses``)."""

    pause_s: float
    max_pause_s: float
    max_pauses: int


@dataclass(frozen=True)
class RemoteClip:
    """What a worker returns for one clip: the result record (its ``path`` is None), the
    clip's bytes when it is ok, the permit it ran under, and what the attempt did to its
    session: ``paused`` (this result started a pause) or ``retired`` (rate-limited again
    after ``max_pauses`` pauses).  ``deferred``: not tried, the session is paused.
    From an :class:`OriginJob`: ``result`` is None when no origin gave the clip, and
    ``origin_failures`` holds the failed proofs of the origins tried."""

    clip_id: str
    session: str
    worker: str
    result: ClipResult | None = None
    data: bytes | None = field(default=None, repr=False)
    permit: Permit | None = None
    started_at: str = ""
    elapsed_s: float = 0.0
    paused: bool = False
    retired: bool = False
    deferred: bool = False
    origin_failures: tuple[ClipResult, ...] = ()


# ---------------------------------------------------------------------------------------
# the worker side


_SESSIONS: dict[tuple[str, str], tuple[SessionPool, Session]] = {}
_SESSIONS_LOCK = threading.Lock()


def _worker_session(run_id: str, spec: SessionSpec, rules: PauseRules) -> tuple[SessionPool, Session]:
    """The session ``spec`` in this worker process for run ``run_id`` (made on first use):
    its own governor and pause, as in a local run (a pool of that one session)."""
    with _SESSIONS_LOCK:
        got = _SESSIONS.get((run_id, spec.name))
        if got is None:
            pool = SessionPool([spec], pause_s=rules.pause_s, max_pause_s=rules.max_pause_s, max_pauses=rules.max_pauses)
            got = _SESSIONS[(run_id, spec.name)] = (pool, pool.sessions[0])
        return got


def fetch_on_worker(job: ClipJob, spec: SessionSpec, rules: PauseRules, run_id: str, fetch: Callable[..., ClipResult]) -> RemoteClip:
    """A Dask task: fetch one clip under its session's governor, in this worker's process.

    Leaves the worker's thread pool first (``secede``: a session fetches ``jobs`` clips at
    once whatever the worker's threads), waits for the session's permit or returns
    ``deferred`` at once while the session is paused, and pauses (or retires) the session on
    a rate-limit signal.  Writes nothing that outlives the call: the clip goes to a temp
    folder and comes back as bytes."""
    from distributed import secede

    name, local_dir = _this_worker()
    with contextlib.suppress(ValueError):  # not in a worker (called directly)
        secede()
    pool, session = _worker_session(run_id, spec, rules)
    try:
        permit = session.governor.acquire(wait_out_pause=False)
    except GovernorClosed:  # GovernorPaused: another session takes the clip
        return RemoteClip(job.clip_id, spec.name, name, deferred=True)
    started = utc_now()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="afs-clip-", dir=local_dir) as tmp:
        dest = Path(tmp) / f"clip.{job.audio_format}"
        result = fetch(job.url, start_s=job.start_s, end_s=job.end_s, dest=dest, **job.fetch_kwargs)
        data = dest.read_bytes() if result.ok else None
    elapsed = time.monotonic() - t0
    paused = retired = False
    if not result.ok and reasons.should_pause(result.reason) and not session.retired:
        paused = pool.rate_limited(session, permit) is not None
        retired = session.retired
    return RemoteClip(job.clip_id, spec.name, name, replace(result, path=None), data, permit, started, elapsed, paused, retired)


def read_on_worker(job: OriginJob, run_id: str) -> RemoteClip:
    """A Dask task: read one clip from the first local origin that holds it and passes the
    proof, in this worker's process (its readers of the origins are kept for the run).
    Writes nothing that outlives the call: the clip goes to a temp folder and comes back as
    bytes, with the failed proofs of the origins tried before."""
    from audioset_fewshot.download.origins.registry import take_from

    name, local_dir = _this_worker()
    started = utc_now()
    t0 = time.monotonic()
    readers = _worker_origins(run_id, job, name)
    holders = [(readers(i), clip) for i, clip in job.holders]
    with tempfile.TemporaryDirectory(prefix="afs-origin-", dir=local_dir) as tmp:
        dest = Path(tmp) / f"clip.{job.audio_format}"
        found, tried = take_from(holders, job.entry, dest=dest, sample_rate_hz=job.sample_rate_hz, audio_format=job.audio_format)
        data = dest.read_bytes() if found is not None else None
    result = replace(found, path=None) if found is not None else None
    return RemoteClip(job.entry.clip_id, "", name, result, data, None, started, time.monotonic() - t0, origin_failures=tuple(tried))


# the origins' readers of the latest runs in this worker process: {run_id: {position: reader}}
_ORIGINS: OrderedDict[str, dict[int, Origin]] = OrderedDict()
_ORIGINS_LOCK = threading.Lock()
_ORIGIN_RUNS_KEPT = 2


def _worker_origins(run_id: str, job: OriginJob, worker: str) -> Callable[[int], Origin]:
    """The reader of origin ``i`` of ``job`` for run ``run_id`` in this process (opened on
    first use; those of older runs are closed, their files may have changed since)."""
    from audioset_fewshot.download.origins import OriginError
    from audioset_fewshot.download.origins.registry import open_origin

    with _ORIGINS_LOCK:
        readers = _ORIGINS.setdefault(run_id, {})
        _ORIGINS.move_to_end(run_id)
        while len(_ORIGINS) > _ORIGIN_RUNS_KEPT:
            for old in _ORIGINS.popitem(last=False)[1].values():
                with contextlib.suppress(Exception):
                    old.close()

    def reader(i: int) -> Origin:
        with _ORIGINS_LOCK:
            if i not in readers:
                spec = job.origins[i]
                try:
                    readers[i] = open_origin(spec, class_mids=job.class_mids)  # layout and name are set: nothing detected
                except OriginError as err:
                    raise OriginError(
                        f"Dask worker {worker} cannot open origin {spec.name}: {err}. With engine: dask the origins are read on the workers:"
                        " give every worker the same path (a shared file system) or use a URL (hf://, s3://) in download.origins"
                    ) from None
            return readers[i]

    return reader


def _this_worker() -> tuple[str, str | None]:
    """This worker's name and temp folder (``local``, None when not called in a worker)."""
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:  # not in a worker (called directly)
        return "local", None
    return str(worker.name), worker.local_directory


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
class _Placement:
    """Where a session of the run lives and what it does (the driver's view; its pause is
    mirrored in the driver's :class:`Session` so that the runner's rules apply)."""

    session: Session
    address: str | None = None
    worker_name: str = ""
    in_flight: int = 0
    obtained: int = 0

    def state(self) -> str:
        if self.session.retired:
            return "stopped (rate-limited past max_pauses)"
        if self.address is None:
            return "waiting for a worker"
        paused = self.session.governor.paused_until_text()
        if paused is not None:
            return paused
        return "fetching" if self.in_flight else "idle"


@dataclass
class _Pending:
    future: Future
    entry: Any
    placement: _Placement | None  # the session fetching it (None: a read of the local origins)
    origin_failures: list[Any]


class _DaskRun(_Run):
    """The runner's state and bookkeeping (rank order, retries, gaps, surplus, pauses,
    ledger), with the fetching done by Dask tasks on the workers hosting the sessions."""

    def __init__(self, *, client: Client, options: DownloadOptions, **kw: Any) -> None:
        super().__init__(options=options, **kw)
        self.client = client
        self.placements = {s.name: _Placement(s) for s in self.sessions.sessions}
        self.rules = PauseRules(options.pause_s, options.max_pause_s, options.max_pauses)
        self.run_id = uuid.uuid4().hex
        self.scheduler_address = str(getattr(client.scheduler, "address", "") or "")
        self.pending: dict[str, _Pending] = {}
        self._done: queue.Queue[Future] = queue.Queue()
        self._mirror: set[str] = set()  # sessions whose worker paused or retired them on the result being handled
        self._next_poll = 0.0
        self._no_worker_since: float | None = None
        self._warned_unhosted = False
        self._resolved: tuple[OriginSpec, ...] | None = None  # the local origins as the workers open them
        # reads of the local origins in flight, on any worker, paused sessions or not: as many as the sessions' slots
        self.reads_in_flight = 0
        self.read_slots = self.jobs * len(self.placements)

    def session_lines(self) -> tuple[str, ...]:
        return tuple(
            f"{p.session.name} on worker {p.worker_name or '-'}: {p.state()}; {p.obtained} clips, {p.session.governor.pauses} pauses"
            for p in self.placements.values()
        )

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

    def _workers(self) -> Mapping[str, Mapping[str, Any]]:
        """The scheduler's records of its workers, by address (bounded: while the client
        reconnects, a plain ``scheduler_info()`` waits out its connect timeouts)."""
        self._check_scheduler()
        scheduler = self.client.scheduler
        try:
            if scheduler is None:
                raise OSError("the client has no scheduler")
            info = self.client.sync(scheduler.identity, n_workers=-1, callback_timeout=RESULT_TIMEOUT_S)
        except OSError as err:  # distributed's CommClosedError and TimeoutError are
            self._check_scheduler(err)
            raise
        workers: Mapping[str, Mapping[str, Any]] = info["workers"]
        return workers

    def _poll_workers(self) -> None:
        """Give up the clips of sessions whose worker left; pin the sessions that have none."""
        self._next_poll = time.monotonic() + WORKER_POLL_S
        workers = self._workers()
        for p in self.placements.values():
            if p.address is not None and p.address not in workers:
                lost = [k for k, x in self.pending.items() if x.placement is p]
                logger.warning("worker %s (%s) left the cluster: its %d clips go to the other sessions; session %s waits for a worker",
                               p.worker_name, p.address, len(lost), p.session.name)  # fmt: skip
                self._give_up([self.pending.pop(k) for k in lost])
                p.address, p.in_flight = None, 0
        hosted = Counter(p.address for p in self.placements.values() if p.address is not None)
        for p in self.placements.values():
            if p.address is not None:
                continue
            fitting = [a for a, w in workers.items() if fits(p.session.spec, w)]
            if fitting:
                address = min(fitting, key=lambda a: (hosted[a], str(workers[a].get("name")), a))
                hosted[address] += 1
                p.address, p.worker_name = address, str(workers[address].get("name"))
                logger.info("session %s on worker %s (%s)", p.session.name, p.worker_name, address)
        waiting = [p for p in self.placements.values() if p.address is None]
        if waiting and not self._warned_unhosted:
            self._warned_unhosted = True
            names = ", ".join(sorted(str(w.get("name")) for w in workers.values())) or "none"
            logger.warning("no worker of the cluster fits session(s) %s (workers: %s); they wait for one, the other sessions go on",
                           "; ".join(f"{p.session.name} ({_binding(p.session.spec)})" for p in waiting), names)  # fmt: skip
        if len(waiting) < len(self.placements):
            self._no_worker_since = None
        elif self._no_worker_since is None:
            self._no_worker_since = time.monotonic()
        elif time.monotonic() - self._no_worker_since > NO_WORKER_TIMEOUT_S:
            binding = "; ".join(f"{p.session.name}: {_binding(p.session.spec)}" for p in self.placements.values())
            names = ", ".join(sorted(str(w.get("name")) for w in workers.values())) or "none"
            raise DownloadError(
                f"no worker of the Dask cluster has hosted a session for {NO_WORKER_TIMEOUT_S:.0f} s (sessions {binding}; workers: {names}):"
                " start workers, or bind the sessions (download.sessions[].worker / .resource) to workers that exist; what was obtained is kept"
            )

    def _give_up(self, lost: Sequence[_Pending]) -> None:
        """Cancel submissions; their clips go back to their class's queue, no attempt counted."""
        if not lost:
            return
        with contextlib.suppress(Exception):  # the scheduler may be gone already
            self.client.cancel([p.future for p in lost])
        for p in lost:
            self._release(p)
            self._back(p.entry, p.origin_failures)

    def _back(self, entry: Any, origin_failures: list[Any]) -> None:
        """``entry`` back to its class's queue, no attempt counted (the failed proofs of its
        local origins are recorded; they are not read again this run)."""
        self._handle(_Outcome(entry, None, utc_now(), 0.0, closed=True, origin_failures=origin_failures))

    # -- scheduling -----------------------------------------------------------------------
    def _free(self) -> _Placement | None:
        """The hosted, usable session with the fewest clips in flight for its budget (the
        first on a tie), below ``jobs`` clips in flight."""
        free = [p for p in self.placements.values() if p.address is not None and p.session.usable and p.in_flight < self.jobs]
        return min(free, key=lambda p: p.in_flight / p.session.weight) if free else None

    def _work_left(self) -> bool:
        return bool(self.pending or self.retry_heap or any(st.gaps or (st.need > 0 and st.queue) for st in self.classes.values()))

    def _fill(self) -> None:
        """Start clips while there is room: a clip held by a local origin as a read on any
        worker (while a read slot is free, whatever the sessions' state), any other as a fetch
        by a free session.  A clip that finds no room goes back to the head of its class, and
        the filling stops after a round of the classes without a start."""
        misses = 0
        while misses <= len(self.classes):
            can_read = self.origins.has_local and self.reads_in_flight < self.read_slots
            placement = self._free()
            if not can_read and placement is None:
                return
            entry = self._take()
            if entry is None:
                return
            held = self._held(entry)
            if held and can_read:
                self._start(entry)
                self._read_origins(entry, held)
            elif not held and self.origins.has_local and not self.origins.youtube:
                self._start(entry)
                self._handle(_Outcome(entry, None, utc_now(), 0.0, self.origins.nowhere(entry, [])))
            elif not held and placement is not None:
                self._start(entry)
                self._fetch(placement, entry, [])
            else:
                self._untake(entry)
                misses += 1
                continue
            misses = 0
            if self.stop_exc is not None:
                return

    def _start(self, entry: Any) -> None:
        self._check_disk(len(self.pending))
        self.classes[entry.owner_mid].in_flight += 1

    def _read_origins(self, entry: Any, held: list[tuple[int, OriginClip]]) -> None:
        if self._resolved is None:
            self._resolved = self.origins.resolved()
        mids = tuple(self.origins.class_mids) if self.origins.class_mids is not None else None
        job = OriginJob(entry, tuple(held), self._resolved, mids, int(self.fetch_kwargs["sample_rate_hz"]), self.audio_format)
        fut = self.client.submit(read_on_worker, job, self.run_id, pure=False, key=f"afs-origin-{entry.clip_id}-{uuid.uuid4().hex[:12]}")
        self._track(fut, _Pending(fut, entry, None, []))

    def _fetch(self, placement: _Placement, entry: Any, tried: list[Any]) -> None:
        spec = placement.session.spec
        # the worker's session needs its name and budget only; its secrets travel in the job's keywords
        budget = replace(spec, cookies=None, cookies_from_browser=None, proxy=None, source_address=None, ytdlp={}, plugin_dirs=())
        job = ClipJob(entry.clip_id, watch_url(self.base_url, entry.ytid), entry.start_s, entry.end_s, self.audio_format, self.session_kwargs[spec.name])
        fut = self.client.submit(fetch_on_worker, job, budget, self.rules, self.run_id, self.fetch, workers=[placement.address], allow_other_workers=False,
                                 pure=False, key=f"afs-clip-{entry.clip_id}-{uuid.uuid4().hex[:12]}")  # fmt: skip
        self._track(fut, _Pending(fut, entry, placement, tried))

    def _track(self, fut: Future, pending: _Pending) -> None:
        self.pending[str(fut.key)] = pending
        if pending.placement is None:
            self.reads_in_flight += 1
        else:
            pending.placement.in_flight += 1
        fut.add_done_callback(self._done.put)

    def _release(self, pending: _Pending) -> None:
        """The slot ``pending`` held is free again."""
        if pending.placement is None:
            self.reads_in_flight -= 1
        else:
            pending.placement.in_flight -= 1

    # -- the loop -------------------------------------------------------------------------
    def execute(self) -> None:
        with self._run_bar() as bar:
            self._bar = bar
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
            if time.monotonic() >= self._next_poll:
                self._poll_workers()
            self._fill()
            if self.stop_exc is not None:
                raise self.stop_exc
            if not self._work_left():
                return
            timeout = min(0.25, max(0.01, self.retry_heap[0][0] - time.monotonic())) if self.retry_heap else 0.25
            with contextlib.suppress(queue.Empty):
                self._finish(self._done.get(timeout=timeout))
                while True:
                    self._finish(self._done.get_nowait())
            text = ", ".join(f"{p.session.name} {p.state()}" for p in self.placements.values())
            if self.origins.has_local:  # clips per origin while the run goes
                text = " ".join([text, *(f"{o} {n}" for o, n in sorted(self.origins.obtained.items()))])
            if text != self._postfix:  # one bar for the cluster, each session's state beside it
                self._postfix = text
                self._bar.set_postfix_str(text, refresh=True)

    def _finish(self, fut: Future) -> None:
        """Handle one finished task (a stale one, given up before, is ignored)."""
        p = self.pending.pop(str(fut.key), None)
        if p is None:
            return
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
            logger.warning("the result of %s was not readable within %.0f s; the clip is fetched again", p.entry.clip_id, RESULT_TIMEOUT_S)
            self._give_up([p])
            return
        except OSError as err:
            self._check_scheduler(err)
            raise
        self._release(p)
        if p.placement is None:
            self._finish_origins(p, rc)
            return
        session = p.placement.session
        if rc.deferred or rc.result is None:
            self._back(p.entry, p.origin_failures)
            return
        if rc.paused or rc.retired:
            self._mirror.add(session.name)
        result = self._materialize(p.entry, rc)
        if result.ok:
            p.placement.obtained += 1
        out = _Outcome(p.entry, rc.permit, rc.started_at, rc.elapsed_s, result, session=session, origin_failures=p.origin_failures)
        self._handle(out)

    def _finish_origins(self, p: _Pending, rc: RemoteClip) -> None:
        """A read of the local origins came back: the clip (written here), else on to YouTube
        through a session (when listed), else the clip is in no origin that could give it."""
        tried = list(rc.origin_failures)
        if rc.result is not None:
            self._handle(_Outcome(p.entry, None, rc.started_at, rc.elapsed_s, self._materialize(p.entry, rc), origin_failures=tried))
        elif not self.origins.youtube:
            self._handle(_Outcome(p.entry, None, rc.started_at, rc.elapsed_s, self.origins.nowhere(p.entry, tried), origin_failures=tried))
        elif (placement := self._free()) is not None:
            self._fetch(placement, p.entry, tried)
        else:  # every session is busy, paused or without a worker: the clip waits for one, its origins are not read again
            self._back(p.entry, tried)

    def _pause(self, session: Session, permit: Permit | None, reason: str | None) -> None:
        """A rate-limit signal: its worker has paused (or retired) the session already; the
        driver's copy of the session follows when this result was the one that did it."""
        if session.name in self._mirror:
            self._mirror.discard(session.name)
            super()._pause(session, None, reason)

    def _materialize(self, entry: Any, rc: RemoteClip) -> ClipResult:
        """The worker's result with its bytes checked and written atomically to the clip's path."""
        res = rc.result
        if res is None or not res.ok:
            return res  # type: ignore[return-value]  # the caller handles None
        problem = clip_bytes_problem(rc.data, res)
        if problem is not None:
            return replace(res, ok=False, reason=reasons.NETWORK, message=f"the clip's bytes from worker {rc.worker} are damaged: {problem}")
        dest = self.layout.clip_path(entry.owner_mid, entry.ytid, entry.start_s, ext=self.audio_format)
        atomic_write_bytes(dest, rc.data or b"")
        return replace(res, path=dest)


def _binding(spec: SessionSpec) -> str:
    return f"worker {spec.worker!r}" if spec.worker else f"resource {spec.resource!r}" if spec.resource else "any worker"


def run_download_dask(
    plan: SamplingPlan,
    root: Path | str,
    options: DownloadOptions | None = None,
    *,
    client: Client,
    fetch: Callable[..., ClipResult] | None = None,
) -> DownloadReport:
    """Download ``plan`` into ``root`` on the Dask cluster of ``client`` (see the module
    docstring): the sessions of ``options`` (``download.sessions``, or one), ``jobs`` clips in
    flight per session.  ``fetch``: as for :func:`~.runner.run_download`, a function the
    workers can import.  Returns the runner's :class:`DownloadReport`, with a line per
    session."""
    with contextlib.suppress(Exception):
        if "dashboard" in (client.scheduler_info(n_workers=0).get("services") or {}):
            logger.info("Dask dashboard: %s", client.dashboard_link)
    return download_with(functools.partial(_DaskRun, client=client), plan, root, options, fetch=fetch)


def download_on(engine: Engine, plan: SamplingPlan, root: Path | str, options: DownloadOptions | None = None, *,
                fetch: Callable[..., ClipResult] | None = None) -> DownloadReport:  # fmt: skip
    """Download ``plan`` into ``root`` where ``engine`` (the ``cluster`` section,
    :func:`~audioset_fewshot.engine.open_engine`) says: this process's threads for the local
    engine (:func:`~.runner.run_download`), the workers of a Dask cluster for
    ``cluster.engine: dask`` (:func:`run_download_dask`)."""
    from audioset_fewshot.engine import DaskEngine

    if isinstance(engine, DaskEngine):
        return run_download_dask(plan, root, options, client=engine.client, fetch=fetch)
    return run_download(plan, root, options, fetch=fetch)
