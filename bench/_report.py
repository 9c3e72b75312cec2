"""What every benchmark shares: the machine it ran on, its rows of figures, its JSON.

A benchmark script builds one :class:`Report`, adds a row per figure and calls
:meth:`Report.finish`, which prints the table and writes the JSON document that
``bench/run.py`` collects (``--json PATH``).  Three kinds of rows:

* ``bound``: our figure as a fraction of a physical bound measured in the same
  run, on the same data (e.g. pack vs the same pool decoding only).  These carry
  the goals: a ratio measured in one run is comparable across machines, an
  absolute rate is not.
* ``today``: our figure against a faithful re-implementation of the approach
  users have today, as a factor (``7.8x``).
* ``limit``: a figure against a fixed ceiling (peak memory, extractions per
  clip), as a fraction of it.
* ``info``: a figure without a goal, printed for context.

A ratio is always "higher is better" for ``bound`` / ``today`` (the caller
passes rates, or time of the reference over our time) and "lower is better" for
``limit``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
KINDS = ("bound", "today", "limit", "info")


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def memory_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 2**20
    except (OSError, ValueError):
        pass
    return None


def loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return []


def machine() -> dict[str, Any]:
    """The machine in a few fields: CPU model, cores, memory, OS, Python and library versions."""
    info: dict[str, Any] = {
        "cpu_model": cpu_model(),
        "cores": cores(),
        "cpu_count": os.cpu_count(),
        "memory_gib": None if (m := memory_gib()) is None else round(m, 1),
        "system": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
    }
    for lib in ("numpy", "torch", "soundfile", "librosa", "pandas"):
        mod = sys.modules.get(lib)
        if mod is not None:
            info[lib] = str(getattr(mod, "__version__", "?"))
    return info


def machine_line(m: dict[str, Any], load_before: list[float], load_after: list[float]) -> str:
    """One line naming the machine and its load, printed beside every table."""
    mem = f", {m['memory_gib']:.0f} GiB" if m.get("memory_gib") else ""
    lb = f"{load_before[0]:.2f}" if load_before else "?"
    la = f"{load_after[0]:.2f}" if load_after else "?"
    return f"{m['cpu_model']}, {m['cores']} cores{mem}, {m['system']}, Python {m['python']}; load average {lb} -> {la}"


@dataclass
class Row:
    """One figure of a benchmark, against its reference."""

    key: str  # stable id, e.g. "process.pack_vs_decode"
    measure: str  # what was measured, in words
    kind: str  # bound | today | limit | info
    ours: str  # our figure with its unit
    against: str  # the reference figure with its unit and what it is
    ratio: float | None = None
    goal: float | None = None  # minimum ratio (bound, today) or maximum (limit)
    met: bool | None = None
    values: dict[str, float] = field(default_factory=dict)  # the raw numbers behind the texts

    @property
    def ratio_text(self) -> str:
        return format_ratio(self.kind, self.ratio)

    @property
    def goal_text(self) -> str:
        if self.goal is None:
            return ""
        if self.kind == "today":
            return f">= {self.goal:g}x"
        if self.kind == "limit":
            return f"<= {self.goal:.0%}"
        return f">= {self.goal:.0%} of bound"


def format_ratio(kind: str, ratio: float | None) -> str:
    if ratio is None:
        return ""
    if kind == "today":
        return f"{ratio:.1f}x" if ratio < 100 else f"{ratio:.0f}x"
    return f"{ratio:.0%}"


class Report:
    """The figures of one benchmark run; see the module docstring."""

    def __init__(self, bench: str, *, quick: bool, params: dict[str, Any] | None = None) -> None:
        self.bench = bench
        self.quick = quick
        self.params = dict(params or {})
        self.load_before = loadavg()
        self.started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self._t0 = time.perf_counter()
        self.rows: list[Row] = []
        self.figures: dict[str, Any] = {}
        self.notes: list[str] = []

    def add(
        self,
        key: str,
        measure: str,
        *,
        kind: str,
        ours: str,
        against: str,
        ratio: float | None = None,
        goal: float | None = None,
        values: dict[str, float] | None = None,
    ) -> Row:
        if kind not in KINDS:
            raise ValueError(f"row kind must be one of {KINDS}, got {kind!r}")
        met: bool | None = None
        if goal is not None and ratio is not None:
            met = ratio <= goal if kind == "limit" else ratio >= goal
        row = Row(f"{self.bench}.{key}", measure, kind, ours, against, ratio, goal, met, dict(values or {}))
        self.rows.append(row)
        return row

    def ceiling(self, key: str, measure: str, value: float, ceiling: float, *, fmt: str, against: str | None = None) -> Row:
        """A ``limit`` row: ``value`` against a fixed ``ceiling``, met while at most it.  Both
        are shown with ``fmt`` (``"{:,.0f} MiB"``) unless ``against`` words the ceiling."""
        return self.add(key, measure, kind="limit", ours=fmt.format(value), against=fmt.format(ceiling) if against is None else against,
                        ratio=value / ceiling, goal=1.0, values={"ours": value, "against": ceiling})  # fmt: skip

    def note(self, text: str) -> None:
        self.notes.append(text)

    @property
    def missed(self) -> list[Row]:
        return [r for r in self.rows if r.met is False]

    def document(self) -> dict[str, Any]:
        load_after = loadavg()
        return {
            "schema_version": SCHEMA_VERSION,
            "bench": self.bench,
            "quick": self.quick,
            "params": self.params,
            "machine": machine(),
            "load_before": self.load_before,
            "load_after": load_after,
            "started": self.started,
            "seconds": round(time.perf_counter() - self._t0, 1),
            "rows": [{**asdict(r), "ratio_text": r.ratio_text, "goal_text": r.goal_text} for r in self.rows],
            "figures": _rounded(self.figures),
            "notes": self.notes,
        }

    def finish(self, json_path: Path | None) -> int:
        """Print the machine line and the table; write the JSON document when asked. Returns 0."""
        doc = self.document()
        print()
        print(f"{self.bench} benchmark{' (quick)' if self.quick else ''} on {machine_line(doc['machine'], doc['load_before'], doc['load_after'])}")
        print(table(self.rows))
        for n in self.notes:
            print(f"  {n}")
        if json_path is not None:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = json_path.with_name(json_path.name + ".tmp")
            tmp.write_text(json.dumps(doc, indent=1, default=str) + "\n", encoding="utf-8")
            os.replace(tmp, json_path)
        return 0


def table(rows: list[Row]) -> str:
    """A plain-text table of rows (what, ours, reference, ratio, goal, met)."""
    lines = [f"{'measure':<44} {'ours':>18} {'reference':>30} {'ratio':>8}  {'goal':<17} met"]
    for r in rows:
        flag = "" if r.met is None else ("yes" if r.met else "NO")
        lines.append(f"{r.measure[:44]:<44} {r.ours:>18} {r.against[:30]:>30} {r.ratio_text:>8}  {r.goal_text:<17} {flag}")
    return "\n".join(lines)


def bench_parser(doc: str | None) -> argparse.ArgumentParser:
    """A benchmark's argument parser: its module docstring as the description, and the
    two options every benchmark takes, ``--quick`` and ``--json PATH``."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write the figures as JSON here (bench/run.py does)")
    return parser


def best_of(rounds: int, fn: Callable[[], float]) -> tuple[float, list[float]]:
    """Run ``fn`` (which returns seconds) ``rounds`` times: (the smallest, all of them).

    On a shared machine other processes only ever add time, so the smallest of a
    few runs is the closest to what the code itself costs.
    """
    times = [fn() for _ in range(rounds)]
    return min(times), times


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def _rounded(obj: Any) -> Any:
    if isinstance(obj, float):
        return round(obj, 6)
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_rounded(v) for v in obj]
    return obj
