"""Manifest stage: the dataset as a recipe (clips.csv, per-class CSVs,
unavailable.csv, lock.json, provenance) and the tools around it.

``manifest.clips`` holds the clip table's schema, writer and validating reader.
"""

from __future__ import annotations

from audioset_fewshot.manifest.clips import CLIPS_COLUMNS, ManifestRow, read_clips, render_clips, write_clips

__all__ = ["CLIPS_COLUMNS", "ManifestRow", "read_clips", "render_clips", "write_clips"]
