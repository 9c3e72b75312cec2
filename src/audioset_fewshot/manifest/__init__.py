"""Manifest stage: the dataset as a recipe (clips.csv, per-class CSVs,
unavailable.csv, lock.json, provenance) and the tools around it.

* ``manifest.clips`` -- the clip table's schema, writer and validating reader;
* ``build_manifest(root)`` -- write ``ROOT/manifest/`` from the ledger (idempotent);
* ``dataset_status(root)`` -- per class obtained / target / failures by reason;
* ``verify(root)`` -- re-hash every clip, report every problem;
* ``diff_manifests(a, b)`` -- compare two manifests or roots;
* ``rebuild(manifest, root=...)`` -- download exactly the clips a manifest lists;
* ``merge_roots(roots, into=...)`` -- shards or machines into one root;
* ``export_clips(root, into=...)`` -- the Creative Commons clips with attribution.

A manifest is untrusted input: every reader validates it row by row and no
tool reads or writes outside the root it was given.
"""

from __future__ import annotations

from audioset_fewshot.manifest.build import ManifestRecord, build_manifest
from audioset_fewshot.manifest.clips import CLIPS_COLUMNS, ManifestRow, read_clips, render_clips, write_clips
from audioset_fewshot.manifest.diff import ManifestDiff, diff_manifests
from audioset_fewshot.manifest.export import ExportReport, export_clips
from audioset_fewshot.manifest.merge import MergeReport, merge_roots
from audioset_fewshot.manifest.rebuild import RebuildReport, rebuild
from audioset_fewshot.manifest.status import StatusReport, dataset_status
from audioset_fewshot.manifest.verify import Problem, VerifyReport, verify

__all__ = [
    "CLIPS_COLUMNS", "ExportReport", "ManifestDiff", "ManifestRecord", "ManifestRow", "MergeReport", "Problem",
    "RebuildReport", "StatusReport", "VerifyReport", "build_manifest", "dataset_status", "diff_manifests",
    "export_clips", "merge_roots", "read_clips", "rebuild", "render_clips", "verify", "write_clips",
]  # fmt: skip
