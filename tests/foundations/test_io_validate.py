from __future__ import annotations

import os
from pathlib import Path

import pytest

from audioset_fewshot._io import atomic_open, atomic_write_text, remove_stray_temps, sha256_file, write_text_if_changed
from audioset_fewshot.errors import ValidationError
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.validate import mid_from_slug, mid_slug, safe_relpath, valid_mid, valid_segment_times, valid_sha256, valid_youtube_id


def test_atomic_write_leaves_old_file_on_error(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as fh:
            fh.write("new")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_write_gets_the_umask_mode(tmp_path: Path) -> None:
    import os

    old = os.umask(0o022)
    os.umask(old)
    target = tmp_path / "shared.txt"
    atomic_write_text(target, "x")
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert target.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


def test_write_text_if_changed_leaves_an_equal_file_alone(tmp_path: Path) -> None:
    target = tmp_path / "t.csv"
    assert write_text_if_changed(target, "a,b\r\n1,2\r\n")
    os.utime(target, ns=(1, 1))
    assert not write_text_if_changed(target, "a,b\r\n1,2\r\n")
    assert target.stat().st_mtime_ns == 1
    assert write_text_if_changed(target, "a,b\n1,2\n")  # a newline change is a change
    assert target.read_bytes() == b"a,b\n1,2\n"


def test_remove_stray_temps(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    stray = tmp_path / "sub" / ".tmp-x.flac.k3j9x_q2.flac"
    stray.write_bytes(b"x")
    keep = tmp_path / "sub" / "x.flac"
    keep.write_bytes(b"y")
    assert remove_stray_temps(tmp_path) == [stray]
    assert keep.exists() and not stray.exists()
    assert len(sha256_file(keep)) == 64


def test_remove_stray_temps_never_follows_links_nor_takes_other_names(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / ".tmp-victim.flac.abcd1234.flac"
    victim.write_bytes(b"not ours")
    before = (victim.read_bytes(), victim.stat().st_mtime_ns)
    folder = tmp_path / "audio"
    (folder / "sub").mkdir(parents=True)
    (folder / "linked-dir").symlink_to(outside, target_is_directory=True)
    link = folder / "sub" / ".tmp-y.flac.abcd1234.flac"
    link.symlink_to(victim)
    user = folder / "sub" / ".tmp-notes.txt"  # a user's file with our prefix but no random part
    user.write_text("keep me")
    assert remove_stray_temps(folder) == []
    assert (victim.read_bytes(), victim.stat().st_mtime_ns) == before
    assert link.is_symlink() and user.exists()


@pytest.mark.parametrize("bad", ["../x", "-o", "abcdefghijkl", "abcdefghij", "abcdéfghijk", "abc/efghijk", "", None, "abc efghijk"])
def test_hostile_youtube_ids_rejected(bad: object) -> None:
    with pytest.raises(ValidationError, match="invalid YouTube ID"):
        valid_youtube_id(bad)


@pytest.mark.parametrize("good", ["--PJHxphWEs", "a_b-c_d-e_f", "zzzzzzzzzzz"])
def test_real_youtube_ids_accepted(good: str) -> None:
    assert valid_youtube_id(good) == good


def test_mid_slug_round_trip() -> None:
    for mid in ["/m/09x0r", "/t/dd00088", "/g/122z_qxw"]:
        assert mid_from_slug(mid_slug(mid)) == mid
    with pytest.raises(ValidationError):
        valid_mid("../../etc")


def test_validators_name_what_was_expected() -> None:
    assert valid_mid("/t/dd00088") == "/t/dd00088"
    assert valid_sha256("ab" * 32) == "ab" * 32
    with pytest.raises(ValidationError, match="invalid class id 'm/09x0r': expected a MID"):
        valid_mid("m/09x0r")
    with pytest.raises(ValidationError, match="invalid sha256 'AB.*': expected 64 lowercase hex digits"):
        valid_sha256("AB" * 32)
    with pytest.raises(ValidationError, match="invalid YouTube ID 12: expected exactly 11 characters"):
        valid_youtube_id(12)


def test_segment_times() -> None:
    assert valid_segment_times(0.0, 10.0) == (0.0, 10.0)
    for start, end in [(float("nan"), 1.0), (-1.0, 2.0), (5.0, 5.0), (0.0, float("inf"))]:
        with pytest.raises(ValidationError):
            valid_segment_times(start, end)


@pytest.mark.parametrize("bad", ["/etc/passwd", "../x.flac", "audio/../../x", "a\\b", "~/x", "audio//x.flac", ""])
def test_safe_relpath_refuses_escapes(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValidationError, match="unsafe path"):
        safe_relpath(bad, root=tmp_path)


def test_layout_clip_path(tmp_path: Path) -> None:
    layout = DatasetLayout(tmp_path)
    assert layout.clip_relpath("/m/09x0r", "--PJHxphWEs", 30.0) == "audio/m_09x0r/--PJHxphWEs_30000.flac"
    assert safe_relpath(layout.clip_relpath("/m/09x0r", "--PJHxphWEs", 30.0), root=tmp_path) == layout.clip_path("/m/09x0r", "--PJHxphWEs", 30.0)
    with pytest.raises(ValidationError):
        layout.clip_path("/m/09x0r", "../../etc/pa", 0.0)
