"""Google's released VGGish embeddings of AudioSet as a feature source, without TensorFlow.

The release (``features.tar.gz``, 12,228 TFRecord files under
``audioset_v1_embeddings/{bal_train,eval,unbal_train}/``) holds one
``tensorflow.SequenceExample`` per segment: 128 uint8 values per second.  This
package reads it from the unpacked folder or straight from the ``.tar.gz``:

- :mod:`.tfrecord`  record framing with both CRC-32C checks;
- :mod:`.records`   the SequenceExample, decoded with ``protobuf`` (messages
  built at run time from ``example.proto``), quantise / dequantise;
- :mod:`.source`    folder or tar.gz, the split folders;
- :mod:`.index`     one parallel pass: where every segment's record is;
- :mod:`.store`     packed (N, 10, 128) uint8 + mask + index table, dequantised on read;
- :mod:`.labels`    ``class_labels_indices.csv``, checked against the ontology;
- :mod:`.obtain`    the pipeline's "obtain from the release" stage;
- :mod:`.writer`    this project's own writer of releases (tests, benchmarks).

For the import order the package counts as the download stage: it is where
clips come from when ``features.kind`` is ``vggish-release``.
"""

from __future__ import annotations

from audioset_fewshot.release.index import ReleaseIndex, index_release
from audioset_fewshot.release.records import (
    EmbeddingRecord,
    RecordError,
    decode,
    dequantize,
    encode,
    quantize,
)
from audioset_fewshot.release.source import Release, ReleaseError, open_release
from audioset_fewshot.release.store import (
    KIND,
    EmbeddingStore,
    load_embeddings,
    pack_rows,
)
from audioset_fewshot.release.tfrecord import (
    TFRecordError,
    masked_crc,
    read_file,
    read_records,
    write_records,
)
from audioset_fewshot.release.writer import Segment, write_release, write_tar_gz

__all__ = [
    "KIND",
    "EmbeddingRecord",
    "EmbeddingStore",
    "RecordError",
    "Release",
    "ReleaseError",
    "ReleaseIndex",
    "Segment",
    "TFRecordError",
    "decode",
    "dequantize",
    "encode",
    "index_release",
    "load_embeddings",
    "masked_crc",
    "open_release",
    "pack_rows",
    "quantize",
    "read_file",
    "read_records",
    "write_records",
    "write_release",
    "write_tar_gz",
]
