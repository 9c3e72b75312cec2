"""Every option a message recommends exists on the command that prints it.

A source scan: every string literal of the package (f-string parts included,
docstrings of library code left out) and every line of README.md and docs/ that
names ``--flags`` is checked.

* A flag after a named command (``'audioset-fewshot episodes --force'``,
  ``'splits --metadata-dir'``) must be an option of that command.
* A bare flag (``"lower --min-free"``) in ``cli/<name>.py`` must be an option of
  that command; in a library module, an option of every command that can print
  it: every command whose imports (at any depth, function-level imports
  included) reach the module.

The group's own options (``--debug``, ``--verbose``, ``--help``, ``--version``)
count for every command.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from audioset_fewshot.cli import COMMANDS, cli

REPO = Path(__file__).resolve().parents[2]
PKG = REPO / "src" / "audioset_fewshot"
FLAG = re.compile(r"(?<![\w-])--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)")
# a named command: "audioset-fewshot CMD ...", or a quoted "'CMD --flag ...'" (a command name then its arguments)
NAMED = re.compile(r"audioset-fewshot\s+(?P<cmd>[a-z][a-z-]*)(?P<args>(?:[^'\"`\n;|)(&]|&(?!&))*)")
QUOTED = re.compile(r"['`](?P<cmd>[a-z][a-z-]*)(?P<args>\s+--[^'`\n]*)['`]")
# flags of other programs that our messages quote on purpose
FOREIGN = {"cookies-from-browser"}  # yt-dlp's option, named as such ("yt-dlp's --cookies-from-browser")
# (command, module) pairs the call graph links although the command never runs that code, each with the reason
NOT_PRINTED_BY: dict[tuple[str, str], str] = {
    ("serve-demo", "audioset_fewshot.metadata.fetch"): "the demo's class choice calls select_from_config(counts=False): no segment list is fetched",
    ("rebuild", "audioset_fewshot.download.origins._fs"): "rebuild gives run_download no origins: it fetches from YouTube (base_url) only",
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


class CallGraph:
    """Which functions of the package a function can reach (an over-approximation).

    Nodes are ``module:Qualname`` for top-level functions and methods (nested
    functions belong to their enclosing one) and ``module:`` for what sits at
    module or class level.  A node reaches what it names: a function or class
    of its module or imported from another (a class means all its methods), a
    function or class of an imported module (``mod.func``), any method of that
    name (``obj.meth``) of a class the module defines or imports by name, and
    its own module's node.
    """

    def __init__(self) -> None:
        self.trees = {m: ast.parse(p.read_text(encoding="utf-8")) for m, p in MODULES.items()}
        self.functions: dict[str, dict[str, ast.AST]] = {}  # module -> top-level function name -> node
        self.classes: dict[str, dict[str, list[str]]] = {}  # module -> class -> method names
        for m, tree in self.trees.items():
            self.functions[m] = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
            self.classes[m] = {}
            for n in tree.body:
                if isinstance(n, ast.ClassDef):
                    names = [b.name for b in n.body if isinstance(b, (ast.FunctionDef, ast.AsyncFunctionDef))]
                    self.classes[m][n.name] = names
        self.aliases = {m: self._aliases(m, tree) for m, tree in self.trees.items()}
        # classes a module can hold instances of: its own and those it imports by name
        self.known = {
            m: {(src, a) for src, a in self.aliases[m].values() if a in self.classes.get(src, {})} | {(m, c) for c in self.classes[m]} for m in self.trees
        }
        self.edges: dict[str, set[str]] = {}
        self.constants = {node_id for m, tree in self.trees.items() for node_id, _ in self._units(m, tree) if ":=" in node_id}
        for m, tree in self.trees.items():
            for node_id, body in self._units(m, tree):
                self.edges.setdefault(node_id, set()).update(self._refs(m, body))

    @staticmethod
    def _units(module: str, tree: ast.Module) -> Iterator[tuple[str, list[ast.AST]]]:
        top: list[ast.AST] = []
        for n in tree.body:
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield f"{module}:{n.name}", [n]
            elif isinstance(n, (ast.Assign, ast.AnnAssign)) and all(isinstance(t, ast.Name) for t in _targets(n)):
                for t in _targets(n):  # a module-level constant: reached by the code that names it
                    yield f"{module}:={t.id}", [n]  # type: ignore[attr-defined]
            elif isinstance(n, ast.ClassDef):
                for b in n.body:
                    if isinstance(b, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        yield f"{module}:{n.name}.{b.name}", [b]
                    else:
                        top.append(b)
                top.extend(n.decorator_list)
            else:
                top.append(n)
        yield f"{module}:", top

    def _aliases(self, module: str, tree: ast.Module) -> dict[str, tuple[str, str | None]]:
        """local name -> (package module, attribute or None for the module itself)."""
        is_pkg = MODULES[module].name == "__init__.py"
        out: dict[str, tuple[str, str | None]] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name in MODULES:
                        out[a.asname or a.name] = (a.name, None)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = module.split(".")
                    base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                    src = ".".join(base + ([node.module] if node.module else []))
                else:
                    src = node.module or ""
                for a in node.names:
                    if f"{src}.{a.name}" in MODULES:
                        out[a.asname or a.name] = (f"{src}.{a.name}", None)
                    elif src in MODULES:
                        out[a.asname or a.name] = (src, a.name)
        return out

    def _target(self, module: str, name: str, depth: int = 0) -> set[str]:
        """Nodes that ``name`` of ``module`` stands for (following re-exports)."""
        if f"{module}:={name}" in self.edges or f"{module}:={name}" in self.constants:
            return {f"{module}:={name}"}
        if name in self.functions[module]:
            return {f"{module}:{name}", f"{module}:"}
        if name in self.classes[module]:
            return {f"{module}:{name}.{meth}" for meth in self.classes[module][name]} | {f"{module}:"}
        alias = self.aliases[module].get(name)
        if alias is not None and alias[1] is not None and depth < 5:
            return self._target(alias[0], alias[1], depth + 1)
        return set()

    def _refs(self, module: str, body: list[ast.AST]) -> set[str]:
        out = {f"{module}:"}
        for stmt in body:
            for node in ast.walk(stmt):
                if isinstance(node, ast.Name):
                    out |= self._target(module, node.id)
                elif isinstance(node, ast.Attribute):
                    base = node.value
                    alias = self.aliases[module].get(base.id) if isinstance(base, ast.Name) else None
                    if alias is not None and alias[1] is None:
                        out |= self._target(alias[0], node.attr)
                    else:  # a method of a class this module names
                        out.update(f"{src}:{c}.{node.attr}" for src, c in self.known[module] if node.attr in self.classes[src][c])
        return out

    def reach(self, start: str) -> set[str]:
        seen: set[str] = set()
        todo = [start]
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo.extend(self.edges.get(n, set()) - seen)
        return seen

    def node_of(self, module: str, line: int) -> str:
        """The node a line of ``module`` belongs to."""
        for node_id, body in self._units(module, self.trees[module]):
            if node_id.endswith(":"):
                continue
            first = body[0]
            if first.lineno <= line <= (first.end_lineno or first.lineno):  # type: ignore[attr-defined]
                return node_id
        return f"{module}:"


def _targets(node: ast.Assign | ast.AnnAssign) -> list[ast.expr]:
    return list(node.targets) if isinstance(node, ast.Assign) else [node.target]


def _flags(cmd: click.Command) -> set[str]:
    """Long options of a command and, for a group (``origins check``), of its subcommands."""
    out = {o.lstrip("-") for p in cmd.params for o in (*p.opts, *p.secondary_opts) if o.startswith("--")}
    if isinstance(cmd, click.Group):
        for sub in cmd.commands.values():
            out |= _flags(sub)
    return out


def _options() -> dict[str, set[str]]:
    ctx = click.Context(cli)
    group = _flags(cli) | {"help"}
    out: dict[str, set[str]] = {}
    for name in COMMANDS:
        cmd = cli.get_command(ctx, name)
        assert cmd is not None
        out[name] = group | _flags(cmd)
    return out


OPTIONS = _options()
GRAPH = CallGraph()
REACH: dict[str, set[str]] = {name: GRAPH.reach(f"{module}:command") | {f"{module}:"} for name, (module, _) in COMMANDS.items()}
CLI_MODULE = {module: name for name, (module, _) in COMMANDS.items()}


@dataclass(frozen=True)
class Mention:
    where: str  # file:line
    text: str
    command: str | None  # the command the text names, None for a bare flag
    flag: str


def _docstring_nodes(tree: ast.Module, *, keep_command: bool) -> set[int]:
    """Docstrings (not messages), but for a CLI ``command`` function's: --help prints that one."""
    ids: set[int] = set()
    for node in ast.walk(tree):
        if keep_command and isinstance(node, ast.FunctionDef) and node.name == "command":
            continue
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                ids.add(id(first.value))
    return ids


def _strings(path: Path, *, in_cli: bool) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _docstring_nodes(tree, keep_command=in_cli)
    inner = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else "{}" for v in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip | inner:
            text = node.value
        else:
            continue
        if not text.lstrip().startswith("#"):  # a comment written into a YAML file, not a message
            yield node.lineno, text


def _mentions(where: str, text: str) -> Iterator[Mention]:
    rest = text
    for pattern in (NAMED, QUOTED):
        for m in pattern.finditer(text):
            if m.group("cmd") not in COMMANDS:
                continue
            for f in FLAG.finditer(m.group("args")):
                yield Mention(where, text, m.group("cmd"), f.group(1))
            rest = rest.replace(m.group(0), " ")
    for f in FLAG.finditer(rest):
        yield Mention(where, text, None, f.group(1))


def _source_mentions() -> Iterator[tuple[str, Mention]]:
    """(node, mention) for every flag in a string of the package."""
    for module, path in MODULES.items():
        in_cli = module.startswith("audioset_fewshot.cli")
        for line, text in _strings(path, in_cli=in_cli):
            for m in _mentions(f"{path.relative_to(REPO)}:{line}", text):
                yield GRAPH.node_of(module, line), m


def _printers(node: str) -> list[str]:
    module = node.partition(":")[0]
    if module in CLI_MODULE:
        return [CLI_MODULE[module]]
    return [name for name, reach in REACH.items() if node in reach and (name, module) not in NOT_PRINTED_BY]


def test_the_scan_sees_the_messages_it_checks() -> None:
    """The scan is not vacuous: it finds named and bare flags where we know there are some."""
    found = list(_source_mentions())
    assert any(m.command == "episodes" and m.flag == "force" for _, m in found)
    assert any(m.command is None and m.flag == "min-free" and node.startswith("audioset_fewshot.download.runner:") for node, m in found)
    assert "audioset_fewshot.download.runner:run_download" in REACH["run"]
    assert "audioset_fewshot.metadata.fetch:" in REACH["classes"]
    assert "audioset_fewshot.download.runner:run_download" not in REACH["diff"]
    assert set(_printers("audioset_fewshot.download.runner:_Run._check_disk")) >= {"download", "rebuild", "run"}


def test_every_flag_a_message_names_exists_on_the_command_that_prints_it() -> None:
    problems: list[str] = []
    for node, m in _source_mentions():
        if m.flag in FOREIGN:
            continue
        commands = [m.command] if m.command is not None else _printers(node)
        for cmd in commands:
            if m.flag not in OPTIONS[cmd]:
                problems.append(f"{m.where}: '{cmd}' has no --{m.flag} (message: {m.text.strip()[:120]!r})")
    assert not problems, "\n".join(sorted(set(problems)))


@pytest.mark.parametrize("doc", ["README.md", *sorted(p.relative_to(REPO).as_posix() for p in (REPO / "docs").glob("*.md"))])
def test_every_command_line_in_the_docs_uses_options_that_exist(doc: str) -> None:
    problems: list[str] = []
    for i, line in enumerate((REPO / doc).read_text(encoding="utf-8").splitlines(), 1):
        for m in NAMED.finditer(line):
            cmd = m.group("cmd")
            if cmd not in COMMANDS:
                continue
            args = m.group("args").split("#")[0]  # a shell comment after the command
            for f in FLAG.finditer(args):
                if f.group(1) not in OPTIONS[cmd]:
                    problems.append(f"{doc}:{i}: '{cmd}' has no --{f.group(1)}: {line.strip()}")
    assert not problems, "\n".join(problems)
