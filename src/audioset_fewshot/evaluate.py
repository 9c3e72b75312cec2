"""The evaluate stage: few-shot methods on the fixed test episodes, one results table.

Methods (see :mod:`audioset_fewshot.methods`): ``protonet``, ``simpleshot``,
``finetune``, ``maml``, ``untrained``, ``nearest-centroid``, and ``hear`` (an outside
encoder in the HEAR style, see :mod:`audioset_fewshot.encoders`); ``all`` is every
method (``hear`` only when an encoder is given).  Backbones (see
:mod:`audioset_fewshot.models`): ``crnn`` (MetaAudio's) and ``conv4``.

Protocol (MetaAudio's): training on seeded meta-train episodes (or batches, for
SimpleShot's pre-training), bounded by a step count and a wall-clock limit; every
``val_every`` steps the accuracy on seeded validation episodes is measured and
the best checkpoint is the one tested; accuracy on the fixed test episodes is the
mean over episodes with a 95 % confidence interval ``1.96 * std / sqrt(T)``
(population std).  Every test item is embedded once; an episode then costs a
few array operations, so 10,000 episodes take seconds (MAML excepted: it adapts
the network on each episode and is scored on the first ``maml_episodes``).

Outputs, under ``ROOT/eval/``:

- ``results.csv`` and ``results.md``: one row per (method, backbone or encoder,
  episode file) with N, K, Q, T, mean, CI, the splits and episode-file hashes,
  the training steps and seconds, and whether the encoder saw AudioSet labels.
  A row is keyed by the sha256 of its method's parameters and its inputs: a rerun
  with the same key returns the stored row without training; a changed method,
  backbone or episode file recomputes only that row.
- ``results.json``: the first asked method's full record (training losses,
  validation history), as before.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audioset_fewshot._io import atomic_write_json, canonical_json, sha256_text, write_text_if_changed
from audioset_fewshot.config import EvaluateConfig
from audioset_fewshot.episodes import EpisodeFile, FixedEpisode, accuracy_ci, read_episodes
from audioset_fewshot.errors import StageNotReadyError, UsageError
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.process.features import torch_threads
from audioset_fewshot.splits import MetaSplits, read_splits
from audioset_fewshot.torchdata import Normaliser, SplitDataset

if TYPE_CHECKING:
    from audioset_fewshot.methods import Trained, TrainSettings
    from audioset_fewshot.torchdata import Features

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
METHODS = ("protonet", "simpleshot", "finetune", "maml", "untrained", "nearest-centroid", "hear")
CHOICES = (*METHODS, "all")
BACKBONES = ("crnn", "conv4")
TABLE_COLUMNS = (
    "method", "backbone", "n_way", "k_shot", "q_query", "episodes", "mean", "ci95", "split", "splits_sha256", "episodes_file",
    "episodes_sha256", "features_key", "train_steps", "train_seconds", "eval_seconds", "selected_step", "val_accuracy",
    "saw_audioset_labels", "class_disjoint", "key",
)  # fmt: skip


# The options object is the config section itself.
EvalOptions = EvaluateConfig


@dataclass(frozen=True)
class EvalResult:
    """One row of the results table (and the record of ``results.json``)."""

    method: str
    mean: float
    ci95: float
    n_way: int
    k_shot: int
    q_query: int
    episodes: int
    split: str
    splits_sha256: str
    episodes_sha256: str
    features_key: str
    params: dict[str, Any]
    backbone: str = ""
    episodes_file: str = ""
    saw_audioset_labels: bool = False
    train: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    key: str = ""
    path: Path | None = None
    ran: bool = field(default=True, compare=False)  # False: a stored result was current

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION, "stage": "evaluate", "method": self.method, "backbone": self.backbone, "key": self.key,
            "params": self.params,
            "inputs": {"splits_sha256": self.splits_sha256, "episodes_sha256": self.episodes_sha256, "features_key": self.features_key,
                       "episodes_file": self.episodes_file},
            "result": {"mean": self.mean, "ci95": self.ci95, "n_way": self.n_way, "k_shot": self.k_shot, "q_query": self.q_query,
                       "episodes": self.episodes, "split": self.split,
                       "ci": "1.96 * std / sqrt(T), population std (ddof=0)"},
            "saw_audioset_labels": self.saw_audioset_labels, "train": self.train, "seconds": self.seconds,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, path: Path | None = None) -> EvalResult:
        r, i = d["result"], d["inputs"]
        return cls(method=d["method"], mean=float(r["mean"]), ci95=float(r["ci95"]), n_way=int(r["n_way"]), k_shot=int(r["k_shot"]),
                   q_query=int(r["q_query"]), episodes=int(r["episodes"]), split=str(r["split"]), splits_sha256=i["splits_sha256"],
                   episodes_sha256=i["episodes_sha256"], features_key=i["features_key"], params=d["params"],
                   backbone=str(d.get("backbone", "")), episodes_file=str(i.get("episodes_file", "")),
                   saw_audioset_labels=bool(d.get("saw_audioset_labels", False)), train=d.get("train", {}),
                   seconds=d.get("seconds", {}), key=str(d.get("key", "")), path=path)  # fmt: skip

    def row(self) -> dict[str, str]:
        """The results-table row (strings, as written to ``results.csv``)."""
        values: dict[str, Any] = {
            "method": self.method, "backbone": self.backbone, "n_way": self.n_way, "k_shot": self.k_shot, "q_query": self.q_query,
            "episodes": self.episodes, "mean": repr(float(self.mean)), "ci95": repr(float(self.ci95)), "split": self.split,
            "splits_sha256": self.splits_sha256, "episodes_file": self.episodes_file, "episodes_sha256": self.episodes_sha256,
            "features_key": self.features_key, "train_steps": self.train.get("steps", 0),
            "train_seconds": f"{float(self.seconds.get('train', 0.0)):.1f}", "eval_seconds": f"{float(self.seconds.get('evaluate', 0.0)):.1f}",
            "selected_step": self.train.get("selected_step", ""), "val_accuracy": self.train.get("val_accuracy", ""),
            "saw_audioset_labels": "yes" if self.saw_audioset_labels else "no",
            "class_disjoint": "no" if self.saw_audioset_labels else "yes", "key": self.key,
        }  # fmt: skip
        return {k: str(values[k]) for k in TABLE_COLUMNS}

    def summary(self) -> str:
        what = f"{self.method} ({self.backbone})" if self.backbone else self.method
        return (
            f"{what}: {self.mean * 100:.2f} % +- {self.ci95 * 100:.2f} % (95 % CI) on {self.episodes} "
            f"{self.n_way}-way {self.k_shot}-shot {self.q_query}-query {self.split} episodes; splits {self.splits_sha256[:12]}"
        )


# ---------------------------------------------------------------------------------------
# the table


def read_table(path: Path) -> list[dict[str, str]]:
    """Rows of ``results.csv`` (an empty list when missing or from another layout)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    rows = list(csv.DictReader(io.StringIO(text)))
    if rows and set(rows[0]) != set(TABLE_COLUMNS):
        log.warning("%s has other columns than this version writes; it will be rewritten", path)
        return []
    return rows


def render_csv(rows: Sequence[dict[str, str]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(TABLE_COLUMNS), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


def render_markdown(rows: Sequence[dict[str, str]]) -> str:
    """The results as a markdown table (accuracy and CI in percent)."""
    head = ["method", "backbone", "N", "K", "Q", "T", "accuracy (%)", "95 % CI", "splits", "episode file", "train steps",
            "train s", "saw AudioSet labels"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["method"], r["backbone"] or "-", r["n_way"], r["k_shot"], r["q_query"], r["episodes"],
                 f"{100 * float(r['mean']):.2f}", f"\u00b1 {100 * float(r['ci95']):.2f}", r["splits_sha256"][:12],
                 f"{r['episodes_file']} ({r['episodes_sha256'][:12]})", r["train_steps"], r["train_seconds"],
                 r["saw_audioset_labels"] + ("" if r["class_disjoint"] == "yes" else " (not class-disjoint)")]  # fmt: skip
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _identity(row: dict[str, str]) -> tuple[str, str, str]:
    return row["method"], row["backbone"], row["episodes_file"]


def _write_table(layout: DatasetLayout, rows: list[dict[str, str]]) -> None:
    order = {m: i for i, m in enumerate(METHODS)}
    rows = sorted(rows, key=lambda r: (r["episodes_file"], order.get(r["method"], 99), r["method"], r["backbone"]))
    csv_text, md_text = render_csv(rows), render_markdown(rows)
    for path, text in ((layout.eval_dir / "results.csv", csv_text), (layout.eval_dir / "results.md", md_text)):
        write_text_if_changed(path, text)


# ---------------------------------------------------------------------------------------
# running


def resolve_methods(method: str | Sequence[str], options: EvalOptions) -> list[str]:
    """``all``, one name or a comma-separated list -> method names, in table order."""
    names = [m.strip() for m in (method.split(",") if isinstance(method, str) else method) if m.strip()]
    out: list[str] = []
    for m in names:
        if m == "all":
            out += [x for x in METHODS if x != "hear" or options.encoder]
        elif m in METHODS:
            out.append(m)
        else:
            raise UsageError(f"unknown method {m!r}; expected one of {', '.join(CHOICES)} (or a comma-separated list)")
    if "hear" in out and not options.encoder:
        raise UsageError(
            "method 'hear' needs an encoder (evaluate.encoder: a module name or a .py file with load_model and "
            "get_scene_embeddings; on the evaluate command, its encoder option)"
        )
    return list(dict.fromkeys(out))


def _piece_frames(features: Features, piece_seconds: float) -> int:
    if piece_seconds <= 0:
        return 0
    if getattr(features, "item_shape", None) is not None:
        log.warning("piece_seconds applies to log-mel features; embedding sequences are used whole")
        return 0
    params = (getattr(features, "meta", None) or {}).get("params", {})
    sr, hop = int(params.get("sample_rate_hz", 16000)), int(params.get("hop_length", 512))
    return int(round(piece_seconds * sr / hop))


def _method_params(method: str, o: EvalOptions, norm: Any, piece_frames: int, test_n_way: int, test_k: int) -> dict[str, Any]:
    """The parameters that change ``method``'s row (and nothing else's)."""
    p: dict[str, Any] = {"method": method, "norm": norm if isinstance(norm, str) else type(norm).__name__}
    if method in ("protonet", "simpleshot", "finetune", "maml", "untrained"):
        p.update({"backbone": o.backbone, "seed": o.seed, "piece_frames": piece_frames})
    if method in ("protonet", "simpleshot", "finetune", "maml"):
        p.update({"steps": o.steps, "max_seconds": o.max_seconds, "learning_rate": o.learning_rate, "val_episodes": o.val_episodes, "val_every": o.val_every})
    if method in ("protonet", "maml"):
        p.update(
            {
                "n_way": test_n_way if method == "maml" else o.n_way,
                "k_shot": test_k if method == "maml" else o.k_shot,
                "q_query": o.q_query,
                "tasks_per_step": o.tasks_per_step,
            }
        )
    if method in ("simpleshot", "finetune"):
        p["batch_size"] = o.batch_size
    if method == "finetune":
        p["finetune_steps"] = o.finetune_steps
    if method == "maml":
        p.update({"inner_lr": o.inner_lr, "inner_steps": o.inner_steps, "maml_episodes": o.maml_episodes, "first_order": True})
    if method == "hear":
        from audioset_fewshot.encoders import encoder_identity

        p.update(
            {
                "encoder": encoder_identity(o.encoder or "", o.encoder_weights),
                "head": o.encoder_head,
                "saw_audioset_labels": o.encoder_saw_audioset_labels,
                "seed": o.seed,
            }
        )
        if o.encoder_head == "linear":
            p["finetune_steps"] = o.finetune_steps
    return p


def evaluate_methods(
    root: Path | str,
    *,
    episodes: EpisodeFile | Path | str,
    methods: str | Sequence[str] | None = None,
    options: EvalOptions | None = None,
    norm: str | Normaliser = "global",
    features: Features | None = None,
    force: bool = False,
) -> list[EvalResult]:
    """Evaluate each method on the fixed ``episodes``; update ``eval/results.csv`` / ``.md``.

    Rows whose key (method parameters + splits, episodes and features hashes) is
    already in the table are returned as stored, without training."""
    o = options or EvalOptions()
    names = resolve_methods(o.method if methods is None else methods, o)
    if o.backbone not in BACKBONES:
        raise UsageError(f"unknown backbone {o.backbone!r}; expected one of {', '.join(BACKBONES)}")
    if o.steps < 0 or o.learning_rate <= 0 or o.max_seconds <= 0:
        raise UsageError(f"steps must be >= 0 and learning_rate, max_seconds > 0; got {o.steps}, {o.learning_rate}, {o.max_seconds}")
    if o.encoder_head not in ("nearest-centroid", "linear"):
        raise UsageError(f"encoder_head must be nearest-centroid or linear, got {o.encoder_head!r}")
    layout = DatasetLayout(Path(root))
    ep_path = episodes.path if isinstance(episodes, EpisodeFile) else Path(episodes)
    header, fixed = read_episodes(ep_path)
    splits = read_splits(layout.root)
    if header.splits_sha256 != splits.content_sha256:
        raise UsageError(
            f"{ep_path} was drawn from other splits ({header.splits_sha256[:12]}, now {splits.content_sha256[:12]}); "
            "rewrite it with 'audioset-fewshot episodes --force'"
        )
    if features is None:
        from audioset_fewshot.process import load_features

        features = load_features(layout.root, verify=True)  # a NaN or a flipped byte must never reach a result
    fkey = str(getattr(features, "key", ""))
    piece_frames = _piece_frames(features, o.piece_seconds)
    sequences = getattr(features, "item_shape", None) is not None
    table = read_table(layout.eval_dir / "results.csv")
    stored = {r["key"]: r for r in table}
    inputs = {"splits_sha256": splits.content_sha256, "episodes_sha256": header.episodes_sha256, "features_key": fkey}
    results: list[EvalResult] = []
    todo: list[tuple[str, dict[str, Any], str]] = []
    for m in names:
        params = _method_params(m, o, norm, piece_frames, header.n_way, header.k_shot)
        if sequences and params.get("backbone"):
            params["backbone"] = "sequence"  # embedding sequences (the VGGish release) get the 1-D encoder
        key = sha256_text(canonical_json({"params": params, "inputs": inputs}))
        if not force and key in stored:
            log.info("%s: stored result is up to date", m)
            results.append(dataclasses.replace(_from_row(stored[key], params), ran=False))
        else:
            todo.append((m, params, key))
            results.append(None)  # type: ignore[arg-type]  # filled below
    if todo:
        runner = _Runner(layout.root, splits, features, norm, header, fixed, o, piece_frames)
        with torch_threads(o.threads):
            for m, params, key in todo:
                res = runner.run(m, params, key, ep_path.name)
                results[[i for i, r in enumerate(results) if r is None][0]] = res
                log.info("%s", res.summary())
        new_ids = {_identity(r.row()) for r in results}
        kept = [r for r in table if _identity(r) not in new_ids]
        _write_table(layout, kept + [r.row() for r in results])
    elif table:
        _write_table(layout, table)
    return results


def _from_row(row: dict[str, str], params: dict[str, Any]) -> EvalResult:
    train: dict[str, Any] = {"steps": int(row["train_steps"] or 0)}
    if row["selected_step"]:
        train["selected_step"] = int(row["selected_step"])
    if row["val_accuracy"]:
        train["val_accuracy"] = float(row["val_accuracy"])
    return EvalResult(method=row["method"], mean=float(row["mean"]), ci95=float(row["ci95"]), n_way=int(row["n_way"]),
                      k_shot=int(row["k_shot"]), q_query=int(row["q_query"]), episodes=int(row["episodes"]), split=row["split"],
                      splits_sha256=row["splits_sha256"], episodes_sha256=row["episodes_sha256"], features_key=row["features_key"],
                      params=params, backbone=row["backbone"], episodes_file=row["episodes_file"],
                      saw_audioset_labels=row["saw_audioset_labels"] == "yes", train=train,
                      seconds={"train": float(row["train_seconds"]), "evaluate": float(row["eval_seconds"])}, key=row["key"])  # fmt: skip


class _Runner:
    """Trains and scores methods on one root, sharing datasets (and SimpleShot's
    pre-training between ``simpleshot`` and ``finetune``)."""

    def __init__(self, root: Path, splits: MetaSplits, features: Features, norm: str | Normaliser, header: EpisodeFile, fixed: list[FixedEpisode],
                 o: EvalOptions, piece_frames: int) -> None:  # fmt: skip
        self.root, self.splits, self.features, self.header, self.o = root, splits, features, header, o
        self.test = SplitDataset(root, header.split, features=features, norm=norm, splits=splits)
        self.norm = self.test.normalizer
        self.fixed = fixed
        self.piece_frames = piece_frames
        self._train: SplitDataset | None = None
        self._val: SplitDataset | None | bool = False
        self._pretrained: Trained | None = None
        from audioset_fewshot.methods import episode_arrays

        self.arrays = episode_arrays(self.test, fixed)

    def train(self) -> SplitDataset:
        if self._train is None:
            self._train = SplitDataset(self.root, "train", features=self.features, norm=self.norm, splits=self.splits)
        return self._train

    def val(self) -> SplitDataset | None:
        if self._val is False:
            try:
                self._val = SplitDataset(self.root, "val", features=self.features, norm=self.norm, splits=self.splits)
            except (StageNotReadyError, UsageError) as exc:  # a root without validation clips trains without selection
                log.warning("no validation split (%s): the last checkpoint is tested", exc)
                self._val = None
        return self._val if isinstance(self._val, SplitDataset) else None

    def settings(self) -> TrainSettings:
        from audioset_fewshot.methods import TrainSettings

        o = self.o
        return TrainSettings(backbone=o.backbone, n_way=o.n_way, k_shot=o.k_shot, q_query=o.q_query, steps=o.steps,
                             max_seconds=o.max_seconds, learning_rate=o.learning_rate, seed=o.seed, threads=o.threads,
                             piece_frames=self.piece_frames, val_episodes=o.val_episodes, val_every=max(1, o.val_every),
                             tasks_per_step=o.tasks_per_step, inner_lr=o.inner_lr, inner_steps=o.inner_steps,
                             batch_size=o.batch_size, finetune_steps=o.finetune_steps)  # fmt: skip

    def run(self, method: str, params: dict[str, Any], key: str, episodes_file: str) -> EvalResult:
        from audioset_fewshot import methods as M

        s = self.settings()
        h = self.header
        t0 = time.perf_counter()
        record: dict[str, Any] = {}
        arrays = self.arrays
        backbone = M.backbone_label(self.test, self.o.backbone)
        saw = False
        if method == "nearest-centroid":
            backbone = ""
            t1 = time.perf_counter()
            acc = M.score_centroid(M.embed_mel_stats(self.test), arrays, seed=s.seed)
        elif method == "untrained":
            trained = M.untrained(self.test, s)
            record = trained.record
            t1 = time.perf_counter()
            acc = M.score_centroid(M.embed_items(trained.model, self.test, s.piece_frames), arrays, seed=s.seed)
        elif method == "protonet":
            trained = M.train_protonet(self.train(), self.val(), s, val_k_shot=h.k_shot)
            record = trained.record
            t1 = time.perf_counter()
            acc = M.score_centroid(M.embed_items(trained.model, self.test, s.piece_frames), arrays, seed=s.seed)
        elif method in ("simpleshot", "finetune"):
            if self._pretrained is None:
                self._pretrained = M.train_simpleshot(self.train(), self.val(), s, k_shot=h.k_shot)
            trained = self._pretrained
            record = dict(trained.record)
            t1 = time.perf_counter()
            emb = M.cl2n(M.embed_items(trained.model, self.test, s.piece_frames), trained.base_mean)
            if method == "simpleshot":
                acc = M.score_centroid(emb, arrays, seed=s.seed)
            else:
                acc = M.score_linear(emb, arrays, seed=s.seed, steps=s.finetune_steps, lr=s.finetune_lr)
        elif method == "maml":
            trained = M.train_maml(self.train(), self.val(), s, n_way=h.n_way, k_shot=h.k_shot)
            record = trained.record
            t1 = time.perf_counter()
            arrays = arrays.head(min(len(arrays), max(1, self.o.maml_episodes)))
            acc = M.score_maml(trained.model, self.test, arrays, s)
        else:  # hear
            from audioset_fewshot.encoders import embed_with_encoder

            backbone = params["encoder"]["name"]
            saw = self.o.encoder_saw_audioset_labels
            emb, record = embed_with_encoder(self.root, self.test, self.o.encoder or "", self.o.encoder_weights)
            t1 = time.perf_counter()
            if self.o.encoder_head == "linear":
                acc = M.score_linear(M.cl2n(emb, None), arrays, seed=s.seed, steps=s.finetune_steps, lr=s.finetune_lr)
            else:
                acc = M.score_centroid(emb, arrays, seed=s.seed)
        t2 = time.perf_counter()
        mean, ci = accuracy_ci(acc)
        train_s = float(record.get("seconds", t1 - t0)) if method in M.TRAINED else round(t1 - t0, 3)
        return EvalResult(method=method, mean=mean, ci95=ci, n_way=h.n_way, k_shot=h.k_shot, q_query=h.q_query, episodes=len(acc),
                          split=h.split, splits_sha256=h.splits_sha256, episodes_sha256=h.episodes_sha256,
                          features_key=str(getattr(self.features, "key", "")), params=params, backbone=backbone,
                          episodes_file=episodes_file, saw_audioset_labels=saw, train=record,
                          seconds={"train": round(train_s, 3), "evaluate": round(t2 - t1, 3)}, key=key)  # fmt: skip


# ---------------------------------------------------------------------------------------
# the stage's single-method entry (kept for the pipeline and older callers)


def _load_result(path: Path) -> EvalResult | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("schema_version") != SCHEMA_VERSION:
            return None
        return EvalResult.from_dict(data, path=path)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def evaluate(
    root: Path | str,
    *,
    episodes: EpisodeFile | Path | str,
    method: str | None = None,
    options: EvalOptions | None = None,
    n_way: int | None = None,
    k_shot: int | None = None,
    q_query: int | None = None,
    steps: int | None = None,
    learning_rate: float | None = None,
    seed: int | None = None,
    norm: str | Normaliser = "global",
    features: Features | None = None,
    threads: int | None = None,
    force: bool = False,
) -> EvalResult:
    """Evaluate ``method`` (a name, ``all`` or a comma-separated list; default the
    options' method) and return the first
    method's result, also written to ``eval/results.json``; see :func:`evaluate_methods`.
    Keyword knobs given here override ``options``."""
    o = options or EvalOptions()
    given: dict[str, Any] = {"n_way": n_way, "k_shot": k_shot, "q_query": q_query, "steps": steps, "learning_rate": learning_rate, "seed": seed,
             "threads": threads}  # fmt: skip
    o = dataclasses.replace(o, **{k: v for k, v in given.items() if v is not None})
    results = evaluate_methods(root, episodes=episodes, methods=method, options=o, norm=norm, features=features, force=force)
    first = dataclasses.replace(results[0], ran=any(r.ran for r in results))
    layout = DatasetLayout(Path(root))
    old = _load_result(layout.eval_results)
    if old is not None and old.key == first.key and not force:
        return dataclasses.replace(old, ran=first.ran)
    first = dataclasses.replace(first, path=layout.eval_results)
    atomic_write_json(layout.eval_results, first.to_dict())
    return first


__all__ = [
    "BACKBONES",
    "CHOICES",
    "METHODS",
    "TABLE_COLUMNS",
    "EvalOptions",
    "EvalResult",
    "evaluate",
    "evaluate_methods",
    "read_table",
    "render_markdown",
    "resolve_methods",
]
