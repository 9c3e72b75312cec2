"""Read-only view of a root's download ledger (``ledger.sqlite``) for the manifest tools.

The rows come from :class:`audioset_fewshot.download.ledger.Ledger` opened
read-only, as its one typed record (:class:`~audioset_fewshot.download.ledger.LedgerRow`:
labels as a sorted tuple, tool versions as a dict, flags as booleans, the status
a ``ClipStatus``); this module turns a missing or unreadable ledger into the
manifest's own errors.
"""

from __future__ import annotations

from pathlib import Path

from audioset_fewshot.download.ledger import ClipStatus, Ledger, LedgerRow, class_status
from audioset_fewshot.errors import DownloadError, ManifestError, StageNotReadyError

STATUS_PENDING = ClipStatus.PENDING
STATUS_OK = ClipStatus.OK
STATUS_FAILED_PERMANENT = ClipStatus.FAILED_PERMANENT
STATUS_FAILED_TRANSIENT = ClipStatus.FAILED_TRANSIENT

__all__ = ["LedgerClip", "class_status", "read_ledger", "read_ledger_meta"]


# the ledger's one typed record (download.ledger.LedgerRow) under the name the manifest uses
LedgerClip = LedgerRow


def _open(path: Path) -> Ledger:
    if not path.exists():
        raise StageNotReadyError(f"no ledger at {path}; run 'audioset-fewshot download --root {path.parent}' first")
    try:
        return Ledger(path, readonly=True)
    except DownloadError as err:
        raise ManifestError(f"cannot open the ledger {path}: {err}") from err


def read_ledger(path: Path | str, *, in_plan_only: bool = True) -> list[LedgerClip]:
    """The rows of table ``clips`` (by default only those in the current plan),
    sorted by (owner_mid, rank, clip_id)."""
    path = Path(path)
    try:
        with _open(path) as led:
            rows = led.rows(in_plan=True if in_plan_only else None)
    except (DownloadError, TypeError) as err:  # a ledger of another version: columns differ
        raise ManifestError(f"cannot read table 'clips' of the ledger {path}: {err}") from err
    return rows


def read_ledger_meta(path: Path | str) -> dict[str, str]:
    """The ``meta`` table as ``{key: value}``."""
    path = Path(path)
    with _open(path) as led:
        return led.meta_items()
