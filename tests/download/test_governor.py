"""The rate governor: token bucket, minimum interval, pool-wide pauses."""

from __future__ import annotations

import threading
import time

import pytest

from audioset_fewshot.download.governor import GovernorClosed, RateGovernor


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_token_bucket_and_min_interval() -> None:
    clock = FakeClock()
    gov = RateGovernor(max_per_hour=360.0, min_interval_s=2.0, clock=clock)  # one per 10 s
    assert gov.try_acquire() is not None
    assert gov.try_acquire() is None
    assert gov.wait_time() == pytest.approx(10.0)
    clock.t += 5
    assert gov.try_acquire() is None
    clock.t += 5
    assert gov.try_acquire() is not None
    # idle for an hour: no burst afterwards
    clock.t += 3600
    assert gov.try_acquire() is not None
    assert gov.try_acquire() is None
    assert gov.seconds_per_extraction() == pytest.approx(10.0)

    fast = RateGovernor(max_per_hour=None, min_interval_s=2.0, clock=clock)
    assert fast.try_acquire() is not None and fast.try_acquire() is None
    clock.t += 2
    assert fast.try_acquire() is not None
    free = RateGovernor(max_per_hour=0, min_interval_s=0, clock=clock)
    assert free.unlimited and all(free.try_acquire() for _ in range(100))


def test_pause_doubles_to_cap_and_dedupes_by_epoch() -> None:
    clock = FakeClock()
    gov = RateGovernor(max_per_hour=None, min_interval_s=0, pause_s=10, max_pause_s=25, clock=clock, wall_clock=lambda: 0.0)
    p = gov.try_acquire()
    q = gov.try_acquire()
    assert gov.pause(epoch=p.epoch) == 10
    assert gov.pause(epoch=q.epoch) is None  # the same burst: one pause
    assert gov.pauses == 1 and gov.try_acquire() is None
    assert gov.paused_until_text().startswith("paused until ")
    clock.t += 10
    r = gov.try_acquire()
    assert r is not None and gov.paused_until_text() is None
    assert gov.pause(epoch=r.epoch) == 20
    clock.t += 20
    assert gov.pause(epoch=gov.try_acquire().epoch) == 25  # capped


def test_blocked_workers_resume_and_close_wakes_them() -> None:
    gov = RateGovernor(max_per_hour=None, min_interval_s=0, pause_s=0.3)
    gov.pause()
    t0 = time.monotonic()
    gov.acquire(timeout_s=5)
    assert 0.25 <= time.monotonic() - t0 < 2.0
    errors: list[BaseException] = []
    stuck = RateGovernor(max_per_hour=None, min_interval_s=0, pause_s=60)
    stuck.pause()

    def waiter() -> None:
        try:
            stuck.acquire(timeout_s=10)
        except GovernorClosed as err:
            errors.append(err)

    th = threading.Thread(target=waiter)
    th.start()
    time.sleep(0.1)
    stuck.close()
    th.join(timeout=5)
    assert not th.is_alive() and len(errors) == 1
    slow = RateGovernor(max_per_hour=1, min_interval_s=0)
    slow.acquire(timeout_s=1)
    with pytest.raises(TimeoutError):
        slow.acquire(timeout_s=0.05)
