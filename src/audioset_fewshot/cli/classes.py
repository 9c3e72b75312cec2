"""``audioset-fewshot classes``: choose AudioSet classes and explain why each is in or out.

    audioset-fewshot classes --metadata-dir ../shared/audioset-metadata
    audioset-fewshot classes --min-quality 0.9 --format json --no-counts
    audioset-fewshot classes --explain Speech

Per-class candidate counts per segment list need the lists: ``--metadata-dir
DIR`` reads local copies (the offline path); without it they are fetched once
into the cache from ``metadata.urls``.  ``--no-counts`` skips them.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import click

from audioset_fewshot.cli._common import SELECTION_KEYS, config_option, format_option, given_knobs, knob, knobs, resolve_config
from audioset_fewshot.config import SOURCES
from audioset_fewshot.errors import MetadataError
from audioset_fewshot.selection import ClassSelection, select_from_config


@click.command(name="classes")
@config_option
@knobs(*SELECTION_KEYS)
@click.option("--explain", "explain", default=None, metavar="NAME", help="Say why this class is in or out, then stop.")
@click.option("--all", "show_all", is_flag=True, help="Also list every class left out, with the reason.")
@knob("metadata.metadata_dir")
@knob("plan.sources", help="Segment lists to count candidates in (repeatable or comma-separated).")
@click.option("--no-counts", is_flag=True, help="Do not read the segment lists (no candidate counts).")
@format_option("table", "json", "csv")
def command(config_path: Path | None, explain: str | None, show_all: bool, no_counts: bool, fmt: str, **knob_values: Any) -> None:
    """Choose AudioSet classes: leaf, not blacklisted or abstract, QA rate at
    least the minimum quality; say why any class is in or out.

    \b
    Candidate counts per segment list need the lists:
      --metadata-dir DIR   read local copies (the offline path)
      (neither flag)       fetch them once into the cache from metadata.urls
      --no-counts          skip the counts
    """
    cfg = resolve_config(config_path, given_knobs(knob_values))
    # names are checked before any segment list is read or fetched
    selection = select_from_config(cfg.metadata, cfg.selection, counts=False).selection
    if explain is not None:
        selection.ontology.resolve(explain)
    # --explain needs no segment list; it adds candidate counts only from local copies
    if not no_counts and (explain is None or cfg.metadata.metadata_dir is not None):
        try:
            selection = select_from_config(cfg.metadata, cfg.selection, sources=cfg.plan.sources).selection
        except MetadataError as err:
            raise MetadataError(f"{err} (or pass --no-counts to list the classes without candidate counts)") from err
    if explain is not None:
        click.echo(selection.explain(explain))
        return
    if fmt == "json":
        chosen = [c.to_dict() for c in selection.chosen]
        if show_all:  # {"selected": [...], "left_out": [{"mid", "name", "reason"}, ...]}
            click.echo(json.dumps({"selected": chosen, "left_out": _left_out(selection)}, indent=2, ensure_ascii=False))
        else:
            click.echo(json.dumps(chosen, indent=2, ensure_ascii=False))
    elif fmt == "csv":
        click.echo(_csv(selection, show_all=show_all), nl=False)
    else:
        click.echo(_table(selection))
        if show_all:
            click.echo("")
            click.echo(_left_out_table(selection))


def _left_out(selection: ClassSelection) -> list[dict[str, str]]:
    """Every class left out, in ontology order: MID, name and the reason."""
    order = {mid: i for i, mid in enumerate(selection.ontology.mids)}
    mids = sorted(selection.excluded, key=lambda m: (order.get(m, len(order)), m))
    return [{"mid": m, "name": selection.ontology.name(m), "reason": selection.excluded[m]} for m in mids]


def _left_out_table(selection: ClassSelection) -> str:
    rows = _left_out(selection)
    w_mid = max([len("MID"), *(len(r["mid"]) for r in rows)])
    w_name = max([len("NAME"), *(min(40, len(r["name"])) for r in rows)])
    lines = [f"{'MID':<{w_mid}}  {'NAME':<{w_name}}  LEFT OUT BECAUSE"]
    for r in rows:
        name = r["name"] if len(r["name"]) <= 40 else r["name"][:39] + "…"
        lines.append(f"{r['mid']:<{w_mid}}  {name:<{w_name}}  {r['reason']}")
    lines.append(f"{len(rows)} classes left out")
    return "\n".join(lines)


def _count_sources(selection: ClassSelection) -> list[str]:
    srcs = selection.params.get("candidate_sources") or []
    return [s for s in SOURCES if s in srcs]


def _csv(selection: ClassSelection, *, show_all: bool = False) -> str:
    """One row per selected class; with ``show_all`` also one per class left out, with
    the reason in the last column (``left_out_because``, empty for a selected class)."""
    srcs = _count_sources(selection)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    extra = ["left_out_because"] if show_all else []
    w.writerow(["mid", "name", "quality", "num_rated", "num_true", "top_level", "top_level_name", "flags", *srcs, *extra])
    for c in selection.chosen:
        counts = c.candidates or {}
        q = "" if c.quality is None else f"{c.quality:.4g}"
        w.writerow([c.mid, c.name, q, c.num_rated, c.num_true, c.top_level, c.top_level_name, ";".join(c.flags), *[counts.get(s, 0) for s in srcs],
                    *([""] if show_all else [])])  # fmt: skip
    if show_all:
        for r in _left_out(selection):
            w.writerow([r["mid"], r["name"], "", "", "", "", "", "", *["" for _ in srcs], r["reason"]])
    return buf.getvalue()


def _table(selection: ClassSelection) -> str:
    srcs = _count_sources(selection)
    header = ["MID", "NAME", "QA", "TOP-LEVEL", *[s.upper() for s in srcs], "FLAGS"]
    rows = []
    for c in selection.chosen:
        counts = c.candidates or {}
        q = "-" if c.quality is None else f"{c.quality:.2f}"
        name = c.name if len(c.name) <= 40 else c.name[:39] + "…"
        rows.append([c.mid, name, q, c.top_level_name, *[str(counts.get(s, 0)) for s in srcs], ",".join(c.flags)])
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    numeric = {2, *range(4, 4 + len(srcs))}

    def fmt(row: list[str]) -> str:
        cells = [cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i]) for i, cell in enumerate(row)]
        return "  ".join(cells).rstrip()

    lines = [fmt(header), *(fmt(r) for r in rows)]
    p = selection.params
    level = "all levels" if p["all_levels"] else "leaf classes"
    lines.append("")
    lines.append(
        f"{len(selection.chosen)} classes selected ({level}, not blacklisted/abstract, QA rate >= {p['min_quality']:g}); "
        f"{len(selection.excluded)} left out. Why a class is in or out: --explain NAME; why each of the others is out: --all"
    )
    return "\n".join(lines)
