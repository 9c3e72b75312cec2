"""Origins benchmark: ingest clips from a Hugging Face parquet mirror, side by side with
the approach users have today.

    .venv/bin/python bench/bench_origins.py            # 2,000 clips
    .venv/bin/python bench/bench_origins.py --quick    # a smoke run (100 clips)

The corpus is generated first (not timed) and cached in ``bench/_work/origins``:
real AudioSet segments (the balanced list shipped in tests/data), each a seeded
10 s stereo signal stored as 48 kHz 24-bit FLAC, written as ``datasets`` writes
audio parquet (pyarrow's defaults, 100 rows per row group, no page index) in the
``agkphysics/AudioSet`` layout.

Measured in one run, each ingest in its own process (its peak RSS is its own):

* ours: ``run_download`` with the parquet folder as the only origin (16 kHz mono
  FLAC per clip, ledger), then manifest, clean and ``pack`` (the packed array);
* today's approach: the rows iterated as ``datasets`` does (record batches of
  the ``audio`` column), each clip decoded with soundfile, resampled with
  ``librosa.resample``, mixed to mono, written as one FLAC file per clip;
* the 2-core limit: soundfile decode + soxr resample of the same bytes in memory,
  one process per core (wall rate under this run's load), and its CPU per clip.

On a shared machine a wall-clock ratio between a parallel ingest and a serial one
says little (every process gets a slice of the same cores), so the CPU seconds per
clip of both ingests are printed too, with the rates they give on idle cores.

Goals: ours >= 3x today's approach, >= 75 % of the limit, peak RSS <= 1 GiB.
Bytes: with 1 % of the rows selected, bytes read from the parquet files (the
process's ``rchar``) by our page reader against reading the selected row groups;
goal <= 1.5x the FLAC bytes of the selected clips.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / "_work" / "origins"
METADATA = Path(os.environ.get("AUDIOSET_FEWSHOT_SHARED_METADATA", REPO / "tests" / "data" / "audioset-metadata"))
SR_IN, SR_OUT = 48000, 16000
SEED = 20261204


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


def _rchar() -> int:
    with open("/proc/self/io", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    return 0


def _peak_rss_mb() -> float:
    """This process's peak resident set (``VmHWM``: of its own address space since exec, unlike
    ``ru_maxrss``, which keeps the high-water mark of the parent it was forked from)."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s() -> float:
    """CPU seconds of this process (all threads) and of its finished children."""
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ch.ru_utime + ch.ru_stime


def _segments(n: int) -> list[tuple[str, float, float, tuple[str, ...]]]:
    sys.path.insert(0, str(REPO / "src"))
    from audioset_fewshot.metadata.segments import parse_line

    out = []
    with open(METADATA / "balanced_train_segments.csv", encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            parsed = parse_line(line, line_no=i)
            if parsed is not None and parsed[2] - parsed[1] == 10.0:
                out.append((parsed[0], parsed[1], parsed[2], tuple(sorted(parsed[3]))))
                if len(out) == n:
                    break
    return out


def _flac(k: int) -> bytes:
    import soundfile as sf

    rng = np.random.default_rng([SEED, k])
    t = np.arange(10 * SR_IN) / SR_IN
    tones = sum(0.15 * np.sin(2 * np.pi * rng.uniform(80, 4000) * t + rng.uniform(0, 6)) for _ in range(3))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.1, 2) * t) ** 2
    x = np.stack([tones * env, 0.8 * tones * env], axis=1) + rng.uniform(0.001, 0.01) * rng.standard_normal((t.shape[0], 2))
    buf = io.BytesIO()
    sf.write(buf, x.astype(np.float32), SR_IN, format="FLAC", subtype="PCM_24")
    return buf.getvalue()


def build_corpus(n: int, work: Path) -> Path:
    """``work/hf/data/bal_train/*.parquet`` (1000 rows per file, 100 per row group); cached."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = work / "hf"
    marker = work / "corpus.json"
    if marker.exists() and json.loads(marker.read_text()).get("n") == n:
        return root
    shutil.rmtree(root, ignore_errors=True)
    folder = root / "data" / "bal_train"
    folder.mkdir(parents=True)
    segs = _segments(n)
    audio_t = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    t0 = time.perf_counter()
    for part, lo in enumerate(range(0, n, 1000)):
        chunk = segs[lo : lo + 1000]
        table = pa.table({
            "video_id": [s[0] for s in chunk],
            "audio": pa.array([{"bytes": _flac(lo + k), "path": f"audio/bal_train/{s[0]}.flac"} for k, s in enumerate(chunk)], audio_t),
            "labels": pa.array([list(s[3]) for s in chunk], pa.list_(pa.string())),
            "human_labels": pa.array([[] for _ in chunk], pa.list_(pa.string())),
        })  # fmt: skip
        pq.write_table(table, folder / f"{part:05d}.parquet", row_group_size=100)
        del table
    (work / "segments.json").write_text(json.dumps(segs))
    marker.write_text(json.dumps({"n": n}))
    print(f"corpus: {n} clips of 48 kHz 24-bit stereo FLAC in {time.perf_counter() - t0:.0f} s, "
          f"{sum(p.stat().st_size for p in folder.glob('*.parquet')) / 1e9:.2f} GB", flush=True)  # fmt: skip
    return root


# ---------------------------------------------------------------------------------------
# the phases (each run in a child process)


def phase_ours(work: Path, jobs: int) -> dict[str, Any]:
    sys.path.insert(0, str(REPO / "src"))
    from audioset_fewshot.config import CleanOptions, DownloadOptions, PackOptions
    from audioset_fewshot.download.runner import run_download
    from audioset_fewshot.layout import DatasetLayout
    from audioset_fewshot.manifest import build_manifest
    from audioset_fewshot.plan import PlanEntry, SamplingPlan, write_plan
    from audioset_fewshot.process.clean import clean
    from audioset_fewshot.process.pack import pack

    segs = json.loads((work / "segments.json").read_text())
    entries = [PlanEntry(f"{y}_{round(s * 1000)}", y, s, e, labels[0], tuple(labels), "balanced", k) for k, (y, s, e, labels) in enumerate(segs)]
    ranks: dict[str, int] = {}
    entries = [
        PlanEntry(
            p.clip_id,
            p.ytid,
            p.start_s,
            p.end_s,
            p.owner_mid,
            p.labels,
            p.source,
            ranks.setdefault(p.owner_mid, 0) + (ranks.__setitem__(p.owner_mid, ranks[p.owner_mid] + 1) or 0) - 1,
        )
        for p in entries
    ]  # noqa: E501
    plan = SamplingPlan.exact(entries, params={"seed": 0, "exact": True})
    root = work / "ours-root"
    shutil.rmtree(root, ignore_errors=True)
    write_plan(plan, DatasetLayout(root))
    t0, c0 = time.perf_counter(), _cpu_s()
    rep = run_download(plan, root, DownloadOptions(origins=[str(work / "hf")], jobs=jobs, min_free="0B", early_abort=0))
    t_dl = time.perf_counter() - t0
    build_manifest(root)
    clean(root, CleanOptions(workers=_cores()))
    rec = pack(root, PackOptions(workers=_cores()))
    t_all = time.perf_counter() - t0
    return {"clips": rep.obtained, "seconds": t_all, "cpu_s": _cpu_s() - c0, "download_s": t_dl, "pack_rows": int(rec.rows) if hasattr(rec, "rows") else None,
            "peak_rss_mb": _peak_rss_mb()}  # fmt: skip


def phase_today(work: Path) -> dict[str, Any]:
    import librosa
    import pyarrow.parquet as pq
    import soundfile as sf

    out = work / "today"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    t0, c0 = time.perf_counter(), _cpu_s()
    n = 0
    for path in sorted((work / "hf" / "data").rglob("*.parquet")):
        pf = pq.ParquetFile(path)
        for batch in pf.iter_batches(batch_size=100, columns=["video_id", "audio"]):  # datasets' row iteration
            for row in batch.to_pylist():
                y, sr = sf.read(io.BytesIO(row["audio"]["bytes"]), dtype="float32", always_2d=True)
                mono = librosa.resample(y.T, orig_sr=sr, target_sr=SR_OUT).mean(axis=0)
                sf.write(out / f"{row['video_id']}.flac", mono, SR_OUT, subtype="PCM_16")
                n += 1
    return {"clips": n, "seconds": time.perf_counter() - t0, "cpu_s": _cpu_s() - c0, "peak_rss_mb": _peak_rss_mb()}


_BLOBS: list[bytes] = []


def _decode_resample(i: int) -> int:
    import soundfile as sf
    import soxr

    y, sr = sf.read(io.BytesIO(_BLOBS[i]), dtype="float32", always_2d=True)
    return int(soxr.resample(y.mean(axis=1), sr, SR_OUT, quality="HQ").shape[0])


def phase_limit(work: Path, sample: int) -> dict[str, Any]:
    """decode + soxr of the same bytes in memory: CPU seconds per clip (serial), and the wall
    rate of a pool of one process per core (the limit, measured under the same load)."""
    import multiprocessing as mp

    import pyarrow.parquet as pq

    path = sorted((work / "hf" / "data").rglob("*.parquet"))[0]
    _BLOBS.extend(r["bytes"] for r in pq.read_table(path, columns=["audio"]).column("audio").to_pylist()[:sample])
    c0 = time.process_time()
    for i in range(len(_BLOBS)):
        _decode_resample(i)
    cost = (time.process_time() - c0) / len(_BLOBS)
    cores = _cores()
    with mp.get_context("fork").Pool(cores) as pool:
        t0 = time.perf_counter()
        done = sum(1 for _ in pool.imap_unordered(_decode_resample, [i % len(_BLOBS) for i in range(3 * len(_BLOBS))]))
        wall = time.perf_counter() - t0
    return {"cpu_s_per_clip": cost, "ideal_clips_per_s": cores / cost, "clips_per_s": done / wall, "cores": cores,
            "flac_bytes_mean": float(np.mean([len(b) for b in _BLOBS]))}  # fmt: skip


def phase_bytes(work: Path, fraction: float) -> dict[str, Any]:
    sys.path.insert(0, str(REPO / "src"))
    import pyarrow.parquet as pq

    from audioset_fewshot.download.origins import OriginSpec, open_origin

    origin = open_origin(OriginSpec(str(work / "hf")))
    clips = list(origin.clips())
    rng = np.random.default_rng(SEED)
    picks = sorted(rng.choice(len(clips), size=max(1, round(fraction * len(clips))), replace=False).tolist())
    chosen = [clips[i] for i in picks]
    r0 = _rchar()
    selected = 0
    for c in chosen:
        audio = origin.read(c)
        selected += len(audio.data or b"")
    ours = _rchar() - r0
    origin.close()
    # reading the selected row groups (what datasets / pyarrow do for a row)
    r0 = _rchar()
    by_group: dict[tuple[str, int], list[int]] = {}
    for c in chosen:
        by_group.setdefault((str(c.locator[0]), int(c.locator[1])), []).append(int(c.locator[2]))
    for (rel, rg), rows in by_group.items():
        col = pq.ParquetFile(work / "hf" / rel).read_row_group(rg, columns=["audio"]).column("audio")
        assert all(col[r]["bytes"].as_py() is not None for r in rows)
    groups = _rchar() - r0
    return {"selected_clips": len(chosen), "rows": len(clips), "selected_flac_bytes": selected, "ours_bytes": ours, "row_group_bytes": groups}


# ---------------------------------------------------------------------------------------


def _child(phase: str, work: Path, extra: list[str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--phase", phase, "--work", str(work), *extra], capture_output=True, text=True, timeout=7200, check=False)
    if out.returncode != 0:
        raise SystemExit(f"phase {phase} failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _report import Report, bench_parser

    parser = bench_parser(__doc__)
    parser.add_argument("--clips", type=int, default=None, help="corpus size (default 2000, quick 100)")
    parser.add_argument("--work", type=Path, default=WORK, help="corpus and roots (default bench/_work/origins)")
    parser.add_argument("--phase", choices=["ours", "today", "limit", "bytes"], default=None, help=argparse.SUPPRESS)
    parser.add_argument("--jobs", type=int, default=None, help="download workers of our ingest (default: 2 per core)")
    args = parser.parse_args(argv)
    work: Path = args.work
    jobs = args.jobs or 2 * _cores()  # two clips per core: one decodes while the other waits on its fsync
    if args.phase:
        result = {"ours": lambda: phase_ours(work, jobs), "today": lambda: phase_today(work), "limit": lambda: phase_limit(work, 40),
                  "bytes": lambda: phase_bytes(work, 0.01)}[args.phase]()  # fmt: skip
        print(json.dumps(result))
        return 0
    n = args.clips or (100 if args.quick else 2000)
    work.mkdir(parents=True, exist_ok=True)
    build_corpus(n, work)
    rep = Report("origins", quick=args.quick, params={"clips": n, "jobs": jobs})
    limit = _child("limit", work, [])
    ours = _child("ours", work, ["--jobs", str(jobs)])
    today = _child("today", work, [])
    size = _child("bytes", work, [])
    r_ours, r_today, r_limit = ours["clips"] / ours["seconds"], today["clips"] / today["seconds"], limit["clips_per_s"]
    what = f"ingest {n} x 10 s 48 kHz FLAC from parquet"
    rep.add("ingest_vs_today", what, kind="today", ours=f"{r_ours:.1f} clips/s", against=f"rows+librosa {r_today:.1f} clips/s",
            ratio=r_ours / r_today, goal=3.0, values={"ours": r_ours, "against": r_today})  # fmt: skip
    rep.add("ingest_vs_decode", "  same vs decode + soxr in memory (pool)", kind="bound", ours=f"{r_ours:.1f} clips/s",
            against=f"{r_limit:.1f} clips/s", ratio=r_ours / r_limit, goal=0.75, values={"ours": r_ours, "against": r_limit})  # fmt: skip
    rep.ceiling("ingest_rss", "  peak RSS of our ingest", ours["peak_rss_mb"], 1024.0, fmt="{:.0f} MB")
    rep.add("ingest_cpu", "  CPU per clip of decode + soxr (1 process)", kind="info", ours=f"{limit['cpu_s_per_clip'] * 1e3:.1f} ms",
            against=f"idle {limit['ideal_clips_per_s']:.0f} clips/s", ratio=None)  # fmt: skip
    cpu_ours, cpu_today = ours["cpu_s"] / ours["clips"], today["cpu_s"] / today["clips"]
    idle_ours, idle_today = min(limit["cores"] / cpu_ours, r_ours * 1e9), 1.0 / cpu_today  # today runs in one process
    rep.add("ingest_cpu_per_clip", "  CPU per clip: ours (all stages) vs today", kind="info", ours=f"{cpu_ours * 1e3:.1f} ms",
            against=f"today {cpu_today * 1e3:.1f} ms", ratio=None, values={"ours": cpu_ours, "against": cpu_today})  # fmt: skip
    rep.add("ingest_idle_projection", "  on idle cores (CPU-bound): ours vs today", kind="info", ours=f"{idle_ours:.1f} clips/s ({idle_ours / idle_today:.1f}x)",
            against=f"today {idle_today:.1f} clips/s", ratio=None, values={"ours": idle_ours, "against": idle_today})  # fmt: skip
    sel = size["selected_flac_bytes"]
    rep.add("bytes_read", f"bytes read, {size['selected_clips']} of {size['rows']} rows (1 %)", kind="limit", ours=f"{size['ours_bytes'] / 1e6:.1f} MB",
            against=f"selected FLAC {sel / 1e6:.1f} MB", ratio=size["ours_bytes"] / sel, goal=1.5, values={"ours": size["ours_bytes"], "against": sel})  # fmt: skip
    rep.add("bytes_row_groups", "  reading the selected row groups instead", kind="info", ours=f"{size['row_group_bytes'] / 1e6:.1f} MB",
            against=f"selected FLAC {sel / 1e6:.1f} MB", ratio=None, values={"ours": size["row_group_bytes"], "against": sel})  # fmt: skip
    rep.figures.update(limit=limit, ours=ours, today=today, bytes=size)
    rep.note(f"ours: run_download from the parquet origin ({ours['download_s']:.1f} s to FLAC files), then manifest, clean and pack")
    rep.note("today: rows as datasets iterates them, soundfile + librosa.resample (its default, soxr_hq), one FLAC per clip")
    if args.quick:
        rep.note("quick: a smoke run; the goals are for 2,000 clips")
    return rep.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())
