"""A scheduler that goes away mid-pack ends the run with a clear error, bounded in time;
a rerun resumes and gives the bytes of an uninterrupted run.  The scheduler and its worker
are processes of their own (``dask scheduler`` / ``dask worker``, tests/engine/conftest.py),
so one can be killed."""

from __future__ import annotations

import shutil
import signal
import threading
import time
from pathlib import Path

import pytest
from support.dask_cluster import Scheduler
from support.process_clips import DOG, SPEECH, Clip, make_root

from audioset_fewshot.config import ClusterOptions, PackOptions
from audioset_fewshot.engine import DaskEngine, open_engine
from audioset_fewshot.errors import EngineError
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.process import clean, pack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def test_the_scheduler_going_away_ends_the_run_clearly_and_a_rerun_resumes(scheduler: Scheduler, tmp_path: Path) -> None:
    sched, address = scheduler.process, scheduler.address
    clips = [Clip(f"s{c}{i:09d}", mid, "stereo44k") for c, mid in enumerate((SPEECH, DOG)) for i in range(20)]
    ref = make_root(tmp_path / "ref", clips)
    clean(ref.root)
    expected = pack(ref.root, PackOptions(workers=1))
    layout = DatasetLayout(tmp_path / "cut")
    shutil.copytree(ref.root, layout.root)
    shutil.rmtree(layout.pack_dir)

    options = ClusterOptions(engine="dask", address=address, timeout_s=5.0)
    t0 = 0.0
    with open_engine(options) as engine:
        assert isinstance(engine, DaskEngine)

        def kill_when_a_task_finished() -> None:
            nonlocal t0
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                done = engine.client.run_on_scheduler(lambda dask_scheduler: sum(ts.state == "memory" for ts in dask_scheduler.tasks.values()))
                if done >= 1:
                    t0 = time.monotonic()
                    sched.send_signal(signal.SIGKILL)
                    return
                time.sleep(0.02)

        killer = threading.Thread(target=kill_when_a_task_finished, daemon=True)
        killer.start()
        with pytest.raises(EngineError, match=r"the Dask scheduler at tcp://127\.0\.0\.1:\d+ went away mid-run.*run the same command to resume"):
            pack(layout.root, PackOptions(workers=2), engine=engine)
        killer.join(30)
    assert t0 and time.monotonic() - t0 < 30  # ended within seconds of the cut, not a hang
    # the chunks finished before the cut are kept; the rerun (here on the local pool) does the rest
    assert (layout.pack_dir / expected.key / "progress.json").is_file()
    rec = pack(layout.root, PackOptions(workers=2))
    assert rec.key == expected.key
    assert (layout.pack_dir / rec.key / "audio.int16").read_bytes() == expected.audio_path.read_bytes()
    assert (layout.pack_dir / rec.key / "meta.json").read_bytes() == (expected.path / "meta.json").read_bytes()
