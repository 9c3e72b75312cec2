"""``audioset-fewshot splits``: class-disjoint meta-splits with a leakage policy.

On a dataset root it writes ``ROOT/splits.json``; with ``--metadata-dir`` it
previews the split of the classes the selection would choose, over every
candidate segment of the metadata, and writes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from audioset_fewshot.cli._common import (
    SELECTION_KEYS,
    SPLITS_KEYS,
    config_option,
    echo_json,
    format_option,
    given_knobs,
    hold_root_for_command,
    knob,
    knobs,
    resolve_config,
    root_option,
)
from audioset_fewshot.errors import UsageError
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.splits import SPLITS, MetaSplits, build_splits, splits_from_metadata


def render_table(splits: MetaSplits, *, report: bool) -> str:
    sizes = splits.sizes()
    lines = [
        f"seed {splits.seed}, ratios {'/'.join(f'{r:g}' for r in splits.ratios)}, leakage {splits.leakage}, "
        f"group {splits.group or 'none'}, hash {splits.content_sha256[:12]}",
        "split  classes  clips",
    ]
    for s in SPLITS:
        lines.append(f"{s:<6} {sizes[s]:>7}  {len(splits.pool_ids(s)):>5}")
    if report and splits.report is not None:
        rep = splits.report
        lines.append(f"leakage ({rep.multi_label_fraction:.1%} of candidate clips carry two or more selected labels):")
        lines.append("split  policy     clips  leaky  leaky%  ytids shared with other splits")
        for s in SPLITS:
            for label, st in (("none", rep.before[s]), (splits.leakage, rep.after[s])):
                lines.append(f"{s:<6} {label:<9} {st.clips:>6} {st.leaky_clips:>6} {st.leaky_fraction:>6.1%} {st.shared_ytids:>6}")
        lines.append("classes per split:")
        for s in SPLITS:
            lines.append(f"  {s}: " + "; ".join(c.name or c.mid for c in splits.classes[s]))
    return "\n".join(lines)


@click.command(name="splits")
@config_option
@root_option
@knobs("metadata.metadata_dir", *SPLITS_KEYS)
@click.option("--report", is_flag=True, help="Show the leakage before and after the policy, and the classes of each split.")
@format_option("table", "json")
@click.option("--force", is_flag=True, help="Rewrite splits.json even when it is up to date.")
@knob("plan.sources", help="With --metadata-dir: segment lists to use (repeatable).")
@knobs(*SELECTION_KEYS)
def command(config_path: Path | None, root: Path | None, report: bool, fmt: str, force: bool, **knob_values: Any) -> None:
    """Split the classes into class-disjoint train / val / test without label leakage.

    The selection knobs apply to the --metadata-dir preview."""
    flags = given_knobs(knob_values)
    if "splits.ratios" in flags and len(flags["splits.ratios"]) != 3:
        raise UsageError(f"--ratios: expected three comma-separated fractions such as 0.7,0.1,0.2, got {flags['splits.ratios']!r}")
    cfg = resolve_config(config_path, {"root": root, **flags})
    metadata_dir = flags.get("metadata.metadata_dir")
    if metadata_dir is None:
        hold_root_for_command(cfg.root)  # checked, locked and marked before anything is written
    sc = cfg.splits
    grp = sc.group
    if metadata_dir is not None:
        mc, sel = cfg.metadata, cfg.selection
        splits = splits_from_metadata(
            metadata_dir=mc.metadata_dir, cache_dir=mc.cache_dir, urls=mc.urls, sources=cfg.plan.sources,
            min_quality=sel.min_quality, all_levels=sel.all_levels, include=sel.include, exclude=sel.exclude,
            seed=sc.seed, ratios=sc.ratios, leakage=sc.leakage, group=grp,
        )  # fmt: skip
        where = f"preview over the candidates in {metadata_dir} (nothing written)"
    else:
        layout = DatasetLayout(Path(cfg.root))
        splits = build_splits(layout.root, seed=sc.seed, ratios=sc.ratios, leakage=sc.leakage, group=grp, force=force)
        where = str(layout.splits_json)
    if fmt == "json":
        echo_json(splits.to_dict(include_pools=False))
        return
    click.echo(where)
    click.echo(render_table(splits, report=report))
