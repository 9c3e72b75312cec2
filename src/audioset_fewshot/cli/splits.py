"""``audioset-fewshot splits``: class-disjoint meta-splits with a leakage policy.

On a dataset root it writes ``ROOT/splits.json``; with ``--metadata-dir`` it
previews the split of the classes the selection would choose, over every
candidate segment of the metadata, and writes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from audioset_fewshot.cli._common import config_option, hold_root_for_command, metadata_dir_option, resolve_config, root_option
from audioset_fewshot.config import SOURCES
from audioset_fewshot.errors import UsageError
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.splits import GROUPS, LEAKAGE_POLICIES, SPLITS, MetaSplits, build_splits, splits_from_metadata


def _ratios(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",")]
    except ValueError as err:
        raise UsageError(f"--ratios: expected three comma-separated fractions such as 0.7,0.1,0.2, got {text!r}") from err


def render_table(splits: MetaSplits, *, report: bool) -> str:
    sizes = splits.sizes()
    lines = [f"seed {splits.seed}, ratios {'/'.join(f'{r:g}' for r in splits.ratios)}, leakage {splits.leakage}, "
             f"group {splits.group or 'none'}, hash {splits.content_sha256[:12]}",
             "split  classes  clips"]
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
@metadata_dir_option
@click.option("--seed", type=int, default=None, help="Seed of the class split.")
@click.option("--ratios", default=None, help="Train,val,test class fractions (default 0.7,0.1,0.2).")
@click.option("--leakage", type=click.Choice(LEAKAGE_POLICIES), default=None, help="How clips carrying labels of several splits are handled.")
@click.option("--group", type=click.Choice((*GROUPS, "none")), default=None, help="Keep ontology siblings together, or stratify by top-level category.")
@click.option("--report", is_flag=True, help="Show the leakage before and after the policy, and the classes of each split.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", help="Output format.")
@click.option("--force", is_flag=True, help="Rewrite splits.json even when it is up to date.")
@click.option("--sources", type=click.Choice(SOURCES), multiple=True, help="With --metadata-dir: segment lists to use (repeatable).")
@click.option("--min-quality", type=float, default=None, help="With --metadata-dir: minimum QA rate of a class (0..1).")
@click.option("--all-levels", is_flag=True, default=None, help="With --metadata-dir: also select non-leaf classes.")
@click.option("--include", multiple=True, help="With --metadata-dir: class name or MID to force in (repeatable).")
@click.option("--exclude", multiple=True, help="With --metadata-dir: class name or MID to leave out (repeatable).")
def command(config_path: Path | None, root: Path | None, metadata_dir: Path | None, seed: int | None, ratios: str | None,
            leakage: str | None, group: str | None, report: bool, fmt: str, force: bool, sources: tuple[str, ...],
            min_quality: float | None, all_levels: bool | None, include: tuple[str, ...], exclude: tuple[str, ...]) -> None:  # fmt: skip
    """Split the classes into class-disjoint train / val / test without label leakage."""
    cfg = resolve_config(config_path, {
        "root": root, "metadata.metadata_dir": metadata_dir, "splits.seed": seed, "splits.ratios": _ratios(ratios),
        "splits.leakage": leakage, "plan.sources": list(sources) or None, "selection.min_quality": min_quality,
        "selection.all_levels": all_levels or None, "selection.include": list(include) or None,
        "selection.exclude": list(exclude) or None,
    })  # fmt: skip
    if metadata_dir is None:
        hold_root_for_command(cfg.root)  # checked, locked and marked before anything is written
    sc = cfg.splits
    grp = sc.group if group is None else (None if group == "none" else group)
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
        click.echo(json.dumps(splits.to_dict(include_pools=False), sort_keys=True, indent=2))
        return
    click.echo(where)
    click.echo(render_table(splits, report=report))
