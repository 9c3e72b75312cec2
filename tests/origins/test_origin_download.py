"""Downloads filled from local origins beside the demo YouTube server.

Must hold: a plan filled from an hf-parquet origin alone selects the same clips per
class as the same plan filled from YouTube when both hold the same IDs, and each
stored clip equals the origin's audio through the shared proof path, sample for sample;
with origins [parquet, directory, youtube] each clip comes from the first that holds it,
the demo server is asked only for the rest, and a rerun asks nobody for anything.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from support.origin_builders import DOG, SPEECH, Seg, make_plan, write_directory, write_hf_parquet

from audioset_fewshot.config import DownloadOptions
from audioset_fewshot.demo.server import SourceSpec
from audioset_fewshot.download.ledger import Ledger
from audioset_fewshot.download.origins import OriginSpec, open_origin
from audioset_fewshot.download.origins.proof import clip_samples
from audioset_fewshot.download.runner import run_download
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.manifest import build_manifest
from audioset_fewshot.manifest.clips import read_clips
from audioset_fewshot.plan import write_plan

FAST: dict[str, Any] = {"max_per_hour": None, "min_interval_s": 0.0, "backoff_s": 0.05, "retries": 0, "min_free": "0B", "timeout_s": 30.0, "jobs": 2}
TARGET = 2


def _serve(srv: Any, segs: list[Seg], faults: dict[str, str] | None = None) -> None:
    for s in segs:
        srv.catalog[s.ytid] = SourceSpec(class_key="demo-class-1", duration_s=s.end_s + 2.0)
    for ytid, fault in (faults or {}).items():
        srv.set_fault(ytid, fault)


def _ok(root: Path) -> dict[str, list[tuple[str, str | None]]]:
    with Ledger(DatasetLayout(root).ledger_file) as led:
        out: dict[str, list[tuple[str, str | None]]] = {}
        for r in led.rows("ok"):
            out.setdefault(r.owner_mid, []).append((r.clip_id, r.origin))
        return out


def test_parquet_alone_selects_what_youtube_selects(tmp_path: Path, media_server: Any, dog_segments: list[Seg], speech_segments: list[Seg]) -> None:
    dogs, speech = dog_segments[:4], speech_segments[:4]
    plan = make_plan({DOG: dogs, SPEECH: speech}, TARGET)
    # both roads miss the same IDs: rank 0 of DOG and rank 1 of SPEECH
    gone = {dogs[0].ytid, speech[1].ytid}
    held = [s for s in dogs + speech if s.ytid not in gone]
    write_hf_parquet(tmp_path / "hf", held, rows_per_group=3, rate_of={held[1].ytid: 44100})
    _serve(media_server, dogs + speech, {y: "unavailable" for y in gone})

    yt_root, hf_root = tmp_path / "yt", tmp_path / "fromhf"
    write_plan(plan, DatasetLayout(yt_root))
    write_plan(plan, DatasetLayout(hf_root))
    # YouTube's side with retries: a transient failure on a loaded machine must not change its selection
    rep_yt = run_download(plan, yt_root, DownloadOptions(base_url=media_server.base_url, **{**FAST, "retries": 4, "timeout_s": 120.0}))
    assert set(rep_yt.failures_by_reason) == {"unavailable"}, rep_yt.summary_lines()
    media_server.reset_log()
    rep_hf = run_download(plan, hf_root, DownloadOptions(base_url=media_server.base_url, origins=[str(tmp_path / "hf")], **FAST))
    assert rep_yt.complete and rep_hf.complete
    assert media_server.requests == []  # the parquet origin alone: YouTube is never asked
    yt_sel = {m: sorted(c for c, _ in v) for m, v in _ok(yt_root).items()}
    hf_sel = {m: sorted(c for c, _ in v) for m, v in _ok(hf_root).items()}
    assert yt_sel == hf_sel
    assert {o for v in _ok(hf_root).values() for _, o in v} == {"hf-parquet"}
    assert rep_hf.by_origin == {"hf-parquet": 2 * TARGET}
    assert any("in-no-origin" in line for line in rep_hf.summary_lines())

    # every stored clip equals the origin's audio through the shared path, sample for sample
    origin = open_origin(OriginSpec(str(tmp_path / "hf")))
    clips = {c.ytid: c for c in origin.clips()}
    with Ledger(DatasetLayout(hf_root).ledger_file) as led:
        rows = led.rows("ok")
        for r in rows:
            stored, sr = sf.read(hf_root / str(r.path), dtype="int16")
            expected = clip_samples(origin.read(clips[r.ytid]), sample_rate_hz=16000, duration_s=10.0)
            assert sr == 16000 and np.array_equal(stored, expected.samples)
            assert r.codec == "flac" and r.source_sample_rate_hz in (44100, 48000) and r.extractions == 0
        assert {r.source_sample_rate_hz for r in rows} == {44100, 48000}

    # diff names the clips whose origin differs
    from audioset_fewshot.manifest import diff_manifests

    build_manifest(yt_root)
    build_manifest(hf_root)
    d = diff_manifests(yt_root, hf_root)
    assert set(d.origin_changed) == {c for v in yt_sel.values() for c in v}
    assert set(d.origin_changed.values()) == {("youtube", "hf-parquet")}


def test_rebuild_from_an_origin_and_a_revision_that_does_not_match(tmp_path: Path, dog_segments: list[Seg]) -> None:
    from audioset_fewshot.errors import UsageError
    from audioset_fewshot.manifest.rebuild import rebuild

    dogs = dog_segments[:3]
    write_hf_parquet(tmp_path / "hf", dogs)
    mirror = {"path": str(tmp_path / "hf"), "name": "mirror", "revision": "5a2fa42"}
    root = tmp_path / "a"
    plan = make_plan({DOG: dogs}, 3)
    write_plan(plan, DatasetLayout(root))
    run_download(plan, root, DownloadOptions(origins=[mirror], **FAST))
    build_manifest(root)
    lock = json.loads(DatasetLayout(root).lock_json.read_text())
    assert lock["origins"] == [{"name": "mirror", "kind": "hf-parquet", "revision": "5a2fa42", "repo": None, "held": 3, "clips": 3}]
    rep = rebuild(root, tmp_path / "b", DownloadOptions(origins=[mirror], **FAST))
    assert rep.identical and rep.diff is not None and not rep.diff.origin_changed
    with pytest.raises(UsageError, match="built from revision 5a2fa42.*gives 0c609e8"):
        rebuild(root, tmp_path / "c", DownloadOptions(origins=[{**mirror, "revision": "0c609e8"}], **FAST))
    assert not (tmp_path / "c").exists()


def test_first_origin_wins_youtube_gets_the_rest_and_rerun_asks_nobody(
    tmp_path: Path, media_server: Any, dog_segments: list[Seg], speech_segments: list[Seg], shared_metadata_dir: Path
) -> None:
    dogs, speech = dog_segments[:3], speech_segments[:3]
    plan = make_plan({DOG: dogs, SPEECH: speech}, 3)
    # parquet: dogs[0], speech[0]; directory: dogs[0] again (parquet wins) and dogs[1]; youtube: the rest
    write_hf_parquet(tmp_path / "hf", [dogs[0], speech[0]], rows_per_group=100)
    write_directory(tmp_path / "lab", [dogs[0], dogs[1]], naming="audiosetdl")
    _serve(media_server, dogs + speech)
    origins: list[Any] = [str(tmp_path / "hf"), {"path": str(tmp_path / "lab"), "name": "lab-copy"}, "youtube"]
    root = tmp_path / "root"
    write_plan(plan, DatasetLayout(root))
    rep = run_download(plan, root, DownloadOptions(base_url=media_server.base_url, origins=origins, **FAST))
    assert rep.complete, rep.summary_lines()
    got = {c: o for v in _ok(root).values() for c, o in v}
    assert got == {
        dogs[0].clip_id: "hf-parquet", speech[0].clip_id: "hf-parquet", dogs[1].clip_id: "lab-copy",
        dogs[2].clip_id: "youtube", speech[1].clip_id: "youtube", speech[2].clip_id: "youtube",
    }  # fmt: skip
    watched = {r.ytid for r in media_server.requests if r.kind == "watch"}
    assert watched == {dogs[2].ytid, speech[1].ytid, speech[2].ytid}  # the demo server's log
    assert "clips by origin: hf-parquet 2, lab-copy 1, youtube 3" in rep.summary_lines()

    media_server.reset_log()
    rep2 = run_download(plan, root, DownloadOptions(base_url=media_server.base_url, origins=origins, **FAST))
    assert media_server.requests == [] and rep2.obtained_now == 0 and rep2.complete

    # the manifest: origin columns, origins in the lock, no local path anywhere
    build_manifest(root)
    layout = DatasetLayout(root)
    rows = {r.clip_id: r for r in read_clips(layout.clips_csv, root=root)}
    assert rows[dogs[1].clip_id].origin == "lab-copy" and rows[dogs[1].clip_id].source_sample_rate_hz == "44100"
    assert rows[dogs[2].clip_id].origin == "youtube"
    lock = json.loads(layout.lock_json.read_text())
    assert [(o["name"], o["kind"], o.get("held"), o["clips"]) for o in lock["origins"]] == [
        ("hf-parquet", "hf-parquet", 2, 2), ("lab-copy", "directory", 2, 1), ("youtube", "youtube", None, 3),
    ]  # fmt: skip
    for f in (layout.clips_csv, layout.lock_json, layout.provenance_csv):
        assert str(tmp_path) not in f.read_text()


def test_a_clip_failing_the_proof_moves_to_the_next_origin(tmp_path: Path, dog_segments: list[Seg]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    dogs = dog_segments[:2]
    plan = make_plan({DOG: dogs}, 2)
    folder = tmp_path / "hf" / "data" / "bal_train"
    folder.mkdir(parents=True)
    audio_t = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    pq.write_table(pa.table({"video_id": [dogs[0].ytid], "audio": pa.array([{"bytes": b"fLaC-not-really", "path": "x"}], audio_t)}), folder / "0.parquet")
    write_directory(tmp_path / "lab", dogs, naming="ast")
    root = tmp_path / "root"
    rep = run_download(plan, root, DownloadOptions(origins=[str(tmp_path / "hf"), str(tmp_path / "lab")], **FAST))
    assert rep.complete
    with Ledger(DatasetLayout(root).ledger_file) as led:
        row = led.row(dogs[0].clip_id)
        assert row is not None and row.status == "ok" and row.origin == "directory"
        (attempt,) = [a for a in led.attempts(dogs[0].clip_id) if not a.ok]
        assert attempt.reason == "corrupt" and "origin hf-parquet" in (attempt.message or "")


def test_labels_that_disagree_are_recorded_and_the_list_wins(tmp_path: Path, dog_segments: list[Seg]) -> None:
    dogs = dog_segments[:2]
    write_hf_parquet(tmp_path / "hf", dogs, labels_of={dogs[0].ytid: ("/m/0bt9lr", "/m/05tny_")})
    root = tmp_path / "root"
    run_download(make_plan({DOG: dogs}, 2), root, DownloadOptions(origins=[str(tmp_path / "hf")], **FAST))
    with Ledger(DatasetLayout(root).ledger_file) as led:
        first, second = led.row(dogs[0].clip_id), led.row(dogs[1].clip_id)
        assert first is not None and second is not None
        assert first.origin_labels == "/m/05tny_;/m/0bt9lr" and first.labels == tuple(sorted(dogs[0].labels))
        assert second.origin_labels is None


def test_in_no_origin_is_looked_up_again_only_when_origins_change(tmp_path: Path, dog_segments: list[Seg]) -> None:
    dogs = dog_segments[:3]
    plan = make_plan({DOG: dogs}, 3)
    write_hf_parquet(tmp_path / "hf", dogs[:1])
    write_directory(tmp_path / "lab", dogs[1:], naming="pann")
    root = tmp_path / "root"
    rep = run_download(plan, root, DownloadOptions(origins=[str(tmp_path / "hf")], **FAST))
    assert rep.failures_by_reason == {"in-no-origin": 2} and not rep.complete
    rep = run_download(plan, root, DownloadOptions(origins=[str(tmp_path / "hf")], **FAST))
    assert rep.obtained_now == 0 and rep.attempts == 0  # same origins: nothing looked up again
    rep = run_download(plan, root, DownloadOptions(origins=[str(tmp_path / "hf"), str(tmp_path / "lab")], **FAST))
    assert rep.complete and rep.obtained_now == 2


def test_cli_origin_flag_replaces_the_list(tmp_path: Path, dog_segments: list[Seg], shared_metadata_dir: Path) -> None:
    import subprocess
    import sys

    dogs = dog_segments[:2]
    root = tmp_path / "root"
    write_plan(make_plan({DOG: dogs}, 2), DatasetLayout(root))
    write_hf_parquet(tmp_path / "hf", dogs)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"root: {root}\nplan:\n  max_per_class: 2\n  sources: [balanced]\n  owner_policy: first-label\nmetadata:\n  metadata_dir: {shared_metadata_dir}\n"
    )
    r = subprocess.run([sys.executable, "-m", "audioset_fewshot", "download", "-c", str(cfg), "--origin", str(tmp_path / "hf"), "--min-free", "0B"],
                       capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "clips by origin: hf-parquet" in r.stdout


@pytest.mark.parametrize("bad", [{"layout": "directory"}, 3, []])
def test_bad_origin_entries_are_config_errors(bad: Any) -> None:
    from audioset_fewshot.config import load_config
    from audioset_fewshot.errors import ConfigError

    with pytest.raises(ConfigError, match="download.origins"):
        load_config(None, {"download.origins": [bad] if bad != [] else bad})


def test_bad_origin_layout_stops_the_run_before_anything(tmp_path: Path, dog_segments: list[Seg]) -> None:
    from audioset_fewshot.errors import UsageError

    with pytest.raises(UsageError, match="unknown layout 'zip'"):
        run_download(make_plan({DOG: dog_segments[:1]}, 1), tmp_path / "root", DownloadOptions(origins=[{"path": str(tmp_path), "layout": "zip"}], **FAST))
    assert not (tmp_path / "root").exists()


def test_unparseable_csv_is_untouched(tmp_path: Path) -> None:
    # clips.csv written before origins existed (14 columns) still reads, as YouTube clips
    from audioset_fewshot.manifest.clips import LEGACY_CLIPS_COLUMNS

    p = tmp_path / "clips.csv"
    with open(p, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(LEGACY_CLIPS_COLUMNS)
        w.writerow(["abcdefghijk", "30.000", "40.000", "/m/0bt9lr", "/m/0bt9lr", "balanced", "audio/m_0bt9lr/abcdefghijk_30000.flac",
                    "16000", "160000", "0" * 64, "140", "aac", "", "UCx"])  # fmt: skip
    (row,) = read_clips(p)
    assert row.origin == "youtube" and row.origin_revision == ""


def test_a_missing_origin_stops_the_run_before_the_root_is_touched(tmp_path: Path, dog_segments: list[Seg]) -> None:
    from audioset_fewshot.download.origins import OriginError

    with pytest.raises(OriginError, match="does not exist"):
        run_download(make_plan({DOG: dog_segments[:1]}, 1), tmp_path / "root", DownloadOptions(origins=[str(tmp_path / "gone"), "youtube"], **FAST))
    assert not (tmp_path / "root").exists()


def test_webdataset_class_numbers_are_compared_through_the_class_order(tmp_path: Path, dog_segments: list[Seg]) -> None:
    import io
    import tarfile

    from support.origin_builders import encode, signal

    from audioset_fewshot.download.origins.registry import packaged_class_mids

    mids = packaged_class_mids()
    dogs = dog_segments[:2]
    (tmp_path / "w").mkdir()
    with tarfile.open(tmp_path / "w" / "shard-00000.tar", "w") as tar:
        for k, s in enumerate(dogs):
            numbers = [mids.index(m) for m in s.labels if m in mids]
            if k == 1:
                numbers = numbers[:1]  # the copy lost labels: recorded, the list's labels kept
            for name, data in ((f"sample-{k:09d}.wav", encode(signal(s.ytid, sample_rate_hz=16000, channels=1), 16000, fmt="WAV", subtype="PCM_16")),
                               (f"sample-{k:09d}.json", json.dumps({"id": s.ytid, "label_id": numbers}).encode())):  # fmt: skip
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    root = tmp_path / "root"
    rep = run_download(make_plan({DOG: dogs}, 2), root, DownloadOptions(origins=[str(tmp_path / "w")], **FAST))
    assert rep.complete
    with Ledger(DatasetLayout(root).ledger_file) as led:
        first, second = led.row(dogs[0].clip_id), led.row(dogs[1].clip_id)
        assert first is not None and second is not None
        assert first.origin == "webdataset" and first.origin_labels is None and first.source_sample_rate_hz == 16000
        assert second.origin_labels is not None and second.labels == tuple(sorted(dogs[1].labels))
