"""Evaluation on the offline demo: a trained CRNN ProtoNet against an untrained one and
the nearest centroid, every method of ``--method all``, an outside HEAR-style encoder,
and easyfsl's own sampler and ProtoNet on a ``SplitDataset``."""

from __future__ import annotations

import csv
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

HERE = Path(__file__).resolve().parent


def _rows(root: Path) -> list[dict[str, str]]:
    with (root / "eval" / "results.csv").open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def demo_copy(demo_run: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo root without its audio and ledger (evaluation reads splits, pack, features, episodes)."""
    dest = tmp_path_factory.mktemp("eval-demo") / "root"
    shutil.copytree(demo_run.root, dest, ignore=shutil.ignore_patterns("audio", "ledger.sqlite*", ".demo-media"))
    return dest


def _evaluate(root: Path, *args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "audioset_fewshot", "evaluate", "--root", str(root), *args]
    if config is not None:
        cmd += ["-c", str(config)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def test_trained_protonet_beats_untrained_and_nearest_centroid(demo_run: Any) -> None:
    """Issue 17: on the demo, 5-way 5-shot, the trained CRNN ProtoNet is >= 10 points above
    the nearest centroid and the untrained CRNN, with non-overlapping 95 % CIs."""
    rows = {r["method"]: r for r in _rows(demo_run.root)}
    assert {"protonet", "untrained", "nearest-centroid"} <= set(rows)
    p = rows["protonet"]
    assert p["backbone"] == "crnn" and (p["n_way"], p["k_shot"]) == ("5", "5") and int(p["train_steps"]) > 0
    for other in ("untrained", "nearest-centroid"):
        o = rows[other]
        assert o["episodes_sha256"] == p["episodes_sha256"]
        assert float(p["mean"]) >= float(o["mean"]) + 0.10, (p, o)
        assert float(p["mean"]) - float(p["ci95"]) > float(o["mean"]) + float(o["ci95"]), (p, o)
    md = (demo_run.root / "eval" / "results.md").read_text(encoding="utf-8")
    assert "| protonet | crnn | 5 | 5 | 5 |" in md
    report = (demo_run.root / "report" / "index.html").read_text(encoding="utf-8")
    assert "results.png" in report and "untrained" in report


def test_every_method_of_all_runs_on_the_demo(demo_copy: Path, tmp_path: Path) -> None:
    cfg = yaml.safe_load((demo_copy / "config.yaml").read_text(encoding="utf-8"))
    cfg["evaluate"].update({"method": "all", "steps": 2, "val_episodes": 3, "val_every": 2, "inner_steps": 1, "maml_episodes": 3,
                            "finetune_steps": 10, "batch_size": 8})  # fmt: skip
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    out = _evaluate(demo_copy, config=config)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = _rows(demo_copy)
    methods = [r["method"] for r in rows]
    assert set(methods) == {"protonet", "simpleshot", "finetune", "maml", "untrained", "nearest-centroid"}
    for name in ("simpleshot", "finetune", "maml"):
        assert f"| {name} | crnn | 5 | 5 | 5 |" in out.stdout
    assert next(r for r in rows if r["method"] == "maml")["episodes"] == "3"


def test_a_hear_encoder_given_as_a_path_is_evaluated(demo_copy: Path) -> None:
    encoder = HERE / "tiny_hear_encoder.py"
    out = _evaluate(demo_copy, "--method", "hear", "--encoder", str(encoder))
    assert out.returncode == 0, out.stderr[-3000:]
    hear = [r for r in _rows(demo_copy) if r["method"] == "hear"]
    assert len(hear) == 1 and hear[0]["backbone"] == "tiny_hear_encoder"
    assert hear[0]["saw_audioset_labels"] == "no" and hear[0]["class_disjoint"] == "yes"
    assert float(hear[0]["mean"]) > 0.2 and hear[0]["episodes"] == "300"
    # the same encoder declared as trained on AudioSet labels: its row is marked, not added
    out = _evaluate(demo_copy, "--method", "hear", "--encoder", str(encoder), "--encoder-saw-audioset-labels", "--encoder-head", "linear")
    assert out.returncode == 0, out.stderr[-3000:]
    hear = [r for r in _rows(demo_copy) if r["method"] == "hear"]
    assert len(hear) == 1 and hear[0]["saw_audioset_labels"] == "yes" and hear[0]["class_disjoint"] == "no"
    assert "yes (not class-disjoint)" in (demo_copy / "eval" / "results.md").read_text(encoding="utf-8")
    out = _evaluate(demo_copy, "--method", "hear", "--encoder", str(HERE / "no_such_encoder.py"))
    assert out.returncode != 0 and "does not exist" in out.stderr and "Traceback" not in out.stderr


def _easyfsl_runnable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two incompatibilities of easyfsl 1.5.0 (its latest release) with today's torch, neither
    about our dataset: it imports torchvision when it loads (without a torchvision matching this
    torch, the import-time stand-in of tests/pipeline/torchvision_stub provides those names), and
    TaskSampler calls ``Sampler.__init__(data_source=None)``, an argument torch removed (2.2
    deprecated it; 2.10+ refuse it): torch's Sampler then gets an ``__init__`` that accepts it."""
    if importlib.util.find_spec("torchvision") is None:
        monkeypatch.syspath_prepend(str(HERE / "torchvision_stub"))
    import inspect

    from torch.utils.data import Sampler

    if "data_source" not in inspect.signature(Sampler.__init__).parameters:

        def accept(self: Any, data_source: Any = None) -> None:
            pass

        monkeypatch.setattr(Sampler, "__init__", accept)


def test_easyfsl_sampler_and_protonet_run_on_a_split_dataset(demo_run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _easyfsl_runnable(monkeypatch)
    from easyfsl.methods import PrototypicalNetworks
    from easyfsl.samplers import TaskSampler
    from torch.utils.data import DataLoader

    from audioset_fewshot.models import build_backbone
    from audioset_fewshot.torchdata import SplitDataset

    test = SplitDataset(demo_run.root, "test")
    sampler = TaskSampler(test, n_way=5, n_shot=5, n_query=5, n_tasks=3)
    loader = DataLoader(test, batch_sampler=sampler, collate_fn=sampler.episodic_collate_fn)
    model = PrototypicalNetworks(build_backbone("crnn", 128, 313, seed=0)).eval()
    seen = 0
    for support, support_labels, query, query_labels, class_ids in loader:
        assert support.shape == (25, 1, 128, 313) and query.shape == (25, 1, 128, 313)
        assert sorted(set(class_ids)) == sorted(class_ids) and len(class_ids) == 5
        model.process_support_set(support, support_labels)
        scores = model(query)
        assert scores.shape == (25, 5) and query_labels.shape == (25,)
        seen += 1
    assert seen == 3
