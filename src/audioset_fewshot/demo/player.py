"""The demo server's watch answer: a JSON document shaped like YouTube's player response.

``playabilityStatus`` (OK, or a playability fault with YouTube's own reason
texts), ``videoDetails``, ``microformat.playerMicroformatRenderer`` (with the
demo's ``license`` extension) and ``streamingData.adaptiveFormats``, one entry
per :data:`~.media.FORMATS` format.  It is read by
:mod:`audioset_fewshot.download.ytdlp_demo`.
"""

from __future__ import annotations

import struct
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from audioset_fewshot.demo.cache import SourceAudio
from audioset_fewshot.demo.faults import PLAYABILITY_FAULTS
from audioset_fewshot.demo.media import FORMATS


def player_response(
    ytid: str,
    audio: SourceAudio,
    fault: str | None,
    *,
    media_url: Callable[[int], str],
    cached_path: Callable[[int], Path | None],
    client: str | None = None,
) -> dict[str, Any]:
    """The player response of ``ytid`` serving ``audio`` under ``fault``.

    ``media_url(itag)`` is the media URL of a format; ``cached_path(itag)`` its file when
    it is already encoded (``contentLength``, and a DASH file's ``initRange`` and
    ``indexRange``, are given only then: a watch request never waits for an encoder).  ``client``: the player client that asked (the
    ``sabr-only`` fault spares ``mweb``)."""
    spec, duration = audio.spec, audio.duration_s
    date = spec.upload_date
    iso_date = f"{date[:4]}-{date[4:6]}-{date[6:]}"
    length = str(int(round(duration)))
    details = {
        "videoId": _other_video(ytid) if fault == "ip-blocked" else ytid,
        "title": spec.title or f"Demo video {ytid}",
        "author": spec.uploader,
        "channelId": spec.channel_id,
        **({"lengthSeconds": length} if spec.report_duration else {}),
        "isLiveContent": False,
        "isPrivate": fault == "private",
    }
    micro = {
        "playerMicroformatRenderer": {
            "title": {"simpleText": details["title"]},
            "ownerChannelName": spec.uploader,
            "externalChannelId": spec.channel_id,
            "uploadDate": iso_date,
            "publishDate": iso_date,
            **({"lengthSeconds": length} if spec.report_duration else {}),
            "license": spec.license,  # demo extension: YouTube shows it on the watch page
            "availableCountries": ["DE", "FR", "JP"] if fault == "geo-blocked" else [],
        }
    }
    doc: dict[str, Any] = {"videoDetails": details, "microformat": micro}
    if fault in PLAYABILITY_FAULTS:
        p = PLAYABILITY_FAULTS[fault]
        status: dict[str, Any] = {"status": p["status"], "reason": p["reason"]}
        pemr: dict[str, Any] = {"reason": {"simpleText": p["reason"]}}
        if "subreason" in p:
            pemr["subreason"] = {"runs": [{"text": p["subreason"]}]}
        status["errorScreen"] = {"playerErrorMessageRenderer": pemr}
        doc["playabilityStatus"] = status
        return doc
    doc["playabilityStatus"] = {"status": "OK", "playableInEmbed": True}
    formats = []
    for f in FORMATS.values():
        path = cached_path(f.itag)
        size = None if path is None else path.stat().st_size
        if fault == "js-challenge":
            where: dict[str, str] = {"signatureCipher": urllib.parse.urlencode({"s": "demo-challenge", "sp": "sig", "url": media_url(f.itag)})}
        elif fault == "sabr-only" and client != "mweb":
            where = {}
        else:
            where = {"url": media_url(f.itag)}
        formats.append(
            {
                "itag": f.itag,
                **where,
                "mimeType": f.mime_type,
                "bitrate": f.bitrate_bps,
                **({"contentLength": str(size)} if size is not None else {}),
                **(_dash_ranges(path) if f.ext == "m4a" and spec.m4a_layout == "dash" else {}),
                **({"approxDurationMs": str(int(round(duration * 1000)))} if spec.report_duration else {}),
                "audioQuality": "AUDIO_QUALITY_MEDIUM",
                "audioSampleRate": str(spec.sample_rate_hz if f.ext == "m4a" else 48000),
                **({"audioChannels": spec.channels} if spec.report_channels else {}),
            }
        )
    doc["streamingData"] = {"expiresInSeconds": "21540", "adaptiveFormats": formats}
    if fault == "sabr-only":
        doc["streamingData"]["serverAbrStreamingUrl"] = media_url(next(iter(FORMATS.values())).itag).split("?")[0] + "?sabr=1"
    return doc


def _dash_ranges(path: Path | None) -> dict[str, dict[str, str]]:
    """YouTube's ``initRange`` (``ftyp`` + ``moov``) and ``indexRange`` (the ``sidx``) of a
    DASH m4a, inclusive byte offsets as strings.  A file not encoded yet gets both keys
    with no offsets (a demo liberty: the layout is known, the offsets are not)."""
    if path is None:
        return {"initRange": {}, "indexRange": {}}
    with open(path, "rb") as fh:
        head = fh.read(64 * 1024)
    pos = 0
    while pos + 8 <= len(head):
        size, kind = struct.unpack_from(">I4s", head, pos)
        if kind == b"sidx":
            return {"initRange": {"start": "0", "end": str(pos - 1)}, "indexRange": {"start": str(pos), "end": str(pos + size - 1)}}
        if size < 8 or kind in (b"moof", b"mdat"):
            break
        pos += size
    return {"initRange": {}, "indexRange": {}}


def _other_video(ytid: str) -> str:
    """Another video's ID (an answer for the wrong video: what a blocked address gets)."""
    other = ytid[::-1]
    return other if other != ytid else "A" * 11


__all__ = ["player_response"]
