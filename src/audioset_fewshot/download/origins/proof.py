"""The one proof every clip from a local origin goes through, as a YouTube clip does.

:func:`clip_samples` is the shared path from an origin's audio to the stored
samples: decode (soundfile for WAV/FLAC; ffmpeg for mp3, m4a, ogg, opus),
mix to mono as the *mean* of the channels, resample with soxr to the stored
rate, quantise to 16 bit, then exactly ``duration_s * sample_rate_hz``
samples: a shortfall of at most :data:`PAD_TOLERANCE_S` is padded with zeros
(counted), a longer one is ``short``; extra samples are trimmed (counted).  An
all-zero clip is ``silent``; bytes that do not decode are ``corrupt``.

:func:`prove_origin_clip` writes the result atomically (temp file beside the
destination, fsync, ``os.replace``) and returns a ``ClipResult``; a failure is
a ``ClipResult`` with ``ok=False`` and its reason, never an exception.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from audioset_fewshot._io import TMP_PREFIX, atomic_path, sha256_file
from audioset_fewshot.download import reasons as R
from audioset_fewshot.download.origins.base import OriginAudio, OriginInfo

if TYPE_CHECKING:
    from audioset_fewshot.download.fetch import ClipResult

PAD_TOLERANCE_S = 0.1
SOUNDFILE_CODECS = ("wav", "flac")
FFMPEG_CODECS = ("mp3", "m4a", "ogg", "opus", "aac", "webm")
FFMPEG_TIMEOUT_S = 60.0


class ProofFailure(Exception):
    """Internal: the clip failed the proof with ``reason`` (turned into data by the callers)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class ClipSamples:
    """The stored form of a clip: int16 mono ``samples`` at ``sample_rate_hz`` plus the facts."""

    samples: np.ndarray
    sample_rate_hz: int
    source_sample_rate_hz: int
    source_channels: int
    source_duration_s: float
    padded_samples: int
    trimmed_samples: int


@functools.cache
def proof_tool_versions() -> dict[str, str]:
    import soundfile
    import soxr

    return {"soundfile": str(soundfile.__version__), "libsndfile": str(soundfile.__libsndfile_version__), "soxr": str(soxr.__version__)}


def _ffmpeg_decode(data: bytes, codec: str, tmp_dir: Path | None) -> tuple[np.ndarray, int]:
    """Decode with ffmpeg to float WAV (both temp files beside the clip's destination)."""
    import soundfile as sf

    from audioset_fewshot.download.fetch import ffmpeg_exe

    folder = str(tmp_dir) if tmp_dir is not None else None
    if tmp_dir is not None:
        tmp_dir.mkdir(parents=True, exist_ok=True)
    fd_in, src = tempfile.mkstemp(prefix=TMP_PREFIX + "origin.", suffix="." + codec, dir=folder)
    fd_out, out = tempfile.mkstemp(prefix=TMP_PREFIX + "origin.", suffix=".wav", dir=folder)
    os.close(fd_out)
    try:
        with os.fdopen(fd_in, "wb") as fh:
            fh.write(data)
        cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-protocol_whitelist", "file", "-i", src,
               "-map", "0:a:0", "-vn", "-map_metadata", "-1", "-c:a", "pcm_f32le", "-f", "wav", out]  # fmt: skip
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=FFMPEG_TIMEOUT_S, check=False, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as err:
            raise ProofFailure(R.CORRUPT, f"ffmpeg took over {FFMPEG_TIMEOUT_S:.0f} s to decode the {codec} bytes") from err
        if proc.returncode != 0:
            tail = proc.stderr.decode(errors="replace").strip()[-300:]
            raise ProofFailure(R.CORRUPT, f"the {codec} bytes do not decode: {tail or 'ffmpeg failed'}")
        try:
            x, sr = sf.read(out, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as err:
            raise ProofFailure(R.CORRUPT, f"the {codec} bytes do not decode: {err}") from err
        return x, int(sr)
    finally:
        for p in (src, out):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)


def decode(audio: OriginAudio, *, tmp_dir: Path | None = None) -> tuple[np.ndarray, int]:
    """``(samples float32 (n, channels), sample_rate_hz)`` of an origin's clip."""
    import soundfile as sf

    if audio.samples is not None:
        if audio.sample_rate_hz is None or audio.sample_rate_hz <= 0:
            raise ProofFailure(R.CORRUPT, "samples without a sample rate")
        x = np.asarray(audio.samples, dtype=np.float32)
        return (x[:, None] if x.ndim == 1 else x), int(audio.sample_rate_hz)
    if audio.data is None or not audio.data:
        raise ProofFailure(R.CORRUPT, f"empty {audio.codec} data")
    codec = audio.codec.lower()
    if codec in SOUNDFILE_CODECS:
        try:
            x, sr = sf.read(io.BytesIO(audio.data), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
            raise ProofFailure(R.CORRUPT, f"the {codec} bytes do not decode: {err}") from err
        return x, int(sr)
    if codec in FFMPEG_CODECS:
        return _ffmpeg_decode(audio.data, codec, tmp_dir)
    raise ProofFailure(R.CORRUPT, f"unknown codec {audio.codec!r}")


def clip_samples(audio: OriginAudio, *, sample_rate_hz: int, duration_s: float, tmp_dir: Path | None = None) -> ClipSamples:
    """The shared decode / mono (mean) / soxr / int16 / exact-length path (module docstring).
    Raises :class:`ProofFailure` with reason ``corrupt``, ``short`` or ``silent``."""
    import soxr

    x, sr = decode(audio, tmp_dir=tmp_dir)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ProofFailure(R.CORRUPT, "no audio samples")
    if not np.all(np.isfinite(x)):
        raise ProofFailure(R.CORRUPT, "non-finite samples")
    channels = int(x.shape[1])
    if channels > 1:  # the mean of the channels, summed column by column (a reduce over a short axis is slow)
        acc = x[:, 0].astype(np.float64)
        for c in range(1, channels):
            acc += x[:, c]
        mono = (acc / channels).astype(np.float32)
    else:
        mono = x[:, 0]
    y = soxr.resample(mono, sr, sample_rate_hz, quality="HQ") if sr != sample_rate_hz else mono
    q = np.clip(np.rint(np.asarray(y, dtype=np.float64) * 32768.0), -32768, 32767).astype(np.int16)
    expected = round(duration_s * sample_rate_hz)
    got = int(q.shape[0])
    if got < expected - round(PAD_TOLERANCE_S * sample_rate_hz):
        raise ProofFailure(R.SHORT, f"short: {got / sample_rate_hz:.3f} s of audio for a {duration_s:.3f} s segment")
    padded = max(0, expected - got)
    trimmed = max(0, got - expected)
    out = q[:expected]
    if padded:
        out = np.concatenate([out, np.zeros(padded, dtype=np.int16)])
    if not np.any(out):
        raise ProofFailure(R.SILENT, "silent: the clip is digital silence (all samples zero)")
    return ClipSamples(np.ascontiguousarray(out), sample_rate_hz, sr, channels, x.shape[0] / sr, padded, trimmed)


def prove_origin_clip(
    audio: OriginAudio, *, info: OriginInfo, ytid: str, start_s: float, end_s: float, dest: Path, sample_rate_hz: int, audio_format: str
) -> ClipResult:
    """Prove ``audio`` and write it to ``dest`` atomically; a ``ClipResult`` either way."""
    import soundfile as sf

    from audioset_fewshot.download.fetch import ClipResult

    t0 = time.monotonic()
    base: dict[str, Any] = {"ytid": ytid, "start_s": start_s, "end_s": end_s, "sample_rate_hz": sample_rate_hz, "audio_format": audio_format,
            "codec": audio.codec, "origin": info.name, "origin_revision": info.revision, "tool_versions": dict(proof_tool_versions())}  # fmt: skip
    try:
        clip = clip_samples(audio, sample_rate_hz=sample_rate_hz, duration_s=end_s - start_s, tmp_dir=dest.parent)
    except ProofFailure as fail:
        return ClipResult(
            ok=False, reason=fail.reason, permanent=True, message=f"origin {info.name}: {fail.message}", elapsed_s=round(time.monotonic() - t0, 4), **base
        )
    with atomic_path(dest, suffix="." + audio_format) as tmp:
        sf.write(str(tmp), clip.samples, sample_rate_hz, subtype="PCM_16", format="FLAC" if audio_format == "flac" else "WAV")
        digest = sha256_file(tmp)
    rms = float(np.sqrt(np.mean((clip.samples.astype(np.float64) / 32768.0) ** 2)))
    return ClipResult(
        ok=True, path=dest, sha256=digest, samples=int(clip.samples.shape[0]), container=audio.codec,
        source_sample_rate_hz=clip.source_sample_rate_hz, source_channels=clip.source_channels,
        source_duration_s=round(clip.source_duration_s, 6), trim_start_s=start_s, trim_end_s=start_s + clip.samples.shape[0] / sample_rate_hz,
        padded_samples=clip.padded_samples, trimmed_samples=clip.trimmed_samples,
        rms_dbfs=round(20.0 * math.log10(rms), 3) if rms > 0 else None, elapsed_s=round(time.monotonic() - t0, 4), **base,
    )  # fmt: skip
