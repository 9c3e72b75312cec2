"""``verify_processed(root, deep=)``: check every finished pack and feature store.

Each problem is a :class:`~audioset_fewshot.manifest.verify.Problem` of kind
``corrupt-array`` (path relative to the root), so ``audioset-fewshot verify``
reports clips and processed arrays in one list.  Without ``deep`` only what is
cheap is checked (sizes, index hashes); ``deep`` reads every array once and
checks its chunk hashes and, for float arrays, that every value is finite.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from audioset_fewshot._integrity import check_size
from audioset_fewshot.errors import IntegrityError
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.manifest.verify import CORRUPT_ARRAY, Problem
from audioset_fewshot.process._common import read_json
from audioset_fewshot.process.features import features_damage
from audioset_fewshot.process.pack import index_problems, pack_damage


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _finished(stage_dir: Path) -> list[tuple[Path, dict[str, object]]]:
    if not stage_dir.is_dir():
        return []
    out = []
    for folder in sorted(stage_dir.iterdir()):
        if folder.is_symlink() or not folder.is_dir() or folder.name.startswith("."):
            continue
        meta = read_json(folder / "meta.json")
        if meta is not None:
            out.append((folder, meta))
    return out


def _pack_size(folder: Path, meta: dict[str, object]) -> tuple[Path, int, str]:
    size = int(meta["rows"]) * int(meta["samples"]) * np.dtype(str(meta["dtype"])).itemsize  # type: ignore[call-overload]
    return folder / str(meta.get("audio_file", "")), size, "pack"


def _features_size(folder: Path, meta: dict[str, object]) -> tuple[Path, int, str]:
    shape = [int(s) for s in meta["shape"]]  # type: ignore[attr-defined]
    return folder / "mels.f32", 4 * int(np.prod(shape)), "features"


def verify_processed(root: Path | str, *, deep: bool = False) -> list[Problem]:
    """Every problem of the finished packs and feature stores under ``root`` (never raises for a bad file)."""
    from audioset_fewshot.errors import AudiosetFewshotError
    from audioset_fewshot.release.store import load_embeddings

    layout = DatasetLayout(Path(root))
    problems: list[Problem] = []
    stages = ((layout.pack_dir, _pack_size, pack_damage), (layout.features_dir, _features_size, features_damage))
    for stage_dir, sized, damage in stages:
        for folder, meta in _finished(stage_dir):
            details: list[str]
            if meta.get("kind") == "vggish-release":  # the released embeddings check themselves
                try:
                    load_embeddings(layout.root, folder, verify=deep)
                    details = []
                except AudiosetFewshotError as err:
                    details = [str(err)]
            else:
                try:
                    path, size, stage = sized(folder, meta)
                    check_size(path, size, fix=f"rebuild with 'audioset-fewshot process --stage {stage} --force'")
                    details = damage(folder, meta) if deep else index_problems(folder / "index.csv", meta.get("index_csv_sha256"))
                except (KeyError, TypeError, ValueError) as err:
                    details = [f"meta.json: unreadable ({err})"]
                except IntegrityError as err:
                    details = [str(err)]
            rel = _rel(folder, layout.root)
            problems += [Problem(rel, CORRUPT_ARRAY, d.replace(str(folder) + "/", "")) for d in details]
    return sorted(problems)


__all__ = ["verify_processed"]
