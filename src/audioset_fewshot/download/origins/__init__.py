"""Audio from every road: local copies of AudioSet as origins beside YouTube.

``download.origins`` is an ordered list: ``youtube``, a local path, an fsspec
URL or a mapping ``{path, layout, name, revision}``.  For every planned clip
the first origin that holds it wins; every clip passes the same proof
(:mod:`.proof`); the ledger and manifest record where it came from.

Layouts: ``hf-parquet`` (:mod:`.hf_parquet`), ``webdataset``
(:mod:`.webdataset`), ``pann-hdf5`` (:mod:`.pann_hdf5`), ``directory``
(:mod:`.directory`).  ``audioset-fewshot origins check`` reports what an
origin holds (:mod:`.check`).
"""

from __future__ import annotations

from audioset_fewshot.download.origins.base import (
    LAYOUTS,
    YOUTUBE,
    Origin,
    OriginAudio,
    OriginClip,
    OriginError,
    OriginInfo,
    OriginSpec,
    parse_origin,
    parse_origins,
)
from audioset_fewshot.download.origins.registry import OriginSet, detect_layout, open_origin

__all__ = [
    "LAYOUTS", "YOUTUBE", "Origin", "OriginAudio", "OriginClip", "OriginError", "OriginInfo", "OriginSet", "OriginSpec",
    "detect_layout", "open_origin", "parse_origin", "parse_origins",
]  # fmt: skip
