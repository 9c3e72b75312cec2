"""SIGTERM handled like Ctrl-C.

SLURM, Dask, Kubernetes and ``timeout`` stop a job with SIGTERM (then SIGKILL
after a grace period).  Python's default for SIGTERM is to die at once, without
the cleanup a Ctrl-C gets.  :func:`sigterm_as_interrupt` turns the first SIGTERM
into :class:`~audioset_fewshot.errors.Terminated`, a ``KeyboardInterrupt``, so
every path that commits and cleans up on Ctrl-C does the same on SIGTERM; the
CLI then exits with :data:`~audioset_fewshot.errors.EXIT_TERMINATED` (143).
Further SIGTERMs during that cleanup are ignored (SIGKILL still ends it).

Worker processes call :func:`default_sigterm` first, so that a pool's
``terminate()`` (which sends SIGTERM) still ends them at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from audioset_fewshot.errors import Terminated


@contextlib.contextmanager
def sigterm_as_interrupt(*, ignore_after: bool = False) -> Iterator[None]:
    """Within the block, the first SIGTERM raises :class:`Terminated` in the main thread.

    ``ignore_after``: when the block ends, SIGTERM is ignored instead of restored (the
    process is about to exit: a SIGTERM that lands while it shuts down changes nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _handler(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one is enough: the cleanup must not be cut short
        raise Terminated("terminated by SIGTERM")

    previous = signal.signal(signal.SIGTERM, _handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN if ignore_after else previous)


def default_sigterm() -> None:
    """Initializer of worker processes: SIGTERM ends them (a forked child inherits the handler)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


__all__ = ["default_sigterm", "sigterm_as_interrupt"]
