"""A Dask scheduler and worker as processes of their own (so a test can kill one), on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Scheduler:
    process: subprocess.Popen[bytes]
    address: str


def start_scheduler(folder: Path, *, worker_pythonpath: tuple[str, ...] = ()) -> tuple[Scheduler, list[subprocess.Popen[bytes]]]:
    """``dask scheduler`` on 127.0.0.1 and one single-threaded ``dask worker`` (its PYTHONPATH:
    ``worker_pythonpath``, then this test session's path); returns the scheduler and every process."""
    sched_file = folder / "scheduler.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}  # the workers import this checkout
    out = {"cwd": folder, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    sched = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(sched_file)],
        env=env,
        **out,  # type: ignore[arg-type]
    )
    procs = [sched]
    deadline = time.monotonic() + 60
    while not sched_file.exists() and time.monotonic() < deadline and sched.poll() is None:
        time.sleep(0.1)
    address = json.loads(sched_file.read_text())["address"]
    worker_env = {**env, "PYTHONPATH": os.pathsep.join((*worker_pythonpath, env["PYTHONPATH"]))}
    procs.append(
        subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1", "--no-dashboard", "--death-timeout", "20"],
            env=worker_env,
            **out,  # type: ignore[arg-type]
        )
    )
    return Scheduler(sched, address), procs


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(30)


def kill_a_worker_running(client: Any, prefix: str, killed: list[int], stop: threading.Event) -> None:
    """Kill (SIGKILL) the worker process of ``client``'s cluster that runs (or holds) a task
    whose key starts with ``prefix``, once; its pid goes to ``killed``.  Gives up after
    120 s or when ``stop`` is set."""
    pids = client.run(os.getpid)
    deadline = time.monotonic() + 120
    while not stop.is_set() and time.monotonic() < deadline:
        for address, keys in client.processing().items():
            if any(str(k).startswith(prefix) for k in keys):
                os.kill(pids[address], signal.SIGKILL)
                killed.append(pids[address])
                return
        time.sleep(0.01)
