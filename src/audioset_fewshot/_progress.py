"""The one progress helper: a tqdm bar on a terminal, silent otherwise.

Library code never prints; it reports progress through :func:`progress` and
logs through ``logging.getLogger(__name__)``.  The bar goes to stderr and is
disabled when stderr is not a terminal (CI, pipes) unless forced with the
environment variable ``AUDIOSET_FEWSHOT_PROGRESS=1`` (``0`` forces it off).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def progress_enabled() -> bool:
    forced = os.environ.get("AUDIOSET_FEWSHOT_PROGRESS")
    if forced is not None:
        return forced not in ("", "0", "false", "no")
    return sys.stderr.isatty()


def progress_bar(*, total: int | float | None, desc: str, unit: str = "it", **kwargs: Any) -> Any:
    """Return a tqdm bar (usable as a context manager, ``update``, ``set_postfix_str``)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not progress_enabled(), file=sys.stderr, dynamic_ncols=True, leave=False, **kwargs)


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str, unit: str = "it") -> Iterator[T]:
    """Iterate with a progress bar (quiet when stderr is not a terminal)."""
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    with progress_bar(total=total, desc=desc, unit=unit) as bar:
        for item in iterable:
            yield item
            bar.update(1)
