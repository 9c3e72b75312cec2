"""Local origins read on Dask workers (a LocalCluster of two worker processes started by
``open_engine``), against a local run of the same plan.

Must hold: with ``engine: dask`` the clips held by local origins are read and proved by
Dask tasks on the workers, not by the driver; the clip files, the ledger (status, origin,
the failed proofs of earlier origins), ``clips.csv`` and the lock's origins are the same
as a local run's; a clip no origin gives goes to YouTube when it is listed and is
``in-no-origin`` when it is not; an origin a worker cannot open stops the run with the
reason; a worker killed mid-read loses no clip and records none twice.  And, on Dask and
locally: a session paused by a rate limit does not stop the reads of the origins.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from support.dask_cluster import kill_a_worker_running
from support.origin_builders import DOG, SPEECH, Seg, make_plan, real_segments, write_directory, write_hf_parquet

from audioset_fewshot.config import DownloadOptions
from audioset_fewshot.demo.server import SourceSpec
from audioset_fewshot.download.distributed import OriginJob, download_on, read_on_worker
from audioset_fewshot.download.ledger import Ledger
from audioset_fewshot.download.origins import OriginError, OriginSpec
from audioset_fewshot.download.runner import run_download
from audioset_fewshot.engine import Engine
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.manifest import build_manifest
from audioset_fewshot.plan import SamplingPlan, write_plan

distributed = pytest.importorskip("distributed")

FAST: dict[str, Any] = {"max_per_hour": None, "min_interval_s": 0.0, "backoff_s": 0.05, "retries": 0, "min_free": "0B", "timeout_s": 30.0, "jobs": 2}


@pytest.fixture
def engine(dask_engine: Engine) -> Engine:
    return dask_engine  # the session's LocalCluster of 2 worker processes (tests/conftest.py)


def corrupt_parquet(root: Path, seg: Seg) -> None:
    """A mirror file in the hf-parquet layout whose one row holds bytes that are no FLAC."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = root / "data" / "bal_train"
    folder.mkdir(parents=True)
    audio_t = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    pq.write_table(pa.table({"video_id": [seg.ytid], "audio": pa.array([{"bytes": b"fLaC-not-really", "path": "x"}], audio_t)}), folder / "0.parquet")


def facts(root: Path) -> dict[str, Any]:
    """What must be equal between a local and a Dask run: the clip files, the ledger's rows
    and failed attempts, clips.csv and the lock's origins."""
    layout = DatasetLayout(root)
    files = {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(layout.audio_dir.rglob("*")) if p.is_file()}
    with Ledger(layout.ledger_file, readonly=True) as led:
        rows = {r.clip_id: (r.status, r.origin, r.origin_labels, r.reason, r.sha256) for r in led.rows()}
        failed = Counter((a.clip_id, a.reason, (a.message or "").split(":")[0]) for a in led.attempts() if not a.ok)
    build_manifest(root)
    lock = json.loads(layout.lock_json.read_text())
    return {"files": files, "rows": rows, "failed": failed, "clips.csv": layout.clips_csv.read_bytes(), "origins": lock["origins"]}


def run_both(
    engine: Engine, plan: SamplingPlan, tmp: Path, options: DownloadOptions, media_server: Any
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]], set[str]]:
    """The plan downloaded locally, then on Dask: both runs' facts, the Dask run's task
    stream and the IDs the media server was asked for in the Dask run."""
    roots = tmp / "local", tmp / "dask"
    for root in roots:
        write_plan(plan, DatasetLayout(root))
    local = run_download(plan, roots[0], options)
    media_server.reset_log()
    with distributed.get_task_stream(engine.client) as stream:  # type: ignore[attr-defined]
        rep = download_on(engine, plan, roots[1], options)
    assert (rep.complete, rep.by_origin, rep.failures_by_reason) == (local.complete, local.by_origin, local.failures_by_reason)
    watched = {r.ytid for r in media_server.requests if r.kind == "watch"}
    return facts(roots[0]), facts(roots[1]), list(stream.data), watched


def test_origins_are_read_on_the_workers_with_the_bytes_of_a_local_run(
    tmp_path: Path, engine: Engine, media_server: Any, dog_segments: list[Seg], speech_segments: list[Seg]
) -> None:
    dogs, speech = dog_segments[:4], speech_segments[:4]
    plan = make_plan({DOG: dogs, SPEECH: speech}, 3)
    # bad: speech[1] undecodable; hf: dogs[0], dogs[1], speech[0]; lab: speech[1], dogs[2]; youtube: the rest
    corrupt_parquet(tmp_path / "bad", speech[1])
    write_hf_parquet(tmp_path / "hf", [dogs[0], dogs[1], speech[0]], rows_per_group=2)
    write_directory(tmp_path / "lab", [speech[1], dogs[2]], naming="audiosetdl")
    for s in dogs + speech:
        media_server.catalog[s.ytid] = SourceSpec(class_key="demo-class-1", duration_s=s.end_s + 2.0)
    origins: list[Any] = [
        {"path": str(tmp_path / "bad"), "name": "bad-copy"},
        str(tmp_path / "hf"),
        {"path": str(tmp_path / "lab"), "name": "lab-copy"},
        "youtube",
    ]
    options = DownloadOptions(base_url=media_server.base_url, origins=origins, **FAST)

    local, dask, stream, watched = run_both(engine, plan, tmp_path, options, media_server)

    assert dask == local and "youtube" in dask["rows"][speech[2].clip_id]
    by_origin = Counter(row[1] for row in dask["rows"].values() if row[0] == "ok")
    assert by_origin == {"hf-parquet": 3, "lab-copy": 2, "youtube": 1}
    assert dask["failed"] == Counter({(speech[1].clip_id, "corrupt", "origin bad-copy"): 1})
    assert watched == {speech[2].ytid}  # the dogs' target is met by the origins; YouTube is asked for the rest only
    # the reads were Dask tasks, run in the worker processes, one per clip an origin holds
    reads = [t for t in stream if str(t["key"]).startswith("afs-origin-")]
    assert sorted(str(t["key"]).removeprefix("afs-origin-").rsplit("-", 1)[0] for t in reads) == sorted(s.clip_id for s in (*dogs[:3], *speech[:2]))
    pids = engine.client.run(os.getpid)  # type: ignore[attr-defined]
    assert {t["worker"] for t in reads} <= set(pids) and os.getpid() not in pids.values()


def test_without_youtube_a_clip_no_origin_gives_is_in_no_origin_on_dask_as_locally(
    tmp_path: Path, engine: Engine, media_server: Any, dog_segments: list[Seg]
) -> None:
    dogs = dog_segments[:5]
    plan = make_plan({DOG: dogs}, 4)
    corrupt_parquet(tmp_path / "bad", dogs[0])  # held, but fails the proof, and no other origin holds it
    write_directory(tmp_path / "lab", dogs[1:3], naming="pann")
    options = DownloadOptions(base_url=media_server.base_url, origins=[str(tmp_path / "bad"), {"path": str(tmp_path / "lab"), "name": "lab-copy"}], **FAST)

    local, dask, _, watched = run_both(engine, plan, tmp_path, options, media_server)

    assert dask == local and watched == set()
    status = {c: (row[0], row[3]) for c, row in dask["rows"].items()}
    assert status[dogs[0].clip_id] == ("failed-permanent", "corrupt")
    assert status[dogs[3].clip_id] == ("failed-permanent", "in-no-origin") and status[dogs[4].clip_id] == ("failed-permanent", "in-no-origin")
    assert [status[s.clip_id][0] for s in dogs[1:3]] == ["ok", "ok"]


def test_an_origin_a_worker_cannot_open_is_a_clear_error(tmp_path: Path, dog_segments: list[Seg]) -> None:
    seg = dog_segments[0]
    entry = make_plan({DOG: [seg]}, 1).entries[0]
    gone = OriginSpec(path=str(tmp_path / "not-on-this-machine"), layout="directory", name="lab-copy")
    from audioset_fewshot.download.origins import OriginClip

    job = OriginJob(entry, ((0, OriginClip(seg.ytid, "balanced", seg.start_s, ("x.flac", "flac"))),), (gone,), None, 16000, "flac")
    with pytest.raises(OriginError, match=r"cannot open origin lab-copy.*does not exist.*same path"):
        read_on_worker(job, "run-1")


def test_a_worker_killed_mid_read_loses_no_clip_and_records_none_twice(tmp_path: Path, engine: Engine, shared_metadata_dir: Path) -> None:
    # 24 clips at 44.1 kHz stereo: each read is a decode, a resample and an encode on a worker
    dogs = real_segments(shared_metadata_dir, DOG, 12)
    speech = [s for s in real_segments(shared_metadata_dir, SPEECH, 40) if DOG not in s.labels][:12]  # each ID planned once
    segs = {DOG: dogs, SPEECH: speech}
    plan = make_plan(segs, 12)
    write_directory(tmp_path / "lab", [s for group in segs.values() for s in group], naming="ast")
    options = DownloadOptions(origins=[{"path": str(tmp_path / "lab"), "name": "lab-copy"}], **FAST)
    roots = tmp_path / "local", tmp_path / "dask"
    for root in roots:
        write_plan(plan, DatasetLayout(root))
    run_download(plan, roots[0], options)

    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=kill_a_worker_running, args=(engine.client, "afs-origin-", killed, stop), daemon=True)  # type: ignore[attr-defined]
    killer.start()
    try:
        rep = download_on(engine, plan, roots[1], options)
    finally:
        stop.set()
        killer.join(30)
    assert killed, "no origin read was caught on a worker: nothing was killed"
    assert rep.complete and rep.by_origin == {"lab-copy": 24}, rep.summary_lines()
    local, dask = facts(roots[0]), facts(roots[1])
    assert dask == local
    with Ledger(DatasetLayout(roots[1]).ledger_file, readonly=True) as led:
        ok = Counter(a.clip_id for a in led.attempts() if a.ok)
    assert sorted(ok.values()) == [1] * 24  # every clip once, none twice
    engine.client.wait_for_workers(2, timeout=60)  # type: ignore[attr-defined]  # the session's cluster is whole again


@pytest.mark.parametrize("where", ["dask", "local"])
def test_a_paused_session_does_not_stop_the_reads_of_the_origins(
    where: str, tmp_path: Path, engine: Engine, media_server: Any, dog_segments: list[Seg], speech_segments: list[Seg]
) -> None:
    from datetime import datetime, timedelta

    dogs, speech = dog_segments[:2], speech_segments[:4]  # the dogs from YouTube only, the speech from the lab copy
    plan = make_plan({DOG: dogs, SPEECH: speech}, 4)
    write_directory(tmp_path / "lab", speech, naming="ast")
    for s in dogs:
        media_server.catalog[s.ytid] = SourceSpec(class_key="demo-class-1", duration_s=s.end_s + 2.0)
    media_server.rate_limit_burst(1)  # the first watch page is a rate-limit: the one session pauses
    pause_s = 8.0
    fast = {**FAST, "jobs": 1}
    options = DownloadOptions(base_url=media_server.base_url, origins=[{"path": str(tmp_path / "lab"), "name": "lab-copy"}, "youtube"], pause_s=pause_s, **fast)
    root = tmp_path / "root"
    write_plan(plan, DatasetLayout(root))

    rep = download_on(engine, plan, root, options) if where == "dask" else run_download(plan, root, options)

    assert rep.pauses == 1 and rep.by_origin == {"lab-copy": 4, "youtube": 2}, rep.summary_lines()
    with Ledger(DatasetLayout(root).ledger_file, readonly=True) as led:
        attempts = led.attempts()

    def at(text: str) -> datetime:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")

    (limited,) = [a for a in attempts if a.reason == "rate-limited"]
    resumed = at(limited.started_at) + timedelta(seconds=pause_s)
    reads = [at(a.started_at) for a in attempts if a.ok and a.clip_id in {s.clip_id for s in speech}]
    assert len(reads) == 4 and max(reads) < resumed, (reads, resumed)  # all read while the session was paused (or before)
