"""On a finished demo root: a flipped byte in the pack, a NaN in the features and a
damaged clip are reported by ``verify --deep``, refused by ``evaluate``, and ``run``
re-derives all three (instead of saying "up to date") to the original bytes."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import DEMO_TIMEOUT_S, demo_env  # type: ignore[import-not-found]

from audioset_fewshot.layout import DatasetLayout

pytestmark = [pytest.mark.slow, pytest.mark.timeout(DEMO_TIMEOUT_S + 300)]


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audioset_fewshot", *args], capture_output=True, text=True, timeout=600, env=demo_env(), check=False)


def test_damage_is_found_refused_and_rederived_by_run(demo_run: Any, tmp_path: Path) -> None:
    from audioset_fewshot.config import load_config
    from audioset_fewshot.pipeline import RAN, run
    from audioset_fewshot.process import load_features, load_pack

    root = tmp_path / "copy"
    shutil.copytree(demo_run.root, root)
    layout = DatasetLayout(root)
    audio = load_pack(root).audio_path
    mels = load_features(root).path / "mels.f32"
    clip = root / sorted(line.split(",")[6] for line in layout.clips_csv.read_text().splitlines()[1:])[3]
    before = {p: _sha(p) for p in (audio, mels, clip, layout.eval_results)}

    with open(audio, "r+b") as fh:  # one flipped byte in the packed audio
        fh.seek(audio.stat().st_size // 3)
        b = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([b[0] ^ 0x01]))
    arr = np.memmap(mels, dtype=np.float32, mode="r+")  # one NaN in the features
    arr[arr.size // 2] = np.nan
    arr.flush()
    del arr
    data = bytearray(clip.read_bytes())  # a clip damaged in place
    data[len(data) // 2] ^= 0xFF
    clip.write_bytes(bytes(data))

    deep = _cli("verify", "--deep", "--root", str(root))
    assert deep.returncode == 1
    assert "corrupt-array" in deep.stdout and "audio.int16" in deep.stdout and "mels.f32" in deep.stdout and "non-finite" in deep.stdout
    assert "corrupt-hash" in deep.stdout and clip.name in deep.stdout

    refused = _cli("evaluate", "--root", str(root), "--force")
    assert refused.returncode == 1 and str(mels) in refused.stderr and "non-finite" in refused.stderr, refused.stderr
    assert _sha(layout.eval_results) == before[layout.eval_results]

    report = run(load_config(None, {}), demo=True, root=root, media_cache=demo_run.media_cache)
    status = {s.name: s.status for s in report.stages}
    assert status["pack"] == RAN and status["features"] == RAN, status
    assert report.stage("download").summary["obtained_now"] == 1  # type: ignore[union-attr]
    assert {p: _sha(p) for p in before} == before
    assert _cli("verify", "--deep", "--root", str(root)).returncode == 0
    summary = json.loads((layout.report_dir / "run.json").read_text(encoding="utf-8"))
    assert summary["stages"]
