"""Which test episodes ``evaluate`` uses: ``--episodes FILE``, the ``--test-*`` shape, else the
file ``episodes`` wrote last, else the config's; the output names the file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support.fewshot_synth import make_root, write_features_dir

from audioset_fewshot.episodes import choose_episodes, latest_episodes, write_episodes
from audioset_fewshot.errors import UsageError

pytestmark = pytest.mark.slow


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audioset_fewshot", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("eval-episodes")
    store, _ = make_root(path, n_classes=30, per_class=12, noise_db=12.0, n_mels=128, frames=90)  # the CRNN needs >= 81 x 81
    write_features_dir(path, store)
    return path


def test_the_rule_in_order(root: Path) -> None:
    a = write_episodes(root, split="test", n_way=5, k_shot=1, q_query=5, count=20, seed=0)
    assert latest_episodes(root) == a.path
    defaults = {"split": "test", "n_way": 5, "k_shot": 5, "q_query": 5, "count": 30, "seed": 0}
    assert choose_episodes(root, defaults=defaults).path == a.path  # what 'episodes' wrote last
    b = choose_episodes(root, shape={"k_shot": 2}, defaults=defaults)  # the shape, written first
    assert (b.n_way, b.k_shot, b.q_query, b.count) == (5, 2, 5, 30) and b.path.is_file()
    assert choose_episodes(root, file=a.path).path == a.path
    with pytest.raises(UsageError, match="fixes the test episodes: drop the test shape"):
        choose_episodes(root, file=a.path, shape={"k_shot": 2})


def test_evaluate_uses_the_file_episodes_wrote_and_names_it(root: Path) -> None:
    wrote = _cli("episodes", "--root", str(root), "--n-way", "5", "--k-shot", "1", "--q-query", "5", "--count", "40")
    assert wrote.returncode == 0, wrote.stderr
    mine = root / "episodes" / "test_5w1s5q_40_seed0.jsonl"
    assert mine.is_file()
    base = ["evaluate", "--root", str(root), "--method", "nearest-centroid"]
    used = _cli(*base)
    assert used.returncode == 0, used.stderr
    assert f"test episodes: {mine} (test split, 5-way 1-shot 5-query, 40 episodes, seed 0)" in used.stdout
    # the test shape chooses (and writes) another file; --episodes names one
    shaped = _cli(*base, "--test-k-shot", "3", "--test-q-query", "5", "--test-count", "25")
    assert shaped.returncode == 0, shaped.stderr
    assert "test_5w3s5q_25_seed0.jsonl (test split, 5-way 3-shot 5-query, 25 episodes" in shaped.stdout
    named = _cli(*base, "--episodes", str(mine))
    assert named.returncode == 0 and f"test episodes: {mine}" in named.stdout, named.stderr
    both = _cli(*base, "--episodes", str(mine), "--test-k-shot", "2")
    assert both.returncode == 2 and "drop the test shape" in both.stderr


def test_evaluate_without_a_terminal_logs_its_progress(root: Path) -> None:
    """No terminal: training steps and test episodes are reported at the interval."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "AUDIOSET_FEWSHOT_PROGRESS"}
    env["AUDIOSET_FEWSHOT_PROGRESS_INTERVAL_S"] = "0.2"
    proc = subprocess.run([sys.executable, "-m", "audioset_fewshot", "evaluate", "--root", str(root), "--method", "protonet", "--steps", "40",
                           "--q-query", "5", "--test-k-shot", "1", "--test-q-query", "5", "--test-count", "40", "--force"],
                          capture_output=True, text=True, timeout=600, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if " train protonet: " in ln]
    assert lines and all("/40 step (" in ln and "step/s" in ln for ln in lines), proc.stderr
