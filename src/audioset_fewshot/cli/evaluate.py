"""``audioset-fewshot evaluate``: train and evaluate a baseline on fixed test episodes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from audioset_fewshot.cli._common import config_option, hold_root_for_command, resolve_config, root_option
from audioset_fewshot.episodes import choose_episodes
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
@click.option("--episodes", "episodes_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The fixed test episodes: this file (default: the one 'episodes' wrote last, else the config's).")
@click.option("--test-split", type=click.Choice(["train", "val", "test"]), default=None, help="Test episodes from this split.")
@click.option("--test-n-way", type=int, default=None, help="Classes per test episode.")
@click.option("--test-k-shot", type=int, default=None, help="Support clips per class in test episodes.")
@click.option("--test-q-query", type=int, default=None, help="Query clips per class in test episodes.")
@click.option("--test-count", type=int, default=None, help="Number of test episodes.")
@click.option("--test-seed", type=int, default=None, help="Seed of the test episodes.")
def command(config_path: Path | None, root: Path | None, method: str | None, steps: int | None, n_way: int | None,
            k_shot: int | None, q_query: int | None, learning_rate: float | None, seed: int | None, threads: int | None,
            force: bool, episodes_file: Path | None, test_split: str | None, test_n_way: int | None, test_k_shot: int | None,
            test_q_query: int | None, test_count: int | None, test_seed: int | None) -> None:  # fmt: skip
    """Train METHOD on the train split and report accuracy +- 95 % CI on fixed test
    episodes: the file given with --episodes; else the shape the test options give
    (written first if missing); else the file 'episodes' wrote last; else the config's
    section 'episodes' (written first if missing).  The file is named in the output."""
    cfg = resolve_config(config_path, {
        "root": root, "evaluate.method": method, "evaluate.steps": steps, "evaluate.n_way": n_way, "evaluate.k_shot": k_shot,
        "evaluate.q_query": q_query, "evaluate.learning_rate": learning_rate, "evaluate.seed": seed, "evaluate.threads": threads,
    })  # fmt: skip
    hold_root_for_command(cfg.root)  # checked, locked and marked before anything is written
    ec, ev = cfg.episodes, cfg.evaluate
    root_path = Path(cfg.root)
    shape = {k: v for k, v in {"split": test_split, "n_way": test_n_way, "k_shot": test_k_shot, "q_query": test_q_query,
                                "count": test_count, "seed": test_seed}.items() if v is not None}  # fmt: skip
    episodes = choose_episodes(root_path, file=episodes_file, shape=shape, defaults=dataclasses.asdict(ec))
    click.echo(f"test episodes: {episodes.path} ({episodes.split} split, {episodes.n_way}-way {episodes.k_shot}-shot "
               f"{episodes.q_query}-query, {episodes.count} episodes, seed {episodes.seed})")
    result = evaluate(root_path, episodes=episodes, method=ev.method, n_way=ev.n_way, k_shot=ev.k_shot, q_query=ev.q_query,
                      steps=ev.steps, learning_rate=ev.learning_rate, seed=ev.seed, norm=cfg.normalize.mode, threads=ev.threads,
                      force=force)
    click.echo(result.summary())
    click.echo(f"N={result.n_way} K={result.k_shot} Q={result.q_query} T={result.episodes}  "
               f"accuracy {result.mean:.4f} +- {result.ci95:.4f}  splits {result.splits_sha256[:12]}  "
               f"episodes {result.episodes_sha256[:12]}  -> {result.path}")
