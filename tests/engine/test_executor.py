"""The local executor: processes, threads or inline; bounded in flight; errors raised as they are."""

from __future__ import annotations

import os
import threading

import pytest

from audioset_fewshot.engine import LOCAL, LocalExecutor, open_engine
from audioset_fewshot.errors import ProcessingError


def _square_pid(x: int) -> tuple[int, int]:
    return x * x, os.getpid()


def _square_thread(x: int) -> tuple[int, int]:
    return x * x, threading.get_ident()


def _fail_on_3(x: int) -> int:
    if x == 3:
        raise ProcessingError("chunk 3 is bad")
    return x


@pytest.mark.timeout(60)
def test_processes_give_every_result_in_order_and_unordered() -> None:
    with LOCAL.executor(workers=2) as ex:
        ordered = list(ex.map(_square_pid, range(40)))
        assert [v for v, _ in ordered] == [x * x for x in range(40)]
        assert os.getpid() not in {pid for _, pid in ordered}  # ran in the pool, not here
        assert sorted(v for v, _ in ex.map_unordered(_square_pid, range(40))) == [x * x for x in range(40)]


def test_one_worker_runs_inline_and_threads_run_in_this_process() -> None:
    with LOCAL.executor(workers=1) as ex:
        assert {pid for _, pid in ex.map(_square_pid, range(5))} == {os.getpid()}
    with LOCAL.executor(workers=3, threads=True) as ex:
        out = list(ex.map(_square_thread, range(30)))
        assert [v for v, _ in out] == [x * x for x in range(30)]


@pytest.mark.timeout(60)
def test_an_error_in_a_chunk_is_raised_as_it_is() -> None:
    with LOCAL.executor(workers=2) as ex, pytest.raises(ProcessingError, match="chunk 3 is bad"):
        list(ex.map_unordered(_fail_on_3, range(10)))


def test_items_are_consumed_lazily_with_a_bounded_window() -> None:
    seen: list[int] = []

    def items() -> object:
        for i in range(1000):
            seen.append(i)
            yield i

    ex = LocalExecutor(2, threads=True)
    try:
        it = ex.map(_square_thread, items())  # type: ignore[arg-type]
        next(it)
        assert len(seen) <= 2 * 4 + 1  # the window, not the whole input
    finally:
        ex.close()


def test_open_engine_local_starts_nothing() -> None:
    with open_engine() as engine:
        assert engine is LOCAL and engine.name == "local" and engine.dashboard_link is None


def test_workers_below_one_are_refused() -> None:
    with pytest.raises(ValueError, match="workers must be >= 1"):
        LocalExecutor(0)
