"""The ``cluster`` section: its rules across fields, and the dask-jobqueue scripts it renders
(real dask-jobqueue, no SLURM or PBS installation needed)."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from audioset_fewshot.cli import cli
from audioset_fewshot.config import ClusterOptions, config_from_dict
from audioset_fewshot.engine import job_script, jobqueue_kwargs
from audioset_fewshot.errors import ConfigError


def _cluster(**kw: Any) -> ClusterOptions:
    cfg = config_from_dict({"cluster": kw})
    return cfg.cluster


def test_defaults_are_the_local_pools() -> None:
    c = _cluster()
    assert (c.engine, c.address, c.jobqueue) == ("local", None, None)


def test_engine_local_ignores_a_saved_address_and_opens_no_cluster() -> None:
    from audioset_fewshot.engine import LOCAL, open_engine

    c = _cluster(engine="local", address="tcp://127.0.0.1:9")  # a root saved with a cluster, run here with --engine local
    with open_engine(c) as engine:
        assert engine is LOCAL


@pytest.mark.parametrize(
    ("section", "match"),
    [
        ({"engine": "dask", "jobqueue": "sge"}, r"'cluster\.jobqueue': expected 'slurm' \| 'pbs' or null, got 'sge'"),
        ({"engine": "dask", "jobqueue": "slurm", "job_memory": "lots"}, r"'cluster\.job_memory': 'lots' is not a size"),
        ({"engine": "dask", "jobqueue": "slurm", "job_memory": "12"}, r"'cluster\.job_memory': '12' is less than 1 MiB"),
        ({"engine": "dask", "jobqueue": "slurm", "job_cores": 0}, r"'cluster\.job_cores': 0 is below the minimum 1"),
        ({"engine": "dask", "jobqueue": "slurm", "job_count": 0}, r"'cluster\.job_count': 0 is below the minimum 1"),
        ({"engine": "dask", "jobqueue": "slurm", "job_walltime": "4h"}, r"'cluster\.job_walltime': '4h' is not HH:MM:SS"),
        ({"engine": "dask", "jobqueue": "pbs", "job_walltime": "1-00:00:00"}, r"PBS takes HH:MM:SS"),
        ({"engine": "dask", "jobqueue": "slurm", "job_extra": ["--a\n#SBATCH --b"]}, r"'cluster\.job_extra\[0\]'.*one line"),
        ({"engine": "dask", "address": "tcp://h:8786", "jobqueue": "slurm"}, r"'cluster\.address' and 'cluster\.jobqueue' are exclusive"),
        ({"engine": "dask", "address": "h:8786"}, r"'cluster\.address': 'h:8786' is not a scheduler address such as tcp://HOST:8786"),
        ({"engine": "dask", "address": "tcp://h:99999"}, r"'cluster\.address'"),
        ({"jobqueue": "slurm", "job_memory": "x"}, r"'cluster\.job_memory'"),  # checked with engine local too
        ({"engine": "spark"}, r"'cluster\.engine': 'spark' is not one of 'local', 'dask'"),
    ],
)
def test_a_misconfigured_cluster_is_a_config_error_naming_the_key(section: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        config_from_dict({"cluster": section})


def test_addresses_that_are_accepted() -> None:
    for address in ("tcp://127.0.0.1:8786", "tls://head-node.example.org:8786", "tcp://[::1]:8786"):
        assert _cluster(engine="dask", address=address).address == address


SLURM = {
    "engine": "dask",
    "jobqueue": "slurm",
    "job_queue": "cpu-long",
    "job_account": "proj42",
    "job_cores": 6,
    "job_memory": "24GB",
    "job_walltime": "1-04:00:00",
    "job_count": 3,
    "job_extra": ["--constraint=avx2"],
}


@pytest.mark.timeout(60)
def test_slurm_job_script_holds_queue_cores_memory_walltime_and_the_worker_command() -> None:
    script = job_script(_cluster(**SLURM))
    lines = script.splitlines()
    assert lines[0].startswith("#!")
    for directive in ("#SBATCH -J audioset-fewshot", "#SBATCH -p cpu-long", "#SBATCH -A proj42", "#SBATCH --cpus-per-task=6", "#SBATCH -t 1-04:00:00"):
        assert directive in lines, (directive, script)
    assert "#SBATCH --constraint=avx2" in lines
    mem = next(line for line in lines if line.startswith("#SBATCH --mem="))
    assert mem in ("#SBATCH --mem=23G", "#SBATCH --mem=24G"), mem  # dask-jobqueue rounds 24 GB down to GiB
    worker = next(line for line in lines if "distributed.cli.dask_worker" in line)
    # one single-threaded worker process per core, started by this very interpreter
    assert "--nworkers 6" in worker and "--nthreads 1" in worker and "--nanny" in worker
    assert worker.split()[0].endswith(("python", "python3"))


@pytest.mark.timeout(60)
def test_pbs_job_script_holds_queue_cores_memory_walltime_and_the_worker_command() -> None:
    section = {**SLURM, "jobqueue": "pbs", "job_walltime": "04:00:00", "job_extra": ["-l place=scatter"]}
    script = job_script(_cluster(**section))
    lines = script.splitlines()
    for directive in ("#PBS -N audioset-fewshot", "#PBS -q cpu-long", "#PBS -A proj42", "#PBS -l walltime=04:00:00", "#PBS -l place=scatter"):
        assert directive in lines, (directive, script)
    select = next(line for line in lines if line.startswith("#PBS -l select=1:ncpus=6:mem="))
    assert select.endswith(("MB", "GB"))
    worker = next(line for line in lines if "distributed.cli.dask_worker" in line)
    assert "--nworkers 6" in worker and "--nthreads 1" in worker


def test_jobqueue_keywords_leave_out_what_is_not_set() -> None:
    kw = jobqueue_kwargs(_cluster(engine="dask", jobqueue="slurm"))
    assert "queue" not in kw and "account" not in kw
    assert (kw["cores"], kw["processes"], kw["memory"], kw["walltime"]) == (4, 4, "8GB", "01:00:00")


@pytest.mark.timeout(60)
def test_cluster_script_command_prints_the_script_and_refuses_without_jobqueue() -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["cluster", "script", "--engine", "dask", "--jobqueue", "slurm", "--job-queue", "short", "--job-cores", "2"])
    assert res.exit_code == 0, res.output
    assert "#SBATCH -p short" in res.output and "--nworkers 2" in res.output
    res = runner.invoke(cli, ["cluster", "script"])
    assert res.exit_code != 0
    assert "cluster script needs cluster.jobqueue" in str(res.exception or res.output)
    res = runner.invoke(cli, ["cluster", "script", "--jobqueue", "pbs", "--job-queue", "short"])  # engine local: the script is the same
    assert res.exit_code == 0 and "#PBS -q short" in res.output
    res = runner.invoke(cli, ["cluster", "script", "--engine", "dask", "--jobqueue", "slurm", "--job-memory", "much"])
    assert res.exit_code != 0
    assert "cluster.job_memory" in str(res.exception or res.output)
