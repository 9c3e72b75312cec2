"""A demo root on its own: ``serve-demo --root DEMO`` serves its catalogue, so its
manifest rebuilds with identical hashes in minutes (no YouTube budget against the
loopback server), and a rebuild that misses a clip exits non-zero."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from audioset_fewshot.demo.server import MediaServer
from audioset_fewshot.demo.session import demo_catalog_of
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.manifest import read_clips

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def _cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audioset_fewshot", *args], capture_output=True, text=True, timeout=timeout)


def test_rebuild_of_the_demo_against_serve_demo_root_gives_identical_hashes(demo_run: Any, tmp_path: Path) -> None:
    listed = len(read_clips(DatasetLayout(demo_run.root).clips_csv))
    cmd = [
        sys.executable,
        "-m",
        "audioset_fewshot",
        "serve-demo",
        "--root",
        str(demo_run.root),
        "--cache-dir",
        str(demo_run.media_cache),
        "--idle-timeout",
        "60",
    ]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            url = server.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:"), server.stderr.read() if server.stderr else ""
            t0 = time.monotonic()
            # the README's command as written: no rate flags, the loopback host has no hourly budget
            proc = _cli("rebuild", str(demo_run.root), "--root", str(tmp_path / "rebuilt"), "--base-url", url)
            seconds = time.monotonic() - t0
        finally:
            server.terminate()
            server.wait(timeout=30)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"rebuilt {listed}/{listed} clips" in proc.stdout and f"{listed} hash the same, 0 differ" in proc.stdout
    assert seconds < 600, f"rebuild took {seconds:.0f} s"
    same = _cli("diff", str(demo_run.root), str(tmp_path / "rebuilt"))
    assert same.returncode == 0 and same.stdout.strip().endswith("identical")


def test_rebuild_that_misses_a_clip_exits_non_zero(demo_run: Any, tmp_path: Path) -> None:
    clips = DatasetLayout(demo_run.root).clips_csv
    lines = clips.read_text(encoding="utf-8").splitlines(keepends=True)
    subset = tmp_path / "subset.csv"
    subset.write_text("".join(lines[:5]), encoding="utf-8")  # the header and four clips
    gone = read_clips(subset)[0]
    with MediaServer(cache_dir=demo_run.media_cache, catalog=demo_catalog_of(demo_run.root), idle_timeout_s=120) as srv:
        srv.set_fault(gone.ytid, "unavailable")
        proc = _cli("rebuild", str(subset), "--root", str(tmp_path / "rebuilt"), "--base-url", srv.base_url, "--retries", "0")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"no longer available: {gone.clip_id} (unavailable)" in proc.stdout
    assert "rebuilt 3/4 clips" in proc.stdout and "3 hash the same, 0 differ" in proc.stdout


def test_serve_demo_root_refuses_a_folder_that_is_not_a_demo_root(tmp_path: Path) -> None:
    proc = _cli("serve-demo", "--root", str(tmp_path), timeout=60)
    assert proc.returncode == 2 and "is not a demo root" in proc.stderr and "run --demo" in proc.stderr


def test_the_readme_python_snippet_runs_on_the_demo_root(demo_run: Any, tmp_path: Path) -> None:
    """The README's Python block, as written, in a folder where the demo root is
    ``audioset-fewshot-demo``: episode labels 0..4 from the sampler's collate."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = readme.split("```python\n", 1)[1].split("```", 1)[0]
    assert "collate_fn=sampler.collate" in block
    (tmp_path / "audioset-fewshot-demo").symlink_to(demo_run.root)
    check = "\nassert sorted(set(y.tolist())) == [0, 1, 2, 3, 4] and x.shape[0] == 50, (y, x.shape)\n"
    proc = subprocess.run([sys.executable, "-c", block + check], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "torch.Size([50, 1, 128, 313])" in proc.stdout
