"""Indexing a release (folder and tar.gz), packing rows, and the errors of bad input."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from audioset_fewshot.release.index import CORRUPT, OK, index_release
from audioset_fewshot.release.labels import read_label_indices
from audioset_fewshot.release.records import dequantize
from audioset_fewshot.release.source import ReleaseError, open_release
from audioset_fewshot.release.store import EMBEDDINGS_FILE, MASK_FILE, pack_rows
from audioset_fewshot.release.tfrecord import frame
from audioset_fewshot.release.writer import write_tar_gz

from .conftest import SmallRelease

if TYPE_CHECKING:
    from audioset_fewshot.engine import DaskEngine


def _keys(segs):
    return ([s.source for s in segs], [s.ytid for s in segs], [round(s.start_s * 1000) for s in segs])


def test_index_finds_every_segment_in_folder_and_tar_alike(small_release: SmallRelease) -> None:
    a = index_release(small_release.folder, workers=2)
    b = index_release(small_release.tar_gz, workers=2)
    assert len(a) == len(b) == len(small_release.segments)
    assert a.content_sha256 == b.content_sha256 and a.kind == "folder" and b.kind == "tar.gz"
    for name in ("source", "ytid", "start_ms", "end_ms", "seconds", "file", "number", "offset", "status", "label_ptr", "label_idx"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    rows = a.find(*_keys(small_release.segments))
    assert (rows >= 0).all()
    for seg, r in zip(small_release.segments, rows, strict=True):
        assert a.ytid[r].decode() == seg.ytid and a.labels(int(r)) == seg.labels and int(a.seconds[r]) == seg.embedding.shape[0]
        assert a.file_name(int(r)) == f"{ {'balanced': 'bal_train', 'eval': 'eval', 'unbalanced': 'unbal_train'}[seg.source] }/{seg.ytid[:2]}.tfrecord"
    assert (a.status == OK).all() and not a.problems and not a.damaged
    # absent keys: another start time, another list
    miss = a.find(["eval", "balanced"], [small_release.segments[0].ytid, "zzzzzzzzzzz"], [999_999, 0])
    assert miss.tolist() == [-1, -1]


def test_tar_and_folder_pack_byte_identical_arrays(small_release: SmallRelease, tmp_path: Path) -> None:
    idx_f = index_release(small_release.folder, workers=2)
    idx_t = index_release(small_release.tar_gz, workers=2)
    rows = idx_f.find(*_keys(small_release.segments))[::-1].copy()  # any output order
    pack_rows(idx_f, rows, tmp_path / "f", workers=2)
    pack_rows(idx_t, rows, tmp_path / "t", workers=2)
    for name in (EMBEDDINGS_FILE, MASK_FILE):
        assert (tmp_path / "f" / name).read_bytes() == (tmp_path / "t" / name).read_bytes()
    emb = np.fromfile(tmp_path / "f" / EMBEDDINGS_FILE, dtype=np.uint8).reshape(-1, 10, 128)
    mask = np.fromfile(tmp_path / "f" / MASK_FILE, dtype=np.uint8).reshape(-1, 10)
    for i, seg in enumerate(reversed(small_release.segments)):
        s = seg.embedding.shape[0]
        assert np.array_equal(emb[i, :s], seg.embedding) and mask[i].tolist() == [1] * s + [0] * (10 - s)
        assert not emb[i, s:].any()
    # a single worker writes the same bytes
    pack_rows(idx_f, rows, tmp_path / "one", workers=1)
    assert (tmp_path / "one" / EMBEDDINGS_FILE).read_bytes() == (tmp_path / "f" / EMBEDDINGS_FILE).read_bytes()
    assert float(np.abs(dequantize(emb[0]) - (emb[0] / 255 * 4 - 2)).max()) < 1e-6


def _copy(small_release: SmallRelease, tmp_path: Path) -> Path:
    dest = tmp_path / "rel" / "audioset_v1_embeddings"
    shutil.copytree(small_release.folder, dest)
    return dest


def test_a_corrupt_record_is_named_the_clip_marked_and_the_file_read_on(small_release: SmallRelease, tmp_path: Path) -> None:
    folder = _copy(small_release, tmp_path)
    idx = index_release(folder, workers=1)
    # the first file with at least three records: corrupt its second record's embedding bytes
    f = next(i for i, spec in enumerate(idx.files) if spec[4] >= 3)
    name = idx.files[f][1]
    rows = np.flatnonzero(idx.file == f)
    path = folder / name
    data = bytearray(path.read_bytes())
    data[int(idx.offset[rows[1]]) + 12 + 200] ^= 0xFF  # inside the payload, past the context
    path.write_bytes(bytes(data))
    again = index_release(folder, workers=2)
    bad = np.flatnonzero(again.status == CORRUPT)
    assert bad.size == 1 and int(again.number[bad[0]]) == 1 and again.file_name(int(bad[0])) == name
    assert len(again) == len(idx)  # nothing lost: every other record of the file is indexed
    assert len(again.problems) == 1 and f"{name}: record 1 (byte " in again.problems[0] and "CRC mismatch" in again.problems[0]
    assert again.ytid[bad[0]].decode() in again.problems[0]


def test_a_cut_file_keeps_its_first_records_and_is_reported(small_release: SmallRelease, tmp_path: Path) -> None:
    folder = _copy(small_release, tmp_path)
    idx = index_release(folder, workers=1)
    f = next(i for i, spec in enumerate(idx.files) if spec[4] >= 2)
    name = idx.files[f][1]
    path = folder / name
    path.write_bytes(path.read_bytes()[:-10])
    again = index_release(folder, workers=1)
    assert name in again.damaged and "truncated in record" in again.damaged[name]
    assert int((again.file == f).sum()) == idx.files[f][4] - 1
    assert len(again) == len(idx) - 1


def test_bad_releases_are_refused_with_clear_messages(small_release: SmallRelease, tmp_path: Path) -> None:
    with pytest.raises(ReleaseError, match="does not exist"):
        open_release(tmp_path / "nowhere")
    notgz = tmp_path / "features.tar.gz"
    notgz.write_bytes(b"PK\x03\x04 this is a zip")
    with pytest.raises(ReleaseError, match="is not a gzip file"):
        open_release(notgz)
    gz_not_tar = tmp_path / "g.tar.gz"
    gz_not_tar.write_bytes(gzip.compress(b"hello, not a tar archive" * 40))
    with pytest.raises(ReleaseError, match="features.tar.gz again|not a complete AudioSet embedding release"):
        index_release(gz_not_tar, workers=1)
    folder = _copy(small_release, tmp_path)
    shutil.rmtree(folder / "eval")
    with pytest.raises(ReleaseError, match=r"split folder 'eval' \(the eval list\) is missing"):
        index_release(folder, workers=1)
    assert len(index_release(folder, sources=("balanced", "unbalanced"), workers=1)) > 0
    tar = write_tar_gz(folder, tmp_path / "partial.tar.gz")
    with pytest.raises(ReleaseError, match=r"no eval/ members \(the eval list\)"):
        index_release(tar, workers=2)
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(small_release.tar_gz.read_bytes()[: small_release.tar_gz.stat().st_size // 2])
    with pytest.raises(ReleaseError, match="cut.tar.gz: .*(damaged or incomplete|cut short)"):
        index_release(cut, workers=1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReleaseError, match="holds none of bal_train, eval, unbal_train"):
        open_release(tmp_path / "empty")
    assert frame(b"")  # framing of an empty payload is valid


def test_labels_file_that_disagrees_with_the_ontology_is_refused(tmp_path: Path, shared_metadata_dir: Path) -> None:
    good = shared_metadata_dir / "class_labels_indices.csv"
    assert len(read_label_indices(good)) == 527
    lines = good.read_text(encoding="utf-8").splitlines()
    renamed = tmp_path / "renamed.csv"
    renamed.write_text("\n".join([lines[0], lines[1].replace('"Speech"', '"Talking"'), *lines[2:]]) + "\n", encoding="utf-8")
    with pytest.raises(ReleaseError, match=r"renamed.csv disagrees with the ontology in 1 row\(s\): .*renamed.csv:2: /m/09x0r is 'Talking' here but 'Speech'"):
        read_label_indices(renamed)
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("\n".join([lines[0], lines[1].replace("/m/09x0r", "/m/nothere"), *lines[2:]]) + "\n", encoding="utf-8")
    with pytest.raises(ReleaseError, match="'/m/nothere' is not a class of the ontology"):
        read_label_indices(unknown)
    shifted = tmp_path / "shifted.csv"
    shifted.write_text("\n".join([lines[0], *lines[2:]]) + "\n", encoding="utf-8")
    with pytest.raises(ReleaseError, match=r"shifted.csv:2: index '1' out of order \(expected 0\)"):
        read_label_indices(shifted)


def test_pack_release_packs_every_record_in_one_pass_as_pack_rows_does(small_release: SmallRelease, tmp_path: Path) -> None:
    from audioset_fewshot.release.index import pack_release

    idx = pack_release(small_release.folder, tmp_path / "all", workers=2)
    idx_t = pack_release(small_release.tar_gz, tmp_path / "all-tar", workers=2)
    ref = index_release(small_release.folder, workers=1)
    assert np.array_equal(idx.ytid, ref.ytid) and np.array_equal(idx.offset, ref.offset) and idx.content_sha256 == ref.content_sha256
    pack_rows(ref, np.arange(len(ref)), tmp_path / "rows", workers=1)
    for name in (EMBEDDINGS_FILE, MASK_FILE):
        assert (tmp_path / "all" / name).read_bytes() == (tmp_path / "rows" / name).read_bytes() == (tmp_path / "all-tar" / name).read_bytes()
    assert np.array_equal(idx_t.start_ms, idx.start_ms)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_embeddings_pack_on_dask_is_byte_identical_to_the_local_pool(small_release: SmallRelease, dask_engine: DaskEngine, tmp_path: Path) -> None:
    """The release embeddings pack as Dask tasks (one per release file, or per tar member
    read by the driver) writes the bytes the local pool writes."""
    index = index_release(small_release.folder, workers=1)
    rows = np.arange(0, len(index.ytid), 3)[::-1]  # every third record, in reverse: rows cross files
    for source in (small_release.folder, small_release.tar_gz):
        rel = open_release(source)
        local, dask = tmp_path / f"local-{rel.kind}", tmp_path / f"dask-{rel.kind}"
        pack_rows(index, rows, local, workers=2, release=rel)
        pack_rows(index, rows, dask, workers=2, release=rel, engine=dask_engine)
        for name in ("embeddings.u8", "mask.u8"):
            assert (local / name).read_bytes() == (dask / name).read_bytes(), (source, name)
