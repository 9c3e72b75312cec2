"""``audioset-fewshot evaluate``: few-shot methods on the fixed test episodes, one results table."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click

from audioset_fewshot.cli._common import EVALUATE_KEYS, config_option, given_knobs, hold_root_for_command, knob, knobs, resolve_config, root_option
from audioset_fewshot.episodes import choose_episodes
from audioset_fewshot.evaluate import evaluate_methods


@click.command(name="evaluate")
@config_option
@root_option
@knobs(*EVALUATE_KEYS)
@click.option("--force", is_flag=True, help="Train and evaluate again even when a stored row of eval/results.csv is up to date.")
@click.option(
    "--compare-release",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Also evaluate on Google's VGGish embedding release (folder or features.tar.gz) for the root's clips, side by side, "
    "on the clips and episodes both feature sets have (eval/side_by_side.json).",
)
@click.option(
    "--episodes",
    "episodes_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The fixed test episodes: this file (default: the one 'episodes' wrote last, else the config's).",
)
@knob("episodes.split", flag="--test-split")
@knob("episodes.n_way", flag="--test-n-way")
@knob("episodes.k_shot", flag="--test-k-shot")
@knob("episodes.q_query", flag="--test-q-query")
@knob("episodes.count", flag="--test-count")
@knob("episodes.seed", flag="--test-seed")
def command(config_path: Path | None, root: Path | None, force: bool, compare_release: Path | None = None, episodes_file: Path | None = None,
            **knob_values: Any) -> None:  # fmt: skip
    """Train each method asked for (a name, 'all' or a comma-separated list) on the train
    split, keep the checkpoint best on validation episodes, and report accuracy +- 95 % CI
    on fixed test episodes: the file given with --episodes; else the shape the test options
    give (written first if missing); else the file 'episodes' wrote last; else the config's
    section 'episodes' (written first if missing).  The file is named in the output.  Rows
    go to ROOT/eval/results.csv and results.md; a stored row whose inputs did not change is
    reused without training."""
    flags = given_knobs(knob_values)
    cfg = resolve_config(config_path, {"root": root, **flags})
    hold_root_for_command(cfg.root)  # checked, locked and marked before anything is written
    ec, ev = cfg.episodes, cfg.evaluate
    root_path = Path(cfg.root)
    shape = {key.split(".", 1)[1]: flags[key] for key in flags if key.startswith("episodes.")}
    episodes = choose_episodes(root_path, file=episodes_file, shape=shape, defaults=dataclasses.asdict(ec))
    click.echo(
        f"test episodes: {episodes.path} ({episodes.split} split, {episodes.n_way}-way {episodes.k_shot}-shot "
        f"{episodes.q_query}-query, {episodes.count} episodes, seed {episodes.seed})"
    )
    results = evaluate_methods(root_path, episodes=episodes, options=ev, norm=cfg.normalize.mode, force=force)
    for r in results:
        click.echo(r.summary())
    table = root_path / "eval" / "results.md"
    if table.is_file():
        click.echo("")
        click.echo(table.read_text(encoding="utf-8").rstrip())
        click.echo(f"-> {root_path / 'eval' / 'results.csv'}")
    if compare_release is not None:
        from audioset_fewshot.compare import add_release_features, side_by_side

        key = add_release_features(root_path, release=compare_release, workers=cfg.pack.workers)
        both = side_by_side(root_path, episodes=episodes, options=ev, embeddings=key, method=results[0].method, norm=cfg.normalize.mode)
        click.echo(both.summary())
