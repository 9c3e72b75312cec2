"""ProtoNet on audio from the demo's own class-dependent generator, through the real
log-mel: 5-way 5-shot accuracy must clearly beat chance (>= 60 %)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from audioset_fewshot.episodes import write_episodes
from audioset_fewshot.evaluate import evaluate
from audioset_fewshot.splits import ClipLabels, SplitClass, build_splits


@pytest.mark.slow
def test_protonet_on_demo_signals_beats_chance(tmp_path: Path) -> None:
    from audioset_fewshot.demo.catalog import pick_demo_classes
    from audioset_fewshot.demo.signals import synthesize
    from audioset_fewshot.process.features import FeatureStore, log_mel
    from audioset_fewshot.process.pack import PackRow

    classes = pick_demo_classes(seed=0, n_classes=30)
    rows, mels = [], []
    for c, dc in enumerate(classes):
        audio = [synthesize(dc.mid, f"{c:05d}{j:06d}", seed=0, duration_s=2.0, sample_rate_hz=16000, channels=1)[:, 0] for j in range(9)]
        mels.append(log_mel(np.stack(audio)))
        for j, a in enumerate(audio):
            rows.append(PackRow(row=len(rows), ytid=f"{c:05d}{j:06d}", start_s=0.0, owner_mid=dc.mid, labels=(dc.mid,),
                                true_samples=len(a), length_action="none"))
    x = np.concatenate(mels).astype(np.float32)
    x64 = x.astype(np.float64)
    store = FeatureStore(root=tmp_path, key="demo-like", path=tmp_path, mels=x, index=tuple(rows), meta={},
                         stats_count=np.full(x.shape[:2], x.shape[2], dtype=np.float64), stats_sum=x64.sum(axis=2),
                         stats_sumsq=(x64**2).sum(axis=2))
    clips = [ClipLabels.of(r.ytid, r.start_s, r.labels, r.owner_mid) for r in rows]
    build_splits(tmp_path, seed=0, clips=clips, classes=[SplitClass(dc.mid, dc.name) for dc in classes])
    episodes = write_episodes(tmp_path, split="test", n_way=5, k_shot=5, q_query=4, count=300, seed=0)
    result = evaluate(tmp_path, episodes=episodes, method="protonet", steps=60, q_query=4, features=store, threads=1)
    assert result.n_way == 5 and result.k_shot == 5
    assert result.mean >= 0.6, result.summary()
