"""A damaged, garbled, emptied or deleted ledger is rebuilt from the files and the
manifest by ``recover``; every good clip is kept and a rerun asks the server for nothing."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from audioset_fewshot.config import DownloadOptions
from audioset_fewshot.demo.server import MediaServer, SourceSpec
from audioset_fewshot.download.ledger import Ledger
from audioset_fewshot.download.runner import run_download
from audioset_fewshot.errors import DownloadError, UsageError
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.manifest.build import build_manifest
from audioset_fewshot.manifest.recover import recover
from audioset_fewshot.plan import PlanEntry, SamplingPlan, write_plan

DOG, CAT = "/m/0rdog", "/m/0rcat"
FAST = {"max_per_hour": None, "min_interval_s": 0.0, "backoff_s": 0.05, "retries": 0, "min_free": "0B", "timeout_s": 30.0}
GONE = {"rc" + "dog" + "000001": "unavailable", "rc" + "cat" + "000000": "private"}


def _ids() -> list[str]:
    return [f"rc{m[-3:]}{k:06d}" for m in (DOG, CAT) for k in range(4)]


def _plan() -> SamplingPlan:
    entries = [PlanEntry(f"rc{m[-3:]}{k:06d}_1000", f"rc{m[-3:]}{k:06d}", 1.0, 11.0, m, (m,), "balanced", k) for m in (DOG, CAT) for k in range(4)]
    params = {"seed": 0, "max_per_class": 3, "sources": ["balanced"], "owner_policy": "fewest-candidates", "shard": None, "classes": [CAT, DOG]}
    return SamplingPlan.build(entries, {DOG: 3, CAT: 3}, params=params)


def _catalog() -> dict[str, SourceSpec]:
    return {y: SourceSpec(class_key=f"demo-class-{i % 3}", duration_s=12.0) for i, y in enumerate(_ids())}


@pytest.fixture(scope="module")
def media_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("media-recover")
    with MediaServer(cache_dir=cache, catalog=_catalog(), idle_timeout_s=60) as srv:
        srv.prepare(_ids(), formats=(140,), workers=2)
    return cache


def _server(cache: Path) -> MediaServer:
    srv = MediaServer(cache_dir=cache, catalog=_catalog(), idle_timeout_s=60)
    for ytid, fault in GONE.items():
        srv.set_fault(ytid, fault)
    return srv


def _files(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((root / "audio").rglob("*")) if p.is_file()}


def _downloaded(root: Path, srv: MediaServer) -> tuple[dict[str, str], str]:
    layout = DatasetLayout(root)
    write_plan(_plan(), layout)
    rep = run_download(_plan(), root, DownloadOptions(jobs=2, base_url=srv.base_url, **FAST))
    assert rep.complete and rep.obtained == 6
    build_manifest(root)
    return _files(root), layout.clips_csv.read_text()


def _garble(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for i in range(100, len(data), 997):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["deleted", "garbled", "emptied"])
def test_recover_keeps_every_clip_and_a_rerun_makes_no_request(damage: str, media_cache: Path, tmp_path: Path) -> None:
    layout = DatasetLayout(tmp_path)
    with _server(media_cache) as srv:
        files, clips_csv = _downloaded(tmp_path, srv)
        for suffix in ("-wal", "-shm"):
            Path(str(layout.ledger_file) + suffix).unlink(missing_ok=True)
        if damage == "deleted":
            layout.ledger_file.unlink()
        elif damage == "garbled":
            _garble(layout.ledger_file)
        else:
            layout.ledger_file.write_bytes(b"")
        if damage != "deleted":
            # the ledger is refused with a pointer to recover; nothing starts over it
            with pytest.raises(DownloadError, match=r"recover --root"):
                Ledger(layout.ledger_file)
            with pytest.raises(DownloadError, match=r"recover --root"):
                run_download(_plan(), tmp_path, DownloadOptions(jobs=2, base_url=srv.base_url, **FAST))
            assert _files(tmp_path) == files
        rep = recover(tmp_path)
        assert (rep.from_manifest, rep.from_files, rep.failures, rep.rejected) == (6, 0, 2, ())
        assert (rep.moved_to is None) == (damage == "deleted")
        srv.reset_log()
        again = run_download(_plan(), tmp_path, DownloadOptions(jobs=2, base_url=srv.base_url, **FAST))
        assert srv.requests == []
        assert again.complete and again.obtained_now == 0
        assert _files(tmp_path) == files
        build_manifest(tmp_path)
        assert layout.clips_csv.read_text() == clips_csv


def test_recover_takes_clips_missing_from_the_manifest_and_rejects_damaged_ones(media_cache: Path, tmp_path: Path) -> None:
    layout = DatasetLayout(tmp_path)
    with _server(media_cache) as srv:
        files, clips_csv = _downloaded(tmp_path, srv)
        lines = clips_csv.splitlines(keepends=True)
        # two clips downloaded after the manifest was written, one of them damaged since
        layout.clips_csv.write_text(lines[0] + "".join(lines[3:]))
        unlisted = [f for f in files if any(f in line for line in lines[1:3])]
        listed = sorted(set(files) - set(unlisted))
        damaged, damaged_unlisted = listed[-1], unlisted[-1]
        for rel in (damaged, damaged_unlisted):
            data = bytearray((tmp_path / rel).read_bytes())
            mid = len(data) // 2  # inside the audio frames (the first kilobytes hold metadata and padding)
            data[mid : mid + 64] = bytes(b ^ 0xFF for b in data[mid : mid + 64])
            (tmp_path / rel).write_bytes(bytes(data))
        layout.ledger_file.unlink()
        with pytest.raises(UsageError, match="nothing to recover"):
            Ledger(layout.ledger_file).close()  # a fresh, readable ledger
            recover(tmp_path)
        rep = recover(tmp_path, force=True)
        assert rep.from_manifest == 3 and rep.from_files == 1  # the damaged unlisted one fails FLAC's MD5
        assert len(rep.rejected) == 1 and damaged in rep.rejected[0] and "sha256" in rep.rejected[0]
        srv.reset_log()
        run_download(_plan(), tmp_path, DownloadOptions(jobs=2, base_url=srv.base_url, **FAST))
        # only the two damaged clips are fetched again
        assert {r.ytid for r in srv.requests} == {Path(p).stem.rsplit("_", 1)[0] for p in (damaged, damaged_unlisted)}
        assert _files(tmp_path) == files


def test_cli_recover_and_status_on_a_garbled_ledger(media_cache: Path, tmp_path: Path) -> None:
    layout = DatasetLayout(tmp_path)
    with _server(media_cache) as srv:
        files, _ = _downloaded(tmp_path, srv)
    _garble(layout.ledger_file)
    env = {**os.environ, "AUDIOSET_FEWSHOT_PROGRESS": "0"}
    status = subprocess.run(
        [sys.executable, "-m", "audioset_fewshot", "status", "--root", str(tmp_path)], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert status.returncode != 0 and "recover --root" in status.stderr and "internal error" not in status.stderr
    res = subprocess.run(
        [sys.executable, "-m", "audioset_fewshot", "recover", "--root", str(tmp_path)], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert res.returncode == 0, res.stderr
    assert "recovered 6 of 8 planned clips" in res.stdout and "damaged ledger is kept as" in res.stdout
    assert list(tmp_path.glob("ledger.sqlite.damaged-*")) and _files(tmp_path) == files


def test_report_and_merge_point_a_garbled_ledger_to_recover(media_cache: Path, tmp_path: Path) -> None:
    from audioset_fewshot.errors import ManifestError
    from audioset_fewshot.manifest.merge import merge_roots
    from audioset_fewshot.report import write_report

    root = tmp_path / "root"
    with _server(media_cache) as srv:
        _downloaded(root, srv)
    _garble(DatasetLayout(root).ledger_file)
    with pytest.raises(DownloadError, match=r"not a readable ledger.*recover --root"):
        write_report(root)
    with pytest.raises((ManifestError, DownloadError), match=r"recover --root"):
        merge_roots([root], into=tmp_path / "merged")


def test_an_empty_ledger_file_without_clips_beside_it_starts_a_new_ledger(tmp_path: Path) -> None:
    # a first download killed before its first commit leaves an empty file and no clip: nothing to lose
    (tmp_path / "ledger.sqlite").write_bytes(b"")
    with Ledger(tmp_path / "ledger.sqlite") as led:
        assert led.rows() == []
    # with a clip file beside it, the same empty file is refused (recover, not a fresh start)
    other = tmp_path / "other"
    (other / "audio" / "m_0x").mkdir(parents=True)
    (other / "audio" / "m_0x" / "abcdefghijk_0.flac").write_bytes(b"fLaC")
    (other / "ledger.sqlite").write_bytes(b"")
    with pytest.raises(DownloadError, match="recover --root"):
        Ledger(other / "ledger.sqlite")
