"""``audioset-fewshot evaluate``: few-shot methods on the fixed test episodes, one results table."""

from __future__ import annotations

from pathlib import Path

import click

from audioset_fewshot.cli._common import config_option, hold_root_for_command, resolve_config, root_option
from audioset_fewshot.episodes import write_episodes
from audioset_fewshot.evaluate import BACKBONES, CHOICES, evaluate_methods


@click.command(name="evaluate")
@config_option
@root_option
@click.option("--method", default=None, help=f"One of {', '.join(CHOICES)}, or a comma-separated list.")
@click.option("--backbone", type=click.Choice(BACKBONES), default=None, help="Network of the trained methods.")
@click.option("--steps", type=int, default=None, help="Training steps.")
@click.option("--max-seconds", type=float, default=None, help="Wall-clock limit of one method's training.")
@click.option("--n-way", type=int, default=None, help="Classes per training episode.")
@click.option("--k-shot", type=int, default=None, help="Support clips per class in training episodes.")
@click.option("--q-query", type=int, default=None, help="Query clips per class in training episodes.")
@click.option("--learning-rate", type=float, default=None, help="Adam learning rate.")
@click.option("--piece-seconds", type=float, default=None, help="Cut clips into pieces (MetaAudio: 5); 0 = whole clips.")
@click.option("--val-episodes", type=int, default=None, help="Validation episodes for checkpoint selection.")
@click.option("--encoder", default=None, help="Outside encoder (method hear): a module name or a .py file in the HEAR API.")
@click.option("--encoder-weights", default=None, help="Path given to the encoder's load_model.")
@click.option("--encoder-head", type=click.Choice(["nearest-centroid", "linear"]), default=None, help="Classifier on the encoder's embeddings.")
@click.option("--encoder-saw-audioset-labels", is_flag=True, default=None, help="Declare that the encoder was trained on AudioSet labels.")
@click.option("--seed", type=int, default=None, help="Seed of training episodes and weights.")
@click.option("--threads", type=int, default=None, help="torch CPU threads.")
@click.option("--force", is_flag=True, help="Train and evaluate again even when a stored row is up to date.")
def command(config_path: Path | None, root: Path | None, method: str | None, backbone: str | None, steps: int | None,
            max_seconds: float | None, n_way: int | None, k_shot: int | None, q_query: int | None, learning_rate: float | None,
            piece_seconds: float | None, val_episodes: int | None, encoder: str | None, encoder_weights: str | None,
            encoder_head: str | None, encoder_saw_audioset_labels: bool | None, seed: int | None, threads: int | None,
            force: bool) -> None:  # fmt: skip
    """Train METHOD on the train split (checkpoint chosen on val) and report accuracy
    +- 95 % CI on the fixed test episodes (section 'episodes' of the config; written
    first if missing).  Rows go to ROOT/eval/results.csv and results.md."""
    cfg = resolve_config(config_path, {
        "root": root, "evaluate.method": method, "evaluate.backbone": backbone, "evaluate.steps": steps,
        "evaluate.max_seconds": max_seconds, "evaluate.n_way": n_way, "evaluate.k_shot": k_shot, "evaluate.q_query": q_query,
        "evaluate.learning_rate": learning_rate, "evaluate.piece_seconds": piece_seconds, "evaluate.val_episodes": val_episodes,
        "evaluate.encoder": encoder, "evaluate.encoder_weights": encoder_weights, "evaluate.encoder_head": encoder_head,
        "evaluate.encoder_saw_audioset_labels": encoder_saw_audioset_labels or None, "evaluate.seed": seed, "evaluate.threads": threads,
    })  # fmt: skip
    hold_root_for_command(cfg.root)  # checked, locked and marked before anything is written
    ec = cfg.episodes
    root_path = Path(cfg.root)
    episodes = write_episodes(root_path, split=ec.split, n_way=ec.n_way, k_shot=ec.k_shot, q_query=ec.q_query, count=ec.count, seed=ec.seed)
    results = evaluate_methods(root_path, episodes=episodes, options=cfg.evaluate, norm=cfg.normalize.mode, force=force)
    for r in results:
        click.echo(r.summary())
    table = root_path / "eval" / "results.md"
    if table.is_file():
        click.echo("")
        click.echo(table.read_text(encoding="utf-8").rstrip())
        click.echo(f"-> {root_path / 'eval' / 'results.csv'}")
