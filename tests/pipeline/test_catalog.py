"""The offline demo's metadata and media catalog (no server, no download)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from audioset_fewshot.demo.catalog import QC_FAULTS, SEGMENT_FILES, UNAVAILABLE_FAULTS, build_demo_metadata
from audioset_fewshot.demo.server import FAULTS, SourceSpec
from audioset_fewshot.metadata import build_candidate_index, load_ontology, load_quality, read_segments, resolve_segment_files
from audioset_fewshot.selection import select_classes
from audioset_fewshot.validate import is_youtube_id


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    return build_demo_metadata(tmp_path_factory.mktemp("demo-meta"))


def test_classes_are_real_leaf_classes_passing_the_default_selection(demo) -> None:
    onto = load_ontology()
    chosen = {c.mid for c in select_classes(onto, load_quality()).chosen}
    assert len(demo.classes) == 30
    for c in demo.classes:
        assert c.mid in chosen and onto.is_leaf(c.mid) and not onto.is_blacklisted(c.mid)
        assert onto.name(c.mid) == c.name
    # spread over the top-level categories
    assert len({c.top_level for c in demo.classes}) >= 6
    assert "/m/028v0c" not in demo.mids  # Silence fails a silence check by nature


def test_lists_use_the_official_layout_and_parse_with_the_real_parser(demo) -> None:
    files = resolve_segment_files(tuple(SEGMENT_FILES), metadata_dir=demo.metadata_dir)
    table = read_segments(files)  # checks the header counts against the rows
    assert len(table.ytid) == len(demo.segments)
    first = Path(files["balanced"]).read_text(encoding="utf-8").splitlines()
    assert first[0].startswith("# Segments csv created")
    assert first[1].startswith("# num_ytids=")
    assert first[2] == "# YTID, start_seconds, end_seconds, positive_labels"
    assert first[3].count('"') == 2
    # the default selection over these lists keeps exactly the demo classes
    index = build_candidate_index(table, load_ontology().mids)
    sel = select_classes(load_ontology(), load_quality(), candidates=index)
    assert set(sel.mids) == set(demo.mids)
    for mid in demo.mids:
        assert index.count(mid) >= 15


def test_ids_are_valid_and_as_awkward_as_real_ones(demo) -> None:
    ids = [s.ytid for s in demo.segments]
    assert len(set(ids)) == len(ids)
    assert all(is_youtube_id(i) for i in ids)
    assert any(i.startswith("-") for i in ids)
    assert any("_" in i for i in ids)
    mids = set(demo.mids)
    multi = [s for s in demo.segments if len(mids.intersection(s.labels)) >= 2]
    assert 5 <= len(multi) <= 0.15 * len(ids)


def test_catalog_mixes_faults_rates_and_licences(demo) -> None:
    assert set(demo.catalog) == {s.ytid for s in demo.segments}
    specs = list(demo.catalog.values())
    assert all(isinstance(s, SourceSpec) for s in specs)
    faults = Counter(s.fault for s in specs)
    assert set(faults) - {None} <= FAULTS
    unavailable = sum(n for f, n in faults.items() if f in UNAVAILABLE_FAULTS)
    assert 0.10 <= unavailable / len(specs) <= 0.20
    assert len({f for f in faults if f in UNAVAILABLE_FAULTS}) >= 5  # mixed reasons
    assert 1 <= sum(n for f, n in faults.items() if f in QC_FAULTS) <= 12
    assert {s.sample_rate_hz for s in specs} == {44100, 48000}
    assert all(10.5 <= s.duration_s <= 12.0 for s in specs)
    assert {s.channels for s in specs} == {1, 2}
    assert any("creative commons" in s.license.lower() for s in specs)
    # the timbre follows the class: the class key is a demo class
    assert {s.class_key for s in specs} == set(demo.mids)
    for seg in demo.segments:
        assert 0.0 <= seg.start_s and seg.end_s <= seg.duration_s


def test_same_seed_same_bytes_and_no_rewrite(tmp_path: Path) -> None:
    a = build_demo_metadata(tmp_path / "a")
    b = build_demo_metadata(tmp_path / "b")
    for source in SEGMENT_FILES:
        assert a.files[source].read_bytes() == b.files[source].read_bytes()
    stamps = {s: a.files[s].stat().st_mtime_ns for s in SEGMENT_FILES}
    inodes = {s: a.files[s].stat().st_ino for s in SEGMENT_FILES}
    build_demo_metadata(tmp_path / "a")
    assert {s: a.files[s].stat().st_mtime_ns for s in SEGMENT_FILES} == stamps
    assert {s: a.files[s].stat().st_ino for s in SEGMENT_FILES} == inodes
    c = build_demo_metadata(tmp_path / "c", seed=1)
    assert c.files["balanced"].read_bytes() != a.files["balanced"].read_bytes()
