"""Run every benchmark, one after the other, each in its own process.

    python bench/run.py            # full sizes (tens of minutes on 2 cores)
    python bench/run.py --quick    # small sizes, a smoke run
    python bench/run.py metadata process   # only these

Each ``bench/bench_<name>.py`` measures our code and a faithful
re-implementation of today's approach side by side in one run and prints the
ratios against the goals of its issue.  Results are also appended as JSON lines
to ``bench/_work/results.jsonl`` when a benchmark writes them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["metadata", "download", "process", "episodes", "release", "fewshot"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {', '.join(ORDER)})")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    args = parser.parse_args(argv)
    names = args.names or ORDER
    failed: list[str] = []
    for name in names:
        script = HERE / f"bench_{name}.py"
        if not script.exists():
            print(f"== {name}: {script.name} not found", flush=True)
            failed.append(name)
            continue
        print(f"\n== bench {name} {'(quick)' if args.quick else ''}", flush=True)
        t0 = time.perf_counter()
        cmd = [sys.executable, str(script)] + (["--quick"] if args.quick else [])
        rc = subprocess.run(cmd, check=False, timeout=3600).returncode
        print(f"== {name}: exit {rc} after {time.perf_counter() - t0:.1f} s", flush=True)
        if rc != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
