"""Open the engine of a run from the ``cluster`` section, and close what it started.

``engine: local`` (the default) is this machine's process pools: nothing is
started up front, each stage opens a pool of its own ``workers``.

``engine: dask`` connects a ``distributed.Client`` to

* ``address``: an existing scheduler (``tcp://HOST:8786``), left running at the end;
* ``jobqueue`` (``slurm`` / ``pbs``): a scheduler in this process and ``job_count``
  batch jobs of ``job_cores`` single-threaded worker processes each (dask-jobqueue);
* otherwise a ``LocalCluster`` of ``workers`` single-threaded worker processes.

:func:`open_engine` is a context manager: whatever it started (client, cluster,
batch jobs) is closed when the block ends, however it ends, within bounded time.
Workers read the clips and write the arrays under the dataset root, so the root
must be on a filesystem every worker sees at the same path (see docs/cluster.md).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from audioset_fewshot.config import ClusterOptions
from audioset_fewshot.engine.executor import DaskExecutor, Executor, LocalExecutor
from audioset_fewshot.errors import EngineError

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 30.0  # bound on closing a client or a cluster we started


class Engine(Protocol):
    """Where a run's stages run their chunks."""

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str:
        """Which cluster, for messages."""
        ...

    @property
    def dashboard_link(self) -> str | None:
        """The Dask dashboard's address, when there is one."""
        ...

    def executor(self, *, workers: int, threads: bool = False) -> AbstractContextManager[Executor]:
        """An executor for one stage.  ``workers``/``threads``: the local pool's size and
        kind (a Dask engine uses its cluster's workers whatever they say)."""
        ...


class LocalEngine:
    """This machine: each stage opens a pool of its own ``workers`` and closes it."""

    name = "local"
    description = "this machine's process pools"
    dashboard_link = None

    @contextlib.contextmanager
    def executor(self, *, workers: int, threads: bool = False) -> Iterator[Executor]:
        ex = LocalExecutor(workers, threads=threads)
        try:
            yield ex
        finally:
            ex.close()


LOCAL = LocalEngine()


@dataclass(frozen=True)
class DaskEngine:
    """A connected Dask client; ``description`` says which cluster (for messages)."""

    client: Client
    description: str
    dashboard_link: str | None = None
    poll_s: float = 1.0

    @property
    def name(self) -> str:
        return "dask"

    @contextlib.contextmanager
    def executor(self, *, workers: int, threads: bool = False) -> Iterator[Executor]:
        yield DaskExecutor(self.client, poll_s=self.poll_s, description=self.description)


def jobqueue_kwargs(options: ClusterOptions) -> dict[str, Any]:
    """The dask-jobqueue cluster's keywords for the ``cluster`` section's ``job_*`` fields:
    one worker process per core, one thread each (the chunk functions are single-threaded)."""
    o = options
    kwargs: dict[str, Any] = {
        "cores": o.job_cores,
        "processes": o.job_cores,
        "memory": o.job_memory.replace(" ", ""),
        "walltime": o.job_walltime.strip(),
        "job_name": "audioset-fewshot",
        "job_extra_directives": list(o.job_extra),
        "scheduler_options": {"dashboard_address": ":0"},  # any free port: a fixed one may be taken on a shared login node
        "silence_logs": "error",
    }
    if o.job_queue:
        kwargs["queue"] = o.job_queue
    if o.job_account:
        kwargs["account"] = o.job_account
    return kwargs


def jobqueue_cluster(options: ClusterOptions) -> Any:
    """A dask-jobqueue cluster (no job submitted yet: ``scale`` submits them)."""
    if options.jobqueue is None:
        raise EngineError("cluster.jobqueue is not set: give slurm or pbs")
    from dask_jobqueue import PBSCluster, SLURMCluster

    cls = SLURMCluster if options.jobqueue == "slurm" else PBSCluster
    return cls(**jobqueue_kwargs(options))


def job_script(options: ClusterOptions) -> str:
    """The batch script each worker job of ``options`` runs (nothing is submitted)."""
    quiet = logging.getLogger("distributed")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the scheduler started to render the script is no news
    try:
        cluster = jobqueue_cluster(options)
        try:
            script: str = cluster.job_script()
        finally:
            cluster.close(timeout=CLOSE_TIMEOUT_S)
    finally:
        quiet.setLevel(level)
    return script


def _dashboard_address() -> str | None:
    """ ":0" (any free port) when the dashboard can run (bokeh is installed), else none."""
    import importlib.util

    return ":0" if importlib.util.find_spec("bokeh") is not None else None


@contextlib.contextmanager
def open_engine(options: ClusterOptions | None = None) -> Iterator[Engine]:
    """The engine ``options`` describe, open for the block (see the module docstring).

    Raises :class:`EngineError` when the scheduler does not answer or no worker joins
    within ``timeout_s``; closes everything it started when the block ends."""
    o = options if options is not None else ClusterOptions()
    if o.engine == "local":
        yield LOCAL
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError as err:  # pragma: no cover - declared dependencies
        raise EngineError("cluster.engine is dask but the 'distributed' package is missing: pip install distributed dask-jobqueue") from err

    with contextlib.ExitStack() as stack:
        cluster: Any = None
        if o.address is not None:
            description = f"at {o.address}"
            target: Any = o.address.strip()
        elif o.jobqueue is not None:
            cluster = jobqueue_cluster(o)
            stack.callback(_close, cluster, "cluster")
            cluster.scale(jobs=o.job_count)
            description = f"of {o.job_count} {o.jobqueue} job(s) at {cluster.scheduler_address}"
            target = cluster
        else:
            import dask

            try:
                # Dask's nanny sets MALLOC_TRIM_THRESHOLD_ in its workers, which turns glibc's
                # growing mmap threshold off: every large numpy / torch buffer is then mapped and
                # unmapped again, which made the log-mels twice as slow as in the local pool
                with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
                    cluster = LocalCluster(
                        n_workers=o.workers,
                        threads_per_worker=1,
                        processes=True,
                        host="127.0.0.1",
                        dashboard_address=":0",  # any free port (the dashboard when bokeh is installed, else the health endpoint)
                        silence_logs=logging.ERROR,
                    )
            except (RuntimeError, OSError, TimeoutError) as err:
                raise EngineError(
                    f"the Dask LocalCluster of {o.workers} workers did not start ({err}); worker processes start by "
                    "re-importing the main script: a script that opens the engine needs an 'if __name__ == \"__main__\":' guard"
                ) from err
            stack.callback(_close, cluster, "cluster")
            description = f"LocalCluster of {o.workers} workers at {cluster.scheduler_address}"
            target = cluster
        try:
            client = Client(target, timeout=f"{o.timeout_s}s", set_as_default=False)
        except (OSError, TimeoutError) as err:
            raise EngineError(
                f"the Dask scheduler {description} does not answer within {o.timeout_s:g} s ({err}); "
                "is it running and reachable from here? (cluster.address, cluster.timeout_s; 'audioset-fewshot cluster doctor')"
            ) from err
        stack.callback(_close, client, "client")
        try:
            client.wait_for_workers(1, timeout=o.timeout_s)
        except (OSError, TimeoutError) as err:
            raise EngineError(
                f"no Dask worker joined the scheduler {description} within {o.timeout_s:g} s; "
                "start workers (or wait for the batch jobs: raise cluster.timeout_s) and run again"
            ) from err
        link = client.dashboard_link if _dashboard_address() is not None or o.address is not None else None
        log.info("engine: Dask %s (%d worker threads)", description, sum(client.nthreads().values()))
        yield DaskEngine(client=client, description=description, dashboard_link=link)


def _close(thing: Any, what: str) -> None:
    """Close a client or cluster we started, bounded in time; a failure to close is logged, not raised."""
    try:
        thing.close(timeout=CLOSE_TIMEOUT_S)
    except Exception as err:  # noqa: BLE001 - closing after a scheduler vanished fails in many ways
        log.debug("engine: closing the %s failed: %s", what, err)


__all__ = ["LOCAL", "DaskEngine", "Engine", "LocalEngine", "job_script", "jobqueue_cluster", "jobqueue_kwargs", "open_engine"]
