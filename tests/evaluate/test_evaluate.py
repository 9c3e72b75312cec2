"""The evaluate stage: every method end to end, the results table, stored rows, scoring, CLI."""

from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.fewshot_synth import make_root, write_features_dir

from audioset_fewshot import methods as M
from audioset_fewshot.episodes import read_episodes, write_episodes
from audioset_fewshot.errors import UsageError
from audioset_fewshot.evaluate import TABLE_COLUMNS, EvalOptions, evaluate, evaluate_methods, read_table
from audioset_fewshot.torchdata import SplitDataset

# the CRNN needs at least 81 x 81 inputs (four 3x3 max-pools) and 81-242 mel bins
SHAPE = {"n_mels": 128, "frames": 90}
FAST = EvalOptions(steps=3, q_query=5, learning_rate=2e-3, val_episodes=6, val_every=3, inner_steps=1, maml_episodes=3,
                   finetune_steps=10, batch_size=8)  # fmt: skip


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, Any, Any]:
    path = tmp_path_factory.mktemp("eval")
    store, splits = make_root(path, n_classes=30, per_class=14, noise_db=12.0, multi=0.0, **SHAPE)
    episodes = write_episodes(path, split="test", n_way=5, k_shot=5, q_query=5, count=60, seed=0)
    return path, store, splits, episodes


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with (path / "eval" / "results.csv").open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_every_method_runs_and_has_its_row(root: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    path, store, splits, episodes = root
    results = evaluate_methods(path, episodes=episodes, methods="all", options=FAST, features=store)
    assert [r.method for r in results] == ["protonet", "simpleshot", "finetune", "maml", "untrained", "nearest-centroid"]
    rows = _csv_rows(path)
    assert [r["method"] for r in rows] == [r.method for r in results]
    for r in rows:
        assert list(r) == list(TABLE_COLUMNS)
        assert r["splits_sha256"] == splits.content_sha256 and r["episodes_sha256"] == episodes.episodes_sha256
        assert r["episodes_file"] == episodes.path.name and r["saw_audioset_labels"] == "no" and r["class_disjoint"] == "yes"
        assert 0.0 <= float(r["mean"]) <= 1.0 and float(r["ci95"]) >= 0.0
        assert (r["n_way"], r["k_shot"], r["q_query"]) == ("5", "5", "5")
    by = {r["method"]: r for r in rows}
    assert by["maml"]["episodes"] == "3" and by["protonet"]["episodes"] == "60"
    assert by["protonet"]["train_steps"] == "3" and by["untrained"]["train_steps"] == "0"
    assert by["protonet"]["selected_step"] == "3"  # validated at its last step
    assert by["nearest-centroid"]["backbone"] == "" and by["protonet"]["backbone"] == "crnn"
    md = (path / "eval" / "results.md").read_text(encoding="utf-8")
    assert md.count("\n") == 2 + len(rows) and "| protonet | crnn | 5 | 5 | 5 | 60 |" in md
    assert "saw AudioSet labels" in md

    # a rerun with the same inputs trains nothing and changes no byte
    def refuse(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("trained although the stored row is up to date")

    for name in ("train_protonet", "train_simpleshot", "train_maml", "untrained"):
        monkeypatch.setattr(M, name, refuse)
    before = (path / "eval" / "results.csv").read_bytes()
    again = evaluate_methods(path, episodes=episodes, methods="all", options=FAST, features=store)
    assert [(r.method, r.mean, r.key) for r in again] == [(r.method, r.mean, r.key) for r in results]
    assert (path / "eval" / "results.csv").read_bytes() == before
    monkeypatch.undo()

    # a changed backbone trains that row only; the other rows stay as they were
    trained: list[str] = []
    real = M.train_protonet

    def spy(*a: Any, **k: Any) -> Any:
        trained.append(a[2].backbone)
        return real(*a, **k)

    monkeypatch.setattr(M, "train_protonet", spy)
    for name in ("train_simpleshot", "train_maml"):
        monkeypatch.setattr(M, name, refuse)
    evaluate_methods(path, episodes=episodes, methods="protonet", options=dataclasses.replace(FAST, backbone="conv4"), features=store)
    assert trained == ["conv4"]
    rows2 = _csv_rows(path)
    assert len(rows2) == len(rows) + 1
    assert [r for r in rows2 if r["backbone"] != "conv4"] == rows

    # a changed episode file: only its rows are computed, beside the old ones
    other = write_episodes(path, split="test", n_way=5, k_shot=5, q_query=5, count=40, seed=1)
    evaluate_methods(path, episodes=other, methods="nearest-centroid", options=FAST, features=store)
    rows3 = _csv_rows(path)
    assert [r for r in rows3 if r["episodes_file"] == episodes.path.name] == rows2
    assert [r["method"] for r in rows3 if r["episodes_file"] == other.path.name] == ["nearest-centroid"]


def test_nearest_centroid_beats_chance_and_writes_results(root: tuple) -> None:
    path, store, splits, episodes = root
    r = evaluate(path, episodes=episodes, method="nearest-centroid", features=store)
    assert r.mean >= 0.6  # chance is 0.2
    assert 0 < r.ci95 < 0.05
    data = json.loads((path / "eval" / "results.json").read_text())
    assert data["result"]["n_way"] == 5 and data["result"]["k_shot"] == 5 and data["result"]["episodes"] == 60
    assert data["inputs"]["splits_sha256"] == splits.content_sha256
    assert data["inputs"]["episodes_sha256"] == episodes.episodes_sha256
    assert any(row["method"] == "nearest-centroid" for row in read_table(path / "eval" / "results.csv"))


def test_vectorised_scoring_matches_a_plain_loop(root: tuple) -> None:
    path, store, splits, episodes = root
    test = SplitDataset(path, "test", features=store, splits=splits)
    _, fixed = read_episodes(episodes.path)
    arrays = M.episode_arrays(test, fixed)
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(len(test), 1, 16)).astype(np.float32)
    emb += np.eye(16, dtype=np.float32)[test.targets % 16][:, None] * 3.0
    acc = M.score_centroid(emb, arrays, seed=0)
    for e, ep in enumerate(fixed):
        protos = np.stack([emb[[test.item_index(c, mid) for c in row], 0].mean(axis=0) for mid, row in zip(ep.classes, ep.support, strict=True)])
        hits = [int(((emb[test.item_index(c, mid), 0] - protos) ** 2).sum(axis=1).argmin() == j)
                for j, (mid, row) in enumerate(zip(ep.classes, ep.query, strict=True)) for c in row]  # fmt: skip
        assert acc[e] == pytest.approx(np.mean(hits))
    lin = M.score_linear(emb, arrays, seed=0, steps=50, lr=0.05)
    assert acc.mean() > 0.6 and lin.shape == acc.shape and lin.mean() > 0.6


def test_pieces_and_majority_vote() -> None:
    x = np.arange(2 * 1 * 3 * 10, dtype=np.float32).reshape(2, 1, 3, 10)
    p = M.cut_pieces(x, 4)
    assert p.shape == (2, 3, 1, 3, 4)
    np.testing.assert_array_equal(p[:, 1], x[..., 4:8])
    np.testing.assert_array_equal(p[:, 2], np.concatenate([x[..., 8:10], x[..., 0:2]], axis=-1))  # repeat-padded
    assert M.cut_pieces(x, 0).shape == (2, 1, 1, 3, 10) and M.piece_count(313, 157) == 2
    # three pieces: two vote for class 1, one (very confidently) for class 0 -> class 1
    dist = np.array([[[5.0, 1.0], [5.0, 1.0], [0.0, 9.0]]])
    assert M._vote(dist).tolist() == [1]
    # a tie goes to the smaller summed distance
    assert M._vote(np.array([[[0.0, 1.0], [3.0, 2.0]]])).tolist() == [0]


def test_stale_episodes_and_bad_methods_are_refused(root: tuple, tmp_path: Path) -> None:
    path, store, _, episodes = root
    with pytest.raises(UsageError, match="unknown method"):
        evaluate(path, episodes=episodes, method="reptile", features=store)
    with pytest.raises(UsageError, match="needs an encoder"):
        evaluate(path, episodes=episodes, method="hear", features=store)
    with pytest.raises(UsageError, match="unknown backbone"):
        evaluate(path, episodes=episodes, method="protonet", options=EvalOptions(backbone="vit"), features=store)
    other, _ = make_root(tmp_path, seed=1, n_classes=30, per_class=12)
    with pytest.raises(UsageError, match="drawn from other splits"):
        evaluate(tmp_path, episodes=episodes.path, method="nearest-centroid", features=other)


@pytest.mark.slow
def test_cli_end_to_end_on_a_features_dir(tmp_path: Path) -> None:
    store, _ = make_root(tmp_path, n_classes=30, per_class=14, noise_db=12.0, multi=0.0, **SHAPE)
    write_features_dir(tmp_path, store)
    cfg = tmp_path / "config.yaml"
    cfg.write_text("episodes:\n  n_way: 5\n  k_shot: 5\n  q_query: 5\n  count: 100\nevaluate:\n  q_query: 5\n  steps: 4\n  val_episodes: 5\n  val_every: 2\n")
    cmd = [sys.executable, "-m", "audioset_fewshot", "evaluate", "-c", str(cfg), "--root", str(tmp_path)]
    out = subprocess.run(cmd + ["--method", "nearest-centroid,untrained"], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr
    assert "nearest-centroid: " in out.stdout and "untrained (crnn): " in out.stdout
    assert "| method | backbone | N | K | Q | T |" in out.stdout
    # 1 s pieces are too short for four 3x3 pools: a clear error, no traceback
    out = subprocess.run(cmd + ["--method", "protonet", "--piece-seconds", "1"], capture_output=True, text=True, timeout=240)
    assert out.returncode != 0 and "too small" in out.stderr and "Traceback" not in out.stderr
    out = subprocess.run(cmd + ["--method", "protonet", "--threads", "1"], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr
    rows = _csv_rows(tmp_path)
    assert [r["method"] for r in rows] == ["protonet", "untrained", "nearest-centroid"]
    assert rows[0]["train_steps"] == "4"
    assert (tmp_path / "episodes" / "test_5w5s5q_100_seed0.jsonl").exists()
