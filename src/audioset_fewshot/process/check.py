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


def verify_processed(root: Path | str, *, deep: bool = False) -> list[Problem]:
    """Every problem of the finished packs and feature stores under ``root`` (never raises for a bad file)."""
    layout = DatasetLayout(Path(root))
    problems: list[Problem] = []

    def add(folder: Path, details: list[str]) -> None:
        for d in details:
            problems.append(Problem(_rel(folder, layout.root), CORRUPT_ARRAY, d.replace(str(folder) + "/", "")))

    for folder, meta in _finished(layout.pack_dir):
        audio = folder / str(meta.get("audio_file", ""))
        try:
            size = int(meta["rows"]) * int(meta["samples"]) * np.dtype(str(meta["dtype"])).itemsize  # type: ignore[call-overload]
            check_size(audio, size, fix="rebuild with 'audioset-fewshot process --stage pack --force'")
        except (KeyError, TypeError, ValueError) as err:
            add(folder, [f"meta.json: unreadable ({err})"])
            continue
        except IntegrityError as err:
            add(folder, [str(err)])
            continue
        add(folder, pack_damage(folder, meta) if deep else index_problems(folder / "index.csv", meta.get("index_csv_sha256")))
    for folder, meta in _finished(layout.features_dir):
        if meta.get("kind") == "vggish-release":  # the released embeddings check themselves
            from audioset_fewshot.errors import AudiosetFewshotError
            from audioset_fewshot.release.store import load_embeddings

            try:
                load_embeddings(layout.root, folder, verify=deep)
            except AudiosetFewshotError as err:
                add(folder, [str(err)])
            continue
        try:
            shape = [int(s) for s in meta["shape"]]  # type: ignore[attr-defined]
            check_size(folder / "mels.f32", 4 * int(np.prod(shape)), fix="rebuild with 'audioset-fewshot process --stage features --force'")
        except (KeyError, TypeError, ValueError) as err:
            add(folder, [f"meta.json: unreadable ({err})"])
            continue
        except IntegrityError as err:
            add(folder, [str(err)])
            continue
        add(folder, features_damage(folder, meta) if deep else index_problems(folder / "index.csv", meta.get("index_csv_sha256")))
    return sorted(problems)


__all__ = ["verify_processed"]
