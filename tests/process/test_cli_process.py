from __future__ import annotations

import subprocess
import sys

import pytest

from audioset_fewshot.process import load_features


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audioset_fewshot", "process", *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow  # two CLI runs, each importing torch in a fresh interpreter
def test_process_all_prints_a_summary_and_reruns_fast(dataset) -> None:  # type: ignore[no-untyped-def]
    root = str(dataset.root)
    res = _run("--root", root, "--min-duration-s", "4", "--workers", "1", "--layout", "per-file")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "clean: 15 clips, 8 kept, 7 rejected, 7 dropped (policy drop)" in out
    assert "too-short 1" in out and "undecodable 2" in out and "silence-class 2" in out
    assert "pack: 8 rows x 160000 samples int16 at 16000 Hz" in out
    assert "features: 8 x 128 x 313 log-mel" in out and "per-file copies" in out
    assert load_features(dataset.root).shape == (8, 128, 313)
    assert len(list(dataset.per_file_dir.rglob("*.npy"))) == 8
    again = _run("--root", root, "--min-duration-s", "4", "--workers", "1", "--stage", "features", "--n-mels", "64")
    assert again.returncode == 0, again.stderr
    assert "features: 8 x 64 x 313" in again.stdout and "clean:" not in again.stdout


def test_process_errors_map_to_exit_codes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    res = _run("--root", str(tmp_path), "--stage", "pack")
    assert res.returncode == 2  # StageNotReadyError is a usage error
    assert "run 'audioset-fewshot process --stage clean' first" in res.stderr
    bad = _run("--root", str(tmp_path), "--silence-dbfs", "5")
    assert bad.returncode == 2 and "clean.silence_dbfs" in bad.stderr
