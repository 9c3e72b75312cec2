"""The sampler's fast paths draw exactly what the plain definition draws.

The reference below is the sampler as first written (Python sets, one mask per
conflicting class, np.stack per episode); the fast one (bit masks for the guard,
one concatenate per episode, iteration without Episode objects) must give the
same classes and items for every episode, every shape and every guard pressure,
so fixed episode files never change.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from test_episodes import multi_label_index  # type: ignore[import-not-found]

from audioset_fewshot.episodes import EpisodeIndex, EpisodeSampler


def reference_items(index: EpisodeIndex, classes: Sequence[int], rng: np.random.Generator, need: int) -> list[np.ndarray] | None:
    chosen = set(classes)
    picks: list[np.ndarray] = []
    for c in classes:
        items = index.class_items[c]
        conf = index.conflicts[c]
        bad = [conf[d] for d in chosen if d in conf] if conf else None
        if not bad:
            if len(items) < need:
                return None
            picks.append(items[rng.choice(len(items), need, replace=False)])
            continue
        mask = np.ones(len(items), dtype=bool)
        for positions in bad:
            mask[positions] = False
        allowed = np.flatnonzero(mask)
        if len(allowed) < need:
            return None
        picks.append(items[allowed[rng.choice(len(allowed), need, replace=False)]])
    return picks


def reference_episode(s: EpisodeSampler, i: int, epoch: int) -> tuple[list[int], list[int]]:
    """(classes, indices) of episode i as the first sampler drew it."""
    rng = np.random.default_rng([s.seed, epoch, i])
    eligible = np.flatnonzero(s.index.sizes() >= s.k_shot + s.q_query)
    for _ in range(s.max_attempts):
        classes = eligible[rng.choice(len(eligible), s.n_way, replace=False)].tolist()
        picks = reference_items(s.index, classes, rng, s.k_shot + s.q_query)
        if picks is not None:
            stacked = np.stack(picks)
            return classes, stacked[:, : s.k_shot].ravel().tolist() + stacked[:, s.k_shot :].ravel().tolist()
    raise AssertionError("the reference found no draw")


@pytest.mark.parametrize(
    ("n", "k", "q", "multi", "episodes"),
    [
        (5, 5, 15, 0.18, 600),  # the benchmark's shape
        (20, 1, 5, 0.3, 300),  # many classes per episode: the guard bites in most draws
        (10, 5, 5, 0.6, 300),  # heavy multi-labelling: redraws
        (3, 2, 0, 0.18, 300),  # no queries
    ],
)
def test_fast_sampler_equals_the_reference(n: int, k: int, q: int, multi: float, episodes: int) -> None:
    index, _ = multi_label_index(np.random.default_rng([n, k, q]), n_classes=60, mean_size=60, multi=multi)
    s = EpisodeSampler(index, n_way=n, k_shot=k, q_query=q, episodes=episodes, seed=3, epoch=2)
    guarded = 0
    listed = list(s)
    for i in range(episodes):
        classes, indices = reference_episode(s, i, 2)
        ep = s.episode(i)
        assert list(ep.classes) == classes and ep.indices() == indices and listed[i] == indices
        assert ep.support.shape == (n, k) and ep.query.shape == (n, q) and ep.support.dtype == np.int64
        guarded += any(index.conflict_bits[c] & sum(1 << d for d in classes) for c in classes)
    assert guarded > 0  # the guard's slow path ran


def test_guard_bits_match_the_conflict_table() -> None:
    index, _ = multi_label_index(np.random.default_rng(1), n_classes=80, mean_size=40, multi=0.3)
    for c, conf in enumerate(index.conflicts):
        assert index.conflict_bits[c] == sum(1 << d for d in conf)
    # draw_items takes numpy integers too (class numbers above 63 must not overflow)
    s = EpisodeSampler(index, n_way=4, k_shot=2, q_query=3, episodes=1, seed=0)
    classes = [70, 3, 65, 12]
    a = s.draw_items(np.asarray(classes), np.random.default_rng(5))
    b = reference_items(index, classes, np.random.default_rng(5), 5)
    assert (a is None and b is None) or (a is not None and b is not None and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True)))
