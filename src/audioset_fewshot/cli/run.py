"""``audioset-fewshot run``: every stage in order, rerunning only what changed.

``run --demo [--root DIR]`` is the offline demo: the media server on
127.0.0.1, demo metadata in the official layout, every stage, the report.
``run -c config.yaml [--until STAGE]`` runs the same pipeline against YouTube.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from audioset_fewshot.cli._common import (
    cluster_options,
    config_option,
    given_knobs,
    hold_root_for_command,
    knob,
    knobs,
    origin_option,
    resolve_config,
    root_option,
)
from audioset_fewshot.pipeline import STAGES, RunReport, run

DEMO_ROOT = "audioset-fewshot-demo"


@click.command(name="run")
@config_option
@root_option
@click.option("--demo", is_flag=True, help="Offline demo: a local YouTube-like server and synthetic metadata for ~30 real classes.")
@click.option("--until", type=click.Choice(STAGES), default=None, help="Stop after this stage.")
@click.option(
    "--media-cache",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Demo only: folder of generated demo media to reuse (default $AUDIOSET_FEWSHOT_DEMO_MEDIA, else ROOT/.demo-media).",
)
@knob("metadata.metadata_dir")
@knobs("download.base_url", "download.cookies", "download.max_per_hour", "download.max_pauses", "download.min_free", "features.kind", "features.release")
@origin_option
@cluster_options
def command(config_path: Path | None, root: Path | None, demo: bool, until: str | None, media_cache: Path | None, **knob_values: Any) -> None:
    """Run the pipeline: selection, plan, download, manifest, clean, pack, features,
    splits, episodes, evaluate, report.  Each stage reruns only when its inputs or
    parameters changed.  A demo root (its saved config says demo: true) resumes as a
    demo without --demo."""
    flags = given_knobs(knob_values)
    if demo and root is None and config_path is None:
        root = Path(DEMO_ROOT)
    cfg = resolve_config(config_path, {"root": root, **flags})
    demo = demo or cfg.demo
    if demo and ("metadata.metadata_dir" in flags or "download.base_url" in flags):
        raise click.UsageError("a demo brings its own metadata and media server: drop --metadata-dir and --base-url")
    if media_cache is not None and not demo:
        raise click.UsageError("--media-cache applies to --demo (or a demo root) only")
    hold_root_for_command(cfg.root)  # checked, locked and marked before anything is written
    report = run(cfg, demo=demo, until=until, media_cache=media_cache, say=lambda line: click.echo(line, err=True))
    for line in summary_lines(report):
        click.echo(line)


def _fmt_counts(counts: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"


def summary_lines(report: RunReport) -> list[str]:
    """The concise end-of-run summary (what each stage did and where the artifacts are)."""
    lines: list[str] = []
    if report.setup.get("media_files"):
        lines.append(
            f"demo media: {report.setup.get('media_files')} files ready in {float(report.setup.get('media_seconds', 0.0)):.1f} s ({report.setup.get('media_cache')})"
        )
    for st in report.stages:
        note = ""
        if st.name == "download" and st.summary.get("attempts"):
            note = f"  ({st.summary['attempts']} attempts)"
        lines.append(f"{st.name:<10} {st.status:<10} {st.seconds:7.1f} s{note}")
    s = {st.name: st.summary for st in report.stages}
    dl = s.get("download")
    if dl:
        lines.append(f"clips: obtained {dl.get('obtained')}/{dl.get('target')} ({dl.get('obtained_now')} this run, {dl.get('pauses')} rate-limit pauses)")
        lines.append(f"failures by reason: {_fmt_counts(dl.get('failures_by_reason') or {})}")
        if dl.get("origin") == "vggish-release":
            lines.append(
                f"from the VGGish embedding release {str(dl.get('release_sha256', ''))[:12]}: "
                f"{dl.get('label_disagreements', 0)} clips whose release labels differ from the segment lists (the lists win)"
            )
    cl = s.get("clean")
    if cl:
        lines.append(f"clean: kept {cl.get('kept')}/{cl.get('clips')} ({_fmt_counts(cl.get('by_reason') or {})})")
    sp = s.get("splits")
    if sp:
        sizes = sp.get("classes") or {}
        lines.append("splits (classes): " + ", ".join(f"{k} {sizes.get(k, 0)}" for k in ("train", "val", "test")))
        before, after = sp.get("clips_before"), sp.get("clips_after")
        if before and after:
            removed = {k: int(before.get(k, 0)) - int(after.get(k, 0)) for k in ("train", "val", "test")}
            lines.append("leakage removed (clips): " + ", ".join(f"{k} {removed[k]} of {before.get(k, 0)}" for k in ("train", "val", "test")))
    ev = s.get("evaluate")
    if ev and "accuracy" in ev:
        lines.append(
            f"accuracy: {100 * float(ev['accuracy']):.1f}% \u00b1 {100 * float(ev.get('ci95', 0.0)):.1f}% "
            f"({ev.get('method', 'baseline')}, {ev.get('n_way')}-way {ev.get('k_shot')}-shot, {ev.get('episodes')} test episodes)"
        )
    root = report.root
    lines.append(f"root: {root}")
    for name in ("manifest", "splits", "episodes", "evaluate", "report"):
        stage = report.stage(name)
        if stage and stage.artifacts:
            lines.append(f"  {name}: " + ", ".join(str(root / a) for a in stage.artifacts[:3]))
    lines.append(f"done in {report.seconds:.1f} s")
    return lines
