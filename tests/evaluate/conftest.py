"""Reuse the synthetic processed root of tests/torchdata (one builder for both)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_path = Path(__file__).resolve().parents[1] / "torchdata" / "fewshot_synth.py"
if "fewshot_synth" not in sys.modules:
    _spec = importlib.util.spec_from_file_location("fewshot_synth", _path)
    assert _spec is not None and _spec.loader is not None
    _mod = importlib.util.module_from_spec(_spec)
    sys.modules["fewshot_synth"] = _mod
    _spec.loader.exec_module(_mod)
