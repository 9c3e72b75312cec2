"""Every path under a dataset root, in one place.

No other module builds paths under a root by hand; they ask the layout.  The
tree, in data-flow order::

    ROOT/
      config.yaml            resolved configuration of the last run
      .lock                  one run per root (advisory lock)
      plan/plan.csv          the seeded sampling plan (plan/plan.json: parameters + hash)
      ledger.sqlite          download state (WAL)
      release/obtained.csv   clips looked up in the VGGish embedding release (features.kind vggish-release)
      .cache/clip-stat.json  size, mtime and sha256 of each clip when last hashed
      audio/<mid_slug>/<ytid>_<start_ms>.flac
      manifest/              clips.csv, by_class/<mid_slug>.csv, unavailable.csv,
                             lock.json, provenance.csv
      processed/             clean.csv, pack/, features/, norm/, per-file/
      splits.json
      episodes/<name>.jsonl
      eval/results.json
      report/index.html (+ PNGs)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from audioset_fewshot.validate import mid_slug, valid_youtube_id


def start_ms(start_s: float) -> int:
    """Segment start in integer milliseconds (AudioSet times have 3 decimals)."""
    return int(round(start_s * 1000))


def clip_stem(ytid: str, start_s: float) -> str:
    """``<ytid>_<start_ms>``: unique per segment, safe as a file name."""
    return f"{valid_youtube_id(ytid)}_{start_ms(start_s)}"


@dataclass(frozen=True)
class DatasetLayout:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # -- configuration and locking -------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.root / "config.yaml"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

    # -- plan ------------------------------------------------------------------------
    @property
    def plan_dir(self) -> Path:
        return self.root / "plan"

    @property
    def plan_file(self) -> Path:
        return self.plan_dir / "plan.csv"

    @property
    def plan_meta_file(self) -> Path:
        return self.plan_dir / "plan.json"

    # -- download --------------------------------------------------------------------
    @property
    def ledger_file(self) -> Path:
        return self.root / "ledger.sqlite"

    @property
    def clip_stat_cache(self) -> Path:
        return self.root / ".cache" / "clip-stat.json"

    @property
    def audio_dir(self) -> Path:
        return self.root / "audio"

    def clip_relpath(self, owner_mid: str, ytid: str, start_s: float, *, ext: str = "flac") -> str:
        """Relative POSIX path of a clip, as written in manifests."""
        return f"audio/{mid_slug(owner_mid)}/{clip_stem(ytid, start_s)}.{ext}"

    def clip_path(self, owner_mid: str, ytid: str, start_s: float, *, ext: str = "flac") -> Path:
        return self.root / self.clip_relpath(owner_mid, ytid, start_s, ext=ext)

    # -- the VGGish embedding release (features.kind: vggish-release) -------------------
    @property
    def release_dir(self) -> Path:
        return self.root / "release"

    @property
    def release_obtained_csv(self) -> Path:
        """Every planned clip looked up in the release: found (and where) or why not."""
        return self.release_dir / "obtained.csv"

    @property
    def release_obtained_json(self) -> Path:
        return self.release_dir / "obtained.json"

    @property
    def release_clips_csv(self) -> Path:
        """The manifest of a root whose clips come from the release (no audio files)."""
        return self.manifest_dir / "release_clips.csv"

    # -- manifest ----------------------------------------------------------------------
    @property
    def manifest_dir(self) -> Path:
        return self.root / "manifest"

    @property
    def clips_csv(self) -> Path:
        return self.manifest_dir / "clips.csv"

    @property
    def by_class_dir(self) -> Path:
        return self.manifest_dir / "by_class"

    @property
    def unavailable_csv(self) -> Path:
        return self.manifest_dir / "unavailable.csv"

    @property
    def lock_json(self) -> Path:
        return self.manifest_dir / "lock.json"

    @property
    def provenance_csv(self) -> Path:
        return self.manifest_dir / "provenance.csv"

    # -- post-processing ------------------------------------------------------------------
    @property
    def processed_dir(self) -> Path:
        return self.root / "processed"

    @property
    def clean_csv(self) -> Path:
        return self.processed_dir / "clean.csv"

    @property
    def pack_dir(self) -> Path:
        return self.processed_dir / "pack"

    @property
    def features_dir(self) -> Path:
        return self.processed_dir / "features"

    @property
    def norm_dir(self) -> Path:
        return self.processed_dir / "norm"

    @property
    def per_file_dir(self) -> Path:
        return self.processed_dir / "per-file"

    # -- meta-learning ------------------------------------------------------------------
    @property
    def splits_json(self) -> Path:
        return self.root / "splits.json"

    @property
    def episodes_dir(self) -> Path:
        return self.root / "episodes"

    @property
    def eval_dir(self) -> Path:
        return self.root / "eval"

    @property
    def eval_results(self) -> Path:
        return self.eval_dir / "results.json"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    @property
    def report_html(self) -> Path:
        return self.report_dir / "index.html"
