"""Where the segment lists come from: a local folder, or the official URLs through a cache.

``resolve_segment_files(("balanced", "eval"), metadata_dir=DIR)`` uses local
copies with the official file names.  Without ``metadata_dir`` each list is
fetched once from its URL (``config.OFFICIAL_URLS`` unless ``urls`` says
otherwise) into the cache (``$XDG_CACHE_HOME/audioset-fewshot/metadata``, else
``~/.cache/audioset-fewshot/metadata``), with a provenance file beside it::

    balanced_train_segments.csv
    balanced_train_segments.csv.provenance.json   {"url", "size", "sha256", "fetched_at", ...}

Fetching is atomic and resumable: bytes go to ``.<name>.part`` (a known name,
so a later call resumes it with an HTTP ``Range`` request), and only a complete
download is moved over the final name with ``os.replace``.  Every network wait
is bounded: the connection by ``min(CONNECT_TIMEOUT_S, timeout_s)``, the
response and each read by ``timeout_s``, and the attempts by ``retries``; a
failed attempt is logged at once, saying what it waited for.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import http.client
import json
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from audioset_fewshot._io import atomic_write_json, fsync_dir, sha256_file
from audioset_fewshot._progress import progress_bar
from audioset_fewshot.config import OFFICIAL_URLS, SOURCES
from audioset_fewshot.errors import MetadataError, UsageError, closest

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 30.0  # the response and each read
CONNECT_TIMEOUT_S = 10.0  # the TCP (and TLS) connection, at most

SCHEMA_VERSION = 1
# official file name of each list; the second name is the shared test copy of the unbalanced tail
SEGMENT_FILE_NAMES: dict[str, tuple[str, ...]] = {
    "balanced": ("balanced_train_segments.csv",),
    "eval": ("eval_segments.csv",),
    "unbalanced": ("unbalanced_train_segments.csv", "unbalanced_train_segments_part.csv"),
}
PROVENANCE_SUFFIX = ".provenance.json"
_CHUNK = 1 << 16
_CONTENT_RANGE_RE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/audioset-fewshot/metadata`` (``~/.cache`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "audioset-fewshot" / "metadata"


def _check_sources(sources: Iterable[str]) -> tuple[str, ...]:
    if isinstance(sources, str):
        sources = (sources,)
    out = tuple(dict.fromkeys(sources))
    if not out:
        raise UsageError("no segment lists requested; expected some of " + ", ".join(SOURCES))
    for s in out:
        if s not in SOURCES:
            sugg = closest(s, SOURCES)
            hint = f" Did you mean {sugg[0]!r}?" if sugg else ""
            raise UsageError(f"unknown segment list {s!r}; expected one of {', '.join(SOURCES)}.{hint}")
    return out


def resolve_segment_files(
    sources: Iterable[str],
    *,
    metadata_dir: Path | str | None = None,
    cache_dir: Path | str | None = None,
    urls: Mapping[str, str] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    retries: int = 3,
) -> dict[str, Path]:
    """``{source: path}`` of the requested segment lists (in ``config.SOURCES`` order).

    With ``metadata_dir``: the official file names in that folder (missing file
    -> MetadataError naming it).  Otherwise: fetched into ``cache_dir`` from
    ``urls`` (defaults: the official release URLs) on first use; a cached file
    whose provenance matches its URL is reused without touching the network."""
    wanted = _check_sources(sources)
    ordered = [s for s in SOURCES if s in wanted]
    if metadata_dir is not None:
        folder = Path(metadata_dir)
        if not folder.is_dir():
            raise MetadataError(f"metadata folder {folder} does not exist; pass a folder holding the AudioSet segment lists")
        out: dict[str, Path] = {}
        for s in ordered:
            for name in SEGMENT_FILE_NAMES[s]:
                if (folder / name).is_file():
                    out[s] = folder / name
                    break
            else:
                raise MetadataError(
                    f"segment list {s!r} not found: expected {folder / SEGMENT_FILE_NAMES[s][0]} "
                    f"(download it from {OFFICIAL_URLS[s]}, or drop {s!r} from the sources)"
                )
        return out
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    url_map = dict(OFFICIAL_URLS)
    if urls:
        url_map.update(urls)
    out = {}
    for s in ordered:
        url = url_map.get(s)
        if not url:
            raise UsageError(f"no URL configured for segment list {s!r} (config key 'metadata.urls.{s}')")
        out[s] = fetch_url(url, cache / SEGMENT_FILE_NAMES[s][0], timeout_s=timeout_s, retries=retries)
    return out


def read_provenance(path: Path | str) -> dict[str, Any] | None:
    """The provenance record beside a fetched file, or None."""
    prov = Path(str(path) + PROVENANCE_SUFFIX)
    try:
        data = json.loads(prov.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def partial_path(dest: Path) -> Path:
    """The known name of an interrupted download of ``dest`` (resumed by the next call;
    ``<partial>.url`` records the URL it came from)."""
    return dest.with_name("." + dest.name + ".part")


def fetch_url(
    url: str, dest: Path | str, *, timeout_s: float = DEFAULT_TIMEOUT_S, retries: int = 3, force: bool = False, lock_wait_s: float | None = None
) -> Path:
    """Download ``url`` to ``dest`` atomically and resumably; write the provenance file.

    A no-op when ``dest`` exists with a provenance record for the same URL and
    size (``force=True`` fetches again).  Another process fetching the same file
    is waited for up to ``lock_wait_s`` (default: as long as our own attempts
    could take)."""
    dest = Path(dest)
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise UsageError(f"cannot fetch {url!r}: only http:// and https:// URLs are supported")
    if not force and _cached(dest, url):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    wait_s = (timeout_s + 5.0) * (max(retries, 0) + 1) if lock_wait_s is None else lock_wait_s
    with _download_lock(dest, wait_s=wait_s):
        if not force and _cached(dest, url):  # another process fetched it while we waited
            return dest
        return _fetch_locked(url, dest, timeout_s=timeout_s, retries=retries)


def _cached(dest: Path, url: str) -> bool:
    prov = read_provenance(dest)
    if dest.is_file() and prov and prov.get("url") == url and prov.get("size") == dest.stat().st_size:
        log.debug("using cached %s (fetched %s)", dest, prov.get("fetched_at"))
        return True
    return False


@contextlib.contextmanager
def _download_lock(dest: Path, *, wait_s: float) -> Iterator[None]:
    """One fetcher per file: two processes appending to one partial file would corrupt it.

    ``flock`` is released by the kernel when a process dies, so a stale lock file
    never blocks a later run."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no cross-process lock
        yield
        return
    lock_path = dest.with_name("." + dest.name + ".lock")
    with open(lock_path, "a+b") as fh:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise MetadataError(
                        f"another process has been fetching {dest.name} for over {wait_s:.0f} s (lock {lock_path}); let it finish, then run again"
                    ) from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _fetch_locked(url: str, dest: Path, *, timeout_s: float, retries: int) -> Path:
    part = partial_path(dest)
    # a partial file is resumed only from the URL it came from
    part_url = part.with_name(part.name + ".url")
    if part.exists() and (not part_url.exists() or part_url.read_text(encoding="utf-8") != url):
        log.info("discarding %s: it is not a partial download of %s", part, url)
        part.unlink()
    part_url.write_text(url, encoding="utf-8")
    last_err: Exception | None = None
    for attempt in range(max(retries, 0) + 1):
        try:
            total = _download_to(url, part, timeout_s=timeout_s)
            break
        except _Transient as err:
            last_err = err
            log.warning("fetching %s: %s (attempt %d of %d; the partial file is kept and resumed)", url, err, attempt + 1, retries + 1)
            if attempt < retries:
                time.sleep(min(0.2 * 2**attempt, 5.0))
    else:
        raise MetadataError(
            f"could not fetch {url} after {retries + 1} attempts: {last_err}. "
            "Check the network (or use local copies with --metadata-dir DIR); a rerun resumes the partial download"
        ) from last_err
    size = part.stat().st_size
    if total is not None and size != total:  # pragma: no cover - _download_to guarantees it
        raise MetadataError(f"fetched {size} bytes of {url} but the server announced {total}")
    with open(part, "rb+") as fh:
        os.fsync(fh.fileno())
    digest = sha256_file(part)
    os.replace(part, dest)  # atomic: readers see the old file or the complete new one
    fsync_dir(dest.parent)
    with contextlib.suppress(FileNotFoundError):
        part_url.unlink()
    atomic_write_json(
        Path(str(dest) + PROVENANCE_SUFFIX),
        {
            "schema_version": SCHEMA_VERSION,
            "url": url,
            "size": size,
            "sha256": digest,
            "fetched_at": _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
            "file": dest.name,
        },
    )
    log.info("fetched %s -> %s (%d bytes, sha256 %s)", url, dest, size, digest[:12])
    return dest


class _Transient(Exception):
    """A network failure worth retrying (the partial file is kept)."""


class _ReadTimeoutConnection(http.client.HTTPConnection):
    """Connects within the request's timeout, then waits ``read_timeout_s`` per read.
    Put before ``HTTPSConnection`` among the bases, it bounds the TLS socket's reads too."""

    read_timeout_s = DEFAULT_TIMEOUT_S

    def connect(self) -> None:
        super().connect()
        if self.sock is not None:
            self.sock.settimeout(self.read_timeout_s)


def _opener(read_timeout_s: float) -> urllib.request.OpenerDirector:
    """urllib with two timeouts: ``urlopen(timeout=)`` bounds the connection, then every
    read (the response, the body) waits at most ``read_timeout_s``."""

    class HTTP(_ReadTimeoutConnection):
        pass

    class HTTPS(_ReadTimeoutConnection, http.client.HTTPSConnection):
        pass

    HTTP.read_timeout_s = HTTPS.read_timeout_s = read_timeout_s

    class HTTPHandler(urllib.request.HTTPHandler):
        def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
            return self.do_open(HTTP, req)

    class HTTPSHandler(urllib.request.HTTPSHandler):
        def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
            return self.do_open(HTTPS, req, context=self._context)  # type: ignore[attr-defined]

    return urllib.request.build_opener(HTTPHandler(), HTTPSHandler())


def _where(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


def _download_to(url: str, part: Path, *, timeout_s: float) -> int | None:
    """Append the missing bytes of ``url`` to ``part``; return the total size if known."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "audioset-fewshot (metadata fetch)", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    req = urllib.request.Request(url, headers=headers)
    connect_s = min(CONNECT_TIMEOUT_S, timeout_s)
    try:
        resp = _opener(timeout_s).open(req, timeout=connect_s)
    except urllib.error.URLError as err:
        if isinstance(err, urllib.error.HTTPError):
            raise _http_failure(err, url, part, have) from err
        if isinstance(err.reason, TimeoutError):
            raise _Transient(f"no connection to {_where(url)} within {connect_s:g} s (connect timeout)") from err
        raise _Transient(f"cannot connect to {_where(url)}: {err.reason}") from err
    except TimeoutError as err:
        raise _Transient(f"connected to {_where(url)}, but no response within {timeout_s:g} s (read timeout)") from err
    except (OSError, http.client.HTTPException) as err:
        raise _Transient(f"{_where(url)}: {err}") from err
    return _read_body(resp, url, part, have, timeout_s=timeout_s)


def _http_failure(err: urllib.error.HTTPError, url: str, part: Path, have: int) -> Exception:
    """The exception an HTTP error status becomes: transient (retried) or final."""
    if err.code == 416 and have:
        # our partial file is not a prefix the server recognises: start over
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        return _Transient(f"server refused to resume at byte {have}; restarting")
    if err.code in (408, 429) or err.code >= 500:
        return _Transient(f"HTTP {err.code} {err.reason}")
    return MetadataError(f"cannot fetch {url}: HTTP {err.code} {err.reason}")


def _read_body(resp: http.client.HTTPResponse, url: str, part: Path, have: int, *, timeout_s: float) -> int | None:
    """Append the response body to ``part``; return the total size if known."""
    with resp:
        status = getattr(resp, "status", 200)
        total: int | None = None
        mode = "wb"
        offset = 0
        if status == 206 and have:
            m = _CONTENT_RANGE_RE.match(resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != have:
                with contextlib.suppress(FileNotFoundError):
                    part.unlink()
                raise _Transient(f"server resumed at an unexpected range {resp.headers.get('Content-Range')!r}; restarting")
            total = int(m.group(3)) if m.group(3) != "*" else None
            mode, offset = "ab", have
        elif status == 200:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        else:
            raise _Transient(f"unexpected HTTP status {status}")
        got = offset
        with (
            open(part, mode) as fh,
            progress_bar(total=total, desc=f"fetch {part.name.strip('.').removesuffix('.part')}", unit="B", unit_scale=True, initial=offset) as bar,
        ):
            try:
                while True:
                    chunk = resp.read(_CHUNK)
                    if not chunk:
                        break
                    fh.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
            except TimeoutError as err:
                fh.flush()
                raise _Transient(f"{_where(url)} sent no data for {timeout_s:g} s after {got} bytes (read timeout)") from err
            except (OSError, http.client.HTTPException) as err:
                fh.flush()
                raise _Transient(f"connection lost after {got} bytes ({err})") from err
            finally:
                fh.flush()
    if total is not None and got < total:
        raise _Transient(f"connection closed after {got} of {total} bytes")
    if total is not None and got > total:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        raise _Transient(f"received {got} bytes but the server announced {total}; restarting")
    return total if total is not None else got
