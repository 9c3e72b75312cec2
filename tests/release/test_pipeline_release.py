"""``run`` with ``features.kind: vggish-release`` end to end, offline, on a release
written in the official layout from the real segment lists.

The release holds the clips the plan needs (a few of them left out, one corrupt,
one with other labels than the segment list) plus distractor segments; nothing
listens on any port and any attempt to connect anywhere fails the test.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from audioset_fewshot.config import EvaluateConfig, load_config
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.manifest.clips import ManifestRow, write_clips
from audioset_fewshot.pipeline import RAN, SKIPPED, UP_TO_DATE, run
from audioset_fewshot.plan import read_plan
from audioset_fewshot.release.labels import packaged_label_indices, read_label_indices
from audioset_fewshot.release.obtain import CORRUPT_RECORD, NOT_IN_RELEASE, read_obtained
from audioset_fewshot.release.source import file_name
from audioset_fewshot.release.writer import Segment, write_release, write_tar_gz
from audioset_fewshot.splits import build_splits

from .release_data import class_centres, embedding_for, real_rows

MAX_PER_CLASS = 20
EPISODES = {"episodes.count": 200, "episodes.k_shot": 1, "episodes.q_query": 5, "evaluate.steps": 40, "evaluate.k_shot": 1, "evaluate.q_query": 5}


@dataclass(frozen=True)
class Built:
    metadata: Path
    folder: Path
    tar_gz: Path
    left_out: frozenset[str]  # clip ids of planned candidates the release lacks
    corrupt: str  # clip id of the record whose payload CRC fails
    relabelled: str  # clip id written with labels other than the segment list's


def _overrides(meta: Path, release: Path, **extra: object) -> dict[str, object]:
    return {
        "metadata.metadata_dir": str(meta),
        "plan.max_per_class": MAX_PER_CLASS,
        "features.kind": "vggish-release",
        "features.release": str(release),
        **EPISODES,
        **extra,
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, shared_metadata_dir: Path) -> Built:
    base = tmp_path_factory.mktemp("rel-e2e")
    plan_root = base / "plan-only"
    run(load_config(None, {"metadata.metadata_dir": str(shared_metadata_dir), "plan.max_per_class": MAX_PER_CLASS}), root=plan_root, until="plan")
    plan = read_plan(DatasetLayout(plan_root))
    mids = read_label_indices(packaged_label_indices())
    numbers = {m: i for i, m in enumerate(mids)}
    centres = class_centres(mids)
    segs: list[Segment] = []
    left_out: set[str] = set()
    first_ok: list[str] = []
    for mid, cands in plan.by_class().items():
        for e in cands[: MAX_PER_CLASS + 4]:
            if e.rank % 9 == 4:  # the release lacks it: the class tops up from its next candidates
                left_out.add(e.clip_id)
                continue
            secs = 8 if e.rank % 13 == 5 else 10
            ms = round(e.start_s * 1000)
            segs.append(
                Segment(
                    e.source,
                    e.ytid,
                    e.start_s,
                    e.end_s,
                    tuple(sorted(numbers[m] for m in e.labels)),
                    embedding_for(e.ytid, ms, e.labels, centres, seconds=secs),
                )
            )
            if e.rank == 0 and mid != plan.classes[0]:
                first_ok.append(e.clip_id)
    # one record carries labels other than the segment list's (the list must win)
    relabel = next(i for i, s in enumerate(segs) if s.ytid + "_" + str(round(s.start_s * 1000)) == first_ok[0])
    s = segs[relabel]
    segs[relabel] = Segment(s.source, s.ytid, s.start_s, s.end_s, (0,), s.embedding)
    # distractors: segments of the lists the plan does not hold
    table = real_rows(shared_metadata_dir)
    planned = {e.clip_id for e in plan.entries}
    rng = np.random.default_rng(11)
    for r in rng.choice(len(table.ytid), 400, replace=False).tolist():
        ytid, start = str(table.ytid[r]), float(table.start_s[r])
        if f"{ytid}_{round(start * 1000)}" in planned:
            continue
        from audioset_fewshot.config import SOURCES

        segs.append(
            Segment(
                SOURCES[int(table.source[r])], ytid, start, float(table.end_s[r]), (1, 2), embedding_for(ytid, round(start * 1000), ("/m/05zppz",), centres)
            )
        )
    folder = write_release(base / "release", segs)
    # corrupt one planned record: flip a byte of its payload (past the context, in the embeddings)
    victim_id = first_ok[1]
    victim = next(x for x in segs if f"{x.ytid}_{round(x.start_s * 1000)}" == victim_id)
    path = folder / file_name(victim.source, victim.ytid)
    data = bytearray(path.read_bytes())
    from audioset_fewshot.release.records import encode
    from audioset_fewshot.release.tfrecord import frame

    framed = frame(encode(victim.ytid, victim.start_s, victim.end_s, victim.labels, victim.embedding))
    at = bytes(data).index(framed)
    data[at + len(framed) - 40] ^= 0xFF
    path.write_bytes(bytes(data))
    tar = write_tar_gz(folder, base / "features.tar.gz")
    return Built(metadata=shared_metadata_dir, folder=folder, tar_gz=tar, left_out=frozenset(left_out), corrupt=victim_id, relabelled=first_ok[0])


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: socket.socket, address: object) -> None:
        raise AssertionError(f"the release path tried to connect to {address!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


def _audio_path_splits(tmp: Path, layout: DatasetLayout) -> str:
    """The splits the audio path writes for the same clips: a root whose manifest lists
    them as downloaded audio, split by the same ``build_splits``."""
    rows = [r for r in read_obtained(layout.root) if r.status == "ok"]
    audio = DatasetLayout(tmp / "audio-path-root")
    write_clips(audio.clips_csv, [
        ManifestRow(owner_mid=r.owner_mid, ytid=r.ytid, start_s=r.start_s, end_s=r.end_s, labels=r.labels, source=r.source,
                    path=audio.clip_relpath(r.owner_mid, r.ytid, r.start_s), sample_rate_hz=16000, samples=160000, sha256="0" * 64,
                    itag="140", codec="aac", license="", channel_id="") for r in rows
    ])  # fmt: skip
    build_splits(audio.root, seed=0)
    return audio.splits_json.read_text(encoding="utf-8")


def test_run_on_the_release_gives_the_benchmark_offline(built: Built, tmp_path: Path, no_network: None) -> None:
    root = tmp_path / "root"
    report = run(load_config(None, _overrides(built.metadata, built.folder)), root=root)
    st = {s.name: s for s in report.stages}
    assert st["selection"].summary["classes"] == 142
    assert st["clean"].status == SKIPPED and st["pack"].status == SKIPPED
    dl = st["download"].summary
    assert dl["origin"] == "vggish-release" and dl["obtained"] == dl["target"] == 142 * MAX_PER_CLASS - _shortfall(root)
    assert dl["failures_by_reason"][CORRUPT_RECORD] == 1 and dl["failures_by_reason"][NOT_IN_RELEASE] >= 100
    assert dl["label_disagreements"] == 1
    layout = DatasetLayout(root)
    obtained = {f"{r.ytid}_{round(r.start_s * 1000)}": r for r in read_obtained(root)}
    assert obtained[built.corrupt].status == "failed" and obtained[built.corrupt].reason == CORRUPT_RECORD
    assert obtained[built.relabelled].status == "ok" and obtained[built.relabelled].release_labels == ("/m/09x0r",)
    assert all(obtained[c].reason == NOT_IN_RELEASE for c in built.left_out if c in obtained)
    meta = json.loads(layout.release_obtained_json.read_text(encoding="utf-8"))
    assert meta["release"]["problems_total"] == 1 and "payload CRC mismatch" in meta["release"]["problems"][0]
    # the manifest: origin, seconds present, the release's hash; the unavailable list with reasons
    clips = layout.release_clips_csv.read_text(encoding="utf-8").splitlines()
    assert clips[0] == "ytid,start_s,end_s,owner_mid,labels,source,origin,seconds,release_sha256,release_labels"
    assert len(clips) - 1 == dl["obtained"]
    assert all(f",vggish-release,{n}," in c for c, n in ((c, c.split(",vggish-release,")[1].split(",")[0]) for c in clips[1:]))
    assert {c.split(",")[7] for c in clips[1:]} == {"8", "10"}
    assert all(c.split(",")[8] == meta["release"]["content_sha256"] for c in clips[1:])
    unavailable = layout.unavailable_csv.read_text(encoding="utf-8")
    assert f",{CORRUPT_RECORD}\n" in unavailable and f",{NOT_IN_RELEASE}\n" in unavailable
    # the splits: 100 / 15 / 27 and byte-identical to the audio path's for the same seed and clips
    assert st["splits"].summary["classes"] == {"train": 100, "val": 15, "test": 27}
    assert layout.splits_json.read_text(encoding="utf-8") == _audio_path_splits(tmp_path, layout)
    # fixed episodes and an accuracy well above chance (5-way: 20 %)
    ev = st["evaluate"].summary
    assert ev["episodes"] == 200 and ev["n_way"] == 5
    assert ev["accuracy"] > 0.6, ev
    from audioset_fewshot.evaluate import evaluate
    from audioset_fewshot.torchdata import SplitDataset

    episodes = next(layout.episodes_dir.glob("test_*.jsonl"))
    nc = evaluate(root, episodes=episodes, method="nearest-centroid", force=True)
    assert nc.mean > 0.6, nc.summary()
    test = SplitDataset(root, "test")
    x, y = test[0]
    assert tuple(x.shape) == (10, 128) and test.shape == (10, 128) and str(x.dtype) == "torch.float32"
    # a second run is up to date and draws the same episodes
    before = episodes.read_bytes()
    again = run(load_config(None, _overrides(built.metadata, built.folder)), root=root)
    status = {s.name: s.status for s in again.stages}
    assert status["download"] == status["manifest"] == status["features"] == status["splits"] == UP_TO_DATE, status
    assert episodes.read_bytes() == before
    assert st["features"].status == RAN


def _shortfall(root: Path) -> int:
    plan = json.loads(DatasetLayout(root).plan_meta_file.read_text(encoding="utf-8"))
    return sum(max(0, int(v["target"]) - int(v["candidates"])) for v in plan["shortfalls"].values())


def test_tar_gz_and_folder_give_byte_identical_packed_features(built: Built, tmp_path: Path, no_network: None) -> None:
    a, b = tmp_path / "from-folder", tmp_path / "from-tar"
    run(load_config(None, _overrides(built.metadata, built.folder)), root=a, until="features")
    run(load_config(None, _overrides(built.metadata, built.tar_gz)), root=b, until="features")
    fa = DatasetLayout(a).features_dir
    fb = DatasetLayout(b).features_dir
    key = json.loads((fa / "current.json").read_text(encoding="utf-8"))["key"]
    assert json.loads((fb / "current.json").read_text(encoding="utf-8"))["key"] == key
    for name in ("embeddings.u8", "mask.u8", "index.csv", "meta.json"):
        assert (fa / key / name).read_bytes() == (fb / key / name).read_bytes(), name
    assert DatasetLayout(a).release_obtained_csv.read_bytes() == DatasetLayout(b).release_obtained_csv.read_bytes()
    from audioset_fewshot.process import load_features

    store = load_features(a, verify=True)
    assert store.kind == "vggish-release" and store.shape[1:] == (128, 10)
    r = store.index[17]
    assert store.row_of(r.ytid, r.start_s) == 17 and 17 in store.rows_for(r.owner_mid).tolist()
    # a changed array is caught by verify, named
    with open(fa / key / "mask.u8", "r+b") as fh:
        fh.seek(3)
        fh.write(b"\x07")
    from audioset_fewshot.errors import IntegrityError

    with pytest.raises(IntegrityError, match=r"mask.u8: sha256 differs"):
        load_features(a, verify=True)
    store = load_features(b)
    q = np.fromfile(fb / key / "embeddings.u8", dtype=np.uint8).reshape(-1, 10, 128)
    m = np.fromfile(fb / key / "mask.u8", dtype=np.uint8).reshape(-1, 10)
    np.testing.assert_allclose(store.take([0])[0], (q[0] / 255 * 4 - 2) * m[0][:, None], atol=1e-6)


def test_config_and_cli_refuse_a_release_kind_without_a_release(tmp_path: Path) -> None:
    from audioset_fewshot.errors import ConfigError

    with pytest.raises(ConfigError, match="features.kind 'vggish-release' needs the release"):
        load_config(None, {"features.kind": "vggish-release"})
    with pytest.raises(ConfigError, match="'vggish'.*Did you mean 'vggish-release'"):
        load_config(None, {"features.kind": "vggish"})


def _logmels_of(store: object, root: Path, *, drop_every: int = 40) -> object:
    """Class-separable synthetic log-mels of the same clips, with every ``drop_every``-th
    clip missing (as if cleaning had dropped it)."""
    from audioset_fewshot.process.features import FeatureStore
    from audioset_fewshot.process.pack import PackRow

    kept = [r for i, r in enumerate(store.index) if i % drop_every != 3]  # type: ignore[attr-defined]
    mids = sorted({r.owner_mid for r in kept})
    rng = np.random.default_rng(5)
    centre = {m: rng.normal(0, 5, (16, 1)) for m in mids}
    mels = np.stack([(centre[r.owner_mid] + rng.normal(0, 2, (16, 20))).astype(np.float32) for r in kept])
    rows = tuple(PackRow(i, r.ytid, r.start_s, r.owner_mid, r.labels, 160000, "none") for i, r in enumerate(kept))
    m64 = mels.astype(np.float64)
    return FeatureStore(
        root=root,
        key="lmsynthetic",
        path=root / "processed" / "features" / "lmsynthetic",
        mels=mels,
        index=rows,
        meta={"shape": list(mels.shape)},
        stats_count=np.full((len(rows), 16), 20.0),
        stats_sum=m64.sum(axis=2),
        stats_sumsq=(m64**2).sum(axis=2),
    )


def test_side_by_side_scores_both_feature_sets_on_the_same_episodes(built: Built, tmp_path: Path, no_network: None) -> None:
    from audioset_fewshot.compare import add_release_features, side_by_side
    from audioset_fewshot.process import load_features

    root = tmp_path / "root"
    run(load_config(None, _overrides(built.metadata, built.folder, **{"evaluate.steps": 0})), root=root, until="episodes")
    layout = DatasetLayout(root)
    em = load_features(root)
    lm = _logmels_of(em, root)
    episodes = next(layout.episodes_dir.glob("test_*.jsonl"))
    res = side_by_side(root, episodes=episodes, options=EvaluateConfig(k_shot=1, q_query=5), logmel=lm, embeddings=em, method="nearest-centroid")
    assert res.clips_common == len(lm.index) < len(em.index)  # type: ignore[attr-defined]
    assert 0 < res.episodes_used < res.episodes_total == 200
    assert res.logmel.kind == "logmel" and res.embeddings.kind == "vggish-release"
    assert res.logmel.mean > 0.6 and res.embeddings.mean > 0.6, res.summary()
    saved = json.loads((layout.eval_dir / "side_by_side.json").read_text(encoding="utf-8"))
    assert saved["episodes_used"] == res.episodes_used and saved["embeddings"]["mean"] == res.embeddings.mean
    from audioset_fewshot.report import write_report

    html = write_report(root).read_text(encoding="utf-8")
    assert "Side by side" in html and f"{res.embeddings.mean * 100:.1f}" in html
    # an audio root adds the release's embeddings of its own clips, its current features untouched
    audio = tmp_path / "audio-root"
    _audio_path_splits(audio.parent / "x", layout)  # writes x/audio-path-root: a manifest of the same clips
    audio_root = audio.parent / "x" / "audio-path-root"
    key = add_release_features(audio_root, release=built.tar_gz, workers=2)
    fdir = DatasetLayout(audio_root).features_dir
    assert not (fdir / "current.json").exists() and (fdir / key / "meta.json").is_file()
    added = load_features(audio_root, key=key)
    assert {r.clip_id for r in added.index} == {r.clip_id for r in em.index}


def test_the_run_command_obtains_from_the_release(built: Built, tmp_path: Path) -> None:
    import subprocess
    import sys

    root = tmp_path / "cli-root"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "audioset_fewshot",
            "run",
            "--root",
            str(root),
            "--metadata-dir",
            str(built.metadata),
            "--kind",
            "vggish-release",
            "--release",
            str(built.tar_gz),
            "--until",
            "manifest",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "AUDIOSET_FEWSHOT_PROGRESS": "0"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "from the VGGish embedding release" in proc.stdout and "not-in-release" in proc.stdout
    assert DatasetLayout(root).release_clips_csv.is_file() and not DatasetLayout(root).ledger_file.exists()
