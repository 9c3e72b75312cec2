"""clips.csv is untrusted input: every hostile row is refused with file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audioset_fewshot.errors import ManifestError
from audioset_fewshot.manifest import CLIPS_COLUMNS, ManifestRow, read_clips, write_clips

GOOD = {
    "ytid": "--PJHxphWEs", "start_s": "30.000", "end_s": "40.000", "owner_mid": "/m/09x0r", "labels": "/m/09x0r;/t/dd00088",
    "source": "balanced", "path": "audio/m_09x0r/--PJHxphWEs_30000.flac", "sample_rate_hz": "16000", "samples": "160000",
    "sha256": "0" * 64, "itag": "140", "codec": "aac", "license": "", "channel_id": "UCx",
    "origin": "youtube", "origin_revision": "", "source_sample_rate_hz": "",
}  # fmt: skip


def _write(tmp_path: Path, *rows: dict[str, str]) -> Path:
    import csv

    p = tmp_path / "clips.csv"
    with open(p, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(CLIPS_COLUMNS)
        for r in rows:
            w.writerow([r[c] for c in CLIPS_COLUMNS])
    return p


def test_good_row_roundtrips(tmp_path: Path) -> None:
    p = _write(tmp_path, GOOD)
    (row,) = read_clips(p, root=tmp_path)
    assert row.ytid == "--PJHxphWEs" and row.samples == 160000
    write_clips(tmp_path / "again.csv", [row])
    assert (tmp_path / "again.csv").read_text() == p.read_text()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("path", "/etc/passwd", "unsafe path"),
        ("path", "audio/../../x.flac", "unsafe path"),
        ("path", "audio/m_09x0r/other_30000.flac", "not where this clip lives"),
        ("path", "audio/m_09x0r/--PJHxphWEs_30000.sh", "not where this clip lives"),
        ("ytid", "../etc/pass", "invalid YouTube ID"),
        ("ytid", "-o/tmp/evil", "invalid YouTube ID"),
        ("ytid", "abcdefghijkl", "invalid YouTube ID"),
        ("ytid", "ábcdefghijk", "invalid YouTube ID"),
        ("sha256", "z" * 64, "invalid sha256"),
        ("sha256", "0" * 63, "invalid sha256"),
        ("start_s", "nan", "malformed time"),
        ("start_s", "1e3", "malformed time"),
        ("start_s", "-1.0", "malformed time"),
        ("end_s", "20.000", "0 <= start < end"),
        ("samples", "-5", "malformed samples"),
        ("samples", " 5", "malformed samples"),
        ("owner_mid", "/m/../x", "invalid class id"),
        ("labels", "/m/0abc", "not among the clip's labels"),
        ("source", "youtube", "unknown source"),
        ("license", "CC\x1b[31m", "control characters"),
        ("license", "x" * 500, "longer than"),
    ],
)
def test_hostile_rows_rejected_with_file_and_line(tmp_path: Path, field: str, value: str, message: str) -> None:
    p = _write(tmp_path, {**GOOD, "ytid": "aaaaaaaaaaa", "path": "audio/m_09x0r/aaaaaaaaaaa_30000.flac"}, {**GOOD, field: value})
    with pytest.raises(ManifestError, match=rf"clips\.csv:3: .*{message}"):
        read_clips(p, root=tmp_path)


def test_malformed_files(tmp_path: Path) -> None:
    p = tmp_path / "clips.csv"
    p.write_text("")
    with pytest.raises(ManifestError, match=r"clips\.csv:1: empty file"):
        read_clips(p)
    p.write_text("a,b\n")
    with pytest.raises(ManifestError, match="unexpected header"):
        read_clips(p)
    p.write_bytes(b"\xff\xfe")
    with pytest.raises(ManifestError, match="not UTF-8"):
        read_clips(p)
    p.write_text(",".join(CLIPS_COLUMNS) + "\nx,y\n")
    with pytest.raises(ManifestError, match=rf"clips\.csv:2: expected {len(CLIPS_COLUMNS)} fields"):
        read_clips(p)
    dup = _write(tmp_path, GOOD, GOOD)
    with pytest.raises(ManifestError, match=r"clips\.csv:3: duplicate clip"):
        read_clips(dup)
    with pytest.raises(ManifestError, match="no such manifest"):
        read_clips(tmp_path / "absent.csv")


def test_symlink_escaping_root_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "audio").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "audio" / "m_09x0r").symlink_to(outside)
    p = _write(tmp_path, GOOD)
    with pytest.raises(ManifestError, match="resolves outside"):
        read_clips(p, root=root)


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=0, max_size=30))
def test_any_text_in_a_field_is_accepted_or_refused_cleanly(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    tmp = tmp_path_factory.mktemp("h")
    for field in ("ytid", "start_s", "path", "sha256", "license"):
        p = _write(tmp, {**GOOD, field: text})
        try:
            rows = read_clips(p, root=tmp)
        except ManifestError as err:
            assert "clips.csv:" in str(err)
            continue
        assert all(isinstance(r, ManifestRow) for r in rows)
        assert not rows[0].path.startswith("/") and ".." not in rows[0].path.split("/")


@settings(max_examples=30, deadline=None)
@given(st.permutations(list(range(6))))
def test_render_is_independent_of_row_order(order: list[int]) -> None:
    from audioset_fewshot.manifest import render_clips

    mids = ["/m/09x0r", "/m/0bt9lr"]
    rows = [
        ManifestRow(
            owner_mid=mids[i % 2], ytid=f"abcdefghi{i:02d}", start_s=float(i), end_s=float(i) + 10.0, labels=(mids[i % 2],),
            source="eval", path=f"audio/{mids[i % 2][1:].replace('/', '_')}/abcdefghi{i:02d}_{i * 1000}.flac",
            sample_rate_hz=16000, samples=160000, sha256=f"{i:064x}", itag="140", codec="aac", license="", channel_id="",
        )
        for i in range(6)
    ]  # fmt: skip
    assert render_clips([rows[i] for i in order]) == render_clips(rows)


def test_clip_file_linking_out_of_the_root_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "audio" / "m_09x0r").mkdir(parents=True)
    secret = tmp_path / "secret.flac"
    secret.write_bytes(b"x")
    (root / "audio/m_09x0r/--PJHxphWEs_30000.flac").symlink_to(secret)
    p = _write(tmp_path, GOOD)
    with pytest.raises(ManifestError, match=r"clips\.csv:2: unsafe path .*resolves outside"):
        read_clips(p, root=root)
    assert read_clips(p)  # without a root only the text is checked
