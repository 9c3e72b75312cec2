"""Integrity of the processed arrays: a flipped byte, a truncation or a NaN is found
before any result is produced; the stages that own an array rebuild a damaged one."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from audioset_fewshot._integrity import CHUNK_BYTES, ChunkHasher, hash_file, verify_file
from audioset_fewshot.config import CleanOptions, FeaturesOptions, PackOptions
from audioset_fewshot.errors import IntegrityError, ProcessingError
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.manifest.verify import CORRUPT_ARRAY
from audioset_fewshot.process import clean, features, load_features, load_pack, pack
from audioset_fewshot.process.check import verify_processed


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        b = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([b[0] ^ 0x40]))


def _processed(layout: DatasetLayout, *, dtype: str = "int16") -> tuple[object, object]:
    clean(layout.root, CleanOptions(workers=1))
    pk = pack(layout.root, PackOptions(workers=1, dtype=dtype))  # type: ignore[arg-type]
    fr = features(layout.root, FeaturesOptions(n_mels=32))
    return pk, fr


def test_chunk_hasher_matches_a_file_hash_whatever_the_write_sizes(tmp_path: Path, rng: np.random.Generator) -> None:
    data = rng.bytes(2 * CHUNK_BYTES + 12345)
    h = ChunkHasher()
    for a, b in ((0, 7), (7, CHUNK_BYTES + 3), (CHUNK_BYTES + 3, len(data))):
        h.update(data[a:b])
    (tmp_path / "x").write_bytes(data)
    assert h.record() == hash_file(tmp_path / "x")
    assert len(h.record()["sha256"]) == 3
    assert verify_file(tmp_path / "x", h.record()) == []


def test_flipped_byte_in_pack_is_found_and_pack_rebuilds_it(tone_root: DatasetLayout) -> None:
    pk, _ = _processed(tone_root)
    audio = pk.audio_path  # type: ignore[attr-defined]
    good = audio.read_bytes()
    _flip(audio, len(good) // 2)
    load_pack(tone_root.root)  # the size is right: a plain open does not read the array
    with pytest.raises(IntegrityError, match=r"audio\.int16.*differs from its recorded sha256"):
        load_pack(tone_root.root, verify=True)
    problems = verify_processed(tone_root.root, deep=True)
    assert [p.kind for p in problems] == [CORRUPT_ARRAY] and "audio.int16" in problems[0].detail
    assert verify_processed(tone_root.root, deep=False) == []  # only --deep reads the array
    again = pack(tone_root.root, PackOptions(workers=1))  # "up to date" is checked, the damage found, the pack rebuilt
    assert again.key == pk.key  # type: ignore[attr-defined]
    assert audio.read_bytes() == good
    assert verify_processed(tone_root.root, deep=True) == []


def test_truncated_pack_or_index_is_a_clear_error(tone_root: DatasetLayout) -> None:
    pk, _ = _processed(tone_root)
    index = pk.index_path  # type: ignore[attr-defined]
    text = index.read_text()
    index.write_text(text[: len(text) - 30])  # a cut in the middle of the last row
    with pytest.raises(IntegrityError, match=r"index\.csv: sha256 differs"):
        load_pack(tone_root.root)
    index.write_text(text)
    audio = pk.audio_path  # type: ignore[attr-defined]
    os.truncate(audio, audio.stat().st_size - 1000)
    with pytest.raises(IntegrityError, match=r"audio\.int16 holds \d+ bytes, \d+ expected"):
        load_pack(tone_root.root)
    assert any("audio.int16 holds" in p.detail for p in verify_processed(tone_root.root))
    with pytest.raises(IntegrityError, match="audio.int16"):
        features(tone_root.root, FeaturesOptions(n_mels=16))  # never computed from a damaged pack


def test_truncated_features_index_is_a_clear_error(tone_root: DatasetLayout) -> None:
    _, fr = _processed(tone_root)
    index = fr.path / "index.csv"  # type: ignore[attr-defined]
    index.write_text(index.read_text()[:-25])
    with pytest.raises(IntegrityError, match=r"features .* are damaged: .*index\.csv: sha256 differs"):
        load_features(tone_root.root)
    again = features(tone_root.root, FeaturesOptions(n_mels=32))  # the stage rebuilds it
    assert load_features(tone_root.root).shape == (len(load_pack(tone_root.root).open()), 32, again.frames)


def test_nan_in_features_is_refused_and_features_rebuild_it(tone_root: DatasetLayout) -> None:
    _, fr = _processed(tone_root)
    mels = fr.path / "mels.f32"  # type: ignore[attr-defined]
    good = mels.read_bytes()
    arr = np.memmap(mels, dtype=np.float32, mode="r+")
    arr[1000] = np.nan
    arr.flush()
    del arr
    load_features(tone_root.root)  # sizes are fine
    with pytest.raises(IntegrityError, match=r"mels\.f32.*1 non-finite value"):
        load_features(tone_root.root, verify=True)
    details = " ".join(p.detail for p in verify_processed(tone_root.root, deep=True))
    assert "mels.f32" in details and "non-finite" in details
    again = features(tone_root.root, FeaturesOptions(n_mels=32))
    assert again.key == fr.key  # type: ignore[attr-defined]
    assert mels.read_bytes() == good
    load_features(tone_root.root, verify=True)


def test_features_refuse_to_write_non_finite_values(tone_root: DatasetLayout) -> None:
    pk, _ = _processed(tone_root, dtype="float32")
    folder = pk.path  # type: ignore[attr-defined]
    arr = np.memmap(pk.audio_path, dtype=np.float32, mode="r+")  # type: ignore[attr-defined]
    arr[:1000] = 3e38  # finite, but its power overflows to inf
    arr.flush()
    del arr
    meta = json.loads((folder / "meta.json").read_text())
    meta["content"] = hash_file(pk.audio_path)  # type: ignore[attr-defined]  # as if packed so
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ProcessingError, match="non-finite log-mel values in rows 0"):
        features(tone_root.root, FeaturesOptions(n_mels=24))
    assert not list(tone_root.features_dir.glob(".tmp-*"))  # nothing half-written is left
    assert load_features(tone_root.root).meta["params"]["n_mels"] == 32  # the last good features stay current


def test_a_damaged_stats_file_is_reported(tone_root: DatasetLayout) -> None:
    _, fr = _processed(tone_root)
    stats = fr.path / "stats_sum.npy"  # type: ignore[attr-defined]
    _flip(stats, stats.stat().st_size - 3)
    with pytest.raises(IntegrityError, match=r"stats_sum\.npy: sha256 differs"):
        load_features(tone_root.root, verify=True)


def test_verify_deep_cli_reports_a_flipped_feature_byte(tone_root: DatasetLayout) -> None:
    import subprocess
    import sys

    _, fr = _processed(tone_root)
    cmd = [sys.executable, "-m", "audioset_fewshot", "verify", "--root", str(tone_root.root)]
    ok = subprocess.run([*cmd, "--deep"], capture_output=True, text=True, timeout=120, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    _flip(fr.path / "mels.f32", 4 * 777)  # type: ignore[attr-defined]
    shallow = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert shallow.returncode == 0  # the size is right; only --deep reads the array
    deep = subprocess.run([*cmd, "--deep"], capture_output=True, text=True, timeout=120, check=False)
    assert deep.returncode == 1
    assert "corrupt-array" in deep.stdout and "mels.f32" in deep.stdout and "sha256" in deep.stdout


def test_a_symlinked_temp_folder_or_array_is_never_followed(tone_root: DatasetLayout, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "mels.f32"
    victim.write_bytes(b"not the tool's")
    os.utime(victim, ns=(10**18, 10**18))
    before = (victim.read_bytes(), victim.stat().st_mtime_ns, sorted(p.name for p in outside.iterdir()))
    _, fr = _processed(tone_root)
    key = fr.key  # type: ignore[attr-defined]
    good = (fr.path / "mels.f32").read_bytes()  # type: ignore[attr-defined]
    # the temp folder the features are built in is a planted link to a folder outside the root
    (tone_root.features_dir / f".tmp-{key}").symlink_to(outside, target_is_directory=True)
    again = features(tone_root.root, FeaturesOptions(n_mels=32), force=True)
    assert (again.path / "mels.f32").read_bytes() == good
    assert (victim.read_bytes(), victim.stat().st_mtime_ns, sorted(p.name for p in outside.iterdir())) == before
    # a finished array replaced by a link: reported, rebuilt as a plain file, the target untouched
    (again.path / "mels.f32").unlink()
    (again.path / "mels.f32").symlink_to(victim)
    with pytest.raises(IntegrityError, match="not a plain file"):
        load_features(tone_root.root)
    features(tone_root.root, FeaturesOptions(n_mels=32))
    assert (again.path / "mels.f32").read_bytes() == good and not (again.path / "mels.f32").is_symlink()
    assert (victim.read_bytes(), victim.stat().st_mtime_ns, sorted(p.name for p in outside.iterdir())) == before
