"""Download benchmark: our runner against the seed project's strategy, side by side.

    .venv/bin/python bench/bench_download.py            # 5-minute sources
    .venv/bin/python bench/bench_download.py --quick    # a smoke run (30 s sources, few clips)

The media server (run in its own process, so that its CPU is not counted) adds
300 ms to every request and caps every connection at 8 MB/s; the sources are
generated before any timing (and cached in ``bench/_work/media``).

The seed project's strategy, re-implemented faithfully: one clip after the
other; yt-dlp extracts the video and downloads the whole audio file; a second
yt-dlp extraction reads the duration; ffmpeg converts the whole file at its
source rate to WAV; numpy slices the segment, which is written out.  (Both sides
use the format ``bestaudio[ext=m4a]/bestaudio``; the m4a file is the smaller of
the two the server offers, so this favours the seed strategy slightly.)

Ours: ``run_download`` at ``--jobs 1`` and at ``--jobs 16``, the governor off
(``max_per_hour=None, min_interval_s=0``), as when many addresses share the work.

Sessions: the server limits the sessions ``sid:one`` and ``sid:two`` (told apart by
their SID cookie) to ``SESSION_RATE`` extractions per second each, answering more
like YouTube's rate limit; our runner fetches the same number of clips with one
session, then with two (``download.sessions``), each governed at that budget.

Printed: clips/s of each and the ratios (goals: jobs 1 >= 2x, jobs 16 >= 20x the
seed strategy; two sessions >= 1.8x one session at the same per-session budget),
bytes on the wire per clip (goal: ours <= 15 % of theirs), extractions per
obtained clip (goal <= 1.0, no faults) and CPU seconds per clip (this process and
its children: yt-dlp runs in-process, ffmpeg as children).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import Report, bench_parser

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / "_work"
LATENCY_S = 0.3
BANDWIDTH_BPS = 8e6
FORMAT = "bestaudio[ext=m4a]/bestaudio"
SESSION_RATE = 1.0  # extractions per second each session may make (the server's budget, the governor's rate)
SESSIONS = ("one", "two")


# ---------------------------------------------------------------------------------------
# the media server in its own process


def _server_main(conn: Any, cache_dir: str, ids: list[str], duration_s: float, sessions: tuple[str, ...] = SESSIONS, spare: int = 1) -> None:
    from audioset_fewshot.demo.budget import Budget, SessionBudgets
    from audioset_fewshot.demo.server import MediaServer, SourceSpec

    catalog = {y: SourceSpec(class_key=f"demo-class-{i % 4}", duration_s=duration_s) for i, y in enumerate(ids)}
    # each benchmark session may extract SESSION_RATE per second (over a 4 s window, with ``spare`` requests to spare for timing jitter)
    window_s = 4.0
    budgets = SessionBudgets({f"sid:{name}": Budget(int(SESSION_RATE * window_s) + spare, window_s) for name in sessions})
    # generate the sources first (not timed), then serve with latency and a bandwidth cap
    with MediaServer(cache_dir=cache_dir, catalog=catalog, idle_timeout_s=900) as prep:
        prep.prepare(ids, formats=(140,), workers=os.cpu_count() or 2)
    with MediaServer(cache_dir=cache_dir, catalog=catalog, latency_s=LATENCY_S, bandwidth_bps=BANDWIDTH_BPS, idle_timeout_s=900, max_requests=1_000_000,
                     session_budgets=budgets) as srv:  # fmt: skip
        conn.send(srv.base_url)
        while conn.poll(900):
            cmd = conn.recv()
            if cmd == "log":
                conn.send([(r.kind, r.ytid, r.status, r.body_bytes) for r in srv.requests])
            elif cmd == "refused":
                conn.send(dict(budgets.refused))
            elif cmd == "reset":
                srv.reset_log()
                conn.send(True)
            else:
                break


class Server:
    """The media server in its own process; ``sessions``: the SID cookies it limits to SESSION_RATE
    (``spare``: requests over the budget it lets through in a 4 s window, for timing jitter)."""

    def __init__(self, cache_dir: Path, ids: list[str], duration_s: float, sessions: tuple[str, ...] = SESSIONS, spare: int = 1) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_server_main, args=(child, str(cache_dir), ids, duration_s, sessions, spare), daemon=True)
        self.proc.start()
        if not self.conn.poll(1800):
            raise RuntimeError("the media server did not start within 30 minutes")
        self.base_url: str = self.conn.recv()

    def log(self) -> list[tuple[str, str | None, int, int]]:
        self.conn.send("log")
        return self.conn.recv()

    def refused(self) -> dict[str, int]:
        """Watch requests the server refused per session (over its budget)."""
        self.conn.send("refused")
        return self.conn.recv()

    def reset(self) -> None:
        self.conn.send("reset")
        self.conn.recv()

    def stop(self) -> None:
        try:
            self.conn.send("stop")
        except (BrokenPipeError, OSError):
            pass
        self.proc.join(timeout=10)
        if self.proc.is_alive():
            self.proc.kill()


# ---------------------------------------------------------------------------------------
# the seed project's strategy


def _ydl(opts: dict[str, Any]) -> Any:
    import yt_dlp

    from audioset_fewshot.download.ytdlp_demo import demo_extractor

    ydl = yt_dlp.YoutubeDL({"quiet": True, "no_warnings": True, "noprogress": True, "proxy": "", "cachedir": False, **opts})
    ydl.add_info_extractor(demo_extractor()())
    return ydl


def seed_clip(url: str, start_s: float, end_s: float, out: Path, work: Path) -> bool:
    """One clip the seed project's way (whole file, second extraction, whole conversion, slice)."""
    import numpy as np
    import soundfile as sf
    from imageio_ffmpeg import get_ffmpeg_exe

    from audioset_fewshot.download.ytdlp_demo import demo_extractor

    ie_key = demo_extractor().ie_key()
    with _ydl({"format": FORMAT, "outtmpl": str(work / "%(id)s.%(ext)s")}) as ydl:
        info = ydl.extract_info(url, download=True, ie_key=ie_key)  # extraction 1 + the whole audio file
        src = Path(ydl.prepare_filename(info))
    with _ydl({"format": FORMAT, "skip_download": True}) as ydl:
        duration = ydl.extract_info(url, download=False, ie_key=ie_key)["duration"]  # extraction 2: the duration
    if end_s > duration:
        return False
    wav = work / (src.stem + ".wav")
    rate = int(info.get("asr") or 44100)
    subprocess.run([get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(src), "-ar", str(rate), str(wav)], check=True, timeout=600)
    data, sr = sf.read(wav, dtype="float32")
    segment = data[int(start_s * sr) : int(end_s * sr)]  # the numpy slice
    out.parent.mkdir(parents=True, exist_ok=True)
    sf.write(out, np.asarray(segment), sr)
    src.unlink()
    wav.unlink()
    return True


# ---------------------------------------------------------------------------------------
# measuring


def cpu_s() -> float:
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def measure(name: str, server: Server, fn: Any) -> dict[str, Any]:
    server.reset()
    c0, t0 = cpu_s(), time.perf_counter()
    obtained = fn()
    wall, cpu = time.perf_counter() - t0, cpu_s() - c0
    log = server.log()
    wire = sum(b for _, _, _, b in log)
    extractions = sum(1 for k, *_ in log if k == "watch")
    n = max(obtained, 1)
    return {
        "name": name, "clips": obtained, "wall_s": wall, "clips_per_s": obtained / wall if wall else 0.0,
        "wire_bytes_per_clip": wire / n, "extractions_per_clip": extractions / n, "cpu_s_per_clip": cpu / n, "requests": len(log),
    }  # fmt: skip


def make_plan(ids: list[str], n: int, duration_s: float, *, step_s: float = 10.0) -> Any:
    """``n`` 10 s segments of ``ids``, starting every ``step_s`` seconds (1 s: overlapping
    segments, so that a short source yields many clips)."""
    from audioset_fewshot.plan import PlanEntry, SamplingPlan

    mid = "/m/0bench"
    starts = [float(step_s * k) for k in range(int((duration_s - 10.0) // step_s))]
    pairs = [(y, s) for s in starts for y in ids][:n]
    entries = [PlanEntry(f"{y}_{int(s * 1000)}", y, s, s + 10.0, mid, (mid,), "balanced", k) for k, (y, s) in enumerate(pairs)]
    return SamplingPlan.build(entries, {mid: len(entries)}, params={"seed": 0})


def main(argv: list[str] | None = None) -> int:
    ap = bench_parser(__doc__)
    ap.add_argument("--seed-clips", type=int, default=None, help="clips for the seed strategy")
    ap.add_argument("--clips", type=int, default=None, help="clips for our runner at --jobs 16")
    ap.add_argument("--session-clips", type=int, default=None, help="clips of each sessions run (one session, then two)")
    ap.add_argument("--work-dir", type=Path, default=None, help="cache of generated sources (default bench/_work)")
    args = ap.parse_args(argv)
    rep = Report("download", quick=args.quick)

    from audioset_fewshot.config import DownloadOptions
    from audioset_fewshot.download.runner import run_download

    duration_s = 30.0 if args.quick else 300.0
    n_seed = args.seed_clips or (2 if args.quick else 6)
    n_j1 = max(n_seed, 3 if args.quick else 12)
    n_j16 = args.clips or (8 if args.quick else 112)
    n_ids = 2 if args.quick else 4
    n_sess = args.session_clips or (16 if args.quick else 24)
    ids = [f"bench{int(duration_s):03d}{k:03d}" for k in range(n_ids)]
    work = args.work_dir or WORK
    cache = work / "media"
    cache.mkdir(parents=True, exist_ok=True)
    print(
        f"sources: {n_ids} x {duration_s:.0f} s (m4a), latency {LATENCY_S * 1000:.0f} ms/request, {BANDWIDTH_BPS / 1e6:.0f} MB/s per connection; cores: {os.cpu_count()}",
        flush=True,
    )
    t0 = time.perf_counter()
    server = Server(cache, ids, duration_s)
    print(f"media server ready at {server.base_url} after {time.perf_counter() - t0:.1f} s (generation not timed)", flush=True)
    results = []
    try:
        with tempfile.TemporaryDirectory(dir=work) as tmp_s:
            tmp = Path(tmp_s)
            seed_plan = make_plan(ids, n_seed, duration_s)

            def run_seed() -> int:
                got = 0
                for e in seed_plan.entries:
                    url = f"{server.base_url}/watch?v={e.ytid}"
                    got += seed_clip(url, e.start_s, e.end_s, tmp / "seed" / f"{e.clip_id}.wav", tmp)
                return got

            results.append(measure("seed strategy (sequential)", server, run_seed))
            print(_row(results[-1]), flush=True)
            for jobs, n in ((1, n_j1), (16, n_j16)):
                plan = make_plan(ids, n, duration_s)
                root = tmp / f"ours-j{jobs}"

                def run_ours(plan: Any = plan, root: Path = root, jobs: int = jobs) -> int:
                    rep = run_download(
                        plan,
                        root,
                        DownloadOptions(
                            jobs=jobs, max_per_hour=None, min_interval_s=0.0, min_free="0B", base_url=server.base_url, format=FORMAT, timeout_s=300.0
                        ),
                    )
                    return rep.obtained

                results.append(measure(f"ours --jobs {jobs}", server, run_ours))
                print(_row(results[-1]), flush=True)
            for names in (SESSIONS[:1], SESSIONS):
                results.append(measure(f"ours, {len(names)} session(s)", server, _session_run(server, tmp, ids, n_sess, duration_s, names)))
                print(_row(results[-1]), flush=True)
            refused = server.refused()
    finally:
        server.stop()

    seed, j1, j16, s1, s2 = results
    rs = s2["clips_per_s"] / s1["clips_per_s"]
    r1 = j1["clips_per_s"] / seed["clips_per_s"]
    r16 = j16["clips_per_s"] / seed["clips_per_s"]
    wire = j1["wire_bytes_per_clip"] / seed["wire_bytes_per_clip"]
    print()
    if args.quick:
        print("(quick: 30 s sources and few clips, a smoke run; the goals are for the full run with 5-minute sources)")
    print(f"speed  --jobs 1  vs seed: {r1:6.2f}x   (goal >= 2x)   {'MET' if r1 >= 2 else 'NOT MET'}")
    print(f"speed  --jobs 16 vs seed: {r16:6.2f}x   (goal >= 20x)  {'MET' if r16 >= 20 else 'NOT MET'}")
    print(
        f"bytes on the wire per clip: ours {j1['wire_bytes_per_clip'] / 1e3:.0f} KB vs seed {seed['wire_bytes_per_clip'] / 1e3:.0f} KB = {100 * wire:.1f} %   (goal <= 15 %)  {'MET' if wire <= 0.15 else 'NOT MET'}"
    )
    ext = max(j1["extractions_per_clip"], j16["extractions_per_clip"])
    print(f"extractions per obtained clip: ours {ext:.2f} vs seed {seed['extractions_per_clip']:.2f}   (goal <= 1.0)  {'MET' if ext <= 1.0 else 'NOT MET'}")
    print(f"CPU s per clip: seed {seed['cpu_s_per_clip']:.2f}, ours --jobs 1 {j1['cpu_s_per_clip']:.2f}, --jobs 16 {j16['cpu_s_per_clip']:.2f}")
    print(
        f"two sessions vs one at {SESSION_RATE:g} extraction/s per session: {rs:6.2f}x   (goal >= 1.8x)  {'MET' if rs >= 1.8 else 'NOT MET'}"
        f"   (requests the server refused: {sum(refused.values())})"
    )
    rep.params.update(
        sources=n_ids,
        source_s=duration_s,
        seed_clips=n_seed,
        jobs1_clips=n_j1,
        jobs16_clips=n_j16,
        session_clips=n_sess,
        session_rate_per_s=SESSION_RATE,
        latency_ms=LATENCY_S * 1000,
        bandwidth_mb_s=BANDWIDTH_BPS / 1e6,
    )
    seed_text = f"{seed['clips_per_s']:.2f} clips/s"
    rep.add(
        "jobs1_vs_seed",
        f"download, --jobs 1 ({LATENCY_S * 1000:.0f} ms latency, {BANDWIDTH_BPS / 1e6:.0f} MB/s, {duration_s / 60:g}-min sources)",
        kind="today",
        ours=f"{j1['clips_per_s']:.2f} clips/s",
        against=seed_text,
        ratio=r1,
        goal=2.0,
        values={"ours": j1["clips_per_s"], "against": seed["clips_per_s"]},
    )
    rep.add(
        "jobs16_vs_seed",
        "download, --jobs 16, governor off",
        kind="today",
        ours=f"{j16['clips_per_s']:.2f} clips/s",
        against=seed_text,
        ratio=r16,
        goal=20.0,
        values={"ours": j16["clips_per_s"], "against": seed["clips_per_s"]},
    )
    rep.add(
        "wire_bytes",
        "bytes on the wire per clip",
        kind="limit",
        ours=f"{j1['wire_bytes_per_clip'] / 1e3:,.0f} KB",
        against=f"seed {seed['wire_bytes_per_clip'] / 1e3:,.0f} KB",
        ratio=wire,
        goal=0.15,
        values={"ours": j1["wire_bytes_per_clip"], "against": seed["wire_bytes_per_clip"]},
    )
    rep.add(
        "extractions",
        "extractions per obtained clip",
        kind="limit",
        ours=f"{ext:.2f}",
        against="1 per clip",
        ratio=ext,
        goal=1.0,
        values={"ours": ext, "against": seed["extractions_per_clip"]},
    )
    rep.add(
        "two_sessions",
        f"download, two sessions vs one ({SESSION_RATE:g} extraction/s each, limits emulated by the server)",
        kind="today",
        ours=f"{s2['clips_per_s']:.2f} clips/s",
        against=f"{s1['clips_per_s']:.2f} clips/s",
        ratio=rs,
        goal=1.8,
        values={"ours": s2["clips_per_s"], "against": s1["clips_per_s"]},
    )
    rep.figures.update(results=results, refused=refused)
    if args.quick:
        rep.note("quick: 30 s sources and few clips, a smoke run; the goals are for the full run with 5-minute sources")
    return rep.finish(args.json)


def _session_run(server: Server, tmp: Path, ids: list[str], n: int, duration_s: float, names: tuple[str, ...], engine: Any = None) -> Any:
    """A run of ``n`` clips with the sessions ``names`` (cookies SID=<name>), each at SESSION_RATE,
    on ``engine`` (default: this process's threads; a Dask engine: each session on a worker)."""
    from audioset_fewshot.config import DownloadOptions, SessionConfig
    from audioset_fewshot.download.distributed import download_on
    from audioset_fewshot.engine import LOCAL

    plan = make_plan(ids, n, duration_s, step_s=1.0)
    root = tmp / f"sessions-{len(names)}{'' if engine is None else '-' + engine.name}"
    sessions = []
    for name in names:
        cookies = tmp / f"cookies-{name}.txt"
        cookies.write_text(f"# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t{int(time.time()) + 86400}\tSID\t{name}\n")
        sessions.append(SessionConfig(name=name, cookies=str(cookies), max_per_hour=SESSION_RATE * 3600))

    def run() -> int:
        o = DownloadOptions(
            jobs=8, sessions=sessions, min_interval_s=0.0, min_free="0B", base_url=server.base_url, format=FORMAT, timeout_s=300.0, pause_s=600.0
        )
        return download_on(engine or LOCAL, plan, root, o).obtained

    return run


def _row(r: dict[str, Any]) -> str:
    return (
        f"{r['name']:<28} {r['clips']:4d} clips in {r['wall_s']:7.1f} s = {r['clips_per_s']:6.3f} clips/s;"
        f" {r['wire_bytes_per_clip'] / 1e3:8.0f} KB/clip on the wire; {r['extractions_per_clip']:.2f} extractions/clip; {r['cpu_s_per_clip']:.2f} CPU s/clip"
    )


if __name__ == "__main__":
    sys.exit(main())
