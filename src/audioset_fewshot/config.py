"""One YAML file, one section per stage.

Paths in a config file (``root``, ``metadata.metadata_dir``, ...: the fields
marked ``path=True``) are relative to the folder of the file; a dataset root's
saved ``config.yaml`` writes them relative to the root (``root: .``) or
absolute, so ``--root ROOT`` resumes from any working folder.

Field names are identical to the stage functions' keyword names and to the CLI
flags (``plan.max_per_class`` <-> ``--max-per-class`` <-> ``make_plan(...,
max_per_class=)``).  Precedence: defaults < file < flags.  Errors name the key
path and the bad value; an unknown key gets the closest known key suggested.

To add a knob: add a field to its section's dataclass below, with a ``help``
text; ``init`` writes it commented, ``load_config`` validates it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

from audioset_fewshot._io import atomic_write_text
from audioset_fewshot.errors import ConfigError, closest

OFFICIAL_URLS = {
    "balanced": "http://storage.googleapis.com/us_audioset/youtube_corpus/v1/csv/balanced_train_segments.csv",
    "eval": "http://storage.googleapis.com/us_audioset/youtube_corpus/v1/csv/eval_segments.csv",
    "unbalanced": "http://storage.googleapis.com/us_audioset/youtube_corpus/v1/csv/unbalanced_train_segments.csv",
}

SOURCES = ("balanced", "eval", "unbalanced")


def _copy(value: list[Any] | dict[Any, Any]) -> Callable[[], Any]:
    return lambda: type(value)(value)


def _f(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=_copy(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class MetadataConfig:
    metadata_dir: str | None = _f(None, "folder with local copies of the segment lists (official names); null = fetch and cache", path=True)
    cache_dir: str | None = _f(None, "cache for fetched metadata; null = $XDG_CACHE_HOME/audioset-fewshot", path=True)
    urls: dict[str, str] = _f(dict(OFFICIAL_URLS), "source URL of each segment list (balanced, eval, unbalanced)")
    timeout_s: float = _f(30.0, "seconds a fetch of a list waits for the response and for each read (the connection: at most 10), per attempt", min=0.1)


@dataclass(frozen=True)
class SelectionConfig:
    min_quality: float = _f(0.8, "minimum QA rate num_true/num_rated of a class (0..1)", min=0.0, max=1.0)
    all_levels: bool = _f(False, "also select non-leaf classes")
    include: list[str] = _f([], "class names or MIDs to force in (still must exist)")
    exclude: list[str] = _f([], "class names or MIDs to leave out")


@dataclass(frozen=True)
class PlanConfig:
    seed: int = _f(0, "seed of the candidate order (same seed + metadata = same plan)")
    max_per_class: int = _f(50, "clips to obtain per class (top-up from later candidates on failure)", min=1, max=1_000_000)
    sources: list[str] = _f(["balanced", "eval", "unbalanced"], "segment lists to draw from", choices=SOURCES)
    owner_policy: Literal["fewest-candidates", "first-label"] = _f("fewest-candidates", "which selected label owns a multi-label clip")
    shard: str | None = _f(None, "I/N: take only shard I of N (split by YouTube ID) for several machines")


@dataclass(frozen=True)
class SessionConfig:
    """One YouTube session of ``download.sessions``: its own cookies, address and budget
    (YouTube limits a session, not a tool); see :mod:`audioset_fewshot.download.sessions`."""

    name: str = _f("", "the session's name: in the ledger (column session), the log and the progress line")
    cookies: str | None = _f(None, "this session's Netscape cookies file (passed to yt-dlp only)", path=True)
    cookies_from_browser: str | None = _f(None, "browser this session reads its cookies from (yt-dlp's --cookies-from-browser)")
    proxy: str | None = _f(None, "HTTP proxy all this session's traffic goes through (yt-dlp and ffmpeg), even to 127.0.0.1")
    source_address: str | None = _f(None, "client-side IP address this session binds to")
    max_per_hour: float | Literal["auto"] | None = _f(
        "auto", "this session's extractions per hour: auto = 300 as a guest, 2000 with cookies (none for the 127.0.0.1 demo server)", min=0.0
    )
    worker: str | None = _f(None, "with cluster.engine dask: the name of the Dask worker that hosts this session (its budget and address stay there)")
    resource: str | None = _f(
        None, "with cluster.engine dask: a worker resource (a dask worker started with the resource NAME=1) that a worker hosting this session has"
    )


@dataclass(frozen=True)
class DownloadConfig:
    jobs: int = _f(4, "parallel download workers", min=1, max=64)
    max_per_hour: float | Literal["auto"] | None = _f(
        "auto",
        "extractions per hour across all workers: auto = YouTube's budget (300) for a remote host, none for the 127.0.0.1 demo server; 0 or null = unlimited",
        min=0.0,
    )
    min_interval_s: float | Literal["auto"] = _f(
        "auto", "minimum seconds between two extractions: auto = 1 for a remote host, 0 for the 127.0.0.1 demo server", min=0.0
    )
    retries: int = _f(3, "attempts per clip for transient failures", min=0)
    retry_failed: bool = _f(False, "also retry clips that failed permanently")
    backoff_s: float = _f(5.0, "first retry delay (doubles, with jitter)", min=0.0)
    pause_s: float = _f(3600.0, "pause of the whole pool on a rate-limit / bot-check / 429 signal", min=0.0)
    max_pause_s: float = _f(14400.0, "cap of the doubling pause", min=0.0)
    max_pauses: int = _f(4, "stop after this many pauses in one run", min=0)
    early_abort: int = _f(10, "stop when the first N attempts all fail with the same non-permanent reason (0 = off)", min=0)
    min_free: str = _f("2GB", "stop cleanly before free disk falls below this (e.g. 2GB, 500MB)")
    cookies: str | None = _f(None, "Netscape cookies file passed to yt-dlp only (account risk: see README)", path=True)
    cookies_from_browser: str | None = _f(None, "browser to read cookies from (yt-dlp's --cookies-from-browser)")
    base_url: str = _f("https://www.youtube.com", "where watch pages live; the demo points this at 127.0.0.1")
    format: str = _f("bestaudio[ext=m4a]/bestaudio", "yt-dlp format selector")
    audio_format: Literal["flac", "wav"] = _f("flac", "container of the stored clips (16-bit)")
    sample_rate_hz: int = _f(16000, "sample rate of the stored clips", min=8000, max=48000)
    timeout_s: float = _f(120.0, "bound on one clip's extraction + ffmpeg read", min=1.0)
    origins: list[str | dict[str, str]] = _f(
        ["youtube"],
        "where clips come from, in order: youtube, a local path, an fsspec URL, or {path, layout, name, revision}; the first that holds a clip wins",
    )
    canary_ids: list[str] = _f([], "segments 'doctor --canary' downloads to check the setup: YTID or YTID@START (10 s); empty = the plan's first clips")
    proxy: str | None = _f(None, "HTTP proxy for yt-dlp and ffmpeg, http://[USER:PASS@]HOST:PORT, used even for 127.0.0.1; the password is never stored")
    source_address: str | None = _f(None, "client-side IP address to bind to (yt-dlp's source_address)")
    impersonate: str | None = _f(None, "client to impersonate, e.g. chrome or chrome-116:windows-10 (yt-dlp's impersonate; needs curl_cffi)")
    sleep_requests: float = _f(0.0, "seconds yt-dlp sleeps between the requests of one extraction (yt-dlp's sleep_interval_requests)", min=0.0)
    js_runtimes: list[str] = _f([], "JavaScript runtimes yt-dlp may use, RUNTIME or RUNTIME:PATH (deno, node, bun, quickjs); empty = yt-dlp's default (deno)")
    remote_components: list[str] = _f([], "remote components yt-dlp may fetch when needed (ejs:github, ejs:npm); empty = none")
    plugin_dirs: list[str] = _f(
        [], "folders of yt-dlp plugin packages (as for yt-dlp's plugin-dirs option), e.g. a PO-token provider, searched before the default places", path=True
    )
    extractor_args: dict[str, dict[str, list[str]]] = _f(
        {}, "yt-dlp extractor arguments, {extractor: {arg: [values]}}, e.g. {youtube: {player_client: [mweb]}}; tokens in them are never stored"
    )
    ytdlp: dict[str, Any] = _f({}, "any other YoutubeDL parameters, passed as they are (keys audioset-fewshot sets itself are refused); secrets never stored")
    sessions: list[SessionConfig] = _f(
        [],
        "YouTube sessions, each {name, cookies or cookies_from_browser, proxy, source_address, max_per_hour} with its own budget and pause; empty = one session from the keys above",
    )


@dataclass(frozen=True)
class CleanConfig:
    min_duration_s: float = _f(1.0, "clips shorter than this are rejected", min=0.0)
    silence_dbfs: float = _f(-60.0, "clips whose RMS is below this (dBFS) are rejected as silent", max=0.0)
    max_clipped_fraction: float = _f(0.05, "clips with more samples at full scale than this fraction are rejected", min=0.0, max=1.0)
    policy: Literal["drop", "keep"] = _f("drop", "what to do with rejected clips (the verdict is always recorded)")
    workers: int = _f(2, "decode processes of the clean checks", min=1, max=64)


@dataclass(frozen=True)
class PackConfig:
    sample_rate_hz: int = _f(16000, "sample rate of the packed array", min=8000, max=48000)
    dtype: Literal["int16", "float32"] = _f("int16", "sample type of the packed array")
    length_s: float = _f(10.0, "fixed length of every row", min=0.1, max=600.0)
    length_policy: Literal["pad_zero", "pad_repeat", "drop"] = _f("pad_zero", "what to do with clips shorter than length_s")
    workers: int = _f(2, "decode processes", min=1, max=64)


@dataclass(frozen=True)
class FeaturesConfig:
    kind: Literal["logmel", "vggish-release"] = _f(
        "logmel", "logmel: log-mel spectrograms of the downloaded audio; vggish-release: Google's released VGGish embeddings, nothing downloaded"
    )
    release: str | None = _f(None, "the VGGish embedding release (unpacked audioset_v1_embeddings folder or features.tar.gz); needed by kind vggish-release")
    n_fft: int = _f(1024, "FFT size", min=16, max=65536)
    hop_length: int = _f(512, "hop between frames (samples)", min=1, max=65536)
    n_mels: int = _f(128, "mel bins (Slaney scale and norm)", min=1, max=1024)
    f_min: float = _f(0.0, "lowest mel frequency (Hz)", min=0.0)
    f_max: float | None = _f(None, "highest mel frequency (Hz); null = sample_rate/2")
    power: float = _f(2.0, "exponent of the magnitude spectrogram", min=0.0)
    amin: float = _f(1e-10, "floor of the power before dB (MetaAudio used float eps)", min=0.0)
    top_db: float | None = _f(None, "clip to max - top_db dB; null = no clipping")
    layout: Literal["packed", "per-file"] = _f("packed", "per-file also writes one .npy per clip in class folders")


@dataclass(frozen=True)
class NormalizeConfig:
    mode: Literal["none", "per_sample", "global", "channel"] = _f("global", "feature normalisation (global/channel fitted on meta-train rows)")


@dataclass(frozen=True)
class SplitsConfig:
    seed: int = _f(0, "seed of the class split")
    ratios: list[float] = _f([0.7, 0.1, 0.2], "train / val / test class fractions (MetaAudio's rule: ceil for train and val)")
    leakage: Literal["exclusive", "owner", "none"] = _f("exclusive", "how clips carrying labels of several splits are handled")
    group: Literal["siblings", "top-level"] | None = _f(None, "keep ontology siblings together, or stratify by top-level category")


@dataclass(frozen=True)
class EpisodesConfig:
    split: Literal["train", "val", "test"] = _f("test", "split of the fixed evaluation episodes")
    n_way: int = _f(5, "classes per episode", min=2, max=1000)
    k_shot: int = _f(1, "support examples per class", min=1, max=10_000)
    q_query: int = _f(15, "query examples per class", min=1, max=10_000)
    count: int = _f(10000, "number of fixed episodes", min=1, max=10_000_000)
    seed: int = _f(0, "seed of the episodes")


@dataclass(frozen=True)
class EvaluateConfig:
    method: str = _f("protonet", "methods to evaluate: protonet, simpleshot, finetune, maml, untrained, nearest-centroid, hear, all, or a comma-separated list")
    backbone: Literal["crnn", "conv4"] = _f("crnn", "network of the trained methods: MetaAudio's CRNN or a plain Conv-4")
    n_way: int = _f(5, "classes per training episode", min=2, max=1000)
    k_shot: int = _f(5, "support examples per class in training episodes", min=1, max=10_000)
    q_query: int = _f(15, "query examples per class in training episodes", min=1, max=10_000)
    steps: int = _f(300, "training steps (CPU, bounded)", min=0, max=10_000_000)
    max_seconds: float = _f(3600.0, "wall-clock limit of one method's training (s)", min=1.0)
    learning_rate: float = _f(5e-4, "Adam learning rate (MetaAudio's ProtoNets: 5e-4)", min=0.0)
    seed: int = _f(0, "seed of training episodes and weights")
    threads: int = _f(1, "torch CPU threads of the baseline (1 is fastest when other processes share the cores)", min=1, max=64)
    piece_seconds: float = _f(0.0, "cut clips into pieces this long (MetaAudio: 5); supports use one piece, queries vote; 0 = whole clips", min=0.0)
    val_episodes: int = _f(200, "validation episodes for checkpoint selection (0 = keep the last weights)", min=0, max=100_000)
    val_every: int = _f(50, "steps between validation checks", min=1)
    tasks_per_step: int = _f(1, "episodes per optimiser step (protonet, maml)", min=1, max=10_000)
    inner_lr: float = _f(0.4, "MAML inner-loop learning rate", min=0.0)
    inner_steps: int = _f(8, "MAML inner-loop steps", min=1, max=1000)
    maml_episodes: int = _f(1000, "test episodes MAML is scored on (it adapts per episode; the first ones of the file)", min=1, max=1_000_000)
    batch_size: int = _f(32, "clips per step of SimpleShot's pre-training", min=2, max=100_000)
    finetune_steps: int = _f(100, "optimisation steps of the per-episode linear head (finetune, hear with a linear head)", min=1, max=100_000)
    encoder: str | None = _f(None, "outside encoder for method hear: a module name or a .py file with load_model and get_scene_embeddings")
    encoder_weights: str | None = _f(None, "path passed to the encoder's load_model")
    encoder_head: Literal["nearest-centroid", "linear"] = _f("nearest-centroid", "classifier on the encoder's frozen embeddings")
    encoder_saw_audioset_labels: bool = _f(False, "declare that the encoder was trained on AudioSet labels (marked not class-disjoint)")


@dataclass(frozen=True)
class ClusterConfig:
    engine: Literal["local", "dask"] = _f(
        "local", "where download, clean, pack and features run: local = this machine's threads and process pools, dask = a Dask cluster (see docs/cluster.md)"
    )
    address: str | None = _f(
        None, "an existing Dask scheduler (tcp://HOST:8786); null = start a cluster (a LocalCluster of 'workers' processes, or 'jobqueue')"
    )
    workers: int = _f(2, "worker processes of the LocalCluster started when neither address nor jobqueue is given", min=1, max=1024)
    timeout_s: float = _f(60.0, "seconds to wait for the scheduler to answer and for the first worker to join", min=1.0)
    jobqueue: Literal["slurm", "pbs"] | None = _f(None, "start the workers as batch jobs with dask-jobqueue (slurm or pbs); null = no batch jobs")
    job_queue: str | None = _f(None, "batch queue / partition of the worker jobs; null = the system's default")
    job_account: str | None = _f(None, "account / project charged for the worker jobs; null = none")
    job_cores: int = _f(4, "cores of one worker job (one single-threaded worker process per core)", min=1, max=4096)
    job_memory: str = _f("8GB", "memory of one worker job (e.g. 8GB, 16GiB)")
    job_walltime: str = _f("01:00:00", "wall-clock limit of one worker job: HH:MM:SS, or D-HH:MM:SS for SLURM")
    job_count: int = _f(1, "worker jobs to submit", min=1, max=10_000)
    job_extra: list[str] = _f(
        [], "extra #SBATCH / #PBS directives of the worker jobs, one per item, as the batch system spells them (a constraint, a placement)"
    )


@dataclass(frozen=True)
class Config:
    root: str = _f("audioset-fewshot-data", "dataset root: every artifact lives below it", path=True)
    demo: bool = _f(False, "the root is the offline demo: 'run' serves its media on 127.0.0.1 (download.base_url is the demo server's)")
    metadata: MetadataConfig = field(default_factory=MetadataConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    plan: PlanConfig = field(default_factory=PlanConfig)
    download: DownloadConfig = field(default_factory=DownloadConfig)
    clean: CleanConfig = field(default_factory=CleanConfig)
    pack: PackConfig = field(default_factory=PackConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    splits: SplitsConfig = field(default_factory=SplitsConfig)
    episodes: EpisodesConfig = field(default_factory=EpisodesConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Each section is the options type of its stage: ``run_download(plan, root, DownloadOptions(jobs=8))``,
# ``features(root, FeaturesOptions(n_mels=64))``; ``dataclasses.replace`` changes one knob.
MetadataOptions = MetadataConfig
SelectionOptions = SelectionConfig
PlanOptions = PlanConfig
DownloadOptions = DownloadConfig
CleanOptions = CleanConfig
PackOptions = PackConfig
FeaturesOptions = FeaturesConfig
NormalizeOptions = NormalizeConfig
SplitsOptions = SplitsConfig
EpisodesOptions = EpisodesConfig
EvaluateOptions = EvaluateConfig
ClusterOptions = ClusterConfig


# ---------------------------------------------------------------------------------------
# validation


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is not None:
        return getattr(origin, "__name__", str(origin))
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _plain_data(value: Any, path: str) -> Any:
    """``value`` when it is plain YAML data (a mapping with string keys, a list, a scalar)."""
    if value is None or isinstance(value, (str, bool, int)) or (isinstance(value, float) and math.isfinite(value)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain_data(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise ConfigError(f"config key '{path}': mapping keys must be strings, got {list(value)!r}")
        return {k: _plain_data(v, f"{path}.{k}") for k, v in value.items()}
    raise ConfigError(f"config key '{path}': expected plain YAML data (text, number, true/false, null, list, mapping), got {value!r}")


def _coerce(value: Any, tp: Any, path: str) -> Any:
    if tp is Any:  # passed through as it is (download.ytdlp): plain data only
        return _plain_data(value, path)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):  # an item of a list of records (download.sessions)
        if isinstance(value, tp):
            return value
        return _build(tp, value if value is not None else {}, f"{path}.")
    origin = get_origin(tp)
    bad = ConfigError(f"config key '{path}': expected {_type_name(tp)}, got {value!r}")
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise bad
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, path)
            except ConfigError:
                continue
        raise bad
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            sugg = closest(str(value), [str(c) for c in choices if c is not None])
            hint = f" Did you mean {sugg[0]!r}?" if sugg else ""
            raise ConfigError(f"config key '{path}': {value!r} is not one of {', '.join(repr(c) for c in choices)}.{hint}")
        return value
    if origin is list:
        (item_tp,) = get_args(tp)
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise bad
        return [_coerce(v, item_tp, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        k_tp, v_tp = get_args(tp)
        if not isinstance(value, Mapping):
            raise bad
        return {_coerce(k, k_tp, path): _coerce(v, v_tp, f"{path}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    raise bad  # pragma: no cover - a field type this module does not know


def _check_bounds(value: Any, meta: Mapping[str, Any], path: str) -> None:
    if value is None:
        return
    items = value if isinstance(value, list) else [value]
    for item in items:
        if "min" in meta and isinstance(item, (int, float)) and item < meta["min"]:
            raise ConfigError(f"config key '{path}': {item!r} is below the minimum {meta['min']}")
        if "max" in meta and isinstance(item, (int, float)) and item > meta["max"]:
            raise ConfigError(f"config key '{path}': {item!r} is above the maximum {meta['max']}")
        if "choices" in meta and item not in meta["choices"]:
            sugg = closest(str(item), meta["choices"])
            hint = f" Did you mean {sugg[0]!r}?" if sugg else ""
            raise ConfigError(f"config key '{path}': {item!r} is not one of {', '.join(meta['choices'])}.{hint}")


def _build(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"config key '{prefix.rstrip('.') or '<top>'}': expected a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key not in fields:
            sugg = closest(str(key), fields, n=1, cutoff=0.4)
            hint = f" Did you mean '{prefix}{sugg[0]}'?" if sugg else f" Known keys: {', '.join(fields)}."
            raise ConfigError(f"unknown config key '{path}'.{hint}")
        tp = hints[key]
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value if value is not None else {}, f"{path}.")
        else:
            coerced = _coerce(value, tp, path)
            _check_bounds(coerced, fields[key].metadata, path)
            kwargs[key] = coerced
    return cls(**kwargs)


def config_from_dict(data: Mapping[str, Any] | None) -> Config:
    """Validate a nested mapping (as read from YAML) into a Config."""
    cfg = _build(Config, data or {}, "")
    _cross_checks(cfg)
    return cfg


def _cross_checks(cfg: Config) -> None:
    ratios = cfg.splits.ratios
    if len(ratios) != 3 or any(r <= 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
        raise ConfigError(f"config key 'splits.ratios': expected three positive fractions summing to 1, got {ratios!r}")
    if cfg.plan.shard is not None:
        parse_shard(cfg.plan.shard, key="plan.shard")
    parse_size(cfg.download.min_free, key="download.min_free")
    if cfg.features.kind == "vggish-release" and not cfg.features.release:
        raise ConfigError(
            "config key 'features.release': features.kind 'vggish-release' needs the release (the unpacked audioset_v1_embeddings folder or features.tar.gz)"
        )
    if not cfg.download.origins:
        raise ConfigError("config key 'download.origins': give at least one origin (for example [youtube])")
    for i, entry in enumerate(cfg.download.origins):  # each entry's keys and layout: download.origins.parse_origin
        if isinstance(entry, dict) and not entry.get("path"):
            raise ConfigError(f"config key 'download.origins[{i}]': a mapping needs 'path' (and may give layout, name, revision)")
    if cfg.download.cookies and cfg.download.cookies_from_browser:
        raise ConfigError("config keys 'download.cookies' and 'download.cookies_from_browser' are exclusive: set one")
    _check_ytdlp_keys(cfg.download)
    _check_sessions(cfg.download)
    check_cluster(cfg.cluster)


# The YoutubeDL parameters audioset-fewshot sets itself, each with what to use instead: a key
# of download.ytdlp among them is a config error (ours would silently win otherwise).
YTDLP_OWN_KEYS: dict[str, str] = {
    "format": "download.format",
    "cookiefile": "download.cookies (or a session's cookies)",
    "cookiesfrombrowser": "download.cookies_from_browser (or a session's)",
    "proxy": "download.proxy (or a session's proxy)",
    "source_address": "download.source_address (or a session's)",
    "impersonate": "download.impersonate",
    "sleep_interval_requests": "download.sleep_requests",
    "extractor_args": "download.extractor_args",
    "js_runtimes": "download.js_runtimes",
    "remote_components": "download.remote_components",
    "socket_timeout": "download.timeout_s (a third of it, at most 30 s)",
    "logger": "nothing: audioset-fewshot captures yt-dlp's messages itself",
    "quiet": "nothing: audioset-fewshot captures yt-dlp's messages itself",
    "no_warnings": "nothing: audioset-fewshot classifies yt-dlp's warnings itself",
    "noprogress": "nothing: audioset-fewshot shows its own progress",
    "color": "nothing: audioset-fewshot captures yt-dlp's messages itself",
    "noplaylist": "nothing: one video per clip",
    "skip_download": "nothing: ffmpeg reads the segment, yt-dlp only extracts",
    "cachedir": "nothing: the cache is off so that workers share no state",
    "extractor_retries": "download.retries (the runner retries a clip)",
}
_JS_RUNTIMES = ("deno", "node", "bun", "quickjs")
_REMOTE_COMPONENTS = ("ejs:github", "ejs:npm")
# ffmpeg reads the media through HTTP proxies only (-http_proxy): a SOCKS proxy would carry the
# extraction but not the media, whose URLs YouTube binds to the address that extracted them
_PROXY_SCHEMES = ("http", "https")
_SESSION_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def _check_proxy(url: str | None, key: str) -> None:
    if url is None or url == "" or REDACTED in url:
        return
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in _PROXY_SCHEMES or not parts.hostname:
        raise ConfigError(
            f"config key '{key}': {url.split('@')[-1]!r} is not an HTTP proxy URL; expected http://[USER:PASS@]HOST:PORT"
            " (ffmpeg reads the media through HTTP proxies only, and the media must come through the session's proxy)"
        )


def _check_ytdlp_keys(d: DownloadConfig) -> None:
    for key in d.ytdlp:
        if key in YTDLP_OWN_KEYS:
            raise ConfigError(f"config key 'download.ytdlp.{key}': audioset-fewshot sets this yt-dlp parameter itself; use {YTDLP_OWN_KEYS[key]} instead")
    for i, item in enumerate(d.js_runtimes):
        name = item.split(":", 1)[0].lower()
        if name not in _JS_RUNTIMES:
            sugg = closest(name, _JS_RUNTIMES)
            hint = f" Did you mean {sugg[0]!r}?" if sugg else ""
            raise ConfigError(
                f"config key 'download.js_runtimes[{i}]': {item!r} is not RUNTIME or RUNTIME:PATH with RUNTIME one of {', '.join(_JS_RUNTIMES)}.{hint}"
            )
    for i, item in enumerate(d.remote_components):
        if item not in _REMOTE_COMPONENTS:
            raise ConfigError(f"config key 'download.remote_components[{i}]': {item!r} is not one of {', '.join(_REMOTE_COMPONENTS)}")
    _check_proxy(d.proxy, "download.proxy")


def _check_sessions(d: DownloadConfig) -> None:
    if not d.sessions:
        return
    for key in ("cookies", "cookies_from_browser", "proxy", "source_address"):
        if getattr(d, key):
            raise ConfigError(f"config key 'download.{key}': with download.sessions, give {key} per session (download.sessions[].{key})")
    if d.max_per_hour != "auto":
        raise ConfigError(
            "config key 'download.max_per_hour': with download.sessions, each session has its own budget: give max_per_hour per session (download.sessions[].max_per_hour)"
        )
    seen: set[str] = set()
    for i, sess in enumerate(d.sessions):
        where = f"download.sessions[{i}]"
        if not sess.name or not set(sess.name) <= _SESSION_NAME_CHARS or len(sess.name) > 64:
            raise ConfigError(f"config key '{where}.name': {sess.name!r} is not a session name (1-64 letters, digits, '-', '_' or '.')")
        if sess.name in seen:
            raise ConfigError(f"config key '{where}.name': session name {sess.name!r} is used twice; give each session its own name")
        seen.add(sess.name)
        if sess.cookies and sess.cookies_from_browser:
            raise ConfigError(f"config keys '{where}.cookies' and '{where}.cookies_from_browser' are exclusive: set one")
        if sess.worker is not None and sess.resource is not None:
            raise ConfigError(f"config keys '{where}.worker' and '{where}.resource' are exclusive: bind the session to a worker by one of them")
        _check_proxy(sess.proxy, f"{where}.proxy")


_ADDRESS = re.compile(r"(tcp|tls)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})")
_WALLTIME = re.compile(r"(?:(\d+)-)?(\d{1,3}):([0-5]\d):([0-5]\d)")


def check_cluster(c: ClusterConfig) -> None:
    """The ``cluster`` section's rules across fields; each error names the key to fix.

    ``address`` and ``jobqueue`` are checked even with ``engine: local``, which ignores
    them: ``--engine local`` then runs a root saved with a cluster on this machine."""
    if c.address is not None:
        m = _ADDRESS.fullmatch(c.address.strip())
        if not m or not 0 < int(m.group(3)) < 65536:
            raise ConfigError(f"config key 'cluster.address': {c.address!r} is not a scheduler address such as tcp://HOST:8786")
        if c.jobqueue is not None:
            raise ConfigError(
                "config keys 'cluster.address' and 'cluster.jobqueue' are exclusive: connect to a running scheduler (address) or start one with batch jobs (jobqueue)"
            )
    if parse_size(c.job_memory, key="cluster.job_memory") < 2**20:
        raise ConfigError(f"config key 'cluster.job_memory': {c.job_memory!r} is less than 1 MiB; give the memory of one job such as '8GB'")
    if not _WALLTIME.fullmatch(c.job_walltime.strip()):
        raise ConfigError(f"config key 'cluster.job_walltime': {c.job_walltime!r} is not HH:MM:SS (or D-HH:MM:SS), e.g. '04:00:00'")
    if c.jobqueue == "pbs" and "-" in c.job_walltime:
        raise ConfigError(f"config key 'cluster.job_walltime': PBS takes HH:MM:SS, not the SLURM form {c.job_walltime!r}")
    for i, directive in enumerate(c.job_extra):
        if not directive.strip() or "\n" in directive:
            raise ConfigError(f"config key 'cluster.job_extra[{i}]': {directive!r} must be one non-empty directive on one line")


class _Unset:
    """The type of :data:`UNSET`."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


# "not given": an override with this value is skipped.  ``None`` is a value (YAML's null:
# ``download.max_per_hour: null`` lifts the cap), never a marker.
UNSET: Any = _Unset()


def load_config(path: Path | str | None = None, overrides: Mapping[str, Any] | None = None) -> Config:
    """defaults < file < overrides.  ``overrides`` is a nested mapping or dotted keys
    (``{"plan.seed": 3}``); a value :data:`UNSET` means "not given" and is skipped
    (``None`` sets the key to null)."""
    data: dict[str, Any] = {}
    if path is not None:
        from audioset_fewshot._yaml import load_yaml_file

        p = Path(path)
        # bounded: size, UTF-8, aliases, depth and duplicate keys are refused with file and line
        loaded = load_yaml_file(p)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: expected a mapping of sections at the top level, got {type(loaded).__name__}")
        data = _relative_to(loaded, p.parent)
    if overrides:
        data = merge(data, overrides)
    try:
        return config_from_dict(data)
    except ConfigError as err:
        if path is not None:
            raise ConfigError(f"{path}: {err}") from None
        raise


def _record_item(tp: Any) -> type | None:
    """The record type of a ``list[SomeConfig]`` field (``download.sessions``), else None."""
    if get_origin(tp) is list:
        (item,) = get_args(tp)
        if isinstance(item, type) and dataclasses.is_dataclass(item):
            return item
    return None


def path_keys() -> tuple[str, ...]:
    """Dotted keys of the fields that hold a path (``path=True`` in their metadata); a
    field of the records of a list field is ``section.list[].field``."""
    out: list[str] = []
    for f in dataclasses.fields(Config):
        if f.metadata.get("path"):
            out.append(f.name)
        tp = _hints(Config)[f.name]
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            for sf in dataclasses.fields(tp):
                if sf.metadata.get("path"):
                    out.append(f"{f.name}.{sf.name}")
                item = _record_item(_hints(tp)[sf.name])
                if item is not None:
                    out += [f"{f.name}.{sf.name}[].{rf.name}" for rf in dataclasses.fields(item) if rf.metadata.get("path")]
    return tuple(out)


def _map_paths(data: Mapping[str, Any], func: typing.Callable[[str], str]) -> dict[str, Any]:
    """A copy of a nested config mapping with ``func`` applied to every path value (a
    path, each path of a list of paths, the paths of each record of a list of records)."""

    def apply(value: Any) -> Any:
        if isinstance(value, str) and value != REDACTED:
            return func(value)
        if isinstance(value, list):
            return [func(v) if isinstance(v, str) and v != REDACTED else v for v in value]
        return value

    out: dict[str, Any] = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in data.items()}
    for key in path_keys():
        head, _, tail = key.partition("[].")
        *parents, leaf = head.split(".")
        node: Any = out
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node:
            continue
        if not tail:
            node[leaf] = apply(node[leaf])
        elif isinstance(node[leaf], list):  # records: copy each before changing it
            node[leaf] = [{**r, tail: apply(r.get(tail))} if isinstance(r, Mapping) and r.get(tail) is not None else r for r in node[leaf]]
    return out


def _relative_to(data: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    """Relative paths of a config file are relative to the file's folder."""

    def resolve(value: str) -> str:
        p = Path(value).expanduser()
        return value if p.is_absolute() else os.path.normpath(folder / p)

    return _map_paths(data, resolve)


def rooted(cfg: Config, root: Path | str) -> Config:
    """``cfg`` as saved in the dataset root ``root``: ``root: .``, every other path
    relative to the root when it lies inside it, else absolute (relative paths of
    ``cfg`` are taken from the working folder)."""
    base = Path(root).resolve()

    def rel(value: str) -> str:
        p = Path(value).expanduser().resolve()
        return Path(os.path.relpath(p, base)).as_posix() if p == base or base in p.parents else str(p)

    return config_from_dict(_map_paths(cfg.to_dict(), rel))


def merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``overrides`` (nested or dotted keys; :data:`UNSET` = not given) into ``base``."""
    out: dict[str, Any] = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in base.items()}
    for key, value in overrides.items():
        if value is UNSET:
            continue
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {} if child is None else child
                node[part] = child
            node = child
        leaf = parts[-1]
        if isinstance(value, Mapping) and isinstance(node.get(leaf), Mapping):
            node[leaf] = merge(node[leaf], value)
        else:
            node[leaf] = value
    return out


REDACTED = "<redacted>"


# Keys whose values are secrets wherever they appear in download.ytdlp or download.extractor_args
# (a PO token, a password, an account's headers): a key containing one of these words.
_SECRET_WORDS = (
    "token",
    "password",
    "passwd",
    "secret",
    "cookie",
    "auth",
    "username",
    "visitor_data",
    "data_sync_id",
    "http_headers",
    "netrc",
    "certificate",
    "key",
)


def is_secret_key(key: str) -> bool:
    """True when a yt-dlp parameter or extractor argument named ``key`` holds a secret."""
    low = key.lower()
    return any(w in low for w in _SECRET_WORDS)


def redact_url(url: str) -> str:
    """``url`` with the password of its user info replaced by the marker
    (``http://user:<redacted>@host:3128``); a URL without a password is unchanged."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    userinfo, _, hostpart = rest.partition("@")
    user, colon, _password = userinfo.partition(":")
    return f"{scheme}://{user}:{REDACTED}@{hostpart}" if colon else f"{scheme}://{REDACTED}@{hostpart}"


def _redact_data(value: Any, *, secret: bool) -> Any:
    if secret:
        return [REDACTED] * len(value) if isinstance(value, list) else REDACTED
    if isinstance(value, str):
        return redact_url(value)
    if isinstance(value, list):
        return [_redact_data(v, secret=False) for v in value]
    if isinstance(value, Mapping):
        return {k: _redact_data(v, secret=is_secret_key(str(k))) for k, v in value.items()}
    return value


def redacted(cfg: Config) -> Config:
    """The config as saved in a dataset root or shown: every secret becomes a marker.

    The cookies paths (download.cookies and each session's), the passwords of proxy
    URLs, and in download.ytdlp / download.extractor_args every value under a key that
    names a secret (:func:`is_secret_key`: tokens, passwords, headers...) and every
    URL password.  They are passed to yt-dlp and nowhere else, not even by name."""
    d = cfg.download
    sessions = [dataclasses.replace(s, cookies=REDACTED if s.cookies else None, proxy=None if s.proxy is None else redact_url(s.proxy)) for s in d.sessions]
    new = dataclasses.replace(
        d,
        cookies=REDACTED if d.cookies else None,
        proxy=None if d.proxy is None else redact_url(d.proxy),
        ytdlp=_redact_data(dict(d.ytdlp), secret=False),
        extractor_args=_redact_data(dict(d.extractor_args), secret=False),
        sessions=sessions,
    )
    return cfg if new == d else dataclasses.replace(cfg, download=new)


def redacted_keys(cfg: Config) -> list[str]:
    """Dotted keys of ``cfg`` that still hold a redaction marker (other than
    download.cookies, which reads as "none given"): a secret that was left out
    when the config was saved, which a run cannot use."""
    found: list[str] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, str) and REDACTED in value:
            found.append(path)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{path}[{i}]")
        elif isinstance(value, Mapping):
            for k, v in value.items():
                walk(v, f"{path}.{k}")

    d = dataclasses.asdict(cfg.download)
    d.pop("cookies", None)
    walk(d, "download")
    return found


def without_redacted(cfg: Config) -> Config:
    """A config read back from a root: the cookies marker means "none given" (other
    markers stay; :func:`redacted_keys` names them and a download refuses them)."""
    if cfg.download.cookies == REDACTED:
        return dataclasses.replace(cfg, download=dataclasses.replace(cfg.download, cookies=None))
    return cfg


def replace(cfg: Config, **overrides: Any) -> Config:
    """Return a copy with dotted-key overrides applied and validated."""
    return config_from_dict(merge(cfg.to_dict(), overrides))


# ---------------------------------------------------------------------------------------
# helpers for knobs with a syntax of their own

_SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(text: str, *, key: str = "size") -> int:
    """``"2GB"`` -> 2_000_000_000 bytes; accepts B, KB, MB, GB, TB and KiB..TiB."""
    import re

    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?i?B)?\s*", str(text), flags=re.IGNORECASE)
    if not m:
        raise ConfigError(f"config key '{key}': {text!r} is not a size such as '2GB' or '500MB'")
    unit = (m.group(2) or "B").lower()
    return int(float(m.group(1)) * _SIZE_UNITS[unit])


def parse_shard(text: str, *, key: str = "shard") -> tuple[int, int]:
    """``"0/4"`` -> (0, 4): shard index I of N, 0 <= I < N."""
    try:
        i_s, n_s = str(text).split("/")
        i, n = int(i_s), int(n_s)
    except ValueError as err:
        raise ConfigError(f"config key '{key}': {text!r} is not I/N (for example 0/4)") from err
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"config key '{key}': {text!r} needs 0 <= I < N")
    return i, n


# ---------------------------------------------------------------------------------------
# writing


def _yaml_value(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=True, width=10_000).strip()
    if text.endswith("\n..."):
        text = text[: -len("\n...")].strip()
    if text.endswith("..."):
        text = text[:-3].strip()
    return text


def render_config(cfg: Config | None = None, *, comments: bool = True) -> str:
    """YAML text of a config, with each knob's help as a comment."""
    cfg = cfg or Config()
    lines: list[str] = []
    if comments:
        lines += [
            "# audioset-fewshot configuration.",
            "# One section per stage; names match the Python keywords and the CLI flags",
            "# (plan.max_per_class <-> --max-per-class). Precedence: defaults < this file < flags.",
            "",
        ]
    top_fields = {f.name: f for f in dataclasses.fields(Config)}
    sections = {name: f for name, f in top_fields.items() if dataclasses.is_dataclass(_hints(Config)[name])}
    for name, f in top_fields.items():  # the top-level keys (root, demo) first
        if name not in sections:
            if comments:
                lines.append(f"# {f.metadata['help']}")
            lines.append(f"{name}: {_yaml_value(getattr(cfg, name))}")
    for name in sections:
        lines.append("")
        lines.append(f"{name}:")
        section = getattr(cfg, name)
        for sf in dataclasses.fields(section):
            if comments:
                lines.append(f"  # {sf.metadata.get('help', '')}")
            value = getattr(section, sf.name)
            if isinstance(value, list) and value and dataclasses.is_dataclass(value[0]):  # records (download.sessions)
                lines.append(f"  {sf.name}:")
                for rec in value:
                    body = {k: v for k, v in dataclasses.asdict(rec).items() if v is not None}
                    lines.append(f"    - {_yaml_value(body)}")
            elif isinstance(value, dict) and value:
                lines.append(f"  {sf.name}:")
                for k in sorted(value):
                    lines.append(f"    {k}: {_yaml_value(value[k])}")
            else:
                lines.append(f"  {sf.name}: {_yaml_value(value)}")
    return "\n".join(lines) + "\n"


def write_config(path: Path | str, cfg: Config | None = None, *, comments: bool = True, root: Path | str | None = None) -> Path:
    """Write a config atomically (a cookies path redacted); returns the path.

    ``root``: the file is a dataset root's saved config (:func:`rooted`: paths
    relative to the root or absolute, so it reads the same from any folder)."""
    cfg = cfg or Config()
    if root is not None:
        cfg = rooted(cfg, root)
    atomic_write_text(path, render_config(redacted(cfg), comments=comments))
    return Path(path)
