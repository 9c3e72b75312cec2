from __future__ import annotations

import librosa
import numpy as np
import pytest

from audioset_fewshot.config import FeaturesOptions, PackOptions
from audioset_fewshot.errors import StageNotReadyError, UsageError
from audioset_fewshot.process import clean, features, load_features, log_mel, mel_filterbank, pack
from audioset_fewshot.process.features import hz_to_mel, mel_to_hz


@pytest.mark.parametrize(
    ("sr", "n_fft", "n_mels", "f_min", "f_max"),
    [
        (16000, 1024, 128, 0.0, None),
        (16000, 512, 64, 50.0, 7000.0),
        (22050, 2048, 40, 0.0, None),
    ],
)
def test_filterbank_matches_librosa(sr: int, n_fft: int, n_mels: int, f_min: float, f_max: float | None) -> None:
    ours = mel_filterbank(sample_rate_hz=sr, n_fft=n_fft, n_mels=n_mels, f_min=f_min, f_max=f_max)
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max)
    assert ours.shape == ref.shape == (n_mels, 1 + n_fft // 2)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-9)


def test_mel_scale_round_trips_and_matches_librosa() -> None:
    hz = np.array([0.0, 100.0, 999.0, 1000.0, 1001.0, 4000.0, 8000.0])
    np.testing.assert_allclose(hz_to_mel(hz), librosa.hz_to_mel(hz), rtol=1e-12)
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(hz)), hz, rtol=1e-12, atol=1e-9)


def _librosa_db(y: np.ndarray, **kw: object) -> np.ndarray:
    top_db = kw.pop("top_db", None)
    amin = kw.pop("amin", 1e-10)
    s = librosa.feature.melspectrogram(y=y, **kw)  # type: ignore[arg-type]
    return librosa.power_to_db(s, ref=1.0, amin=amin, top_db=top_db)


@pytest.mark.parametrize("top_db", [None, 80.0])
def test_log_mel_matches_librosa_within_1e4_db(rng: np.random.Generator, top_db: float | None) -> None:
    sr = 16000
    t = np.arange(10 * sr) / sr
    y = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 3100 * t * (1 + t / 20)) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    y[40000:48000] = 0.0  # a stretch of digital silence exercises the amin floor
    ours = log_mel(y, sample_rate_hz=sr, top_db=top_db)
    ref = _librosa_db(y, sr=sr, n_fft=1024, hop_length=512, n_mels=128, power=2.0, amin=1e-10, top_db=top_db)
    assert ours.shape == ref.shape == (128, 313)
    assert np.max(np.abs(ours - ref)) < 1e-4


def test_log_mel_other_parameters_match_librosa(rng: np.random.Generator) -> None:
    sr = 16000
    y = (0.2 * rng.standard_normal(3 * sr + 123)).astype(np.float32)
    kw = {"n_fft": 512, "hop_length": 160, "n_mels": 64, "fmin": 50.0, "fmax": 7600.0, "power": 1.0}
    ours = log_mel(y, sample_rate_hz=sr, n_fft=512, hop_length=160, n_mels=64, f_min=50.0, f_max=7600.0, power=1.0, amin=1e-5)
    ref = _librosa_db(y, sr=sr, amin=1e-5, **kw)
    assert ours.shape == ref.shape
    assert np.max(np.abs(ours - ref)) < 1e-4


def test_silence_floors_at_amin() -> None:
    out = log_mel(np.zeros(16000, dtype=np.float32))
    assert out.shape == (128, 32)
    assert np.all(out == pytest.approx(-100.0))


def test_features_of_pack_match_direct_transform(tone_root) -> None:  # type: ignore[no-untyped-def]
    root = tone_root.root
    clean(root)
    pk = pack(root, PackOptions(workers=1))
    rec = features(root)
    store = load_features(root)
    assert rec.shape == store.shape == (12, 128, 313)
    assert store.key == rec.key and store.meta["inputs"]["pack_key"] == pk.key
    audio = pk.open()
    direct = log_mel(audio[5].astype(np.float32) / 32768.0)
    np.testing.assert_array_equal(store.mels[5], direct)
    # per-clip statistics are the frame sums of the stored values
    np.testing.assert_allclose(store.stats_sum[5], store.mels[5].astype(np.float64).sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(store.stats_sumsq[5], np.square(store.mels[5].astype(np.float64)).sum(axis=1), rtol=1e-12)
    assert np.all(store.stats_count == 313)
    # index and lookups
    owners = [r.owner_mid for r in store.index]
    assert owners == sorted(owners)
    for mid in store.owner_mids:
        assert all(store.index[i].owner_mid == mid for i in store.rows_for(mid))
    assert sum(len(store.rows_for(m)) for m in store.owner_mids) == len(store)
    r = store.index[7]
    assert store.row_of(r.ytid, r.start_s) == 7


def test_features_rerun_is_noop_and_params_change_key(tone_root) -> None:  # type: ignore[no-untyped-def]
    root = tone_root.root
    clean(root)
    pack(root, PackOptions(workers=1))
    a = features(root)
    mtime = (a.path / "mels.f32").stat().st_mtime_ns
    assert features(root) == a
    assert (a.path / "mels.f32").stat().st_mtime_ns == mtime
    b = features(root, FeaturesOptions(hop_length=256, n_mels=64))
    assert b.key != a.key and b.shape == (12, 64, 626)
    assert load_features(root).key == b.key  # current follows the last run
    assert load_features(root, key=a.key).shape == a.shape


def test_per_file_export_matches_packed(tone_root) -> None:  # type: ignore[no-untyped-def]
    root = tone_root.root
    clean(root)
    pack(root, PackOptions(workers=1))
    rec = features(root, FeaturesOptions(layout="per-file"))
    store = load_features(root)
    assert rec.per_file_dir == tone_root.per_file_dir
    files = sorted(rec.per_file_dir.rglob("*.npy"))
    assert len(files) == len(store)
    r = store.index[3]
    from audioset_fewshot.layout import clip_stem
    from audioset_fewshot.validate import mid_slug

    arr = np.load(rec.per_file_dir / mid_slug(r.owner_mid) / f"{clip_stem(r.ytid, r.start_s)}.npy")
    np.testing.assert_array_equal(arr, store.mels[3])


def test_features_need_a_pack(tone_root) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(StageNotReadyError, match="run 'audioset-fewshot process --stage pack' first"):
        features(tone_root.root)
    with pytest.raises(StageNotReadyError, match="--stage features"):
        load_features(tone_root.root)


def test_bad_feature_parameters_are_usage_errors(tone_root) -> None:  # type: ignore[no-untyped-def]
    root = tone_root.root
    clean(root)
    pack(root, PackOptions(workers=1))
    with pytest.raises(UsageError, match="Nyquist"):
        features(root, FeaturesOptions(f_max=9000.0))
    with pytest.raises(UsageError, match="amin must be > 0"):
        features(root, FeaturesOptions(amin=0.0))


@pytest.mark.parametrize(("n_fft", "hop"), [(1024, 512), (1024, 256), (400, 160)])
def test_fast_framing_equals_torch_stft(rng: np.random.Generator, n_fft: int, hop: int) -> None:
    import torch

    from audioset_fewshot.process import LogMel

    x = torch.from_numpy((0.1 * rng.standard_normal((3, 16000 + 77))).astype(np.float32))
    tf = LogMel(n_fft=n_fft, hop_length=hop, n_mels=40)
    fast, ref = tf.power_spectrogram(x), tf.power_spectrogram_stft(x)
    assert fast.shape == ref.shape == (3, 1 + (16000 + 77) // hop, 1 + n_fft // 2)
    torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-6)


def test_importing_the_process_package_does_not_import_torch_or_librosa() -> None:
    import subprocess
    import sys

    code = "import sys, audioset_fewshot.process, audioset_fewshot.cli.process; print(sorted(m for m in ('torch', 'librosa') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_full_disk_during_features_leaves_nothing_half_written(tone_root, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import errno

    from audioset_fewshot.errors import ProcessingError

    root = tone_root.root
    clean(root)
    pack(root, PackOptions(workers=1))

    def full(path, arr, *a, **kw):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full)  # the disk fills when the statistics are written
    with pytest.raises(ProcessingError, match="features: the disk holding .* is full"):
        features(root)
    monkeypatch.undo()
    assert not any(p.name.startswith(".tmp-") for p in tone_root.features_dir.iterdir())
    with pytest.raises(StageNotReadyError):
        load_features(root)
    assert features(root).shape == (12, 128, 313)


def test_take_gathers_rows_in_order(tone_root) -> None:  # type: ignore[no-untyped-def]
    root = tone_root.root
    clean(root)
    pack(root, PackOptions(workers=1))
    features(root)
    store = load_features(root)
    rows = [7, 2, 11, 2]
    got = store.take(rows)
    assert got.shape == (4, 128, 313) and got.dtype == np.float32
    for i, r in enumerate(rows):
        np.testing.assert_array_equal(got[i], store.mels[r])
    buf = np.empty_like(got)
    assert store.take(rows, out=buf) is buf


def test_take_into_a_buffer_equals_take_and_checks_bounds(tone_root) -> None:  # type: ignore[no-untyped-def]
    root = tone_root.root
    clean(root)
    pack(root, PackOptions(workers=1))
    features(root, FeaturesOptions(n_mels=16))
    store = load_features(root)
    rows = [3, -1, 0, 11, 3]  # repeats and a negative index, as numpy takes them
    want = np.stack([np.asarray(store.mels[r]) for r in rows])
    got = store.take(rows)
    assert type(got) is np.ndarray and got.tobytes() == want.tobytes()  # a plain array, not a memmap
    buf = np.full_like(want, np.nan)
    assert store.take(np.asarray(rows), out=buf) is buf and buf.tobytes() == want.tobytes()
    for bad in ([12], [-13]):
        with pytest.raises(IndexError):
            store.take(bad)
        with pytest.raises(IndexError):
            store.take(bad, out=buf[:1])


def test_features_of_a_damaged_pack_are_never_committed(tone_root) -> None:  # type: ignore[no-untyped-def]
    """The pack's hashes are checked beside the computation; a flipped byte stops the commit."""
    from audioset_fewshot.errors import IntegrityError

    root = tone_root.root
    clean(root)
    pk = pack(root, PackOptions(workers=1))
    features(root, FeaturesOptions(n_mels=16))
    with open(pk.audio_path, "r+b") as fh:  # flip one byte: the size stays right
        fh.seek(pk.audio_path.stat().st_size // 2)
        b = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([b[0] ^ 0x10]))
    with pytest.raises(IntegrityError, match=r"audio\.int16.*differs from its recorded sha256"):
        features(root, FeaturesOptions(n_mels=24))
    assert not list(tone_root.features_dir.glob(".tmp-*"))
    assert load_features(root).meta["params"]["n_mels"] == 16  # the last good features stay current
