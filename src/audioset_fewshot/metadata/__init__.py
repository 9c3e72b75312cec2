"""AudioSet metadata: the ontology, the QA counts, and the segment lists.

```python
from audioset_fewshot.metadata import (
    load_ontology, load_quality, resolve_segment_files, read_segments, build_candidate_index,
)
onto = load_ontology()                 # packaged official ontology.json (or a path)
quality = load_quality()               # {mid: QualityCount(num_rated, num_true)}
files = resolve_segment_files(("balanced", "eval"), metadata_dir=DIR)   # {source: Path}
table = read_segments(files)           # SegmentTable over all given lists
index = build_candidate_index(table, mids)   # CandidateIndex
```

The packaged ``data/ontology.json`` (CC BY-SA 4.0) and ``data/qa_true_counts.csv``
(CC BY 4.0) are Google's official files, unchanged; see ``data/LICENSE-AudioSet.md``.
"""

from audioset_fewshot.metadata.fetch import (
    SEGMENT_FILE_NAMES,
    default_cache_dir,
    fetch_url,
    read_provenance,
    resolve_segment_files,
)
from audioset_fewshot.metadata.ontology import Ontology, OntologyClass, load_ontology, parse_ontology
from audioset_fewshot.metadata.quality import QualityCount, load_quality, parse_quality, quality_sha256
from audioset_fewshot.metadata.segments import (
    CandidateIndex,
    SegmentHeader,
    SegmentTable,
    build_candidate_index,
    parse_line,
    read_segments,
)

__all__ = [
    "SEGMENT_FILE_NAMES",
    "CandidateIndex",
    "Ontology",
    "OntologyClass",
    "QualityCount",
    "SegmentHeader",
    "SegmentTable",
    "build_candidate_index",
    "default_cache_dir",
    "fetch_url",
    "load_ontology",
    "load_quality",
    "parse_line",
    "parse_ontology",
    "parse_quality",
    "quality_sha256",
    "read_provenance",
    "read_segments",
    "resolve_segment_files",
]
