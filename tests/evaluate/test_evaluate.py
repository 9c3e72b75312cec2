"""Baselines on fixed episodes: accuracy above chance, CI, results.json, idempotence, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support.fewshot_synth import make_root, write_features_dir

from audioset_fewshot.episodes import write_episodes
from audioset_fewshot.errors import UsageError
from audioset_fewshot.evaluate import build_encoder, evaluate


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("eval")
    store, splits = make_root(path, n_classes=30, per_class=12, noise_db=12.0)
    episodes = write_episodes(path, split="test", n_way=5, k_shot=5, q_query=5, count=300, seed=0)
    return path, store, splits, episodes


def test_nearest_centroid_beats_chance_and_writes_results(root) -> None:
    path, store, splits, episodes = root
    r = evaluate(path, episodes=episodes, method="nearest-centroid", features=store)
    assert r.mean >= 0.6  # chance is 0.2
    assert 0 < r.ci95 < 0.05
    data = json.loads((path / "eval" / "results.json").read_text())
    assert data["result"]["n_way"] == 5 and data["result"]["k_shot"] == 5 and data["result"]["episodes"] == 300
    assert data["inputs"]["splits_sha256"] == splits.content_sha256
    assert data["inputs"]["episodes_sha256"] == episodes.episodes_sha256


@pytest.mark.slow
def test_protonet_trains_beats_chance_and_is_idempotent(root) -> None:
    path, store, _, episodes = root
    r = evaluate(path, episodes=episodes, method="protonet", steps=60, q_query=5, features=store, threads=1, force=True)
    assert r.mean >= 0.6
    losses = [loss for _, loss in r.train["losses"]]
    assert losses[-1] < losses[0]
    mtime = (path / "eval" / "results.json").stat().st_mtime_ns
    again = evaluate(path, episodes=episodes, method="protonet", steps=60, q_query=5, features=store, threads=1)
    assert again.mean == r.mean and (path / "eval" / "results.json").stat().st_mtime_ns == mtime


def test_encoder_weights_do_not_use_torch_global_rng() -> None:
    import torch

    torch.manual_seed(1)
    a = [p.detach().clone() for p in build_encoder(32, 48, seed=4).parameters()]
    torch.manual_seed(2)
    b = [p.detach().clone() for p in build_encoder(32, 48, seed=4).parameters()]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    c = [p.detach().clone() for p in build_encoder(32, 48, seed=5).parameters()]
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


def test_stale_episodes_and_bad_method_are_refused(root, tmp_path: Path) -> None:
    path, store, _, episodes = root
    with pytest.raises(UsageError, match="unknown method"):
        evaluate(path, episodes=episodes, method="maml", features=store)
    other, _ = make_root(tmp_path, seed=1, n_classes=30, per_class=12)
    with pytest.raises(UsageError, match="drawn from other splits"):
        evaluate(tmp_path, episodes=episodes.path, method="nearest-centroid", features=other)


@pytest.mark.slow
def test_cli_end_to_end_on_a_features_dir(tmp_path: Path) -> None:
    store, _ = make_root(tmp_path, n_classes=30, per_class=12, noise_db=12.0)
    write_features_dir(tmp_path, store)
    cfg = tmp_path / "config.yaml"
    cfg.write_text("episodes:\n  n_way: 5\n  k_shot: 5\n  q_query: 5\n  count: 200\nevaluate:\n  q_query: 5\n  steps: 30\n")
    cmd = [sys.executable, "-m", "audioset_fewshot", "evaluate", "-c", str(cfg), "--root", str(tmp_path)]
    out = subprocess.run(cmd + ["--method", "nearest-centroid"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "N=5 K=5 Q=5 T=200" in out.stdout and "+-" in out.stdout
    out = subprocess.run(cmd + ["--method", "protonet", "--threads", "1"], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr
    data = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert data["method"] == "protonet" and data["params"]["steps"] == 30
    assert np.isfinite(data["result"]["mean"]) and data["result"]["mean"] > 0.2
    assert (tmp_path / "episodes" / "test_5w5s5q_200_seed0.jsonl").exists()
