"""select_classes on the real ontology and QA counts: the published counts, reasons, include/exclude."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audioset_fewshot.errors import UnknownNameError, UsageError
from audioset_fewshot.metadata import QualityCount, build_candidate_index, load_ontology, load_quality, read_segments, resolve_segment_files
from audioset_fewshot.selection import FLAG_FORCED, FLAG_SILENCE, SILENCE_MID, select_classes

SPEECH, BARK = "/m/09x0r", "/m/05tny_"


@pytest.fixture(scope="module")
def onto():
    return load_ontology()


@pytest.fixture(scope="module")
def quality():
    return load_quality()


@pytest.mark.parametrize(("min_quality", "expected"), [(0.5, 263), (0.6, 219), (0.7, 190), (0.8, 142), (0.9, 87), (1.0, 43)])
def test_leaf_not_blacklisted_quality_table(onto, quality, min_quality: float, expected: int) -> None:
    """The published table: leaf, not blacklisted/abstract, QA rate >= threshold."""
    sel = select_classes(onto, quality, min_quality=min_quality)
    assert len(sel.chosen) == expected
    for c in sel.chosen:
        assert onto.is_leaf(c.mid) and not onto.is_blacklisted(c.mid) and not onto.is_abstract(c.mid)
        assert c.quality is not None and c.quality >= min_quality - 1e-12


def test_every_class_is_chosen_or_has_a_reason(onto, quality) -> None:
    sel = select_classes(onto, quality)
    assert len(sel.mids) == len(set(sel.mids)) == 142
    assert set(sel.mids) | set(sel.excluded) == set(onto.mids)
    assert not set(sel.mids) & set(sel.excluded)
    assert all(reason.strip() for reason in sel.excluded.values())
    assert list(sel.mids) == [m for m in onto.mids if m in set(sel.mids)]  # ontology order


def test_explain_in_and_out(onto, quality) -> None:
    sel = select_classes(onto, quality)
    assert (
        sel.explain("Speech")
        == "Speech (/m/09x0r) is excluded: not a leaf class (it has 7 children; set selection.all_levels, or 'classes --all-levels', to allow it)"
    )
    assert sel.explain("bark").startswith("Bark (/m/05tny_) is selected: a leaf class, not blacklisted or abstract, QA rate 1.00 (9/9) >= 0.8")
    assert "top-level category: Animal" in sel.explain(BARK)
    low = next(m for m, q in quality.items() if q.num_rated and q.rate < 0.8 and onto.is_leaf(m) and not onto.is_blacklisted(m))
    assert f"QA rate {quality[low].rate:.2f}" in sel.explain(low) and "below min_quality 0.8" in sel.explain(low)
    black = next(c.mid for c in onto if c.is_blacklisted and c.is_leaf)
    assert "blacklisted in the ontology" in sel.explain(black)
    with pytest.raises(UnknownNameError, match=r"Did you mean: .*'Bark'"):
        sel.explain("Dog barking")


def test_unrated_and_missing_qa_rows_are_excluded_with_that_reason(onto, quality) -> None:
    zero = next(m for m, q in quality.items() if q.num_rated == 0 and onto.is_leaf(m) and not onto.is_blacklisted(m) and not onto.is_abstract(m))
    sel = select_classes(onto, quality, min_quality=0.0)
    assert zero not in sel.mids and "no QA rating (num_rated = 0)" in sel.excluded[zero]
    trimmed = {m: q for m, q in quality.items() if m != BARK}
    sel2 = select_classes(onto, trimmed)
    assert BARK not in sel2.mids and "no QA row in qa_true_counts.csv" in sel2.excluded[BARK]


def test_silence_is_flagged(onto, quality) -> None:
    sel = select_classes(onto, quality)
    silence = sel.get("Silence")
    assert silence is not None and silence.mid == SILENCE_MID and silence.flags == (FLAG_SILENCE,)
    assert all(not c.flags for c in sel.chosen if c.mid != SILENCE_MID)
    assert "flagged 'silence'" in sel.explain("Silence")


def test_include_forces_in_and_says_so_exclude_removes(onto, quality) -> None:
    sel = select_classes(onto, quality, include=["Speech"], exclude=["bark"])
    assert SPEECH in sel.mids and BARK not in sel.mids and len(sel.mids) == 142
    speech = sel.get(SPEECH)
    assert speech.flags == (FLAG_FORCED,) and speech.note.startswith("included by request although not a leaf class")
    assert "included by request although not a leaf class" in sel.explain("Speech")
    assert sel.excluded[BARK] == "excluded by request (exclude)"
    assert sel.params["include"] == [SPEECH] and sel.params["exclude"] == [BARK]
    plain = select_classes(onto, quality, include=["Bark"])  # already in: no flag
    assert plain.get("Bark").flags == ()


def test_include_and_exclude_errors(onto, quality) -> None:
    with pytest.raises(UnknownNameError, match=r"unknown class 'Dog barking'\. Did you mean: .*'Bark'") as info:
        select_classes(onto, quality, include=["Dog barking"])
    assert info.value.exit_code == 2
    with pytest.raises(UsageError, match=r"Bark \(/m/05tny_\) is both included and excluded"):
        select_classes(onto, quality, include=["Bark"], exclude=[BARK])
    for bad in (-0.1, 1.5, "0.8"):
        with pytest.raises(UsageError, match="min_quality must be a number between 0 and 1"):
            select_classes(onto, quality, min_quality=bad)


def test_all_levels_admits_parents_but_not_abstract(onto, quality) -> None:
    sel = select_classes(onto, quality, all_levels=True)
    assert len(sel.mids) > 142 and SPEECH in sel.mids
    assert all(not onto.is_abstract(m) and not onto.is_blacklisted(m) for m in sel.mids)
    abstract = next(c.mid for c in onto if c.is_abstract and not c.is_blacklisted)
    assert "abstract in the ontology" in sel.excluded[abstract]


def test_threshold_is_inclusive(onto) -> None:
    leaf = next(c.mid for c in onto if c.is_leaf and not c.is_blacklisted and not c.is_abstract)
    q = {leaf: QualityCount(10, 7)}
    assert select_classes(onto, q, min_quality=0.7).mids == (leaf,)
    assert select_classes(onto, q, min_quality=0.71).mids == ()


def test_candidates_add_counts_and_exclude_classes_without_segments(onto, quality, shared_metadata_dir: Path) -> None:
    table = read_segments(resolve_segment_files(("balanced", "eval"), metadata_dir=shared_metadata_dir))
    index = build_candidate_index(table)
    sel = select_classes(onto, quality, candidates=index)
    bark = sel.get("Bark")
    assert bark.candidates == index.counts_by_source(BARK) and set(bark.candidates) == {"balanced", "eval"}
    assert sum(bark.candidates.values()) > 0
    tiny = build_candidate_index(table, [BARK])
    only = select_classes(onto, quality, candidates=tiny)
    assert only.mids == (BARK,)
    assert "no segment of the lists balanced, eval carries it" in only.excluded["/m/028v0c"]


def test_to_dict_is_plain_json(onto, quality) -> None:
    d = select_classes(onto, quality, include=["Speech"]).to_dict()
    text = json.dumps(d, sort_keys=True)
    back = json.loads(text)
    assert back["schema_version"] == 1 and back["params"]["min_quality"] == 0.8
    assert len(back["chosen"]) == 143 and back["chosen"][0].keys() >= {"mid", "name", "quality", "top_level", "flags"}
    assert len(back["excluded"]) == 632 - 143 and back["ontology_sha256"] == onto.sha256
