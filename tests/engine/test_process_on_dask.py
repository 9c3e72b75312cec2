"""clean, pack and features on a real Dask LocalCluster (2 worker processes): the same bytes
as the local pools, also when a worker process is killed mid-pack; and ``cluster doctor``
against it.  One cluster serves the module (starting one costs seconds)."""

from __future__ import annotations

import functools
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from support.dask_cluster import kill_a_worker_running
from support.process_clips import DOG, MUSIC, SPEECH, STANDARD, Clip, make_root

from audioset_fewshot.cli import cli
from audioset_fewshot.config import ClusterOptions, PackOptions
from audioset_fewshot.engine import DaskEngine
from audioset_fewshot.engine.doctor import cluster_doctor
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.process import clean, features, pack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
def engine(dask_engine: DaskEngine) -> DaskEngine:
    return dask_engine  # the session's LocalCluster of 2 worker processes (tests/conftest.py)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix != ".lock"}


def _process(layout: DatasetLayout, engine: DaskEngine | None, pack_options: PackOptions) -> None:
    clean(layout.root, engine=engine)
    pack(layout.root, pack_options, engine=engine)
    features(layout.root, engine=engine)


def test_dask_and_local_runs_give_byte_identical_clean_pack_and_features(engine: DaskEngine, tmp_path: Path) -> None:
    # every kind of clip (broken, short, stereo 44.1 kHz, ...) plus enough to fill several chunks of each stage
    clips = STANDARD + [Clip(f"e{c}{i:09d}", mid, ("tone", "noise")[i % 2]) for c, mid in enumerate((SPEECH, DOG, MUSIC)) for i in range(10)]
    local, dask = make_root(tmp_path / "local", clips), make_root(tmp_path / "dask", clips)
    _process(local, None, PackOptions(workers=2, length_policy="pad_repeat"))
    # the Dask side through the command, on the session's cluster by its address
    address = engine.client.scheduler.address if engine.client.scheduler is not None else ""
    res = CliRunner().invoke(
        cli,
        ["process", "--root", str(dask.root), "--force-root", "--workers", "2", "--length-policy", "pad_repeat", "--engine", "dask", "--address", address],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    assert f"engine: Dask at {address}" in res.output
    a, b = _files(local.processed_dir), _files(dask.processed_dir)
    assert sorted(a) == sorted(b)
    assert any(name.endswith("audio.int16") for name in a) and any(name.endswith("mels.f32") for name in a)
    differ = [name for name in a if a[name] != b[name]]
    assert not differ, f"differ between the Dask run and the local run: {differ}"


def test_cluster_doctor_finds_both_workers_matching_the_driver(engine: DaskEngine) -> None:
    address = engine.client.scheduler.address if engine.client.scheduler is not None else ""
    report = cluster_doctor(ClusterOptions(engine="dask", address=address, timeout_s=30.0))
    assert report.ok, report.lines()
    assert len(report.workers) == 2
    assert all(w.versions == report.driver for w in report.workers)
    assert any(line.startswith("worker tcp://127.0.0.1:") and line.endswith(": ok") for line in report.lines())


def test_a_worker_killed_mid_pack_still_gives_the_same_bytes(engine: DaskEngine, tmp_path: Path) -> None:
    # 44.1 kHz stereo clips: resampled, so a task of 32 rows runs long enough to be caught running
    clips = [Clip(f"k{c}{i:09d}", mid, "stereo44k") for c, mid in enumerate((SPEECH, DOG)) for i in range(24)]
    ref = make_root(tmp_path / "ref", clips)
    clean(ref.root)
    pack(ref.root, PackOptions(workers=1))
    layout = DatasetLayout(tmp_path / "killed")
    shutil.copytree(ref.root, layout.root)
    shutil.rmtree(layout.pack_dir)

    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=kill_a_worker_running, args=(engine.client, "_pack_task-", killed, stop), daemon=True)
    killer.start()
    try:
        rec = pack(layout.root, PackOptions(workers=2), engine=engine)
    finally:
        stop.set()
        killer.join(30)
    assert killed, "no pack task was caught running: nothing was killed"
    with pytest.raises(ProcessLookupError):
        os.kill(killed[0], 0)  # that worker process is gone; the nanny started another
    assert _files(layout.pack_dir / rec.key) == _files(ref.pack_dir / rec.key)
    engine.client.wait_for_workers(2, timeout=60)  # the module's cluster is whole again


def test_the_pipeline_says_which_engine_it_opened(engine: DaskEngine, tmp_path: Path) -> None:
    from audioset_fewshot import pipeline
    from audioset_fewshot.config import Config

    address = engine.client.scheduler.address if engine.client.scheduler is not None else ""
    said: list[str] = []
    config = Config(root=str(tmp_path), cluster=ClusterOptions(engine="dask", address=address, timeout_s=30.0))
    ctx = pipeline._Context(config=config, layout=DatasetLayout(tmp_path), say=said.append)
    with ctx.stack:
        assert pipeline._engine(ctx) is pipeline._engine(ctx)  # opened once per run
    assert len(said) == 1 and said[0].startswith(f"engine: Dask at {address}"), said


def test_cluster_doctor_checks_that_every_worker_opens_the_origins(engine: DaskEngine, tmp_path: Path) -> None:
    address = engine.client.scheduler.address if engine.client.scheduler is not None else ""
    (tmp_path / "lab").mkdir()
    from audioset_fewshot.download.origins.check import origin_paths, unreadable_origins

    def doctor(origins: list[Any]) -> Any:
        checks = [functools.partial(unreadable_origins, origin_paths(origins))]
        return cluster_doctor(ClusterOptions(engine="dask", address=address, timeout_s=30.0), checks=checks)

    assert doctor([{"path": str(tmp_path / "lab"), "name": "lab-copy"}, "youtube"]).ok
    gone = {"path": str(tmp_path / "not-mounted-here"), "name": "lab-nfs"}
    report = doctor([{"path": str(tmp_path / "lab"), "name": "lab-copy"}, gone, str(tmp_path / "nor-this")])
    assert not report.ok and len(report.workers) == 2
    for w in report.workers:  # each worker names the origins it cannot open, and why
        assert w.problems == (
            f"lab-nfs: origin {gone['path']!r} does not exist: check the path (download.origins)",
            f"origin {str(tmp_path / 'nor-this')!r} does not exist: check the path (download.origins)",
        ), w.problems
