"""``audioset-fewshot evaluate``: train and evaluate a baseline on fixed test episodes."""

from __future__ import annotations

from pathlib import Path

import click

from audioset_fewshot.cli._common import config_option, hold_root_for_command, resolve_config, root_option
from audioset_fewshot.episodes import write_episodes
from audioset_fewshot.evaluate import METHODS, evaluate


@click.command(name="evaluate")
@config_option
@root_option
@click.option("--method", type=click.Choice(METHODS), default=None, help="Baseline meta-learner.")
@click.option("--steps", type=int, default=None, help="Meta-training steps (protonet).")
@click.option("--n-way", type=int, default=None, help="Classes per training episode.")
@click.option("--k-shot", type=int, default=None, help="Support clips per class in training episodes.")
@click.option("--q-query", type=int, default=None, help="Query clips per class in training episodes.")
@click.option("--learning-rate", type=float, default=None, help="Adam learning rate.")
@click.option("--seed", type=int, default=None, help="Seed of training episodes and weights.")
@click.option("--threads", type=int, default=None, help="torch CPU threads.")
@click.option("--force", is_flag=True, help="Train and evaluate again even when eval/results.json is up to date.")
def command(config_path: Path | None, root: Path | None, method: str | None, steps: int | None, n_way: int | None,
            k_shot: int | None, q_query: int | None, learning_rate: float | None, seed: int | None, threads: int | None,
            force: bool) -> None:  # fmt: skip
    """Train METHOD on the train split and report accuracy +- 95 % CI on the fixed
    test episodes (section 'episodes' of the config; written first if missing)."""
    cfg = resolve_config(config_path, {
        "root": root, "evaluate.method": method, "evaluate.steps": steps, "evaluate.n_way": n_way, "evaluate.k_shot": k_shot,
        "evaluate.q_query": q_query, "evaluate.learning_rate": learning_rate, "evaluate.seed": seed, "evaluate.threads": threads,
    })  # fmt: skip
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
