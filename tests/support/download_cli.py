"""The `download` command as the kill/terminate-and-rerun tests start it: a config with fast
retries and no early abort, and the command line with no rate limit and no free-space floor."""

from __future__ import annotations

import sys
from pathlib import Path


def write_download_config(path: Path, root: Path, *, max_per_class: int) -> None:
    path.write_text(
        f"root: {root}\n"
        f"plan:\n  seed: 0\n  max_per_class: {max_per_class}\n  sources: [balanced]\n"
        "download:\n  min_interval_s: 0.0\n  backoff_s: 0.05\n  retries: 1\n  timeout_s: 30.0\n  early_abort: 0\n"
    )


def download_cmd(cfg: Path, base_url: str) -> list[str]:
    """``python -m audioset_fewshot download`` for ``cfg`` against the media server at ``base_url``."""
    return [
        sys.executable,
        "-m",
        "audioset_fewshot",
        "download",
        "-c",
        str(cfg),
        "--base-url",
        base_url,
        "--max-per-hour",
        "0",
        "--min-free",
        "0B",
        "--jobs",
        "2",
    ]
