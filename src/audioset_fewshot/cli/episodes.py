"""``audioset-fewshot episodes``: write fixed evaluation episodes as JSONL."""

from __future__ import annotations

from pathlib import Path

import click

from audioset_fewshot.cli._common import config_option, hold_root_for_command, resolve_config, root_option
from audioset_fewshot.episodes import write_episodes


@click.command(name="episodes")
@config_option
@root_option
@click.option("--split", type=click.Choice(["train", "val", "test"]), default=None, help="Split to draw from (default test).")
@click.option("--n-way", type=int, default=None, help="Classes per episode.")
@click.option("--k-shot", type=int, default=None, help="Support clips per class.")
@click.option("--q-query", type=int, default=None, help="Query clips per class.")
@click.option("--count", type=int, default=None, help="Number of episodes.")
@click.option("--seed", type=int, default=None, help="Seed of the episodes.")
@click.option("--force", is_flag=True, help="Rewrite the file even when it is up to date.")
def command(config_path: Path | None, root: Path | None, split: str | None, n_way: int | None, k_shot: int | None,
            q_query: int | None, count: int | None, seed: int | None, force: bool) -> None:  # fmt: skip
    """Draw seeded, guard-checked episodes from ROOT/splits.json into ROOT/episodes/."""
    cfg = resolve_config(config_path, {
        "root": root, "episodes.split": split, "episodes.n_way": n_way, "episodes.k_shot": k_shot,
        "episodes.q_query": q_query, "episodes.count": count, "episodes.seed": seed,
    })  # fmt: skip
    hold_root_for_command(cfg.root)  # checked, locked and marked before anything is written
    ec = cfg.episodes
    rec = write_episodes(Path(cfg.root), split=ec.split, n_way=ec.n_way, k_shot=ec.k_shot, q_query=ec.q_query,
                         count=ec.count, seed=ec.seed, force=force)
    click.echo(f"{rec.path}: {rec.count} episodes, {rec.split} split, {rec.n_way}-way {rec.k_shot}-shot {rec.q_query}-query, "
               f"seed {rec.seed}, sha256 {rec.episodes_sha256[:12]}, splits {rec.splits_sha256[:12]}")
