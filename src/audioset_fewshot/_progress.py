"""The one progress helper: a tqdm bar on a terminal, a progress line at a fixed
interval otherwise.

Library code never prints; it reports progress through :func:`progress` /
:func:`progress_bar` and logs through ``logging.getLogger(__name__)``.

* stderr is a terminal: a tqdm bar on stderr.
* stderr is not a terminal (``nohup``, SLURM, a pipe, CI): no bar, but every
  ``interval`` seconds (default 60, environment variable
  ``AUDIOSET_FEWSHOT_PROGRESS_INTERVAL_S``) one line on stderr with the counts,
  the rate, the ETA and the state the caller set (``"paused until 14:05"``),
  written by a timer so that a long pause still logs; a closing line follows
  when any line was written.  A task shorter than the interval writes nothing.
* ``AUDIOSET_FEWSHOT_PROGRESS=1`` forces the bar, ``0`` turns bar and lines off.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any, Protocol, TextIO, TypeVar

T = TypeVar("T")

PROGRESS_ENV = "AUDIOSET_FEWSHOT_PROGRESS"
INTERVAL_ENV = "AUDIOSET_FEWSHOT_PROGRESS_INTERVAL_S"
DEFAULT_INTERVAL_S = 60.0


class ProgressBar(Protocol):
    """What callers use of a bar (tqdm's names)."""

    def update(self, n: int | float = 1) -> Any: ...

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> Any: ...

    def __enter__(self) -> ProgressBar: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> Any: ...


def _forced() -> bool | None:
    value = os.environ.get(PROGRESS_ENV)
    if value is None:
        return None
    return value not in ("", "0", "false", "no")


def progress_enabled() -> bool:
    """Whether a tqdm bar is drawn (a terminal, or forced on)."""
    forced = _forced()
    return forced if forced is not None else sys.stderr.isatty()


def progress_interval_s() -> float:
    """Seconds between two progress lines when stderr is not a terminal."""
    raw = os.environ.get(INTERVAL_ENV)
    try:
        value = float(raw) if raw else DEFAULT_INTERVAL_S
    except ValueError:
        value = DEFAULT_INTERVAL_S
    return value if math.isfinite(value) and value > 0 else DEFAULT_INTERVAL_S


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{d}d {h:02d}:{m:02d}:{s:02d}" if d else f"{h:02d}:{m:02d}:{s:02d}"


def _amount(value: float, *, scale: bool) -> str:
    if not scale:
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"
    for unit in ("", "k", "M", "G", "T"):
        if abs(value) < 1000:
            return f"{value:.1f}{unit}"
        value /= 1000.0
    return f"{value:.1f}P"


class LogProgress:
    """The bar's stand-in without a terminal: a line on stderr every ``interval_s``."""

    def __init__(self, *, total: int | float | None, desc: str, unit: str = "it", interval_s: float | None = None,
                 initial: int | float = 0, unit_scale: bool = False, stream: TextIO | None = None) -> None:  # fmt: skip
        self.total, self.desc, self.unit, self.unit_scale = total, desc, unit, bool(unit_scale)
        self.interval_s = interval_s if interval_s is not None else progress_interval_s()
        self.n: float = initial
        self.initial: float = initial
        self.postfix = ""
        self.lines = 0
        self._stream = stream
        self._t0 = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"afs-progress-{desc}", daemon=True)
        self._thread.start()

    # -- tqdm's interface --------------------------------------------------------------
    def update(self, n: int | float = 1) -> None:
        with self._lock:
            self.n += n

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        with self._lock:
            self.postfix = s

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=5.0)
        if self.lines:
            self._emit(final=True)

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- the lines -----------------------------------------------------------------------
    def line(self, *, final: bool = False) -> str:
        """``desc: n/total unit (pct), rate unit/s, ETA hh:mm:ss[, postfix]``."""
        with self._lock:
            n, postfix = self.n, self.postfix
        elapsed = max(1e-9, time.monotonic() - self._t0)
        rate = (n - self.initial) / elapsed
        done = _amount(n, scale=self.unit_scale)
        parts: list[str] = []
        if self.total:
            parts.append(f"{done}/{_amount(self.total, scale=self.unit_scale)} {self.unit} ({100.0 * n / self.total:.1f} %)")
        else:
            parts.append(f"{done} {self.unit}")
        parts.append(f"{_amount(rate, scale=self.unit_scale) if self.unit_scale else f'{rate:.3g}'} {self.unit}/s")
        if final:
            parts.append(f"stopped after {_duration(elapsed)}" if self.total and n < self.total else f"done in {_duration(elapsed)}")
        elif self.total:
            left = self.total - n
            parts.append(f"ETA {_duration(left / rate)}" if rate > 0 else "ETA unknown (no progress yet)")
        if postfix:
            parts.append(postfix)
        return f"{time.strftime('%Y-%m-%d %H:%M:%S')} {self.desc}: " + ", ".join(parts)

    def _emit(self, *, final: bool = False) -> None:
        stream = self._stream or sys.stderr
        try:
            stream.write(self.line(final=final) + "\n")
            stream.flush()
        except (OSError, ValueError):  # a closed stream: progress is best effort
            return
        self.lines += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._emit()


class _Quiet:
    """No bar and no lines (``AUDIOSET_FEWSHOT_PROGRESS=0``)."""

    def update(self, n: int | float = 1) -> None:
        return None

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        return None

    def __enter__(self) -> _Quiet:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        return None


def progress_bar(*, total: int | float | None, desc: str, unit: str = "it", **kwargs: Any) -> ProgressBar:
    """A bar with tqdm's ``update`` / ``set_postfix_str`` / context manager: tqdm on a
    terminal, :class:`LogProgress` without one, nothing when turned off."""
    if progress_enabled():
        from tqdm.auto import tqdm

        bar: ProgressBar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=False, **kwargs)
        return bar
    if _forced() is False:
        return _Quiet()
    return LogProgress(total=total, desc=desc, unit=unit, initial=kwargs.get("initial", 0), unit_scale=bool(kwargs.get("unit_scale", False)))


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str, unit: str = "it") -> Iterator[T]:
    """Iterate with progress (see the module docstring)."""
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    with progress_bar(total=total, desc=desc, unit=unit) as bar:
        for item in iterable:
            yield item
            bar.update(1)
