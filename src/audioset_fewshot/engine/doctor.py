"""``cluster doctor``: does the scheduler answer, and does every worker run what the driver runs?

Each worker must have yt-dlp, a working ffmpeg (the imageio-ffmpeg binary runs)
and audioset-fewshot, each at the driver's version: the bytes of a clip depend on
yt-dlp and ffmpeg, and a worker with another audioset-fewshot could compute other
features.  More checks can run on every worker (``checks``: the CLI adds one that
opens each local origin of ``download.origins`` at the driver's path, since the
workers read them with ``engine: dask``).  :func:`cluster_doctor` returns every
difference at once (a report, not an exception); the CLI exits 1 when there is
one.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from audioset_fewshot.config import ClusterOptions
from audioset_fewshot.errors import EngineError

TOOLS = ("audioset-fewshot", "yt-dlp", "ffmpeg")
FFMPEG_TIMEOUT_S = 20.0


def tool_versions() -> dict[str, str]:
    """The version of each of :data:`TOOLS` in this process's environment; ``missing: why`` when absent.

    Runs on the driver and, through ``Client.run``, on every worker."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str] = {}
    for name in ("audioset-fewshot", "yt-dlp"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "missing: not installed"
    if out["audioset-fewshot"].startswith("missing"):  # a source checkout on the path, not installed
        from audioset_fewshot import __version__

        out["audioset-fewshot"] = __version__
    out["ffmpeg"] = _ffmpeg_version()
    return out


def _ffmpeg_version() -> str:
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as err:
        return f"missing: {err}"
    try:
        proc = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, text=True, timeout=FFMPEG_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"missing: {exe} does not run ({err})"
    first = proc.stdout.splitlines()[0] if proc.stdout else ""
    if proc.returncode != 0 or not first.startswith("ffmpeg version"):
        return f"missing: {exe} exited {proc.returncode}"
    return first.split()[2]


@dataclass(frozen=True)
class WorkerCheck:
    """One worker's tools and how they differ from the driver's."""

    address: str
    versions: dict[str, str]
    problems: tuple[str, ...]


@dataclass(frozen=True)
class ClusterDoctorReport:
    """What :func:`cluster_doctor` found.  ``ok``: the scheduler answered and every worker matches."""

    engine: str
    description: str
    driver: dict[str, str]
    workers: tuple[WorkerCheck, ...] = ()
    problems: tuple[str, ...] = field(default=())  # cluster-wide (no scheduler, no worker)

    @property
    def ok(self) -> bool:
        return not self.problems and all(not w.problems for w in self.workers)

    def lines(self) -> list[str]:
        out = [f"engine: {self.engine} ({self.description})"]
        out.append("driver: " + ", ".join(f"{k} {v}" for k, v in self.driver.items()))
        out += [f"problem: {p}" for p in self.problems]
        for w in self.workers:
            status = "ok" if not w.problems else "; ".join(w.problems)
            out.append(f"worker {w.address}: {status}")
        return out


def compare(driver: dict[str, str], worker: dict[str, str]) -> tuple[str, ...]:
    """How a worker's tools differ from the driver's (empty: they match)."""
    problems = []
    for name in TOOLS:
        theirs = worker.get(name, "missing: not reported")
        if theirs.startswith("missing"):
            problems.append(f"{name} {theirs}")
        elif theirs != driver.get(name):
            problems.append(f"{name} {theirs}, the driver has {driver.get(name)}")
    return tuple(problems)


def cluster_doctor(options: ClusterOptions, *, checks: Sequence[Callable[[], list[str]]] = ()) -> ClusterDoctorReport:
    """Open the cluster ``options`` describe (bounded by ``timeout_s``), compare every
    worker's tools with the driver's, run ``checks`` on every worker (each a picklable
    callable returning that worker's problems), and close what was started."""
    from audioset_fewshot.engine.cluster import DaskEngine, open_engine

    driver = tool_versions()
    if options.engine == "local":
        problems = tuple(f"{k} {v}" for k, v in driver.items() if v.startswith("missing"))
        return ClusterDoctorReport("local", "this machine only: cluster.engine is local", driver, problems=problems)
    try:
        with open_engine(options) as engine:
            if not isinstance(engine, DaskEngine):  # pragma: no cover - engine: dask opens a Dask engine
                raise EngineError(f"cluster.engine {options.engine!r} opened no Dask client")
            try:
                found = engine.client.run(tool_versions, on_error="return")
                more = [engine.client.run(check, on_error="return") for check in checks]
            except (OSError, TimeoutError) as err:
                return ClusterDoctorReport("dask", engine.description, driver, problems=(f"the scheduler stopped answering: {err}",))
            workers = []
            for address, versions in sorted(found.items()):
                if isinstance(versions, BaseException):
                    workers.append(WorkerCheck(address, {}, (f"the check failed on the worker: {type(versions).__name__}: {versions}",)))
                else:
                    extra: list[str] = []
                    for got in (m.get(address, []) for m in more):
                        extra += [f"a check failed on the worker: {type(got).__name__}: {got}"] if isinstance(got, BaseException) else list(got)
                    workers.append(WorkerCheck(address, dict(versions), compare(driver, versions) + tuple(extra)))
            missing = () if workers else ("no worker is connected to the scheduler",)
            return ClusterDoctorReport("dask", engine.description, driver, tuple(workers), problems=missing)
    except EngineError as err:
        return ClusterDoctorReport("dask", options.address or options.jobqueue or "LocalCluster", driver, problems=(str(err),))


__all__ = ["TOOLS", "ClusterDoctorReport", "WorkerCheck", "cluster_doctor", "compare", "tool_versions"]
