"""The ``webdataset`` layout: tar shards of ``<key>.wav|flac`` + ``<key>.json``.

The confit mirror (``confit/audioset-16khz-wds``) stores ``sample-NNNNNNNNN.wav``
with a JSON carrying ``id`` (the YouTube ID), ``label`` and ``label_id``;
LAION-style shards store ``<ytid>.flac`` + ``<ytid>.json``.  Shards are
streamed with :mod:`tarfile` -- headers are read and the data of audio
members skipped -- and a clip is read later by seeking to its data offset:
nothing is ever extracted to disk and no shard is loaded whole.

Members are untrusted: an absolute name, a name with ``..``, a link or any
member that is not a regular file is rejected and listed in the report,
never read.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Sequence
from typing import Any

from audioset_fewshot.download.origins.base import IndexedOrigin, OriginAudio, OriginClip, OriginError, is_ytid, list_of_parts

AUDIO_EXTS = ("wav", "flac", "mp3", "ogg", "m4a", "opus")
MAX_JSON_BYTES = 1 << 20


def member_problem(member: tarfile.TarInfo) -> str | None:
    """Why a tar member may not be read (None when it is a plain file with a safe name)."""
    name = member.name
    if member.issym() or member.islnk():
        return f"link member {name!r} -> {member.linkname!r}"
    if not member.isfile():
        return f"member {name!r} is not a regular file"
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return f"absolute member name {name!r}"
    parts = name.replace("\\", "/").split("/")
    if any(p == ".." for p in parts):
        return f"member name {name!r} leaves the archive (..)"
    if "\x00" in name:
        return f"member name {name!r} contains a NUL byte"
    return None


def _split_key(name: str) -> tuple[str, str]:
    """WebDataset's rule: the key is the path up to the first dot of the base name."""
    folder, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower()


def _labels(meta: dict[str, Any], class_mids: Sequence[str] | None) -> tuple[str, ...] | None:
    """The MIDs a sample's JSON records: MIDs as they are, class numbers (confit's
    ``label_id``) through the order of ``class_labels_indices.csv``; None when neither."""
    for key in ("labels", "label_id", "mids"):
        value = meta.get(key)
        if not isinstance(value, list) or not value:
            continue
        if all(isinstance(v, str) and v.startswith(("/m/", "/t/", "/g/")) for v in value):
            return tuple(sorted(value))
        if class_mids and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < len(class_mids) for v in value):
            return tuple(sorted(class_mids[v] for v in value))
    return None


class WebDatasetOrigin(IndexedOrigin):
    """Tar shards read in place (see the module docstring)."""

    suffixes = (".tar",)

    def _index(self) -> list[OriginClip]:
        return [clip for shard in self.files() for clip in self._index_shard(shard)]

    def _index_shard(self, shard: str) -> list[OriginClip]:
        audio: dict[str, tuple[str, int, int]] = {}
        metas: dict[str, dict[str, Any]] = {}
        source = list_of_parts(shard.split("/")[:-1] + [shard.rsplit("/", 1)[-1].rsplit(".", 1)[0]])
        with self.fs.open(shard) as fh:
            try:
                with tarfile.open(fileobj=fh, mode="r:") as tar:
                    for member in tar:
                        problem = member_problem(member)
                        if problem is not None:
                            self.report.rejected.append((f"{shard}:{member.name}", problem))
                            continue
                        key, ext = _split_key(member.name)
                        if ext in AUDIO_EXTS:
                            audio[key] = (ext, member.offset_data, member.size)
                        elif ext == "json":
                            if member.size > MAX_JSON_BYTES:
                                self.report.rejected.append((f"{shard}:{member.name}", "JSON member over 1 MiB"))
                                continue
                            f = tar.extractfile(member)  # read into memory only, never to disk
                            try:
                                data = json.loads(f.read().decode("utf-8")) if f is not None else None
                            except (UnicodeDecodeError, ValueError):
                                data = None
                            if isinstance(data, dict):
                                metas[key] = data
                            else:
                                self.report.rejected.append((f"{shard}:{member.name}", "JSON member is not an object"))
            except tarfile.TarError as err:
                self.report.rejected.append((shard, f"not a readable tar file: {err}"))
                return []
        out: list[OriginClip] = []
        for key, (ext, offset, size) in sorted(audio.items()):
            meta = metas.get(key, {})
            ytid = meta.get("id") or meta.get("ytid") or meta.get("video_id")
            if not isinstance(ytid, str):
                base = key.rsplit("/", 1)[-1]
                ytid = base[1:] if len(base) == 12 and base.startswith("Y") else base
            if not is_ytid(ytid):
                self.report.unparseable.append(f"{shard}:{key}.{ext}")
                continue
            out.append(OriginClip(ytid=ytid, source=source, start_s=None, locator=(shard, ext, offset, size), labels=_labels(meta, self.class_mids)))
        return out

    def read(self, clip: OriginClip) -> OriginAudio:
        shard, ext, offset, size = clip.locator
        with self.fs.open(str(shard)) as fh:
            fh.seek(int(offset))
            data = fh.read(int(size))
        if len(data) != int(size):
            raise OriginError(f"origin {self.info.name}: shard {shard} is truncated")
        return OriginAudio(codec=str(ext), data=data)
