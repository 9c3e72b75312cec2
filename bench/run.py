"""Run the benchmarks, one after the other, each in its own process, and collect their figures.

    python bench/run.py                    # every benchmark, full sizes
    python bench/run.py --quick            # small sizes: a smoke run
    python bench/run.py process episodes   # only these
    python bench/run.py --check            # exit 1 when a goal is missed (not for CI: machines are noisy)
    python bench/run.py --readme           # then rewrite README.md's benchmark table from this run's JSON

Each ``bench/bench_<name>.py`` measures our code against a bound measured in the
same run (and against a faithful re-implementation of today's approach) and
prints the ratios against the goals, beside the machine it ran on.  This script
collects every benchmark's JSON (``--json PATH``, see ``bench/_report.py``) into
one document, ``bench/_work/results.json`` by default; ``bench/readme.py``
renders the README table from such a document.

To add a benchmark: write ``bench/bench_<name>.py`` that takes ``--quick`` and
``--json PATH`` (``_report.bench_parser``) and ends with ``Report.finish``, then
add ``<name>`` to ``BENCHES`` below.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import SCHEMA_VERSION, loadavg, machine, machine_line

HERE = Path(__file__).resolve().parent

# the benchmarks, in the order they run: bench/bench_<name>.py
BENCHES: list[str] = [
    "metadata",
    "download",
    "download_dask",
    "process",
    "episodes",
    "release",
    "origins",
    "fewshot",
    "engine",
]
TIMEOUT_S = 3600  # per benchmark


def run(names: list[str], *, quick: bool, out: Path) -> dict[str, Any]:
    """Run ``names`` and return the collected document (also written to ``out``)."""
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "command": "python bench/run.py" + (" --quick" if quick else "") + ("" if names == BENCHES else " " + " ".join(names)),
        "quick": quick,
        "machine": machine(),
        "load_before": loadavg(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "benches": {},
        "failed": [],
    }
    t_all = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    for name in names:
        script = HERE / f"bench_{name}.py"
        if not script.exists():
            print(f"== {name}: {script.name} not found (known: {', '.join(BENCHES)})", flush=True)
            doc["failed"].append(name)
            continue
        part = out.with_name(f"{out.stem}.{name}.json")
        part.unlink(missing_ok=True)
        print(f"\n== bench {name}{' (quick)' if quick else ''}", flush=True)
        t0 = time.perf_counter()
        cmd = [sys.executable, str(script), "--json", str(part)] + (["--quick"] if quick else [])
        try:
            rc = subprocess.run(cmd, check=False, timeout=TIMEOUT_S).returncode
        except subprocess.TimeoutExpired:
            rc = -1
            print(f"== {name}: killed after {TIMEOUT_S} s", flush=True)
        print(f"== {name}: exit {rc} after {time.perf_counter() - t0:.1f} s", flush=True)
        if rc != 0 or not part.is_file():
            doc["failed"].append(name)
            continue
        doc["benches"][name] = json.loads(part.read_text(encoding="utf-8"))
    doc["load_after"] = loadavg()
    doc["seconds"] = round(time.perf_counter() - t_all, 1)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    return doc


def summary(doc: dict[str, Any]) -> tuple[str, list[str]]:
    """The summary printed after all benchmarks, and the keys of the goals missed."""
    lines = [f"\nall benchmarks ({doc['seconds'] / 60:.1f} min) on {machine_line(doc['machine'], doc['load_before'], doc['load_after'])}"]
    missed: list[str] = []
    for name, part in doc["benches"].items():
        for r in part["rows"]:
            if r["met"] is None:
                continue
            flag = "met" if r["met"] else "MISSED"
            if not r["met"]:
                missed.append(r["key"])
            lines.append(f"  {flag:<6} {r['key']:<36} {r['ratio_text']:>8}  goal {r['goal_text']:<17} ({r['ours']} vs {r['against']})")
        if part.get("load_after"):
            lines.append(f"         ({name}: load average {part['load_before'][0]:.2f} -> {part['load_after'][0]:.2f})")
    for name in doc["failed"]:
        lines.append(f"  FAILED {name}")
    return "\n".join(lines), missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {', '.join(BENCHES)})")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument(
        "--json", type=Path, default=HERE / "_work" / "results.json", metavar="PATH", help="where the collected figures go (default bench/_work/results.json)"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed or a benchmark fails")
    parser.add_argument("--readme", action="store_true", help="rewrite README.md's benchmark table from this run (full sizes; the table lists what ran)")
    args = parser.parse_args(argv)
    names = args.names or list(BENCHES)
    if args.readme and args.quick:
        parser.error("--readme needs full sizes (no --quick): the README states only figures of a full run on the machine it names")
    doc = run(names, quick=args.quick, out=args.json)
    text, missed = summary(doc)
    print(text)
    print(f"figures: {args.json}")
    if args.readme:
        from readme import ReadmeError, update_readme

        try:
            print(f"README table rewritten: {update_readme(doc)}")
        except ReadmeError as err:
            print(f"README left alone: {err}")
            return 1
    if doc["failed"]:
        print(f"\nfailed: {', '.join(doc['failed'])}")
        return 1
    if args.check and missed:
        print(f"\ngoals missed: {', '.join(missed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
