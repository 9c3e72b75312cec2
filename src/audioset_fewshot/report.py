"""One self-contained HTML page about a dataset root: ``report/index.html`` + PNGs.

``write_report(root, *, force=False) -> Path`` reads whatever artifacts exist
(plan, ledger, manifest, clean.csv, features, splits.json, the episode file,
eval/results.json) and draws, with matplotlib (Agg backend, no display):

* obtained vs target per class, failures by reason, availability per source list;
* clip length and loudness distributions (from ``processed/clean.csv``);
* a log-mel gallery, one example per class (from the features);
* split sizes and leakage before/after (from ``splits.json``);
* the baseline's accuracy with its 95 % confidence interval.

A section whose artifact does not exist yet says so instead of failing.  The
images are PNG files beside ``index.html``, referenced relatively, so the
folder can be moved or zipped as it is.  Every class name and every text that
comes from YouTube (titles, uploaders, licences) is HTML-escaped.

Idempotent like every stage: ``report/report.json`` records the schema
version and the sha256 of everything the page shows; with unchanged inputs and
all files present the call is a fast no-op.
"""

from __future__ import annotations

import csv
import html
import json
import logging
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audioset_fewshot import __version__
from audioset_fewshot._io import atomic_path, atomic_write_json, atomic_write_text, canonical_json, sha256_file, sha256_text
from audioset_fewshot._progress import progress
from audioset_fewshot.download.ledger import ClipStatus, LedgerRow, class_status
from audioset_fewshot.layout import DatasetLayout

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # bump when the page or its figures change, so existing reports are redrawn
REPORT_JSON = "report.json"
MAX_GALLERY = 160  # panels of the log-mel gallery (AudioSet's 142 quality leaf classes fit)
MAX_ATTRIBUTION_ROWS = 25


@dataclass
class _Section:
    key: str
    title: str
    body: str = ""
    figures: list[tuple[str, str]] = field(default_factory=list)  # (file name, alt text)
    missing: str | None = None


# ---------------------------------------------------------------------------------------
# reading artifacts (every reader returns None when the artifact is not there)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def _read_csv(path: Path) -> list[dict[str, str]] | None:
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return list(csv.DictReader(fh))
    except FileNotFoundError:
        return None


def _ledger_rows(layout: DatasetLayout) -> list[LedgerRow] | None:
    """Clip rows of the plan from the ledger (read-only, by clip ID), or None when there is no ledger."""
    from audioset_fewshot.download.ledger import Ledger

    if not layout.ledger_file.exists():
        return None
    with Ledger(layout.ledger_file, readonly=True) as ledger:
        return sorted(ledger.rows(in_plan=True), key=lambda r: r.clip_id)


def _class_names(mids: Sequence[str]) -> dict[str, str]:
    from audioset_fewshot.metadata import load_ontology

    onto = load_ontology()
    return {m: (onto.name(m) if m in onto else m) for m in mids}


def _float(text: str | None) -> float | None:
    try:
        v = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    return v if v is not None and math.isfinite(v) else None


# ---------------------------------------------------------------------------------------
# the data model: every number the page shows (hashed for idempotency)


def collect(root: Path | str) -> dict[str, Any]:
    """Everything the report shows, as plain JSON-able data (``None`` for a missing artifact)."""
    layout = DatasetLayout(Path(root))
    data: dict[str, Any] = {"root_name": layout.root.name, "version": __version__}

    plan_meta = _read_json(layout.plan_meta_file)
    targets: dict[str, int] = {}
    if plan_meta:
        targets = {k: int(v) for k, v in (plan_meta.get("targets") or {}).items()}
        data["plan"] = {"targets": targets, "shortfalls": plan_meta.get("shortfalls") or {}, "content_hash": plan_meta.get("content_hash")}
    else:
        data["plan"] = None

    ledger = _ledger_rows(layout)
    if ledger is not None:
        per_class = class_status(ledger)
        obtained = {mid: c[ClipStatus.OK] for mid, c in per_class.items() if c[ClipStatus.OK]}
        failed: Counter[str] = Counter()
        pending = 0
        by_source: dict[str, Counter[str]] = defaultdict(Counter)
        cc: list[dict[str, str]] = []
        for r in ledger:
            src = r.source or "?"
            if r.status is ClipStatus.OK:
                by_source[src]["ok"] += 1
                if "creative commons" in (r.license or "").lower() and len(cc) < MAX_ATTRIBUTION_ROWS:
                    row = {k: str(getattr(r, k) or "") for k in ("ytid", "owner_mid", "title", "uploader", "license")}
                    row["start_s"] = f"{float(r.start_s or 0.0):.3f}"
                    cc.append(row)
            elif r.status.failed:
                failed[r.reason or "unknown"] += 1
                by_source[src]["permanent" if r.status is ClipStatus.FAILED_PERMANENT else "transient"] += 1
            else:
                pending += 1
                by_source[src]["pending"] += 1
        data["download"] = {
            "obtained": dict(sorted(obtained.items())),
            "failures": dict(sorted(failed.items())),
            "pending": pending,
            "by_source": {k: dict(sorted(v.items())) for k, v in sorted(by_source.items())},
            "cc_examples": cc,
        }
    else:
        data["download"] = None

    clips = _read_csv(layout.clips_csv)
    data["manifest"] = (
        None if clips is None else {"clips": len(clips), "classes": len({c.get("owner_mid") for c in clips}), "sha256": sha256_file(layout.clips_csv)}
    )

    clean = _read_csv(layout.clean_csv)
    if clean is not None:
        verdicts = Counter(f"{r.get('verdict', '?')}:{r.get('reason', '?')}" for r in clean)
        data["clean"] = {
            "rows": len(clean),
            "verdicts": dict(sorted(verdicts.items())),
            "duration_s": [d for d in (_float(r.get("duration_s")) for r in clean) if d is not None],
            "rms_dbfs": [d for d in (_float(r.get("rms_dbfs")) for r in clean) if d is not None],
        }
    else:
        data["clean"] = None

    data["features"] = _features_summary(layout)
    data["splits"] = _splits_summary(layout)
    data["episodes"] = _episodes_summary(layout)
    data["evaluate"] = _read_json(layout.eval_results)
    data["results_table"] = _results_table(layout)
    data["side_by_side"] = _read_json(layout.eval_dir / "side_by_side.json")  # compare.side_by_side, when run

    mids = set(targets) | set((data["download"] or {}).get("obtained", {}))
    for split in ((data["splits"] or {}).get("classes") or {}).values():
        mids.update(split)
    data["names"] = _class_names(sorted(mids))
    return data


def _results_table(layout: DatasetLayout) -> list[dict[str, str]] | None:
    """Rows of ``eval/results.csv`` (every method evaluated), or None."""
    from audioset_fewshot.evaluate import read_table

    rows = read_table(layout.eval_dir / "results.csv")
    return rows or None


def _features_summary(layout: DatasetLayout) -> dict[str, Any] | None:
    metas = sorted(layout.features_dir.glob("*/meta.json")) if layout.features_dir.exists() else []
    if not metas:
        return None
    newest = max(metas, key=lambda p: p.stat().st_mtime_ns)
    return {"key": newest.parent.name, "meta_sha256": sha256_file(newest), "dir": newest.parent.relative_to(layout.root).as_posix()}


def _splits_summary(layout: DatasetLayout) -> dict[str, Any] | None:
    """Classes per split and pool sizes before/after the leakage policy, from splits.json."""
    doc = _read_json(layout.splits_json)
    if doc is None:
        return None
    classes = {s: [str(c.get("mid")) for c in doc.get("classes", {}).get(s, [])] for s in ("train", "val", "test")}
    rep = doc.get("leakage_report") or {}
    leakage = {when: {s: (rep.get(when) or {}).get(s, {}) for s in ("train", "val", "test")} for when in ("before", "after")}
    params = doc.get("params") or {}
    return {
        "classes": classes,
        "leakage": leakage,
        "policy": params.get("leakage"),
        "seed": params.get("seed"),
        "hash": doc.get("content_sha256"),
        "multi_label_fraction": rep.get("multi_label_fraction"),
    }


def _episodes_summary(layout: DatasetLayout) -> dict[str, Any] | None:
    files = sorted(layout.episodes_dir.glob("*.jsonl")) if layout.episodes_dir.exists() else []
    if not files:
        return None
    return {"files": [p.name for p in files]}


# ---------------------------------------------------------------------------------------
# figures


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path, *, dpi: int = 90) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    _plt().close(fig)


def _short(name: str, n: int = 28) -> str:
    return name if len(name) <= n else name[: n - 1] + "\u2026"


def _fig_obtained(data: dict[str, Any], path: Path) -> None:
    plt = _plt()
    targets = data["plan"]["targets"] if data.get("plan") else {}
    obtained = data["download"]["obtained"]
    mids = sorted(set(targets) | set(obtained), key=lambda m: (-(obtained.get(m, 0)), data["names"].get(m, m)))
    mids = [m for m in mids if targets.get(m, 0) or obtained.get(m, 0)]
    n = max(1, len(mids))
    fig, ax = plt.subplots(figsize=(8, min(60.0, 1.2 + 0.22 * n)))
    y = np.arange(len(mids))
    ax.barh(y, [targets.get(m, 0) for m in mids], color="#dddddd", label="target")
    ax.barh(y, [obtained.get(m, 0) for m in mids], color="#3b7dd8", height=0.55, label="obtained")
    ax.set_yticks(y, [_short(data["names"].get(m, m)) for m in mids], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("clips")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Obtained vs target per class")
    _save(fig, path)


def _fig_failures(data: dict[str, Any], path: Path) -> None:
    plt = _plt()
    failures = data["download"]["failures"]
    items = sorted(failures.items(), key=lambda kv: -kv[1])
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.3 * max(1, len(items))))
    ax.barh(range(len(items)), [v for _, v in items], color="#d8593b")
    ax.set_yticks(range(len(items)), [k for k, _ in items], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("clips")
    ax.set_title("Failures by reason")
    _save(fig, path)


def _fig_availability(data: dict[str, Any], path: Path) -> None:
    plt = _plt()
    by_source = data["download"]["by_source"]
    names = list(by_source)
    fig, ax = plt.subplots(figsize=(7, 1.4 + 0.5 * max(1, len(names))))
    left = np.zeros(len(names))
    for key, colour in (("ok", "#3b7dd8"), ("permanent", "#d8593b"), ("transient", "#e8a33b"), ("pending", "#bbbbbb")):
        vals = np.array([by_source[s].get(key, 0) for s in names], dtype=float)
        ax.barh(range(len(names)), vals, left=left, color=colour, label=key)
        left += vals
    for i, s in enumerate(names):
        tried = by_source[s].get("ok", 0) + by_source[s].get("permanent", 0)
        if tried:
            ax.text(left[i], i, f"  {100.0 * by_source[s].get('ok', 0) / tried:.0f}% available", va="center", fontsize=8)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel("planned clips attempted or pending")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Availability per source list")
    _save(fig, path)


def _fig_hist(values: list[float], path: Path, *, title: str, xlabel: str, bins: int = 30) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.hist(values, bins=bins, color="#5a9e6f")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("clips")
    _save(fig, path)


def _fig_gallery(layout: DatasetLayout, data: dict[str, Any], path: Path) -> tuple[int, int]:
    """One log-mel per class from the features: (classes shown, classes in the features)."""
    from audioset_fewshot.process import load_features

    store: Any = load_features(layout.root)  # log-mels, or the release's embeddings (128 x 10 s)
    first: dict[str, int] = {}
    for i, row in enumerate(store.index):
        mid = row["owner_mid"] if isinstance(row, Mapping) else row.owner_mid
        first.setdefault(mid, i)
    if not first:
        return 0, 0
    chosen = sorted(first.items(), key=lambda kv: data["names"].get(kv[0], kv[0]))[:MAX_GALLERY]
    cols = 6
    rows = math.ceil(len(chosen) / cols)
    plt = _plt()
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 1.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (mid, i) in zip(axes.flat, chosen):
        mel = np.asarray(store.mels[i], dtype=np.float32)
        ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", interpolation="nearest")
        ax.set_title(_short(data["names"].get(mid, mid), 24), fontsize=7)
    kind = "VGGish embedding" if getattr(store, "kind", "logmel") == "vggish-release" else "Log-mel"
    fig.suptitle(f"{kind} gallery (one clip per class)")
    fig.tight_layout()
    _save(fig, path, dpi=72)
    return len(chosen), len(first)


def _fig_splits(data: dict[str, Any], path: Path) -> None:
    plt = _plt()
    sp = data["splits"]
    names = ["train", "val", "test"]
    counts = [len(sp["classes"].get(n, [])) for n in names]
    leak = sp.get("leakage") or {}
    fig, axes = plt.subplots(1, 2, figsize=(9, 3))
    axes[0].bar(names, counts, color=["#3b7dd8", "#e8a33b", "#5a9e6f"])
    axes[0].set_title("Classes per split")
    before = [_leak_value(leak, n, "before") for n in names]
    after = [_leak_value(leak, n, "after") for n in names]
    x = np.arange(3)
    axes[1].bar(x - 0.2, before, 0.4, label="before", color="#bbbbbb")
    axes[1].bar(x + 0.2, after, 0.4, label="after", color="#3b7dd8")
    axes[1].set_xticks(x, names)
    axes[1].set_title("Clips per split pool (leakage policy)")
    axes[1].legend(fontsize=8)
    _save(fig, path)


def _leak_value(leak: Any, split: str, when: str, key: str = "clips") -> int:
    """``key`` of ``split``'s pool before/after the leakage policy (0 when unknown)."""
    try:
        return int(leak[when][split].get(key, 0))
    except (KeyError, TypeError, AttributeError, ValueError):
        return 0


def _fig_accuracy(ev: Mapping[str, Any], path: Path) -> None:
    plt = _plt()
    acc, ci, n_way = _accuracy(ev)
    fig, ax = plt.subplots(figsize=(4.5, 3))
    ax.bar([0], [100 * acc], yerr=[100 * ci], capsize=8, color="#3b7dd8", width=0.5)
    if n_way:
        ax.axhline(100.0 / n_way, color="#d8593b", linestyle="--", label=f"chance ({100.0 / n_way:.0f}%)")
        ax.legend(fontsize=8)
    ax.set_xticks([0], [str(ev.get("method", "baseline"))])
    ax.set_ylim(0, 100)
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Baseline accuracy \u00b1 95% CI")
    _save(fig, path)


def _fig_results(rows: Sequence[Mapping[str, str]], path: Path) -> None:
    plt = _plt()
    labels = [
        r["method"] + (f"\n{r['backbone']}" if r["backbone"] else "") + (f"\n{r['episodes_file'][:18]}" if len({x["episodes_file"] for x in rows}) > 1 else "")
        for r in rows
    ]
    acc = [100 * float(r["mean"]) for r in rows]
    ci = [100 * float(r["ci95"]) for r in rows]
    fig, ax = plt.subplots(figsize=(max(4.5, 1.1 * len(rows) + 1.5), 3.4))
    colors = ["#999999" if r["method"] in ("untrained", "nearest-centroid") else "#c0504d" if r["class_disjoint"] != "yes" else "#3b7dd8" for r in rows]
    ax.bar(range(len(rows)), acc, yerr=ci, capsize=6, color=colors, width=0.6)
    n_ways = {int(r["n_way"]) for r in rows}
    if len(n_ways) == 1:
        n = n_ways.pop()
        ax.axhline(100.0 / n, color="#d8593b", linestyle="--", label=f"chance ({100.0 / n:.0f}%)")
        ax.legend(fontsize=8)
    ax.set_xticks(range(len(rows)), labels, fontsize=7)
    ax.set_ylim(0, 100)
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Accuracy per method \u00b1 95% CI")
    _save(fig, path)


def _accuracy(ev: Mapping[str, Any]) -> tuple[float, float, int | None]:
    """(mean accuracy, 95 % CI half-width, N) from eval/results.json."""
    res: Mapping[str, Any] = ev["result"] if isinstance(ev.get("result"), Mapping) else ev
    acc = float(res.get("mean", res.get("accuracy", 0.0)))
    ci = float(res.get("ci95", 0.0))
    n_way = res.get("n_way")
    return acc, ci, (int(n_way) if n_way else None)


# ---------------------------------------------------------------------------------------
# HTML


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _missing(what: str, how: str) -> str:
    return f"not produced yet: {what} does not exist (run '{how}')"


def _sections(layout: DatasetLayout, data: dict[str, Any], out_dir: Path) -> list[_Section]:
    names = data["names"]
    sections: list[_Section] = []
    jobs: list[Callable[[], Any]] = []

    def figure(sec: _Section, name: str, alt: str, draw: Callable[[Path], Any]) -> None:
        """Reference ``name`` from ``sec`` and queue ``draw(out_dir / name)``: one name for
        both, so every image the page shows is the one a job writes."""
        sec.figures.append((name, alt))
        jobs.append(lambda: draw(out_dir / name))

    def section(name: str, title: str, key: str, artifact: str, command: str) -> tuple[_Section, Any]:
        """The next section of the page, shown from ``data[key]``; while that is absent the
        section says which command makes ``artifact``."""
        sec = _Section(name, title)
        value = data.get(key)
        if value is None:
            sec.missing = _missing(artifact, command)
        sections.append(sec)
        return sec, value

    # -- download -------------------------------------------------------------------
    dl, d = section("download", "Download", "download", "the ledger", "audioset-fewshot download")
    if d is not None:
        total_ok = sum(d["obtained"].values())
        total_fail = sum(d["failures"].values())
        target = sum((data.get("plan") or {}).get("targets", {}).values())
        dl.body = _table(
            ["obtained", "target", "failed", "pending (not needed or not tried)"],
            [[total_ok, target, total_fail, d["pending"]]],
        )
        figure(dl, "obtained_vs_target.png", "obtained vs target per class", lambda path: _fig_obtained(data, path))
        if d["failures"]:
            figure(dl, "failures_by_reason.png", "failures by reason", lambda path: _fig_failures(data, path))
        figure(dl, "availability_by_source.png", "availability per source list", lambda path: _fig_availability(data, path))

    # -- clips ----------------------------------------------------------------------
    cl, c = section("clips", "Clips: length and loudness", "clean", "processed/clean.csv", "audioset-fewshot process --stage clean")
    if c is not None:
        cl.body = _table(["verdict:reason", "clips"], sorted(c["verdicts"].items()))
        if data.get("manifest"):
            cl.body = f"<p>{_e(data['manifest']['clips'])} clips of {_e(data['manifest']['classes'])} classes in manifest/clips.csv.</p>" + cl.body
        if c["duration_s"]:
            figure(cl, "clip_lengths.png", "clip length distribution", lambda path: _fig_hist(c["duration_s"], path, title="Clip length", xlabel="seconds"))
        if c["rms_dbfs"]:
            figure(cl, "loudness.png", "loudness distribution", lambda path: _fig_hist(c["rms_dbfs"], path, title="Loudness (RMS)", xlabel="dBFS"))

    # -- gallery --------------------------------------------------------------------
    ga, feats = section("gallery", "Log-mel gallery", "features", "processed/features", "audioset-fewshot process --stage features")
    if feats is not None:
        ga.body = f"<p>Features <code>{_e(feats['key'])}</code>; one clip per class (first row of each class).</p>"

        def gallery(path: Path, sec: _Section = ga) -> None:
            shown, total = _fig_gallery(layout, data, path)
            if not shown:
                sec.figures.clear()
                sec.missing = "the features hold no rows"
            elif shown < total:
                sec.body += f"<p>Showing {shown} of {total} classes (alphabetical).</p>"

        figure(ga, "logmel_gallery.png", "log-mel gallery", gallery)

    # -- splits ---------------------------------------------------------------------
    sp, s = section("splits", "Meta-splits and leakage", "splits", "splits.json", "audioset-fewshot splits")
    if s is not None:
        rows = []
        for n in ("train", "val", "test"):
            mids = s["classes"].get(n, [])
            lk = s.get("leakage")
            rows.append(
                [
                    n,
                    len(mids),
                    _leak_value(lk, n, "before"),
                    _leak_value(lk, n, "before", "leaky_clips"),
                    _leak_value(lk, n, "after"),
                    _leak_value(lk, n, "after", "leaky_clips"),
                    ", ".join(names.get(m, m) for m in mids[:12]) + (" ..." if len(mids) > 12 else ""),
                ]
            )
        sp.body = _table(["split", "classes", "clips before", "leaky before", "clips after", "leaky after", "classes (first 12)"], rows)
        sp.body += f"<p>leakage policy <code>{_e(s.get('policy'))}</code>, seed {_e(s.get('seed'))}"
        if s.get("multi_label_fraction") is not None:
            sp.body += f", {100 * float(s['multi_label_fraction']):.1f}% of clips carry two or more selected labels"
        if s.get("hash"):
            sp.body += f"; splits hash <code>{_e(str(s['hash'])[:16])}</code>"
        sp.body += "</p>"
        figure(sp, "splits.png", "split sizes and leakage", lambda path: _fig_splits(data, path))

    # -- baseline ---------------------------------------------------------------------
    ev_sec, ev = section("baseline", "Baseline accuracy", "evaluate", "eval/results.json", "audioset-fewshot evaluate")
    if ev is not None:
        acc, ci, n_way = _accuracy(ev)
        line = f"{100 * acc:.1f}% \u00b1 {100 * ci:.1f}% (95% CI)"
        flat = {**ev, **(ev.get("result") if isinstance(ev.get("result"), Mapping) else {})}
        details = ", ".join(
            f"{k}={flat[k]}" for k in ("method", "n_way", "k_shot", "q_query", "episodes", "split") if k in flat and not isinstance(flat[k], (dict, list))
        )
        ev_sec.body = f"<p class='big'>{_e(line)}</p><p>{_e(details)}</p>"
        if data.get("episodes"):
            ev_sec.body += "<p>episode files: " + ", ".join(f"<code>{_e(f)}</code>" for f in data["episodes"]["files"]) + "</p>"
        figure(ev_sec, "accuracy.png", "baseline accuracy", lambda path: _fig_accuracy(ev, path))
    # -- results table (every method evaluated), in the same section -----------------------
    table = data.get("results_table")
    if table and not ev_sec.missing:
        ev_sec.body += "<h3>Every method</h3>" + _table(
            ["method", "backbone", "N", "K", "Q", "T", "accuracy", "95% CI", "splits", "episode file", "train steps", "train s", "saw AudioSet labels"],
            [
                [
                    r["method"],
                    r["backbone"] or "-",
                    r["n_way"],
                    r["k_shot"],
                    r["q_query"],
                    r["episodes"],
                    f"{100 * float(r['mean']):.2f}%",
                    f"\u00b1 {100 * float(r['ci95']):.2f}",
                    r["splits_sha256"][:12],
                    f"{r['episodes_file']} ({r['episodes_sha256'][:12]})",
                    r["train_steps"],
                    r["train_seconds"],
                    r["saw_audioset_labels"] + ("" if r["class_disjoint"] == "yes" else " (not class-disjoint)"),
                ]
                for r in table
            ],
        )
        ev_sec.body += "<p>95% CI = 1.96 \u00b7 std / \u221aT over the T test episodes; checkpoints chosen on validation episodes.</p>"
        figure(ev_sec, "results.png", "accuracy of every method with 95% CIs", lambda path: _fig_results(table, path))

    # -- side by side: log-mels vs the release's VGGish embeddings (only when compared) ----
    sbs = data.get("side_by_side")
    if isinstance(sbs, Mapping) and isinstance(sbs.get("logmel"), Mapping) and isinstance(sbs.get("embeddings"), Mapping):
        sb = _Section("side-by-side", "Side by side: log-mel vs the VGGish release")
        sb.body = _table(["features", "features key", "accuracy", "95% CI"], [
            [label, side.get("features_key"), f"{100 * float(side.get('mean', 0.0)):.1f}%", f"\u00b1 {100 * float(side.get('ci95', 0.0)):.1f}%"]
            for label, side in (("log-mel (downloaded audio)", sbs["logmel"]), ("VGGish release embeddings", sbs["embeddings"]))
        ])  # fmt: skip
        sb.body += (
            f"<p>{_e(sbs.get('method'))}, the same {_e(sbs.get('episodes_used'))} of {_e(sbs.get('episodes_total'))} "
            f"{_e(sbs.get('n_way'))}-way {_e(sbs.get('k_shot'))}-shot {_e(sbs.get('split'))} episodes over "
            f"{_e(sbs.get('classes'))} classes, on the {_e(sbs.get('clips_common'))} clips both feature sets hold</p>"
        )
        sections.append(sb)

    # -- attribution --------------------------------------------------------------------
    at, d = section("attribution", "Creative Commons clips (sample)", "download", "the ledger", "audioset-fewshot download")
    cc = (d or {}).get("cc_examples") or []
    if d is not None and not cc:
        at.body = "<p>No obtained clip carries a Creative Commons licence.</p>"
    elif cc:
        at.body = _table(
            ["YouTube ID", "start (s)", "class", "title", "uploader", "licence"],
            [[r["ytid"], r["start_s"], names.get(r["owner_mid"], r["owner_mid"]), r["title"], r["uploader"], r["license"]] for r in cc],
        )

    for job in progress(jobs, desc="report figures", unit="fig"):
        job()
    return sections


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1100px;color:#222;padding:0 16px}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:2em}
table{border-collapse:collapse;margin:8px 0;font-size:0.9em}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f4f4f4}img{max-width:100%;display:block;margin:12px 0}.missing{color:#a05a00;font-style:italic}
.big{font-size:1.5em;font-weight:600}code{background:#f4f4f4;padding:0 3px}
"""


def _headline(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The few numbers a reader wants first (only those whose artifact exists)."""
    out: list[tuple[str, str]] = []
    plan = data.get("plan")
    if plan:
        out.append(("classes planned", str(len(plan["targets"]))))
    dl = data.get("download")
    if dl:
        target = sum((plan or {}).get("targets", {}).values())
        out.append(("clips obtained / target", f"{sum(dl['obtained'].values())} / {target}"))
    if data.get("clean"):
        kept = sum(n for k, n in data["clean"]["verdicts"].items() if k.startswith("keep:"))
        out.append(("clips kept by clean", f"{kept} / {data['clean']['rows']}"))
    sp = data.get("splits")
    if sp:
        out.append(("classes train / val / test", " / ".join(str(len(sp["classes"].get(n, []))) for n in ("train", "val", "test"))))
    ev = data.get("evaluate")
    if ev:
        acc, ci, n_way = _accuracy(ev)
        out.append(("baseline accuracy", f"{100 * acc:.1f}% \u00b1 {100 * ci:.1f}%" + (f" ({n_way}-way)" if n_way else "")))
    return out


def render_html(data: dict[str, Any], sections: Sequence[_Section]) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>audioset-fewshot report: {_e(data['root_name'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>audioset-fewshot report: {_e(data['root_name'])}</h1>",
        f"<p>audioset-fewshot {_e(data['version'])}. Every figure is a PNG beside this page.</p>",
        "<nav><ul>" + "".join(f'<li><a href="#{_e(s.key)}">{_e(s.title)}</a></li>' for s in sections) + "</ul></nav>",
    ]
    facts = _headline(data)
    if facts:
        parts.append("<h2>At a glance</h2>" + _table([k for k, _ in facts], [[v for _, v in facts]]))
    for s in sections:
        parts.append(f'<section id="{_e(s.key)}"><h2>{_e(s.title)}</h2>')
        if s.missing:
            parts.append(f'<p class="missing">{_e(s.missing)}</p>')
        else:
            parts.append(s.body)
            for name, alt in s.figures:
                parts.append(f'<img src="{_e(name)}" alt="{_e(alt)}">')
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------
# the stage


@dataclass(frozen=True)
class ReportRecord:
    """Where the page is, and whether this call wrote it (``ran``) or found it current."""

    path: Path
    ran: bool


def write_report(root: Path | str, *, force: bool = False) -> Path:
    """Write ``ROOT/report/index.html`` and its PNGs; a no-op when nothing changed."""
    return build_report(root, force=force).path


def build_report(root: Path | str, *, force: bool = False) -> ReportRecord:
    """:func:`write_report` as a stage: the page's path and whether it was written."""
    layout = DatasetLayout(Path(root))
    data = collect(layout.root)
    out_dir = layout.report_dir
    data_hash = sha256_text(canonical_json(data))
    meta_path = out_dir / REPORT_JSON
    old = _read_json(meta_path) if meta_path.exists() else None
    if not force and old and old.get("schema_version") == SCHEMA_VERSION and old.get("data_sha256") == data_hash and layout.report_html.exists():
        if all((out_dir / f).exists() for f in old.get("images", [])):
            return ReportRecord(layout.report_html, ran=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    sections = _sections(layout, data, out_dir)
    text = render_html(data, sections)
    atomic_write_text(layout.report_html, text)
    images = sorted({name for s in sections if not s.missing for name, _ in s.figures})
    atomic_write_json(meta_path, {"schema_version": SCHEMA_VERSION, "data_sha256": data_hash, "images": images, "html_sha256": sha256_text(text)})
    log.info("report written to %s", layout.report_html)
    return ReportRecord(layout.report_html, ran=True)


def referenced_images(html_text: str) -> list[str]:
    """The ``src`` of every ``<img>`` in a page (used by tests and ``verify``-style checks)."""
    from html.parser import HTMLParser

    found: list[str] = []

    class _P(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "img":
                for k, v in attrs:
                    if k == "src" and v:
                        found.append(v)

    p = _P()
    p.feed(html_text)
    return found


__all__ = ["ReportRecord", "build_report", "collect", "referenced_images", "render_html", "write_report"]
