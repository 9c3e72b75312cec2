"""``pack``: every kept clip, decoded and resampled, in ONE memory-mapped array.

Output folder ``processed/pack/<key>/`` where ``key`` hashes the parameters and
the sha256 of ``manifest/clips.csv`` and ``processed/clean.csv``:

* ``audio.<dtype>``  raw C-order array (rows, samples) of ``int16`` or ``float32``
  (int16 full scale = 32768, as soundfile scales it), 16 kHz by default;
* ``index.csv``      row, ytid, start_s, owner_mid, labels, true_samples, length_action;
* ``meta.json``      schema_version, params, input hashes, shape, dtype, the clips
  left out by ``length_policy="drop"``, and the sha256 of every 4 MiB chunk of
  the array (``content``, see :mod:`audioset_fewshot._integrity`).  **Written
  last: it is the commit point.**  A folder without ``meta.json`` is unfinished work.

Integrity: :func:`load_pack` checks the array's size and the index's sha256 on
every open, and the chunk hashes with ``verify=True`` (the features stage asks
for that before it reads the array); a rerun of ``pack`` whose pack is up to
date checks the hashes too and builds a damaged pack again.

Rows are ordered by owner class, then YouTube ID, then start (clips.csv order).
Every row has ``round(length_s * sample_rate_hz)`` samples; a shorter clip is
padded with zeros (``pad_zero``), repeated (``pad_repeat``) or left out
(``drop``, listed in meta.json), a longer one is cut (``trimmed``); the action
is recorded per row.

Speed and resumption: the array is preallocated with ``posix_fallocate`` (so a
full disk fails up front with ENOSPC instead of a SIGBUS in a memory map), then
tasks of 32 rows are decoded in ``workers`` processes: a 16-bit mono file at the
target rate is decoded straight into its row of the task's block, the block is
written at its offset with one ``pwrite`` and hashed (sha256) by the worker that
holds it, so each task's rows are one chunk of the content record and nothing
is read back.  A background thread flushes the file (``fdatasync``) again as
soon as the last flush is done and more tasks have finished, and about every
256 rows then records the tasks finished before the flush in ``progress.json``:
the disk writes while the pool decodes, the commit waits only for the last few
tasks, and a rerun after a kill or a full disk continues from the last record.
The commit flushes the array, writes ``index.csv``, then ``meta.json``.  ``processed/pack/current.json`` names the key of the
last finished pack; the features stage follows it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audioset_fewshot._artifact import (
    ArtifactKey,
    BackgroundFlush,
    check_row_numbers,
    load_meta,
    read_current,
    read_json,
    read_meta,
    read_records,
    remove_tree,
    render_table,
)
from audioset_fewshot._integrity import ALGO, check_size, verify_file
from audioset_fewshot._io import atomic_write_json, atomic_write_text, pwrite_at, sha256_file, sha256_text
from audioset_fewshot._progress import progress_bar
from audioset_fewshot._root import refuse_links_under_root
from audioset_fewshot.config import PackOptions
from audioset_fewshot.engine import LOCAL, Engine
from audioset_fewshot.errors import IntegrityError, ProcessingError, StageNotReadyError, UsageError
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.manifest import read_clips
from audioset_fewshot.process._common import check_free_space, current_key, disk_full_is_processing_error, write_current
from audioset_fewshot.process.clean import clean_meta_path, read_clean

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
TASK_ROWS = 32  # rows decoded per worker task
CHECKPOINT_ROWS = 256  # progress.json is rewritten after about this many finished rows (the array is flushed after every task)
INDEX_COLUMNS: tuple[str, ...] = ("row", "ytid", "start_s", "owner_mid", "labels", "true_samples", "length_action")
DTYPES = ("int16", "float32")


@dataclass(frozen=True)
class PackRow:
    """One row of the pack's index.  ``labels`` are all the clip's labels, sorted."""

    row: int
    ytid: str
    start_s: float
    owner_mid: str
    labels: tuple[str, ...]
    true_samples: int
    length_action: str

    @property
    def clip_id(self) -> str:
        from audioset_fewshot.layout import clip_stem

        return clip_stem(self.ytid, self.start_s)


@dataclass(frozen=True)
class PackRecord:
    """A finished pack: where it is, its shape and what produced it."""

    key: str
    path: Path
    audio_path: Path
    index_path: Path
    rows: int
    samples: int
    dtype: str
    sample_rate_hz: int
    params: dict[str, Any]
    inputs: dict[str, str]
    dropped_by_length: tuple[str, ...]
    length_actions: dict[str, int]
    ran: bool = field(default=True, compare=False)  # False: the finished pack on disk was current

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, self.samples)

    def open(self) -> np.ndarray:
        """The packed array as a read-only memory map (rows, samples)."""
        return open_audio(self.audio_path, self.dtype, self.shape)


def open_audio(path: Path, dtype: str, shape: tuple[int, int]) -> np.ndarray:
    if shape[0] == 0:
        return np.zeros(shape, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=shape)


# ---------------------------------------------------------------------------------------
# decoding (runs in worker processes)


def decode_clip(path: Path | str, *, sample_rate_hz: int, dtype: str) -> np.ndarray:
    """Decode one file to mono at ``sample_rate_hz`` (mean of channels, soxr HQ).

    Returns int16 or float32 samples (1-D).  16-bit mono files already at the
    target rate take a fast path that never leaves int16.
    """
    import soundfile as sf

    with sf.SoundFile(str(path)) as fh:
        sr, channels, subtype = int(fh.samplerate), fh.channels, fh.subtype
        if sr == sample_rate_hz and channels == 1 and subtype == "PCM_16":
            data = fh.read(dtype="int16")
            return data if dtype == "int16" else data.astype(np.float32) * np.float32(1.0 / 32768.0)
        data = fh.read(dtype="float32", always_2d=True)
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if sr != sample_rate_hz:
        import soxr

        mono = soxr.resample(mono, sr, sample_rate_hz, quality="HQ").astype(np.float32, copy=False)
    if dtype == "int16":
        return np.clip(np.rint(mono * 32768.0), -32768, 32767).astype(np.int16)
    return np.ascontiguousarray(mono, dtype=np.float32)


def fit_length(x: np.ndarray, length: int, policy: str) -> tuple[np.ndarray, str]:
    """Cut or pad ``x`` to ``length`` samples; returns (row, length_action)."""
    n = x.shape[0]
    if n >= length:
        return x[:length], ("trimmed" if n > length else "none")
    out = np.zeros(length, dtype=x.dtype)
    if policy == "pad_repeat" and n > 0:
        reps = -(-length // n)
        out[:] = np.tile(x, reps)[:length]
        return out, "pad_repeat"
    out[:n] = x
    return out, "pad_zero"


def decode_row(path: Path | str, row: np.ndarray, *, sample_rate_hz: int, policy: str) -> tuple[int, str]:
    """Decode one file into ``row`` (a preallocated row of the pack), cut or padded as
    :func:`fit_length` does; returns (true samples, length_action).

    Exactly ``fit_length(decode_clip(path, ...), len(row), policy)``, but a 16-bit
    mono file already at the target rate, packed as int16 (the common case), is
    decoded straight into ``row``: no intermediate array, no copy.
    """
    import soundfile as sf

    length = row.shape[0]
    if row.dtype == np.int16:
        with sf.SoundFile(str(path)) as fh:
            if int(fh.samplerate) == sample_rate_hz and fh.channels == 1 and fh.subtype == "PCM_16":
                # decode_clip reads fh.frames frames; so do these two reads, in two parts
                n = fh.read(min(length, fh.frames), dtype="int16", out=row).shape[0]
                n += fh.read(dtype="int16").shape[0] if n == length else 0
                if n >= length:
                    return n, ("trimmed" if n > length else "none")
                if policy == "pad_repeat" and n > 0:
                    row[:] = np.tile(row[:n].copy(), -(-length // n))[:length]
                    return n, "pad_repeat"
                row[n:] = 0
                return n, "pad_zero"
    x = decode_clip(path, sample_rate_hz=sample_rate_hz, dtype=str(row.dtype))
    fitted, action = fit_length(x, length, policy)
    row[:] = fitted
    return int(x.shape[0]), action


def _pack_task(args: tuple[int, str, str, int, int, str, int, list[str]]) -> tuple[int, list[int], list[str], str]:
    """Decode one task's rows, write them at their offset in the array file and
    return their sha256 (the task's rows are one chunk of the content record)."""
    task_id, audio_path, dtype, length, sample_rate_hz, policy, row_start, paths = args
    block = np.empty((len(paths), length), dtype=dtype)
    true_samples: list[int] = []
    actions: list[str] = []
    for i, p in enumerate(paths):
        try:
            n, action = decode_row(p, block[i], sample_rate_hz=sample_rate_hz, policy=policy)
        except Exception as err:  # noqa: BLE001 - any decoder failure means the same thing here
            raise ProcessingError(
                f"pack: cannot decode {p} although clean kept it ({type(err).__name__}: {err}); "
                "the file changed after clean: run 'audioset-fewshot process --stage clean --force'"
            ) from None
        true_samples.append(n)
        actions.append(action)
    _write_rows(audio_path, row_start, block)
    return task_id, true_samples, actions, hashlib.sha256(block.data).hexdigest()


def _write_rows(audio_path: str, row_start: int, block: np.ndarray) -> None:
    pwrite_at(audio_path, row_start * block.shape[1] * block.dtype.itemsize, np.ascontiguousarray(block).data)


# ---------------------------------------------------------------------------------------
# index and meta


FIX = "rebuild it with 'audioset-fewshot process --stage pack --force'"


def render_index(rows: Sequence[PackRow]) -> str:
    return render_table(INDEX_COLUMNS, ([r.row, r.ytid, f"{r.start_s:.3f}", r.owner_mid, ";".join(r.labels), r.true_samples, r.length_action] for r in rows))


def read_index(path: Path | str) -> tuple[PackRow, ...]:
    """Read a pack's (or the features') index.csv."""
    path = Path(path)
    rows = read_records(path, PackRow, missing="run 'audioset-fewshot process' to build it", fix="rebuild with 'audioset-fewshot process --force'")
    check_row_numbers(path, [r.row for r in rows], fix="rebuild with 'audioset-fewshot process --force'")
    return tuple(rows)


def _record(folder: Path, meta: dict[str, Any], *, ran: bool = False) -> PackRecord:
    return PackRecord(
        key=meta["key"],
        path=folder,
        audio_path=folder / meta["audio_file"],
        index_path=folder / "index.csv",
        rows=int(meta["rows"]),
        samples=int(meta["samples"]),
        dtype=meta["dtype"],
        sample_rate_hz=int(meta["params"]["sample_rate_hz"]),
        params=dict(meta["params"]),
        inputs=dict(meta["inputs"]),
        dropped_by_length=tuple(meta["dropped_by_length"]),
        length_actions=dict(meta["length_actions"]),
        ran=ran,
    )


def pack_damage(folder: Path, meta: dict[str, Any]) -> list[str]:
    """Every problem of a finished pack's array and index against its meta.json (reads the array once)."""
    audio = folder / str(meta.get("audio_file", ""))
    dtype = str(meta.get("dtype", ""))
    problems = [f"{audio}: {p}" for p in verify_file(audio, meta.get("content"), float_dtype=dtype if dtype == "float32" else None)]
    return problems + index_problems(folder / "index.csv", meta.get("index_csv_sha256"))


def index_problems(index: Path, sha256: object) -> list[str]:
    """``[]`` when ``index`` has the recorded sha256, else what is wrong with it."""
    try:
        if sha256_file(index) == sha256:
            return []
    except OSError as err:
        return [f"{index}: cannot read ({err.strerror or err})"]
    return [f"{index}: sha256 differs from meta.json (truncated or edited)"]


def load_pack(root: Path | str, *, key: str | None = None, verify: bool = False) -> PackRecord:
    """The last finished pack of ``root`` (or the one with ``key``).

    The array's size and the index's sha256 are always checked; ``verify=True``
    also checks the array's chunk hashes.  A damaged pack raises
    :class:`IntegrityError` naming the file."""
    layout = DatasetLayout(Path(root))
    if key is None:
        key = current_key(layout.pack_dir, stage="pack", hint="run 'audioset-fewshot process --stage pack' first")
    meta = load_meta(layout.pack_dir / key / "meta.json", stage="pack", schema_version=SCHEMA_VERSION, fix="run 'audioset-fewshot process --stage pack'")
    rec = _record(layout.pack_dir / key, meta)
    fix = "rebuild it with 'audioset-fewshot process --stage pack' (or 'audioset-fewshot run')"
    check_size(rec.audio_path, rec.rows * rec.samples * np.dtype(rec.dtype).itemsize, fix=fix)
    problems = pack_damage(rec.path, meta) if verify else index_problems(rec.index_path, meta.get("index_csv_sha256"))
    if problems:
        raise IntegrityError(f"pack {key} is damaged: {'; '.join(problems)}; {fix}")
    return rec


# ---------------------------------------------------------------------------------------
# the stage


def _check_params(sample_rate_hz: int, dtype: str, length_s: float, length_policy: str, workers: int) -> None:
    if not 8000 <= sample_rate_hz <= 48000:
        raise UsageError(f"pack: sample_rate_hz must be within 8000..48000, got {sample_rate_hz!r}")
    if dtype not in DTYPES:
        raise UsageError(f"pack: dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if not (math.isfinite(length_s) and length_s > 0):
        raise UsageError(f"pack: length_s must be > 0, got {length_s!r}")
    if length_policy not in ("pad_zero", "pad_repeat", "drop"):
        raise UsageError(f"pack: length_policy must be pad_zero, pad_repeat or drop, got {length_policy!r}")
    if workers < 1:
        raise UsageError(f"pack: workers must be >= 1, got {workers!r}")


def pack(root: Path | str, options: PackOptions | None = None, *, force: bool = False, engine: Engine | None = None) -> PackRecord:
    """Decode every clip that clean kept into ``processed/pack/<key>/``, with the ``pack``
    section's options (``PackOptions(dtype="float32")``; default: the defaults).

    ``engine``: where the tasks of ``TASK_ROWS`` rows run (:mod:`audioset_fewshot.engine`;
    default: a local pool of ``workers`` processes).  On a Dask engine each task
    writes its rows into the preallocated array itself (the root is on a filesystem
    the workers share) and returns their sha256: the same bytes as a local run.

    Needs ``processed/clean.csv`` made from the current ``manifest/clips.csv``.
    A rerun with unchanged inputs returns the finished pack at once; an
    unfinished one (killed, disk full) continues where it stopped.
    """
    o = options if options is not None else PackOptions()
    sample_rate_hz, dtype, length_s, length_policy, workers = o.sample_rate_hz, o.dtype, o.length_s, o.length_policy, o.workers
    _check_params(sample_rate_hz, dtype, length_s, length_policy, workers)
    layout = DatasetLayout(Path(root))
    if not layout.clean_csv.is_file():
        raise StageNotReadyError(f"{layout.clean_csv} does not exist; run 'audioset-fewshot process --stage clean' first")
    clips_sha = sha256_file(layout.clips_csv) if layout.clips_csv.is_file() else ""
    clean_sha = sha256_file(layout.clean_csv)
    from audioset_fewshot.process.clean import FIX as CLEAN_FIX

    clean_meta = read_meta(clean_meta_path(layout), fix=CLEAN_FIX) or {}
    if clean_meta.get("inputs", {}).get("clips_csv_sha256") != clips_sha or clean_meta.get("outputs", {}).get("clean_csv_sha256") != clean_sha:
        raise StageNotReadyError(f"{layout.clean_csv} was not made from the current {layout.clips_csv}; run 'audioset-fewshot process --stage clean' again")
    params = {"sample_rate_hz": int(sample_rate_hz), "dtype": dtype, "length_s": float(length_s), "length_policy": length_policy}
    inputs = {"clips_csv_sha256": clips_sha, "clean_csv_sha256": clean_sha}
    art = ArtifactKey("pack", SCHEMA_VERSION, params, inputs)
    key = art.digest
    folder = layout.pack_dir / key
    meta_path = folder / "meta.json"
    if force:
        remove_tree(folder)
    meta = read_current(meta_path, art, fix=FIX)
    if meta is not None:
        damage = pack_damage(folder, meta)
        if not damage:
            log.info("pack: %s is up to date", folder)
            write_current(layout.pack_dir, key)
            return _record(folder, meta)
        log.warning("pack: %s is damaged (%s); building it again", folder, "; ".join(damage))
        remove_tree(folder)

    # -- which clips, in which rows --------------------------------------------------
    manifest = {(r.ytid, r.start_s): r for r in read_clips(layout.clips_csv, root=layout.root)}
    length = int(round(length_s * sample_rate_hz))
    jobs: list[tuple[Any, str]] = []  # (manifest row, absolute path)
    dropped: list[str] = []
    for v in read_clean(layout.clean_csv):
        if v.action != "kept":
            continue
        m = manifest.get((v.ytid, v.start_s))
        if m is None:
            raise StageNotReadyError(f"{layout.clean_csv} lists {v.clip_id}, which is not in {layout.clips_csv}; run clean again")
        if length_policy == "drop" and v.frames is not None and v.sample_rate_hz:
            # frames * sr_out / sr_in < length, in exact integer arithmetic
            if v.frames * sample_rate_hz < length * v.sample_rate_hz:
                dropped.append(v.clip_id)
                continue
        jobs.append((m, str(layout.root / m.path)))
    jobs.sort(key=lambda j: (j[0].owner_mid, j[0].ytid, j[0].start_s))
    n_rows = len(jobs)
    audio_path = folder / f"audio.{dtype}"
    itemsize = np.dtype(dtype).itemsize
    nbytes = n_rows * length * itemsize
    chunk_bytes = TASK_ROWS * length * itemsize  # each task's rows are one chunk of the content hashes

    # -- resume or start ---------------------------------------------------------------
    progress_path = folder / "progress.json"
    state = read_json(progress_path)
    done: dict[str, list[Any]] = {}
    header = {"key": key, "rows": n_rows, "task_rows": TASK_ROWS, "chunk_bytes": chunk_bytes}
    if state and all(state.get(k) == v for k, v in header.items()) and audio_path.is_file() and audio_path.stat().st_size == nbytes:
        done = dict(state.get("done", {}))
        log.info("pack: resuming %s, %d of %d tasks already done", folder, len(done), -(-n_rows // TASK_ROWS))
    else:
        remove_tree(folder)
        refuse_links_under_root(folder)  # processed/ or pack/ planted as a link would take the array outside the root
        folder.mkdir(parents=True)
        with disk_full_is_processing_error("pack", folder):
            check_free_space(folder, nbytes, stage="pack")
            with open(audio_path, "wb") as fh:
                if nbytes:
                    os.posix_fallocate(fh.fileno(), 0, nbytes)
            atomic_write_json(progress_path, {**header, "done": {}})

    tasks = []
    for task_id, start in enumerate(range(0, n_rows, TASK_ROWS)):
        if str(task_id) in done:
            continue
        paths = [p for _, p in jobs[start : start + TASK_ROWS]]
        tasks.append((task_id, str(audio_path), dtype, length, sample_rate_hz, length_policy, start, paths))

    def save_progress(snapshot: dict[str, Any]) -> None:
        atomic_write_json(progress_path, {**header, "done": snapshot})

    # the array is flushed in the background after every task (when no flush is running), and
    # every CHECKPOINT_ROWS rows the tasks finished before that flush are recorded after it:
    # progress.json never claims rows that are not on disk
    fd = os.open(audio_path, os.O_RDONLY | os.O_NOFOLLOW)
    flusher = BackgroundFlush(fd)
    with contextlib.ExitStack() as stack, disk_full_is_processing_error("pack", folder), progress_bar(total=n_rows, desc="pack", unit="clip") as bar:
        stack.callback(os.close, fd)
        bar.update(sum(len(v[0]) for v in done.values()))
        since = 0

        def finished(task_id: int, ts: list[int], acts: list[str], digest: str) -> None:
            nonlocal since
            done[str(task_id)] = [ts, acts, digest]
            bar.update(len(ts))
            since += len(ts)
            snapshot = dict(done) if since >= CHECKPOINT_ROWS else None
            if flusher.kick(None if snapshot is None else (lambda: save_progress(snapshot))) and snapshot is not None:
                since = 0

        try:
            with (engine or LOCAL).executor(workers=max(1, min(workers, len(tasks)))) as ex:
                for result in ex.map_unordered(_pack_task, tasks):
                    finished(*result)
        finally:
            flusher.shutdown()
            if since:  # record the rest, so a rerun after a failed task resumes from here
                with contextlib.suppress(OSError):
                    os.fdatasync(fd)
                    save_progress(dict(done))

        # -- commit: data flushed, then index, then meta.json last -----------------------------
        os.fdatasync(fd)
        index_rows: list[PackRow] = []
        digests: list[str] = []
        for task_id, start in enumerate(range(0, n_rows, TASK_ROWS)):
            ts, acts, digest = done[str(task_id)]
            digests.append(digest)
            for i, (m, _) in enumerate(jobs[start : start + TASK_ROWS]):
                index_rows.append(PackRow(start + i, m.ytid, m.start_s, m.owner_mid, tuple(m.labels), int(ts[i]), str(acts[i])))
        index_text = render_index(index_rows)
        atomic_write_text(folder / "index.csv", index_text)
        meta = art.meta(
            audio_file=audio_path.name,
            dtype=dtype,
            rows=n_rows,
            samples=length,
            shape=[n_rows, length],
            index_csv_sha256=sha256_text(index_text),
            content={"algo": ALGO, "chunk_bytes": chunk_bytes, "size": nbytes, "sha256": digests},
            dropped_by_length=dropped,
            length_actions=dict(sorted(Counter(r.length_action for r in index_rows).items())),
        )
        atomic_write_json(meta_path, meta)
        progress_path.unlink(missing_ok=True)
        write_current(layout.pack_dir, key)
    log.info("pack: %d rows x %d samples (%s) in %s", n_rows, length, dtype, folder)
    return _record(folder, meta, ran=True)


__all__ = ["INDEX_COLUMNS", "PackRecord", "PackRow", "decode_clip", "decode_row", "fit_length", "load_pack", "pack", "pack_damage", "read_index"]
