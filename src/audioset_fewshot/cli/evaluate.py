"""``audioset-fewshot evaluate``: few-shot methods on the fixed test episodes, one results table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from audioset_fewshot.cli._common import EVALUATE_KEYS, config_option, given_knobs, hold_root_for_command, knobs, resolve_config, root_option
from audioset_fewshot.episodes import write_episodes
from audioset_fewshot.evaluate import evaluate_methods


@click.command(name="evaluate")
@config_option
@root_option
@knobs(*EVALUATE_KEYS)
@click.option("--force", is_flag=True, help="Train and evaluate again even when a stored row of eval/results.csv is up to date.")
@click.option("--compare-release", type=click.Path(exists=True, path_type=Path), default=None,
              help="Also evaluate on Google's VGGish embedding release (folder or features.tar.gz) for the root's clips, side by side, "
                   "on the clips and episodes both feature sets have (eval/side_by_side.json).")
def command(config_path: Path | None, root: Path | None, force: bool, compare_release: Path | None = None, **knob_values: Any) -> None:
    """Train each method asked for (a name, 'all' or a comma-separated list) on the train
    split, keep the checkpoint best on validation episodes, and report accuracy +- 95 % CI on
    the fixed test episodes (section 'episodes' of the config; written first if missing).
    Rows go to ROOT/eval/results.csv and results.md; a stored row whose inputs did not change
    is reused without training."""
    cfg = resolve_config(config_path, {"root": root, **given_knobs(knob_values)})
    hold_root_for_command(cfg.root)  # checked, locked and marked before anything is written
    ec, ev = cfg.episodes, cfg.evaluate
    root_path = Path(cfg.root)
    episodes = write_episodes(root_path, split=ec.split, n_way=ec.n_way, k_shot=ec.k_shot, q_query=ec.q_query, count=ec.count, seed=ec.seed)
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
        both = side_by_side(root_path, episodes=episodes, embeddings=key, method=results[0].method, n_way=ev.n_way, k_shot=ev.k_shot,
                            q_query=ev.q_query, steps=ev.steps, learning_rate=ev.learning_rate, seed=ev.seed, norm=cfg.normalize.mode,
                            threads=ev.threads)
        click.echo(both.summary())
