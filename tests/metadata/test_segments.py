"""The segment-list parser and the candidate index, on the real shared lists and on hostile input."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audioset_fewshot._io import sha256_file
from audioset_fewshot.config import SOURCES
from audioset_fewshot.errors import MetadataError, ParseError, UnknownNameError, UsageError, ValidationError
from audioset_fewshot.metadata import (
    SegmentHeader,
    build_candidate_index,
    parse_line,
    read_segments,
    resolve_segment_files,
)

from .conftest import format_row, segment_text

EXPECTED_ROWS = {"balanced": 22_160, "eval": 20_371, "unbalanced": 41_792}


@pytest.fixture(scope="module")
def shared_table(shared_metadata_dir: Path):
    files = resolve_segment_files(SOURCES, metadata_dir=shared_metadata_dir)
    return files, read_segments(files)


# ---------------------------------------------------------------------------------------
# the real lists


def test_reads_every_shared_list_with_the_right_row_counts(shared_table) -> None:
    files, table = shared_table
    assert files["unbalanced"].name == "unbalanced_train_segments_part.csv"
    assert len(table) == sum(EXPECTED_ROWS.values())
    for source, n in EXPECTED_ROWS.items():
        sl = table.source_rows(source)
        assert sl.stop - sl.start == n
        assert table.headers[source].num_segs == n
        assert table.observed[source].num_segs == n
        assert set(table.source[sl].tolist()) == {SOURCES.index(source)}
    assert table.sources == SOURCES
    assert table.headers["balanced"] == SegmentHeader(22160, 22160, 527, 52874, "Sun Mar  5 10:54:31 2017")
    assert table.ytid.dtype == np.dtype("<U11") and table.start_s.dtype == np.float64 and table.source.dtype == np.int8
    assert table.label_ptr.dtype == np.int64 and table.label_idx.dtype == np.int32
    assert table.label_ptr[-1] == table.label_idx.size == sum(h.num_positive_labels for h in table.headers.values())
    assert list(table.label_vocab) == sorted(table.label_vocab) and len(table.label_vocab) == 527


def test_first_rows_and_files_record(shared_table) -> None:
    files, table = shared_table
    assert table.ytid[0] == "--PJHxphWEs"  # an ID that begins with '-'
    assert (table.start_s[0], table.end_s[0]) == (30.0, 40.0)
    assert table.labels(0) == ("/m/09x0r", "/t/dd00088")
    last = len(table) - 1
    assert table.ytid[last] == "zzztDPePp4g" and table.source_name(last) == "unbalanced"
    assert table.labels(last) == ("/m/04rlf", "/m/09x0r", "/t/dd00126")
    for source, (path, digest) in table.files.items():
        assert path == files[source] and digest == sha256_file(path)
    prov = table.provenance()
    assert list(prov) == list(SOURCES) and prov["eval"]["header"]["num_segs"] == 20371


def test_fast_path_agrees_with_the_reference_line_parser(shared_table) -> None:
    """Every row of every shared list, parsed line by line with parse_line, equals the table."""
    files, table = shared_table
    for source, path in files.items():
        sl = table.source_rows(source)
        k = sl.start
        with open(path, encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, 1):
                row = parse_line(line, path=path, line_no=line_no)
                if row is None:
                    continue
                ytid, start, end, labels = row
                assert table.ytid[k] == ytid and table.start_s[k] == start and table.end_s[k] == end, (path, line_no)
                assert table.labels(k) == labels, (path, line_no)
                k += 1
        assert k == sl.stop


def test_header_label_counts_may_differ_and_are_kept(write_segments, caplog: pytest.LogCaptureFixture) -> None:
    p = write_segments(rows=[("--PJHxphWEs", 30, 40, ["/m/09x0r", "/t/dd00088"])], num_positive=3)
    with caplog.at_level(logging.WARNING, logger="audioset_fewshot.metadata.segments"):
        table = read_segments({"balanced": p})
    assert table.headers["balanced"].num_positive_labels == 3
    assert table.observed["balanced"].num_positive_labels == 2
    assert "num_positive_labels=3, the file has 2" in caplog.text


# ---------------------------------------------------------------------------------------
# hostile and malformed input: a clear error naming file and line


GOOD = format_row("abcdefghijk", 0, 10, ["/m/09x0r"])


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ('../../etc,1,2,"/m/x"', r"invalid YouTube ID '\.\./\.\./etc'"),
        ('abcdefghijk, nan, 10.000, "/m/09x0r"', r"start time 'nan' is not a finite number"),
        ('abcdefghijk, 0.000, inf, "/m/09x0r"', r"end time 'inf' is not a finite number"),
        ('abcdefghijk, 0.000, 10.000, "/m/09x0r', r"missing its closing quote"),
        ('abcdefghijk, 0.000, 10.000, /m/09x0r"', r"missing the opening quote"),
        ("abcdefghijk, 0.000, 10.000, /m/09x0r", r"missing the opening quote"),
        ('abcdefghijk, 20.000, 10.000, "/m/09x0r"', r"0 <= start < end"),
        ('abcdefghijk, 10.000, 10.000, "/m/09x0r"', r"0 <= start < end"),
        ('abcdefghijk, -1.000, 10.000, "/m/09x0r"', r"start time '-1.000' is not a finite number"),
        ('abcdefghijk, 1_0.0, 20.000, "/m/09x0r"', r"start time '1_0.0'"),
        ('abcdefghijk, 0.000, 10.000, ""', r"empty label list"),
        ('abcdefghijk, 0.000, 10.000, "/m/09x0r,../x"', r"invalid label '\.\./x'"),
        ('abcdefghijk, 0.000, 10.000, "/m/09x0r,"', r"invalid label ''"),
        ('abcdefghijk, 0.000, 10.000, "/m/0"9x0r"', r"stray quote"),
        ("abcdefghijk, 0.000, 10.000", r"expected 4 fields"),
        ('abcdefghij, 0.000, 10.000, "/m/09x0r"', r"invalid YouTube ID 'abcdefghij'"),
        ('abcdefghij!, 0.000, 10.000, "/m/09x0r"', r"invalid YouTube ID 'abcdefghij!'"),
        ('abcdéfghijk, 0.000, 10.000, "/m/09x0r"', r"invalid YouTube ID"),
    ],
)
def test_malformed_line_is_a_parse_error_naming_file_and_line(write_segments, bad_line: str, message: str) -> None:
    p = write_segments(lines=[GOOD, GOOD.replace("abcdefghijk", "bbcdefghijk"), bad_line, GOOD])
    with pytest.raises(ParseError, match=rf"balanced_train_segments\.csv:6: .*{message}") as info:
        read_segments({"balanced": p})
    assert info.value.line == 6 and info.value.path == str(p)


def test_error_line_numbers_stay_right_across_blocks(write_segments) -> None:
    lines = [format_row(f"id{i:09d}", i, i + 10, ["/m/09x0r"]) for i in range(500)]
    lines[437] = 'id000000437, 1.000, nan, "/m/09x0r"'
    p = write_segments(lines=lines)
    with pytest.raises(ParseError, match=r":441: end time 'nan'"):
        read_segments({"balanced": p}, block_bytes=257)


def test_non_utf8_line(tmp_path: Path) -> None:
    p = tmp_path / "eval_segments.csv"
    p.write_bytes(segment_text(lines=[GOOD]).encode() + b'\xff\xfebcdefghijk, 0.000, 10.000, "/m/09x0r"\n')
    with pytest.raises(ParseError, match=r"eval_segments\.csv:5: not UTF-8"):
        read_segments({"eval": p})


def test_truncated_file_fails_the_num_segs_check(write_segments) -> None:
    p = write_segments(lines=[GOOD], num_segs=2)
    with pytest.raises(ParseError, match=r":2: the header says num_segs=2 but the file has 1 segment rows.*fetch it again"):
        read_segments({"balanced": p})


def test_missing_header_is_an_error(tmp_path: Path) -> None:
    p = tmp_path / "balanced_train_segments.csv"
    p.write_text(GOOD, encoding="utf-8")
    with pytest.raises(ParseError, match=r":1: missing the header line '# num_ytids=\.\.\."):
        read_segments({"balanced": p})


def test_missing_file_and_unknown_source(tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match=r"cannot read segment list .*nope\.csv"):
        read_segments({"eval": tmp_path / "nope.csv"})
    with pytest.raises(UsageError, match=r"unknown segment list 'balance'.*Did you mean 'balanced'"):
        read_segments({"balance": tmp_path / "x.csv"})
    with pytest.raises(UsageError, match=r"no segment lists given"):
        read_segments({})


# ---------------------------------------------------------------------------------------
# accepted variations and block boundaries


def test_tolerated_variations(tmp_path: Path) -> None:
    """CRLF, extra spaces, blank lines, '-'/'_' IDs and no final newline all parse."""
    text = (
        segment_text(num_segs=4)
        + '-_a-_b-_c-_, 0.000, 10.000, "/m/09x0r"\r\n'
        + "\n"
        + '  _bcdefghijk ,  1.5 ,2.25,  " /m/09x0r , /t/dd00088 "  \n'
        + 'Abcdefghijk, 3e1, 40, "/g/11b630rrvh"\n'
        + 'Zbcdefghijk, 0.000, 10.000, "/m/09x0r"'
    )
    p = tmp_path / "balanced_train_segments.csv"
    p.write_bytes(text.encode())
    t = read_segments({"balanced": p})
    assert t.ytid.tolist() == ["-_a-_b-_c-_", "_bcdefghijk", "Abcdefghijk", "Zbcdefghijk"]
    assert t.start_s.tolist() == [0.0, 1.5, 30.0, 0.0] and t.end_s.tolist() == [10.0, 2.25, 40.0, 10.0]
    assert [t.labels(i) for i in range(4)] == [("/m/09x0r",), ("/m/09x0r", "/t/dd00088"), ("/g/11b630rrvh",), ("/m/09x0r",)]


def test_block_size_does_not_change_the_result(shared_metadata_dir: Path) -> None:
    files = resolve_segment_files(("eval",), metadata_dir=shared_metadata_dir)
    big = read_segments(files)
    small = read_segments(files, block_bytes=4093)
    for name in ("ytid", "start_s", "end_s", "source", "label_ptr", "label_idx"):
        assert np.array_equal(getattr(big, name), getattr(small, name)), name
    assert big.label_vocab == small.label_vocab and big.files == small.files


def test_lists_are_concatenated_in_sources_order(write_segments) -> None:
    e = write_segments("eval_segments.csv", rows=[("eeeeeeeeeee", 0, 10, ["/m/b"])])
    b = write_segments("balanced_train_segments.csv", rows=[("bbbbbbbbbbb", 0, 10, ["/m/a"])])
    t = read_segments({"eval": e, "balanced": b})
    assert t.ytid.tolist() == ["bbbbbbbbbbb", "eeeeeeeeeee"] and t.source.tolist() == [0, 1]
    assert t.sources == ("balanced", "eval") and t.label_vocab == ("/m/a", "/m/b")


_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
_ids = st.text(alphabet=_ID_CHARS, min_size=11, max_size=11)
_mids = st.builds(lambda k, rest: f"/{k}/{rest}", st.sampled_from("mtg"), st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=16))
_rows = st.lists(
    st.tuples(_ids, st.integers(0, 10**6), st.integers(1, 10**5), st.lists(_mids, min_size=1, max_size=6, unique=True), st.integers(0, 3)),
    min_size=0,
    max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=_rows, block=st.sampled_from([64, 333, 1 << 20]))
def test_round_trip_property(tmp_path: Path, rows, block: int) -> None:
    """Whatever valid rows (and formatting) we write, the parser reads them back exactly."""
    lines = []
    expect = []
    for ytid, start_ms, dur_ms, labels, style in rows:
        start, end = start_ms / 1000, (start_ms + dur_ms) / 1000
        if style == 0:
            lines.append(f'{ytid}, {start:.3f}, {end:.3f}, "{",".join(labels)}"')
        elif style == 1:
            lines.append(f'{ytid},{start!r},{end!r},"{",".join(labels)}"')
        elif style == 2:
            lines.append(f'{ytid}, {start:.3f}, {end:.3f}, "{", ".join(labels)}"\r')
        else:
            lines.append(f'{ytid}, {start_ms}e-3, {end!r}, "{",".join(labels)}"')
        expect.append((ytid, float(f"{start:.3f}") if style in (0, 2) else start, float(f"{end:.3f}") if style in (0, 2) else end, tuple(labels)))
    p = tmp_path / "balanced_train_segments.csv"
    p.write_text(segment_text(lines=lines), encoding="utf-8", newline="")
    t = read_segments({"balanced": p}, block_bytes=block)
    got = [(t.ytid[i], t.start_s[i], t.end_s[i], t.labels(i)) for i in range(len(t))]
    assert got == expect


def test_parse_line_directly() -> None:
    assert parse_line("# comment") is None and parse_line("   \n") is None
    assert parse_line('--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088"') == ("--PJHxphWEs", 30.0, 40.0, ("/m/09x0r", "/t/dd00088"))
    with pytest.raises(ParseError, match=r"x\.csv:7: "):
        parse_line('bad, 1, 2, "/m/x"', path="x.csv", line_no=7)
    assert math.isclose(parse_line('abcdefghijk, .5, 1., "/m/x"')[1], 0.5)


# ---------------------------------------------------------------------------------------
# candidate index


def _brute_rows(table, mid: str) -> list[int]:
    return [i for i in range(len(table)) if mid in table.labels(i)]


def test_candidate_index_matches_brute_force(shared_table) -> None:
    _, table = shared_table
    mids = ["/m/05tny_", "/m/028v0c", "/m/09x0r", "/m/0_not_there"]
    index = build_candidate_index(table, mids)
    assert index.mids == tuple(mids)
    sub = slice(0, len(table))
    for mid in mids[:2]:
        rows = index.rows(mid)
        assert rows.dtype == np.int64 and rows.tolist() == _brute_rows(table, mid)
        assert index.count(mid) == rows.size
        by_src = index.counts_by_source(mid)
        assert list(by_src) == list(SOURCES) and sum(by_src.values()) == rows.size
        assert by_src["balanced"] == sum(1 for r in rows.tolist() if r < table.source_rows("eval").start)
    assert index.count("/m/0_not_there") == 0 and index.rows("/m/0_not_there").size == 0
    assert index.count("/m/09x0r") == sum(
        1 for i in range(sub.stop) if table.label_idx[table.label_ptr[i] : table.label_ptr[i + 1]].tolist().count(table.label_index("/m/09x0r"))
    )
    with pytest.raises(UnknownNameError, match=r"unknown indexed class '/m/05tny'.*'/m/05tny_'"):
        index.rows("/m/05tny")
    with pytest.raises(ValidationError, match="invalid class id"):
        build_candidate_index(table, ["Bark"])


def test_full_index_and_rows_are_read_only(shared_table) -> None:
    _, table = shared_table
    index = build_candidate_index(table)
    assert index.mids == table.label_vocab
    assert sum(index.counts().values()) == table.label_idx.size
    rows = index.rows("/m/09x0r")
    with pytest.raises(ValueError):
        rows[0] = 1


def test_a_label_repeated_on_a_row_counts_once(write_segments) -> None:
    p = write_segments(lines=['abcdefghijk, 0.000, 10.000, "/m/a,/m/a,/m/b"', 'bbcdefghijk, 0.000, 10.000, "/m/a"'], num_positive=4)
    index = build_candidate_index(read_segments({"balanced": p}), ["/m/a", "/m/b"])
    assert index.rows("/m/a").tolist() == [0, 1] and index.count("/m/b") == 1


def test_utf8_bom_from_an_editor_is_tolerated(tmp_path: Path) -> None:
    p = tmp_path / "eval_segments.csv"
    p.write_bytes(b"\xef\xbb\xbf" + segment_text(lines=[GOOD]).encode())
    t = read_segments({"eval": p})
    assert t.ytid.tolist() == ["abcdefghijk"] and t.headers["eval"].num_segs == 1


def test_a_file_without_line_breaks_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "eval_segments.csv"
    p.write_bytes(segment_text().encode() + b"x" * 200_000)
    with pytest.raises(MetadataError, match=r"eval_segments\.csv: a line is longer than \d+ bytes; this is not an AudioSet segment list"):
        read_segments({"eval": p}, block_bytes=1000)


_NOISE = st.sampled_from(list(',". \r\t.-_/e+0123456789nafimtAz#é\x00'))


@st.composite
def _mutated_lines(draw) -> str:
    """A valid official line, then a few random insertions / deletions / replacements."""
    ytid = draw(_ids)
    start = draw(st.integers(0, 10**5)) / 1000
    labels = draw(st.lists(_mids, min_size=1, max_size=3, unique=True))
    line = f'{ytid}, {start:.3f}, {start + 10:.3f}, "{",".join(labels)}"'
    for _ in range(draw(st.integers(0, 3))):
        pos = draw(st.integers(0, len(line)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        ch = draw(_NOISE)
        if op == "insert":
            line = line[:pos] + ch + line[pos:]
        elif op == "delete":
            line = line[:pos] + line[pos + 1 :]
        else:
            line = line[:pos] + ch + line[pos + 1 :]
    return line


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(_mutated_lines(), min_size=1, max_size=4))
def test_vectorised_parser_agrees_with_the_line_parser_on_mutated_lines(tmp_path: Path, lines: list[str]) -> None:
    """Differential test: for any line, the block parser accepts exactly what parse_line accepts,
    with the same values, and rejects the rest with the same message at the same line."""
    p = tmp_path / "eval_segments.csv"
    expect: list[tuple] = []
    error: str | None = None
    for i, line in enumerate(lines):
        try:
            row = parse_line(line, path=p, line_no=4 + i)
        except ParseError as err:
            error = str(err)
            break
        if row is not None:
            expect.append(row)
    if "\n" in "".join(lines):  # pragma: no cover - the noise alphabet has no newline
        return
    body = "".join(line + "\n" for line in lines)
    n = len(expect) if error is None else len(lines)
    p.write_bytes(segment_text(num_segs=n).encode() + body.encode("utf-8"))
    if error is not None:
        with pytest.raises(ParseError) as info:
            read_segments({"eval": p}, block_bytes=97)
        assert str(info.value) == error
    else:
        t = read_segments({"eval": p}, block_bytes=97)
        assert [(t.ytid[i], t.start_s[i], t.end_s[i], t.labels(i)) for i in range(len(t))] == expect


def test_labels_longer_than_the_fast_path_width(write_segments) -> None:
    long_mid = "/m/" + "a" * 20
    p = write_segments(
        lines=[f'abcdefghijk, 0.000, 10.000, "/m/09x0r,{long_mid}"', 'bbcdefghijk, 0.000, 10.000, "/m/09x0r"', f'cbcdefghijk, 0.000, 10.000, "{long_mid}"']
    )
    t = read_segments({"balanced": p})
    assert [t.labels(i) for i in range(3)] == [("/m/09x0r", long_mid), ("/m/09x0r",), (long_mid,)]
    assert build_candidate_index(t, [long_mid]).rows(long_mid).tolist() == [0, 2]
