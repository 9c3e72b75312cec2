"""A YAML loader for configuration files that cannot be turned against the machine.

PyYAML's ``safe_load`` builds no arbitrary objects, but it still follows every
alias (a 438-byte "billion laughs" document expands to gigabytes), recurses
once per nesting level (a deep document ends in ``RecursionError``) and keeps
the last of two equal keys without a word.  :func:`load_yaml_file` refuses,
each with a :class:`ConfigError` that names the file and the line:

* a file over :data:`MAX_BYTES`, or bytes that are not UTF-8;
* more than :data:`MAX_ALIASES` anchors and aliases together (a config needs none);
* nesting deeper than :data:`MAX_DEPTH` levels (a config has three or four);
* a key given twice in one mapping.

The checks run while the document is composed, before anything is expanded, so
a hostile file is refused in milliseconds and a few kilobytes of memory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from audioset_fewshot._io import JsonValue
from audioset_fewshot.errors import ConfigError

MAX_BYTES = 256 * 1024
MAX_DEPTH = 12
MAX_ALIASES = 16


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts aliases and anchors, bounds the depth and refuses duplicate keys."""

    def __init__(self, stream: str, *, name: str) -> None:
        super().__init__(stream)
        self._name = name
        self._depth = 0
        self._references = 0

    def _fail(self, mark: Any, message: str) -> ConfigError:
        line = f":{mark.line + 1}" if mark is not None else ""
        return ConfigError(f"{self._name}{line}: {message}")

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:  # noqa: N803 - PyYAML's name
        # the scanner reads a whole flow collection ahead; stop "[[[[..." before it does
        super().fetch_flow_collection_start(TokenClass)  # type: ignore[misc,unused-ignore]
        if self.flow_level > MAX_DEPTH:
            raise self._fail(self.get_mark(), f"nested deeper than {MAX_DEPTH} levels; a config has at most four (section, key, list, item)")

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:  # type: ignore[override,unused-ignore]
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            self._references += 1
            if self._references > MAX_ALIASES:
                raise self._fail(event.start_mark, f"more than {MAX_ALIASES} YAML anchors/aliases (&name, *name); a config needs none: write the values out")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise self._fail(event.start_mark, f"nested deeper than {MAX_DEPTH} levels; a config has at most four (section, key, list, item)")
            return super().compose_node(parent, index)  # type: ignore[no-untyped-call,unused-ignore]
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call,unused-ignore]
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: SafeLoader reports it below
                continue
            if first is not None:
                raise self._fail(key_node.start_mark, f"duplicate key {key!r} (first given on line {first}); keep one of them")
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def load_yaml_text(text: str, *, name: str) -> JsonValue:
    """Parse one YAML document with the bounds of this module; ``name`` is used in messages."""
    loader = _BoundedLoader(text, name=name)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"{name}{where}: malformed YAML: {problem}") from err
    finally:
        loader.dispose()


def load_yaml_file(path: Path | str) -> JsonValue:
    """Read and parse a YAML config file (see the module docstring for what is refused)."""
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > MAX_BYTES:
                raise ConfigError(f"{p}: {size} bytes, more than the {MAX_BYTES} a config file may have; is this the right file?")
            data = fh.read(MAX_BYTES + 1)
    except FileNotFoundError as err:
        raise ConfigError(f"config file {p} does not exist; create one with 'audioset-fewshot init'") from err
    except IsADirectoryError as err:
        raise ConfigError(f"config file {p} is a folder; give the path of a YAML file") from err
    except OSError as err:
        raise ConfigError(f"cannot read config file {p}: {err.strerror}") from err
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{p}: more than the {MAX_BYTES} bytes a config file may have; is this the right file?")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ConfigError(f"{p}:{line}: not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start}); save the file as UTF-8") from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise ConfigError(f"{p}:{line}: a NUL byte; a config is plain UTF-8 text")
    return load_yaml_text(text, name=str(p))


__all__ = ["MAX_ALIASES", "MAX_BYTES", "MAX_DEPTH", "load_yaml_file", "load_yaml_text"]
