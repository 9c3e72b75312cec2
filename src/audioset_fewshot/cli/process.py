"""``audioset-fewshot process``: clean, pack and compute log-mel features.

Stages run in order (``--stage all``) or one at a time; each is a no-op when its
inputs and parameters are unchanged.  ``--workers`` sets the decode processes of
clean and pack; ``--engine dask`` runs the chunks of every stage on a Dask cluster
(the ``cluster`` section, docs/cluster.md) with the same result.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from audioset_fewshot.cli._common import CLEAN_KEYS, FEATURES_KEYS, PACK_KEYS, cluster_options, config_option, knob, knobs, root_config, root_option

if TYPE_CHECKING:
    from audioset_fewshot.config import Config
    from audioset_fewshot.engine import Engine

STAGES = ("clean", "pack", "features", "all")
T = TypeVar("T")


@click.command(name="process")
@config_option
@root_option
@click.option("--stage", type=click.Choice(STAGES), default="all", show_default=True, help="Which stage to run.")
@knob("clean.workers", flag="--workers", also=("pack.workers",), help="Decode processes of clean and pack.")
@knobs(*(k for k in CLEAN_KEYS if k != "clean.workers"), *(k for k in PACK_KEYS if k != "pack.workers"), *FEATURES_KEYS)
@cluster_options
@click.option("--force", is_flag=True, help="Redo the chosen stages even when up to date.")
def command(config_path: Path | None, root: Path | None, stage: str, force: bool, **knob_values: Any) -> None:
    """Clean the downloaded clips, pack them into one array and compute log-mel features."""
    from audioset_fewshot.engine import open_engine

    cfg = root_config(config_path, root, knob_values, hold=True)  # the root checked, locked and marked before anything is written
    root_dir = Path(cfg.root)
    run = {"clean", "pack", "features"} if stage == "all" else {stage}
    with open_engine(cfg.cluster) as engine:
        if engine.name != "local":
            dashboard = f", dashboard {engine.dashboard_link}" if engine.dashboard_link else ""
            click.echo(f"engine: Dask {engine.description}{dashboard}", err=True)
        _run_stages(cfg, root_dir, run, force=force, engine=engine)


def _run_stages(cfg: Config, root_dir: Path, run: set[str], *, force: bool, engine: Engine) -> None:
    from audioset_fewshot.process import clean, features, pack

    if "clean" in run:
        rep, seconds = _timed(lambda: clean(root_dir, cfg.clean, force=force, engine=engine))
        reasons = ", ".join(f"{k} {v}" for k, v in rep.by_reason.items())
        click.echo(
            f"clean: {len(rep.verdicts)} clips, {rep.kept} kept, {rep.rejected} rejected, {rep.dropped} dropped "
            f"(policy {cfg.clean.policy}) [{reasons}] in {seconds:.1f} s -> {rep.path}"
        )
    if "pack" in run:
        pk, seconds = _timed(lambda: pack(root_dir, cfg.pack, force=force, engine=engine))
        actions = ", ".join(f"{k} {v}" for k, v in pk.length_actions.items())
        dropped = f", {len(pk.dropped_by_length)} dropped as too short" if pk.dropped_by_length else ""
        click.echo(f"pack: {pk.rows} rows x {pk.samples} samples {pk.dtype} at {pk.sample_rate_hz} Hz [{actions}]{dropped} in {seconds:.1f} s -> {pk.path}")
    if "features" in run:
        fr, seconds = _timed(lambda: features(root_dir, cfg.features, force=force, engine=engine))
        extra = f"; per-file copies in {fr.per_file_dir}" if fr.per_file_dir else ""
        click.echo(f"features: {fr.rows} x {fr.n_mels} x {fr.frames} log-mel (key {fr.key}) in {seconds:.1f} s -> {fr.path}{extra}")


def _timed(step: Callable[[], T]) -> tuple[T, float]:
    """``step()`` and the seconds it took."""
    t0 = time.perf_counter()
    out = step()
    return out, time.perf_counter() - t0
