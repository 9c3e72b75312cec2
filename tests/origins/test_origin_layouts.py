"""Each layout read with its own library, names parsed from the right, hostile input refused,
and ``origins check`` counting what each fixture holds."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from support.origin_builders import (
    Seg,
    class_mids,
    flac_48k_24bit,
    signal,
    write_directory,
    write_hf_parquet,
    write_pann_mp3,
    write_pann_waveform,
    write_webdataset,
)

from audioset_fewshot.download.origins import OriginError, OriginSpec, open_origin, parse_origin
from audioset_fewshot.download.origins.check import check_origin
from audioset_fewshot.download.origins.directory import parse_clip_name
from audioset_fewshot.download.origins.proof import ProofFailure, clip_samples
from audioset_fewshot.errors import UsageError


@pytest.mark.parametrize(
    ("stem", "expected"),
    [
        ("Y--4gqARaEJE", ("--4gqARaEJE", None)),
        ("-0RWZT-miFs_420000_430000", ("-0RWZT-miFs", 420.0)),
        ("--BfvyPmVMo_20.000", ("--BfvyPmVMo", 20.0)),
        ("a_b_c-d_e_f_30", ("a_b_c-d_e_f", 30.0)),
        ("x_3_0-40_0__30.0-40.0", ("x_3_0-40_0_", 30.0)),
        ("id_abcdefghijk", ("abcdefghijk", None)),
        ("abcdefghijk", ("abcdefghijk", None)),
    ],
)
def test_names_are_parsed_from_the_right(stem: str, expected: tuple[str, float | None]) -> None:
    assert parse_clip_name(stem) == expected


@pytest.mark.parametrize("stem", ["snipped3_start_0.000_end_10.000", "Dog barking", "abc", "abcdefghijkl_x", "abcdefghijk_40_30"])
def test_unparseable_names_are_refused(stem: str) -> None:
    assert parse_clip_name(stem) is None


def test_origin_entries_parse_and_refuse() -> None:
    assert parse_origin("youtube") is None
    spec = parse_origin("hf://datasets/agkphysics/AudioSet@0c609e8/data")
    assert spec is not None and spec.repo == "agkphysics/AudioSet" and spec.revision == "0c609e8"
    assert parse_origin({"path": "/x", "layout": "directory", "name": "lab"}) == OriginSpec("/x", "directory", "lab")
    with pytest.raises(UsageError, match="unknown layout 'webdatset'.*Did you mean 'webdataset'"):
        parse_origin({"path": "/x", "layout": "webdatset"})
    with pytest.raises(UsageError, match="unknown key"):
        parse_origin({"path": "/x", "colour": "red"})
    with pytest.raises(UsageError, match="revision"):
        parse_origin({"path": "hf://datasets/a/b@r1/data", "revision": "r2"})


# ---------------------------------------------------------------------------------------
# each layout


def test_hf_parquet_index_reads_video_id_and_decodes(tmp_path: Path, dog_segments: list[Seg]) -> None:
    write_hf_parquet(tmp_path / "hf", dog_segments[:5], rows_per_group=2, rate_of={dog_segments[1].ytid: 44100})
    origin = open_origin(OriginSpec(str(tmp_path / "hf")))
    assert origin.info.kind == "hf-parquet"
    clips = origin.clips()
    assert [c.ytid for c in clips] == [s.ytid for s in dog_segments[:5]]
    assert {c.source for c in clips} == {"balanced"} and all(c.start_s is None for c in clips)
    audio = origin.read(clips[1])
    assert audio.data == flac_48k_24bit(dog_segments[1], rate=44100)
    got = clip_samples(audio, sample_rate_hz=16000, duration_s=10.0)
    assert got.source_sample_rate_hz == 44100 and got.source_channels == 2 and got.samples.shape == (160000,)


def test_directory_layout_nested_names_and_unparseable(tmp_path: Path, dog_segments: list[Seg]) -> None:
    write_directory(tmp_path / "d", dog_segments[:2], naming="audiosetdl", subdir="a/eval_segments/x")
    write_directory(tmp_path / "d", dog_segments[2:4], naming="pann", subdir="balanced_train_segments")
    write_directory(tmp_path / "d", dog_segments[4:5], naming="range", subdir="Dog")
    (tmp_path / "d" / "Dog" / "snipped3_start_0.000_end_10.000.wav").write_bytes(b"RIFF")
    (tmp_path / "d" / "notes.txt").write_text("not audio")
    origin = open_origin(OriginSpec(str(tmp_path / "d")))
    clips = {c.ytid: c for c in origin.clips()}
    assert origin.info.kind == "directory"
    assert clips[dog_segments[0].ytid].source == "eval" and clips[dog_segments[0].ytid].start_s == dog_segments[0].start_s
    assert clips[dog_segments[2].ytid].source == "balanced" and clips[dog_segments[2].ytid].start_s is None
    assert clips[dog_segments[4].ytid].source is None and clips[dog_segments[4].ytid].start_s == dog_segments[4].start_s
    assert origin.report.unparseable == ["Dog/snipped3_start_0.000_end_10.000.wav"]


def test_webdataset_streams_members_without_extracting(tmp_path: Path, dog_segments: list[Seg]) -> None:
    write_webdataset(tmp_path / "w", dog_segments[:5], shard_size=2)
    before = sorted(p.name for p in (tmp_path / "w").rglob("*"))
    origin = open_origin(OriginSpec(str(tmp_path / "w")))
    clips = origin.clips()
    assert origin.info.kind == "webdataset" and len(clips) == 5
    assert clips[0].labels == dog_segments[0].labels
    audio = origin.read(clips[3])
    got = clip_samples(audio, sample_rate_hz=16000, duration_s=10.0)
    assert got.source_sample_rate_hz == 16000
    # a 16-bit WAV at the stored rate comes through the proof path sample for sample
    assert audio.data is not None
    stored, _ = sf.read(io.BytesIO(audio.data), dtype="int16")
    assert np.array_equal(got.samples, stored)
    assert sorted(p.name for p in (tmp_path / "w").rglob("*")) == before  # nothing extracted


def test_pann_hdf5_waveform_and_mp3(tmp_path: Path, dog_segments: list[Seg], shared_metadata_dir: Path) -> None:
    mids = class_mids(shared_metadata_dir)
    write_pann_waveform(tmp_path / "p" / "balanced_train.h5", dog_segments[:3], missing=2, class_mids=mids)
    write_pann_mp3(tmp_path / "p" / "eval_segments_mp3.hdf", dog_segments[3:5], class_mids=mids)
    origin = open_origin(OriginSpec(str(tmp_path / "p")), class_mids=mids)
    clips = origin.clips()
    assert [(c.ytid, c.source) for c in clips] == [(s.ytid, "balanced") for s in dog_segments[:3]] + [(s.ytid, "eval") for s in dog_segments[3:5]]
    wav = clip_samples(origin.read(clips[0]), sample_rate_hz=16000, duration_s=10.0)
    mp3 = clip_samples(origin.read(clips[3]), sample_rate_hz=16000, duration_s=10.0)
    assert wav.source_sample_rate_hz == 32000 and mp3.source_sample_rate_hz == 32000
    assert origin.labels(clips[0]) == tuple(sorted(m for m in dog_segments[0].labels if m in mids))  # type: ignore[attr-defined]
    assert origin.labels(clips[3]) == tuple(sorted(m for m in dog_segments[3].labels if m in mids))  # type: ignore[attr-defined]
    origin.close()


# ---------------------------------------------------------------------------------------
# hostile input


def _member(name: str, *, kind: bytes = tarfile.REGTYPE, size: int = 64, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size if kind == tarfile.REGTYPE else 0
    info.linkname = link
    return info


def test_hostile_tar_members_are_rejected_and_nothing_is_written(tmp_path: Path, dog_segments: list[Seg]) -> None:
    hostile = [
        _member("../../x.wav"), _member("/etc/evil.wav"), _member("link.wav", kind=tarfile.SYMTYPE, link="/etc/passwd"),
        _member("hard.wav", kind=tarfile.LNKTYPE, link="sample-000000000.wav"),
    ]  # fmt: skip
    write_webdataset(tmp_path / "w", dog_segments[:2], shard_size=2, extra=hostile)
    outside = tmp_path.parent / "x.wav"
    origin = open_origin(OriginSpec(str(tmp_path / "w")))
    clips = origin.clips()
    assert len(clips) == 2
    reasons = dict(origin.report.rejected)
    assert any("leaves the archive" in r for r in reasons.values())
    assert any("absolute member name" in r for r in reasons.values())
    assert sum("link member" in r for r in reasons.values()) == 2
    assert not outside.exists() and not Path("/etc/evil.wav").exists()


def test_parquet_without_the_expected_columns(tmp_path: Path) -> None:
    folder = tmp_path / "bad" / "data" / "bal_train"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"id": ["abcdefghijk"], "flac": [b"x"]}), folder / "0.parquet")
    origin = open_origin(OriginSpec(str(tmp_path / "bad")))
    assert origin.clips() == []
    ((what, why),) = origin.report.rejected
    assert what == "data/bal_train/0.parquet" and "missing column(s) video_id, audio" in why
    res = check_origin(OriginSpec(str(tmp_path / "bad")))
    assert not res.usable and "nothing usable found" in res.lines()[-1]


def test_flac_bytes_that_do_not_decode_are_corrupt() -> None:
    from audioset_fewshot.download.origins import OriginAudio

    with pytest.raises(ProofFailure) as info:
        clip_samples(OriginAudio(codec="flac", data=b"fLaC" + b"\x00" * 100), sample_rate_hz=16000, duration_s=10.0)
    assert info.value.reason == "corrupt"
    with pytest.raises(ProofFailure) as info:
        clip_samples(OriginAudio(codec="flac", samples=np.zeros((160000, 1), np.float32), sample_rate_hz=16000), sample_rate_hz=16000, duration_s=10.0)
    assert info.value.reason == "silent"
    with pytest.raises(ProofFailure) as info:
        clip_samples(OriginAudio(codec="pcm", samples=np.ones((80000, 1), np.float32) * 0.1, sample_rate_hz=16000), sample_rate_hz=16000, duration_s=10.0)
    assert info.value.reason == "short"


def test_hdf5_with_wrong_shapes_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "h").mkdir()
    with h5py.File(tmp_path / "h" / "balanced_train.h5", "w") as f:
        f.create_dataset("audio_name", data=np.array([b"Yabcdefghijk.wav"], dtype="S20"))
        f.create_dataset("waveform", data=np.zeros((1, 1000), dtype=np.float32))
        f.create_dataset("target", data=np.zeros((1, 527), dtype=bool))
        f.attrs["sample_rate"] = 32000
    origin = open_origin(OriginSpec(str(tmp_path / "h")))
    assert origin.clips() == []
    assert "expected int16" in origin.report.rejected[0][1]


def test_missing_or_unreadable_origin_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(OriginError, match="does not exist"):
        open_origin(OriginSpec(str(tmp_path / "nope")))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(OriginError, match="no known layout"):
        open_origin(OriginSpec(str(tmp_path / "empty")))
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0)
        try:
            with pytest.raises(OriginError, match="not readable"):
                open_origin(OriginSpec(str(locked)))
        finally:
            locked.chmod(0o755)


def test_fsspec_url_origin(tmp_path: Path, dog_segments: list[Seg]) -> None:
    write_hf_parquet(tmp_path / "hf", dog_segments[:3], rows_per_group=2)
    origin = open_origin(OriginSpec(f"file://{tmp_path / 'hf'}"))
    clips = origin.clips()
    assert len(clips) == 3 and origin.read(clips[2]).data == flac_48k_24bit(dog_segments[2])


# ---------------------------------------------------------------------------------------
# origins check


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AUDIOSET_FEWSHOT_PROGRESS": "0"}
    return subprocess.run(
        [sys.executable, "-m", "audioset_fewshot", "origins", "check", *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def test_origins_check_reports_the_right_counts(tmp_path: Path, dog_segments: list[Seg], shared_metadata_dir: Path) -> None:
    mids = class_mids(shared_metadata_dir)
    write_hf_parquet(tmp_path / "hf", dog_segments[:4], rows_per_group=2)
    write_directory(tmp_path / "dir", dog_segments[:3], naming="ast")
    (tmp_path / "dir" / "balanced_train_segments" / "mystery.wav").write_bytes(b"RIFF")
    # a name whose start does not match the list's segment: held by no list
    sf_path = tmp_path / "dir" / "balanced_train_segments" / f"{dog_segments[3].ytid}_{dog_segments[3].start_s + 1:.3f}.flac"
    sf.write(sf_path, signal(dog_segments[3].ytid, sample_rate_hz=44100, channels=1), 44100)
    write_webdataset(tmp_path / "wds", dog_segments[:5], shard_size=2)
    write_pann_waveform(tmp_path / "pann" / "balanced_train.h5", dog_segments[:2], class_mids=mids)
    md = ["--metadata-dir", str(shared_metadata_dir), "--root", str(tmp_path / "no-root")]
    r = _cli(*md, str(tmp_path / "hf"), str(tmp_path / "dir"), str(tmp_path / "wds"), str(tmp_path / "pann"))
    assert r.returncode == 0, r.stderr
    blocks = r.stdout.split("origin ")[1:]
    assert "layout hf-parquet, 4 clips" in blocks[0] and "balanced 4, eval 0, unbalanced 0; in no list 0" in blocks[0]
    assert "layout directory, 4 clips" in blocks[1] and "balanced 3, eval 0, unbalanced 0; in no list 1" in blocks[1]
    assert "unparseable names: 1" in blocks[1] and "balanced_train_segments/mystery.wav" in blocks[1]
    assert "layout webdataset, 5 clips" in blocks[2] and "balanced 5," in blocks[2]
    assert "layout pann-hdf5, 2 clips" in blocks[3] and "balanced 2," in blocks[3]
    assert all("decode check: " in b and "pass the proof" in b for b in blocks)
    named = _cli(*md, "--origin-layout", "directory", str(tmp_path / "hf"))  # a layout named, not detected: no audio files there
    assert named.returncode == 1 and "layout directory, 0 clips" in named.stdout
    bad = _cli(*md, str(tmp_path / "missing"))
    assert bad.returncode == 1 and "does not exist" in bad.stdout and "nothing usable" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_origins_check_counts_the_current_plan(tmp_path: Path, dog_segments: list[Seg], speech_segments: list[Seg], shared_metadata_dir: Path) -> None:
    from support.origin_builders import make_plan

    from audioset_fewshot.layout import DatasetLayout
    from audioset_fewshot.plan import write_plan

    root = tmp_path / "root"
    write_plan(make_plan({"/m/0bt9lr": dog_segments[:4], "/m/09x0r": speech_segments[:4]}, 2), DatasetLayout(root))
    write_hf_parquet(tmp_path / "hf", dog_segments[:3] + speech_segments[3:6], rows_per_group=4)
    r = _cli("--metadata-dir", str(shared_metadata_dir), "--root", str(root), str(tmp_path / "hf"))
    assert r.returncode == 0, r.stderr
    assert "current plan: holds 4 of 8 planned clips" in r.stdout


def test_undecodable_sample_makes_an_origin_unusable(tmp_path: Path, dog_segments: list[Seg]) -> None:
    folder = tmp_path / "d" / "eval"
    folder.mkdir(parents=True)
    (folder / f"Y{dog_segments[0].ytid}.wav").write_bytes(b"RIFF" + bytes(40))
    res = check_origin(OriginSpec(str(tmp_path / "d")))
    assert res.clips == 1 and not res.usable and res.decoded[0][1].startswith("corrupt")
