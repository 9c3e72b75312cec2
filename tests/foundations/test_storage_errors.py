"""A full or read-only disk is a one-line error naming the path and the fix, never an
"internal error" with a bare OSError."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from audioset_fewshot._io import atomic_write_text, storage_error
from audioset_fewshot.errors import StorageError


@pytest.mark.parametrize(("code", "words"), [(errno.ENOSPC, "disk is full"), (errno.EDQUOT, "quota"), (errno.EROFS, "read-only")])
def test_storage_errnos_name_the_path_and_the_fix(code: int, words: str, tmp_path: Path) -> None:
    err = storage_error(OSError(code, os.strerror(code)), tmp_path / "x.json")
    assert isinstance(err, StorageError)
    assert str(tmp_path / "x.json") in str(err) and words in str(err)
    assert ("free some space" in str(err)) == (code != errno.EROFS)
    other = OSError(errno.EACCES, "denied")
    assert storage_error(other, tmp_path) is other


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A real, full filesystem: a 256 KiB tmpfs filled to the last byte (needs root and mount)."""
    mnt = tmp_path / "full"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True, check=False).returncode:
        pytest.skip("mounting a small tmpfs needs root; the errno translation is tested above")
    try:
        fd = os.open(mnt / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError as err:
            assert err.errno == errno.ENOSPC
        finally:
            os.close(fd)
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, check=False)


def test_a_full_disk_before_a_run_is_a_clear_error(full_disk: Path) -> None:
    with pytest.raises(StorageError, match=r"cannot write .*x\.json: the disk is full"):
        atomic_write_text(full_disk / "x.json", "{}" * 10_000)
    assert [p.name for p in full_disk.iterdir()] == ["filler"]  # the temp file is gone
    res = subprocess.run(
        [sys.executable, "-m", "audioset_fewshot", "process", "--root", str(full_disk / "root")], capture_output=True, text=True, timeout=60, check=False
    )
    assert res.returncode != 0
    assert "internal error" not in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert str(full_disk) in res.stderr and ("disk is full" in res.stderr or "No space left" in res.stderr), res.stderr
