from __future__ import annotations

from pathlib import Path

from support.manifest_helpers import CAT, DOG, SPEECH, Clip, make_root, standard_clips, ytid

from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.manifest.build import build_manifest
from audioset_fewshot.manifest.diff import diff_manifests
from audioset_fewshot.manifest.status import dataset_status, read_headers


def test_diff_groups_per_class_and_total(tmp_path: Path) -> None:
    base = standard_clips()
    a = make_root(tmp_path / "a", base)
    b_clips = [c for c in base if c.ytid != ytid(2)] + [Clip(ytid(8), CAT, 1)]
    b = make_root(tmp_path / "b", b_clips)
    build_manifest(a.root)
    build_manifest(b.root)
    # same id and start, different content in b
    f = b.root / f"audio/m_0bt9lr/{ytid(6)}_30000.flac"
    text = b.clips_csv.read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith(ytid(6)))
    b.clips_csv.write_text(text.replace(line, line.replace(line.split(",")[9], "f" * 64)))
    d = diff_manifests(a.root, b.clips_csv)
    assert d.only_a == (f"{ytid(2)}_30000",)
    assert d.only_b == (f"{ytid(8)}_30000",)
    assert d.changed == (f"{ytid(6)}_30000",)
    assert d.totals() == {"same": 3, "changed": 1, "only_a": 1, "only_b": 1}
    assert d.per_class[SPEECH] == {"same": 1, "changed": 0, "only_a": 1, "only_b": 0}
    assert d.per_class[CAT]["only_b"] == 1 and not d.identical
    assert f.exists()
    assert diff_manifests(a.root, a.clips_csv).identical


def test_status_counts(small_root: DatasetLayout, shared_metadata_dir: Path) -> None:
    rep = dataset_status(small_root.root, headers=read_headers(shared_metadata_dir))
    by = {c.mid: c for c in rep.classes}
    assert (by[SPEECH].obtained, by[SPEECH].target, by[SPEECH].failed_permanent) == (2, 3, {"private": 1})
    assert by[DOG].failed_transient == {"http-5xx": 1} and by[DOG].name == "Dog"
    assert rep.to_retry == (f"{ytid(5)}_30000",)
    src = {s.source: s for s in rep.sources}
    assert src["balanced"].header_segments == 22160 and src["eval"].header_segments == 20371
    assert src["balanced"].availability == 0.8
    assert rep.failures_by_reason() == {"http-5xx": 1, "private": 1}
