"""The release's label numbers: ``class_labels_indices.csv`` (``index,mid,display_name``).

A record's ``labels`` are row numbers of that file.  :func:`read_label_indices`
reads it and checks it against the ontology: every MID must be an ontology
class, indices must run 0..n-1, and a display name that differs from the
ontology's is an error too (a file from another release or edited by hand would
silently relabel every clip).  :func:`compare_labels` maps a record's numbers to
MIDs and compares them with the segment list's labels; the segment list wins,
the disagreements are counted.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from audioset_fewshot.release.source import ReleaseError

if TYPE_CHECKING:
    from audioset_fewshot.metadata.ontology import Ontology

FILE_NAME = "class_labels_indices.csv"
HEADER = ("index", "mid", "display_name")


def packaged_label_indices() -> Path:
    """The official ``class_labels_indices.csv`` shipped with the package (CC BY 4.0, Google)."""
    return Path(str(resources.files("audioset_fewshot.metadata") / "data" / FILE_NAME))


def find_label_indices(*folders: Path | str | None) -> Path:
    """The first ``class_labels_indices.csv`` in ``folders`` (None skipped), else the packaged one."""
    for f in folders:
        if f is not None and (Path(f) / FILE_NAME).is_file():
            return Path(f) / FILE_NAME
    return packaged_label_indices()


def read_label_indices(path: Path | str, ontology: Ontology | None = None) -> tuple[str, ...]:
    """MID of each label number, checked against ``ontology`` (the packaged one when None)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ReleaseError(f"{p} does not exist; it maps the release's label numbers to classes") from err
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows or tuple(c.strip() for c in rows[0]) != HEADER:
        raise ReleaseError(f"{p}:1: expected the header {','.join(HEADER)}, got {rows[0] if rows else 'an empty file'}")
    if ontology is None:
        from audioset_fewshot.metadata import load_ontology

        ontology = load_ontology()
    mids: list[str] = []
    problems: list[str] = []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != 3:
            raise ReleaseError(f"{p}:{line}: expected 3 columns (index, mid, display_name), got {len(row)}")
        idx, mid, name = (c.strip() for c in row)
        if idx != str(len(mids)):
            raise ReleaseError(f"{p}:{line}: index {idx!r} out of order (expected {len(mids)}); the label numbers would shift")
        if mid not in ontology:
            problems.append(f"{p}:{line}: {mid!r} is not a class of the ontology")
        elif ontology.name(mid) != name:
            problems.append(f"{p}:{line}: {mid} is {name!r} here but {ontology.name(mid)!r} in the ontology")
        mids.append(mid)
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ReleaseError(
            f"{p} disagrees with the ontology in {len(problems)} row(s): "
            + "; ".join(problems[:5])
            + more
            + ". Use the class_labels_indices.csv of the same AudioSet release as the ontology"
        )
    if len(set(mids)) != len(mids):
        raise ReleaseError(f"{p}: a MID is listed twice; the file is not an official class_labels_indices.csv")
    return tuple(mids)


def mids_of(numbers: Sequence[int], mids: Sequence[str]) -> tuple[str, ...] | None:
    """The MIDs of label numbers (sorted), None when a number is out of range."""
    out = []
    for n in numbers:
        if not 0 <= n < len(mids):
            return None
        out.append(mids[n])
    return tuple(sorted(set(out)))


__all__ = ["FILE_NAME", "find_label_indices", "mids_of", "packaged_label_indices", "read_label_indices"]
