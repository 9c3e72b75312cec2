"""A root is ours: refused roots, the marker, the lock that never follows a link."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from audioset_fewshot._root import (
    MARKER,
    RootLock,
    check_root,
    hold_root,
    holds_only_ours,
)
from audioset_fewshot.errors import LockError, UsageError
from audioset_fewshot.layout import DatasetLayout


def _state(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


@pytest.mark.parametrize("bad", ["", "   ", None])
def test_empty_root_is_refused(bad: str | None) -> None:
    with pytest.raises(UsageError, match="dataset root is empty"):
        check_root(bad)


def test_filesystem_root_and_home_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError, match="filesystem root"):
        check_root("/")
    with pytest.raises(UsageError, match="filesystem root"):
        check_root("/tmp/..")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    with pytest.raises(UsageError, match="home folder"):
        check_root("~")
    with pytest.raises(UsageError, match="home folder"):
        check_root(str(home) + "/")
    assert not os.path.lexists(home / MARKER)


def test_unrelated_folder_is_refused_unless_forced(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    with pytest.raises(UsageError, match="not an audioset-fewshot root.*--force-root"), hold_root(folder):
        pass
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]  # no lock, no marker
    with hold_root(folder, force=True):
        pass
    assert (folder / MARKER).is_file()
    with hold_root(folder):  # marked: ours from now on
        pass


def test_new_empty_and_legacy_roots_are_accepted_and_marked(tmp_path: Path) -> None:
    new = tmp_path / "new" / "root"
    with hold_root(new) as p:
        assert p == new and (new / MARKER).is_file() and (new / ".lock").is_file()
    legacy = tmp_path / "legacy"
    (legacy / "manifest").mkdir(parents=True)
    (legacy / "manifest" / "clips.csv").write_text("x\n")  # a root an older version wrote
    check_root(legacy)
    assert holds_only_ours(tmp_path / "missing") and not holds_only_ours(legacy)


def test_symlinked_lock_is_never_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious bytes\n")
    os.utime(victim, ns=(1_000_000_000, 1_000_000_000))
    before = _state(victim)
    root = tmp_path / "root"
    root.mkdir()
    (root / MARKER).write_text("ours\n")
    (root / ".lock").symlink_to(victim)
    with pytest.raises(LockError, match="symbolic link"), hold_root(root):
        pass
    with pytest.raises(LockError, match="symbolic link"), RootLock(DatasetLayout(root)):
        pass
    assert _state(victim) == before


def test_lock_excludes_other_holders_and_nests_inside_hold_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with hold_root(root), RootLock(root):  # a stage of the same command: covered by the hold
        pass
    with RootLock(root), pytest.raises(LockError, match="another run is using"), RootLock(root):  # plain locks do not nest: a second holder is refused
        pass


def test_a_root_through_a_missing_folder_and_dotdot_is_its_real_folder(tmp_path: Path) -> None:
    parent = tmp_path / "parent"
    parent.mkdir()
    (parent / "theirs.txt").write_text("not ours")
    with pytest.raises(UsageError, match="not an audioset-fewshot root"):
        check_root(parent / "missing" / "..")
    assert sorted(p.name for p in parent.iterdir()) == ["theirs.txt"]  # "missing" was not created, nothing locked
