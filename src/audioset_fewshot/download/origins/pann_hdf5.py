"""The ``pann-hdf5`` layout: PANN's waveform packs and the PaSST-style mp3 packs.

* waveform variant (PANN ``pack_waveforms_to_hdf5``): ``audio_name`` (N,) bytes
  ``Y<ytid>.wav``, ``waveform`` (N, L) int16 at the file's ``sample_rate``
  attribute (32 kHz, L = 320000), ``target`` (N, 527) bool.  Rows are
  pre-allocated for every line of the segment list: an empty ``audio_name``
  is a missing clip and is skipped.
* mp3 variant (PaSST ``create_h5pymp3_dataset``): ``audio_name`` (N,)
  ``Y<ytid>.mp3`` (unbalanced: ``NN/Y<ytid>.mp3``), ``mp3`` (N,) variable
  length uint8 (the mp3 file), ``target`` (N, 66) uint8 = ``packbits`` of the
  527 labels.

The segment list comes from the file name (``balanced_train.h5``,
``eval_segments_mp3.hdf``, ``unbalanced_train_part07.h5``).  A file whose
datasets have the wrong shapes or types is rejected with the reason, never
read.  Labels are compared with the segment list only when the class order
(``class_labels_indices.csv``) is known.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from audioset_fewshot.download.origins._fs import OriginFS
from audioset_fewshot.download.origins.base import IndexedOrigin, OriginAudio, OriginClip, OriginError, OriginInfo, is_ytid, list_of_name

H5_EXTS = (".h5", ".hdf5", ".hdf")
N_CLASSES = 527


def _name_to_ytid(raw: Any) -> str | None:
    name = raw.decode("utf-8", errors="replace") if isinstance(raw, (bytes, np.bytes_)) else str(raw)
    name = name.rsplit("/", 1)[-1]
    stem = name.rsplit(".", 1)[0]
    if len(stem) == 12 and stem.startswith("Y") and is_ytid(stem[1:]):
        return stem[1:]
    return None


class PannHdf5Origin(IndexedOrigin):
    """HDF5 packs read with h5py (see the module docstring)."""

    suffixes = H5_EXTS

    def __init__(self, fs: OriginFS, info: OriginInfo, *, class_mids: Sequence[str] | None = None) -> None:
        super().__init__(fs, info, class_mids=class_mids)
        self._open: dict[str, Any] = {}

    def _h5(self, rel: str) -> Any:
        import h5py

        f = self._open.get(rel)
        if f is None:
            try:
                f = h5py.File(self.fs.open(rel) if self.fs.local_root is None else self.fs.full(rel), "r")
            except OSError as err:
                raise OriginError(f"origin {self.info.name}: {rel} is not a readable HDF5 file ({err})") from err
            self._open[rel] = f
        return f

    @staticmethod
    def shape_problem(f: Any) -> str | None:
        """Why an HDF5 file is not a PANN/PaSST pack (None when its shapes fit)."""
        import h5py

        if "audio_name" not in f or not isinstance(f["audio_name"], h5py.Dataset):
            return "no dataset 'audio_name'"
        names = f["audio_name"]
        if names.ndim != 1:
            return f"'audio_name' has shape {names.shape}, expected (N,)"
        n = names.shape[0]
        if "target" not in f:
            return "no dataset 'target'"
        target = f["target"]
        if "waveform" in f:
            wav = f["waveform"]
            if wav.ndim != 2 or wav.shape[0] != n or wav.dtype != np.int16:
                return f"'waveform' is {wav.dtype} {wav.shape}, expected int16 ({n}, samples)"
            rate = f.attrs.get("sample_rate")
            if rate is None or int(np.asarray(rate).item()) <= 0:
                return "no positive 'sample_rate' attribute"
            if target.shape != (n, N_CLASSES):
                return f"'target' has shape {target.shape}, expected ({n}, {N_CLASSES})"
            return None
        if "mp3" in f:
            mp3 = f["mp3"]
            if mp3.ndim != 1 or mp3.shape[0] != n or h5py.check_vlen_dtype(mp3.dtype) is None:
                return f"'mp3' is {mp3.dtype} {mp3.shape}, expected variable-length uint8 ({n},)"
            if target.shape != (n, (N_CLASSES + 7) // 8):
                return f"'target' has shape {target.shape}, expected ({n}, {(N_CLASSES + 7) // 8}) bit-packed"
            return None
        return "neither a 'waveform' nor an 'mp3' dataset"

    def _index(self) -> list[OriginClip]:
        out: list[OriginClip] = []
        for rel in self.files():
            try:
                f = self._h5(rel)
            except OriginError as err:
                self.report.rejected.append((rel, str(err)))
                continue
            problem = self.shape_problem(f)
            if problem is not None:
                self.report.rejected.append((rel, f"not a PANN/PaSST pack: {problem}"))
                continue
            source = list_of_name(rel.rsplit("/", 1)[-1])
            kind = "waveform" if "waveform" in f else "mp3"
            names = f["audio_name"][:]
            for row, raw in enumerate(names):
                if not len(raw):
                    continue  # a pre-allocated row of a clip PANN could not download
                ytid = _name_to_ytid(raw)
                if ytid is None:
                    self.report.unparseable.append(f"{rel}[{row}]")
                    continue
                out.append(OriginClip(ytid=ytid, source=source, start_s=None, locator=(rel, kind, row)))
        return out

    def labels(self, clip: OriginClip) -> tuple[str, ...] | None:
        if self.class_mids is None or len(self.class_mids) != N_CLASSES:
            return None
        rel, kind, row = clip.locator
        t = np.asarray(self._h5(str(rel))["target"][int(row)])
        bits = np.unpackbits(t.astype(np.uint8))[:N_CLASSES].astype(bool) if kind == "mp3" else t.astype(bool)
        return tuple(sorted(self.class_mids[i] for i in np.flatnonzero(bits)))

    def read(self, clip: OriginClip) -> OriginAudio:
        rel, kind, row = clip.locator
        f = self._h5(str(rel))
        if kind == "mp3":
            return OriginAudio(codec="mp3", data=np.asarray(f["mp3"][int(row)], dtype=np.uint8).tobytes())
        wav = np.asarray(f["waveform"][int(row)], dtype=np.int16)
        rate = int(np.asarray(f.attrs["sample_rate"]).item())
        # PANN's int16_to_float32: x / 32767
        return OriginAudio(codec="pcm_s16", samples=(wav.astype(np.float32) / 32767.0)[:, None], sample_rate_hz=rate)

    def close(self) -> None:
        for f in self._open.values():
            f.close()
        self._open.clear()
