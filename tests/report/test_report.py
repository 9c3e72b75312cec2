"""The HTML report from small hand-made artifacts (the demo's full report is tested in tests/pipeline)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from audioset_fewshot.download.ledger import Ledger
from audioset_fewshot.layout import DatasetLayout
from audioset_fewshot.plan import PlanEntry, SamplingPlan
from audioset_fewshot.report import referenced_images, write_report

HOSTILE_TITLE = '<script>alert("x")</script> & <b>bold</b>'


def _fake_root(root: Path) -> DatasetLayout:
    """A root with a plan, a ledger, clean.csv, splits.json and eval/results.json."""
    layout = DatasetLayout(root)
    layout.plan_dir.mkdir(parents=True)
    targets = {"/m/05tny_": 3, "/m/07qrkrw": 3}
    layout.plan_meta_file.write_text(json.dumps({"targets": targets, "shortfalls": {}, "content_hash": "x"}), encoding="utf-8")
    rows = [
        ("aaaaaaaaaaa", "/m/05tny_", "balanced", "ok", None, HOSTILE_TITLE, "<i>up</i>", "Creative Commons Attribution license (reuse allowed)", "UCx"),
        ("bbbbbbbbbbb", "/m/05tny_", "eval", "ok", None, "t", "u", "Standard YouTube License", "UCx"),
        ("ccccccccccc", "/m/07qrkrw", "balanced", "failed-permanent", "private", None, None, None, None),
        ("ddddddddddd", "/m/07qrkrw", "unbalanced", "pending", None, None, None, None, None),
    ]
    entries = [PlanEntry(f"{y}_0", y, 0.0, 10.0, mid, (mid,), src, k) for k, (y, mid, src, *_) in enumerate(rows)]
    results = {
        f"{y}_0": {"status": status, "reason": reason, "title": title, "uploader": uploader, "license": lic, "channel_id": channel}
        for y, _, _, status, reason, title, uploader, lic, channel in rows
    }
    with Ledger(layout.ledger_file) as ledger:  # written through the ledger module, as a download would
        ledger.sync_plan(SamplingPlan.build(entries, targets))
        ledger.copy_results(results, {})
    layout.processed_dir.mkdir()
    layout.clean_csv.write_text(
        "ytid,start_s,owner_mid,path,verdict,reason,action,sample_rate_hz,frames,duration_s,rms_dbfs,peak,clipped_fraction\n"
        "aaaaaaaaaaa,0.000,/m/05tny_,audio/m_05tny_/aaaaaaaaaaa_0.flac,keep,ok,kept,16000,160000,10.000,-20.5,0.5,0\n"
        "bbbbbbbbbbb,0.000,/m/05tny_,audio/m_05tny_/bbbbbbbbbbb_0.flac,reject,silent,dropped,16000,48000,3.000,-70.0,0.01,0\n",
        encoding="utf-8",
    )
    stats = {"clips": 2, "ytids": 2, "leaky_clips": 1, "leaky_fraction": 0.5, "shared_ytids": 0}
    layout.splits_json.write_text(
        json.dumps(
            {
                "params": {"seed": 0, "leakage": "exclusive"},
                "classes": {"train": [{"mid": "/m/05tny_"}], "val": [], "test": [{"mid": "/m/07qrkrw"}]},
                "leakage_report": {
                    "before": {"train": stats, "val": stats, "test": stats},
                    "after": {"train": {**stats, "clips": 1, "leaky_clips": 0}},
                    "multi_label_fraction": 0.1,
                },
                "content_sha256": "ab" * 32,
            }
        ),
        encoding="utf-8",
    )
    layout.eval_dir.mkdir()
    layout.eval_results.write_text(
        json.dumps({"method": "protonet", "result": {"mean": 0.75, "ci95": 0.02, "n_way": 5, "k_shot": 5, "q_query": 5, "episodes": 300, "split": "test"}}),
        encoding="utf-8",
    )
    return layout


def test_empty_root_says_what_is_missing(tmp_path: Path) -> None:
    path = write_report(tmp_path)
    text = path.read_text(encoding="utf-8")
    assert path == DatasetLayout(tmp_path).report_html
    assert text.count("not produced yet") == 6
    assert referenced_images(text) == []


def test_report_from_artifacts_escapes_youtube_text(tmp_path: Path) -> None:
    layout = _fake_root(tmp_path)
    text = write_report(tmp_path).read_text(encoding="utf-8")
    assert "<script>" not in text and "<b>bold</b>" not in text and "<i>up</i>" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in text
    assert "Bark" in text and "Meow" in text  # class names from the ontology
    assert "<td>aaaaaaaaaaa</td><td>0.000</td>" in text
    assert "75.0% \u00b1 2.0%" in text
    images = referenced_images(text)
    assert {
        "obtained_vs_target.png",
        "failures_by_reason.png",
        "availability_by_source.png",
        "clip_lengths.png",
        "loudness.png",
        "splits.png",
        "accuracy.png",
    } <= set(images)
    for name in images:
        png = layout.report_dir / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "not produced yet: processed/features" in text  # the gallery needs features


def test_rerun_is_a_no_op_until_an_input_changes(tmp_path: Path) -> None:
    layout = _fake_root(tmp_path)
    write_report(tmp_path)
    st = layout.report_html.stat()
    write_report(tmp_path)
    assert (layout.report_html.stat().st_ino, layout.report_html.stat().st_mtime_ns) == (st.st_ino, st.st_mtime_ns)
    layout.eval_results.write_text(json.dumps({"method": "protonet", "result": {"mean": 0.5, "ci95": 0.02, "n_way": 5}}), encoding="utf-8")
    text = write_report(tmp_path).read_text(encoding="utf-8")
    assert "50.0% \u00b1 2.0%" in text


def test_report_command(tmp_path: Path) -> None:
    _fake_root(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "audioset_fewshot", "report", "--root", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "index.html" in proc.stdout
    missing = subprocess.run([sys.executable, "-m", "audioset_fewshot", "report", "--root", str(tmp_path / "nope")], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr


@pytest.mark.parametrize("bad", ["", "x"])
def test_referenced_images_parses_img_tags(bad: str) -> None:
    html = f'<p>{bad}</p><img src="a.png" alt="a"><IMG SRC="b.png"><img alt="no src">'
    assert referenced_images(html) == ["a.png", "b.png"]
