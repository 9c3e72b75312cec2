"""Download on Dask: 1, 2 and 4 sessions, each on its own worker, against per-session limits.

    .venv/bin/python bench/bench_download_dask.py            # 12 clips per session
    .venv/bin/python bench/bench_download_dask.py --quick    # a smoke run (4 clips per session)

The media server of ``bench_download`` (its own process, 300 ms per request, 8 MB/s per
connection) limits each session, told apart by its SID cookie, to ``SESSION_RATE``
extractions per second and answers more like YouTube's rate limit.  For k = 1, 2, 4 a
LocalCluster of k worker processes is started (not timed; each worker imports the fetcher
before the clock starts), k sessions each governed at that budget are pinned one per
worker (``download_on`` with a Dask engine), and k x ``--clips`` clips are fetched, so
that every run lasts about as long.

Printed: clips/s of each run and its ratio to linear (k x the one-session rate; goal
>= 0.9 for 2 and 4 sessions), and that the server refused nothing.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import Report, bench_parser
from bench_download import SESSION_RATE, WORK, Server, _row, _session_run, measure

SESSION_COUNTS = (1, 2, 4)


def _warm() -> bool:
    """Import what a clip fetch needs, in a worker, before anything is timed."""
    import yt_dlp  # noqa: F401

    import audioset_fewshot.download.distributed  # noqa: F401
    import audioset_fewshot.download.fetch  # noqa: F401

    return True


def main(argv: list[str] | None = None) -> int:
    ap = bench_parser(__doc__)
    ap.add_argument("--clips", type=int, default=None, help="clips per session (each run fetches sessions x clips)")
    ap.add_argument("--work-dir", type=Path, default=None, help="cache of generated sources (default bench/_work)")
    args = ap.parse_args(argv)
    rep = Report("download_dask", quick=args.quick)

    from distributed import Client, LocalCluster

    from audioset_fewshot.engine import DaskEngine

    per_session = args.clips or (4 if args.quick else 12)
    duration_s = 30.0
    ids = [f"dask{int(duration_s):03d}{k:04d}" for k in range(3)]  # 20 segment starts each: room for 60 clips
    names = tuple(f"s{k}" for k in range(max(SESSION_COUNTS)))
    work = args.work_dir or WORK
    (work / "media").mkdir(parents=True, exist_ok=True)
    # the sessions' requests leave k worker processes on a shared machine: a late one can meet the
    # next one on time at the server, so its 4 s window lets two requests more than the budget through
    server = Server(work / "media", ids, duration_s, sessions=names, spare=2)
    print(f"media server at {server.base_url}; each session limited to {SESSION_RATE:g} extraction/s; {per_session} clips per session", flush=True)
    results: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(dir=work) as tmp_s:
            tmp = Path(tmp_s)
            for k in SESSION_COUNTS:
                with (
                    LocalCluster(n_workers=k, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None, silence_logs=logging.ERROR) as lc,
                    Client(lc, set_as_default=False) as client,
                ):  # fmt: skip
                    client.wait_for_workers(k, timeout=120)
                    client.run(_warm)
                    engine = DaskEngine(client=client, description=f"LocalCluster of {k} workers")
                    run = _session_run(server, tmp, ids, per_session * k, duration_s, names[:k], engine=engine)
                    results.append(measure(f"dask, {k} session(s) on {k} worker(s)", server, run))
                    print(_row(results[-1]), flush=True)
            refused = server.refused()
    finally:
        server.stop()

    one = results[0]["clips_per_s"]
    print()
    if args.quick:
        print("(quick: few clips per session, a smoke run; the goal is for the full run)")
    for k, r in zip(SESSION_COUNTS, results):
        ratio = r["clips_per_s"] / (k * one) if one else 0.0
        met = "" if k == 1 else f"   (goal >= 0.9)  {'MET' if ratio >= 0.9 else 'NOT MET'}"
        print(f"{k} session(s) on {k} worker(s): {r['clips_per_s']:6.3f} clips/s = {ratio:5.2f} x linear{met}")
        if k > 1:
            what = f"download on Dask, {k} sessions on {k} workers vs {k} x one session ({SESSION_RATE:g} extraction/s each, limits emulated by the server)"
            rep.add(f"sessions{k}_vs_linear", what, kind="bound", ours=f"{r['clips_per_s']:.2f} clips/s", against=f"{k * one:.2f} clips/s",
                    ratio=ratio, goal=0.9, values={"ours": r["clips_per_s"], "against": k * one})  # fmt: skip
    print(f"requests the server refused: {sum(refused.values())}")
    rep.params.update(clips_per_session=per_session, session_rate_per_s=SESSION_RATE, sessions=list(SESSION_COUNTS))
    rep.figures.update(results=results, refused=refused)
    if args.quick:
        rep.note("quick: few clips per session, a smoke run; the goal is for the full run")
    return rep.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())
