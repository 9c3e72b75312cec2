from __future__ import annotations

from pathlib import Path

import pytest
from support.manifest_helpers import write_audio, ytid

from audioset_fewshot.errors import ManifestError
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.manifest.build import build_manifest
from audioset_fewshot.manifest.verify import CORRUPT_HASH, CORRUPT_LENGTH, MISSING, UNEXPECTED, verify


def test_clean_root_verifies(small_root: DatasetLayout) -> None:
    build_manifest(small_root.root)
    rep = verify(small_root.root)
    assert rep.ok and rep.checked == 5


def test_every_problem_reported_not_only_the_first(small_root: DatasetLayout) -> None:
    build_manifest(small_root.root)
    root = small_root.root
    (root / f"audio/m_09x0r/{ytid(1)}_30000.flac").unlink()
    corrupt = root / f"audio/m_09x0r/{ytid(2)}_30000.flac"
    data = bytearray(corrupt.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    write_audio(root / f"audio/m_0bt9lr/{ytid(6)}_30000.flac", seed=99, samples=1500)  # other content and length
    (root / "audio/m_01yrx/stray.flac").write_bytes(b"x")
    (root / "audio/newclass").mkdir()
    (root / "audio/newclass/.tmp-half.flac").write_bytes(b"")
    rep = verify(root)
    got = {(p.path, p.kind) for p in rep.problems}
    assert got == {
        (f"audio/m_09x0r/{ytid(1)}_30000.flac", MISSING),
        (f"audio/m_09x0r/{ytid(2)}_30000.flac", CORRUPT_HASH),
        (f"audio/m_0bt9lr/{ytid(6)}_30000.flac", CORRUPT_HASH),
        (f"audio/m_0bt9lr/{ytid(6)}_30000.flac", CORRUPT_LENGTH),
        ("audio/m_01yrx/stray.flac", UNEXPECTED),
        ("audio/newclass/.tmp-half.flac", UNEXPECTED),
    }
    assert not rep.ok and rep.to_dict()["ok"] is False


def test_symlinked_clip_is_not_followed(small_root: DatasetLayout, tmp_path: Path) -> None:
    build_manifest(small_root.root)
    clip = small_root.root / f"audio/m_01yrx/{ytid(7)}_12500.flac"
    target = small_root.root / f"audio/m_01yrx/{ytid(7)}_copy.flac"
    clip.rename(target)
    clip.symlink_to(target.name)
    rep = verify(small_root.root)
    kinds = {(p.path.rsplit("/", 1)[-1], p.kind) for p in rep.problems}
    assert (f"{ytid(7)}_12500.flac", CORRUPT_HASH) in kinds and (f"{ytid(7)}_copy.flac", UNEXPECTED) in kinds


def test_hostile_manifest_raises_before_reading(small_root: DatasetLayout) -> None:
    build_manifest(small_root.root)
    text = small_root.clips_csv.read_text().replace(f"audio/m_09x0r/{ytid(2)}_30000.flac", "/etc/passwd")
    small_root.clips_csv.write_text(text)
    with pytest.raises(ManifestError, match=r"clips\.csv:4: unsafe path"):
        verify(small_root.root)
