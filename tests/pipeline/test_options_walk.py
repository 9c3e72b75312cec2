"""``run`` honours every knob its stage commands honour: every field of every config
section, set to a value other than its default, reaches the stage function the
pipeline calls for it."""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pytest

from audioset_fewshot import pipeline
from audioset_fewshot.config import Config, config_from_dict
from audioset_fewshot.layout import DatasetLayout

# values the generic rule below cannot make (syntax or cross-field rules of their own)
SPECIAL: dict[str, Any] = {
    "splits.ratios": [0.6, 0.2, 0.2],
    "plan.shard": "1/3",
    "plan.sources": ["balanced", "eval"],
    "download.min_free": "3GB",
    "download.max_per_hour": 120.0,
    "download.min_interval_s": 2.0,
    "download.cookies_from_browser": None,  # exclusive with cookies, which the walk sets
    "download.cookies": "/tmp/cookies.txt",
    "download.origins": ["youtube", "/tmp/audioset-copy"],
    "download.proxy": "http://127.0.0.1:3128",
    "download.js_runtimes": ["node"],
    "download.remote_components": ["ejs:github"],
    "download.extractor_args": {"youtube": {"player_client": ["mweb"]}},
    "download.ytdlp": {"geo_bypass": False},
    "download.sessions": [],  # exclusive with download.cookies, which the walk sets
    "features.kind": "logmel",  # the default; vggish-release takes another branch (no audio stages)
    "cluster.engine": "dask",
    "cluster.address": "tcp://127.0.0.1:8786",
    "cluster.jobqueue": None,  # exclusive with address, which the walk sets
    "cluster.job_memory": "16GB",
    "cluster.job_walltime": "02:00:00",
    "metadata.urls": {"balanced": "http://127.0.0.1:1/b.csv", "eval": "http://127.0.0.1:1/e.csv", "unbalanced": "http://127.0.0.1:1/u.csv"},
}
# a stage function that takes keywords instead of the section: config field -> its keyword
KEYWORD = {"normalize.mode": "norm"}
# fields that are not any stage's business in run (and why)
NOT_RUN: dict[str, str] = {
    "download.cookies_from_browser": "exclusive with download.cookies; the download section is passed whole",
    "download.sessions": "exclusive with download.cookies; the download section is passed whole",
    "features.kind": "chooses the branch (log-mel or the VGGish release); the features section is passed whole",
    "cluster.jobqueue": "exclusive with cluster.address; the cluster section is passed whole",
}


def _other(key: str, f: dataclasses.Field[Any], tp: Any, default: Any) -> Any:
    if key in SPECIAL:
        return SPECIAL[key]
    args = get_args(tp)
    if get_origin(tp) in (typing.Union, types.UnionType):
        tp = next(a for a in args if a is not type(None))
        args = get_args(tp)
    lo, hi = f.metadata.get("min"), f.metadata.get("max")
    if tp is bool:
        return not default
    if get_origin(tp) is Literal:
        return next(c for c in args if c != default)
    if tp is int:
        base = default if default is not None else 1
        return base + 1 if hi is None or base + 1 <= hi else base - 1
    if tp is float:
        base = default if default is not None else 1.0
        cand = base * 0.5 if base else 0.25
        if lo is not None and cand < lo:
            cand = base + 0.5
        if hi is not None and cand > hi:
            cand = (base + (lo or 0.0)) / 2
        return cand
    if tp is str:
        return f"{default or ''}x"
    if get_origin(tp) is list:
        (item,) = get_args(tp)
        return ["Dog"] if item is str else [0.5]
    raise AssertionError(f"no other value for {key} ({tp})")


def walked_config() -> Config:
    data: dict[str, Any] = {"root": "walk-root"}
    for section, cls in typing.get_type_hints(Config).items():
        if not dataclasses.is_dataclass(cls):
            continue  # root, demo: not a stage's section
        hints = typing.get_type_hints(cls)
        body = {}
        for f in dataclasses.fields(cls):
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
            body[f.name] = _other(f"{section}.{f.name}", f, hints[f.name], default)
        data[section] = body
    cfg = config_from_dict(data)
    defaults = Config()
    for section in data:
        if section == "root":
            continue  # the only top-level knob set here
        for f in dataclasses.fields(getattr(cfg, section)):
            key = f"{section}.{f.name}"
            if key not in NOT_RUN:
                assert getattr(getattr(cfg, section), f.name) != getattr(getattr(defaults, section), f.name), f"{key} kept its default"
    return cfg


class _Called(Exception):
    def __init__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        super().__init__("called")
        self.args_, self.kwargs = args, kwargs


def _recorder(*args: Any, **kwargs: Any) -> Any:
    raise _Called(args, kwargs)


# stage -> (module, function the pipeline calls, the sections it must receive)
TARGETS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "selection": ("audioset_fewshot.selection", "select_from_config", ("metadata", "selection")),
    "plan": ("audioset_fewshot.plan", "plan_from_selection", ("plan",)),
    "download": ("audioset_fewshot.download.distributed", "download_on", ("download",)),
    "clean": ("audioset_fewshot.process.clean", "clean", ("clean",)),
    "pack": ("audioset_fewshot.process.pack", "pack", ("pack",)),
    "features": ("audioset_fewshot.process.features", "features", ("features",)),
    "splits": ("audioset_fewshot.splits", "build_splits", ("splits",)),
    "episodes": ("audioset_fewshot.episodes", "write_episodes", ("episodes",)),
    "evaluate": ("audioset_fewshot.evaluate", "evaluate", ("evaluate", "normalize")),
    # the run's engine is opened from the cluster section when the first stage needs it
    "clean:engine": ("audioset_fewshot.engine", "open_engine", ("cluster",)),
}


def _received(call: _Called, section: str, field: str, cfg: Config) -> Any:
    """What the stage function got for ``section.field``: from the section object passed
    (as a whole), or from the keyword of that name."""
    options = getattr(cfg, section)
    for value in (*call.args_, *call.kwargs.values()):
        if type(value) is type(options):
            return getattr(value, field)
    name = KEYWORD.get(f"{section}.{field}", field)
    if name not in call.kwargs:
        raise AssertionError(f"the pipeline does not pass {section}.{field} on (no {type(options).__name__}, no keyword {name!r})")
    value = call.kwargs[name]
    return list(value) if isinstance(value, tuple) else value


def test_every_field_of_every_section_reaches_its_stage(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import importlib

    cfg = walked_config()
    covered: set[str] = set()
    for stage, (module, func, sections) in TARGETS.items():
        monkeypatch.setattr(importlib.import_module(module), func, _recorder)
        ctx = pipeline._Context(config=cfg, layout=DatasetLayout(tmp_path))
        ctx.values.update(plan=object(), episodes=object())
        stage, _, hook = stage.partition(":")
        if not hook:  # the stage's own function is the recorder: no engine is opened
            from audioset_fewshot.engine import LOCAL

            ctx.values["engine"] = LOCAL
        if stage != "selection":
            ctx.values["selection"] = object()
        with pytest.raises(_Called) as caught:
            pipeline._STAGE_FUNCS[stage](ctx)
        for section in sections:
            for f in dataclasses.fields(getattr(cfg, section)):
                got = _received(caught.value, section, f.name, cfg)
                assert got == getattr(getattr(cfg, section), f.name), f"{stage}: {section}.{f.name} arrives as {got!r}"
                covered.add(section)
        monkeypatch.undo()
    every = {name for name, tp in typing.get_type_hints(Config).items() if dataclasses.is_dataclass(tp)}
    assert covered == every, f"sections no stage receives: {sorted(every - covered)}"
