"""Run every stage in order; rerun only the stages whose inputs or parameters changed.

``run(config, *, demo=False, until=None, root=None) -> RunReport``

Stages, in data-flow order (:data:`STAGES`): selection, plan, download,
manifest, clean, pack, features, splits, episodes, evaluate, report.

The pipeline owns no logic of its own.  Every stage function records its
parameters and the sha256 of its inputs in its artifact and returns fast when
they are unchanged (:mod:`audioset_fewshot._artifact`); its record says whether
it ran, and the pipeline reports that (``ran`` or ``up to date``) with the time
each stage took.  A stage that ran changes the input hashes of the stages after
it, so they run too; no marker files, no fingerprints of files.  ``until`` stops after the
named stage.  The resolved config is saved to ``ROOT/config.yaml`` and the
run report to ``ROOT/report/run.json``.

``demo=True`` runs the offline demo: the project's media server on 127.0.0.1
(media cache under ``ROOT/.demo-media`` unless ``media_cache`` is given),
demo metadata in the official layout under ``ROOT/demo-metadata``, and a
config sized for it; every demo rule lives in :mod:`audioset_fewshot.demo.session`.
The server's port changes
from run to run; it is no part of any stage's content key (the plan and the
ledger are keyed by IDs and segments), so a second demo run is up to date.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audioset_fewshot import config as config_mod
from audioset_fewshot._io import atomic_write_json
from audioset_fewshot.config import Config
from audioset_fewshot.errors import UsageError, closest
from audioset_fewshot.layout import DatasetLayout

if TYPE_CHECKING:
    from audioset_fewshot.engine import Engine
    from audioset_fewshot.selection import MetadataSelection

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

STAGES: tuple[str, ...] = ("selection", "plan", "download", "manifest", "clean", "pack", "features", "splits", "episodes", "evaluate", "report")

RAN = "ran"
UP_TO_DATE = "up to date"
SKIPPED = "skipped"
RELEASE_KIND = "vggish-release"  # features.kind whose clips come from Google's embedding release


@dataclass(frozen=True)
class StageResult:
    """One stage of a run: ``status`` is ``ran`` or ``up to date``; ``summary`` holds
    the stage's headline numbers; ``artifacts`` the files it owns (relative to the root)."""

    name: str
    status: str
    seconds: float
    summary: Mapping[str, Any] = field(default_factory=dict)
    artifacts: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "seconds": round(self.seconds, 3), "summary": dict(self.summary), "artifacts": list(self.artifacts)}


@dataclass(frozen=True)
class RunReport:
    """What a run did: the root, each stage's result (in order) and the total time."""

    root: Path
    stages: tuple[StageResult, ...]
    until: str | None
    demo: bool
    seconds: float
    setup: Mapping[str, Any] = field(default_factory=dict)  # demo only: media generation and server

    def stage(self, name: str) -> StageResult | None:
        for s in self.stages:
            if s.name == name:
                return s
        return None

    @property
    def ran(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stages if s.status == RAN)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "root": str(self.root),
            "demo": self.demo,
            "until": self.until,
            "seconds": round(self.seconds, 3),
            "setup": dict(self.setup),
            "stages": [s.to_dict() for s in self.stages],
        }


def check_stage(name: str | None) -> str | None:
    """Validate a ``--until`` value; an unknown stage gets the closest names suggested."""
    if name is None:
        return None
    if name not in STAGES:
        sugg = closest(name, STAGES)
        hint = f" Did you mean {sugg[0]!r}?" if sugg else ""
        raise UsageError(f"unknown stage {name!r}: expected one of {', '.join(STAGES)}.{hint}")
    return name


@dataclass(frozen=True)
class _Outcome:
    """What one stage function did: ``ran`` (from the stage's record), its headline
    numbers and the artifacts it owns."""

    ran: bool
    summary: dict[str, Any]
    artifacts: tuple[Path, ...] = ()


# ---------------------------------------------------------------------------------------
# the stage context


@dataclass
class _Context:
    config: Config
    layout: DatasetLayout
    values: dict[str, Any] = field(default_factory=dict)
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)  # closed when the run ends
    say: Callable[[str], None] | None = None  # lines the user should see while the run goes (the engine and its dashboard)


def _engine(ctx: _Context) -> Engine:
    """The run's engine (the ``cluster`` section), opened when a stage first needs it, so a
    Dask cluster starts once per run and not at all for a run with nothing to process."""
    if "engine" not in ctx.values:
        from audioset_fewshot.engine import open_engine

        engine = ctx.stack.enter_context(open_engine(ctx.config.cluster))
        if engine.name != "local":
            line = f"engine: Dask {engine.description}" + (f", dashboard {engine.dashboard_link}" if engine.dashboard_link else "")
            (ctx.say or log.info)(line)
        ctx.values["engine"] = engine
    chosen: Engine = ctx.values["engine"]
    return chosen


def _metadata(ctx: _Context) -> MetadataSelection:
    """The metadata and the class selection, read once per run (the same entry as ``plan``)."""
    if "selection" not in ctx.values:
        from audioset_fewshot.selection import select_from_config

        cfg = ctx.config
        ctx.values["selection"] = select_from_config(cfg.metadata, cfg.selection, sources=cfg.plan.sources)
    chosen: MetadataSelection = ctx.values["selection"]
    return chosen


def _stage_selection(ctx: _Context) -> _Outcome:
    chosen = _metadata(ctx)
    table_rows = 0 if chosen.table is None else len(chosen.table.ytid)
    return _Outcome(True, {"classes": len(chosen.selection.chosen), "excluded": len(chosen.selection.excluded), "segments": int(table_rows)})


def _stage_plan(ctx: _Context) -> _Outcome:
    from audioset_fewshot.plan import plan_from_selection, write_plan

    plan = plan_from_selection(_metadata(ctx), ctx.config.plan)
    ran = write_plan(plan, ctx.layout)
    ctx.values["plan"] = plan
    summary = {"entries": len(plan.entries), "classes": len(plan.targets or {}), "shortfalls": len(plan.shortfalls)}
    return _Outcome(ran, summary, (ctx.layout.plan_file, ctx.layout.plan_meta_file))


def _from_release(ctx: _Context) -> bool:
    return ctx.config.features.kind == RELEASE_KIND


def _stage_obtain_release(ctx: _Context) -> _Outcome:
    """The download stage with features.kind vggish-release: look the plan up in the release."""
    from audioset_fewshot.release.obtain import obtain_from_release

    f = ctx.config.features
    assert f.release is not None  # the config's cross-checks guarantee it
    rep = obtain_from_release(
        ctx.values["plan"], root=ctx.layout.root, release=f.release, workers=ctx.config.pack.workers, metadata_dir=ctx.config.metadata.metadata_dir
    )
    summary = {
        "origin": RELEASE_KIND,
        "obtained": rep.obtained,
        "target": rep.target,
        "obtained_now": rep.obtained if rep.ran else 0,
        "attempts": 0,
        "pauses": 0,
        "failures_by_reason": dict(rep.failures_by_reason),
        "label_disagreements": rep.label_disagreements,
        "release_sha256": rep.content_sha256,
    }
    return _Outcome(rep.ran, summary, (ctx.layout.release_obtained_csv,))


def _stage_download(ctx: _Context) -> _Outcome:
    if _from_release(ctx):
        return _stage_obtain_release(ctx)
    from audioset_fewshot.download.distributed import download_on

    before = _ledger_state(ctx.layout)
    result = download_on(_engine(ctx), ctx.values["plan"], ctx.layout.root, ctx.config.download)
    ctx.values["download"] = result
    summary = {
        "obtained": result.obtained,
        "target": result.target,
        "obtained_now": result.obtained_now,
        "attempts": result.attempts,
        "extractions": result.requests,
        "pauses": result.pauses,
        "failures_by_reason": dict(result.failures_by_reason),
    }
    # the ledger is the download's record: it ran when a clip's status moved (retrying clips
    # that failed transiently, with the same outcome, changes nothing downstream)
    return _Outcome(_ledger_state(ctx.layout) != before, summary, (ctx.layout.ledger_file,))


def _ledger_state(layout: DatasetLayout) -> dict[str, dict[str, int]] | None:
    """``{owner_mid: {status: n}}`` of the ledger (None before the first download)."""
    from audioset_fewshot.download.ledger import Ledger

    if not layout.ledger_file.exists():
        return None
    with Ledger(layout.ledger_file, readonly=True) as ledger:
        return ledger.counts()


def _stage_manifest(ctx: _Context) -> _Outcome:
    from audioset_fewshot.manifest.build import build_manifest

    lay = ctx.layout
    if _from_release(ctx):
        from audioset_fewshot.manifest.release import build_release_manifest

        r = build_release_manifest(lay.root)
        summary = {"clips": r.clips, "classes": r.classes, "unavailable": r.unavailable, "release_sha256": r.release_sha256, "written": len(r.written)}
        return _Outcome(bool(r.written), summary, (lay.release_clips_csv,))
    rec = build_manifest(lay.root)
    summary = {"clips": rec.clips, "classes": rec.classes, "unavailable": rec.unavailable, "clips_sha256": rec.clips_sha256, "written": len(rec.written)}
    return _Outcome(bool(rec.written), summary, (lay.clips_csv, lay.lock_json))


def _no_audio() -> _Outcome:
    return _Outcome(False, {SKIPPED: f"features.kind is {RELEASE_KIND}: no audio"})


def _stage_clean(ctx: _Context) -> _Outcome:
    from audioset_fewshot.process.clean import clean

    if _from_release(ctx):
        return _no_audio()
    rep = clean(ctx.layout.root, ctx.config.clean, engine=_engine(ctx))
    summary = {"clips": len(rep.verdicts), "kept": rep.kept, "rejected": rep.rejected, "dropped": rep.dropped, "by_reason": rep.by_reason}
    return _Outcome(rep.ran, summary, (rep.path,))


def _stage_pack(ctx: _Context) -> _Outcome:
    from audioset_fewshot.process.pack import pack

    if _from_release(ctx):
        return _no_audio()
    rec = pack(ctx.layout.root, ctx.config.pack, engine=_engine(ctx))
    ctx.values["pack"] = rec
    return _Outcome(rec.ran, {"rows": rec.rows, "key": rec.key, "length_actions": dict(rec.length_actions)}, (rec.path / "meta.json",))


def _stage_features(ctx: _Context) -> _Outcome:
    from audioset_fewshot.process.features import features

    f = ctx.config.features
    if _from_release(ctx):
        from audioset_fewshot.release.obtain import release_features

        assert f.release is not None
        rr = release_features(ctx.layout.root, release=f.release, workers=ctx.config.pack.workers, engine=_engine(ctx))
        return _Outcome(rr.ran, {"rows": rr.rows, "key": rr.key, "kind": RELEASE_KIND}, (rr.path / "meta.json",))
    rec = features(ctx.layout.root, f, engine=_engine(ctx))
    return _Outcome(rec.ran, {"rows": rec.rows, "key": rec.key}, (rec.path / "meta.json",))


def _stage_splits(ctx: _Context) -> _Outcome:
    from audioset_fewshot.splits import build_splits

    s = ctx.config.splits
    sp = build_splits(ctx.layout.root, seed=s.seed, ratios=tuple(s.ratios), leakage=s.leakage, group=s.group)
    out: dict[str, Any] = {"classes": sp.sizes(), "sha256": sp.content_sha256}
    if sp.report is not None:
        out["clips_before"] = {k: v.clips for k, v in sp.report.before.items()}
        out["clips_after"] = {k: v.clips for k, v in sp.report.after.items()}
    return _Outcome(sp.ran, out, (ctx.layout.splits_json,))


def _stage_episodes(ctx: _Context) -> _Outcome:
    from audioset_fewshot.episodes import write_episodes

    e = ctx.config.episodes
    ep = write_episodes(ctx.layout.root, split=e.split, n_way=e.n_way, k_shot=e.k_shot, q_query=e.q_query, count=e.count, seed=e.seed)
    ctx.values["episodes"] = ep
    return _Outcome(ep.ran, {"path": _rel(ep.path, ctx.layout.root), "count": ep.count, "sha256": ep.episodes_sha256}, (ep.path,))


def _stage_evaluate(ctx: _Context) -> _Outcome:
    from audioset_fewshot.evaluate import evaluate

    v = ctx.config.evaluate
    res = evaluate(ctx.layout.root, episodes=ctx.values["episodes"], options=v, norm=ctx.config.normalize.mode)
    summary = {
        "method": res.method,
        "accuracy": res.mean,
        "ci95": res.ci95,
        "n_way": res.n_way,
        "k_shot": res.k_shot,
        "q_query": res.q_query,
        "episodes": res.episodes,
        "split": res.split,
    }
    return _Outcome(res.ran, summary, (ctx.layout.eval_results, ctx.layout.eval_dir / "results.csv"))


def _stage_report(ctx: _Context) -> _Outcome:
    from audioset_fewshot.report import build_report

    rec = build_report(ctx.layout.root)
    return _Outcome(rec.ran, {"path": str(rec.path)}, (rec.path,))


_STAGE_FUNCS: dict[str, Callable[[_Context], _Outcome]] = {
    "selection": _stage_selection,
    "plan": _stage_plan,
    "download": _stage_download,
    "manifest": _stage_manifest,
    "clean": _stage_clean,
    "pack": _stage_pack,
    "features": _stage_features,
    "splits": _stage_splits,
    "episodes": _stage_episodes,
    "evaluate": _stage_evaluate,
    "report": _stage_report,
}


# ---------------------------------------------------------------------------------------
# running


def _run_stages(ctx: _Context, until: str | None) -> list[StageResult]:
    from audioset_fewshot._progress import progress_bar

    results: list[StageResult] = []
    last = STAGES.index(until) if until else len(STAGES) - 1
    todo = STAGES[: last + 1]
    with progress_bar(total=len(todo), desc="pipeline", unit="stage", position=0) as bar:
        for name in todo:
            bar.set_postfix_str(name)
            results.append(_run_one(ctx, name))
            bar.update(1)
    return results


def _run_one(ctx: _Context, name: str) -> StageResult:
    t0 = time.perf_counter()
    log.info("stage %s ...", name)
    done = _STAGE_FUNCS[name](ctx)
    seconds = time.perf_counter() - t0
    status = SKIPPED if done.summary.get(SKIPPED) else RAN if done.ran else UP_TO_DATE
    rel = tuple(_rel(p, ctx.layout.root) for p in done.artifacts if p.exists())
    log.info("stage %s: %s in %.2f s", name, status, seconds)
    return StageResult(name, status, seconds, done.summary, rel)


def _rel(p: Path, root: Path) -> str:
    try:
        return p.relative_to(root).as_posix()
    except ValueError:
        return str(p)


def _save_run(layout: DatasetLayout, report: RunReport) -> None:
    atomic_write_json(layout.report_dir / "run.json", report.to_dict())


def run(
    config: Config,
    *,
    demo: bool = False,
    until: str | None = None,
    root: Path | str | None = None,
    media_cache: Path | str | None = None,
    force_root: bool = False,
    say: Callable[[str], None] | None = None,
) -> RunReport:
    """Run the pipeline (see the module docstring); returns what each stage did.

    The root is checked, locked and marked before anything is written under it
    (``force_root``: accept a non-empty folder that is not ours).  ``say``: where lines the
    user should see while the run goes are written (the Dask engine and its dashboard;
    default: the log at INFO)."""
    from audioset_fewshot._root import hold_root

    check_stage(until)
    if root is not None:
        config = config_mod.replace(config, root=str(root))
    with hold_root(config.root, force=force_root):
        if demo or config.demo:  # a demo root (its saved config says demo: true) resumes as a demo
            from audioset_fewshot.demo.session import demo_saved_config, demo_session

            # the media is made before the download; a run that stops earlier needs none
            prepare = until is None or STAGES.index(until) >= STAGES.index("download")
            with demo_session(config, media_cache=media_cache, prepare_media=prepare) as (demo_cfg, setup):
                return _run_config(demo_cfg, until=until, demo=True, setup=setup, saved=demo_saved_config(demo_cfg, config), say=say)
        return _run_config(config, until=until, demo=False, say=say)


def _run_config(config: Config, *, until: str | None, demo: bool, setup: Mapping[str, Any] | None = None, saved: Config | None = None,
                say: Callable[[str], None] | None = None) -> RunReport:  # fmt: skip
    layout = DatasetLayout(Path(config.root))
    layout.root.mkdir(parents=True, exist_ok=True)
    _save_config(layout, saved or config)
    ctx = _Context(config=config, layout=layout, say=say)
    t0 = time.perf_counter()
    with ctx.stack:  # closes the engine (and a cluster it started) however the stages end
        results = _run_stages(ctx, until)
    report = RunReport(root=layout.root, stages=tuple(results), until=until, demo=demo, seconds=time.perf_counter() - t0, setup=dict(setup or {}))
    _save_run(layout, report)
    return report


def _save_config(layout: DatasetLayout, config: Config) -> None:
    """Save the resolved config, its paths relative to the root (or absolute), so that
    ``--root ROOT`` resumes it from any folder."""
    config_mod.write_config(layout.config_file, config, root=layout.root)
