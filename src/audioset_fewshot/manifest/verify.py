"""``verify(root)``: re-hash every clip against the manifest and report *every* problem.

Like mirdata's ``validate``, nothing is raised for a bad file: the returned
:class:`VerifyReport` lists all of them, each a :class:`Problem`:

* ``missing`` -- a manifest row whose file does not exist;
* ``corrupt-hash`` -- the file's sha256 differs from the manifest;
* ``corrupt-length`` -- the file does not decode, or its sample count / rate
  differs from the manifest (read with soundfile);
* ``corrupt-array`` -- a packed or feature array whose size, content hash or
  values are wrong (:func:`audioset_fewshot.process.check.verify_processed`;
  ``verify`` adds them to the same report);
* ``unexpected`` -- a file (or link, or anything else) under ``audio/`` that
  the manifest does not list, temp files of a killed writer included.

Links under ``audio/`` are never followed: a clip that is a symlink is
reported (``corrupt-hash``: not a plain file) rather than read.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audioset_fewshot._io import sha256_file
from audioset_fewshot._progress import progress
from audioset_fewshot.errors import ValidationError
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.manifest.clips import PathGuard, read_clips

MISSING = "missing"
CORRUPT_HASH = "corrupt-hash"
CORRUPT_LENGTH = "corrupt-length"
UNEXPECTED = "unexpected"
CORRUPT_ARRAY = "corrupt-array"
KINDS = (MISSING, CORRUPT_HASH, CORRUPT_LENGTH, UNEXPECTED, CORRUPT_ARRAY)


@dataclass(frozen=True, order=True)
class Problem:
    """One problem: ``path`` relative to the root, ``kind`` one of :data:`KINDS`."""

    path: str
    kind: str
    detail: str = ""


@dataclass(frozen=True)
class VerifyReport:
    root: Path
    manifest: Path
    checked: int
    problems: tuple[Problem, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "manifest": str(self.manifest),
            "checked": self.checked,
            "ok": self.ok,
            "problems": [{"path": p.path, "kind": p.kind, "detail": p.detail} for p in self.problems],
        }


def _audio_info(path: Path) -> tuple[int, int] | None:
    import soundfile

    try:
        info = soundfile.info(str(path))
    except (RuntimeError, soundfile.LibsndfileError, OSError):
        return None
    return int(info.frames), int(info.samplerate)


def verify(root: Path | str, *, manifest: Path | str | None = None) -> VerifyReport:
    """Check every clip of ``manifest`` (default ``ROOT/manifest/clips.csv``) under ``root``.

    The manifest is untrusted: a hostile row raises ``ManifestError`` (file and
    line) before any file is read.  File problems are returned, never raised.
    """
    layout = DatasetLayout(Path(root))
    manifest_path = Path(manifest) if manifest is not None else layout.clips_csv
    rows = read_clips(manifest_path, root=layout.root)
    problems: list[Problem] = []
    listed: set[str] = set()
    guard = PathGuard(layout.root)
    for row in progress(rows, desc="verify", unit="clip"):
        listed.add(row.path)
        try:
            full = guard.check(row.path)
        except ValidationError as err:  # a link inside the root pointing out of it
            problems.append(Problem(row.path, CORRUPT_HASH, str(err)))
            continue
        lexical = layout.root / row.path
        try:
            st = os.lstat(lexical)
        except FileNotFoundError:
            problems.append(Problem(row.path, MISSING, "listed in the manifest, no file"))
            continue
        except OSError as err:
            problems.append(Problem(row.path, MISSING, f"cannot stat: {err.strerror or err}"))
            continue
        if not stat.S_ISREG(st.st_mode):
            problems.append(Problem(row.path, CORRUPT_HASH, "not a plain file (link or folder)"))
            continue
        try:
            digest = sha256_file(full)
        except OSError as err:
            problems.append(Problem(row.path, CORRUPT_HASH, f"cannot read: {err.strerror or err}"))
            continue
        if digest != row.sha256:
            problems.append(Problem(row.path, CORRUPT_HASH, f"sha256 {digest[:12]}..., manifest {row.sha256[:12]}..."))
        info = _audio_info(full)
        if info is None:
            problems.append(Problem(row.path, CORRUPT_LENGTH, "does not decode as audio"))
        elif info != (row.samples, row.sample_rate_hz):
            problems.append(Problem(row.path, CORRUPT_LENGTH, f"{info[0]} samples at {info[1]} Hz, manifest {row.samples} at {row.sample_rate_hz} Hz"))
    problems += _unexpected(layout, listed)
    return VerifyReport(root=layout.root, manifest=manifest_path, checked=len(rows), problems=tuple(sorted(problems)))


def _unexpected(layout: DatasetLayout, listed: set[str]) -> list[Problem]:
    out: list[Problem] = []
    audio = layout.audio_dir
    if not audio.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(audio, followlinks=False):
        base = Path(dirpath)
        for name in sorted(dirnames):
            p = base / name
            if p.is_symlink():
                out.append(Problem(p.relative_to(layout.root).as_posix(), UNEXPECTED, "a link to a folder"))
        for name in sorted(filenames):
            rel = (base / name).relative_to(layout.root).as_posix()
            if rel not in listed:
                out.append(Problem(rel, UNEXPECTED, "not in the manifest"))
    return out
