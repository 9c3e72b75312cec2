"""TFRecord framing and the SequenceExample codec, against the tfrecord package as a second reader."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest

from audioset_fewshot.release import _proto
from audioset_fewshot.release.records import (
    RecordError,
    decode,
    dequantize,
    encode,
    quantize,
)
from audioset_fewshot.release.tfrecord import (
    TFRecordError,
    frame,
    masked_crc,
    read_file,
    read_records,
    write_records,
)


def _records(n: int, rng: np.random.Generator) -> list[tuple[str, float, float, tuple[int, ...], np.ndarray]]:
    ids = ["-0RWZT-miFs", "a_b-c_d-e_f", "zzzzzzzzzzz", "--PJHxphWEs", "00000000000"]
    return [
        (
            ids[i % len(ids)],
            30.0 + i,
            40.0 + i,
            tuple(sorted({int(v) for v in rng.integers(0, 527, 1 + i % 3)})),
            rng.integers(0, 256, (10 - (i % 4 == 3) * 3, 128), dtype=np.uint8),
        )
        for i in range(n)
    ]


def test_masked_crc_matches_tensorflow_definition_and_the_tfrecord_package() -> None:
    from tfrecord.writer import TFRecordWriter

    for data in (b"", b"\x00" * 8, b"audioset", bytes(range(256)) * 5):
        assert masked_crc(data).to_bytes(4, "little") == TFRecordWriter.masked_crc(data)
    # TensorFlow's masking of a known CRC-32C: crc32c(b"123456789") = 0xE3069283
    crc = 0xE3069283
    assert masked_crc(b"123456789") == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def test_round_trip_and_the_tfrecord_package_reads_what_we_write(tmp_path: Path, rng: np.random.Generator) -> None:
    recs = _records(7, rng)
    path = tmp_path / "5v.tfrecord"
    with open(path, "wb") as fh:
        write_records(fh, [encode(*r) for r in recs])
    back = [decode(r.payload) for r in read_file(path)]
    assert [(b.ytid, b.start_ms, b.end_ms, b.labels) for b in back] == [(r[0], int(r[1] * 1000), int(r[2] * 1000), r[3]) for r in recs]
    for b, r in zip(back, recs, strict=True):
        assert np.array_equal(b.embedding, r[4]) and b.seconds == r[4].shape[0]
    # a second, independent reader: the tfrecord package (vahidk/tfrecord)
    from tfrecord.reader import sequence_loader

    loaded = list(sequence_loader(str(path), None, {"video_id": "byte", "start_time_seconds": "float", "labels": "int"}, {"audio_embedding": "byte"}))
    assert len(loaded) == len(recs)
    for (ctx, feats), r in zip(loaded, recs, strict=True):
        assert ctx["video_id"] == r[0].encode() and float(ctx["start_time_seconds"][0]) == r[1]
        assert tuple(int(v) for v in ctx["labels"]) == r[3]
        emb = np.stack([np.frombuffer(v, dtype=np.uint8) for v in feats["audio_embedding"]])
        assert np.array_equal(emb, r[4])


def test_a_flipped_payload_byte_is_named_and_the_rest_of_the_file_is_read(rng: np.random.Generator) -> None:
    recs = _records(4, rng)
    blob = bytearray(b"".join(frame(encode(*r)) for r in recs))
    second = len(frame(encode(*recs[0])))
    blob[second + 12 + 40] ^= 0x01  # inside record 1's payload
    out = list(read_records(bytes(blob), name="bal_train/5v.tfrecord"))
    assert [r.number for r in out] == [0, 1, 2, 3]
    assert out[1].payload is None and out[1].corrupt is not None
    assert re.search(r"bal_train/5v\.tfrecord: record 1 \(byte \d+\): payload CRC mismatch", out[1].corrupt)
    assert all(r.payload is not None for r in (out[0], out[2], out[3]))
    assert decode(out[3].payload).ytid == recs[3][0]


def test_a_flipped_length_byte_or_a_cut_file_stop_with_a_clear_error(rng: np.random.Generator) -> None:
    recs = _records(3, rng)
    blob = bytearray(b"".join(frame(encode(*r)) for r in recs))
    bad = bytearray(blob)
    first = len(frame(encode(*recs[0])))
    bad[first + 2] ^= 0x10  # record 1's length
    got = []
    with pytest.raises(TFRecordError, match=r"x.tfrecord: record 1 \(byte \d+\): the length field fails its CRC"):
        for r in read_records(bytes(bad), name="x.tfrecord"):
            got.append(r.number)
    assert got == [0]
    with pytest.raises(TFRecordError, match=r"truncated in record 2"):
        list(read_records(bytes(blob[:-5]), name="y.tfrecord"))
    with pytest.raises(TFRecordError, match=r"truncated at record 3"):
        list(read_records(bytes(blob) + b"\x01\x02", name="z.tfrecord"))


def test_decode_rejects_what_is_not_an_embedding_record() -> None:
    with pytest.raises(RecordError, match="not a SequenceExample|video_id"):
        decode(b"\xff\xff\xff")
    ex = _proto.sequence_example()
    ex.context.feature["video_id"].bytes_list.value.append(b"abcdefghijk")
    with pytest.raises(RecordError, match="start_time_seconds"):
        decode(ex.SerializeToString())
    with pytest.raises(RecordError, match="uint8"):
        encode("abcdefghijk", 0.0, 10.0, (1,), np.zeros((10, 127), dtype=np.uint8))


def test_quantisation_is_googles_and_dequantisation_inverts_it_within_4_over_255(rng: np.random.Generator) -> None:
    x = rng.uniform(-3.0, 3.0, (1000, 128))
    q = quantize(x)
    assert q.dtype == np.uint8 and q.min() == 0 and q.max() == 255
    assert quantize(np.array([-2.0, 0.0, 2.0])).tolist() == [0, 127, 255]  # truncation, as astype(uint8)
    err = np.abs(dequantize(q) - np.clip(x, -2, 2))
    assert float(err.max()) <= 4 / 255 + 1e-6


def test_the_vendored_proto_and_the_runtime_messages_agree() -> None:
    text = (Path(_proto.__file__).parent / "example.proto").read_text(encoding="utf-8")
    declared: dict[str, dict[str, int]] = {}
    for msg, body in re.findall(r"message (\w+) \{(.*?)\n\}", text, flags=re.DOTALL):
        declared[msg] = {name: int(num) for name, num in re.findall(r"(\w+) = (\d+)", body)}
    built = {m.name: {f.name: f.number for f in m.field} for m in _proto.file_descriptor_proto().message_type}
    # map<...> fields are spelled as repeated entry messages in descriptors; names and numbers agree
    assert declared == built
    buf = io.BytesIO()
    write_records(buf, [b"x"])
    assert len(buf.getvalue()) == 8 + 4 + 1 + 4


def test_records_laid_out_otherwise_still_decode_and_bad_seconds_are_refused(rng: np.random.Generator) -> None:
    from audioset_fewshot.release.records import embeddings_of

    emb = rng.integers(0, 256, (10, 128), dtype=np.uint8)
    standard = encode("abcdefghijk", 30.0, 40.0, (3, 7), emb)
    ex = _proto.sequence_example()
    ex.ParseFromString(standard)
    # a second feature list beside audio_embedding: not the usual layout, protobuf parses it whole
    mixed = _proto.sequence_example()
    mixed.CopyFrom(ex)
    mixed.feature_lists.feature_list["extra"].feature.add().float_list.value.append(1.5)
    back = decode(mixed.SerializeToString())
    assert back.ytid == "abcdefghijk" and back.labels == (3, 7) and np.array_equal(back.embedding, emb)
    # a second that holds two values is not an embedding
    bad = _proto.sequence_example()
    bad.CopyFrom(ex)
    bad.feature_lists.feature_list["audio_embedding"].feature[4].bytes_list.value.append(b"x" * 128)
    with pytest.raises(RecordError, match="second 4 holds \\[128, 128\\] bytes"):
        decode(bad.SerializeToString())
    # many records at once: the odd one is named, the others are read
    from audioset_fewshot.release.records import decode_parts

    parts = [decode_parts(standard), decode_parts(bad.SerializeToString()), decode_parts(standard)]
    seconds, stacked, failed = embeddings_of(parts)
    assert seconds.tolist() == [10, 0, 10] and stacked.shape == (20, 128) and [i for i, _ in failed] == [1]
    assert np.array_equal(stacked[10:], emb)
