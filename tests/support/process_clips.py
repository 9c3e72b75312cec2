"""A small dataset root with real FLAC clips: tones and noise, digital silence,
a quiet clip, a clipped clip, a 3 s clip, a corrupt and a truncated file, a
missing file, a clip of the Silence class, a 44.1 kHz stereo clip."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from audioset_fewshot._io import sha256_file
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.manifest import ManifestRow, write_clips

SR = 16000
SPEECH, DOG, MUSIC, SILENCE = "/m/09x0r", "/m/0bt9lr", "/m/04rlf", "/m/028v0c"


@dataclass(frozen=True)
class Clip:
    ytid: str
    owner: str
    kind: str  # tone | noise | silence | quiet | clipped | short | corrupt | truncated | missing | stereo44k
    start_s: float = 30.0
    labels: tuple[str, ...] = ()


def _signal(kind: str, rng: np.random.Generator, seconds: float = 10.0, sr: int = SR) -> np.ndarray:
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    if kind in ("tone", "short", "truncated"):
        f = rng.uniform(200, 3000)
        return (0.3 * np.sin(2 * np.pi * f * t) + 0.05 * rng.standard_normal(n)).astype(np.float32)
    if kind == "noise":
        return (0.2 * rng.standard_normal(n)).clip(-1, 1).astype(np.float32)
    if kind == "silence":
        return np.zeros(n, dtype=np.float32)
    if kind == "quiet":
        return (1e-4 * rng.standard_normal(n)).astype(np.float32)  # about -80 dBFS
    if kind == "clipped":
        return np.clip(3.0 * np.sin(2 * np.pi * 440 * t), -1.0, 1.0).astype(np.float32)
    raise ValueError(kind)


def write_clip(path: Path, kind: str, rng: np.random.Generator) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "missing":
        return
    if kind == "corrupt":
        path.write_bytes(b"fLaC" + rng.bytes(5000))
        return
    if kind == "stereo44k":
        t = np.arange(441000) / 44100
        x = (0.4 * np.sin(2 * np.pi * rng.uniform(200, 3000) * t)).astype(np.float32)  # band-limited: resampling keeps it
        sf.write(str(path), np.stack([x, 0.5 * x], axis=1), 44100, subtype="PCM_16", format="FLAC")
        return
    seconds = 3.0 if kind == "short" else 10.0
    sf.write(str(path), _signal(kind, rng, seconds), SR, subtype="PCM_16", format="FLAC")
    if kind == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])


def make_root(root: Path, clips: list[Clip], *, seed: int = 7) -> DatasetLayout:
    layout = DatasetLayout(root)
    rows = []
    for i, c in enumerate(clips):
        rng = np.random.default_rng([seed, i])
        path = layout.clip_path(c.owner, c.ytid, c.start_s)
        write_clip(path, c.kind, rng)
        sha = sha256_file(path) if path.exists() else "0" * 64
        seconds = 3.0 if c.kind == "short" else 10.0
        rows.append(
            ManifestRow(
                owner_mid=c.owner,
                ytid=c.ytid,
                start_s=c.start_s,
                end_s=c.start_s + 10.0,
                labels=tuple(sorted({c.owner, *c.labels})),
                source="balanced",
                path=layout.clip_relpath(c.owner, c.ytid, c.start_s),
                sample_rate_hz=SR,
                samples=int(seconds * SR),
                sha256=sha,
                itag="140",
                codec="aac",
                license="",
                channel_id="",
            )
        )
    write_clips(layout.clips_csv, rows)
    return layout


STANDARD = [
    Clip("aaaaaaaaaa1", SPEECH, "tone"),
    Clip("aaaaaaaaaa2", SPEECH, "noise", labels=(MUSIC,)),
    Clip("aaaaaaaaaa3", SPEECH, "tone", start_s=0.0),
    Clip("bbbbbbbbbb1", DOG, "tone"),
    Clip("bbbbbbbbbb2", DOG, "silence"),
    Clip("bbbbbbbbbb3", DOG, "short"),
    Clip("bbbbbbbbbb4", DOG, "corrupt"),
    Clip("-bbbbbbbbb5", DOG, "noise"),
    Clip("cccccccccc1", MUSIC, "quiet"),
    Clip("cccccccccc2", MUSIC, "clipped"),
    Clip("cccccccccc3", MUSIC, "truncated"),
    Clip("cccccccccc4", MUSIC, "missing"),
    Clip("cccccccccc5", MUSIC, "stereo44k"),
    Clip("dddddddddd1", SILENCE, "silence"),
    Clip("dddddddddd2", SILENCE, "quiet"),
]
