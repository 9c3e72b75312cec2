"""Benchmark: pack + features on a Dask LocalCluster of 2 workers against the local pool.

    .venv/bin/python bench/bench_engine.py            # 2,000 clips of 4 s
    .venv/bin/python bench/bench_engine.py --quick    # 200 clips of 2 s (smoke run)

1. Writes, once, bench_process's corpus of synthetic clips at another length
   (cached under ``bench/_work/process/root-<n>x<s>s/``): 16 kHz mono 16-bit
   FLAC, harmonic tones and noise, seeded, over 20 classes, with its
   ``manifest/clips.csv``; ``clean`` runs once on it.  The clips are shorter than AudioSet's 10 s (4 s; 2 s with
   ``--quick``) to keep the run short on a 2-core machine: with less work per
   chunk the engine's per-task cost weighs MORE, so the overhead measured here
   is an upper bound of the overhead on 10 s clips.
2. Local: ``pack(workers=2)`` (two forked decoder processes) then ``features``
   (one torch thread per core), ``force=True``, timed together.
3. Dask: the same two stages with ``engine=`` a LocalCluster of 2 single-threaded
   worker processes (started once, its start time reported apart: a cluster is
   started once per run, not per stage).  Workers write their pack rows into the
   shared array and return their log-mel chunks to the driver.
4. The two results must be byte-identical (the pack's and the features'
   ``meta.json``, which hold the sha256 of every chunk).

Rounds alternate local / Dask; the best of each is kept (other processes only
add time).  Goal (issue 16): Dask overhead <= 15 %, i.e. local time / Dask time
>= 87 %.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import Report, bench_parser

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
GOAL_OVERHEAD = 0.15


def make_root(clips: int, seconds: float) -> Path:
    """bench_process's corpus of ``clips`` clips of ``seconds``, cleaned once (both cached)."""
    from bench_process import make_corpus

    from audioset_fewshot.layout import DatasetLayout
    from audioset_fewshot.process import clean

    root = make_corpus(clips, seconds)
    if not DatasetLayout(root).clean_csv.is_file():
        clean(root)
    return root


def main() -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=None, help="rounds of each (default 2; 1 with --quick)")
    args = parser.parse_args()
    clips, seconds = (200, 2.0) if args.quick else (2000, 4.0)
    rounds = args.rounds or (1 if args.quick else 2)

    from audioset_fewshot.config import ClusterOptions, FeaturesOptions, PackOptions
    from audioset_fewshot.engine import Engine, open_engine
    from audioset_fewshot.process import features, pack

    root = make_root(clips, seconds)
    pack_opts = PackOptions(workers=2, length_s=seconds)
    feat_opts = FeaturesOptions()

    def once(engine: Engine | None) -> tuple[float, float, bytes]:
        t0 = time.perf_counter()
        pk = pack(root, pack_opts, force=True, engine=engine)
        t1 = time.perf_counter()
        fr = features(root, feat_opts, force=True, engine=engine)
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1, (pk.path / "meta.json").read_bytes() + (fr.path / "meta.json").read_bytes()

    rep = Report("engine", quick=args.quick, params={"clips": clips, "clip_seconds": seconds, "rounds": rounds, "dask_workers": 2, "pack_workers": 2})
    t0 = time.perf_counter()
    local_runs: list[tuple[float, float]] = []
    dask_runs: list[tuple[float, float]] = []
    metas: set[bytes] = set()
    with open_engine(ClusterOptions(engine="dask", workers=2)) as dask:
        start_s = time.perf_counter() - t0
        once(dask)  # warm-up: the workers import numpy, soundfile and torch once
        for _ in range(rounds):
            p, f, meta = once(None)
            local_runs.append((p, f))
            metas.add(meta)
            p, f, meta = once(dask)
            dask_runs.append((p, f))
            metas.add(meta)
    if len(metas) != 1:
        print("the Dask run and the local run wrote different bytes", file=sys.stderr)
        return 1
    local = min(p + f for p, f in local_runs)
    on_dask = min(p + f for p, f in dask_runs)
    overhead = on_dask / local - 1.0
    rep.add(
        "dask_vs_local_pool",
        f"pack + features, {clips} clips of {seconds:g} s, Dask vs local",
        kind="bound",
        ours=f"{on_dask:.2f} s on Dask",
        against=f"{local:.2f} s local pool",
        ratio=local / on_dask,
        goal=1.0 / (1.0 + GOAL_OVERHEAD),
        values={"dask_s": on_dask, "local_s": local, "overhead": overhead},
    )
    lp, lf = min(local_runs, key=sum)
    dp, df = min(dask_runs, key=sum)
    rep.add("pack", "  pack alone", kind="info", ours=f"{dp:.2f} s on Dask", against=f"{lp:.2f} s local", ratio=lp / dp)
    rep.add("features", "  features alone", kind="info", ours=f"{df:.2f} s on Dask", against=f"{lf:.2f} s local", ratio=lf / df)
    rep.add("cluster_start", "  LocalCluster start (once per run)", kind="info", ours=f"{start_s:.2f} s", against="")
    rep.figures.update(
        {"overhead": overhead, "local_runs_s": local_runs, "dask_runs_s": dask_runs, "cluster_start_s": start_s, "clips_per_s_dask": clips / on_dask}
    )
    rep.note(
        f"Dask overhead {overhead:+.1%} (goal <= {GOAL_OVERHEAD:.0%}); byte-identical pack and features meta.json in every run; "
        f"best of {rounds} alternating rounds after one Dask warm-up; clips {seconds:g} s (shorter than AudioSet's 10 s: the per-task cost weighs more)"
    )
    return rep.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())
