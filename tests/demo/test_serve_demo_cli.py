"""``audioset-fewshot serve-demo`` prints its URL, serves, and stops when idle."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def test_serve_demo_prints_the_url_serves_and_stops_when_idle(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "audioset_fewshot", "serve-demo", "--idle-timeout", "1.5", "--cache-dir", str(tmp_path / "media")]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            base = proc.stdout.readline().strip()
            assert base.startswith("http://127.0.0.1:")
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(f"{base}/watch?v=cliTest0001", timeout=10) as resp:
                assert resp.status == 200
            t0 = time.monotonic()
            rc = proc.wait(timeout=30)
            assert rc == 0 and time.monotonic() - t0 < 20
            assert "stopped after 1 requests" in (proc.stderr.read() if proc.stderr else "")
        finally:
            if proc.poll() is None:
                proc.kill()


def test_serve_demo_rejects_a_bad_port() -> None:
    out = subprocess.run([sys.executable, "-m", "audioset_fewshot", "serve-demo", "--port", "70000"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--port must be between 0 and 65535" in out.stderr
