"""``audioset-fewshot episodes``: write fixed evaluation episodes as JSONL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from audioset_fewshot.cli._common import EPISODES_KEYS, config_option, knobs, root_config, root_option
from audioset_fewshot.episodes import write_episodes


@click.command(name="episodes")
@config_option
@root_option
@knobs(*EPISODES_KEYS)
@click.option("--force", is_flag=True, help="Rewrite the file even when it is up to date.")
def command(config_path: Path | None, root: Path | None, force: bool, **knob_values: Any) -> None:
    """Draw seeded, guard-checked episodes from ROOT/splits.json into ROOT/episodes/."""
    cfg = root_config(config_path, root, knob_values, hold=True)  # the root checked, locked and marked before anything is written
    ec = cfg.episodes
    rec = write_episodes(Path(cfg.root), split=ec.split, n_way=ec.n_way, k_shot=ec.k_shot, q_query=ec.q_query, count=ec.count, seed=ec.seed, force=force)
    click.echo(
        f"{rec.path}: {rec.count} episodes, {rec.split} split, {rec.n_way}-way {rec.k_shot}-shot {rec.q_query}-query, "
        f"seed {rec.seed}, sha256 {rec.episodes_sha256[:12]}, splits {rec.splits_sha256[:12]}"
    )
