"""A NaN or a flipped byte in the features never reaches an accuracy: evaluate refuses, naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.fewshot_synth import make_root, write_features_dir

from audioset_fewshot.episodes import write_episodes
from audioset_fewshot.errors import IntegrityError
from audioset_fewshot.evaluate import evaluate


@pytest.mark.parametrize("damage", ["nan", "flip"])
def test_evaluate_refuses_damaged_features(tmp_path: Path, damage: str) -> None:
    store, _ = make_root(tmp_path, n_classes=30, per_class=12)
    write_features_dir(tmp_path, store)
    episodes = write_episodes(tmp_path, split="test", n_way=5, k_shot=1, q_query=2, count=20, seed=0)
    first = evaluate(tmp_path, episodes=episodes, method="nearest-centroid")  # intact: evaluates
    assert first.mean > 0.2
    mels = tmp_path / "processed" / "features" / store.key / "mels.f32"
    arr = np.memmap(mels, dtype=np.float32, mode="r+")
    if damage == "nan":
        arr[12345] = np.nan
    else:
        arr[12345] = -arr[12345] + 1.0  # a plausible but different value
    arr.flush()
    del arr
    with pytest.raises(IntegrityError, match=r"mels\.f32") as info:
        evaluate(tmp_path, episodes=episodes, method="nearest-centroid", force=True)
    assert str(mels) in str(info.value)
    assert ("non-finite" in str(info.value)) == (damage == "nan")
