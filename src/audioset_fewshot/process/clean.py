"""``clean``: measure every clip of the manifest and give it a verdict.

Each clip gets ``keep`` or ``reject`` with one reason, checked in this order:

* ``missing``         the file named by the manifest is not there;
* ``undecodable``     soundfile cannot decode it, or it decodes to fewer frames
                      than its header announces (a truncated file);
* ``too-short``       shorter than ``min_duration_s``;
* ``digital-silence`` every sample is exactly zero;
* ``silent``          RMS below ``silence_dbfs`` (dB relative to full scale);
* ``clipped``         more than ``max_clipped_fraction`` of the samples at full scale;
* ``ok`` / ``silence-class``: kept.  Clips owned by AudioSet's "Silence" class
  (``/m/028v0c``) skip the two silence checks, since they fail them by nature;
  their reason says ``silence-class`` so the exemption is visible.

The ``policy`` decides what a reject means downstream: ``drop`` leaves it out of
the pack, ``keep`` packs it anyway.  A clip that cannot be read (``missing``,
``undecodable``) is always left out, whatever the policy.  The ``action`` column
says which, so nothing is dropped silently.

Artifact: ``processed/clean.csv`` (sorted by owner, YouTube ID, start; no
timestamps, so byte-identical for the same inputs) and ``processed/clean.json``
(schema_version, parameters, sha256 of clips.csv and of clean.csv, counts).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from audioset_fewshot._artifact import ArtifactKey, read_current, read_records, render_table
from audioset_fewshot._io import atomic_write_json, atomic_write_text, sha256_file, sha256_text
from audioset_fewshot._progress import progress_bar
from audioset_fewshot.config import CleanOptions
from audioset_fewshot.engine import LOCAL, Engine
from audioset_fewshot.errors import UsageError
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.manifest import ManifestRow, read_clips
from audioset_fewshot.process._common import SILENCE_MID, disk_full_is_processing_error

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
CLEAN_COLUMNS: tuple[str, ...] = (
    "ytid",
    "start_s",
    "owner_mid",
    "path",
    "verdict",
    "reason",
    "action",
    "sample_rate_hz",
    "frames",
    "duration_s",
    "rms_dbfs",
    "peak",
    "clipped_fraction",
)
REASONS: tuple[str, ...] = ("ok", "silence-class", "missing", "undecodable", "too-short", "digital-silence", "silent", "clipped")
UNREADABLE = frozenset({"missing", "undecodable"})
FULL_SCALE = 32767.0 / 32768.0  # the largest positive 16-bit sample, as soundfile scales it


@dataclass(frozen=True)
class ClipVerdict:
    """One row of clean.csv.  Measurements are None when the clip could not be read."""

    ytid: str
    start_s: float
    owner_mid: str
    path: str
    verdict: Literal["keep", "reject"]
    reason: str
    action: Literal["kept", "dropped"]
    sample_rate_hz: int | None
    frames: int | None
    duration_s: float | None
    rms_dbfs: float | None
    peak: float | None
    clipped_fraction: float | None

    @property
    def clip_id(self) -> str:
        from audioset_fewshot.layout import clip_stem

        return clip_stem(self.ytid, self.start_s)


@dataclass(frozen=True)
class CleanReport:
    """What ``clean`` decided: per-clip verdicts plus counts by reason; ``ran``: False when
    the clean.csv on disk was current and was read back instead."""

    path: Path
    sha256: str
    clips_sha256: str
    params: dict[str, Any]
    verdicts: tuple[ClipVerdict, ...]
    ran: bool = field(default=True, compare=False)

    @property
    def kept(self) -> int:
        """Clips that go on to the pack (``action == kept``)."""
        return sum(v.action == "kept" for v in self.verdicts)

    @property
    def dropped(self) -> int:
        return sum(v.action == "dropped" for v in self.verdicts)

    @property
    def rejected(self) -> int:
        return sum(v.verdict == "reject" for v in self.verdicts)

    @property
    def by_reason(self) -> dict[str, int]:
        return dict(sorted(Counter(v.reason for v in self.verdicts).items()))

    def kept_ids(self) -> set[tuple[str, float]]:
        return {(v.ytid, v.start_s) for v in self.verdicts if v.action == "kept"}


@dataclass(frozen=True)
class _Measure:
    reason: str | None  # "missing" / "undecodable" or None when decoded
    sample_rate_hz: int | None = None
    frames: int | None = None
    rms_dbfs: float | None = None
    peak: float | None = None
    clipped_fraction: float | None = None


def measure_file(path: Path) -> _Measure:
    """Decode ``path`` and measure it; a corrupt file is a result, never an exception."""
    import soundfile as sf

    if not path.is_file():
        return _Measure("missing")
    try:
        with sf.SoundFile(str(path)) as fh:
            announced = fh.frames
            sr = int(fh.samplerate)
            data = fh.read(dtype="float32", always_2d=True)
    except Exception as err:  # libsndfile raises several types for bad input: all mean "cannot decode"
        log.debug("cannot decode %s: %s", path, err)
        return _Measure("undecodable")
    frames = int(data.shape[0])
    if frames < announced or sr <= 0:
        log.debug("%s: decoded %d of %d announced frames", path, frames, announced)
        return _Measure("undecodable", sample_rate_hz=sr, frames=frames)
    if frames == 0:
        return _Measure(None, sr, 0, -math.inf, 0.0, 0.0)
    mono = data.mean(axis=1, dtype=np.float64) if data.shape[1] > 1 else data[:, 0].astype(np.float64)
    mag = np.abs(data)
    peak = float(mag.max())
    # a plain reduction, not np.dot: BLAS threads spin badly on a busy machine
    mean_sq = float(np.square(mono).sum() / frames)
    rms_dbfs = 10.0 * math.log10(mean_sq) if mean_sq > 0 else -math.inf
    clipped = float(np.count_nonzero(mag >= FULL_SCALE) / data.size)
    return _Measure(None, sr, frames, rms_dbfs, peak, clipped)


def _verdict(row: ManifestRow, m: _Measure, *, min_duration_s: float, silence_dbfs: float, max_clipped_fraction: float, policy: str) -> ClipVerdict:
    duration = (m.frames / m.sample_rate_hz) if (m.frames is not None and m.sample_rate_hz) else None
    if m.reason is not None:
        reason = m.reason
    elif duration is not None and duration < min_duration_s:
        reason = "too-short"
    elif row.owner_mid != SILENCE_MID and m.peak == 0.0:
        reason = "digital-silence"
    elif row.owner_mid != SILENCE_MID and m.rms_dbfs is not None and m.rms_dbfs < silence_dbfs:
        reason = "silent"
    elif m.clipped_fraction is not None and m.clipped_fraction > max_clipped_fraction:
        reason = "clipped"
    else:
        reason = "silence-class" if row.owner_mid == SILENCE_MID else "ok"
    verdict: Literal["keep", "reject"] = "keep" if reason in ("ok", "silence-class") else "reject"
    kept = verdict == "keep" or (policy == "keep" and reason not in UNREADABLE)
    return ClipVerdict(
        ytid=row.ytid,
        start_s=row.start_s,
        owner_mid=row.owner_mid,
        path=row.path,
        verdict=verdict,
        reason=reason,
        action="kept" if kept else "dropped",
        sample_rate_hz=m.sample_rate_hz,
        frames=m.frames,
        duration_s=duration,
        rms_dbfs=m.rms_dbfs,
        peak=m.peak,
        clipped_fraction=m.clipped_fraction,
    )


def _fmt(value: float | int | None, spec: str) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and math.isinf(value):
        return "-inf" if value < 0 else "inf"
    return format(value, spec)


def render_clean(verdicts: Sequence[ClipVerdict]) -> str:
    return render_table(
        CLEAN_COLUMNS,
        (
            [
                v.ytid,
                f"{v.start_s:.3f}",
                v.owner_mid,
                v.path,
                v.verdict,
                v.reason,
                v.action,
                _fmt(v.sample_rate_hz, "d"),
                _fmt(v.frames, "d"),
                _fmt(v.duration_s, ".6f"),
                _fmt(v.rms_dbfs, ".3f"),
                _fmt(v.peak, ".6f"),
                _fmt(v.clipped_fraction, ".6f"),
            ]
            for v in sorted(verdicts, key=lambda v: (v.owner_mid, v.ytid, v.start_s))
        ),
    )


def _opt(text: str, kind: type) -> Any:
    return None if text == "" else kind(text)


FIX = "rerun 'audioset-fewshot process --stage clean --force'"


def read_clean(path: Path | str) -> tuple[ClipVerdict, ...]:
    """Read clean.csv back into verdicts (the file this module wrote)."""
    return tuple(read_records(Path(path), ClipVerdict, missing="run 'audioset-fewshot process --stage clean' first", fix=FIX))


def clean_meta_path(layout: DatasetLayout) -> Path:
    return layout.clean_csv.with_suffix(".json")


def _check_params(min_duration_s: float, silence_dbfs: float, max_clipped_fraction: float, policy: str) -> None:
    if not (math.isfinite(min_duration_s) and min_duration_s >= 0):
        raise UsageError(f"clean: min_duration_s must be >= 0, got {min_duration_s!r}")
    if not (math.isfinite(silence_dbfs) and silence_dbfs <= 0):
        raise UsageError(f"clean: silence_dbfs must be <= 0 dBFS, got {silence_dbfs!r}")
    if not 0.0 <= max_clipped_fraction <= 1.0:
        raise UsageError(f"clean: max_clipped_fraction must be within 0..1, got {max_clipped_fraction!r}")
    if policy not in ("drop", "keep"):
        raise UsageError(f"clean: policy must be 'drop' or 'keep', got {policy!r}")


CHUNK_ROWS = 16  # clips measured per task


def _measure_chunk(args: tuple[str, list[str]]) -> list[_Measure]:
    """The measures of one chunk of clips (``root``, paths relative to it): one task."""
    root, rels = args
    return [measure_file(Path(root) / rel) for rel in rels]


def clean(root: Path | str, options: CleanOptions | None = None, *, force: bool = False, engine: Engine | None = None) -> CleanReport:
    """Give every clip in ``manifest/clips.csv`` a verdict; write ``processed/clean.csv``.

    ``options``: the ``clean`` section (``CleanOptions(policy="keep")``; default: the
    defaults).  A rerun with the same clips.csv and parameters reads the existing
    file back (fast no-op); ``force=True`` measures again.  ``workers`` > 1 decodes
    in that many processes; ``engine`` (:mod:`audioset_fewshot.engine`) runs the
    chunks of ``CHUNK_ROWS`` clips elsewhere (a Dask cluster), with the same result.
    """
    o = options if options is not None else CleanOptions()
    min_duration_s, silence_dbfs, max_clipped_fraction, policy, workers = o.min_duration_s, o.silence_dbfs, o.max_clipped_fraction, o.policy, o.workers
    _check_params(min_duration_s, silence_dbfs, max_clipped_fraction, policy)
    layout = DatasetLayout(Path(root))
    params = {
        "min_duration_s": float(min_duration_s),
        "silence_dbfs": float(silence_dbfs),
        "max_clipped_fraction": float(max_clipped_fraction),
        "policy": policy,
    }
    clips_sha = sha256_file(layout.clips_csv) if layout.clips_csv.is_file() else ""
    meta_path = clean_meta_path(layout)
    key = ArtifactKey("clean", SCHEMA_VERSION, params, {"clips_csv_sha256": clips_sha})
    if not force and clips_sha:
        clean_sha = sha256_file(layout.clean_csv) if layout.clean_csv.is_file() else None
        meta = read_current(meta_path, key, fix=FIX, outputs=lambda m: m.get("outputs", {}).get("clean_csv_sha256") == clean_sha)
        if meta is not None and clean_sha is not None:
            log.info("clean: %s is up to date", layout.clean_csv)
            return CleanReport(layout.clean_csv, clean_sha, clips_sha, params, read_clean(layout.clean_csv), ran=False)
    rows = read_clips(layout.clips_csv, root=layout.root)
    chunks = [(str(layout.root), [r.path for r in rows[i : i + CHUNK_ROWS]]) for i in range(0, len(rows), CHUNK_ROWS)]
    # a few chunks are measured faster here than a pool starts
    pool_workers = workers if len(rows) > 64 else 1
    measures: list[_Measure] = []
    with (engine or LOCAL).executor(workers=pool_workers) as ex, progress_bar(total=len(rows), desc="clean", unit="clip") as bar:
        for part in ex.map(_measure_chunk, chunks):
            measures += part
            bar.update(len(part))
    verdicts = tuple(
        _verdict(r, m, min_duration_s=min_duration_s, silence_dbfs=silence_dbfs, max_clipped_fraction=max_clipped_fraction, policy=policy)
        for r, m in zip(rows, measures, strict=True)
    )
    verdicts = tuple(sorted(verdicts, key=lambda v: (v.owner_mid, v.ytid, v.start_s)))
    text = render_clean(verdicts)
    with disk_full_is_processing_error("clean", layout.processed_dir):
        atomic_write_text(layout.clean_csv, text)
    # read back what was written, so a no-op rerun returns an identical record
    report = CleanReport(layout.clean_csv, sha256_text(text), clips_sha, params, read_clean(layout.clean_csv))
    with disk_full_is_processing_error("clean", layout.processed_dir):
        _write_meta(meta_path, key, report)
    log.info("clean: %d clips, %d kept, %d dropped %s", len(verdicts), report.kept, report.dropped, report.by_reason)
    return report


def _write_meta(meta_path: Path, key: ArtifactKey, report: CleanReport) -> None:
    atomic_write_json(
        meta_path,
        key.meta(
            outputs={"clean_csv_sha256": report.sha256},
            counts={
                "clips": len(report.verdicts),
                "kept": report.kept,
                "dropped": report.dropped,
                "rejected": report.rejected,
                "by_reason": report.by_reason,
            },
        ),
    )


__all__ = ["CLEAN_COLUMNS", "REASONS", "CleanReport", "ClipVerdict", "clean", "measure_file", "read_clean"]
