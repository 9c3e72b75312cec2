from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audioset_fewshot.config import PackOptions
from audioset_fewshot.errors import UsageError
from audioset_fewshot.process import (
    Normalizer,
    clean,
    compute_stats_direct,
    features,
    fit_normalizer,
    load_features,
    pack,
    stats_from_sums,
)


@pytest.fixture
def store(tone_root):  # type: ignore[no-untyped-def]
    root = tone_root.root
    clean(root)
    pack(root, PackOptions(workers=1))
    features(root)
    return load_features(root)


def _rel(a: np.ndarray | float, b: np.ndarray | float) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.abs(b)))


def test_stats_from_sums_equal_direct_to_1e9(store) -> None:  # type: ignore[no-untyped-def]
    for rows in ([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [1, 4, 9], [7]):
        pooled, direct = stats_from_sums(store, rows), compute_stats_direct(store, rows)
        assert _rel(pooled.global_mean, direct.global_mean) < 1e-9
        assert _rel(pooled.global_std, direct.global_std) < 1e-9
        assert _rel(pooled.channel_mean, direct.channel_mean) < 1e-9
        assert _rel(pooled.channel_std, direct.channel_std) < 1e-9
        np.testing.assert_array_equal(pooled.count, direct.count)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])  # the store is read-only
@given(data=st.data())
def test_stats_any_subset_property(store, data) -> None:  # type: ignore[no-untyped-def]
    rows = data.draw(st.lists(st.integers(0, len(store) - 1), min_size=1, max_size=12))
    pooled, direct = stats_from_sums(store, rows), compute_stats_direct(store, rows)
    assert _rel(pooled.global_std, direct.global_std) < 1e-9
    assert _rel(pooled.channel_mean, direct.channel_mean) < 1e-9


def test_global_and_channel_normalise_fitted_rows(store) -> None:  # type: ignore[no-untyped-def]
    rows = np.arange(8)
    x = np.asarray(store.mels[rows])
    g = fit_normalizer(store, rows, mode="global").apply(x)
    assert abs(float(g.astype(np.float64).mean())) < 1e-4
    assert abs(float(g.astype(np.float64).std()) - 1.0) < 1e-4
    c = fit_normalizer(store, rows, mode="channel").apply(x).astype(np.float64)
    np.testing.assert_allclose(c.mean(axis=(0, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(c.std(axis=(0, 2)), 1.0, atol=1e-3)
    p = fit_normalizer(store, mode="per_sample").apply(x).astype(np.float64)
    np.testing.assert_allclose(p.mean(axis=(1, 2)), 0.0, atol=1e-4)
    assert fit_normalizer(store, mode="none").apply(x) is x


def test_torch_and_numpy_apply_agree(store) -> None:  # type: ignore[no-untyped-def]
    x = np.asarray(store.mels[:3])
    for mode in ("global", "channel", "per_sample"):
        n = fit_normalizer(store, [0, 1, 2, 3], mode=mode)  # type: ignore[arg-type]
        out_t = n.apply(torch.from_numpy(x.copy()))
        assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.float32
        np.testing.assert_allclose(out_t.numpy(), n.apply(x), rtol=1e-5, atol=1e-4)


def test_normaliser_is_cached_by_key_rows_and_mode(store) -> None:  # type: ignore[no-untyped-def]
    a = fit_normalizer(store, [3, 1, 2], mode="channel")
    assert a.path is not None and a.path.parent == store.root / "processed" / "norm"
    assert a.path.name.startswith(f"channel-{store.key}-")
    mtime = a.path.stat().st_mtime_ns
    b = fit_normalizer(store, [1, 2, 3, 3], mode="channel")  # same set of rows
    assert b == a and b.path == a.path and a.path.stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(b.mean, stats_from_sums(store, [1, 2, 3]).channel_mean)  # exact round trip
    other = fit_normalizer(store, [1, 2, 4], mode="channel")
    assert other.path != a.path
    assert fit_normalizer(store, [1, 2, 3], mode="global").path != a.path
    assert Normalizer.from_dict(a.to_dict()) == a


def test_bad_rows_and_modes(store) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError, match="empty set of rows"):
        fit_normalizer(store, [], mode="global")
    with pytest.raises(UsageError, match=r"rows must be within 0\.\.11"):
        fit_normalizer(store, [0, 99], mode="global")
    with pytest.raises(UsageError, match="mode must be one of"):
        fit_normalizer(store, [0], mode="minmax")  # type: ignore[arg-type]
