"""Contract test: parse every module of the package with ``ast`` and enforce the architecture.

- Import direction between stages (ranks of docs/architecture.md, "Import order"):
  a module imports only lower-ranked stages, or its own stage.  ``demo`` may
  import anything below ``pipeline``; below the pipeline nothing imports ``demo``.
- No ``print(`` anywhere in the package (commands use ``click.echo``) and no
  ``basicConfig`` in the library (``cli/__init__.py`` is allowed its one call).
- ``torch``, ``yt_dlp`` and Dask (``dask``, ``distributed``, ``dask_jobqueue``) are
  imported only inside functions (or under ``if TYPE_CHECKING:``), never when a
  module is imported.

Every violation is collected and reported at once.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "audioset_fewshot"
ROOT = "audioset_fewshot"

# stage -> rank (docs/architecture.md, "Import order").  torchdata and adapters are one stage.
RANKS: dict[str, int] = {
    "foundations": 0,
    "metadata": 1,
    "selection": 2,
    "plan": 3,
    "download": 4,
    "manifest": 5,
    "process": 6,
    "splits": 7,
    "episodes": 8,
    "torchdata": 9,
    "evaluate": 10,
    "report": 11,
    "demo": 11,
    "pipeline": 12,
    "cli": 13,
}
FOUNDATIONS = {"errors", "config", "layout", "validate", "_io", "_progress", "__init__", "engine"}
ALIASES = {
    "adapters": "torchdata",
    "__main__": "cli",
    "release": "download",
    "compare": "evaluate",
    "models": "evaluate",
    "methods": "evaluate",
    "encoders": "evaluate",
}
HEAVY = ("torch", "yt_dlp", "dask", "distributed", "dask_jobqueue")
BASICCONFIG_ALLOWED = {"cli/__init__.py": 1}


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"src/audioset_fewshot/{self.path}:{self.line}: {self.what}"


def stage_of(parts: tuple[str, ...]) -> str | None:
    """Stage of a module given its dotted parts below the package (``("metadata", "fetch")``)."""
    if not parts:
        return "foundations"
    head = parts[0]
    if head in FOUNDATIONS or (len(parts) == 1 and head.startswith("_") and head != "__main__"):
        return "foundations"
    head = ALIASES.get(head, head)
    return head if head in RANKS else None


def module_parts(path: Path, pkg: Path) -> tuple[str, ...]:
    rel = path.relative_to(pkg).with_suffix("")
    parts = rel.parts
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return tuple(parts)


def _resolve(node: ast.ImportFrom, path: Path, pkg: Path) -> list[tuple[str, ...]]:
    """Package-internal modules an ImportFrom refers to (dotted parts below the package)."""
    if node.level == 0:
        if not node.module or not (node.module == ROOT or node.module.startswith(ROOT + ".")):
            return []
        base = tuple(node.module.split(".")[1:])
    else:
        pkg_parts = module_parts(path, pkg)
        if path.name != "__init__.py":
            pkg_parts = pkg_parts[:-1]
        up = node.level - 1
        base = pkg_parts[: len(pkg_parts) - up] if up else pkg_parts
        if node.module:
            base = base + tuple(node.module.split("."))
    if base:
        return [base]
    # "from audioset_fewshot import x": each name is a module (or a foundation attribute)
    return [(alias.name,) for alias in node.names]


class _Checker(ast.NodeVisitor):
    def __init__(self, path: Path, pkg: Path) -> None:
        self.path = path
        self.pkg = pkg
        self.rel = path.relative_to(pkg).as_posix()
        self.depth = 0  # function nesting
        self.imports: list[tuple[int, tuple[str, ...]]] = []
        self.violations: list[Violation] = []
        self.basicconfig: list[int] = []

    # functions: heavy imports are fine inside them
    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    def visit_If(self, node: ast.If) -> None:
        # "if TYPE_CHECKING:" imports never run: heavy imports are fine there
        t = node.test
        typing_only = (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")
        if not typing_only:
            self.generic_visit(node)
            return
        self.depth += 1
        for child in node.body:
            self.visit(child)
        self.depth -= 1
        for child in node.orelse:
            self.visit(child)

    def _heavy(self, name: str, line: int) -> None:
        top = name.split(".")[0]
        if top in HEAVY and self.depth == 0:
            self.violations.append(Violation(self.rel, line, f"'{top}' imported at module level; import it inside the function that needs it"))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._heavy(alias.name, node.lineno)
            if alias.name == ROOT or alias.name.startswith(ROOT + "."):
                self.imports.append((node.lineno, tuple(alias.name.split(".")[1:])))
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level == 0 and node.module:
            self._heavy(node.module, node.lineno)
            if node.module == "logging" and any(a.name == "basicConfig" for a in node.names):
                self.basicconfig.append(node.lineno)
        for target in _resolve(node, self.path, self.pkg):
            self.imports.append((node.lineno, target))
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name) and node.func.id == "print":
            self.violations.append(Violation(self.rel, node.lineno, "print() call; library code logs, commands use click.echo"))
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr == "basicConfig":
            self.basicconfig.append(node.lineno)
        self.generic_visit(node)


def check_module(path: Path, pkg: Path = PKG) -> list[Violation]:
    """Every contract violation in one module of the package at ``pkg``."""
    rel = path.relative_to(pkg).as_posix()
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as err:
        return [Violation(rel, err.lineno or 0, f"does not parse: {err.msg}")]
    checker = _Checker(path, pkg)
    checker.visit(tree)
    out = list(checker.violations)
    allowed = BASICCONFIG_ALLOWED.get(rel, 0)
    if len(checker.basicconfig) > allowed:
        for line in checker.basicconfig[allowed:]:
            out.append(Violation(rel, line, "logging.basicConfig in the library; only cli/__init__.py configures logging"))
    mine = stage_of(module_parts(path, pkg))
    if mine is None:
        out.append(Violation(rel, 1, f"module has no stage rank; add its stage to docs/architecture.md and RANKS in {Path(__file__).name}"))
        return out
    for line, target in checker.imports:
        theirs = stage_of(target)
        if theirs is None or theirs == mine:
            continue  # not a stage module (e.g. a package attribute), or the same stage
        ok = RANKS[theirs] < RANKS[mine]
        if mine == "demo":
            ok = RANKS[theirs] < RANKS["pipeline"]
        if theirs == "demo" and RANKS[mine] < RANKS["pipeline"]:
            ok = False
        if not ok:
            dotted = ".".join((ROOT, *target))
            out.append(
                Violation(
                    rel, line, f"stage '{mine}' (rank {RANKS[mine]}) imports {dotted} of stage '{theirs}' (rank {RANKS[theirs]}): imports must point upstream"
                )
            )
    return out


def all_modules() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


def test_package_honours_the_architecture_contract() -> None:
    modules = all_modules()
    assert len(modules) > 10, f"expected the package's modules under {PKG}"
    violations = [v for p in modules for v in check_module(p)]
    report = "\n".join(str(v) for v in violations)
    assert not violations, f"{len(violations)} contract violation(s):\n{report}"


# --- the checker itself catches what it must (synthetic modules written under tmp_path) ---


@pytest.fixture
def fake_pkg(tmp_path: Path) -> Path:
    root = tmp_path / "audioset_fewshot"
    (root / "metadata").mkdir(parents=True)
    (root / "cli").mkdir()
    return root


def _write(root: Path, rel: str, text: str) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return p


def test_checker_reports_every_kind_of_violation(fake_pkg: Path) -> None:
    bad = _write(
        fake_pkg,
        "metadata/bad.py",
        "import torch\n"
        "from yt_dlp import YoutubeDL\n"
        "from audioset_fewshot.selection import select_classes\n"
        "from ..plan import make_plan\n"
        "import logging\n"
        "logging.basicConfig()\n"
        "def f():\n"
        "    import torch\n"
        "    print('x')\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    import torch\n"
        "class C:\n"
        "    import yt_dlp\n",
    )
    found = check_module(bad, fake_pkg)
    whats = "\n".join(str(v) for v in found)
    assert "bad.py:1: 'torch' imported at module level" in whats
    assert "bad.py:2: 'yt_dlp' imported at module level" in whats
    assert "bad.py:3: stage 'metadata' (rank 1) imports audioset_fewshot.selection" in whats
    assert "bad.py:4: stage 'metadata' (rank 1) imports audioset_fewshot.plan" in whats
    assert "bad.py:6: logging.basicConfig" in whats
    assert "bad.py:9: print() call" in whats
    assert "bad.py:14: 'yt_dlp' imported at module level" in whats  # a class body runs at import
    assert "bad.py:8" not in whats and "bad.py:12" not in whats  # inside a function / TYPE_CHECKING
    assert len(found) == 7


def test_checker_accepts_upstream_imports_and_the_cli_basicconfig(fake_pkg: Path) -> None:
    good = _write(fake_pkg, "metadata/good.py", "from audioset_fewshot.errors import ParseError\nfrom . import ontology\nfrom .segments import read_segments\n")
    cli = _write(fake_pkg, "cli/__init__.py", "import logging\nfrom audioset_fewshot.pipeline import run\ndef main():\n    logging.basicConfig()\n")
    assert check_module(good, fake_pkg) == []
    assert check_module(cli, fake_pkg) == []
    second = _write(fake_pkg, "cli/x.py", "import logging\nlogging.basicConfig()\n")
    assert [v.what.split(";")[0] for v in check_module(second, fake_pkg)] == ["logging.basicConfig in the library"]


def test_checker_demo_rules(fake_pkg: Path) -> None:
    demo = _write(fake_pkg, "demo/catalog.py", "from audioset_fewshot.report import write_report\nfrom audioset_fewshot.pipeline import run\n")
    dl = _write(fake_pkg, "download/runner.py", "from audioset_fewshot.demo import server\n")
    assert [v.line for v in check_module(demo, fake_pkg)] == [2]
    assert [v.line for v in check_module(dl, fake_pkg)] == [1]


def test_checker_flags_a_module_without_a_stage(fake_pkg: Path) -> None:
    stray = _write(fake_pkg, "gadgets.py", "x = 1\n")
    assert "no stage rank" in str(check_module(stray, fake_pkg)[0])


# --- no import cycle anywhere in the package (inside a stage too) ---


class _ImportEdges(ast.NodeVisitor):
    """Package-internal imports of one module that run (function-level ones included,
    ``if TYPE_CHECKING:`` blocks left out: they never run)."""

    def __init__(self, path: Path, pkg: Path) -> None:
        self.path, self.pkg = path, pkg
        self.targets: list[tuple[int, tuple[str, ...]]] = []

    def visit_If(self, node: ast.If) -> None:
        t = node.test
        if (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name == ROOT or alias.name.startswith(ROOT + "."):
                self.targets.append((node.lineno, tuple(alias.name.split(".")[1:])))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for base in _resolve(node, self.path, self.pkg):
            named = [base + (a.name,) for a in node.names if _module_file(base + (a.name,), self.pkg) is not None]
            self.targets += [(node.lineno, t) for t in named] or [(node.lineno, base)]


def _module_file(parts: tuple[str, ...], pkg: Path) -> Path | None:
    if not parts:
        return pkg / "__init__.py"
    for candidate in (pkg.joinpath(*parts).with_suffix(".py"), pkg.joinpath(*parts) / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def import_graph(pkg: Path = PKG) -> dict[str, dict[str, int]]:
    """``{module: {imported module: line}}`` over the package's own modules."""
    graph: dict[str, dict[str, int]] = {}
    for path in sorted(p for p in pkg.rglob("*.py") if "__pycache__" not in p.parts):
        name = ".".join((ROOT, *module_parts(path, pkg)))
        visitor = _ImportEdges(path, pkg)
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        edges = graph.setdefault(name, {})
        for line, target in visitor.targets:
            if _module_file(target, pkg) is None:
                target = target[:-1]  # "from audioset_fewshot.x import attr" of a foundation module's attribute
            dotted = ".".join((ROOT, *target))
            if dotted != name:
                edges.setdefault(dotted, line)
    return graph


def import_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def test_no_import_cycle_anywhere() -> None:
    graph = import_graph()
    cycles = import_cycles(graph)
    lines = []
    for comp in cycles:
        members = set(comp)
        lines.append(" <-> ".join(comp) + ": " + "; ".join(f"{a} imports {b} (line {ln})" for a in comp for b, ln in graph[a].items() if b in members))
    assert not cycles, "import cycles (move the shared part into a module both import):\n" + "\n".join(lines)


def test_cycle_check_sees_a_lazy_cycle_inside_a_stage(fake_pkg: Path) -> None:
    _write(fake_pkg, "__init__.py", "")
    _write(fake_pkg, "process/__init__.py", "")
    _write(fake_pkg, "process/clean.py", "def f():\n    from audioset_fewshot.process.pack import g\n")
    _write(fake_pkg, "process/pack.py", "from audioset_fewshot.process.clean import f\n")
    _write(fake_pkg, "process/typed.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from audioset_fewshot.process.pack import g\n")
    _write(fake_pkg, "process/user.py", "from audioset_fewshot.process.typed import x\n")
    cycles = import_cycles(import_graph(fake_pkg))
    assert cycles == [["audioset_fewshot.process.clean", "audioset_fewshot.process.pack"]]
