"""The AudioSet ontology: 632 classes in a DAG (a class may have several parents).

``load_ontology()`` reads the official ``ontology.json`` shipped inside the
package (unchanged; CC BY-SA 4.0, see ``data/LICENSE-AudioSet.md``) or a file
you give.  Names resolve case-insensitively to MIDs; an unknown name raises
:class:`~audioset_fewshot.errors.UnknownNameError` with the closest names.

Top-level category: the ontology's roots are the classes that are nobody's
child (7 in the official file, e.g. "Human sounds", "Animal").  A class with
several parents can reach several roots; its ``top_level`` is the first of
those roots *in the ontology file's order*, so the answer is deterministic and
does not depend on traversal order.  ``top_levels(mid)`` returns all of them.
"""

from __future__ import annotations

import difflib
import json
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from audioset_fewshot._io import sha256_bytes
from audioset_fewshot.errors import MetadataError, UnknownNameError, UsageError
from audioset_fewshot.validate import is_mid

log = logging.getLogger(__name__)

BLACKLIST = "blacklist"
ABSTRACT = "abstract"
PACKAGED_ONTOLOGY = "ontology.json"


@dataclass(frozen=True)
class OntologyClass:
    """One ontology node, as in ``ontology.json`` plus the computed ``parent_ids``."""

    mid: str
    name: str
    description: str = ""
    child_ids: tuple[str, ...] = ()
    restrictions: tuple[str, ...] = ()
    citation_uri: str = ""
    positive_examples: tuple[str, ...] = ()
    parent_ids: tuple[str, ...] = ()

    @property
    def is_leaf(self) -> bool:
        return not self.child_ids

    @property
    def is_blacklisted(self) -> bool:
        return BLACKLIST in self.restrictions

    @property
    def is_abstract(self) -> bool:
        return ABSTRACT in self.restrictions


def _packaged_bytes(name: str) -> bytes:
    return resources.files("audioset_fewshot.metadata").joinpath("data", name).read_bytes()


@dataclass(frozen=True)
class Ontology:
    """All classes, in file order, with parent/child navigation and name resolution."""

    classes: Mapping[str, OntologyClass]  # read-only: the packaged ontology is shared
    source: str = "<packaged>"
    sha256: str = ""
    _by_name: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False, compare=False)
    _order: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    # -- container protocol -------------------------------------------------
    def __len__(self) -> int:
        return len(self.classes)

    def __iter__(self) -> Iterator[OntologyClass]:
        return iter(self.classes.values())

    def __contains__(self, mid: object) -> bool:
        return mid in self.classes

    def __getitem__(self, name_or_mid: str) -> OntologyClass:
        return self.classes[self.resolve(name_or_mid)]

    @property
    def mids(self) -> tuple[str, ...]:
        return tuple(self.classes)

    def name(self, mid: str) -> str:
        return self._get(mid).name

    def label(self, mid: str) -> str:
        """``Name (/m/xxx)``: how messages refer to a class."""
        return f"{self._get(mid).name} ({mid})"

    def _get(self, mid: str) -> OntologyClass:
        try:
            return self.classes[mid]
        except KeyError:
            raise UnknownNameError("class", mid, self.suggest(mid)) from None

    # -- structure ------------------------------------------------------------
    def is_leaf(self, mid: str) -> bool:
        return self._get(mid).is_leaf

    def is_blacklisted(self, mid: str) -> bool:
        return self._get(mid).is_blacklisted

    def is_abstract(self, mid: str) -> bool:
        return self._get(mid).is_abstract

    def children(self, mid: str) -> tuple[str, ...]:
        return self._get(mid).child_ids

    def parents(self, mid: str) -> tuple[str, ...]:
        return self._get(mid).parent_ids

    @property
    def roots(self) -> tuple[str, ...]:
        """Classes that are nobody's child, in file order."""
        return tuple(m for m, c in self.classes.items() if not c.parent_ids)

    def ancestors(self, mid: str) -> tuple[str, ...]:
        """Every ancestor (not ``mid`` itself), nearest first (breadth-first, parents in file order)."""
        seen: dict[str, None] = {}
        frontier = list(self._get(mid).parent_ids)
        while frontier:
            nxt: list[str] = []
            for p in frontier:
                if p not in seen and p != mid:
                    seen[p] = None
                    nxt.extend(self.classes[p].parent_ids)
            frontier = nxt
        return tuple(seen)

    def descendants(self, mid: str) -> tuple[str, ...]:
        """Every descendant (not ``mid`` itself), in file order."""
        seen: set[str] = set()
        stack = list(self._get(mid).child_ids)
        while stack:
            c = stack.pop()
            if c not in seen and c != mid:
                seen.add(c)
                stack.extend(self.classes[c].child_ids)
        return tuple(sorted(seen, key=self._order.__getitem__))

    def top_levels(self, mid: str) -> tuple[str, ...]:
        """All roots reachable from ``mid`` (``mid`` itself if it is a root), in file order."""
        cls = self._get(mid)
        if not cls.parent_ids:
            return (mid,)
        anc = self.ancestors(mid)
        roots = [a for a in anc if not self.classes[a].parent_ids]
        return tuple(sorted(roots, key=self._order.__getitem__))

    def top_level(self, mid: str) -> str:
        """The first root, in ontology file order, among ``mid``'s ancestors (or ``mid`` if a root)."""
        return self.top_levels(mid)[0]

    def siblings(self, mid: str) -> tuple[str, ...]:
        """Classes sharing a parent with ``mid`` (not ``mid`` itself), in file order.

        For a root: the other roots."""
        cls = self._get(mid)
        if not cls.parent_ids:
            pool = [r for r in self.roots if r != mid]
        else:
            found = {c for p in cls.parent_ids for c in self.classes[p].child_ids if c != mid}
            pool = sorted(found, key=self._order.__getitem__)
        return tuple(pool)

    # -- names ----------------------------------------------------------------
    def resolve(self, name_or_mid: str) -> str:
        """A MID for a class name (case-insensitive, surrounding spaces ignored) or a MID."""
        if not isinstance(name_or_mid, str) or not name_or_mid.strip():
            raise UsageError(f"expected a class name or MID, got {name_or_mid!r}")
        key = name_or_mid.strip()
        if key in self.classes:
            return key
        hits = self._by_name.get(_norm(key))
        if hits is None:
            raise UnknownNameError("class", name_or_mid, self.suggest(key))
        if len(hits) > 1:
            listing = ", ".join(self.label(m) for m in hits)
            raise UsageError(f"class name {name_or_mid!r} is ambiguous: {listing}; give the MID instead")
        return hits[0]

    def suggest(self, query: str, *, n: int = 3) -> list[str]:
        """Up to ``n`` real class names closest to ``query``.

        Scores whole-string similarity and word overlap (a query word matching a
        name word or a word stem, e.g. "barking" ~ "Bark"), so "Dog barking"
        suggests "Bark" and "Dog" rather than nothing.
        """
        q = _norm(query)
        if not q:
            return []
        q_words = _words(q)
        scored: list[tuple[float, int, str]] = []
        for mid, cls in self.classes.items():
            name_l = cls.name.lower()
            ratio = difflib.SequenceMatcher(None, q, name_l).ratio()
            n_words = _words(name_l)
            overlap = 0.0
            for qw in q_words:
                best = 0.0
                for nw in n_words:
                    if qw == nw:
                        best = 1.0
                        break
                    if len(qw) >= 3 and len(nw) >= 3 and (qw.startswith(nw) or nw.startswith(qw)):
                        best = max(best, 0.9)
                    else:
                        r = difflib.SequenceMatcher(None, qw, nw).ratio() if abs(len(qw) - len(nw)) < 4 else 0.0
                        best = max(best, 0.9 * r if r >= 0.65 else 0.0)
                overlap += best
            coverage = overlap / max(len(q_words), 1)
            score = 0.7 * coverage + 0.3 * ratio
            if is_mid(query.strip()):
                score = difflib.SequenceMatcher(None, query.strip(), mid).ratio()
            scored.append((score, self._order[mid], cls.name if not is_mid(query.strip()) else mid))
        scored.sort(key=lambda t: (-t[0], t[1]))
        out = [name for score, _, name in scored if score >= 0.35]
        return out[:n]


_WORD_RE = re.compile(r"[a-z0-9]+")


def _norm(name: str) -> str:
    return " ".join(name.strip().lower().split())


def _words(name: str) -> list[str]:
    return _WORD_RE.findall(name.lower())


def _str_tuple(value: Any, what: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MetadataError(f"{where}: field {what!r} must be a list of strings, got {value!r}")
    return tuple(value)


def parse_ontology(data: bytes, *, source: str) -> Ontology:
    """Build an :class:`Ontology` from the bytes of an ``ontology.json``."""
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise MetadataError(f"{source}: not a valid ontology JSON file ({err}); use the official ontology.json") from err
    if not isinstance(raw, list):
        raise MetadataError(f"{source}: expected a JSON list of classes, got {type(raw).__name__}")
    entries: list[dict[str, Any]] = []
    for i, item in enumerate(raw):
        where = f"{source} entry {i}"
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not isinstance(item.get("name"), str):
            raise MetadataError(f"{where}: each class needs string fields 'id' and 'name'")
        if not is_mid(item["id"]):
            raise MetadataError(f"{where}: invalid class id {item['id']!r}")
        entries.append(item)
    ids = [e["id"] for e in entries]
    if len(set(ids)) != len(ids):
        dup = sorted({m for m in ids if ids.count(m) > 1})
        raise MetadataError(f"{source}: duplicate class ids {dup[:5]}")
    known = set(ids)
    parents: dict[str, list[str]] = {m: [] for m in ids}
    for e in entries:
        for ch in _str_tuple(e.get("child_ids"), "child_ids", f"{source} class {e['id']}"):
            if ch not in known:
                raise MetadataError(f"{source}: class {e['id']} lists unknown child {ch!r}")
            if e["id"] not in parents[ch]:
                parents[ch].append(e["id"])
    classes: dict[str, OntologyClass] = {}
    for e in entries:
        where = f"{source} class {e['id']}"
        classes[e["id"]] = OntologyClass(
            mid=e["id"],
            name=e["name"],
            description=str(e.get("description") or ""),
            child_ids=_str_tuple(e.get("child_ids"), "child_ids", where),
            restrictions=_str_tuple(e.get("restrictions"), "restrictions", where),
            citation_uri=str(e.get("citation_uri") or ""),
            positive_examples=_str_tuple(e.get("positive_examples"), "positive_examples", where),
            parent_ids=tuple(parents[e["id"]]),
        )
    by_name: dict[str, list[str]] = {}
    for mid, c in classes.items():
        by_name.setdefault(_norm(c.name), []).append(mid)
    onto = Ontology(
        classes=MappingProxyType(classes),
        source=source,
        sha256=sha256_bytes(data),
        _by_name={k: tuple(v) for k, v in by_name.items()},
        _order={m: i for i, m in enumerate(classes)},
    )
    _check_acyclic(onto)
    return onto


def _check_acyclic(onto: Ontology) -> None:
    state: dict[str, int] = {}
    for start in onto.classes:
        if state.get(start):
            continue
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(onto.classes[start].child_ids))]
        state[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                raise MetadataError(f"{onto.source}: the ontology has a cycle through {nxt}")
            elif not state.get(nxt):
                state[nxt] = 1
                stack.append((nxt, iter(onto.classes[nxt].child_ids)))


_CACHE: dict[str, Ontology] = {}


def load_ontology(path: Path | str | None = None) -> Ontology:
    """Read ``ontology.json``: the packaged official file by default, or ``path``."""
    if path is None:
        cached = _CACHE.get("packaged")
        if cached is None:
            cached = parse_ontology(_packaged_bytes(PACKAGED_ONTOLOGY), source="<packaged ontology.json>")
            _CACHE["packaged"] = cached
        return cached
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as err:
        raise MetadataError(f"cannot read ontology file {p}: {err.strerror or err}") from err
    return parse_ontology(data, source=str(p))
