"""Episode sampling: index-only seeded sampling vs dataframe filtering per episode.

    python bench/bench_episodes.py            # full: 20,000 / 1,000 episodes
    python bench/bench_episodes.py --quick    # a smoke run (< 60 s)

Index: every candidate segment of the 142 quality leaf classes in the shared
AudioSet metadata (balanced + eval + the unbalanced part), one item per
(class, clip) pair, so a multi-label clip is an item of each of its classes,
as in a pool built with ``leakage="none"``; the episode guard is on.

Ours: :class:`audioset_fewshot.episodes.EpisodeSampler`, 5-way 5-shot 15-query,
episode ``i`` from ``default_rng([seed, epoch, i])``, per-class index arrays
built once.  Today's approach, re-implemented faithfully from MetaAudio's
samplers: a pandas DataFrame of (clip, label) rows; per episode, draw N classes
with the global RNG, then for each class filter ``df[df["label"] == c]`` and
``.sample(k + q)`` (no guard, so it does less work than ours).

Goal (issue 8): >= 10,000 episodes/s for 5w5s15q over 142 classes, guard on.
The machine is shared: besides wall-clock rates we print CPU-time rates
(``time.process_time``), which other processes' load does not inflate.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = Path(os.environ.get("AUDIOSET_FEWSHOT_SHARED_METADATA", REPO / "tests" / "data" / "audioset-metadata"))
GOAL_EPISODES_PER_S = 10_000
N, K, Q = 5, 5, 15


def build_items() -> tuple[list[str], list[str], list[str]]:
    """(classes, item clip ids, item labels) over the shared metadata's candidates."""
    from audioset_fewshot.metadata import load_ontology, load_quality, read_segments, resolve_segment_files
    from audioset_fewshot.selection import select_classes
    from audioset_fewshot.splits import candidate_clips

    files = resolve_segment_files(("balanced", "eval", "unbalanced"), metadata_dir=SHARED)
    table = read_segments(files)
    mids = select_classes(load_ontology(), load_quality(), min_quality=0.8).mids
    wanted = set(mids)
    item_clip: list[str] = []
    item_label: list[str] = []
    for c in candidate_clips(table, mids):
        for m in c.labels:
            if m in wanted:
                item_clip.append(c.clip_id)
                item_label.append(m)
    return sorted(mids), item_clip, item_label


def bench_ours(classes: list[str], item_clip: list[str], item_label: list[str], episodes: int) -> dict[str, float]:
    from audioset_fewshot.episodes import EpisodeIndex, EpisodeSampler

    t0 = time.perf_counter()
    number = {m: i for i, m in enumerate(classes)}
    index = EpisodeIndex.from_labels([number[m] for m in item_label], item_keys=item_clip)
    sampler = EpisodeSampler(index, n_way=N, k_shot=K, q_query=Q, episodes=episodes, seed=0)
    build_s = time.perf_counter() - t0
    w0, c0 = time.perf_counter(), time.process_time()
    n = 0
    for idx in sampler:
        n += len(idx)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    assert n == episodes * N * (K + Q)
    return {"episodes": episodes, "build_s": build_s, "wall_s": wall, "cpu_s": cpu, "rate": episodes / wall, "cpu_rate": episodes / cpu}


def bench_dataframe(item_clip: list[str], item_label: list[str], episodes: int) -> dict[str, float]:
    import pandas as pd

    df = pd.DataFrame({"clip": item_clip, "label": item_label})
    labels = df["label"].unique()
    np.random.seed(0)  # MetaAudio seeds the global RNG once
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(episodes):
        chosen = np.random.choice(labels, N, replace=False)
        support, query = [], []
        for c in chosen:
            rows = df[df["label"] == c].sample(K + Q)
            support.append(rows["clip"].to_numpy()[:K])
            query.append(rows["clip"].to_numpy()[K:])
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return {"episodes": episodes, "wall_s": wall, "cpu_s": cpu, "rate": episodes / wall, "cpu_rate": episodes / cpu}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--work", type=Path, default=HERE / "_work", help="folder of results.jsonl (default bench/_work)")
    args = parser.parse_args(argv)
    ours_n, df_n = (3_000, 100) if args.quick else (20_000, 1_000)
    t0 = time.perf_counter()
    classes, item_clip, item_label = build_items()
    n_clips = len(set(item_clip))
    print(f"index: {len(classes)} classes, {n_clips} candidate clips, {len(item_clip)} (class, clip) items "
          f"({len(item_clip) - n_clips} extra items from multi-label clips), read in {time.perf_counter() - t0:.1f} s")
    ours = bench_ours(classes, item_clip, item_label, ours_n)
    theirs = bench_dataframe(item_clip, item_label, df_n)
    print(f"{N}-way {K}-shot {Q}-query episodes over {len(classes)} classes")
    print(f"{'approach':<44} {'episodes':>9} {'wall ep/s':>11} {'cpu ep/s':>11}")
    print(f"{'ours: index-only, seeded per episode, guard':<44} {ours['episodes']:>9} {ours['rate']:>11,.0f} {ours['cpu_rate']:>11,.0f}")
    print(f"{'MetaAudio-style: pandas filter per episode':<44} {theirs['episodes']:>9} {theirs['rate']:>11,.0f} {theirs['cpu_rate']:>11,.0f}")
    print(f"(our index arrays were built once in {ours['build_s'] * 1000:.0f} ms)")
    ratio_wall, ratio_cpu = ours["rate"] / theirs["rate"], ours["cpu_rate"] / theirs["cpu_rate"]
    print(f"ratio ours / dataframe: {ratio_wall:.0f}x wall, {ratio_cpu:.0f}x cpu")
    met = ours["cpu_rate"] >= GOAL_EPISODES_PER_S
    print(f"goal >= {GOAL_EPISODES_PER_S:,} episodes/s: {ours['cpu_rate']:,.0f}/s by CPU time "
          f"({ours['cpu_rate'] / GOAL_EPISODES_PER_S:.2f} of goal, {'met' if met else 'NOT met'}); "
          f"{ours['rate']:,.0f}/s wall ({ours['rate'] / GOAL_EPISODES_PER_S:.2f} of goal; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores)")
    out = args.work
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"bench": "episodes", "quick": args.quick, "ours": ours, "dataframe": theirs,
                             "ratio_wall": ratio_wall, "ratio_cpu": ratio_cpu, "goal_episodes_per_s": GOAL_EPISODES_PER_S,
                             "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
