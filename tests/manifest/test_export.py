from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from support.manifest_helpers import ytid

from audioset_fewshot.errors import ManifestError, UsageError
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.manifest import read_clips
from audioset_fewshot.manifest.build import build_manifest
from audioset_fewshot.manifest.export import export_clips, is_creative_commons
from audioset_fewshot.manifest.verify import verify


def test_cc_detection() -> None:
    assert is_creative_commons("Creative Commons Attribution license (reuse allowed)")
    assert is_creative_commons("CC-BY") and is_creative_commons("cc by 4.0")
    assert not is_creative_commons("") and not is_creative_commons(None) and not is_creative_commons("Standard YouTube License")


def test_export_only_cc_with_attribution(small_root: DatasetLayout, tmp_path: Path) -> None:
    build_manifest(small_root.root)
    into = tmp_path / "share"
    rep = export_clips(small_root.root, into=into)
    assert sorted(rep.exported) == [f"{ytid(1)}_30000", f"{ytid(4)}_30000"] and rep.skipped_licence == 3
    rows = read_clips(into / "manifest/clips.csv", root=into)
    assert [r.ytid for r in rows] == [ytid(1), ytid(4)]
    assert verify(into).ok  # the export is itself a verifiable root
    text = (into / "ATTRIBUTION.txt").read_text()
    assert f"https://www.youtube.com/watch?v={ytid(4)}&t=30s" in text
    assert "Title: Dog barks   evil" in text and "\u202e" not in text  # newline and bidi override neutralised
    assert "Creator: =cmd|x" in text and "creativecommons.org/licenses/by/3.0" in text
    assert "Segment: 30.000-40.000 s" in text and "Changes:" in text
    with open(into / "manifest/attribution.csv", newline="") as fh:
        attrib = {r["ytid"]: r for r in csv.DictReader(fh)}
    assert attrib[ytid(4)]["uploader"] == "'=cmd|x"  # never a spreadsheet formula
    assert json.loads((into / "manifest/export.json").read_text())["clips"]["count"] == 2
    again = export_clips(small_root.root, into=into)
    assert again.copied == 0 and again.exported == rep.exported


def test_export_destination_must_not_overlap(small_root: DatasetLayout) -> None:
    build_manifest(small_root.root)
    with pytest.raises(UsageError, match="overlaps"):
        export_clips(small_root.root, into=small_root.root / "share")
    with pytest.raises(UsageError, match="overlaps"):
        export_clips(small_root.root, into=small_root.root.parent)
    with pytest.raises(ManifestError, match="cc-only"):
        export_clips(small_root.root, into=small_root.root.parent / "x", cc_only=False)


def test_corrupt_source_not_exported(small_root: DatasetLayout, tmp_path: Path) -> None:
    build_manifest(small_root.root)
    (small_root.root / f"audio/m_0bt9lr/{ytid(4)}_30000.flac").write_bytes(b"junk")
    rep = export_clips(small_root.root, into=tmp_path / "share")
    assert rep.exported == (f"{ytid(1)}_30000",) and rep.bad_source == (f"audio/m_0bt9lr/{ytid(4)}_30000.flac",)
    assert not (tmp_path / f"share/audio/m_0bt9lr/{ytid(4)}_30000.flac").exists()
    assert not list((tmp_path / "share").rglob(".tmp-*"))
