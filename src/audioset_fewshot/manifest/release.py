"""The manifest of a root whose clips come from the VGGish embedding release.

Such a root has no audio files, so ``clips.csv`` (paths, sample rates, file
hashes) does not apply.  :func:`build_release_manifest` writes instead

- ``manifest/release_clips.csv``: one row per obtained clip, sorted by
  (owner_mid, ytid, start_s): ``ytid, start_s, end_s, owner_mid, labels, source,
  origin`` (``vggish-release``), ``seconds`` (seconds present in the release),
  ``release_sha256`` (the release's content hash: the same for the folder and
  the ``.tar.gz``), ``release_labels`` (the release's own labels when they
  differ from the segment list's, which win);
- ``manifest/unavailable.csv``: the planned clips the release does not have, in
  the audio path's columns, with the release's reasons (``not-in-release``,
  ``corrupt-record``, ``release-damaged``).

Both are written only when their content changes, from ``release/obtained.csv``
and ``release/obtained.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from audioset_fewshot.errors import StageNotReadyError
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.manifest.build import UNAVAILABLE_COLUMNS, _csv_text, _write_if_changed
from audioset_fewshot.manifest.clips import SEGMENT_COLUMNS
from audioset_fewshot.release.obtain import ORIGIN, read_obtained

RELEASE_CLIPS_COLUMNS: tuple[str, ...] = (*SEGMENT_COLUMNS, "origin", "seconds", "release_sha256", "release_labels")


@dataclass(frozen=True)
class ReleaseManifestRecord:
    clips: int
    classes: int
    unavailable: int
    release_sha256: str
    written: tuple[str, ...]


def build_release_manifest(root: Path | str) -> ReleaseManifestRecord:
    """Write ``release_clips.csv`` and ``unavailable.csv`` of a release-backed root."""
    layout = DatasetLayout(Path(root))
    rows = read_obtained(layout.root)
    try:
        meta = json.loads(layout.release_obtained_json.read_text(encoding="utf-8"))
        content = str(meta["release"]["content_sha256"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise StageNotReadyError(f"{layout.release_obtained_json} is missing or unreadable; run the download stage again") from err
    ok = sorted((r for r in rows if r.status == "ok"), key=lambda r: (r.owner_mid, r.ytid, r.start_s))
    failed = sorted((r for r in rows if r.status != "ok"), key=lambda r: (r.owner_mid, r.ytid, r.start_s))
    clips_text = _csv_text(RELEASE_CLIPS_COLUMNS, [
        [r.ytid, f"{r.start_s:.3f}", f"{r.end_s:.3f}", r.owner_mid, ";".join(sorted(r.labels)), r.source, ORIGIN, str(r.seconds), content,
         "" if r.release_labels is None else ";".join(r.release_labels)] for r in ok
    ])  # fmt: skip
    unavailable_text = _csv_text(UNAVAILABLE_COLUMNS, [
        [r.ytid, f"{r.start_s:.3f}", f"{r.end_s:.3f}", r.owner_mid, r.source, "failed-permanent", r.reason] for r in failed
    ])  # fmt: skip
    written: list[str] = []
    layout.manifest_dir.mkdir(parents=True, exist_ok=True)
    _write_if_changed(layout.release_clips_csv, clips_text, layout, written)
    _write_if_changed(layout.unavailable_csv, unavailable_text, layout, written)
    return ReleaseManifestRecord(clips=len(ok), classes=len({r.owner_mid for r in ok}), unavailable=len(failed), release_sha256=content, written=tuple(written))


__all__ = ["RELEASE_CLIPS_COLUMNS", "ReleaseManifestRecord", "build_release_manifest"]
