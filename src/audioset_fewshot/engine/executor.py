"""Executors: run one chunk function over many chunks, here or on a Dask cluster.

A stage cuts its rows into chunks and maps ONE module-level function over them
(``process.pack._pack_task``, ``process.clean._measure_chunk``, ...).  Where that
function runs is the executor's business:

* :class:`LocalExecutor`: this machine, in ``workers`` forked processes (or
  threads, for torch code that releases the GIL); one worker runs inline;
* :class:`DaskExecutor`: the workers of a ``distributed.Client``.

Both keep a bounded number of chunks in flight (results wait in the driver's
memory otherwise), and both give the same results for the same chunks, so a Dask
run and a local run write the same bytes.  A Dask worker that dies mid-chunk is
replaced by the scheduler, which runs the chunk again elsewhere: chunk functions
are idempotent (they write a region of a preallocated file, or return data).  A
scheduler that goes away ends the map with :class:`~audioset_fewshot.errors.EngineError`
within ``poll_s`` seconds or so, never a hang.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sized
from concurrent import futures as cf
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from audioset_fewshot.errors import EngineError

if TYPE_CHECKING:
    from distributed import Client

T = TypeVar("T")
R = TypeVar("R")

IN_FLIGHT_PER_WORKER = 4  # chunks queued per worker: enough to hide a result's round trip, little memory
MAX_CHUNKS_PER_TASK = 16  # a Dask task runs up to this many chunks when a map has many


class Executor(Protocol):
    """Where a stage's chunks run.  ``capacity``: chunks that run at the same time."""

    @property
    def capacity(self) -> int: ...

    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """``fn(item)`` for every item, yielded as each finishes."""
        ...

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """``fn(item)`` for every item, yielded in the order of ``items``."""
        ...


def _start_method() -> str:
    return "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"


class LocalExecutor:
    """``workers`` processes of this machine (``threads=True``: threads of this process).

    The pool starts on the first map of more than one item and lives until :meth:`close`;
    with one worker (or one item) the function runs inline, with no pool at all.
    Processes are forked where the platform can (milliseconds, no re-import of the
    caller's ``__main__``) and die on SIGTERM like any worker."""

    def __init__(self, workers: int, *, threads: bool = False) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self.threads = threads
        self._pool: cf.Executor | None = None

    @property
    def capacity(self) -> int:
        return self.workers

    def _get_pool(self) -> cf.Executor:
        if self._pool is None:
            if self.threads:
                self._pool = cf.ThreadPoolExecutor(self.workers, thread_name_prefix="chunk")
            else:
                from audioset_fewshot._signals import default_sigterm

                ctx = multiprocessing.get_context(_start_method())
                self._pool = cf.ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=default_sigterm)
        return self._pool

    def _run(self, fn: Callable[[T], R], items: Iterable[T], *, ordered: bool) -> Iterator[R]:
        it = iter(items)
        if self.workers == 1:
            for item in it:
                yield fn(item)
            return
        head = [x for _, x in zip(range(2), it)]
        if len(head) < 2:
            for item in head:
                yield fn(item)
            return
        pool = self._get_pool()
        pending: deque[cf.Future[R]] = deque()
        window = self.workers * IN_FLIGHT_PER_WORKER
        source = itertools.chain(head, it)
        try:
            for item in source:
                pending.append(pool.submit(fn, item))
                while len(pending) >= window:
                    yield from self._drain(pending, ordered=ordered, until=window - 1)
            yield from self._drain(pending, ordered=ordered, until=0)
        finally:
            for f in pending:
                f.cancel()

    @staticmethod
    def _drain(pending: deque[cf.Future[R]], *, ordered: bool, until: int) -> Iterator[R]:
        while len(pending) > until:
            if ordered:
                yield pending.popleft().result()
                continue
            done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for f in [f for f in pending if f in done]:
                pending.remove(f)
                yield f.result()

    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        return self._run(fn, items, ordered=False)

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        return self._run(fn, items, ordered=True)

    def close(self) -> None:
        """Stop the pool (processes still running a chunk are ended)."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            if isinstance(pool, cf.ProcessPoolExecutor):
                for proc in list(getattr(pool, "_processes", {}).values()):  # a clean stop must not wait for a stuck decoder
                    with contextlib.suppress(Exception):
                        if proc.is_alive():
                            proc.terminate()
            pool.shutdown(wait=True, cancel_futures=True)


def _run_chunks(fn: Callable[[T], R], items: list[T]) -> list[R]:
    """One Dask task: ``fn`` over a few chunks, in order."""
    return [fn(item) for item in items]


def _lost() -> tuple[type[BaseException], ...]:
    """What waiting on futures raises when the client lost the scheduler: a comm error, or
    the futures' cancellation (``distributed.client.Future(s)CancelledError``)."""
    from distributed import client

    names = ("FutureCancelledError", "FuturesCancelledError")
    return (OSError, *(c for c in (getattr(client, n, None) for n in names) if isinstance(c, type) and issubclass(c, BaseException)))


class DaskExecutor:
    """The workers of a Dask cluster, through ``client``.

    A task runs one chunk, or a few in order when a map has many (at most
    ``MAX_CHUNKS_PER_TASK``, about ``IN_FLIGHT_PER_WORKER`` tasks per worker in all):
    each task costs scheduler round trips, which a busy machine makes slow.  Its key
    names the chunk function and is unique (the same chunk runs again if asked).  ``poll_s``: how often a waiting map checks that the scheduler is still
    there.  A chunk whose task killed ``distributed.scheduler.allowed-failures``
    workers in a row raises :class:`EngineError`; an error inside the chunk function
    is raised as it is."""

    def __init__(self, client: Client, *, poll_s: float = 1.0, description: str = "") -> None:
        self.client = client
        self.poll_s = poll_s
        self.description = description or "of this client"

    @property
    def capacity(self) -> int:
        try:
            n = sum(self.client.nthreads().values())
        except Exception as err:  # noqa: BLE001 - any comm failure means the scheduler is not there
            raise self._gone(err) from err
        return max(1, int(n))

    def _gone(self, err: BaseException | None = None) -> EngineError:
        if err is not None and "ancelled" in type(err).__name__:
            why = " (the client lost its connection, its tasks were cancelled)"
        else:  # one line: a comm error's first line says enough
            why = f" ({type(err).__name__}: {str(err).splitlines()[0]})" if err is not None and str(err).strip() else ""
        return EngineError(
            f"the Dask scheduler {self.description} went away mid-run{why}; what was committed is kept: "
            "start the cluster again (check it with 'audioset-fewshot cluster doctor') and run the same command to resume"
        )

    def _check(self) -> None:
        if self.client.status not in ("running", "connecting", "newly-created"):
            raise self._gone()

    def _result(self, fut: Any) -> Any:
        from distributed.scheduler import KilledWorker

        try:
            return fut.result(timeout=max(self.poll_s * 10, 30.0))
        except KilledWorker as err:
            raise EngineError(
                f"a chunk ({fut.key}) killed every Dask worker that ran it ({err}); look at the workers' logs "
                "(memory limit? a crash in a decoder?) and run the same command again to resume"
            ) from err
        except _lost() as err:
            raise self._gone(err) from err
        except TimeoutError as err:
            raise self._gone(err) from err

    def _run(self, fn: Callable[[T], R], items: Iterable[T], *, ordered: bool) -> Iterator[R]:
        from distributed import wait

        capacity = self.capacity
        window = capacity * IN_FLIGHT_PER_WORKER
        # a task runs several chunks when there are many: each task costs scheduler round trips
        size = max(1, min(MAX_CHUNKS_PER_TASK, len(items) // window)) if isinstance(items, Sized) else 1
        pending: deque[Any] = deque()
        it = iter(items)
        try:
            while group := list(itertools.islice(it, size)):
                self._check()
                try:  # the key names the stage's function (the dashboard shows it)
                    pending.append(self.client.submit(_run_chunks, fn, group, key=f"{getattr(fn, '__name__', 'chunk')}-{uuid.uuid4().hex}"))
                except Exception as err:  # noqa: BLE001 - a closed client raises several types
                    self._check()
                    raise self._gone(err) from err
                while len(pending) >= window:
                    for results in self._drain(pending, wait, ordered=ordered, until=window - 1):
                        yield from results
            for results in self._drain(pending, wait, ordered=ordered, until=0):
                yield from results
        finally:
            if pending:
                with contextlib.suppress(Exception):
                    self.client.cancel(list(pending))

    def _drain(self, pending: deque[Any], wait: Callable[..., Any], *, ordered: bool, until: int) -> Iterator[Any]:
        while len(pending) > until:
            # wait in slices, checking the client between them: a dead scheduler never hangs the run
            target = [pending[0]] if ordered else list(pending)
            try:
                with self.client.as_current():  # wait() finds its client there (ours is not the default)
                    done, _ = wait(target, timeout=self.poll_s, return_when="FIRST_COMPLETED")
            except TimeoutError:
                self._check()
                continue
            except _lost() as err:  # the client lost the scheduler: its futures are cancelled
                raise self._gone(err) from err
            if not done:
                self._check()
                continue
            if ordered:
                yield self._result(pending.popleft())
                continue
            for f in [f for f in pending if f in done]:
                pending.remove(f)
                yield self._result(f)

    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        return self._run(fn, items, ordered=False)

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        return self._run(fn, items, ordered=True)


__all__ = ["IN_FLIGHT_PER_WORKER", "DaskExecutor", "Executor", "LocalExecutor"]
