"""Small origins in each official layout, written with the real libraries.

Clips are real AudioSet segments (tests/data/audioset-metadata); their audio is a
seeded synthetic signal.  Each builder writes the layout as the tools that make it do:
pyarrow for the Hugging Face mirror's parquet, tarfile for WebDataset shards, h5py for
PANN / PaSST packs, soundfile for the FLAC/WAV files of a directory.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from audioset_fewshot.metadata.segments import parse_line
from audioset_fewshot.plan import PlanEntry, SamplingPlan
from audioset_fewshot.validate import valid_youtube_id

DOG, SPEECH = "/m/0bt9lr", "/m/09x0r"
LIST_FILES = {"balanced": "balanced_train_segments.csv", "eval": "eval_segments.csv"}
HF_SPLIT = {"balanced": "bal_train", "eval": "eval", "unbalanced": "unbal_train"}


@dataclass(frozen=True)
class Seg:
    ytid: str
    start_s: float
    end_s: float
    labels: tuple[str, ...]
    source: str

    @property
    def clip_id(self) -> str:
        return f"{self.ytid}_{round(self.start_s * 1000)}"


def real_segments(metadata_dir: Path, mid: str, n: int, *, source: str = "balanced", skip: int = 0, max_start_s: float = 30.0) -> list[Seg]:
    """The first ``n`` segments of ``source`` that carry ``mid`` (after ``skip``), in file order,
    among those starting by ``max_start_s`` (the demo server then encodes short sources)."""
    out: list[Seg] = []
    seen = 0
    with open(metadata_dir / LIST_FILES[source], encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            parsed = parse_line(line, line_no=i)
            if parsed is None:
                continue
            ytid, start, end, labels = parsed
            if mid in labels and end - start == 10.0 and start <= max_start_s:
                seen += 1
                if seen > skip:
                    out.append(Seg(valid_youtube_id(ytid), start, end, tuple(sorted(labels)), source))
                if len(out) == n:
                    break
    assert len(out) == n, f"only {len(out)} segments of {mid} in {source}"
    return out


def make_plan(groups: dict[str, list[Seg]], target: int) -> SamplingPlan:
    """A plan whose candidates for each owner class are ``groups[mid]`` in that rank order."""
    entries = [PlanEntry(s.clip_id, s.ytid, s.start_s, s.end_s, mid, s.labels, s.source, k) for mid, segs in groups.items() for k, s in enumerate(segs)]
    params = {"seed": 0, "max_per_class": target, "sources": sorted({s.source for g in groups.values() for s in g}), "owner_policy": "first-label",
              "shard": None, "classes": sorted(groups)}  # fmt: skip
    return SamplingPlan.build(entries, {m: target for m in groups}, params=params)


def signal(ytid: str, *, sample_rate_hz: int, channels: int, seconds: float = 10.0) -> np.ndarray:
    """A seeded float signal (n, channels) in [-0.5, 0.5] for one ID."""
    rng = np.random.default_rng([int.from_bytes(ytid.encode(), "little") % (2**32), channels])
    t = np.arange(round(seconds * sample_rate_hz)) / sample_rate_hz
    f0 = 200.0 + 50.0 * rng.integers(0, 20)
    base = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.05 * rng.standard_normal(t.shape[0])
    cols = [base * (1.0 - 0.3 * c) for c in range(channels)]
    return np.stack(cols, axis=1).astype(np.float32)


def encode(x: np.ndarray, sample_rate_hz: int, *, fmt: str = "FLAC", subtype: str = "PCM_24") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sample_rate_hz, format=fmt, subtype=subtype)
    return buf.getvalue()


def flac_48k_24bit(seg: Seg, *, rate: int = 48000) -> bytes:
    return encode(signal(seg.ytid, sample_rate_hz=rate, channels=2), rate)


def write_hf_parquet(root: Path, segs: list[Seg], *, rows_per_group: int = 100, rate_of: dict[str, int] | None = None,
                     labels_of: dict[str, tuple[str, ...]] | None = None, file_rows: int = 1000) -> Path:  # fmt: skip
    """``root/data/<split>/<n>.parquet`` as the agkphysics mirror: video_id, audio{bytes,path}, labels, human_labels."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    audio_t = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    by_split: dict[str, list[Seg]] = {}
    for s in segs:
        by_split.setdefault(HF_SPLIT[s.source], []).append(s)
    for split, items in by_split.items():
        folder = root / "data" / split
        folder.mkdir(parents=True, exist_ok=True)
        for part, lo in enumerate(range(0, len(items), file_rows)):
            chunk = items[lo : lo + file_rows]
            table = pa.table({
                "video_id": pa.array([s.ytid for s in chunk], pa.string()),
                "audio": pa.array([{"bytes": flac_48k_24bit(s, rate=(rate_of or {}).get(s.ytid, 48000)), "path": f"audio/{split}/{s.ytid}.flac"} for s in chunk], audio_t),
                "labels": pa.array([list((labels_of or {}).get(s.ytid, s.labels)) for s in chunk], pa.list_(pa.string())),
                "human_labels": pa.array([[f"name of {m}" for m in s.labels] for s in chunk], pa.list_(pa.string())),
            })  # fmt: skip
            pq.write_table(table, folder / f"{part:05d}.parquet", row_group_size=rows_per_group)
    return root


def write_directory(root: Path, segs: list[Seg], *, naming: str, subdir: str = "balanced_train_segments", rate: int = 44100) -> list[Path]:
    """One file per clip, named as a common downloader names them."""
    folder = root / subdir
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in segs:
        stem = {
            "pann": f"Y{s.ytid}",
            "audiosetdl": f"{s.ytid}_{int(s.start_s * 1000)}_{int(s.end_s * 1000)}",
            "ast": f"{s.ytid}_{s.start_s:.3f}",
            "range": f"{s.ytid}_{s.start_s:.1f}-{s.end_s:.1f}",
            "fast": f"id_{s.ytid}",
        }[naming]
        ext = "wav" if naming in ("pann", "range") else "flac"
        p = folder / f"{stem}.{ext}"
        sf.write(p, signal(s.ytid, sample_rate_hz=rate, channels=1 if naming == "pann" else 2), rate, subtype="PCM_16" if ext == "wav" else "PCM_24")
        paths.append(p)
    return paths


def write_webdataset(root: Path, segs: list[Seg], *, shard_size: int = 3, folder: str = "20k/train", extra: list[tarfile.TarInfo] | None = None) -> list[Path]:
    """confit-style shards ``shard-NNNNN.tar`` of ``sample-NNNNNNNNN.wav`` (16 kHz) + ``.json``."""
    out_dir = root / folder
    out_dir.mkdir(parents=True, exist_ok=True)
    shards = []
    for n, lo in enumerate(range(0, len(segs), shard_size)):
        path = out_dir / f"shard-{n:05d}.tar"
        with tarfile.open(path, "w") as tar:
            for k, s in enumerate(segs[lo : lo + shard_size]):
                key = f"sample-{lo + k:09d}"
                wav = encode(signal(s.ytid, sample_rate_hz=16000, channels=1), 16000, fmt="WAV", subtype="PCM_16")
                meta = json.dumps({"id": s.ytid, "label": [f"name of {m}" for m in s.labels], "label_id": list(s.labels)}).encode()
                for name, data in ((f"{key}.wav", wav), (f"{key}.json", meta)):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
            for info in extra or ():
                tar.addfile(info, io.BytesIO(b"RIFF" + b"\0" * (info.size - 4)) if info.isfile() else None)
        shards.append(path)
    return shards


def write_pann_waveform(path: Path, segs: list[Seg], *, missing: int = 1, class_mids: list[str]) -> Path:
    """PANN's pack: audio_name S20, waveform int16 (N, 320000), target bool (N, 527), sample_rate 32000;
    ``missing`` pre-allocated rows with an empty name."""
    import h5py

    n = len(segs) + missing
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("audio_name", shape=(n,), dtype="S20")
        f.create_dataset("waveform", shape=(n, 320000), dtype=np.int16)
        f.create_dataset("target", shape=(n, 527), dtype=bool)
        f.attrs.create("sample_rate", data=32000, dtype=np.int32)
        for i, s in enumerate(segs):
            x = signal(s.ytid, sample_rate_hz=32000, channels=1)[:, 0]
            f["audio_name"][i] = f"Y{s.ytid}.wav".encode()
            f["waveform"][i] = (np.clip(x, -1, 1) * 32767.0).astype(np.int16)
            t = np.zeros(527, dtype=bool)
            for m in s.labels:
                if m in class_mids:
                    t[class_mids.index(m)] = True
            f["target"][i] = t
    return path


def write_pann_mp3(path: Path, segs: list[Seg], *, class_mids: list[str]) -> Path:
    """PaSST's pack: audio_name ``Y<id>.mp3``, mp3 vlen uint8 (the mp3 file), target packbits (N, 66)."""
    import h5py
    import imageio_ffmpeg

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("audio_name", shape=(len(segs),), dtype="S20")
        f.create_dataset("mp3", shape=(len(segs),), dtype=h5py.vlen_dtype(np.dtype("uint8")))
        f.create_dataset("target", shape=(len(segs), 66), dtype=np.uint8)
        for i, s in enumerate(segs):
            wav = encode(signal(s.ytid, sample_rate_hz=32000, channels=1), 32000, fmt="WAV", subtype="PCM_16")
            mp3 = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-f", "wav", "-i", "pipe:0", "-codec:a", "libmp3lame",
                                  "-ar", "32000", "-f", "mp3", "pipe:1"], input=wav, capture_output=True, check=True, timeout=60).stdout  # fmt: skip
            f["audio_name"][i] = f"Y{s.ytid}.mp3".encode()
            f["mp3"][i] = np.frombuffer(mp3, dtype=np.uint8)
            t = np.zeros(527, dtype=bool)
            for m in s.labels:
                if m in class_mids:
                    t[class_mids.index(m)] = True
            f["target"][i] = np.packbits(t)
    return path


def class_mids(metadata_dir: Path) -> list[str]:
    import csv

    with open(metadata_dir / "class_labels_indices.csv", encoding="utf-8") as fh:
        return [row["mid"] for row in csv.DictReader(fh)]
