"""The stage-artifact rule (``_artifact``): key, current-or-None, build beside, one error type."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from audioset_fewshot._artifact import ArtifactKey, build_beside, load_meta, read_current, read_table
from audioset_fewshot.errors import ArtifactError, StageNotReadyError

FIX = "rerun with --force"


def _key(**params: object) -> ArtifactKey:
    return ArtifactKey("demo-stage", 1, {"n": 1, **params}, {"input_sha256": "ab" * 32})


def test_current_when_the_key_matches_none_when_stale_or_missing(tmp_path: Path) -> None:
    path = tmp_path / "meta.json"
    assert read_current(path, _key(), fix=FIX) is None  # nothing built yet
    path.write_text(json.dumps(_key().meta(rows=3)), encoding="utf-8")
    meta = read_current(path, _key(), fix=FIX)
    assert meta is not None and meta["rows"] == 3 and meta["key"] == _key().digest
    # a changed parameter, input or schema version makes it stale: rebuild, no error
    assert read_current(path, _key(n=2), fix=FIX) is None
    assert read_current(path, ArtifactKey("demo-stage", 1, {"n": 1}, {"input_sha256": "cd" * 32}), fix=FIX) is None
    assert read_current(path, ArtifactKey("demo-stage", 2, {"n": 1}, {"input_sha256": "ab" * 32}), fix=FIX) is None
    # the files it describes are checked too when the stage asks
    assert read_current(path, _key(), fix=FIX, outputs=lambda m: m["rows"] == 4) is None
    # the digest depends on the content of the key only, not on the order of its mappings
    assert ArtifactKey("s", 1, {"a": 1, "b": 2}).digest == ArtifactKey("s", 1, {"b": 2, "a": 1}).digest


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", ""], ids=["garbled", "not-an-object", "empty"])
def test_malformed_metadata_is_the_one_error_naming_the_path(tmp_path: Path, text: str) -> None:
    path = tmp_path / "meta.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ArtifactError, match=rf"{path}.*rerun with --force"):
        read_current(path, _key(), fix=FIX)
    with pytest.raises(ArtifactError, match=str(path)):
        load_meta(path, stage="demo-stage", schema_version=1, fix=FIX)
    assert issubclass(ArtifactError, StageNotReadyError)  # callers that catch "not ready" still do


def test_readers_refuse_a_missing_or_other_version_artifact(tmp_path: Path) -> None:
    path = tmp_path / "meta.json"
    with pytest.raises(ArtifactError, match="meta.json is missing"):
        load_meta(path, stage="demo-stage", schema_version=1, fix=FIX)
    path.write_text(json.dumps({"schema_version": 99}), encoding="utf-8")
    with pytest.raises(ArtifactError, match="schema_version 99, this version reads 1"):
        load_meta(path, stage="demo-stage", schema_version=1, fix=FIX)
    table = tmp_path / "t.csv"
    table.write_text("a,c\n1,2\n", encoding="utf-8")
    with pytest.raises(ArtifactError, match=rf"{table}: unexpected header"):
        read_table(table, ("a", "b"), missing="build it", fix=FIX)
    with pytest.raises(StageNotReadyError, match="does not exist; build it"):
        read_table(tmp_path / "none.csv", ("a", "b"), missing="build it", fix=FIX)


def test_build_beside_replaces_the_folder_whole_and_an_error_keeps_the_old_one(tmp_path: Path) -> None:
    folder = tmp_path / "store" / "k1"
    with build_beside(folder) as tmp:
        assert tmp.name == ".tmp-k1" and not folder.exists()
        (tmp / "data.bin").write_bytes(b"old")
    assert (folder / "data.bin").read_bytes() == b"old"
    with pytest.raises(RuntimeError, match="boom"), build_beside(folder) as tmp:
        (tmp / "data.bin").write_bytes(b"half")
        raise RuntimeError("boom")
    assert (folder / "data.bin").read_bytes() == b"old"
    assert sorted(p.name for p in folder.parent.iterdir()) == ["k1"]  # no leftovers
    with build_beside(folder) as tmp:
        (tmp / "data.bin").write_bytes(b"new")
    assert (folder / "data.bin").read_bytes() == b"new"
    assert sorted(p.name for p in folder.parent.iterdir()) == ["k1"]


def test_a_killed_build_leaves_the_old_artifact_intact(tmp_path: Path) -> None:
    folder = tmp_path / "store" / "k1"
    with build_beside(folder) as tmp:
        (tmp / "data.bin").write_bytes(b"old")
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from audioset_fewshot._artifact import build_beside
        with build_beside(Path({str(folder)!r})) as tmp:
            (tmp / "data.bin").write_bytes(b"half")
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60, env={**os.environ})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert (folder / "data.bin").read_bytes() == b"old"
    assert (folder.parent / ".tmp-k1" / "data.bin").read_bytes() == b"half"  # what the kill left
    with build_beside(folder) as tmp:  # the next build clears it first
        assert not (tmp / "data.bin").exists()
        (tmp / "data.bin").write_bytes(b"new")
    assert (folder / "data.bin").read_bytes() == b"new"
    assert sorted(p.name for p in folder.parent.iterdir()) == ["k1"]
