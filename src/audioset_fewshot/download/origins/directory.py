"""The ``directory`` layout: audio files whose names carry the YouTube ID.

Names are parsed from the right, because YouTube IDs contain ``_`` and ``-``
and may start with ``-``.  Accepted stems (any folder depth; the nearest
folder named after a segment list, e.g. ``balanced_train_segments`` or
``eval``, says which list the clip belongs to):

==============================  =====================================================
``Y{ytid}``                     PANN (``Y`` because IDs may start with ``-``)
``{ytid}``                      LAION and other plain copies
``id_{ytid}``                   Fast-Audioset-Download (m4a)
``{ytid}_{start_ms}_{end_ms}``  audiosetdl (integer milliseconds)
``{ytid}_{start}-{end}``        audioset-download (seconds, e.g. ``30.0-40.0``)
``{ytid}_{start}``              AST (``30.000``) and audioset-processing (seconds)
==============================  =====================================================

A name with a start time must match the planned segment; one without is joined
by ID.  Files with an audio extension whose stem fits none of these are
counted and listed, never guessed.
"""

from __future__ import annotations

import re

from audioset_fewshot.download.origins.base import IndexedOrigin, OriginAudio, OriginClip, is_ytid, list_of_parts

AUDIO_EXTS = ("wav", "flac", "mp3", "m4a", "ogg", "opus", "aac", "webm")
_ID = r"(?P<id>[A-Za-z0-9_-]{11})"
_NUM = r"[0-9]{1,7}(?:\.[0-9]{1,6})?"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(rf"{_ID}_(?P<a>[0-9]{{1,10}})_(?P<b>[0-9]{{1,10}})"), "ms"),
    (re.compile(rf"{_ID}_(?P<a>{_NUM})-(?P<b>{_NUM})"), "s-range"),
    (re.compile(rf"{_ID}_(?P<a>{_NUM})"), "s"),
    (re.compile(rf"id_{_ID}"), "id"),
    (re.compile(rf"Y{_ID}"), "id"),
    (re.compile(_ID), "id"),
)


def parse_clip_name(stem: str) -> tuple[str, float | None] | None:
    """``(ytid, start_s or None)`` of a file stem, or None when it fits no known name.

    The patterns are anchored at both ends and the ID is exactly 11 characters, so
    the numeric suffixes are taken from the right: ``a_b_c_d-e_f_30.000`` would need
    a 13-character ID and is refused."""
    for pattern, kind in _PATTERNS:
        m = pattern.fullmatch(stem)
        if m is None:
            continue
        ytid = m.group("id")
        if not is_ytid(ytid):
            continue
        if kind == "id":
            return ytid, None
        a = float(m.group("a"))
        if kind == "ms":
            b = float(m.group("b"))
            if b <= a:
                continue
            return ytid, a / 1000.0
        if kind == "s-range" and float(m.group("b")) <= a:
            continue
        return ytid, a
    return None


class DirectoryOrigin(IndexedOrigin):
    """Audio files in flat or nested folders (see the module docstring)."""

    suffixes = tuple(f".{ext}" for ext in AUDIO_EXTS)

    def _index(self) -> list[OriginClip]:
        out: list[OriginClip] = []
        for rel in self.files():
            stem, _, ext = rel.rsplit("/", 1)[-1].rpartition(".")
            parsed = parse_clip_name(stem)
            if parsed is None:
                self.report.unparseable.append(rel)
                continue
            ytid, start_s = parsed
            out.append(OriginClip(ytid=ytid, source=list_of_parts(rel.split("/")[:-1]), start_s=start_s, locator=(rel, ext.lower())))
        return out

    def read(self, clip: OriginClip) -> OriginAudio:
        rel, ext = clip.locator
        return OriginAudio(codec=str(ext), data=self.fs.read_bytes(str(rel)))
