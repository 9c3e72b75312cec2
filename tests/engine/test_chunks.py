"""A stage's chunk function gives the same bytes whatever the chunking an executor picks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from support.process_clips import DOG, SPEECH, Clip, make_root

from audioset_fewshot.config import FeaturesOptions, PackOptions
from audioset_fewshot.process import clean, pack
from audioset_fewshot.process.features import BATCH_ROWS, TASK_ROWS, _features_chunk, _FeatureTask, _transform_params, chunk_rows


def test_chunk_rows_are_whole_batches_within_bounds() -> None:
    assert chunk_rows(10, 2) == TASK_ROWS
    assert chunk_rows(2000, 2) == 8 * TASK_ROWS
    assert chunk_rows(1000, 2) == 128
    for rows in (1, 77, 999, 5000, 10**6):
        for cap in (1, 2, 7, 64):
            step = chunk_rows(rows, cap)
            assert step % BATCH_ROWS == 0 and TASK_ROWS <= step <= 8 * TASK_ROWS


def test_features_of_rows_do_not_depend_on_the_chunking(tmp_path: Path) -> None:
    layout = make_root(tmp_path / "r", [Clip(f"c{c}{i:09d}", mid, ("tone", "noise")[i % 2]) for c, mid in enumerate((SPEECH, DOG)) for i in range(12)])
    clean(layout.root)
    pk = pack(layout.root, PackOptions(workers=1, length_s=2.0))
    o = FeaturesOptions()
    params = {k: getattr(o, k) for k in ("n_fft", "hop_length", "n_mels", "f_min", "f_max", "power", "amin", "top_db")}
    task = _FeatureTask(str(pk.audio_path), pk.dtype, (pk.rows, pk.samples), _transform_params(pk.sample_rate_hz, params))
    frames = 1 + pk.samples // o.hop_length
    outs = []
    for name in ("whole.f32", "parts.f32"):
        out = tmp_path / name
        out.write_bytes(b"\0" * (pk.rows * o.n_mels * frames * 4))
        outs.append(out)
    whole = _features_chunk((task, 0, pk.rows, str(outs[0])))
    # batch-sized chunks, written out of order: each lands at its own rows
    parts = {r0: _features_chunk((task, r0, min(pk.rows, r0 + BATCH_ROWS), str(outs[1]))) for r0 in reversed(range(0, pk.rows, BATCH_ROWS))}
    assert outs[0].read_bytes() == outs[1].read_bytes()
    assert not (np.frombuffer(outs[0].read_bytes(), dtype=np.float32) == 0).all()
    for i in (2, 3):
        joined = np.concatenate([parts[r0][i] for r0 in sorted(parts)])
        assert joined.tobytes() == whole[i].tobytes()
