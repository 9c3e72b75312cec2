"""Benchmark: read Google's VGGish embedding release (index + pack) at full scale.

    .venv/bin/python bench/bench_release.py            # 2,084,320 records in 12,228 files
    .venv/bin/python bench/bench_release.py --quick    # 1/64 of the records in 3 x 64 files (smoke run)

1. Writes, once, a synthetic release in the official layout with the project's
   own writer (``audioset_fewshot.release.writer``): per list the official
   record count (bal_train 22,160 / eval 20,371 / unbal_train 2,041,789) and
   file count (4,070 / 4,062 / 4,096 two-character prefixes), YouTube IDs drawn
   from ``default_rng`` over the 64-character alphabet, times and labels cycled
   from the real rows in tests/data/audioset-metadata (label numbers through
   ``class_labels_indices.csv``), 10 random uint8 seconds per record; plus the
   matching segment lists (official names) for the class selection.  Cached
   under ``bench/_work/release-<n>/`` and reused.
2. Ours, in a child process: ``pack_release`` (index and pack in one pass:
   both CRCs of every record verified, protobuf decode, 2 worker processes)
   of every record of all three lists into one (N, 10, 128) uint8 array +
   mask + the index.  Wall time, CPU time, and peak RSS of the parent and of
   the largest worker.
3. Today's approach, re-implemented faithfully: a loop over the ``tfrecord``
   package's ``sequence_loader`` (vahidk/tfrecord; it reads the framing but
   checks no CRC) over every file, collecting the same index columns and
   writing the same packed array.  Run on a stated share of the files (1/8 at
   full size) and scaled linearly.
4. The selection: 142 classes at QA >= 0.8 over the three synthetic lists,
   every candidate clip of them looked up in the index and packed.

Goals (issue 14): index + pack <= 120 s on the 2-core machine, >= 3x the
tfrecord loop, peak RSS <= 2 GiB; the 142-class selection packed <= 30 s.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import Report, bench_parser

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
SHARED = Path(os.environ.get("AUDIOSET_FEWSHOT_SHARED_METADATA", REPO / "tests" / "data" / "audioset-metadata"))
WORK = REPO / "bench" / "_work"
SHARED_FILES = ("balanced_train_segments.csv", "eval_segments.csv", "unbalanced_train_segments_part.csv")
LIST_FILES = {"balanced": "balanced_train_segments.csv", "eval": "eval_segments.csv", "unbalanced": "unbalanced_train_segments.csv"}
FULL = {"balanced": (22_160, 4070), "eval": (20_371, 4062), "unbalanced": (2_041_789, 4096)}
ALPHABET = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", dtype=np.uint8)
GOAL_S, GOAL_RATIO, GOAL_RSS_MIB, GOAL_SELECT_S = 120.0, 3.0, 2048.0, 30.0


def _template() -> list[tuple[str, str, str]]:
    """(start, end, labels) of every real data row of the shared lists."""
    rows = []
    for name in SHARED_FILES:
        with open(SHARED / name, encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("#") or not line.strip():
                    continue
                _, start, end, labels = (part.strip() for part in line.split(",", 3))
                rows.append((start, end, labels.strip('"')))
    return rows


def _write_file(args: tuple[str, list[tuple[str, float, float, tuple[int, ...]]], int]) -> int:
    from audioset_fewshot.release.records import encode
    from audioset_fewshot.release.tfrecord import write_records

    path, rows, seed = args
    rng = np.random.default_rng([seed, 5])
    emb = rng.integers(0, 256, (len(rows), 10, 128), dtype=np.uint8)
    with open(path, "wb") as fh:
        write_records(fh, (encode(y, s, e, lab, emb[i]) for i, (y, s, e, lab) in enumerate(rows)))
    return len(rows)


def generate(work: Path, *, scale: int, n_prefixes: int | None) -> tuple[Path, Path, int]:
    """The release folder, the metadata folder and the record count (cached)."""
    from audioset_fewshot.release.labels import packaged_label_indices, read_label_indices
    from audioset_fewshot.release.source import SPLIT_DIRS, TOP

    plan = {s: (n // scale, min(files, n_prefixes) if n_prefixes else files) for s, (n, files) in FULL.items()}
    total = sum(n for n, _ in plan.values())
    base = work / f"release-{total}"
    done = base / "DONE.json"
    meta = base / "metadata"
    meta_done = meta / "DONE.json"
    marker = {"plan": {k: list(v) for k, v in plan.items()}}
    records_ok = done.is_file() and json.loads(done.read_text()) == marker
    if records_ok and meta_done.is_file() and json.loads(meta_done.read_text()) == {**marker, "metadata": 2}:
        return base / TOP, meta, total
    if not records_ok:
        shutil.rmtree(base, ignore_errors=True)
    shutil.rmtree(meta, ignore_errors=True)
    numbers = {m: i for i, m in enumerate(read_label_indices(packaged_label_indices()))}
    tails = _template()
    meta.mkdir(parents=True)
    for name in ("class_labels_indices.csv", "ontology.json", "qa_true_counts.csv"):
        shutil.copy(SHARED / name, meta / name)
    jobs: list[tuple[str, list[tuple[str, float, float, tuple[int, ...]]], int]] = []
    offset = 0
    prefixes_all = np.array([a + b for a in ALPHABET.tobytes().decode() for b in ALPHABET.tobytes().decode()])
    for k, (source, (n, files)) in enumerate(plan.items()):
        rng = np.random.default_rng([11, k])
        prefixes = np.sort(rng.choice(prefixes_all, files, replace=False))
        # every prefix gets at least one record; the rest spread at random
        pick = np.concatenate([np.arange(files), rng.integers(0, files, max(0, n - files))])[:n]
        rest = ALPHABET[rng.integers(0, 64, (n, 9))].view("S9").reshape(-1).astype(str)
        ytids = np.char.add(prefixes[pick], rest)
        lines = []
        by_file: dict[str, list[tuple[str, float, float, tuple[int, ...]]]] = {}
        for i in range(n):
            start, end, labels = tails[(offset + i) % len(tails)]
            y = str(ytids[i])
            lines.append(f'{y}, {start}, {end}, "{labels}"')
            by_file.setdefault(y[:2], []).append((y, float(start), float(end), tuple(numbers[m] for m in labels.split(","))))
        offset += n
        mids = [m for line in lines for m in line.rsplit('"', 2)[1].split(",")]
        header = (
            f"# Segments csv created Sun Mar  5 10:54:31 2017\n# num_ytids={n}, num_segs={n}, num_unique_labels={len(set(mids))}, "
            f"num_positive_labels={len(mids)}\n# YTID, start_seconds, end_seconds, positive_labels\n"
        )
        (meta / LIST_FILES[source]).write_text(header + "\n".join(lines) + "\n", encoding="ascii")
        folder = base / TOP / SPLIT_DIRS[source]
        if records_ok:
            continue
        folder.mkdir(parents=True)
        for j, (prefix, rows) in enumerate(sorted(by_file.items())):
            jobs.append((str(folder / f"{prefix}.tfrecord"), rows, k * 10_000 + j))
    import multiprocessing

    if not records_ok:
        with multiprocessing.get_context("fork").Pool(2) as pool:
            written = sum(pool.imap_unordered(_write_file, jobs, chunksize=16))
        assert written == total
        done.write_text(json.dumps(marker))
    meta_done.write_text(json.dumps({**marker, "metadata": 2}))
    return base / TOP, meta, total


# what every child script starts with (_child puts it first): its imports and its own peak memory
_CHILD = r"""
import json, resource, sys, time
def hwm_kib():
    # this process's own peak (VmHWM): ru_maxrss would carry the bench parent's peak across fork + exec
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
"""

OURS = r"""
sys.path.insert(0, sys.argv[4])
from audioset_fewshot.release.index import pack_release
release, out, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
t0 = time.perf_counter(); c0 = time.process_time()
idx = pack_release(release, out, workers=workers)
t1 = time.perf_counter()
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"seconds": t1 - t0, "records": len(idx), "files": len(idx.files),
                  "cpu_s": time.process_time() - c0 + kids.ru_utime + kids.ru_stime, "corrupt": int(idx.counts()["corrupt"]),
                  "peak_rss_kib": hwm_kib(), "worker_peak_rss_kib": kids.ru_maxrss}))
"""

TODAY = r"""
from pathlib import Path
import numpy as np
from tfrecord.reader import sequence_loader
files = [Path(p) for p in json.loads(Path(sys.argv[1]).read_text())]
out = sys.argv[2]
ctx = {"video_id": "byte", "start_time_seconds": "float", "end_time_seconds": "float", "labels": "int"}
seq = {"audio_embedding": "byte"}
t0 = time.perf_counter(); c0 = time.process_time()
ytids, starts, ends, labels, fileno, seconds = [], [], [], [], [], []
n = 0
with open(out, "wb") as fh:
    for f, path in enumerate(files):
        for c, s in sequence_loader(str(path), None, ctx, seq):
            ytids.append(c["video_id"].decode()); starts.append(float(c["start_time_seconds"][0])); ends.append(float(c["end_time_seconds"][0]))
            labels.append(c["labels"].tolist()); fileno.append(f)
            frames = s["audio_embedding"]
            seconds.append(len(frames))
            row = np.zeros((10, 128), dtype=np.uint8)
            emb = np.stack([np.frombuffer(v, dtype=np.uint8) for v in frames[:10]])
            row[: emb.shape[0]] = emb
            fh.write(row.tobytes())
            n += 1
print(json.dumps({"seconds": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "records": n,
                  "peak_rss_kib": hwm_kib()}))
"""

SELECT = r"""
sys.path.insert(0, sys.argv[4])
import numpy as np
from audioset_fewshot.metadata import build_candidate_index, load_ontology, load_quality, read_segments, resolve_segment_files
from audioset_fewshot.selection import select_classes
from audioset_fewshot.release.index import index_release
from audioset_fewshot.release.store import pack_rows
from audioset_fewshot.config import SOURCES
release, meta, out = sys.argv[1], sys.argv[2], sys.argv[3]
idx = index_release(release, workers=2)
t0 = time.perf_counter()
table = read_segments(resolve_segment_files(SOURCES, metadata_dir=meta))
t1 = time.perf_counter()
onto = load_ontology()
sel = select_classes(onto, load_quality(), min_quality=0.8)
cand = build_candidate_index(table, sel.mids)
rows = np.unique(np.concatenate([cand.rows(m) for m in sel.mids]))
found = idx.find([SOURCES[int(s)] for s in table.source[rows]], table.ytid[rows].astype("S11"), np.round(table.start_s[rows] * 1000).astype(np.int64))
t2 = time.perf_counter()
k0 = resource.getrusage(resource.RUSAGE_CHILDREN); c0 = time.process_time()
res = pack_rows(idx, found[found >= 0], out, workers=2)
t3 = time.perf_counter()
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
pack_cpu = time.process_time() - c0 + kids.ru_utime + kids.ru_stime - k0.ru_utime - k0.ru_stime
print(json.dumps({"classes": len(sel.mids), "clips": int(rows.size), "found": int((found >= 0).sum()), "read_lists_s": t1 - t0,
                  "select_s": t2 - t1, "pack_s": t3 - t2, "pack_cpu_s": pack_cpu, "peak_rss_kib": hwm_kib()}))
"""


def _child(code: str, *args: str, timeout_s: float) -> dict:
    """Run ``code`` (after :data:`_CHILD`) in a fresh Python; its last line of output is JSON."""
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD + code, *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        env={**os.environ, "AUDIOSET_FEWSHOT_PROGRESS": "0"},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = bench_parser(__doc__)
    ap.add_argument("--today-fraction", type=float, default=None, help="share of the files the tfrecord loop reads (default 1/8 full, 1 quick)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--work-dir", type=Path, default=None)
    args = ap.parse_args(argv)
    rep = Report("release", quick=args.quick)
    work = args.work_dir or WORK
    t0 = time.perf_counter()
    folder, meta, total = generate(work, scale=64 if args.quick else 1, n_prefixes=64 if args.quick else None)
    files = sorted(folder.glob("*/*.tfrecord"))
    size = sum(f.stat().st_size for f in files)
    print(f"release: {folder} ({total:,} records in {len(files):,} files, {size / 2**30:.2f} GiB) ready in {time.perf_counter() - t0:.1f} s")
    out = work / "release-pack-out"
    shutil.rmtree(out, ignore_errors=True)
    try:
        ours = _child(OURS, str(folder), str(out), str(args.workers), str(REPO / "src"), timeout_s=3600)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    ours_s = ours["seconds"]
    rss = ours["peak_rss_kib"] / 1024
    wrss = ours["worker_peak_rss_kib"] / 1024
    print(
        f"ours:  pack_release (index + pack, one pass) {ours_s:.1f} s for {ours['records']:,} records "
        f"({ours['records'] / ours_s:,.0f} records/s), CPU {ours['cpu_s']:.1f} s; peak RSS parent {rss:.0f} MiB, largest worker {wrss:.0f} MiB"
    )
    fraction = args.today_fraction if args.today_fraction is not None else (1.0 if args.quick else 0.125)
    step = max(1, round(1 / fraction))
    share = files[::step]
    out_today = work / "release-today.u8"
    list_today = work / "release-today-files.json"  # too long for a command line at full size
    list_today.write_text(json.dumps([str(p) for p in share]))
    try:
        today = _child(TODAY, str(list_today), str(out_today), timeout_s=7200)
    finally:
        out_today.unlink(missing_ok=True)
        list_today.unlink(missing_ok=True)
    scale = total / today["records"]
    today_s = today["seconds"] * scale
    note = f" (measured on every {step}th file: {today['records']:,} records, scaled x{scale:.2f})" if step > 1 else ""
    print(
        f"today: tfrecord loop {today['seconds']:.1f} s measured, {today_s:.1f} s for {total:,} records{note}; "
        f"peak RSS {today['peak_rss_kib'] / 1024:.0f} MiB; it checks no CRC"
    )
    out_sel = work / "release-select-out"
    shutil.rmtree(out_sel, ignore_errors=True)
    try:
        sel = _child(SELECT, str(folder), str(meta), str(out_sel), str(REPO / "src"), timeout_s=3600)
    finally:
        shutil.rmtree(out_sel, ignore_errors=True)
    sel_s = sel["select_s"] + sel["pack_s"]
    print(
        f"select: {sel['classes']} classes, {sel['clips']:,} candidate clips ({sel['found']:,} in the release): selection + lookup "
        f"{sel['select_s']:.1f} s + pack {sel['pack_s']:.1f} s = {sel_s:.1f} s (release indexed and segment lists read before: "
        f"{sel['read_lists_s']:.1f} s); pack CPU {sel['pack_cpu_s']:.1f} s (parent + workers)"
    )
    ratio = today_s / ours_s if ours_s else float("inf")
    peak = max(rss, wrss)
    print()
    print(f"{'measure':<40}{'ours':>10}{'today':>12}{'ratio':>9}{'goal':>12}  met")
    print(f"{'index + pack all three lists (s)':<40}{ours_s:>10.1f}{today_s:>12.1f}{ratio:>8.1f}x{'<= 120 s':>12}  {'yes' if ours_s <= GOAL_S else 'NO'}")
    print(f"{'  vs the tfrecord loop':<40}{'':>10}{'':>12}{'':>9}{'>= 3x':>12}  {'yes' if ratio >= GOAL_RATIO else 'NO'}")
    print(
        f"{'peak RSS, any process (MiB)':<40}{peak:>10.0f}{today['peak_rss_kib'] / 1024:>12.0f}{'':>9}{'<= 2048':>12}  {'yes' if peak <= GOAL_RSS_MIB else 'NO'}"
    )
    print(f"{'142 classes x all clips packed (s)':<40}{sel_s:>10.1f}{'':>12}{'':>9}{'<= 30 s':>12}  {'yes' if sel_s <= GOAL_SELECT_S else 'NO'}")
    ok = ours_s <= GOAL_S and ratio >= GOAL_RATIO and peak <= GOAL_RSS_MIB and sel_s <= GOAL_SELECT_S
    record = {
        "bench": "release",
        "quick": args.quick,
        "records": total,
        "files": len(files),
        "ours_s": ours_s,
        "ours_cpu_s": ours["cpu_s"],
        "today_s": today_s,
        "ratio": ratio,
        "peak_rss_mib": peak,
        "select_s": sel_s,
        "select_classes": sel["classes"],
        "select_clips": sel["found"],
        "met": ok,
    }
    work.mkdir(parents=True, exist_ok=True)
    with open(work / "results.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
    rep.params.update(records=total, files=len(files), today_files=len(share), workers=args.workers)
    rep.add(
        "index_pack_vs_tfrecord",
        f"VGGish release: index + pack {total:,} records",
        kind="today",
        ours=f"{ours_s:,.1f} s",
        against=f"tfrecord loop {today_s:,.1f} s" + (f" (1/{step}, scaled)" if step > 1 else ""),
        ratio=ratio,
        goal=GOAL_RATIO,
        values={"ours": ours_s, "against": today_s},
    )
    rep.ceiling("index_pack_time", "  same, wall time", ours_s, GOAL_S, fmt="{:,.1f} s", against=f"{GOAL_S:g} s")
    rep.ceiling("peak_rss", "  peak RSS, any process", peak, GOAL_RSS_MIB, fmt="{:,.0f} MiB")
    rep.ceiling("select_pack_time", f"{sel['classes']} classes x all clips packed", sel_s, GOAL_SELECT_S, fmt="{:,.1f} s", against=f"{GOAL_SELECT_S:g} s")
    cpu_ratio = today["cpu_s"] * scale / ours["cpu_s"] if ours["cpu_s"] else float("inf")
    print(
        f"CPU time (load-robust): ours {ours['cpu_s']:.1f} s (parent + workers), tfrecord loop {today['cpu_s'] * scale:.1f} s "
        f"(scaled): {cpu_ratio:.1f}x; load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    rep.add(
        "index_pack_cpu",
        "  same, CPU time (parent + workers)",
        kind="info",
        ours=f"{ours['cpu_s']:,.1f} s",
        against=f"tfrecord loop {today['cpu_s'] * scale:,.1f} s",
        ratio=cpu_ratio,
        values={"ours": ours["cpu_s"], "against": today["cpu_s"] * scale},
    )
    record["ours_cpu_s"], record["today_cpu_s"] = ours["cpu_s"], today["cpu_s"] * scale
    rep.figures.update(record)
    rep.finish(args.json)
    return 0 if ok or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
