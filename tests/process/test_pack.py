from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from support.process_clips import STANDARD, Clip, make_root

from audioset_fewshot.config import CleanOptions, PackOptions
from audioset_fewshot.errors import ProcessingError, StageNotReadyError, UsageError
from audioset_fewshot.process import clean, load_pack, pack, read_index

pack_module = sys.modules["audioset_fewshot.process.pack"]


def _expected_rows(dataset) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    rep = clean(dataset.root, CleanOptions(min_duration_s=1.0))
    return sorted((v.owner_mid, v.ytid) for v in rep.verdicts if v.action == "kept")


def test_pack_rows_index_and_content(dataset) -> None:  # type: ignore[no-untyped-def]
    expected = _expected_rows(dataset)
    rec = pack(dataset.root, PackOptions(workers=1))
    assert rec.rows == len(expected) == 9 and rec.shape == (9, 160000) and rec.dtype == "int16"
    assert rec.path == dataset.pack_dir / rec.key
    index = read_index(rec.index_path)
    assert [(r.owner_mid, r.ytid) for r in index] == expected  # owner, then ytid, then start
    audio = rec.open()
    assert audio.dtype == np.int16 and audio.shape == (9, 160000)
    by = {r.ytid: r for r in index}
    # a 16 kHz mono file is copied bit for bit
    raw, _ = sf.read(str(dataset.clip_path("/m/09x0r", "aaaaaaaaaa1", 30.0)), dtype="int16")
    np.testing.assert_array_equal(audio[by["aaaaaaaaaa1"].row], raw)
    # the 3 s clip is padded with zeros and says so
    short = by["bbbbbbbbbb3"]
    assert (short.true_samples, short.length_action) == (48000, "pad_zero")
    assert np.all(audio[short.row, 48000:] == 0) and np.any(audio[short.row, :48000] != 0)
    # the 44.1 kHz stereo clip is resampled to 160000 samples of the channel mean
    st = by["cccccccccc5"]
    assert st.true_samples == 160000 and st.length_action == "none"
    x, sr = sf.read(str(dataset.clip_path("/m/04rlf", "cccccccccc5", 30.0)), dtype="float32")
    assert sr == 44100 and x.shape[1] == 2
    ref = x.mean(axis=1)[::441][:300]  # same instants (every 441 samples at 44.1k = every 160 at 16k)
    got = audio[st.row, ::160][:300] / 32768.0
    assert np.max(np.abs(got - ref)) < 0.01
    assert by["aaaaaaaaaa2"].labels == ("/m/04rlf", "/m/09x0r")  # all labels, not just the owner
    meta = json.loads((rec.path / "meta.json").read_text())
    assert meta["schema_version"] == 1 and meta["shape"] == [9, 160000]
    assert meta["inputs"]["clean_csv_sha256"] and meta["inputs"]["clips_csv_sha256"]
    assert meta["length_actions"] == {"none": 8, "pad_zero": 1}
    assert not (rec.path / "progress.json").exists()
    assert load_pack(dataset.root) == rec


def test_length_policies(dataset) -> None:  # type: ignore[no-untyped-def]
    clean(dataset.root)
    rep = pack(dataset.root, PackOptions(workers=1, length_policy="pad_repeat"))
    idx = {r.ytid: r for r in read_index(rep.index_path)}
    row = rep.open()[idx["bbbbbbbbbb3"].row]
    assert idx["bbbbbbbbbb3"].length_action == "pad_repeat"
    np.testing.assert_array_equal(row[48000:96000], row[:48000])
    drop = pack(dataset.root, PackOptions(workers=1, length_policy="drop"))
    assert drop.rows == 8 and drop.dropped_by_length == ("bbbbbbbbbb3_30000",)
    assert "bbbbbbbbbb3" not in {r.ytid for r in read_index(drop.index_path)}
    trimmed = pack(dataset.root, PackOptions(workers=1, length_s=4.0))
    assert trimmed.shape == (9, 64000)
    actions = {r.ytid: r.length_action for r in read_index(trimmed.index_path)}
    assert actions.pop("bbbbbbbbbb3") == "pad_zero" and set(actions.values()) == {"trimmed"}
    assert len({rep.key, drop.key, trimmed.key}) == 3


def test_float32_pack_is_int16_over_32768(dataset) -> None:  # type: ignore[no-untyped-def]
    clean(dataset.root)
    a = pack(dataset.root, PackOptions(workers=1))
    b = pack(dataset.root, PackOptions(workers=1, dtype="float32"))
    assert b.audio_path.name == "audio.float32"
    np.testing.assert_allclose(b.open(), a.open() / 32768.0, atol=1.6e-5)  # resampled rows: int16 rounds to half an LSB


def test_parallel_pack_is_byte_identical_and_rerun_is_noop(tmp_path) -> None:  # type: ignore[no-untyped-def]
    clips = [Clip(f"w{i:010d}", mid, "noise") for i, mid in enumerate(["/m/09x0r"] * 40 + ["/m/04rlf"] * 30)]
    lay = make_root(tmp_path / "r", clips)
    clean(lay.root)
    one = pack(lay.root, PackOptions(workers=1))
    data = one.audio_path.read_bytes()
    two = pack(lay.root, PackOptions(workers=2), force=True)
    assert two == one and two.audio_path.read_bytes() == data
    mtime = (one.path / "meta.json").stat().st_mtime_ns
    assert pack(lay.root, PackOptions(workers=2)) == one  # nothing decoded again: the files keep their mtime
    assert (one.path / "meta.json").stat().st_mtime_ns == mtime


def test_pack_needs_a_current_clean(dataset) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(StageNotReadyError, match="--stage clean' first"):
        pack(dataset.root)
    clean(dataset.root)
    make_root(dataset.root, STANDARD[:4])  # the manifest changed after clean
    with pytest.raises(StageNotReadyError, match="not made from the current"):
        pack(dataset.root)
    with pytest.raises(UsageError, match="length_policy must be"):
        pack(dataset.root, PackOptions(length_policy="stretch"))  # type: ignore[arg-type]


def test_full_disk_stops_cleanly_and_a_rerun_continues(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    clips = [Clip(f"d{i:010d}", "/m/09x0r", "noise") for i in range(70)]
    lay = make_root(tmp_path / "r", clips)
    clean(lay.root)
    reference = pack(lay.root, PackOptions(workers=1))
    ref_bytes = reference.audio_path.read_bytes()
    # the disk fills while the third task writes (the filesystem refuses with ENOSPC)
    real_write = pack_module._write_rows
    calls = {"n": 0}

    def full_disk(path, row_start, block):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(path, row_start, block)

    monkeypatch.setattr(pack_module, "_write_rows", full_disk)
    with pytest.raises(ProcessingError, match="disk holding .* is full; free some space and run the same command again"):
        pack(lay.root, PackOptions(workers=1), force=True)
    progress = json.loads((reference.path / "progress.json").read_text())
    assert sorted(progress["done"]) == ["0", "1"]
    assert not (reference.path / "meta.json").exists()
    with pytest.raises(StageNotReadyError):
        load_pack(lay.root, key=reference.key)
    # the rerun decodes only what is missing
    monkeypatch.setattr(pack_module, "_write_rows", real_write)
    decoded = {"n": 0}
    real_decode = pack_module.decode_row

    def counting(*a, **kw):  # type: ignore[no-untyped-def]
        decoded["n"] += 1
        return real_decode(*a, **kw)

    monkeypatch.setattr(pack_module, "decode_row", counting)
    again = pack(lay.root, PackOptions(workers=1))
    assert decoded["n"] == 70 - 64
    assert again == reference and again.audio_path.read_bytes() == ref_bytes


def test_no_space_up_front_is_a_processing_error(dataset, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    clean(dataset.root)

    def no_space(fd, offset, length):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", no_space)
    with pytest.raises(ProcessingError, match="is full"):
        pack(dataset.root, PackOptions(workers=1))
    monkeypatch.undo()
    assert pack(dataset.root, PackOptions(workers=1)).rows == 9


@pytest.mark.slow
def test_kill_then_rerun_gives_the_same_pack(tmp_path) -> None:  # type: ignore[no-untyped-def]
    clips = [Clip(f"k{i:010d}", "/m/09x0r", "noise") for i in range(160)]
    lay = make_root(tmp_path / "r", clips)
    clean(lay.root)
    script = textwrap.dedent(f"""
        import time
        from audioset_fewshot.process import pack as _p
        import sys
        m = sys.modules["audioset_fewshot.process.pack"]
        m.CHECKPOINT_ROWS = 32
        real = m.decode_row
        def slow(*a, **kw):
            time.sleep(0.02)
            return real(*a, **kw)
        m.decode_row = slow
        m.pack({str(lay.root)!r}, m.PackOptions(workers=1))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        progress_files: list[Path] = []
        while time.monotonic() < deadline and proc.poll() is None:
            progress_files = list(lay.pack_dir.glob("*/progress.json"))
            if progress_files and json.loads(progress_files[0].read_text())["done"]:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the packer finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    folder = progress_files[0].parent
    assert not (folder / "meta.json").exists()
    done = json.loads((folder / "progress.json").read_text())["done"]
    assert 0 < len(done) < 5
    resumed = pack(lay.root, PackOptions(workers=2))
    fresh_root = make_root(tmp_path / "fresh", clips)
    clean(fresh_root.root)
    fresh = pack(fresh_root.root, PackOptions(workers=1))
    assert resumed.key == fresh.key
    assert resumed.audio_path.read_bytes() == fresh.audio_path.read_bytes()
    assert resumed.index_path.read_bytes() == fresh.index_path.read_bytes()
