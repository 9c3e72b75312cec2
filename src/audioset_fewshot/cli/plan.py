"""``audioset-fewshot plan``: write the seeded sampling plan of a dataset root."""

from __future__ import annotations

from pathlib import Path

import click

from audioset_fewshot.cli._common import config_option, hold_root_for_command, metadata_dir_option, resolve_config, root_option
from audioset_fewshot.config import SOURCES
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.plan import plan_from_config, write_plan


@click.command(name="plan")
@config_option
@root_option
@metadata_dir_option
@click.option("--seed", type=int, default=None, help="Seed of the candidate order.")
@click.option("--max-per-class", type=int, default=None, help="Clips to obtain per class.")
@click.option("--sources", type=click.Choice(SOURCES), multiple=True, help="Segment lists to draw from (repeat the flag).")
@click.option("--owner-policy", type=click.Choice(["fewest-candidates", "first-label"]), default=None, help="Which selected label owns a multi-label clip.")
@click.option("--shard", default=None, help="I/N: take only shard I of N (split by YouTube ID).")
@click.option("--min-quality", type=float, default=None, help="Minimum QA rate of a class (0..1).")
@click.option("--all-levels", is_flag=True, default=None, help="Also select non-leaf classes.")
@click.option("--include", multiple=True, help="Class name or MID to force in (repeatable).")
@click.option("--exclude", multiple=True, help="Class name or MID to leave out (repeatable).")
def command(config_path: Path | None, root: Path | None, metadata_dir: Path | None, seed: int | None, max_per_class: int | None,
            sources: tuple[str, ...], owner_policy: str | None, shard: str | None, min_quality: float | None, all_levels: bool | None,
            include: tuple[str, ...], exclude: tuple[str, ...]) -> None:  # fmt: skip
    """Write ROOT/plan/plan.csv + plan.json: every owned candidate of each class in a seeded order."""
    cfg = resolve_config(
        config_path,
        {
            "root": root, "metadata.metadata_dir": metadata_dir, "plan.seed": seed, "plan.max_per_class": max_per_class,
            "plan.sources": list(sources) or None, "plan.owner_policy": owner_policy, "plan.shard": shard,
            "selection.min_quality": min_quality, "selection.all_levels": all_levels or None,
            "selection.include": list(include) or None, "selection.exclude": list(exclude) or None,
        },
    )  # fmt: skip
    hold_root_for_command(cfg.root)  # checked, locked and marked before anything is written
    layout = DatasetLayout(Path(cfg.root))
    plan = plan_from_config(cfg)
    written = write_plan(plan, layout)
    n_classes = len(plan.classes)
    click.echo(f"{'wrote' if written else 'unchanged:'} {layout.plan_file} ({len(plan.entries)} candidates for {n_classes} classes, hash {plan.content_hash[:12]})")
    if plan.shortfalls:
        click.echo(f"{len(plan.shortfalls)} classes have fewer candidates than their target:")
        for mid, sf in list(plan.shortfalls.items())[:20]:
            click.echo(f"  {mid}: {sf['candidates']} < {sf['target']}")
        if len(plan.shortfalls) > 20:
            click.echo(f"  ... and {len(plan.shortfalls) - 20} more (see {layout.plan_meta_file})")
