"""The packaged ontology and QA counts: unchanged official files, navigation, name resolution."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from audioset_fewshot.errors import MetadataError, ParseError, UnknownNameError, UsageError
from audioset_fewshot.metadata import QualityCount, load_ontology, load_quality, parse_ontology, parse_quality

BARK, DOG, ANIMAL, DOMESTIC = "/m/05tny_", "/m/0bt9lr", "/m/0jbk", "/m/068hy"
SPEECH, SILENCE = "/m/09x0r", "/m/028v0c"


@pytest.fixture(scope="module")
def onto():
    return load_ontology()


def test_packaged_files_are_the_official_ones_unchanged(shared_metadata_dir: Path) -> None:
    data = resources.files("audioset_fewshot.metadata").joinpath("data")
    for name in ("ontology.json", "qa_true_counts.csv"):
        assert data.joinpath(name).read_bytes() == (shared_metadata_dir / name).read_bytes()
    licence = data.joinpath("LICENSE-AudioSet.md").read_text(encoding="utf-8")
    assert "CC BY-SA 4.0" in licence and "CC BY 4.0" in licence and "Google" in licence


def test_ontology_structure(onto) -> None:
    assert len(onto) == 632 and onto.sha256
    assert sum(c.is_leaf for c in onto) + sum(not c.is_leaf for c in onto) == 632
    assert [onto.name(r) for r in onto.roots] == [
        "Human sounds",
        "Animal",
        "Music",
        "Natural sounds",
        "Sounds of things",
        "Source-ambiguous sounds",
        "Channel, environment and background",
    ]
    assert onto.is_leaf(BARK) and not onto.is_leaf(SPEECH)
    assert len(onto.children(SPEECH)) == 7 and BARK in onto.children(DOG)
    assert onto.parents(BARK) == (DOG,)
    assert onto.ancestors(BARK)[:3] == (DOG, DOMESTIC, ANIMAL)
    assert onto.top_level(BARK) == ANIMAL and onto.top_level(ANIMAL) == ANIMAL
    assert "/m/0ghcn6" in onto.siblings(BARK)  # Growling, another child of Dog
    assert BARK not in onto.siblings(BARK)
    assert set(onto.siblings(ANIMAL)) == set(onto.roots) - {ANIMAL}
    assert BARK in onto.descendants(ANIMAL)
    blacklisted = [c for c in onto if c.is_blacklisted]
    abstract = [c for c in onto if c.is_abstract]
    assert len(blacklisted) == 67 and len(abstract) == 23
    assert onto.is_blacklisted(blacklisted[0].mid) and onto.is_abstract(abstract[0].mid)


def test_top_level_of_a_class_with_several_parents_is_the_first_root_in_file_order(onto) -> None:
    multi = [c for c in onto if len(onto.top_levels(c.mid)) > 1]
    assert multi, "the official ontology has classes under several top-level categories"
    order = list(onto.mids)
    for c in multi:
        tops = onto.top_levels(c.mid)
        assert list(tops) == sorted(tops, key=order.index)
        assert onto.top_level(c.mid) == tops[0]


def test_resolve_names_and_mids(onto) -> None:
    assert onto.resolve("Bark") == BARK
    assert onto.resolve("  bARK ") == BARK
    assert onto.resolve(BARK) == BARK
    assert onto.resolve("male speech, man speaking") == "/m/05zppz"
    assert onto["Silence"].mid == SILENCE and onto.label(SILENCE) == "Silence (/m/028v0c)"
    with pytest.raises(UnknownNameError, match=r"unknown class 'Dog barking'\. Did you mean: .*'Bark'") as info:
        onto.resolve("Dog barking")
    assert info.value.exit_code == 2 and "Bark" in info.value.suggestions
    with pytest.raises(UnknownNameError, match=r"Did you mean: 'Speech'"):
        onto.resolve("Speach")
    with pytest.raises(UnknownNameError, match=r"'/m/09x0r'"):
        onto.resolve("/m/09x0")
    with pytest.raises(UsageError, match=r"expected a class name or MID"):
        onto.resolve("  ")


def _write_onto(tmp_path: Path, classes: list[dict]) -> Path:
    p = tmp_path / "ontology.json"
    p.write_text(json.dumps(classes), encoding="utf-8")
    return p


def _cls(mid: str, name: str, children=(), restrictions=()) -> dict:
    return {
        "id": mid,
        "name": name,
        "description": "",
        "citation_uri": "",
        "positive_examples": [],
        "child_ids": list(children),
        "restrictions": list(restrictions),
    }


def test_ontology_from_a_path_and_bad_files(tmp_path: Path) -> None:
    onto = load_ontology(_write_onto(tmp_path, [_cls("/m/a", "A", ["/m/b"]), _cls("/m/b", "B")]))
    assert onto.roots == ("/m/a",) and onto.is_leaf("/m/b")
    with pytest.raises(MetadataError, match=r"lists unknown child '/m/zz'"):
        load_ontology(_write_onto(tmp_path, [_cls("/m/a", "A", ["/m/zz"])]))
    with pytest.raises(MetadataError, match=r"cycle"):
        load_ontology(_write_onto(tmp_path, [_cls("/m/a", "A", ["/m/b"]), _cls("/m/b", "B", ["/m/a"])]))
    with pytest.raises(MetadataError, match=r"duplicate class ids"):
        load_ontology(_write_onto(tmp_path, [_cls("/m/a", "A"), _cls("/m/a", "B")]))
    with pytest.raises(MetadataError, match=r"invalid class id '\.\./x'"):
        load_ontology(_write_onto(tmp_path, [_cls("../x", "A")]))
    with pytest.raises(MetadataError, match=r"not a valid ontology JSON"):
        parse_ontology(b"{nope", source="x.json")
    with pytest.raises(MetadataError, match=r"cannot read ontology file"):
        load_ontology(tmp_path / "missing.json")
    dup = load_ontology(_write_onto(tmp_path, [_cls("/m/a", "Same"), _cls("/m/b", "same")]))
    with pytest.raises(UsageError, match=r"ambiguous: Same \(/m/a\), same \(/m/b\)"):
        dup.resolve("SAME")


def test_quality_counts() -> None:
    q = load_quality()
    assert len(q) == 527
    assert q[SPEECH] == QualityCount(10, 10) and q[SPEECH].rate == 1.0
    assert q["/m/05zppz"].rate == 0.9
    zero = [m for m, c in q.items() if c.num_rated == 0]
    assert zero and all(q[m].rate is None for m in zero)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("label,rated,true\n", r"x\.csv:1: expected the header"),
        ("label_id,num_rated,num_true\n/m/a,10\n", r"x\.csv:2: expected 3 fields"),
        ("label_id,num_rated,num_true\n/m/a,10,9\nbad id,1,1\n", r"x\.csv:3: invalid class id 'bad id'"),
        ("label_id,num_rated,num_true\n/m/a,ten,9\n", r"x\.csv:2: num_rated and num_true must be integers"),
        ("label_id,num_rated,num_true\n/m/a,5,9\n", r"x\.csv:2: need 0 <= num_true <= num_rated"),
        ("label_id,num_rated,num_true\n/m/a,5,4\n/m/a,5,4\n", r"x\.csv:3: duplicate class id /m/a"),
        ("", r"x\.csv:1: empty file"),
    ],
)
def test_bad_quality_rows(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_quality(text, source="x.csv")


def test_quality_from_a_path(tmp_path: Path) -> None:
    p = tmp_path / "qa.csv"
    p.write_text("label_id,num_rated,num_true\n/m/a,4,3\n", encoding="utf-8")
    assert load_quality(p) == {"/m/a": QualityCount(4, 3)}
    with pytest.raises(MetadataError, match="cannot read quality file"):
        load_quality(tmp_path / "missing.csv")


def test_the_shared_ontology_is_read_only(onto) -> None:
    with pytest.raises(TypeError):
        onto.classes["/m/new"] = onto.classes[BARK]  # type: ignore[index]
    assert load_ontology() is onto  # parsed once per process
