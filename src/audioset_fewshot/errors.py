"""One exception root for everything this package raises on purpose.

Every error carries an exit code for the CLI: 1 for our errors (something
failed), 2 for usage and configuration errors (the user asked for something
that cannot be).  Messages say what is wrong, where, and how to fix it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, as a shell reports a process ended by SIGTERM


class AudiosetFewshotError(Exception):
    """Root of every error raised on purpose by audioset_fewshot."""

    exit_code: int = EXIT_ERROR


class Terminated(KeyboardInterrupt):  # noqa: N818 - it is an interruption, like KeyboardInterrupt
    """SIGTERM arrived (a scheduler preempting the job); handled exactly like Ctrl-C."""


class UsageError(AudiosetFewshotError):
    """The user asked for something that cannot be (bad flag value, bad name)."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """A configuration file or value is malformed; the message names the key path."""


class UnknownNameError(UsageError):
    """A class name (or other name) that does not exist; suggests the closest ones."""

    def __init__(self, kind: str, name: str, suggestions: Iterable[str] = ()) -> None:
        self.kind = kind
        self.name = name
        self.suggestions = tuple(suggestions)
        hint = ""
        if self.suggestions:
            hint = " Did you mean: " + ", ".join(repr(s) for s in self.suggestions) + "?"
        super().__init__(f"unknown {kind} {name!r}.{hint}")


class ValidationError(AudiosetFewshotError):
    """Input data (a CSV row, a manifest line, an id) failed validation."""


class MetadataError(AudiosetFewshotError):
    """AudioSet metadata could not be fetched, read or parsed."""


class ParseError(MetadataError):
    """A malformed line in a metadata or manifest file; names file and line."""

    def __init__(self, path: object, line: int, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        super().__init__(f"{self.path}:{line}: {reason}")


class DownloadError(AudiosetFewshotError):
    """The download stage cannot go on (not a per-clip failure: those are data)."""


class LockError(AudiosetFewshotError):
    """Another process holds the dataset root."""


class DiskFullError(AudiosetFewshotError):
    """Free disk fell below the configured minimum; a rerun continues."""


class StorageError(AudiosetFewshotError):
    """The filesystem refused a write (full, over quota, read-only); names the path and the fix."""


class ManifestError(AudiosetFewshotError):
    """A manifest is malformed, hostile, or does not match the files."""


class ProcessingError(AudiosetFewshotError):
    """A post-processing stage cannot go on."""


class EngineError(AudiosetFewshotError):
    """The Dask cluster could not be started or reached, or it went away mid-run."""


class IntegrityError(AudiosetFewshotError):
    """An artifact's bytes differ from what was recorded when it was written (size,
    content hash) or hold values that must not be there (NaN, inf); names the file."""


class StageNotReadyError(UsageError):
    """A stage was asked to run before the stage it depends on produced its artifact."""


class ArtifactError(StageNotReadyError):
    """A stage's artifact on disk is malformed (its metadata is not what this version
    wrote) or stale (another schema version); names the file and how to rebuild it."""


def closest(name: str, candidates: Iterable[str], *, n: int = 3, cutoff: float = 0.5) -> list[str]:
    """Return up to ``n`` candidates closest to ``name`` (case-insensitive)."""
    pool = list(candidates)
    lowered = {c.lower(): c for c in pool}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=cutoff)
    return [lowered[h] for h in hits]
