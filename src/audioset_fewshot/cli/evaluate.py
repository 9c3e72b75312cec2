"""``audioset-fewshot evaluate``: train and evaluate a baseline on fixed test episodes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from audioset_fewshot.cli._common import EVALUATE_KEYS, config_option, given_knobs, hold_root_for_command, knobs, resolve_config, root_option
from audioset_fewshot.episodes import write_episodes
from audioset_fewshot.evaluate import evaluate


@click.command(name="evaluate")
@config_option
@root_option
@knobs(*EVALUATE_KEYS)
@click.option("--force", is_flag=True, help="Train and evaluate again even when eval/results.json is up to date.")
@click.option("--compare-release", type=click.Path(exists=True, path_type=Path), default=None,
              help="Also evaluate on Google's VGGish embedding release (folder or features.tar.gz) for the root's clips, side by side, "
                   "on the clips and episodes both feature sets have (eval/side_by_side.json).")
def command(config_path: Path | None, root: Path | None, force: bool, compare_release: Path | None = None, **knob_values: Any) -> None:
    """Train METHOD on the train split and report accuracy +- 95 % CI on the fixed
    test episodes (section 'episodes' of the config; written first if missing)."""
    cfg = resolve_config(config_path, {"root": root, **given_knobs(knob_values)})
    hold_root_for_command(cfg.root)  # checked, locked and marked before anything is written
    ec, ev = cfg.episodes, cfg.evaluate
    root_path = Path(cfg.root)
    episodes = write_episodes(root_path, split=ec.split, n_way=ec.n_way, k_shot=ec.k_shot, q_query=ec.q_query, count=ec.count, seed=ec.seed)
    result = evaluate(root_path, episodes=episodes, method=ev.method, n_way=ev.n_way, k_shot=ev.k_shot, q_query=ev.q_query,
                      steps=ev.steps, learning_rate=ev.learning_rate, seed=ev.seed, norm=cfg.normalize.mode, threads=ev.threads,
                      force=force)
    click.echo(result.summary())
    click.echo(f"N={result.n_way} K={result.k_shot} Q={result.q_query} T={result.episodes}  "
               f"accuracy {result.mean:.4f} +- {result.ci95:.4f}  splits {result.splits_sha256[:12]}  "
               f"episodes {result.episodes_sha256[:12]}  -> {result.path}")
    if compare_release is not None:
        from audioset_fewshot.compare import add_release_features, side_by_side

        key = add_release_features(root_path, release=compare_release, workers=cfg.pack.workers)
        both = side_by_side(root_path, episodes=episodes, embeddings=key, method=ev.method, n_way=ev.n_way, k_shot=ev.k_shot,
                            q_query=ev.q_query, steps=ev.steps, learning_rate=ev.learning_rate, seed=ev.seed, norm=cfg.normalize.mode,
                            threads=ev.threads)
        click.echo(both.summary())
