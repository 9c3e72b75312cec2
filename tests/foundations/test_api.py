"""The curated top-level API: every name resolves to its stage's object, lazily."""

from __future__ import annotations

import importlib
import subprocess
import sys

import audioset_fewshot as af


def test_every_public_name_is_the_stage_object() -> None:
    for name, module in af._LAZY.items():
        assert getattr(af, name) is getattr(importlib.import_module(module), name), name
    assert set(af.__all__) == {"__version__", *af._LAZY}
    assert {"run_download", "make_plan", "SplitDataset", "DownloadOptions"} <= set(dir(af))


def test_importing_the_package_loads_no_stage() -> None:
    code = (
        "import sys, audioset_fewshot as af\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'yt_dlp', 'numpy') or m.startswith('audioset_fewshot.'))\n"
        "print(heavy)\n"
        "af.DownloadOptions\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout.split("\n")
    assert out[0] == "[]" and out[1] == "False"


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        af.no_such_thing  # noqa: B018
    except AttributeError as err:
        assert "no_such_thing" in str(err)
    else:
        raise AssertionError("no AttributeError")
