"""Hostile or broken config files are clear errors (file and line) within 2 s and 100 MiB."""

from __future__ import annotations

import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from audioset_fewshot._yaml import MAX_ALIASES, MAX_BYTES, MAX_DEPTH
from audioset_fewshot.config import Config, load_config
from audioset_fewshot.errors import ConfigError

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""
# the same through merge keys (mappings that include each other), which a naive walker expands forever
MERGE_BOMB = "a: &a {x: 1, y: 2}\n" + "".join(
    f"k{i}: &k{i} {{<<: [*{'a' if i == 0 else f'k{i - 1}'}, *{'a' if i == 0 else f'k{i - 1}'}], z{i}: 1}}\n" for i in range(30)
)

CASES: dict[str, tuple[bytes, str]] = {
    "billion-laughs": (BILLION_LAUGHS.encode(), rf":3: more than {MAX_ALIASES} YAML anchors/aliases"),
    "merge-bomb": (MERGE_BOMB.encode(), "anchors/aliases"),
    "deep-flow": (b"plan: " + b"[" * 100_000 + b"]" * 100_000 + b"\n", rf":1: nested deeper than {MAX_DEPTH} levels"),
    "deep-block": ("".join("  " * i + f"k{i}:\n" for i in range(300)).encode(), r":\d+: nested deeper"),
    "duplicate-key": (b"plan:\n  seed: 1\n  max_per_class: 3\n  seed: 2\n", r":4: duplicate key 'seed' \(first given on line 2\)"),
    "duplicate-section": (b"plan:\n  seed: 1\nepisodes:\n  count: 3\nplan:\n  seed: 2\n", r":5: duplicate key 'plan'"),
    "not-utf8": (b"plan:\n  seed: 1\n# caf\xe9 in latin-1\n", r":3: not UTF-8 text \(byte 0xe9"),
    "nul": (b"plan:\n  seed: 1\x00\n", r":2: a NUL byte"),
    "too-big": (b"# padding\n" * (MAX_BYTES // 10 + 1), rf"more than the {MAX_BYTES} a config file may have"),
    "malformed": (b"plan:\n  seed: [1, 2\n", r"malformed YAML"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_config_is_a_clear_error_fast_and_small(name: str, tmp_path: Path) -> None:
    data, message = CASES[name]
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(data)
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(ConfigError, match=message) as info:
            load_config(path)
    finally:
        seconds = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert str(path) in str(info.value)
    assert seconds < 2.0, seconds
    assert peak < 100 * 2**20, peak


def test_an_empty_config_and_a_few_anchors_are_fine(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_bytes(b"")
    assert load_config(empty) == Config()
    anchors = tmp_path / "anchors.yaml"
    anchors.write_text("episodes: &ep\n  n_way: 5\n  k_shot: 5\nevaluate:\n  <<: *ep\n  steps: 10\n", encoding="utf-8")
    cfg = load_config(anchors)
    assert cfg.evaluate.k_shot == 5 and cfg.evaluate.steps == 10


def test_memory_hungry_knobs_have_upper_bounds(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"features.n_fft.*above the maximum 65536"):
        load_config(None, {"features.n_fft": 10**9})
    bad = tmp_path / "big.yaml"
    bad.write_text("episodes:\n  count: 100000000000\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"episodes.count.*above the maximum"):
        load_config(bad)


def test_cli_reports_a_hostile_config_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "laughs.yaml"
    path.write_text(BILLION_LAUGHS, encoding="utf-8")
    cmds = [["run", "-c", str(path), "--root", str(tmp_path / "r")], ["process", "--root", str(tmp_path / "r"), "--n-fft", "1000000000"]]
    for cmd in cmds:
        t0 = time.monotonic()
        res = subprocess.run([sys.executable, "-m", "audioset_fewshot", *cmd], capture_output=True, text=True, timeout=60, check=False)
        assert res.returncode == 2, res.stderr
        assert res.stderr.startswith("error: ") and "internal error" not in res.stderr and "Traceback" not in res.stderr
        assert time.monotonic() - t0 < 20
    assert not (tmp_path / "r").exists()  # refused before the root was touched
