"""The manifest commands (manifest, status, verify, diff, rebuild, merge, export), in process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.manifest_helpers import DOG, SPEECH, Clip, make_root, standard_clips, ytid

from audioset_fewshot.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    else:  # pragma: no cover - main always exits
        code = 0
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_root(tmp_path / "root", standard_clips()).root


def test_manifest_then_up_to_date(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "manifest", "--root", str(root))
    assert code == 0 and "5 clips in 3 classes, 2 unavailable (7 file(s) written)" in out
    code, out, _ = run(capsys, "manifest", "--root", str(root), "--format", "json")
    assert code == 0 and json.loads(out)["written"] == []


def test_status_table_and_json(root: Path, capsys: pytest.CaptureFixture[str], shared_metadata_dir: Path) -> None:
    code, out, _ = run(capsys, "status", "--root", str(root), "--metadata-dir", str(shared_metadata_dir))
    assert code == 0
    assert "Speech" in out and "private 1" in out and "http-5xx 1" in out
    assert "(22160 segments in the list" in out and "1 transient failure(s) will be retried" in out
    code, out, _ = run(capsys, "status", "--root", str(root), "--format", "json")
    data = json.loads(out)
    assert (data["obtained"], data["target"]) == (5, 7)


def test_verify_exit_codes(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "manifest", "--root", str(root))
    code, out, _ = run(capsys, "verify", "--root", str(root))
    assert code == 0 and "checked 5 clips" in out and "all good" in out
    (root / f"audio/m_09x0r/{ytid(1)}_30000.flac").unlink()
    (root / "audio/m_09x0r/extra.wav").write_bytes(b"RIFF")
    code, out, _ = run(capsys, "verify", "--root", str(root), "--format", "json")
    assert code == 1
    kinds = {(p["kind"], p["path"]) for p in json.loads(out)["problems"]}
    assert kinds == {("missing", f"audio/m_09x0r/{ytid(1)}_30000.flac"), ("unexpected", "audio/m_09x0r/extra.wav")}


def test_verify_hostile_manifest_is_an_error_with_line(root: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    run(capsys, "manifest", "--root", str(root))
    bad = tmp_path / "bad.csv"
    bad.write_text((root / "manifest/clips.csv").read_text().replace(ytid(2), "../../etc/x", 1))
    code, _, err = run(capsys, "verify", "--root", str(root), "--manifest", str(bad))
    assert code == 1 and "bad.csv:4" in err and "invalid YouTube ID" in err


def test_diff_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = make_root(tmp_path / "a", standard_clips()).root
    b = make_root(tmp_path / "b", [c for c in standard_clips() if c.ytid != ytid(6)]).root
    run(capsys, "manifest", "--root", str(a))
    run(capsys, "manifest", "--root", str(b))
    code, out, _ = run(capsys, "diff", str(a), str(b), "--show")
    assert code == 1 and f"only_a: {ytid(6)}_30000" in out and out.strip().endswith("different")
    assert "total               4        0       1       0" in out


def test_diff_exit_status_is_1_on_differences_0_when_equal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = make_root(tmp_path / "a", standard_clips()).root
    b = make_root(tmp_path / "b", [c for c in standard_clips() if c.ytid != ytid(6)]).root
    same = make_root(tmp_path / "same", standard_clips()).root
    for r in (a, b, same):
        run(capsys, "manifest", "--root", str(r))
    for fmt in ("text", "json"):
        code, out, _ = run(capsys, "diff", str(a), str(b), "--format", fmt)
        assert code == 1, out
        code, out, _ = run(capsys, "diff", str(a), str(same), "--format", fmt)
        assert code == 0, out
    code, out, _ = run(capsys, "diff", str(a / "manifest/clips.csv"), str(same / "manifest/clips.csv"))
    assert code == 0 and out.strip().endswith("identical")


def test_export_needs_cc_only(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "manifest", "--root", str(root))
    code, _, err = run(capsys, "export", "--root", str(root), "--into", str(tmp_path / "share"))
    assert code == 2 and "--cc-only" in err
    code, out, _ = run(capsys, "export", "--cc-only", "--root", str(root), "--into", str(tmp_path / "share"))
    assert code == 0 and "exported 2 Creative Commons clip(s)" in out
    assert (tmp_path / "share/ATTRIBUTION.txt").is_file()


def test_merge_and_rebuild_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = make_root(tmp_path / "a", [Clip(ytid(1), SPEECH, 0)]).root
    b = make_root(tmp_path / "b", [Clip(ytid(2), SPEECH, 0), Clip(ytid(3), DOG, 0)]).root
    code, _, err = run(capsys, "merge", str(a), str(b), "--into", str(a / "inside"))
    assert code == 2 and "overlaps" in err
    run(capsys, "manifest", "--root", str(a))
    code, _, err = run(capsys, "rebuild", str(a / "manifest/clips.csv"), "--root", str(b))
    assert code == 2 and "another plan" in err
