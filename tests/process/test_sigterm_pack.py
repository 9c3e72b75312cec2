"""SIGTERM during pack (what SLURM sends on preemption) is handled like Ctrl-C: exit 143,
then a rerun resumes and gives the bytes of an uninterrupted pack."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from support.process_clips import DOG, MUSIC, SPEECH, Clip, make_root

from audioset_fewshot.config import CleanOptions, PackOptions
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.process import clean, pack

ENV = {**os.environ, "AUDIOSET_FEWSHOT_PROGRESS": "0"}


def _clips() -> list[Clip]:
    return [Clip(f"s{c}{i:09d}", mid, "tone" if i % 2 else "noise") for c, mid in enumerate((SPEECH, DOG, MUSIC)) for i in range(100)]


def _pack_files(layout: DatasetLayout) -> dict[str, bytes]:
    (folder,) = [p for p in layout.pack_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _array_stamps(layout: DatasetLayout) -> dict[Path, tuple[int, int]]:
    out = {}
    for p in layout.pack_dir.glob("*/audio.int16"):
        try:
            st = p.stat()
        except FileNotFoundError:
            continue
        out[p] = (st.st_mtime_ns, st.st_size)
    return out


def test_sigterm_during_pack_then_rerun_is_byte_identical(tmp_path: Path) -> None:
    ref = make_root(tmp_path / "ref", _clips())
    clean(ref.root, CleanOptions(workers=1))
    pack(ref.root, PackOptions(workers=2))
    reference = _pack_files(ref)

    root = make_root(tmp_path / "root", _clips())
    clean(root.root, CleanOptions(workers=1))
    cmd = [sys.executable, "-m", "audioset_fewshot", "process", "--root", str(root.root), "--stage", "pack", "--workers", "2"]
    terminated = 0
    for delay in np.random.default_rng(143).uniform(0.0, 0.3, size=6):
        # signal only once this process writes the array (a file from an earlier, interrupted
        # attempt is already there: its presence says nothing about this process's handler)
        before = _array_stamps(root)
        proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while _array_stamps(root) == before and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(float(delay))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        if proc.returncode == 143:
            terminated += 1
            assert "terminated (SIGTERM): what was committed is kept" in err, err
            assert "Traceback" not in err
        else:
            assert proc.returncode == 0, err
            if terminated:
                break
            # the pack ended before the signal landed (a loaded machine): start over, so that
            # one attempt is interrupted and the rerun below resumes it
            shutil.rmtree(root.pack_dir)
    assert terminated >= 1
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert _pack_files(root) == reference
    assert not list(root.root.rglob(".tmp-*"))
