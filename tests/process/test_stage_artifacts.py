"""clean, pack and features under the one artifact rule: ``ran`` on first run and rerun,
a stale artifact rebuilt, a malformed one refused with the path named, downstream
stages rebuilt exactly when what they read changed."""

from __future__ import annotations

import json

import pytest

from audioset_fewshot.config import CleanOptions, FeaturesOptions, PackOptions
from audioset_fewshot.errors import ArtifactError
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.process import clean, features, pack

PACK = PackOptions(workers=1)
FEATS = FeaturesOptions(n_mels=16)


def _all(root: DatasetLayout, policy: str = "drop") -> tuple[bool, bool, bool]:
    c = clean(root.root, CleanOptions(policy=policy, workers=1))  # type: ignore[arg-type]
    p = pack(root.root, PACK)
    f = features(root.root, FEATS)
    return c.ran, p.ran, f.ran


@pytest.mark.slow
def test_ran_on_first_run_not_on_rerun_and_downstream_follows_upstream(dataset: DatasetLayout) -> None:
    assert _all(dataset) == (True, True, True)
    assert _all(dataset) == (False, False, False)
    # a changed clean policy changes clean.csv: pack and features are rebuilt from it
    assert _all(dataset, "keep") == (True, True, True)
    assert _all(dataset, "keep") == (False, False, False)
    # a clean parameter that leaves clean.csv as it was: clean ran, nothing after it did
    c = clean(dataset.root, CleanOptions(policy="keep", workers=1, max_clipped_fraction=0.06))
    assert c.ran
    assert (pack(dataset.root, PACK).ran, features(dataset.root, FEATS).ran) == (False, False)


def test_a_stale_artifact_is_rebuilt(dataset: DatasetLayout) -> None:
    first = clean(dataset.root, CleanOptions(workers=1))
    meta_path = dataset.clean_csv.with_suffix(".json")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["schema_version"] = 0  # written by an older version
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    again = clean(dataset.root, CleanOptions(workers=1))
    assert again.ran and again == first
    assert json.loads(meta_path.read_text(encoding="utf-8"))["schema_version"] == 1
    # clean.csv edited after the fact: its recorded hash no longer matches, so clean measures again
    dataset.clean_csv.write_text(dataset.clean_csv.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    assert clean(dataset.root, CleanOptions(workers=1)).ran


def test_a_malformed_artifact_is_refused_naming_its_path(dataset: DatasetLayout) -> None:
    clean(dataset.root, CleanOptions(workers=1))
    rec = pack(dataset.root, PACK)
    meta_path = dataset.clean_csv.with_suffix(".json")
    meta_path.write_text("{truncated", encoding="utf-8")
    with pytest.raises(ArtifactError, match=rf"{meta_path}: malformed JSON.*--stage clean --force"):
        clean(dataset.root, CleanOptions(workers=1))
    assert clean(dataset.root, CleanOptions(workers=1), force=True).ran  # the fix the message gives works
    (rec.path / "meta.json").write_text("[]", encoding="utf-8")
    with pytest.raises(ArtifactError, match=rf"{rec.path / 'meta.json'}: expected a JSON object"):
        pack(dataset.root, PACK)
    assert pack(dataset.root, PACK, force=True).ran
