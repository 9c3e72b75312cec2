"""The manifest's clip table, ``manifest/clips.csv``: schema, writer and a reader
that treats the file as untrusted input.

One row per obtained clip, sorted by (owner_mid, ytid, start_s), no timestamps,
so the same set of clips gives a byte-identical file.  ``labels`` are all the
segment's labels, sorted and ``;``-joined; times carry 3 decimals as in the
AudioSet release.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from audioset_fewshot._io import atomic_write_text, sha256_text
from audioset_fewshot.config import SOURCES
from audioset_fewshot.errors import ManifestError, ValidationError
from audioset_fewshot.layout import clip_stem
from audioset_fewshot.validate import mid_slug, valid_mid, valid_segment_times, valid_sha256, valid_youtube_id

SCHEMA_VERSION = 1


@dataclass(frozen=True, order=True)
class ManifestRow:
    owner_mid: str
    ytid: str
    start_s: float
    end_s: float
    labels: tuple[str, ...]
    source: str
    path: str
    sample_rate_hz: int
    samples: int
    sha256: str
    itag: str
    codec: str
    license: str
    channel_id: str
    # where the clip came from (download.origins): "youtube" or a local origin's name (never
    # a path), the origin's revision, and the sample rate of its source audio ("" = unknown)
    origin: str = "youtube"
    origin_revision: str = ""
    source_sample_rate_hz: str = ""

    @property
    def clip_id(self) -> str:
        return clip_stem(self.ytid, self.start_s)

    @property
    def duration_s(self) -> float:
        return self.samples / self.sample_rate_hz if self.sample_rate_hz else 0.0


# Which segment a row is, and for which class: the first columns of every clip table
# (clips.csv, release_clips.csv).
SEGMENT_COLUMNS: tuple[str, ...] = ("ytid", "start_s", "end_s", "owner_mid", "labels", "source")
# Column order of the file (differs from the sort order of the dataclass).
CLIPS_COLUMNS: tuple[str, ...] = (
    *SEGMENT_COLUMNS,
    "path",
    "sample_rate_hz",
    "samples",
    "sha256",
    "itag",
    "codec",
    "license",
    "channel_id",
    "origin",
    "origin_revision",
    "source_sample_rate_hz",
)
# the header before origins existed: read as clips from YouTube
LEGACY_CLIPS_COLUMNS: tuple[str, ...] = CLIPS_COLUMNS[:-3]


def _fmt_time(t: float) -> str:
    return f"{t:.3f}"


def _row_values(row: ManifestRow) -> list[str]:
    values = {
        "ytid": row.ytid,
        "start_s": _fmt_time(row.start_s),
        "end_s": _fmt_time(row.end_s),
        "owner_mid": row.owner_mid,
        "labels": ";".join(sorted(row.labels)),
        "source": row.source,
        "path": row.path,
        "sample_rate_hz": str(row.sample_rate_hz),
        "samples": str(row.samples),
        "sha256": row.sha256,
        "itag": row.itag,
        "codec": row.codec,
        "license": row.license,
        "channel_id": row.channel_id,
        "origin": row.origin,
        "origin_revision": row.origin_revision,
        "source_sample_rate_hz": row.source_sample_rate_hz,
    }
    return [values[c] for c in CLIPS_COLUMNS]


def render_clips(rows: Iterable[ManifestRow]) -> str:
    """CSV text of the clip table, rows sorted, ``\\n`` line ends."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CLIPS_COLUMNS)
    for row in sorted(rows, key=lambda r: (r.owner_mid, r.ytid, r.start_s)):
        writer.writerow(_row_values(row))
    return buf.getvalue()


def write_clips(path: Path | str, rows: Iterable[ManifestRow]) -> str:
    """Write clips.csv atomically; return the sha256 of its content."""
    text = render_clips(rows)
    atomic_write_text(path, text)
    return sha256_text(text)


_TIME_RE = re.compile(r"[0-9]{1,7}(?:\.[0-9]{1,6})?")
_INT_RE = re.compile(r"[0-9]{1,12}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
AUDIO_EXTS = ("flac", "wav")
MAX_TEXT = 200


def _time(value: str, name: str) -> float:
    if not _TIME_RE.fullmatch(value):
        raise ValidationError(f"malformed time {name}={value!r}: expected seconds such as 30.000")
    return float(value)


def _count(value: str, name: str) -> int:
    if not _INT_RE.fullmatch(value):
        raise ValidationError(f"malformed {name}={value!r}: expected a positive integer")
    return int(value)


def clean_text(value: object, *, limit: int = MAX_TEXT) -> str:
    """Free text from YouTube made safe for one CSV field: control, line-separator and
    bidi-override characters become spaces; at most ``limit`` characters."""
    if value is None:
        return ""
    text = _CONTROL_RE.sub(" ", str(value)).strip()
    return text[:limit]


def _plain_text(value: str, name: str) -> str:
    """Free text from YouTube (licence, itag, ...): one line, printable, bounded."""
    if len(value) > MAX_TEXT or _CONTROL_RE.search(value):
        raise ValidationError(f"field {name}={value[:40]!r}...: control characters or longer than {MAX_TEXT} characters")
    return value


def expected_relpath(owner_mid: str, ytid: str, start_s: float, ext: str) -> str:
    """The only path a clip may have: ``audio/<mid_slug>/<ytid>_<start_ms>.<ext>``
    (the string ``DatasetLayout.clip_relpath`` builds)."""
    return f"audio/{mid_slug(owner_mid)}/{clip_stem(ytid, start_s)}.{ext}"


def _lexically_safe(value: str) -> str:
    """The checks of ``validate.safe_relpath`` that need no filesystem access."""
    if not isinstance(value, str) or not value or "\x00" in value or "\\" in value:
        raise ValidationError(f"unsafe path {value!r}: expected a relative POSIX path")
    if value.startswith(("/", "~")) or any(part in ("..", "", ".") for part in value.split("/")):
        raise ValidationError(f"unsafe path {value!r}: must be relative and stay inside the dataset root")
    return value


class PathGuard:
    """Checks that manifest paths stay inside ``root`` on disk, cheaply for many rows.

    A path is first checked as text; then every folder on its way is resolved
    once (cached) and must lie inside the resolved root; a file that is itself
    a link is resolved too.  Same verdicts as ``validate.safe_relpath``, without
    resolving every component of every row.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._real_root = self.root.resolve()
        self._dirs: dict[str, str] = {}

    def _inside(self, real: Path, value: str) -> Path:
        if real != self._real_root and self._real_root not in real.parents:
            raise ValidationError(f"unsafe path {value!r}: resolves outside {self.root}")
        return real

    def check_file(self, value: str) -> tuple[Path, bool]:
        """``(resolved path, is a plain file or a link to one)``; ``ValidationError`` when it escapes."""
        _lexically_safe(value)
        parent, _, name = value.rpartition("/")
        real_dir = self._dirs.get(parent)
        if real_dir is None:
            real_dir = str(self._inside((self.root / parent).resolve(), value) if parent else self._real_root)
            self._dirs[parent] = real_dir
        full = os.path.join(real_dir, name)
        try:
            st = os.lstat(full)
        except OSError:
            return Path(full), False
        if stat.S_ISLNK(st.st_mode):
            real = self._inside(Path(full).resolve(), value)
            return real, real.is_file()
        return Path(full), stat.S_ISREG(st.st_mode)

    def check(self, value: str) -> Path:
        """The resolved path of ``value`` under the root; ``ValidationError`` when it escapes."""
        return self.check_file(value)[0]


def _parse_row(rec: dict[str, str], *, guard: PathGuard | None) -> ManifestRow:
    ytid = valid_youtube_id(rec["ytid"])
    start_s, end_s = _time(rec["start_s"], "start_s"), _time(rec["end_s"], "end_s")
    valid_segment_times(start_s, end_s)
    owner = valid_mid(rec["owner_mid"])
    labels = tuple(sorted(valid_mid(m) for m in rec["labels"].split(";") if m)) if rec["labels"] else ()
    if owner not in labels:
        raise ValidationError(f"owner {owner} is not among the clip's labels {';'.join(labels)}")
    if rec["source"] not in SOURCES:
        raise ValidationError(f"unknown source list {rec['source']!r}; expected one of {', '.join(SOURCES)}")
    rel = _lexically_safe(rec["path"])
    ext = rel.rsplit(".", 1)[-1] if "." in rel else ""
    if ext not in AUDIO_EXTS or rel != expected_relpath(owner, ytid, start_s, ext):
        raise ValidationError(f"path {rel!r} is not where this clip lives; expected {expected_relpath(owner, ytid, start_s, 'flac')!r} (or .wav)")
    if guard is not None:
        guard.check(rel)
    sample_rate_hz = _count(rec["sample_rate_hz"], "sample_rate_hz")
    samples = _count(rec["samples"], "samples")
    if sample_rate_hz <= 0 or samples <= 0 or not math.isfinite(samples):
        raise ValidationError(f"sample_rate_hz and samples must be positive, got {sample_rate_hz} and {samples}")
    return ManifestRow(
        owner_mid=owner,
        ytid=ytid,
        start_s=start_s,
        end_s=end_s,
        labels=labels,
        source=rec["source"],
        path=rel,
        sample_rate_hz=sample_rate_hz,
        samples=samples,
        sha256=valid_sha256(rec["sha256"]),
        itag=_plain_text(rec["itag"], "itag"),
        codec=_plain_text(rec["codec"], "codec"),
        license=_plain_text(rec["license"], "license"),
        channel_id=_plain_text(rec["channel_id"], "channel_id"),
        origin=_plain_text(rec.get("origin", "youtube"), "origin") or "youtube",
        origin_revision=_plain_text(rec.get("origin_revision", ""), "origin_revision"),
        source_sample_rate_hz=str(_count(rec["source_sample_rate_hz"], "source_sample_rate_hz")) if rec.get("source_sample_rate_hz") else "",
    )


def read_clips(path: Path | str, *, root: Path | None = None) -> list[ManifestRow]:
    """Read and validate clips.csv.  Every row is checked (id, times, MIDs, path
    inside ``root``, hash); the first bad row raises ManifestError naming file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ManifestError(f"{path}: no such manifest; build one with 'audioset-fewshot manifest'") from err
    except UnicodeDecodeError as err:
        raise ManifestError(f"{path}: not UTF-8 text") from err
    except OSError as err:
        raise ManifestError(f"{path}: cannot read the manifest: {err.strerror or err}") from err
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise ManifestError(f"{path}:1: empty file; expected the header {','.join(CLIPS_COLUMNS)}") from None
    except csv.Error as err:
        raise ManifestError(f"{path}:1: malformed CSV: {err}") from err
    if tuple(header) not in (CLIPS_COLUMNS, LEGACY_CLIPS_COLUMNS):
        raise ManifestError(f"{path}:1: unexpected header {header!r}; expected {','.join(CLIPS_COLUMNS)}")
    columns = tuple(header)
    rows: list[ManifestRow] = []
    seen: set[tuple[str, float]] = set()
    guard = PathGuard(root) if root is not None else None
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            raise ManifestError(f"{path}:{reader.line_num}: malformed CSV: {err}") from err
        line = reader.line_num
        if len(values) != len(columns):
            raise ManifestError(f"{path}:{line}: expected {len(columns)} fields, got {len(values)}")
        try:
            row = _parse_row(dict(zip(columns, values, strict=True)), guard=guard)
        except ValidationError as err:
            raise ManifestError(f"{path}:{line}: {err}") from err
        key = (row.ytid, row.start_s)
        if key in seen:
            raise ManifestError(f"{path}:{line}: duplicate clip {row.ytid} at {row.start_s:.3f} s")
        seen.add(key)
        rows.append(row)
    return rows


def rows_by_owner(rows: Sequence[ManifestRow]) -> dict[str, list[ManifestRow]]:
    out: dict[str, list[ManifestRow]] = {}
    for r in rows:
        out.setdefault(r.owner_mid, []).append(r)
    return out


__all__ = [
    "CLIPS_COLUMNS",
    "SCHEMA_VERSION",
    "ManifestRow",
    "PathGuard",
    "clean_text",
    "expected_relpath",
    "read_clips",
    "render_clips",
    "rows_by_owner",
    "write_clips",
]
