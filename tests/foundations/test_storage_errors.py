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
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 256 KiB tmpfs (needs root and mount)."""
    mnt = tmp_path / "full"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True, check=False).returncode:
        pytest.skip("mounting a small tmpfs needs root; the errno translation is tested above")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, check=False)


def fill(disk: Path) -> None:
    """Fill ``disk`` to the last byte (a file ``filler``)."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError as err:
        assert err.errno == errno.ENOSPC
    finally:
        os.close(fd)


@pytest.fixture
def full_disk(small_disk: Path) -> Path:
    """A real, full filesystem: a 256 KiB tmpfs filled to the last byte."""
    fill(small_disk)
    return small_disk


def test_a_disk_that_fills_under_the_ledger_is_a_storage_error_and_loses_nothing(small_disk: Path) -> None:
    from audioset_fewshot.download.ledger import Ledger

    path = small_disk / "ledger.sqlite"
    with Ledger(path) as led:
        led.set_meta("before", "kept")
        fill(small_disk)
        with pytest.raises(StorageError, match=r"cannot write the ledger .*ledger\.sqlite: the disk is full .*every clip committed before is kept"):
            for i in range(1000):
                led.set_meta(f"k{i}", "x" * 5000)
    (small_disk / "filler").unlink()
    with Ledger(path) as again:  # still a ledger, with what was committed
        assert again.meta("before") == "kept"
        again.set_meta("after", "written")


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
