"""The demo server's media cache: one encoded file per (source, format, source fault).

A source's audio is synthesised on first use from its :class:`~.media.SourceSpec`
(:mod:`.signals`), encoded with the imageio-ffmpeg binary and kept on disk under
a name keyed by everything that changes the bytes, so a second server (or a
second run) over the same cache folder encodes nothing.  Concurrent first
requests of one source wait for a single encoder.  The source faults
(:data:`~.faults.SOURCE_FAULTS`) shape the file: ``silence`` (digital silence),
``short`` (:data:`~.media.SHORT_SOURCE_S` long) and ``corrupt`` (seeded garbage
of the clean file's size).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audioset_fewshot._io import atomic_path, atomic_write_bytes
from audioset_fewshot.demo import signals
from audioset_fewshot.demo.media import SHORT_SOURCE_S, MediaFormat, SourceSpec, _format_of, encoder_args
from audioset_fewshot.errors import AudiosetFewshotError

_CORRUPT_STREAM = 203


class MediaServerError(AudiosetFewshotError):
    """The demo media server could not start or could not generate media."""


@dataclass(frozen=True)
class SourceAudio:
    """What is encoded for one source under a source fault: its spec, length and whether it is silent."""

    spec: SourceSpec
    duration_s: float
    silent: bool


def source_audio(spec: SourceSpec, fault: str | None) -> SourceAudio:
    """The audio a source fault leaves of ``spec`` (``short`` cuts it, ``silence`` mutes it)."""
    duration = min(spec.duration_s, SHORT_SOURCE_S) if fault == "short" else spec.duration_s
    return SourceAudio(spec, duration, fault == "silence")


class MediaCache:
    """Encoded media per (ID, format, source fault) under ``cache_dir`` (see module docstring).

    ``spec_of(ytid)`` gives the source of an ID (the server's catalog or the derived spec)."""

    def __init__(self, cache_dir: Path | str, *, seed: int, spec_of: Callable[[str], SourceSpec]) -> None:
        self.cache_dir = Path(cache_dir)
        self.seed = int(seed)
        self._spec_of = spec_of
        self._lock = threading.Lock()
        self._gen_locks: dict[str, threading.Lock] = {}

    def target(self, ytid: str, f: MediaFormat, fault: str | None) -> tuple[Path, SourceAudio]:
        """Where the file of ``ytid`` in format ``f`` under ``fault`` lives, and what it holds."""
        audio = source_audio(self._spec_of(ytid), fault)
        spec = audio.spec
        key_obj = {
            "generator": signals.GENERATOR_VERSION,
            "ytid": ytid,
            "seed": self.seed,
            "class_key": spec.class_key,
            "duration_s": audio.duration_s,
            "sample_rate_hz": spec.sample_rate_hz,
            "channels": spec.channels,
            "silent": audio.silent,
            "itag": f.itag,
            "encoder": encoder_args(f, spec),
        }
        key = hashlib.sha256(json.dumps(key_obj, sort_keys=True).encode()).hexdigest()[:20]
        if fault == "corrupt":
            return self.cache_dir / f"{ytid}-{f.itag}-{key}-corrupt.bin", audio
        return self.cache_dir / f"{ytid}-{f.itag}-{key}.{f.ext}", audio

    def cached_path(self, ytid: str, fmt: int | str, *, fault: str | None = None) -> Path | None:
        """The encoded file if it is already generated, else None (never generates)."""
        path = self.target(ytid, _format_of(fmt), fault)[0]
        return path if path.is_file() else None

    def path(self, ytid: str, fmt: int | str, *, fault: str | None = None) -> Path:
        """Path of the encoded file of ``ytid`` (generated and cached on first use)."""
        f = _format_of(fmt)
        target = self.target(ytid, f, fault)[0]
        if fault == "corrupt":
            clean = self.path(ytid, fmt, fault=None)
            if not target.exists():
                rng = np.random.default_rng([self.seed, _CORRUPT_STREAM, signals.stable_int(ytid)])
                atomic_write_bytes(target, rng.integers(0, 256, clean.stat().st_size, dtype=np.uint8).tobytes())
            return target
        if not target.exists():
            self.generate(ytid, fault, (f,))
        return target

    def prepare(self, jobs: Iterable[tuple[str, str | None]], *, formats: Iterable[int | str], workers: int | None = None) -> None:
        """Generate the media of ``(ytid, source fault)`` jobs ahead of time, one source per worker."""
        fmts = tuple(_format_of(f) for f in formats)
        n = workers or max(1, min(8, os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=n) as pool:
            futures: list[Future[object]] = []
            for ytid, fault in jobs:
                if fault == "corrupt":  # derived from the clean file
                    futures.extend(pool.submit(self.path, ytid, f.itag, fault=fault) for f in fmts)
                else:
                    futures.append(pool.submit(self.generate, ytid, fault, fmts))
            for fut in futures:
                fut.result()

    def generate(self, ytid: str, fault: str | None, formats: tuple[MediaFormat, ...]) -> None:
        """Encode the missing ``formats`` of one source, synthesising its signal once."""
        with self._lock:
            lock = self._gen_locks.setdefault(f"{ytid}/{fault}", threading.Lock())
        with lock:  # one generator per source: concurrent first requests wait for it
            todo = [(f, *self.target(ytid, f, fault)) for f in formats]
            todo = [t for t in todo if not t[1].exists()]
            if not todo:
                return
            src = todo[0][2]
            spec = src.spec
            if src.silent:
                audio = np.zeros((int(round(src.duration_s * spec.sample_rate_hz)), spec.channels), dtype=np.float32)
            else:
                audio = signals.synthesize(
                    spec.class_key, ytid, seed=self.seed, duration_s=src.duration_s, sample_rate_hz=spec.sample_rate_hz, channels=spec.channels
                )
            raw = audio.astype("<f4", copy=False).tobytes()
            del audio
            for f, target, _src in todo:
                self._encode(ytid, raw, src, f, target)

    def _encode(self, ytid: str, raw: bytes, src: SourceAudio, f: MediaFormat, target: Path) -> None:
        import imageio_ffmpeg

        spec = src.spec
        codec = list(encoder_args(f, spec))
        cmd = [
            imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "f32le", "-ar", str(spec.sample_rate_hz), "-ac", str(spec.channels), "-i", "pipe:0",
            "-map_metadata", "-1", "-fflags", "+bitexact", *codec,
        ]  # fmt: skip
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        timeout = 60.0 + src.duration_s
        with atomic_path(target, suffix="." + f.ext) as tmp:
            try:
                proc = subprocess.run([*cmd, str(tmp)], input=raw, capture_output=True, timeout=timeout, check=False)
            except subprocess.TimeoutExpired as err:
                raise MediaServerError(f"encoding {ytid} ({f.ext}) took over {timeout:.0f} s") from err
            if proc.returncode != 0:
                raise MediaServerError(f"ffmpeg could not encode {ytid} ({f.ext}): {proc.stderr.decode(errors='replace')[-500:]}")


__all__ = ["MediaCache", "MediaServerError", "SourceAudio", "source_audio"]
