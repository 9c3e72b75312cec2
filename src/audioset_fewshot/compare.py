"""Side by side: log-mels of the downloaded audio and the release's VGGish embeddings,
on the clips both have, the same episodes and the same classes.

A root built from YouTube (``features.kind: logmel``) can also hold the
release's embeddings of its own clips: :func:`add_release_features` looks every
clip of ``manifest/clips.csv`` up in the release (an exact plan: every clip is
wanted, none is replaced) and packs the ones found into a second features
folder, leaving the root's current features, splits and episodes untouched.

:func:`side_by_side` then evaluates one baseline on both feature sets:

- the splits' pools are restricted to the clips both feature sets hold;
- only the fixed episodes whose every clip is in both are scored, the same
  episodes for both;
- everything else (method, training episodes, seed, normalisation fitted on the
  train split) is the same.

The result (both accuracies with their 95 % intervals, the episodes and clips
used) is written to ``eval/side_by_side.json``; the report shows it.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audioset_fewshot._io import atomic_write_json
from audioset_fewshot.config import EvaluateConfig
from audioset_fewshot.episodes import EpisodeFile, accuracy_ci, read_episodes
from audioset_fewshot.errors import UsageError
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.splits import SPLITS, MetaSplits, read_splits
from audioset_fewshot.torchdata import SplitDataset

if TYPE_CHECKING:
    from audioset_fewshot.process.features import EmbeddingStore, FeatureStore

METHODS = ("protonet", "nearest-centroid")

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
RESULT_FILE = "side_by_side.json"


def add_release_features(root: Path | str, *, release: Path | str, workers: int = 2) -> str:
    """Pack the release's embeddings of the root's manifest clips beside its log-mels;
    returns the new features key (the root's current features stay as they are)."""
    from audioset_fewshot.manifest.clips import read_clips
    from audioset_fewshot.plan import PlanEntry, SamplingPlan
    from audioset_fewshot.release.obtain import obtain_from_release, release_features

    layout = DatasetLayout(Path(root))
    rows = read_clips(layout.clips_csv, root=layout.root)
    if not rows:
        raise UsageError(f"{layout.clips_csv} lists no clips; download some first")
    entries = [
        PlanEntry(
            clip_id=r.clip_id, ytid=r.ytid, start_s=r.start_s, end_s=r.end_s, owner_mid=r.owner_mid, labels=tuple(sorted(r.labels)), source=r.source, rank=i
        )
        for i, r in enumerate(rows)
    ]
    plan = SamplingPlan.exact(entries, params={"from": "manifest/clips.csv"})
    rep = obtain_from_release(plan, root=layout.root, release=release, workers=workers)
    log.info("release holds %d of the root's %d clips", rep.obtained, len(rows))
    return release_features(layout.root, release=release, workers=workers, make_current=False).key


@dataclass(frozen=True)
class Side:
    """One feature set's result."""

    features_key: str
    kind: str
    mean: float
    ci95: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SideBySide:
    method: str
    split: str
    n_way: int
    k_shot: int
    q_query: int
    episodes_total: int
    episodes_used: int
    clips_common: int
    classes: int
    logmel: Side
    embeddings: Side
    path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "stage": "side_by_side",
            "method": self.method,
            "split": self.split,
            "n_way": self.n_way,
            "k_shot": self.k_shot,
            "q_query": self.q_query,
            "episodes_total": self.episodes_total,
            "episodes_used": self.episodes_used,
            "clips_common": self.clips_common,
            "classes": self.classes,
            "logmel": self.logmel.to_dict(),
            "embeddings": self.embeddings.to_dict(),
        }

    def summary(self) -> str:
        return (
            f"{self.method} on {self.episodes_used} of {self.episodes_total} {self.n_way}-way {self.k_shot}-shot {self.split} "
            f"episodes ({self.clips_common} clips in both): log-mel {self.logmel.mean * 100:.1f} % +- {self.logmel.ci95 * 100:.1f} %, "
            f"VGGish release {self.embeddings.mean * 100:.1f} % +- {self.embeddings.ci95 * 100:.1f} %"
        )


def _restricted(splits: MetaSplits, keep: set[str]) -> MetaSplits:
    pools = {s: {m: tuple(c for c in ids if c in keep) for m, ids in splits.pools[s].items()} for s in SPLITS}
    return dataclasses.replace(splits, pools=pools, multi_labels={c: m for c, m in splits.multi_labels.items() if c in keep})


def side_by_side(
    root: Path | str,
    *,
    episodes: EpisodeFile | Path | str,
    options: EvaluateConfig | None = None,
    logmel: FeatureStore | EmbeddingStore | str | None = None,
    embeddings: FeatureStore | EmbeddingStore | str | None = None,
    method: str = "nearest-centroid",
    norm: str = "global",
) -> SideBySide:
    """Evaluate ``method`` on both feature sets of ``root`` (see the module docstring).

    ``options``: the evaluate section (protonet's training shape, steps, learning rate,
    threads; the seed).  ``logmel`` / ``embeddings``: feature stores or features keys
    (default: the root's current features, and the newest vggish-release features folder)."""
    from audioset_fewshot import methods as M
    from audioset_fewshot.process import load_features
    from audioset_fewshot.process.features import torch_threads

    o = options or EvaluateConfig()

    if method not in METHODS:
        raise UsageError(f"unknown method {method!r} for the side-by-side comparison; expected one of {', '.join(METHODS)}")
    layout = DatasetLayout(Path(root))
    lm = logmel if logmel is not None and not isinstance(logmel, str) else load_features(layout.root, key=logmel)
    if embeddings is None or isinstance(embeddings, str):
        embeddings = load_features(layout.root, key=embeddings or _release_key(layout))
    em = embeddings
    if getattr(lm, "kind", "logmel") == "vggish-release" or getattr(em, "kind", "") != "vggish-release":
        raise UsageError("side_by_side needs log-mel features and the release's embeddings (features.kind vggish-release)")
    ep_path = episodes.path if isinstance(episodes, EpisodeFile) else Path(episodes)
    header, fixed = read_episodes(ep_path)
    splits = read_splits(layout.root)
    common = {r.clip_id for r in lm.index} & {r.clip_id for r in em.index}
    if not common:
        raise UsageError(f"the log-mels and the embeddings of {layout.root} share no clip")
    used = [ep for ep in fixed if all(c in common for row in (*ep.support, *ep.query) for c in row)]
    if not used:
        raise UsageError(f"none of the {len(fixed)} episodes of {ep_path} has all its clips in both feature sets")
    restricted = _restricted(splits, common)
    sides: list[Side] = []
    for store in (lm, em):
        test = SplitDataset(layout.root, header.split, features=store, norm=norm, splits=restricted)
        if method == "protonet":
            # MetaAudio's CRNN on log-mels, the 1-D sequence encoder on the release's embeddings
            train = SplitDataset(layout.root, "train", features=store, norm=test.normalizer, splits=restricted)
            settings = M.TrainSettings(n_way=o.n_way, k_shot=o.k_shot, q_query=o.q_query, steps=o.steps, learning_rate=o.learning_rate,
                                       seed=o.seed, threads=o.threads, val_episodes=0)  # fmt: skip
            with torch_threads(o.threads):
                trained = M.train_protonet(train, None, settings, val_k_shot=header.k_shot)
                emb = M.embed_items(trained.model, test, 0)
        else:
            emb = M.embed_mel_stats(test)
        mean, ci = accuracy_ci(M.score_centroid(emb, M.episode_arrays(test, used), seed=o.seed))
        sides.append(Side(features_key=str(store.key), kind=str(getattr(store, "kind", "logmel")), mean=mean, ci95=ci))
    classes = {m for ep in used for m in ep.classes}
    out = SideBySide(
        method=method,
        split=header.split,
        n_way=header.n_way,
        k_shot=header.k_shot,
        q_query=header.q_query,
        episodes_total=len(fixed),
        episodes_used=len(used),
        clips_common=len(common),
        classes=len(classes),
        logmel=sides[0],
        embeddings=sides[1],
        path=layout.eval_dir / RESULT_FILE,
    )
    atomic_write_json(layout.eval_dir / RESULT_FILE, out.to_dict())
    log.info("%s", out.summary())
    return out


def _release_key(layout: DatasetLayout) -> str:
    import json

    found = []
    for meta in sorted(layout.features_dir.glob("*/meta.json")) if layout.features_dir.is_dir() else []:
        try:
            data = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if data.get("kind") == "vggish-release":
            found.append((meta.stat().st_mtime_ns, meta.parent.name))
    if not found:
        raise UsageError(f"{layout.root} holds no release embeddings; add them with add_release_features (or 'evaluate --compare-release')")
    return max(found)[1]


__all__ = ["RESULT_FILE", "Side", "SideBySide", "add_release_features", "side_by_side"]
