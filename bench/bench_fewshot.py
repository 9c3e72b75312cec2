"""Few-shot evaluation: CRNN ProtoNet training throughput and the cost of 10,000 test episodes.

    python bench/bench_fewshot.py            # full: 20 training steps, 10,000 test episodes
    python bench/bench_fewshot.py --quick    # a smoke run (< 60 s)

Training: :func:`audioset_fewshot.methods.train_protonet` with MetaAudio's CRNN on
10 s log-mels (128 x 313, global normalisation), 5-way 5-shot 15-query episodes,
one thread, no validation, on an in-memory feature store of 30 classes x 30 clips;
reported in episodes per second (wall and CPU time), and also with 5 s pieces.

Scoring: 10,000 fixed 5-way 5-shot 15-query episodes over a test split of 27
classes x 40 clips whose items are already embedded (64-d, as the CRNN's output):
nearest centroid (:func:`~audioset_fewshot.methods.score_centroid`, also with two
5 s pieces per clip and a majority vote) and the per-episode linear head
(:func:`~audioset_fewshot.methods.score_linear`, 100 steps).  Goal (issue 17):
10,000 test episodes after embedding in <= 30 s.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import Report, bench_parser  # noqa: E402

HERE = Path(__file__).resolve().parent
GOAL_TEST_S = 30.0
N, K, Q = 5, 5, 15


def _store(root: Path, n_classes: int, per_class: int, frames: int) -> tuple[object, object]:
    from audioset_fewshot.process.features import FeatureStore
    from audioset_fewshot.process.pack import PackRow
    from audioset_fewshot.splits import ClipLabels, SplitClass, build_splits

    rng = np.random.default_rng(0)
    mels = rng.normal(-40.0, 10.0, size=(n_classes * per_class, 128, frames)).astype(np.float32)
    rows = [
        PackRow(
            row=i,
            ytid=f"{i // per_class:05d}{i % per_class:06d}",
            start_s=0.0,
            owner_mid=f"/m/b{i // per_class:03d}",
            labels=(f"/m/b{i // per_class:03d}",),
            true_samples=160000,
            length_action="none",
        )
        for i in range(len(mels))
    ]
    m64 = mels.astype(np.float64)
    store = FeatureStore(root=root, key="bench", path=root, mels=mels, index=tuple(rows), meta={}, stats_count=np.full(mels.shape[:2], frames, dtype=np.float64),
                         stats_sum=m64.sum(axis=2), stats_sumsq=(m64**2).sum(axis=2))  # fmt: skip
    clips = [ClipLabels.of(r.ytid, r.start_s, r.labels, r.owner_mid) for r in rows]
    splits = build_splits(root, seed=0, clips=clips, classes=[SplitClass(f"/m/b{c:03d}", f"class {c}") for c in range(n_classes)])
    return store, splits


def bench_training(work: Path, steps: int) -> dict[str, float]:
    import torch

    from audioset_fewshot import methods as M
    from audioset_fewshot.torchdata import SplitDataset

    torch.set_num_threads(1)
    store, splits = _store(work / "train-root", 30, 30, 313)
    train = SplitDataset(work / "train-root", "train", features=store, splits=splits)
    out: dict[str, float] = {}
    for label, piece in (("10s", 0), ("5s_pieces", 157)):
        s = M.TrainSettings(backbone="crnn", n_way=N, k_shot=K, q_query=Q, steps=steps, learning_rate=5e-4, piece_frames=piece, val_episodes=0)
        t0, c0 = time.perf_counter(), time.process_time()
        M.train_protonet(train, None, s, val_k_shot=K)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        out[f"episodes_per_s_{label}"] = steps / wall
        out[f"cpu_episodes_per_s_{label}"] = steps / cpu
    return out


def bench_scoring(count: int) -> dict[str, float]:
    from audioset_fewshot import methods as M

    rng = np.random.default_rng(1)
    n_classes, per_class, dim = 27, 40, 64
    labels = np.repeat(np.arange(n_classes), per_class)
    centres = rng.normal(size=(n_classes, dim)).astype(np.float32)
    emb1 = (centres[labels] + rng.normal(scale=2.0, size=(len(labels), dim))).astype(np.float32)[:, None]
    emb2 = (centres[labels][:, None] + rng.normal(scale=2.0, size=(len(labels), 2, dim))).astype(np.float32)
    sup = np.empty((count, N, K), dtype=np.int64)
    qry = np.empty((count, N, Q), dtype=np.int64)
    for e in range(count):
        er = np.random.default_rng([0, e])
        for j, c in enumerate(er.choice(n_classes, N, replace=False)):
            items = c * per_class + er.choice(per_class, K + Q, replace=False)
            sup[e, j], qry[e, j] = items[:K], items[K:]
    arrays = M.EpisodeArrays(sup, qry)
    out: dict[str, float] = {"episodes": float(count)}
    for label, fn in (("centroid_s", lambda: M.score_centroid(emb1, arrays, seed=0)),
                      ("centroid_pieces_s", lambda: M.score_centroid(emb2, arrays, seed=0)),
                      ("linear_s", lambda: M.score_linear(emb1, arrays, seed=0, steps=100, lr=0.05))):  # fmt: skip
        t0 = time.perf_counter()
        acc = fn()
        out[label] = time.perf_counter() - t0
        out[label.replace("_s", "_accuracy")] = float(acc.mean())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--work", type=Path, default=HERE / "_work", help="scratch folder (default bench/_work)")
    args = parser.parse_args(argv)
    steps, count = (3, 1_000) if args.quick else (20, 10_000)
    rep = Report("fewshot", quick=args.quick, params={"train_steps": steps, "test_episodes": count, "n_way": N, "k_shot": K, "q_query": Q})
    args.work.mkdir(parents=True, exist_ok=True)
    train = bench_training(args.work / "fewshot", steps)
    score = bench_scoring(count)
    scale = 10_000 / count
    t10k = score["centroid_s"] * scale
    rep.add(
        "train_crnn_protonet",
        f"CRNN ProtoNet training, {N}w{K}s{Q}q, 10 s",
        kind="info",
        ours=f"{train['cpu_episodes_per_s_10s']:.2f} episodes/s",
        against=f"wall {train['episodes_per_s_10s']:.2f}/s",
        values={"ours": train["cpu_episodes_per_s_10s"], "wall": train["episodes_per_s_10s"]},
    )
    rep.add(
        "train_crnn_protonet_5s",
        "  same on 5 s pieces",
        kind="info",
        ours=f"{train['cpu_episodes_per_s_5s_pieces']:.2f} episodes/s",
        against=f"wall {train['episodes_per_s_5s_pieces']:.2f}/s",
        values={"ours": train["cpu_episodes_per_s_5s_pieces"], "wall": train["episodes_per_s_5s_pieces"]},
    )
    rep.ceiling("test_10k_episodes", f"10,000 test episodes {N}w{K}s{Q}q, embedded", t10k, GOAL_TEST_S, fmt="{:.2f} s", against=f"ceiling {GOAL_TEST_S:.0f} s")
    rep.add(
        "test_10k_pieces",
        "  same, 2 pieces per clip and a vote",
        kind="info",
        ours=f"{score['centroid_pieces_s'] * scale:.2f} s",
        against="-",
        values={"ours": score["centroid_pieces_s"] * scale},
    )
    rep.add(
        "test_10k_linear",
        "  same, linear head per episode (100 steps)",
        kind="info",
        ours=f"{score['linear_s'] * scale:.2f} s",
        against="-",
        values={"ours": score["linear_s"] * scale},
    )
    rep.figures.update(training=train, scoring=score)
    rep.note(
        f"training: one thread, {steps} steps, rates by CPU time (wall in the reference column); scoring: "
        f"{count:,} episodes{' (scaled to 10,000)' if scale != 1 else ''}, accuracy {score['centroid_accuracy']:.3f} (synthetic)"
    )
    return rep.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())
