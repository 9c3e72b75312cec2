"""The dataset roots this process holds (see :mod:`audioset_fewshot._root`), and the
check every write under one of them makes: no folder on the way is a planted link.

Kept apart from ``_root`` so that ``_io`` (which ``_root`` uses) can ask it."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from audioset_fewshot.errors import UsageError

held_depth: dict[str, int] = {}  # realpath of a root -> depth of hold_root in this process
held_paths: dict[str, str] = {}  # realpath of a held root -> the absolute path it was given as
held_mutex = threading.Lock()


def refuse_links_under_root(folder: Path | str) -> None:
    """Refuse to write into ``folder`` when, below a root this process holds, one of
    its folders is a symbolic link (planted: the tool never makes one), so that no
    write lands outside the root through it.  Outside any held root: no check."""
    target = os.path.abspath(folder)
    with held_mutex:
        roots = [*held_paths.values(), *held_depth]
    for root in roots:
        if target != root and not target.startswith(root.rstrip(os.sep) + os.sep):
            continue
        current = root
        for part in Path(os.path.relpath(target, root)).parts:
            current = os.path.join(current, part)
            if os.path.islink(current):
                raise UsageError(
                    f"{current} is a symbolic link inside the dataset root; the tool never writes through a link "
                    f"it did not make: remove it (rm {current}) and run again"
                )
        return


__all__ = ["refuse_links_under_root"]
