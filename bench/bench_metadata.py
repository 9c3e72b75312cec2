"""Benchmark: class -> candidate-rows index on an official-size unbalanced list.

    .venv/bin/python bench/bench_metadata.py            # full size: 2,041,789 rows
    .venv/bin/python bench/bench_metadata.py --quick    # 50,000 rows, < 60 s (smoke test)

1. Generates, deterministically, an unbalanced segment list of the official size
   in the official layout (three comment lines, ``YTID, start, end, "labels"``)
   by cycling through the real rows of tests/data/audioset-metadata (balanced,
   eval, unbalanced part) with new YouTube IDs drawn from
   ``default_rng([seed, 0])`` (so some begin with ``-`` and contain ``_``).
   Written to ``bench/_work/`` (git-ignored) and reused when already there.
2. Ours: ``read_segments`` + ``select_classes`` (142 classes at QA >= 0.8) +
   ``build_candidate_index``, in a child process that reports its own wall
   time and peak RSS (``ru_maxrss``).
3. The seed project's approach, re-implemented faithfully:
   compile step ``pandas.read_csv(path, header=[1])``, spelled
   ``skiprows=2, header=None, names=[YTID, start, end, label_0 .. label_K]``
   because pandas refuses ``names`` with a list header and, without names,
   stops at the first multi-label row ("Expected 4 fields, saw 5"): row 1 (the counts line) is the header row, replaced by the
   names; pandas only honours a quote at the *start* of a field and the
   official label list follows ", ", so the quoted list is split at its commas
   into label columns (``' "/m/09x0r'``, ``'/t/dd00088"'``); the
   ``# YTID, ...`` comment line becomes a data row.  Then the quotes and spaces
   are stripped row by row with ``df.apply(..., axis=1)``.  Download step: for
   each of the 142 classes, ``df[df.eq(mid).any(axis=1)]``.
   The seed approach is run on a stated deterministic prefix of the file (the
   first ``--seed-fraction`` of the rows, by default 1/8 at full size) and its
   time scaled linearly to the full size; the output says so.

Goals: ours >= 50x faster than the seed approach; our peak RSS <= 1 GiB.
Both wall and CPU time are printed: on a loaded machine wall time inflates both
sides, CPU time shows the work each approach does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import Report, bench_parser

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AUDIOSET_FEWSHOT_SHARED_METADATA", REPO / "tests" / "data" / "audioset-metadata"))
WORK = REPO / "bench" / "_work"
OFFICIAL_ROWS = 2_041_789
QUICK_ROWS = 50_000
SHARED_FILES = ("balanced_train_segments.csv", "eval_segments.csv", "unbalanced_train_segments_part.csv")
ALPHABET = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", dtype=np.uint8)
GOAL_RATIO = 50.0
GOAL_RSS_MIB = 1024.0


def _template_rows() -> list[str]:
    """The part after the YTID of every shared data row (``, 30.000, 40.000, "..."``)."""
    rows: list[str] = []
    for name in SHARED_FILES:
        with open(SHARED / name, encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("#") or not line.strip():
                    continue
                rows.append(line.rstrip("\n")[11:])
    return rows


def generate(path: Path, n_rows: int, *, seed: int = 0) -> Path:
    """Write an official-layout segment list of ``n_rows`` rows (deterministic)."""
    if path.exists():
        with open(path, "rb") as fh:
            head = fh.read(300).decode("ascii", "replace")
        if f"num_segs={n_rows}," in head:
            return path
    tails = _template_rows()
    rng = np.random.default_rng([seed, 0])
    codes = rng.integers(0, 64, size=(n_rows, 11), dtype=np.int64)
    ids = ALPHABET[codes].view("S11").reshape(-1)
    labels_total = 0
    unique: set[str] = set()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="ascii", newline="\n") as fh:
        body: list[str] = []
        for i in range(n_rows):
            tail = tails[i % len(tails)]
            body.append(ids[i].decode("ascii") + tail)
        for tail in tails[: min(n_rows, len(tails))]:
            labs = tail.rsplit('"', 2)[1].split(",")
            unique.update(labs)
        full, rest = divmod(n_rows, len(tails))
        per_tail = [tail.rsplit('"', 2)[1].count(",") + 1 for tail in tails]
        labels_total = full * sum(per_tail) + sum(per_tail[:rest])
        fh.write("# Segments csv created Sun Mar  5 10:54:31 2017\n")
        fh.write(f"# num_ytids={n_rows}, num_segs={n_rows}, num_unique_labels={len(unique)}, num_positive_labels={labels_total}\n")
        fh.write("# YTID, start_seconds, end_seconds, positive_labels\n")
        fh.write("\n".join(body))
        fh.write("\n")
    os.replace(tmp, path)
    return path


def prefix_file(src: Path, dest: Path, n_rows: int) -> Path:
    """The first ``n_rows`` data rows of ``src`` with the same 3 comment lines (for the seed run)."""
    with open(src, encoding="ascii") as fin, open(dest, "w", encoding="ascii") as fout:
        for _ in range(3):
            fout.write(fin.readline())
        for _ in range(n_rows):
            line = fin.readline()
            if not line:
                break
            fout.write(line)
    return dest


# ---------------------------------------------------------------------------------------
# the two approaches, each run in a fresh child process (own timing and peak RSS)

OURS = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from audioset_fewshot.metadata import load_ontology, load_quality, read_segments, build_candidate_index
from audioset_fewshot.selection import select_classes
t_import = time.perf_counter() - t0
t0, c0 = time.perf_counter(), time.process_time()
table = read_segments({"unbalanced": sys.argv[1]})
t_parse = time.perf_counter() - t0
sel = select_classes(load_ontology(), load_quality(), min_quality=0.8)
t1 = time.perf_counter()
index = build_candidate_index(table, sel.mids)
t_index = time.perf_counter() - t1
cpu = time.process_time() - c0
counts = {m: index.count(m) for m in sel.mids}
print(json.dumps({"parse_s": t_parse, "index_s": t_index, "cpu_s": cpu, "import_s": t_import, "rows": len(table),
                  "classes": len(sel.mids), "counts": counts,
                  "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""

SEED = r"""
import json, resource, sys, time
import pandas as pd
from audioset_fewshot.metadata import load_ontology, load_quality
from audioset_fewshot.selection import select_classes
mids = select_classes(load_ontology(), load_quality(), min_quality=0.8).mids
max_labels = int(sys.argv[2])
t0, c0 = time.perf_counter(), time.process_time()
# compile step: header=[1] -> the counts line names the columns (replaced by ours); the
# quoted label list follows ", " so pandas does not see a quote at the field start and
# splits the list at its commas into label columns.
names = ["YTID", "start_seconds", "end_seconds"] + [f"label_{i}" for i in range(max_labels)]
# pandas refuses names= with a list header ("cannot specify names when specifying a
# multi-index header"); without names, and with header=1 + names, the C parser stops at
# the first multi-label row ("Expected 4 fields in line 4, saw 5"). So the header row
# (row 1) is skipped and the columns spelled out: the rows and columns header=[1] gives
# on a file whose widest row comes first.
df = pd.read_csv(sys.argv[1], skiprows=2, header=None, names=names)
label_cols = names[3:]
df[label_cols] = df[label_cols].apply(lambda row: row.str.strip(' "'), axis=1)
t_compile = time.perf_counter() - t0
t0 = time.perf_counter()
counts = {}
for mid in mids:
    hits = df[df.eq(mid).any(axis=1)]
    counts[mid] = int(len(hits))
t_download = time.perf_counter() - t0
cpu = time.process_time() - c0
print(json.dumps({"compile_s": t_compile, "download_s": t_download, "cpu_s": cpu, "rows": int(len(df)), "counts": counts,
                  "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def _child(code: str, *args: str, timeout_s: float) -> dict:
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout_s, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _max_labels(path: Path) -> int:
    best = 0
    with open(path, encoding="ascii") as fh:
        for line in fh:
            if not line.startswith("#"):
                best = max(best, line.count(",") - 2)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = bench_parser(__doc__)
    ap.add_argument("--rows", type=int, default=None, help="rows of the generated list (default: official size)")
    ap.add_argument("--seed-fraction", type=float, default=None, help="fraction of the rows the seed approach runs on (default 1/8 full, 1 quick)")
    ap.add_argument("--work-dir", type=Path, default=None, help="where the generated list goes (default bench/_work)")
    args = ap.parse_args(argv)
    rep = Report("metadata", quick=args.quick)
    n_rows = args.rows or (QUICK_ROWS if args.quick else OFFICIAL_ROWS)
    fraction = args.seed_fraction if args.seed_fraction is not None else (1.0 if args.quick else 0.125)
    work = args.work_dir or WORK
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    path = generate(work / f"unbalanced_train_segments_{n_rows}.csv", n_rows)
    print(f"generated list: {path} ({n_rows:,} rows, {path.stat().st_size / 2**20:.1f} MiB) in {time.perf_counter() - t0:.1f} s")

    ours = _child(OURS, str(path), timeout_s=600)
    ours_s = ours["parse_s"] + ours["index_s"]
    rss_mib = ours["peak_rss_kib"] / 1024
    print(
        f"ours:  parse {ours['parse_s']:.2f} s + index of {ours['classes']} classes {ours['index_s']:.2f} s = {ours_s:.2f} s; "
        f"peak RSS {rss_mib:.0f} MiB (child process, includes the interpreter)"
    )

    seed_rows = max(1, int(round(n_rows * fraction)))
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        seed_path = path if seed_rows >= n_rows else prefix_file(path, Path(tmp) / "prefix.csv", seed_rows)
        seed = _child(SEED, str(seed_path), str(_max_labels(seed_path)), timeout_s=3600)
    seed_measured = seed["compile_s"] + seed["download_s"]
    scale = n_rows / seed_rows
    seed_s = seed_measured * scale
    note = "" if seed_rows >= n_rows else f" (measured on the first {seed_rows:,} rows = {fraction:g} of the file, scaled linearly x{scale:.2f})"
    print(
        f"seed:  compile {seed['compile_s']:.2f} s + download-step filtering {seed['download_s']:.2f} s = {seed_measured:.2f} s measured; "
        f"{seed_s:.1f} s for {n_rows:,} rows{note}; seed peak RSS {seed['peak_rss_kib'] / 1024:.0f} MiB"
    )

    # the two must agree on the rows they measured (the seed's extra '# YTID' row carries no MID)
    if seed_rows >= n_rows:
        diff = [m for m in ours["counts"] if ours["counts"][m] != seed["counts"][m]]
        print(f"check: per-class counts agree for {len(ours['counts']) - len(diff)}/{len(ours['counts'])} classes")

    ratio = seed_s / ours_s if ours_s > 0 else float("inf")
    print()
    print(f"{'measure':<28}{'ours':>12}{'seed':>14}{'ratio':>10}{'goal':>12}  met")
    cpu_ratio = seed["cpu_s"] * scale / ours["cpu_s"] if ours["cpu_s"] > 0 else float("inf")
    print(f"{'index 142 classes, wall (s)':<28}{ours_s:>12.2f}{seed_s:>14.1f}{ratio:>9.0f}x{'>= 50x':>12}  {'yes' if ratio >= GOAL_RATIO else 'NO'}")
    print(
        f"{'same, CPU time (s)':<28}{ours['cpu_s']:>12.2f}{seed['cpu_s'] * scale:>14.1f}{cpu_ratio:>9.0f}x{'>= 50x':>12}  {'yes' if cpu_ratio >= GOAL_RATIO else 'NO'}"
    )
    print(f"{'peak RSS (MiB)':<28}{rss_mib:>12.0f}{seed['peak_rss_kib'] / 1024:>14.0f}{'':>10}{'<= 1024':>12}  {'yes' if rss_mib <= GOAL_RSS_MIB else 'NO'}")
    if scale > 1:
        print(f"(seed times scaled x{scale:.2f} from its run on the first {seed_rows:,} rows; its RSS is that run's, unscaled)")
    rep.params.update(rows=n_rows, seed_rows=seed_rows, classes=ours["classes"])
    scaled = f" (1/{scale:.0f} run, scaled)" if scale > 1 else ""
    rep.add(
        "index_vs_pandas",
        f"candidate index of {ours['classes']} classes over {n_rows:,} rows",
        kind="today",
        ours=f"{ours_s:.2f} s",
        against=f"pandas {seed_s:,.0f} s{scaled}",
        ratio=ratio,
        goal=GOAL_RATIO,
        values={"ours": ours_s, "against": seed_s},
    )
    rep.add(
        "index_cpu_vs_pandas",
        "  same, CPU time",
        kind="today",
        ours=f"{ours['cpu_s']:.2f} s",
        against=f"{seed['cpu_s'] * scale:,.0f} s",
        ratio=cpu_ratio,
        values={"ours": ours["cpu_s"], "against": seed["cpu_s"] * scale},
    )
    rep.ceiling("index_peak_rss", "  peak RSS of the index", rss_mib, GOAL_RSS_MIB, fmt="{:,.0f} MiB")
    rep.figures.update(ours=ours | {"counts": len(ours["counts"])}, seed={k: v for k, v in seed.items() if k != "counts"}, scale=scale)
    rep.finish(args.json)
    return 0 if (ratio >= GOAL_RATIO and rss_mib <= GOAL_RSS_MIB) or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
