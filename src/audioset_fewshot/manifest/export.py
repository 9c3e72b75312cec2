"""``export_clips(root, into=..., cc_only=True)``: the part of a dataset that may be shared.

Only clips whose YouTube licence is Creative Commons are copied (YouTube's
only CC licence is CC BY 3.0, which allows redistribution with attribution).
The export folder gets:

* ``audio/<mid_slug>/<ytid>_<start_ms>.flac`` -- the clips, copied atomically
  and checked against their sha256;
* ``manifest/clips.csv`` -- the manifest of the exported subset;
* ``manifest/attribution.csv`` -- the attribution data, one row per clip;
* ``manifest/export.json`` -- schema version, parameters, the source
  manifest's lock hash and clips.csv hash;
* ``ATTRIBUTION.txt`` -- for every clip: title, uploader (creator), channel,
  YouTube URL, licence with a link to its legal code, the segment, and the
  changes made (as CC BY asks).

Text from YouTube (title, uploader, licence) is written safely: control,
line-separator and bidi-override characters become spaces, length is
bounded, and CSV cells that a spreadsheet would run as a formula are quoted
with a leading apostrophe.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audioset_fewshot._io import atomic_write_json, json_fields, sha256_text, write_text_if_changed
from audioset_fewshot.errors import ManifestError
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.manifest._files import check_destination, copy_or_report, dest_path
from audioset_fewshot.manifest._ledger import read_ledger
from audioset_fewshot.manifest.build import segment_url
from audioset_fewshot.manifest.clips import ManifestRow, clean_text, read_clips, render_clips
from audioset_fewshot.validate import safe_relpath

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
CC_BY_LEGALCODE = "https://creativecommons.org/licenses/by/3.0/legalcode"
ATTRIBUTION_COLUMNS = ("ytid", "start_s", "end_s", "title", "uploader", "channel_id", "url", "license", "path")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def is_creative_commons(license_text: str | None) -> bool:
    """True for YouTube's Creative Commons licence texts (and ``CC BY`` / ``CC-BY`` spellings)."""
    if not license_text:
        return False
    t = " ".join(license_text.lower().replace("-", " ").split())
    return "creative commons" in t or t.startswith("cc by")


def _cell(text: str) -> str:
    """A CSV cell a spreadsheet shows as text, never runs as a formula."""
    return "'" + text if text.startswith(_FORMULA_START) else text


@dataclass(frozen=True)
class ExportReport:
    into: Path
    exported: tuple[str, ...]
    skipped_licence: int
    bad_source: tuple[str, ...] = ()
    copied: int = 0
    clips_sha256: str = ""
    removed: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {**json_fields(self), "exported": len(self.exported)}


def _attribution_block(row: ManifestRow, title: str, uploader: str) -> str:
    url = segment_url(row.ytid, row.start_s)
    return "\n".join(
        [
            f"File: {row.path}",
            f"  Title: {title or '(untitled)'}",
            f"  Creator: {uploader or '(unknown uploader)'}" + (f" (YouTube channel {row.channel_id})" if row.channel_id else ""),
            f"  Source: {url}",
            f"  Licence: {row.license} -- CC BY 3.0, {CC_BY_LEGALCODE}",
            f"  Segment: {row.start_s:.3f}-{row.end_s:.3f} s of the video",
            f"  Changes: cut to this segment, mixed down to mono, resampled to {row.sample_rate_hz} Hz, 16-bit {row.path.rsplit('.', 1)[-1].upper()}.",
            "",
        ]
    )


def export_clips(root: Path | str, *, into: Path | str, cc_only: bool = True) -> ExportReport:
    """Copy the shareable clips of ``root`` (its built manifest) into ``into``.

    ``cc_only`` must stay True: AudioSet audio may not be redistributed
    otherwise.  ``into`` may not overlap ``root``; nothing outside ``into``
    is written.  Rerunning copies only what changed.
    """
    if not cc_only:
        raise ManifestError("export without --cc-only is refused: only Creative Commons clips may be redistributed")
    layout = DatasetLayout(Path(root))
    dest = check_destination(into, sources=[layout.root], what="export")
    out = DatasetLayout(dest)
    rows = read_clips(layout.clips_csv, root=layout.root)
    ledger = {c.clip_id: c for c in read_ledger(layout.ledger_file, in_plan_only=False)} if layout.ledger_file.exists() else {}
    chosen = [r for r in rows if is_creative_commons(r.license)]
    exported: list[ManifestRow] = []
    bad: list[str] = []
    copied = 0
    blocks: list[str] = []
    attrib_rows: list[list[str]] = []
    for row in chosen:
        src = safe_relpath(row.path, root=layout.root)
        target = dest_path(row.path, root=dest)
        outcome = copy_or_report(src, target, sha256=row.sha256)
        if outcome == "bad-source":
            bad.append(row.path)
            log.warning("not exported: %s is missing or does not match its sha256 (run 'audioset-fewshot verify')", row.path)
            continue
        copied += outcome == "copied"
        exported.append(row)
        lc = ledger.get(row.clip_id)
        title = clean_text(lc.title if lc else "", limit=300)
        uploader = clean_text(lc.uploader if lc else "", limit=200)
        blocks.append(_attribution_block(row, title, uploader))
        attrib_rows.append(
            [
                row.ytid,
                f"{row.start_s:.3f}",
                f"{row.end_s:.3f}",
                _cell(title),
                _cell(uploader),
                row.channel_id,
                segment_url(row.ytid, row.start_s),
                _cell(row.license),
                row.path,
            ]
        )
    keep = {r.path for r in exported}
    removed: list[str] = []
    if out.audio_dir.is_dir() and (out.manifest_dir / "export.json").is_file():
        # a previous export into this folder: drop clips that are no longer exported
        for p in sorted(out.audio_dir.rglob("*")):
            rel = p.relative_to(dest).as_posix()
            if p.is_file() and not p.is_symlink() and rel not in keep:
                p.unlink()
                removed.append(rel)
    clips_text = render_clips(exported)
    header = (
        "Audio excerpts from YouTube videos published under a Creative Commons licence\n"
        "(YouTube: 'Creative Commons Attribution licence (reuse allowed)', CC BY 3.0).\n"
        "Segments and labels from Google's AudioSet (CC BY 4.0), https://research.google.com/audioset/.\n"
        "Each file below is an excerpt of the credited video, adapted as stated; the licensor does not endorse this use.\n"
        f"No warranties are given; see {CC_BY_LEGALCODE}.\n\n"
    )
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(ATTRIBUTION_COLUMNS)
    w.writerows(attrib_rows)
    lock_hash = ""
    if layout.lock_json.is_file():
        try:
            lock_hash = str(json.loads(layout.lock_json.read_text(encoding="utf-8")).get("content_hash", ""))
        except (OSError, ValueError):
            lock_hash = ""
    files = {
        out.clips_csv: clips_text,
        out.manifest_dir / "attribution.csv": buf.getvalue(),
        dest / "ATTRIBUTION.txt": header + "\n".join(blocks),
    }
    for path, text in files.items():
        target = dest_path(path.relative_to(dest).as_posix(), root=dest)
        write_text_if_changed(target, text)
    meta = {
        "schema_version": SCHEMA_VERSION,
        "params": {"cc_only": True},
        "source_lock_content_hash": lock_hash,
        "source_clips_sha256": sha256_text(layout.clips_csv.read_text(encoding="utf-8")),
        "clips": {"count": len(exported), "sha256": sha256_text(clips_text)},
    }
    atomic_write_json(dest_path("manifest/export.json", root=dest), meta)
    return ExportReport(
        into=dest, exported=tuple(r.clip_id for r in exported), skipped_licence=len(rows) - len(chosen), bad_source=tuple(bad),
        copied=copied, clips_sha256=sha256_text(clips_text), removed=tuple(removed),
    )  # fmt: skip
