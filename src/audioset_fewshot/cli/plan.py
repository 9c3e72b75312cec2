"""``audioset-fewshot plan``: write the seeded sampling plan of a dataset root."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from audioset_fewshot.cli._common import PLAN_KEYS, SELECTION_KEYS, config_option, knobs, root_config, root_option
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.plan import plan_from_config, write_plan


@click.command(name="plan")
@config_option
@root_option
@knobs("metadata.metadata_dir", *PLAN_KEYS, *SELECTION_KEYS)
def command(config_path: Path | None, root: Path | None, **knob_values: Any) -> None:
    """Write ROOT/plan/plan.csv + plan.json: every owned candidate of each class in a seeded order."""
    cfg = root_config(config_path, root, knob_values, hold=True)  # the root checked, locked and marked before anything is written
    layout = DatasetLayout(Path(cfg.root))
    plan = plan_from_config(cfg)
    written = write_plan(plan, layout)
    n_classes = len(plan.classes)
    click.echo(
        f"{'wrote' if written else 'unchanged:'} {layout.plan_file} ({len(plan.entries)} candidates for {n_classes} classes, hash {plan.content_hash[:12]})"
    )
    if plan.shortfalls:
        click.echo(f"{len(plan.shortfalls)} classes have fewer candidates than their target:")
        for mid, sf in list(plan.shortfalls.items())[:20]:
            click.echo(f"  {mid}: {sf['candidates']} < {sf['target']}")
        if len(plan.shortfalls) > 20:
            click.echo(f"  ... and {len(plan.shortfalls) - 20} more (see {layout.plan_meta_file})")
