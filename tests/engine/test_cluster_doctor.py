"""``cluster doctor`` against a real scheduler whose worker runs another yt-dlp than the driver."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from support.dask_cluster import start_scheduler, stop

from audioset_fewshot.cli import cli
from audioset_fewshot.engine.doctor import compare, tool_versions


def test_compare_names_each_difference() -> None:
    driver = {"audioset-fewshot": "0.1.0", "yt-dlp": "2026.11.23", "ffmpeg": "7.0"}
    assert compare(driver, dict(driver)) == ()
    worker = {"audioset-fewshot": "0.0.9", "yt-dlp": "missing: not installed", "ffmpeg": "7.0"}
    assert compare(driver, worker) == ("audioset-fewshot 0.0.9, the driver has 0.1.0", "yt-dlp missing: not installed")


def test_the_driver_has_every_tool() -> None:
    versions = tool_versions()
    assert set(versions) == {"audioset-fewshot", "yt-dlp", "ffmpeg"}
    assert not any(v.startswith("missing") for v in versions.values()), versions


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_doctor_exits_1_naming_a_worker_with_another_yt_dlp(tmp_path: Path) -> None:
    # the worker's environment holds an older yt-dlp first on its path (a real distribution's metadata)
    shadow = tmp_path / "old-site"
    dist = shadow / "yt_dlp-2020.1.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: yt-dlp\nVersion: 2020.1.1\n", encoding="utf-8")
    sched, procs = start_scheduler(tmp_path, worker_pythonpath=(str(shadow),))
    try:
        runner = CliRunner()
        res = runner.invoke(cli, ["cluster", "doctor", "--engine", "dask", "--address", sched.address, "--cluster-timeout-s", "60"])
        assert res.exit_code == 1, res.output
        driver_ytdlp = tool_versions()["yt-dlp"]
        assert f"yt-dlp 2020.1.1, the driver has {driver_ytdlp}" in res.output
        assert "1 problem(s)" in res.output
        # with a config whose origins the worker cannot open: each is named with the reason
        cfg = tmp_path / "config.yaml"
        cfg.write_text(f"download:\n  origins: [{tmp_path / 'not-mounted'}, youtube]\n", encoding="utf-8")
        res = runner.invoke(cli, ["cluster", "doctor", "-c", str(cfg), "--engine", "dask", "--address", sched.address, "--cluster-timeout-s", "60"])
        assert res.exit_code == 1 and f"origin '{tmp_path / 'not-mounted'}' does not exist" in res.output, res.output
        assert "make the origins readable there at the same paths" in res.output
        # the same doctor against a scheduler that is not there: bounded, exit 1, says so
        res = runner.invoke(cli, ["cluster", "doctor", "--engine", "dask", "--address", "tcp://127.0.0.1:9", "--cluster-timeout-s", "2"])
        assert res.exit_code == 1
        assert "does not answer within 2 s" in res.output
    finally:
        stop(procs)
