"""``recover(root)``: rebuild a damaged or missing ledger from what is on disk, losing no clip.

A ledger that cannot be read used to leave one way out (move it away and run
again), which forgot every downloaded clip: the next download removed their
files and fetched them again -- and on YouTube a clip gone since is lost for
good.  ``recover`` rebuilds the ledger instead:

1. the damaged ledger (and its ``-wal``/``-shm``) is moved aside to
   ``ledger.sqlite.damaged-<UTC time>``, never deleted;
2. a new ledger is synced with the root's plan (``plan/plan.csv``);
3. every clip of ``manifest/clips.csv`` whose file is a plain file with the
   manifest's sha256 becomes ``ok`` with the manifest's metadata (a file that
   does not match is reported and left for the next download to replace);
4. a planned clip whose file is on disk but not in the manifest (downloaded
   after the manifest was last written) becomes ``ok`` when it decodes;
5. the failures listed in ``manifest/unavailable.csv`` are restored, so a rerun
   does not ask the server again for clips that are gone.

The new ledger is built beside and moved into place at the end, so a killed
``recover`` leaves the root as it was.  A rerun of ``download`` (or ``run``)
afterwards fetches only what the ledger does not hold.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from audioset_fewshot._io import TMP_PREFIX, fsync_dir, sha256_file
from audioset_fewshot.errors import AudiosetFewshotError, StageNotReadyError, UsageError
from audioset_fewshot.layout import DatasetLayout

log = logging.getLogger(__name__)

_SIDE_FILES = ("", "-wal", "-shm", "-journal")


@dataclass(frozen=True)
class RecoverReport:
    """What ``recover`` rebuilt: clips restored from the manifest (hash checked) and
    from files alone, failures restored, files rejected, where the old ledger went."""

    root: Path
    moved_to: Path | None
    planned: int
    from_manifest: int
    from_files: int
    failures: int
    rejected: tuple[str, ...]

    @property
    def ok(self) -> int:
        return self.from_manifest + self.from_files


def ledger_is_readable(layout: DatasetLayout) -> bool:
    from audioset_fewshot.download.ledger import Ledger

    if not layout.ledger_file.exists():
        return False
    try:
        with Ledger(layout.ledger_file, readonly=True) as led:
            led.rows()
    except AudiosetFewshotError:
        return False
    return True


def _plain_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _int_or_none(text: str) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def _read_unavailable(path: Path) -> dict[tuple[str, int], dict[str, str]]:
    from audioset_fewshot.layout import start_ms

    if not path.is_file():
        return {}
    out: dict[tuple[str, int], dict[str, str]] = {}
    for rec in csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline="")):
        try:
            out[(rec["ytid"], start_ms(float(rec["start_s"])))] = rec
        except (KeyError, TypeError, ValueError):
            continue
    return out


def recover(root: Path | str, *, force: bool = False) -> RecoverReport:
    """Rebuild ``ROOT/ledger.sqlite`` (see the module docstring).

    A readable ledger is left alone unless ``force``.  Takes the root's lock."""
    from audioset_fewshot._root import RootLock
    from audioset_fewshot.download.ledger import Ledger
    from audioset_fewshot.layout import start_ms
    from audioset_fewshot.manifest.clips import read_clips
    from audioset_fewshot.plan import read_plan

    layout = DatasetLayout(Path(root))
    if not layout.root.is_dir():
        raise UsageError(f"{layout.root} does not exist; give the root whose ledger is damaged")
    with RootLock(layout):
        if ledger_is_readable(layout) and not force:
            raise UsageError(f"{layout.ledger_file} is readable: nothing to recover (add --force to rebuild it from the files anyway)")
        if not layout.plan_meta_file.is_file():
            raise StageNotReadyError(f"{layout.root} has no plan ({layout.plan_file}); recover needs the plan the clips were downloaded for")
        plan = read_plan(layout)
        planned = {e.clip_id: e for e in plan.entries}
        manifest = read_clips(layout.clips_csv, root=layout.root) if layout.clips_csv.is_file() else []
        unavailable = _read_unavailable(layout.unavailable_csv)

        tmp = layout.root / f"{TMP_PREFIX}ledger.{secrets.token_hex(4)}.sqlite"
        rejected: list[str] = []
        from_manifest = from_files = failures = 0
        try:
            with Ledger(tmp) as led:
                led.sync_plan(plan)
                done: set[str] = set()
                for row in manifest:
                    if row.clip_id not in planned:
                        continue
                    full = layout.root / row.path
                    if not _plain_file(full):
                        rejected.append(f"{row.path}: missing or not a plain file")
                        continue
                    digest = sha256_file(full)
                    if digest != row.sha256:
                        rejected.append(f"{row.path}: sha256 {digest[:12]}... differs from the manifest's {row.sha256[:12]}...")
                        continue
                    led.record_attempt(row.clip_id, SimpleNamespace(
                        ok=True, message="recovered from manifest/clips.csv", sha256=row.sha256, samples=row.samples,
                        sample_rate_hz=row.sample_rate_hz, itag=row.itag or None, codec=row.codec or None,
                        container=row.path.rsplit(".", 1)[-1], license=row.license or None, channel_id=row.channel_id or None,
                        origin=row.origin or None, origin_revision=row.origin_revision or None,
                        source_sample_rate_hz=_int_or_none(row.source_sample_rate_hz),
                    ), counted=False, relpath=row.path)  # fmt: skip
                    done.add(row.clip_id)
                    from_manifest += 1
                for cid, e in planned.items():
                    if cid in done:
                        continue
                    found = _clip_on_disk(layout, e)
                    if found is not None:
                        rel, info = found
                        led.record_attempt(
                            cid, SimpleNamespace(ok=True, message="recovered from its file (not in the manifest)", **info), counted=False, relpath=rel
                        )
                        done.add(cid)
                        from_files += 1
                        continue
                    gone = unavailable.get((e.ytid, start_ms(e.start_s)))
                    if gone and gone.get("status") in ("failed-permanent", "failed-transient"):
                        led.record_attempt(cid, SimpleNamespace(
                            ok=False, reason=gone.get("reason") or None, permanent=gone["status"] == "failed-permanent",
                            message="recovered from manifest/unavailable.csv",
                        ))  # fmt: skip
                        failures += 1
            moved = _move_aside(layout)
            os.replace(tmp, layout.ledger_file)
            fsync_dir(layout.root)
        finally:
            for suffix in _SIDE_FILES:
                Path(str(tmp) + suffix).unlink(missing_ok=True)
    log.info("recover: %d clips from the manifest, %d from files, %d failures restored, %d rejected", from_manifest, from_files, failures, len(rejected))
    return RecoverReport(
        root=layout.root, moved_to=moved, planned=len(planned), from_manifest=from_manifest, from_files=from_files, failures=failures, rejected=tuple(rejected)
    )


def _clip_on_disk(layout: DatasetLayout, entry: Any) -> tuple[str, dict[str, Any]] | None:
    """(relpath, ledger fields) of a planned clip's file when it is there and decodes."""
    import soundfile

    for ext in ("flac", "wav"):
        rel = layout.clip_relpath(entry.owner_mid, entry.ytid, entry.start_s, ext=ext)
        full = layout.root / rel
        if not _plain_file(full):
            continue
        try:
            info = soundfile.info(str(full))
            with soundfile.SoundFile(str(full)) as fh:  # decode it whole: a truncated file fails here
                data = fh.read(dtype="int16")
        except (RuntimeError, OSError, soundfile.LibsndfileError):
            continue
        frames = len(data)
        if frames <= 0 or frames != int(info.frames) or (ext == "flac" and not _flac_md5_matches(full, data)):
            continue
        return rel, {"sha256": sha256_file(full), "samples": frames, "sample_rate_hz": int(info.samplerate), "container": ext}
    return None


def _flac_md5_matches(path: Path, samples: Any) -> bool:
    """True when the MD5 of the decoded 16-bit samples equals the one FLAC's STREAMINFO
    recorded when the file was encoded (a damaged frame decodes to other samples)."""
    import hashlib

    import numpy as np

    with open(path, "rb") as fh:
        head = fh.read(4 + 4 + 34)
    if len(head) < 42 or head[:4] != b"fLaC" or head[4] & 0x7F != 0:  # STREAMINFO is the first block
        return False
    recorded = head[8 + 18 : 8 + 34]
    bits = ((head[8 + 12] & 0x01) << 4 | head[8 + 13] >> 4) + 1
    if bits != 16:
        return True  # our clips are 16-bit; other depths are not checked here
    if recorded == bytes(16):
        return True  # the encoder did not record one
    return hashlib.md5(np.ascontiguousarray(samples, dtype="<i2").tobytes(), usedforsecurity=False).digest() == recorded


def _move_aside(layout: DatasetLayout) -> Path | None:
    """Move the old ledger and its side files to ``ledger.sqlite.damaged-<UTC time>``; never delete it."""
    if not any(os.path.lexists(str(layout.ledger_file) + s) for s in _SIDE_FILES):
        return None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dest = layout.root / f"{layout.ledger_file.name}.damaged-{stamp}"
    n = 1
    while os.path.lexists(dest):
        n += 1
        dest = layout.root / f"{layout.ledger_file.name}.damaged-{stamp}-{n}"
    for suffix in _SIDE_FILES:
        src = Path(str(layout.ledger_file) + suffix)
        if os.path.lexists(src):
            os.replace(src, Path(str(dest) + suffix))
    log.warning("recover: the damaged ledger is kept as %s", dest)
    return dest


__all__ = ["RecoverReport", "ledger_is_readable", "recover"]
