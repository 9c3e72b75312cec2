"""The engine: where the chunks of a stage run (this machine's pools, or Dask).

``with open_engine(cfg.cluster) as engine:`` opens what the ``cluster`` section
describes (nothing for ``engine: local``; a LocalCluster, a running scheduler or
dask-jobqueue batch jobs for ``engine: dask``) and closes what it started.  A stage
takes ``engine=`` and asks it for an executor (``engine.executor(workers=2)``), then
maps its chunk function over its chunks: the same function, the same chunks and so
the same bytes whatever the engine.  ``dask`` and ``distributed`` are imported only
when a Dask engine is opened.
"""

from __future__ import annotations

from audioset_fewshot.engine.cluster import LOCAL, DaskEngine, Engine, LocalEngine, job_script, jobqueue_cluster, jobqueue_kwargs, open_engine
from audioset_fewshot.engine.executor import DaskExecutor, Executor, LocalExecutor

__all__ = [
    "LOCAL",
    "DaskEngine",
    "DaskExecutor",
    "Engine",
    "Executor",
    "LocalEngine",
    "LocalExecutor",
    "job_script",
    "jobqueue_cluster",
    "jobqueue_kwargs",
    "open_engine",
]
