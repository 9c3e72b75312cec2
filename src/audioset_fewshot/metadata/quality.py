"""AudioSet's quality assessment: ``qa_true_counts.csv`` (``label_id,num_rated,num_true``).

Google's raters checked up to 10 sampled segments per label; the QA rate of a
class is ``num_true / num_rated``.  A label with ``num_rated == 0`` has no
measured rate (``rate`` is ``None``).  The official file ships inside the
package unchanged (CC BY 4.0, see ``data/LICENSE-AudioSet.md``).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from audioset_fewshot._io import sha256_bytes
from audioset_fewshot.errors import MetadataError, ParseError
from audioset_fewshot.validate import is_mid

PACKAGED_QUALITY = "qa_true_counts.csv"
_HEADER = ["label_id", "num_rated", "num_true"]


@dataclass(frozen=True)
class QualityCount:
    num_rated: int
    num_true: int

    @property
    def rate(self) -> float | None:
        """``num_true / num_rated``; None when nothing was rated."""
        return self.num_true / self.num_rated if self.num_rated else None


def parse_quality(text: str, *, source: str) -> dict[str, QualityCount]:
    """Parse the text of a ``qa_true_counts.csv``; a bad row raises ParseError naming the line."""
    reader = csv.reader(io.StringIO(text))
    out: dict[str, QualityCount] = {}
    for row in reader:
        line = reader.line_num
        if line == 1:
            if [c.strip() for c in row] != _HEADER:
                raise ParseError(source, 1, f"expected the header {','.join(_HEADER)!r}, got {','.join(row)!r}")
            continue
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != 3:
            raise ParseError(source, line, f"expected 3 fields (label_id,num_rated,num_true), got {len(row)}")
        mid, rated_s, true_s = (c.strip() for c in row)
        if not is_mid(mid):
            raise ParseError(source, line, f"invalid class id {mid!r}")
        try:
            rated, true = int(rated_s), int(true_s)
        except ValueError as err:
            raise ParseError(source, line, f"num_rated and num_true must be integers, got {rated_s!r}, {true_s!r}") from err
        if rated < 0 or true < 0 or true > rated:
            raise ParseError(source, line, f"need 0 <= num_true <= num_rated, got num_rated={rated} num_true={true}")
        if mid in out:
            raise ParseError(source, line, f"duplicate class id {mid}")
        out[mid] = QualityCount(num_rated=rated, num_true=true)
    if reader.line_num == 0:
        raise ParseError(source, 1, "empty file: expected the header label_id,num_rated,num_true")
    return out


def _quality_bytes(path: Path | str | None) -> tuple[bytes, str]:
    if path is None:
        return resources.files("audioset_fewshot.metadata").joinpath("data", PACKAGED_QUALITY).read_bytes(), "<packaged qa_true_counts.csv>"
    p = Path(path)
    try:
        return p.read_bytes(), str(p)
    except OSError as err:
        raise MetadataError(f"cannot read quality file {p}: {err.strerror or err}") from err


def quality_sha256(path: Path | str | None = None) -> str:
    """sha256 of the packaged ``qa_true_counts.csv`` (or of ``path``): part of a plan's key."""
    return sha256_bytes(_quality_bytes(path)[0])


def load_quality(path: Path | str | None = None) -> dict[str, QualityCount]:
    """``{mid: QualityCount}`` from the packaged official file, or from ``path``."""
    data, source = _quality_bytes(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise MetadataError(f"{source}: not UTF-8 text ({err})") from err
    return parse_quality(text, source=source)
