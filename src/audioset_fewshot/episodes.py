"""Seeded N-way K-shot episodes: a sampler, fixed evaluation files, confidence intervals.

Episode ``i`` of epoch ``e`` is drawn from ``numpy.random.default_rng([seed, e, i])``
and from nothing else, so it is the same whatever order episodes are drawn in,
however many DataLoader workers there are and wherever a run resumes.  Sampling
touches index arrays only (per-class arrays of dataset indices, built once),
never audio.

The *episode guard*: no item of an episode carries the label of another of the
episode's classes (AudioSet is multi-label; a clip of "Dog" and "Bark" must not
be a "Dog" support in an episode that asks to tell "Dog" from "Bark").  When a
draw breaks the guard, the sampler redraws from the same generator (bounded
attempts), so the result is still a function of ``(seed, epoch, i)`` only.

Layout of an episode's indices: supports class by class (``k_shot`` of class 0,
then of class 1, ...), then queries class by class; the episode label of class
``j`` is ``j``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from audioset_fewshot._io import atomic_open, atomic_write_json, sha256_text
from audioset_fewshot.errors import AudiosetFewshotError, UsageError
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.splits import MetaSplits, check_split, read_splits

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MAX_ATTEMPTS = 100


class LabelledDataset(Protocol):
    """What a sampler needs of a dataset: learn2learn's ``labels_to_indices`` (``{label:
    [item, ...]}``); a :class:`~audioset_fewshot.torchdata.SplitDataset` also has
    ``carried_labels``, which the episode guard reads when present."""

    @property
    def labels_to_indices(self) -> Mapping[int, Sequence[int]]: ...


class EpisodeError(AudiosetFewshotError):
    """Episodes cannot be drawn as asked (too few classes or clips, or the guard cannot hold)."""


# ---------------------------------------------------------------------------------------
# the index


class EpisodeIndex:
    """Per-class arrays of item indices plus the guard's conflict table, built once.

    ``class_items[c]``: int64 array of the items labelled ``c``.  ``carried``: for
    items that carry more than their own class, item -> every class (of this
    index) it carries.  ``item_keys``: optional identity of each item (a clip id);
    items sharing a key are one clip and count as carrying each other's classes.
    """

    def __init__(
        self, class_items: Sequence[Sequence[int] | np.ndarray], *, carried: Mapping[int, Iterable[int]] | None = None, item_keys: Sequence[str] | None = None
    ) -> None:
        self.class_items: tuple[np.ndarray, ...] = tuple(np.asarray(a, dtype=np.int64) for a in class_items)
        self.num_classes = len(self.class_items)
        carry: dict[int, set[int]] = {}
        if carried is not None:
            for item, labels in carried.items():
                carry.setdefault(int(item), set()).update(int(c) for c in labels)
        if item_keys is not None:
            # the same clip under two labels: each copy carries both labels
            label_of: dict[int, int] = {}
            for c, items in enumerate(self.class_items):
                for it in items.tolist():
                    label_of[it] = c
            by_key: dict[str, set[int]] = {}
            for it, c in label_of.items():
                by_key.setdefault(item_keys[it], set()).add(c)
            for it in label_of:
                labels = by_key[item_keys[it]]
                if len(labels) > 1:
                    carry.setdefault(it, set()).update(labels)
        # conflicts[c][d] = positions within class_items[c] of items that also carry d
        self.conflicts: tuple[dict[int, np.ndarray], ...] = tuple(self._conflicts(c, carry) for c in range(self.num_classes))
        # conflict_bits[c]: bit d set when some item of class c carries class d, so the guard
        # asks "does class c clash with this episode's classes?" with one AND of two ints
        self.conflict_bits: tuple[int, ...] = tuple(sum(1 << d for d in conf) for conf in self.conflicts)

    def _conflicts(self, c: int, carry: Mapping[int, set[int]]) -> dict[int, np.ndarray]:
        if not carry:
            return {}
        out: dict[int, list[int]] = {}
        for pos, it in enumerate(self.class_items[c].tolist()):
            for d in carry.get(it, ()):
                if d != c:
                    out.setdefault(d, []).append(pos)
        return {d: np.asarray(v, dtype=np.int64) for d, v in sorted(out.items())}

    @classmethod
    def from_labels(
        cls, labels: Sequence[int] | np.ndarray, *, carried: Mapping[int, Iterable[int]] | None = None, item_keys: Sequence[str] | None = None
    ) -> EpisodeIndex:
        """From one dense label per item (0..C-1)."""
        arr = np.asarray(labels, dtype=np.int64)
        if arr.size and arr.min() < 0:
            raise UsageError("labels must be non-negative class numbers")
        n = int(arr.max()) + 1 if arr.size else 0
        order = np.argsort(arr, kind="stable")
        bounds = np.searchsorted(arr[order], np.arange(n + 1))
        return cls([order[bounds[c] : bounds[c + 1]] for c in range(n)], carried=carried, item_keys=item_keys)

    @classmethod
    def from_dataset(cls, dataset: EpisodeIndex | LabelledDataset) -> EpisodeIndex:
        """From a dataset with learn2learn's ``labels_to_indices`` (and our optional
        ``carried_labels``: per item, the dense labels it carries)."""
        if isinstance(dataset, EpisodeIndex):
            return dataset
        l2i = getattr(dataset, "labels_to_indices", None)
        if l2i is None:
            raise UsageError(f"{type(dataset).__name__} has no 'labels_to_indices'; pass an EpisodeIndex or a SplitDataset")
        n = max(int(k) for k in l2i) + 1 if l2i else 0
        class_items = [np.asarray(l2i.get(c, ()), dtype=np.int64) for c in range(n)]
        carried_seq = getattr(dataset, "carried_labels", None)
        carried = None
        if carried_seq is not None:
            carried = {i: labels for i, labels in enumerate(carried_seq) if len(labels) > 1}
        return cls(class_items, carried=carried)

    def sizes(self) -> np.ndarray:
        return np.asarray([len(a) for a in self.class_items], dtype=np.int64)


# ---------------------------------------------------------------------------------------
# episodes


@dataclass(frozen=True)
class Episode:
    """One episode: ``classes`` (index class numbers, in episode-label order),
    ``support`` (n_way, k_shot) and ``query`` (n_way, q_query) item indices."""

    index: int
    epoch: int
    classes: tuple[int, ...]
    support: np.ndarray
    query: np.ndarray

    def indices(self) -> list[int]:
        """Supports class by class, then queries class by class."""
        return self.support.ravel().tolist() + self.query.ravel().tolist()

    def labels(self) -> list[int]:
        """Episode labels (0..n_way-1) in the order of :meth:`indices`."""
        n, k = self.support.shape
        q = self.query.shape[1]
        return np.repeat(np.arange(n), k).tolist() + np.repeat(np.arange(n), q).tolist()


def _check_shape(n_way: int, k_shot: int, q_query: int) -> None:
    for name, value, low in (("n_way", n_way, 1), ("k_shot", k_shot, 1), ("q_query", q_query, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise UsageError(f"{name} must be an integer >= {low}, got {value!r}")


class EpisodeSampler:
    """Seeded episode sampler; also a torch ``batch_sampler`` (yields lists of indices).

    ``dataset_or_index``: an :class:`EpisodeIndex` or a dataset with
    ``labels_to_indices`` (a :class:`~audioset_fewshot.torchdata.SplitDataset`).
    Classes with fewer than ``k_shot + q_query`` items are never drawn.

    ``state_dict()["next"]`` counts the episodes the sampler has handed out.  A
    DataLoader with workers prefetches ahead of the training loop, so to resume
    exactly, save the number of steps the loop finished and resume with
    ``load_state_dict({**state, "next": steps_done})``.
    """

    def __init__(
        self,
        dataset_or_index: EpisodeIndex | LabelledDataset,
        *,
        n_way: int,
        k_shot: int,
        q_query: int,
        episodes: int,
        seed: int,
        epoch: int = 0,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        _check_shape(n_way, k_shot, q_query)
        if episodes < 0:
            raise UsageError(f"episodes must be >= 0, got {episodes}")
        self.index = EpisodeIndex.from_dataset(dataset_or_index)
        self.n_way, self.k_shot, self.q_query = int(n_way), int(k_shot), int(q_query)
        self.episodes, self.seed, self.epoch = int(episodes), int(seed), int(epoch)
        self.max_attempts = int(max_attempts)
        need = self.k_shot + self.q_query
        sizes = self.index.sizes()
        self._eligible = np.flatnonzero(sizes >= need)
        if len(self._eligible) < self.n_way:
            raise EpisodeError(
                f"{self.n_way}-way {self.k_shot}-shot {self.q_query}-query episodes need {self.n_way} classes with at least "
                f"{need} clips each; only {len(self._eligible)} of {self.index.num_classes} classes have that many "
                f"(largest: {sorted(sizes.tolist(), reverse=True)[: self.n_way]}). Lower n_way, k_shot or q_query, or obtain more clips"
            )
        self._next = 0  # first episode the next iteration yields (resume point)

    # -- one episode --------------------------------------------------------------------------
    def episode(self, i: int, *, epoch: int | None = None) -> Episode:
        """Episode ``i`` of ``epoch`` (default: the sampler's epoch); depends on nothing else."""
        ep = self.epoch if epoch is None else int(epoch)
        classes, stacked = self._draw(int(i), ep)
        return Episode(int(i), ep, tuple(classes), stacked[:, : self.k_shot], stacked[:, self.k_shot :])

    def _draw(self, i: int, ep: int) -> tuple[list[int], np.ndarray]:
        """(classes, items (n_way, k_shot + q_query)) of episode ``i`` of epoch ``ep``."""
        rng = np.random.default_rng([self.seed, ep, i])
        eligible = self._eligible
        n_eligible, n_way, need = len(eligible), self.n_way, self.k_shot + self.q_query
        for _ in range(self.max_attempts):
            classes = eligible[rng.choice(n_eligible, n_way, replace=False)].tolist()
            picks = self.draw_items(classes, rng)
            if picks is not None:
                return classes, np.concatenate(picks).reshape(n_way, need)
        raise EpisodeError(
            f"episode {i} (seed {self.seed}, epoch {ep}): no draw in {self.max_attempts} attempts satisfies the "
            "episode guard (too many clips carry several of these classes); lower n_way, k_shot or q_query"
        )

    def draw_items(self, classes: Sequence[int], rng: np.random.Generator) -> list[np.ndarray] | None:
        """``k_shot + q_query`` distinct items of each class in ``classes`` that carry no
        other class of ``classes``; None when a class has too few such items.

        The generator is called once per class, in order, over the class's items
        (or only those the guard allows), so the draw is a function of ``rng`` alone.
        """
        need = self.k_shot + self.q_query
        index = self.index
        chosen_bits = 0
        for c in classes:
            chosen_bits |= 1 << int(c)
        picks: list[np.ndarray] = []
        for c in classes:
            items = index.class_items[c]
            if not index.conflict_bits[c] & chosen_bits:  # no item of c carries another class of this episode
                if len(items) < need:
                    return None
                picks.append(items[rng.choice(len(items), need, replace=False)])
                continue
            conf = index.conflicts[c]
            mask = np.ones(len(items), dtype=bool)
            for d in classes:
                positions = conf.get(d)
                if positions is not None:
                    mask[positions] = False
            allowed = np.flatnonzero(mask)
            if len(allowed) < need:
                return None  # this class cannot field clean clips next to these classes: redraw
            picks.append(items[allowed[rng.choice(len(allowed), need, replace=False)]])
        return picks

    def indices(self, i: int) -> list[int]:
        return self.episode(i).indices()

    # -- episode labels for a DataLoader ----------------------------------------------------------
    def episode_labels(self) -> np.ndarray:
        """int64 labels 0..n_way-1 in the order of an episode's items (supports class by
        class, then queries class by class)."""
        ways = np.arange(self.n_way, dtype=np.int64)
        return np.concatenate([np.repeat(ways, self.k_shot), np.repeat(ways, self.q_query)])

    def collate(self, batch: Sequence[tuple[torch.Tensor | np.ndarray, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """A DataLoader ``collate_fn`` for this sampler's episodes: ``(x, y)`` with ``x`` the
        stacked items (``[N*(K+Q), ...]``, supports then queries) and ``y`` the episode labels
        0..N-1 (a LongTensor), not the split's class numbers the dataset yields::

            DataLoader(dataset, batch_sampler=sampler, collate_fn=sampler.collate)
        """
        import torch

        need = self.n_way * (self.k_shot + self.q_query)
        if len(batch) != need:
            raise UsageError(f"collate got {len(batch)} items, but an episode of this sampler has {need} "
                             f"({self.n_way}-way {self.k_shot}-shot {self.q_query}-query); use the sampler as the DataLoader's batch_sampler")  # fmt: skip
        labels = self.episode_labels()
        split_labels = [int(item[1]) for item in batch]
        owner: dict[int, int] = {}
        for episode_label, split_label in zip(labels.tolist(), split_labels, strict=True):
            if owner.setdefault(episode_label, split_label) != split_label:
                raise UsageError("collate: the items of one episode class carry different split labels; "
                                 "the batch does not come from this sampler")  # fmt: skip
        x = torch.stack([torch.as_tensor(item[0]) for item in batch])
        return x, torch.from_numpy(labels)

    # -- iteration / torch batch_sampler ---------------------------------------------------------
    def __len__(self) -> int:
        return self.episodes

    def __iter__(self) -> Iterator[list[int]]:
        start, self._next = self._next, 0
        k, need = self.k_shot, self.k_shot + self.q_query
        # supports class by class, then queries class by class, as Episode.indices() orders them
        order = np.concatenate([np.arange(k) + j * need for j in range(self.n_way)] + [np.arange(k, need) + j * need for j in range(self.n_way)])
        for i in range(start, self.episodes):
            self._next = i + 1
            yield self._draw(i, self.epoch)[1].ravel()[order].tolist()
        self._next = 0

    def set_epoch(self, epoch: int) -> None:
        """Start a new epoch (different episodes); resets the resume point."""
        self.epoch = int(epoch)
        self._next = 0

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume at the next episode (plain JSON-able values)."""
        return {
            "seed": self.seed,
            "epoch": self.epoch,
            "next": self._next,
            "episodes": self.episodes,
            "n_way": self.n_way,
            "k_shot": self.k_shot,
            "q_query": self.q_query,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for key in ("seed", "n_way", "k_shot", "q_query"):
            if key in state and int(state[key]) != getattr(self, key):
                raise UsageError(f"sampler state has {key}={state[key]} but this sampler has {key}={getattr(self, key)}; resume with the same parameters")
        self.epoch = int(state.get("epoch", self.epoch))
        nxt = int(state.get("next", 0))
        if not 0 <= nxt <= self.episodes:
            raise UsageError(f"sampler state resumes at episode {nxt}, outside 0..{self.episodes}")
        self._next = nxt


# ---------------------------------------------------------------------------------------
# accuracy with a confidence interval


def accuracy_ci(per_episode_acc: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """``(mean, 1.96 * std / sqrt(T))`` over ``T`` episode accuracies.

    ``std`` is the population standard deviation (``np.std``, ddof=0), as in
    MetaAudio and most few-shot papers' evaluation code; with T = 10,000 the
    difference to ddof=1 is 0.005 %.  The interval is the normal approximation
    of a 95 % confidence interval of the mean.
    """
    acc = np.asarray(per_episode_acc, dtype=np.float64)
    if acc.ndim != 1 or acc.size == 0:
        raise UsageError("accuracy_ci needs a non-empty 1-D sequence of per-episode accuracies")
    if not np.all(np.isfinite(acc)):
        raise UsageError("accuracy_ci: per-episode accuracies must be finite")
    return float(acc.mean()), float(1.96 * acc.std() / math.sqrt(acc.size))


# ---------------------------------------------------------------------------------------
# fixed evaluation episodes on a dataset root


def split_index(splits: MetaSplits, split: str) -> tuple[EpisodeIndex, list[str], list[tuple[str, str]]]:
    """An EpisodeIndex over a split's pools: items are (class MID, clip id) pairs.

    Returns the index, the class MIDs (index class number -> MID) and the items."""
    check_split(split)
    pools = splits.pools[split]
    mids = sorted(pools)
    items: list[tuple[str, str]] = []
    class_items: list[list[int]] = []
    for mid in mids:
        start = len(items)
        items.extend((mid, clip) for clip in pools[mid])
        class_items.append(list(range(start, len(items))))
    number = {m: c for c, m in enumerate(mids)}
    carried: dict[int, list[int]] = {}
    for it, (_, clip) in enumerate(items):
        labels = splits.multi_labels.get(clip)
        if labels:
            mine = [number[m] for m in labels if m in number]
            if len(mine) > 1:
                carried[it] = mine
    return EpisodeIndex(class_items, carried=carried, item_keys=[clip for _, clip in items]), mids, items


@dataclass(frozen=True)
class EpisodeFile:
    """A fixed episode file: where it is, its parameters and hashes."""

    path: Path
    split: str
    n_way: int
    k_shot: int
    q_query: int
    count: int
    seed: int
    splits_sha256: str
    episodes_sha256: str
    ran: bool = field(default=True, compare=False)  # False: write_episodes found the file current

    def header(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "stage": "episodes",
            "params": {"split": self.split, "n_way": self.n_way, "k_shot": self.k_shot, "q_query": self.q_query, "count": self.count, "seed": self.seed},
            "splits_sha256": self.splits_sha256,
        }


@dataclass(frozen=True)
class FixedEpisode:
    """One line of an episode file: class MIDs, support and query clip ids per class."""

    index: int
    classes: tuple[str, ...]
    support: tuple[tuple[str, ...], ...]
    query: tuple[tuple[str, ...], ...]


# ROOT/episodes/latest.json names the episode file written (or found up to date) last, so that
# 'evaluate' uses what 'episodes' just wrote unless it is told otherwise
LATEST = "latest.json"


def _record_latest(path: Path) -> None:
    atomic_write_json(path.parent / LATEST, {"file": path.name})


def latest_episodes(root: Path | str) -> Path | None:
    """The episode file ``write_episodes`` wrote (or found up to date) last under ``root``, if it still exists."""
    folder = DatasetLayout(Path(root)).episodes_dir
    try:
        data = json.loads((folder / LATEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    name = data.get("file") if isinstance(data, dict) else None
    if not isinstance(name, str) or "/" in name or "\\" in name or not name.endswith(".jsonl"):
        return None
    path = folder / name
    return path if path.is_file() else None


def choose_episodes(root: Path | str, *, file: Path | str | None = None, shape: Mapping[str, Any] | None = None,
                    defaults: Mapping[str, Any] | None = None) -> EpisodeFile:  # fmt: skip
    """The fixed test episodes an evaluation uses, in this order:

    * ``file``: that episode file (verified);
    * ``shape`` (``split``, ``n_way``, ``k_shot``, ``q_query``, ``count``, ``seed``; the
      ones given, the rest from ``defaults``): that file, written first if missing;
    * the file ``write_episodes`` wrote last under ``root`` (``episodes`` before this);
    * else the file of ``defaults`` (the config's ``episodes`` section), written if missing.
    """
    if file is not None:
        if shape:
            raise UsageError(f"an episode file ({file}) fixes the test episodes: drop the test shape ({', '.join(sorted(shape))})")
        return read_episodes(file)[0]
    params = {**(defaults or {}), **(shape or {})}
    if not shape:
        latest = latest_episodes(root)
        if latest is not None:
            return read_episodes(latest)[0]
    return write_episodes(root, **params)


def episodes_path(root: Path | str, *, split: str, n_way: int, k_shot: int, q_query: int, count: int, seed: int) -> Path:
    return DatasetLayout(Path(root)).episodes_dir / f"{split}_{n_way}w{k_shot}s{q_query}q_{count}_seed{seed}.jsonl"


def _line(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


def _read_head_tail(path: Path) -> tuple[dict[str, Any], dict[str, Any]] | None:
    try:
        with open(path, "rb") as fh:
            head = fh.readline()
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - 4096))
            tail = fh.read().splitlines()[-1]
        return json.loads(head)["header"], json.loads(tail)["footer"]
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None


def write_episodes(
    root: Path | str,
    *,
    split: str = "test",
    n_way: int = 5,
    k_shot: int = 1,
    q_query: int = 15,
    count: int = 10000,
    seed: int = 0,
    force: bool = False,
    splits: MetaSplits | None = None,
) -> EpisodeFile:
    """Draw ``count`` fixed episodes of ``split`` from ``splits.json`` and write them as JSONL.

    First line ``{"header": {...params, splits_sha256}}``, then one episode per line
    (``{"i", "classes", "support", "query"}``, clip ids per class), last line
    ``{"footer": {"count", "episodes_sha256"}}`` (sha256 of the episode lines).
    The same splits and parameters give a byte-identical file; an up-to-date file
    is left alone.
    """
    check_split(split)
    _check_shape(n_way, k_shot, q_query)
    if count < 1:
        raise UsageError(f"count must be >= 1, got {count}")
    splits = splits if splits is not None else read_splits(root)
    path = episodes_path(root, split=split, n_way=n_way, k_shot=k_shot, q_query=q_query, count=count, seed=seed)
    record = EpisodeFile(path, split, n_way, k_shot, q_query, count, seed, splits.content_sha256, "")
    if not force and path.exists():
        found = _read_head_tail(path)
        if found is not None and found[0] == record.header():
            log.info("%s is up to date", path)
            _record_latest(path)
            return EpisodeFile(**{**record.__dict__, "episodes_sha256": str(found[1].get("episodes_sha256", "")), "ran": False})
    index, mids, items = split_index(splits, split)
    sampler = EpisodeSampler(index, n_way=n_way, k_shot=k_shot, q_query=q_query, episodes=count, seed=seed)
    lines: list[str] = []
    for i in range(count):
        ep = sampler.episode(i)
        lines.append(
            _line(
                {
                    "i": i,
                    "classes": [mids[c] for c in ep.classes],
                    "support": [[items[j][1] for j in row] for row in ep.support.tolist()],
                    "query": [[items[j][1] for j in row] for row in ep.query.tolist()],
                }
            )
        )
    body = "".join(lines)
    digest = sha256_text(body)
    with atomic_open(path, "w", newline="") as fh:
        fh.write(_line({"header": record.header()}))
        fh.write(body)
        fh.write(_line({"footer": {"count": count, "episodes_sha256": digest}}))
    _record_latest(path)
    log.info("wrote %d episodes to %s", count, path)
    return EpisodeFile(**{**record.__dict__, "episodes_sha256": digest})


def read_episodes(path: Path | str) -> tuple[EpisodeFile, list[FixedEpisode]]:
    """Read and verify an episode file (header, every line, footer hash)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise UsageError(f"{path} does not exist; write it with 'audioset-fewshot episodes'") from err
    lines = text.splitlines(keepends=True)
    try:
        header = json.loads(lines[0])["header"]
        footer = json.loads(lines[-1])["footer"]
        p = header["params"]
        body = "".join(lines[1:-1])
        if sha256_text(body) != footer["episodes_sha256"] or len(lines) - 2 != footer["count"] or footer["count"] != p["count"]:
            raise UsageError(
                f"{path}: episode hash or count does not match the footer (the file was edited or truncated); "
                "rewrite it with 'audioset-fewshot episodes --force'"
            )
        episodes = []
        for raw in lines[1:-1]:
            d = json.loads(raw)
            episodes.append(FixedEpisode(int(d["i"]), tuple(d["classes"]), tuple(tuple(r) for r in d["support"]), tuple(tuple(r) for r in d["query"])))
        record = EpisodeFile(
            path,
            p["split"],
            int(p["n_way"]),
            int(p["k_shot"]),
            int(p["q_query"]),
            int(p["count"]),
            int(p["seed"]),
            str(header["splits_sha256"]),
            str(footer["episodes_sha256"]),
        )
    except (IndexError, KeyError, TypeError, ValueError) as err:
        raise UsageError(f"{path}: malformed episode file ({type(err).__name__}: {err}); rewrite it with 'audioset-fewshot episodes --force'") from err
    return record, episodes


__all__ = [
    "Episode",
    "EpisodeError",
    "EpisodeFile",
    "EpisodeIndex",
    "EpisodeSampler",
    "FixedEpisode",
    "LabelledDataset",
    "accuracy_ci",
    "choose_episodes",
    "episodes_path",
    "latest_episodes",
    "read_episodes",
    "split_index",
    "write_episodes",
]
