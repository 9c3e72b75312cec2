"""What the demo server serves: a source per YouTube ID (:class:`SourceSpec`, or one
derived from the ID, :func:`default_spec`) in YouTube's two audio formats (:data:`FORMATS`),
with the encoder settings that are part of the media cache key (:func:`encoder_args`).

Each source chooses how its files are laid out, so a reader can be tried on every
container it may meet: the m4a/AAC file as YouTube's DASH audio (fragments with a
``sidx`` index at the front, the default), as a progressive file (``faststart``: one
``moov`` index at the front) or as fragments without any index (``fragmented``); the
WebM/Opus file with its Cues at the front (the default) or at the end (``end``, the
muxer's default).  ``report_channels=False`` leaves ``audioChannels`` out of the
player response, as YouTube does for some formats; ``report_duration=False`` leaves the
length out (a reader must find the end in the file itself)."""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass

import numpy as np

from audioset_fewshot.demo import signals
from audioset_fewshot.demo.faults import FAULTS
from audioset_fewshot.errors import UsageError
from audioset_fewshot.validate import valid_youtube_id

CC_BY = "Creative Commons Attribution license (reuse allowed)"
STANDARD_LICENSE = "Standard YouTube License"

# The itag of the m4a/AAC file, which the default selector bestaudio[ext=m4a] takes.
DEFAULT_ITAG = 140


SHORT_SOURCE_S = 3.0

_AAC = ("-c:a", "aac", "-b:a", "128k")
_OPUS = ("-c:a", "libopus", "-b:a", "128k", "-ar", "48000")  # Opus is always 48 kHz on YouTube
# Encoder settings per container layout (part of the cache key).
M4A_LAYOUTS: dict[str, tuple[str, ...]] = {
    # Fragmented MP4 like YouTube's DASH audio: an empty moov, ~1 s fragments, a global
    # sidx at the front and no mfra at the end, so a reader seeks with one range request.
    "dash": (*_AAC, "-movflags", "+empty_moov+default_base_moof+global_sidx+skip_trailer", "-frag_duration", "1000000", "-f", "mp4"),
    # A progressive file: one moov (the whole sample index, with the AAC priming edit list) at the front.
    "faststart": (*_AAC, "-movflags", "+faststart", "-f", "mp4"),
    # ~1 s fragments and no index at all (no sidx, no mfra): a reader finds a time by walking the moofs.
    "fragmented": (*_AAC, "-movflags", "+empty_moov+default_base_moof+skip_trailer", "-frag_duration", "1000000", "-f", "mp4"),
}
WEBM_CUES: dict[str, tuple[str, ...]] = {
    "front": (*_OPUS, "-cues_to_front", "1", "-f", "webm"),  # seeking needs no tail read
    "end": (*_OPUS, "-f", "webm"),  # the muxer's default: Cues after the clusters
}

_SPEC_STREAM = 202


@dataclass(frozen=True)
class SourceSpec:
    """What one demo video is: its class (which sets the timbre), length, format and metadata."""

    class_key: str
    duration_s: float = 30.0
    sample_rate_hz: int = 44100
    channels: int = 2
    title: str = ""
    uploader: str = "Demo Uploader"
    channel_id: str = "UCdemo0000000000000000"
    upload_date: str = "20150101"  # YYYYMMDD
    license: str = STANDARD_LICENSE
    fault: str | None = None
    m4a_layout: str = "dash"  # a key of M4A_LAYOUTS
    webm_cues: str = "front"  # a key of WEBM_CUES
    report_channels: bool = True  # False: the player response leaves audioChannels out
    report_duration: bool = True  # False: the player response gives no length (lengthSeconds, approxDurationMs)

    def __post_init__(self) -> None:
        if not (0.05 <= self.duration_s <= 3 * 3600):
            raise UsageError(f"SourceSpec.duration_s must be between 0.05 and 10800 s, got {self.duration_s}")
        if self.sample_rate_hz not in (44100, 48000):
            raise UsageError(f"SourceSpec.sample_rate_hz must be 44100 or 48000, got {self.sample_rate_hz}")
        if self.channels not in (1, 2):
            raise UsageError(f"SourceSpec.channels must be 1 or 2, got {self.channels}")
        if not re.fullmatch(r"\d{8}", self.upload_date):
            raise UsageError(f"SourceSpec.upload_date must be YYYYMMDD, got {self.upload_date!r}")
        if self.fault is not None and self.fault not in FAULTS:
            raise UsageError(f"unknown fault {self.fault!r}; known faults: {', '.join(sorted(FAULTS))}")
        if self.m4a_layout not in M4A_LAYOUTS:
            raise UsageError(f"SourceSpec.m4a_layout must be one of {', '.join(M4A_LAYOUTS)}, got {self.m4a_layout!r}")
        if self.webm_cues not in WEBM_CUES:
            raise UsageError(f"SourceSpec.webm_cues must be one of {', '.join(WEBM_CUES)}, got {self.webm_cues!r}")


def default_spec(ytid: str, *, seed: int = 0) -> SourceSpec:
    """The spec of an ID that is not in the catalog: derived from the ID and the seed only."""
    valid_youtube_id(ytid)
    rng = np.random.default_rng([seed, _SPEC_STREAM, signals.stable_int(ytid)])
    n_classes = 8
    cls = int(rng.integers(0, n_classes))
    day = int(rng.integers(0, 5000))
    date = time.strftime("%Y%m%d", time.gmtime(1136073600 + day * 86400))
    return SourceSpec(
        class_key=f"demo-class-{cls}",
        duration_s=float(rng.choice([10.0, 20.0, 30.0])),
        sample_rate_hz=int(rng.choice([44100, 48000])),
        channels=2,
        title=f"Demo video {ytid}",
        uploader=f"Demo Channel {int(rng.integers(0, 50))}",
        channel_id="UC" + hashlib.sha256(ytid.encode()).hexdigest()[:22],
        upload_date=date,
        license=CC_BY if rng.random() < 0.3 else STANDARD_LICENSE,
    )


@dataclass(frozen=True)
class MediaFormat:
    itag: int
    ext: str
    mime_type: str
    acodec: str
    bitrate_bps: int


FORMATS: dict[int, MediaFormat] = {
    140: MediaFormat(140, "m4a", 'audio/mp4; codecs="mp4a.40.2"', "mp4a.40.2", 128_000),
    251: MediaFormat(251, "webm", 'audio/webm; codecs="opus"', "opus", 128_000),
}


def _format_of(fmt: int | str) -> MediaFormat:
    for f in FORMATS.values():
        if str(fmt) in (str(f.itag), f.ext):
            return f
    raise UsageError(f"unknown media format {fmt!r}: use 140/'m4a' or 251/'webm'")


def encoder_args(f: MediaFormat, spec: SourceSpec) -> tuple[str, ...]:
    """ffmpeg's codec and muxer options for the ``f`` file of ``spec`` (part of the cache key)."""
    return M4A_LAYOUTS[spec.m4a_layout] if f.ext == "m4a" else WEBM_CUES[spec.webm_cues]
