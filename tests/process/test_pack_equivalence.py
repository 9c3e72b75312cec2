"""pack's fast paths write exactly what the plain definition writes.

The plain definition: every kept clip through ``decode_clip`` then ``fit_length``,
row by row.  The fast path decodes 16-bit mono files straight into the pack's
rows and hashes each task's rows in the worker that wrote them; neither may
change a byte of the array or of the index, under any policy, dtype or worker
count, and the content hashes must verify.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from support.process_clips import DOG, SPEECH, STANDARD, Clip, make_root

from audioset_fewshot._integrity import hash_file, verify_file
from audioset_fewshot.config import CleanOptions, PackOptions
from audioset_fewshot.process import clean, pack, read_index
from audioset_fewshot.process.pack import TASK_ROWS, decode_clip, decode_row, fit_length


def _reference(root: Path, rec: object, policy: str, dtype: str) -> np.ndarray:
    """The pack's array as the plain definition computes it, from the pack's own index."""
    index = read_index(rec.index_path)  # type: ignore[attr-defined]
    from audioset_fewshot.layout import DatasetLayout

    lay = DatasetLayout(root)
    out = np.zeros((len(index), rec.samples), dtype=dtype)  # type: ignore[attr-defined]
    for r in index:
        x = decode_clip(lay.clip_path(r.owner_mid, r.ytid, r.start_s), sample_rate_hz=16000, dtype=dtype)
        row, action = fit_length(x, rec.samples, policy)  # type: ignore[attr-defined]
        out[r.row] = row
        assert (r.true_samples, r.length_action) == (x.shape[0], action)
    return out


@pytest.mark.parametrize("dtype", ["int16", "float32"])
@pytest.mark.parametrize("policy", ["pad_zero", "pad_repeat", "drop"])
def test_pack_equals_decode_then_fit_length(tmp_path: Path, dtype: str, policy: str) -> None:
    lay = make_root(tmp_path / "r", STANDARD)
    clean(lay.root, CleanOptions(min_duration_s=1.0))
    rec = pack(lay.root, PackOptions(dtype=dtype, length_policy=policy, workers=2))  # type: ignore[arg-type]
    audio = rec.open()
    np.testing.assert_array_equal(audio, _reference(lay.root, rec, policy, dtype))
    assert audio.tobytes() == _reference(lay.root, rec, policy, dtype).tobytes()
    meta = json.loads((rec.path / "meta.json").read_text())
    assert verify_file(rec.audio_path, meta["content"]) == []
    assert meta["content"]["chunk_bytes"] == TASK_ROWS * rec.samples * np.dtype(dtype).itemsize


def test_decode_row_equals_fit_length_of_decode_clip(tmp_path: Path) -> None:
    """Short, exact and long 16-bit files, a resampled stereo one, every policy, into a dirty row."""
    lay = make_root(tmp_path / "r", STANDARD)
    files = {
        "short": lay.clip_path(DOG, "bbbbbbbbbb3", 30.0),
        "exact": lay.clip_path(SPEECH, "aaaaaaaaaa1", 30.0),
        "stereo44k": lay.clip_path("/m/04rlf", "cccccccccc5", 30.0),
    }
    long_path = tmp_path / "long.flac"
    sf.write(str(long_path), (np.random.default_rng(1).standard_normal(170_001) * 3000).astype(np.int16), 16000, subtype="PCM_16")
    files["long"] = long_path
    empty = tmp_path / "empty.wav"  # libsndfile writes no empty FLAC
    sf.write(str(empty), np.zeros(0, dtype=np.int16), 16000, subtype="PCM_16")
    files["empty"] = empty
    for name, path in files.items():
        for dtype in ("int16", "float32"):
            for policy in ("pad_zero", "pad_repeat", "drop"):
                for length in (160_000, 47_999, 1):
                    x = decode_clip(path, sample_rate_hz=16000, dtype=dtype)
                    want, action = fit_length(x, length, policy)
                    row = np.full(length, 7, dtype=dtype)  # whatever was there before
                    got = decode_row(path, row, sample_rate_hz=16000, policy=policy)
                    assert got == (x.shape[0], action), (name, dtype, policy, length)
                    assert row.tobytes() == np.asarray(want, dtype=dtype).tobytes(), (name, dtype, policy, length)


def test_content_hashes_are_the_tasks_rows_and_a_resumed_pack_keeps_them(tmp_path: Path) -> None:
    clips = [Clip(f"h{i:010d}", SPEECH if i % 3 else DOG, "noise") for i in range(TASK_ROWS * 2 + 5)]
    lay = make_root(tmp_path / "r", clips)
    clean(lay.root)
    rec = pack(lay.root, PackOptions(workers=2))
    meta = json.loads((rec.path / "meta.json").read_text())
    data = rec.audio_path.read_bytes()
    chunk = meta["content"]["chunk_bytes"]
    assert meta["content"]["size"] == len(data) and len(meta["content"]["sha256"]) == 3
    assert meta["content"]["sha256"] == [hashlib.sha256(data[i : i + chunk]).hexdigest() for i in range(0, len(data), chunk)]
    assert hash_file(rec.audio_path, chunk_bytes=chunk) == meta["content"]
