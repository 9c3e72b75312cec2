"""The one rule every stage artifact follows: a key, "current or None", build beside.

A stage writes one artifact (a file, or a folder with ``meta.json`` last) whose
metadata records an :class:`ArtifactKey`: the stage, its schema version, its
parameters and the hashes of its inputs.  Before it does any work the stage asks
:func:`read_current` for the metadata on disk: the metadata when its key is the
key of this run (the stage returns its record at once, ``ran=False``), None
when the artifact is missing or was made from other inputs or parameters (the
stage builds it, ``ran=True``).  Metadata that is not a JSON object (edited,
damaged) is an :class:`~audioset_fewshot.errors.ArtifactError` naming the file,
never silently rebuilt over.

A folder artifact is built beside its place (``.tmp-<name>``) and renamed into
place whole (:func:`build_beside`), so a killed build leaves the previous
artifact as it was.  :class:`BackgroundFlush` overlaps the flushes of a large
file with the computation that produces it.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import os
import shutil
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from audioset_fewshot._io import canonical_json, fsync_dir, sha256_text
from audioset_fewshot.errors import ArtifactError, StageNotReadyError

_KEY_FIELDS = ("schema_version", "stage", "params", "inputs")
R = TypeVar("R")


def cache_key(obj: Mapping[str, Any]) -> str:
    """16 hex digits of the sha256 of the canonical JSON of ``obj``."""
    return sha256_text(canonical_json(dict(obj)))[:16]


@dataclass(frozen=True)
class ArtifactKey:
    """What an artifact was made from: ``stage``, ``schema_version``, ``params`` (the
    stage's options that change the content) and ``inputs`` (hashes of the upstream
    artifacts).  ``digest`` names a keyed folder (``processed/pack/<digest>``)."""

    stage: str
    schema_version: int
    params: Mapping[str, Any] = field(default_factory=dict)
    inputs: Mapping[str, Any] = field(default_factory=dict)

    def fields(self) -> dict[str, Any]:
        return {"schema_version": self.schema_version, "stage": self.stage, "params": dict(self.params), "inputs": dict(self.inputs)}

    @property
    def digest(self) -> str:
        return cache_key(self.fields())

    def meta(self, **extra: Any) -> dict[str, Any]:
        """The metadata to write: the key's fields, ``key`` (the digest), then ``extra``."""
        return {
            "schema_version": self.schema_version,
            "stage": self.stage,
            "key": self.digest,
            "params": dict(self.params),
            "inputs": dict(self.inputs),
            **extra,
        }

    def matches(self, meta: Mapping[str, Any]) -> bool:
        """Whether ``meta`` was written for this key (every field of the key equal)."""
        mine = self.fields()
        return all(canonical_json(meta.get(k)) == canonical_json(mine[k]) for k in _KEY_FIELDS)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when it is missing or unreadable (for files
    a stage may simply redo, such as a resumable build's progress record)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_meta(path: Path, *, fix: str) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when there is no file; :class:`ArtifactError`
    (naming ``path``, ending with ``fix``) when it holds anything else."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as err:
        raise ArtifactError(f"{path}: cannot read it ({err.strerror or err}); {fix}") from err
    try:
        data = json.loads(text)
    except ValueError as err:
        raise ArtifactError(f"{path}: malformed JSON ({err}); {fix}") from err
    if not isinstance(data, dict):
        raise ArtifactError(f"{path}: expected a JSON object, found {type(data).__name__}; {fix}")
    return data


def read_current(path: Path, key: ArtifactKey, *, fix: str, outputs: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any] | None:
    """The metadata in ``path`` when it was written for ``key`` (and ``outputs(meta)``,
    a check of the files it describes, holds); None when the artifact must be built."""
    meta = read_meta(path, fix=fix)
    if meta is None or not key.matches(meta):
        return None
    if outputs is not None and not outputs(meta):
        return None
    return meta


def load_meta(path: Path, *, stage: str, schema_version: int, fix: str) -> dict[str, Any]:
    """The metadata of a finished artifact, for its readers: :class:`ArtifactError`
    when it is missing, malformed or written by another schema version."""
    meta = read_meta(path, fix=fix)
    if meta is None:
        raise ArtifactError(f"no {stage} at {path.parent}: {path.name} is missing; {fix}")
    if meta.get("schema_version") != schema_version:
        raise ArtifactError(f"{path}: {stage} of schema_version {meta.get('schema_version')!r}, this version reads {schema_version}; {fix}")
    return meta


def render_table(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A CSV artifact's text: the header, then one line per row (``\\n`` line ends)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    w.writerows(rows)
    return buf.getvalue()


def read_table(path: Path, columns: Sequence[str], *, missing: str, fix: str) -> list[tuple[int, dict[str, str]]]:
    """``[(line number, {column: text}), ...]`` of a CSV artifact whose header must be
    ``columns``: :class:`~audioset_fewshot.errors.StageNotReadyError` when the file is
    missing (``missing`` says what makes it), :class:`ArtifactError` when its header differs."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise StageNotReadyError(f"{path} does not exist; {missing}") from err
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if tuple(reader.fieldnames or ()) != tuple(columns):
        raise ArtifactError(f"{path}: unexpected header {reader.fieldnames}; {fix}")
    return [(i + 2, rec) for i, rec in enumerate(reader)]


def _parser(hint: Any) -> Callable[[str], Any]:
    """The text -> value conversion of one column, from its field's annotation."""
    args = typing.get_args(hint)
    if type(None) in args:  # "" is None
        inner = _parser(next(a for a in args if a is not type(None)))
        return lambda text: None if text == "" else inner(text)
    kind = typing.get_origin(hint) or hint
    if kind is tuple:  # a list of names, ";"-separated
        return lambda text: tuple(x for x in text.split(";") if x)
    if kind in (int, float):
        return kind
    return str  # str, and Literal names


def read_records(path: Path, record: type[R], *, missing: str, fix: str) -> list[R]:
    """The rows of a CSV artifact whose header is the fields of the dataclass ``record``,
    each converted by its annotation (int, float, str, ``tuple[str, ...]`` from ``a;b``,
    ``X | None`` from an empty cell); :class:`ArtifactError` names the line of a row that
    does not convert (see :func:`read_table` for a missing file or another header)."""
    hints = typing.get_type_hints(record)
    names = [f.name for f in dataclasses.fields(record)]  # type: ignore[arg-type]
    parsers = [_parser(hints[n]) for n in names]
    out: list[R] = []
    for line, rec in read_table(path, names, missing=missing, fix=fix):
        try:
            out.append(record(*(parse(rec[n]) for n, parse in zip(names, parsers, strict=True))))
        except (TypeError, ValueError, AttributeError) as err:  # a truncated or garbled line
            raise ArtifactError(f"{path}:{line}: malformed row ({err}); {fix}") from None
    return out


def check_row_numbers(path: Path, numbers: Sequence[int], *, fix: str) -> None:
    """Row ``i`` of an index table must say ``i`` (a reordered or spliced file does not):
    :class:`~audioset_fewshot.errors.ProcessingError` naming the line."""
    from audioset_fewshot.errors import ProcessingError

    for i, n in enumerate(numbers):
        if n != i:
            raise ProcessingError(f"{path}:{i + 2}: row {n} out of order; {fix}")


def remove_tree(path: Path) -> None:
    """Remove a folder of ours; a link in its place is removed itself, never followed."""
    if path.is_symlink():
        path.unlink()
        return
    shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def build_beside(folder: Path) -> Iterator[Path]:
    """Build a folder artifact in ``.tmp-<name>`` beside ``folder``; when the block ends
    without an error, the folder (``meta.json`` written last inside it) replaces
    ``folder`` whole.  On any error, a kill included, ``folder`` is left as it was."""
    from audioset_fewshot._root import refuse_links_under_root

    tmp = folder.parent / f".tmp-{folder.name}"
    old = folder.parent / f".old-{folder.name}"
    remove_tree(tmp)
    remove_tree(old)
    refuse_links_under_root(tmp)  # a planted link among the parents would take the build outside the root
    tmp.mkdir(parents=True)
    try:
        yield tmp
        fsync_dir(tmp)
        if folder.exists() or folder.is_symlink():
            os.replace(folder, old)
        os.replace(tmp, folder)
        fsync_dir(folder.parent)
    except BaseException:
        remove_tree(tmp)
        raise
    remove_tree(old)


class BackgroundFlush:
    """``fdatasync`` a file being written, in a background thread, so that the disk
    writes overlap the computation instead of all waiting for the final flush.
    ``kick(then)`` starts a flush (followed by ``then()``, e.g. recording progress that
    is now on disk) unless one is running, and says whether it started one;
    ``finish()`` waits and flushes whatever is left (raising what a flush raised,
    ENOSPC included)."""

    def __init__(self, fd: int) -> None:
        from concurrent.futures import Future, ThreadPoolExecutor

        self._fd = fd
        self._ex = ThreadPoolExecutor(1, thread_name_prefix="flush")
        self._last: Future[None] | None = None

    def _flush(self, then: Callable[[], None] | None) -> None:
        os.fdatasync(self._fd)
        if then is not None:
            then()

    def kick(self, then: Callable[[], None] | None = None) -> bool:
        if self._last is not None:
            if not self._last.done():
                return False
            self._last.result()
        self._last = self._ex.submit(self._flush, then)
        return True

    def wait(self) -> None:
        """Wait for the running flush (raising what it raised)."""
        if self._last is not None:
            self._last.result()

    def finish(self) -> None:
        try:
            self.wait()
            os.fdatasync(self._fd)
        finally:
            self._ex.shutdown(wait=True)

    def shutdown(self) -> None:
        """Stop without a last flush (the running one is awaited, its error dropped)."""
        try:
            if self._last is not None:
                with contextlib.suppress(OSError):
                    self._last.result()
        finally:
            self._ex.shutdown(wait=True)


__all__ = [
    "ArtifactKey",
    "BackgroundFlush",
    "build_beside",
    "cache_key",
    "check_row_numbers",
    "load_meta",
    "read_current",
    "read_json",
    "read_meta",
    "read_table",
    "remove_tree",
    "render_table",
]
