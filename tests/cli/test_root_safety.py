"""Nothing is written outside what was asked, nor under a root another command holds.

Each command runs as a user runs it (a subprocess); a victim file outside the root
is watched (bytes and mtime), and the whole tree of a refused root is hashed
before and after."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from audioset_fewshot._root import MARKER, RootLock
from audioset_fewshot.config import Config, config_from_dict, write_config

ENV = {**os.environ, "AUDIOSET_FEWSHOT_PROGRESS": "0"}


def cli(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audioset_fewshot", *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=ENV, check=False)


def tree_state(root: Path) -> dict[str, tuple[str, str, int]]:
    """Every entry under ``root``: kind, sha256 of its bytes (or link target), and mtime for files."""
    out: dict[str, tuple[str, str, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p), 0)
            elif p.is_dir():
                out[rel] = ("dir", "", 0)
            else:
                out[rel] = ("file", hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
    return out


def victim_file(tmp_path: Path) -> Path:
    victim = tmp_path / "outside" / "victim.txt"
    victim.parent.mkdir(parents=True, exist_ok=True)
    victim.write_bytes(b"precious bytes that are not the tool's\n")
    os.utime(victim, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    return victim


def state(p: Path) -> tuple[bytes, int]:
    return p.read_bytes(), p.stat().st_mtime_ns


def test_empty_root_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    before = tree_state(tmp_path)
    res = cli("process", "--root", "", cwd=tmp_path)
    assert res.returncode == 2 and "empty string is not a dataset root" in res.stderr, res.stderr
    assert tree_state(tmp_path) == before


@pytest.mark.parametrize("command", [["run", "--until", "plan"], ["process"], ["report"]])
def test_filesystem_root_is_refused_and_nothing_is_written(command: list[str], tmp_path: Path) -> None:
    names = ("config.yaml", "plan", "report", MARKER, ".lock", "processed")
    before = {n: os.path.lexists(Path("/") / n) for n in names}
    res = cli(*command, "--root", "/", cwd=tmp_path)
    assert res.returncode == 2 and "filesystem root" in res.stderr, res.stderr
    assert {n: os.path.lexists(Path("/") / n) for n in names} == before


def test_unrelated_folder_is_refused_and_untouched(tmp_path: Path) -> None:
    folder = tmp_path / "my-project"
    (folder / "report").mkdir(parents=True)
    (folder / "report" / "index.html").write_text("<p>my own report</p>")
    (folder / ".tmp-draft").write_text("my temp notes")
    (folder / "notes.txt").write_text("hello")
    before = tree_state(folder)
    for command in (["run", "--until", "plan"], ["process"], ["report"], ["splits"]):
        res = cli(*command, "--root", str(folder))
        assert res.returncode == 2 and "not an audioset-fewshot root" in res.stderr and "--force-root" in res.stderr, res.stderr
        assert tree_state(folder) == before
    forced = cli("report", "--root", str(folder), "--force-root")
    assert forced.returncode == 0, forced.stderr
    assert (folder / MARKER).is_file()
    assert (folder / ".tmp-draft").read_text() == "my temp notes"


def _our_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "plan").mkdir(parents=True)
    (root / MARKER).write_text("ours\n")
    cfg = config_from_dict({"root": str(root), "plan": {"max_per_class": 7}})
    write_config(root / "config.yaml", cfg)
    (root / "plan" / "plan.csv").write_text("clip_id\n")
    (root / "splits.json").write_text("{}\n")
    return root


def test_a_command_refused_by_the_lock_changes_no_byte(tmp_path: Path) -> None:
    root = _our_root(tmp_path)
    other = tmp_path / "other-config.yaml"
    write_config(other, Config())
    shard = tmp_path / "shard"
    shard.mkdir()
    manifest = tmp_path / "clips.csv"
    manifest.write_text("x\n")
    commands = [
        ["run", "-c", str(other), "--root", str(root), "--until", "plan"],  # another recipe: must not rewrite config.yaml
        ["plan", "--root", str(root)],
        ["download", "--root", str(root)],
        ["manifest", "--root", str(root)],
        ["process", "--root", str(root)],
        ["splits", "--root", str(root)],
        ["episodes", "--root", str(root)],
        ["evaluate", "--root", str(root)],
        ["report", "--root", str(root)],
        ["merge", str(shard), "--into", str(root)],
        ["rebuild", str(manifest), "--root", str(root)],
    ]
    with RootLock(root):
        before = tree_state(root)
        for command in commands:
            res = cli(*command)
            assert res.returncode == 1 and "another run is using" in res.stderr, (command, res.stderr)
            assert tree_state(root) == before, command


def test_symlinked_outputs_are_replaced_never_followed(tmp_path: Path, shared_metadata_dir: Path) -> None:
    victim = victim_file(tmp_path)
    before = state(victim)
    root = tmp_path / "root"
    (root / "plan").mkdir(parents=True)
    (root / "report").mkdir()
    (root / MARKER).write_text("ours\n")
    for rel in ("config.yaml", "plan/plan.csv", "plan/plan.json", "report/run.json"):
        (root / rel).symlink_to(victim)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"metadata:\n  metadata_dir: {shared_metadata_dir}\nplan:\n  max_per_class: 3\n")
    res = cli("run", "-c", str(cfg), "--root", str(root), "--until", "plan")
    assert res.returncode == 0, res.stderr
    assert state(victim) == before
    for rel in ("config.yaml", "plan/plan.csv", "plan/plan.json", "report/run.json"):
        assert not (root / rel).is_symlink() and (root / rel).is_file()


def test_symlinked_ledger_is_refused(tmp_path: Path) -> None:
    from audioset_fewshot.download.ledger import Ledger
    from audioset_fewshot.errors import DownloadError

    victim = victim_file(tmp_path)
    before = state(victim)
    root = tmp_path / "root"
    root.mkdir()
    (root / "ledger.sqlite").symlink_to(victim)
    with pytest.raises(DownloadError, match="symbolic link.*recover"):
        Ledger(root / "ledger.sqlite")
    assert state(victim) == before


def test_a_folder_planted_as_a_link_inside_the_root_is_never_written_through(tmp_path: Path) -> None:
    victim_dir = tmp_path / "outside"
    victim_dir.mkdir()
    (victim_dir / "index.html").write_text("<p>someone else's page</p>")
    before = tree_state(victim_dir)
    root = _our_root(tmp_path)
    (root / "report").symlink_to(victim_dir, target_is_directory=True)
    res = cli("report", "--root", str(root))
    assert res.returncode == 2 and "symbolic link inside the dataset root" in res.stderr, res.stderr
    assert tree_state(victim_dir) == before
