"""RouteTable: every rule compiled once into a segment trie; match() walks O(path segments) nodes.

Specificity decides, never file order, so each rule is ranked by (literals, single wildcards, not "**",
how it admits the method). Two rules that could answer the same request with the same rank are refused at
load (a tie), unless a strictly more specific rule answers every such request; so the best candidate a
walk finds is always unique.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from authproxy.config.conditions import Condition
from authproxy.config.model import PublicRule, RouteRule
from authproxy.errors import ConfigError, Problem
from authproxy.policy.patterns import (
    RANK_ANY,
    RANK_HEAD_VIA_GET,
    RANK_NAMED,
    RoutePattern,
    Shape,
    intersection,
    parse_pattern,
    shape_text,
)
from authproxy.policy.patterns import covers as shape_covered_by
from authproxy.policy.scopes import ScopeRequirement, compile_requirement
from authproxy.policy.stages import Stage

__all__ = ["RouteMatch", "RouteTable"]


class RouteMatch(NamedTuple):
    """Immutable; a NamedTuple because one is built per request and costs half a frozen dataclass."""

    route: str  # the rule's key as written
    public: bool
    requirement: ScopeRequirement | None  # None for a public rule
    params: tuple[tuple[str, str], ...]  # {name} -> decoded segment, in path order
    condition: Condition | None = None  # the rule's `when`, judged once its scopes hold


@dataclass(frozen=True, slots=True)
class _Rule:
    pattern: RoutePattern
    requirement: ScopeRequirement | None
    file: str
    line: int
    condition: Condition | None = None

    def key(self, rank: int) -> tuple[int, ...]:
        return (*self.pattern.specificity[:3], rank)


class _Entry:
    """One rule as reached by one kind of method; `order` compares entries across the whole table."""

    __slots__ = ("condition", "fixed", "order", "requirement", "route", "slots")

    def __init__(self, rule: _Rule, order: int) -> None:
        self.order = order
        self.route = rule.pattern.key
        self.requirement = rule.requirement
        self.condition = rule.condition
        names = rule.pattern.param_names
        self.slots = tuple((n, i) for i, n in enumerate(names) if n is not None)
        # Rules that bind nothing answer with one shared, prebuilt value.
        self.fixed = RouteMatch(self.route, rule.requirement is None, rule.requirement, (), rule.condition)

    def result(self, segments: tuple[str, ...]) -> RouteMatch:
        if not self.slots:
            return self.fixed
        params = tuple([(name, segments[i]) for name, i in self.slots])
        return RouteMatch(self.route, self.requirement is None, self.requirement, params, self.condition)


class _Choice:
    """The rules ending at one trie node, resolved per method at build time."""

    __slots__ = ("any", "by_method")

    def __init__(self) -> None:
        self.by_method: dict[str, _Entry] = {}
        self.any: _Entry | None = None

    def pick(self, method: str) -> _Entry | None:
        entry = self.by_method.get(method)
        return entry if entry is not None else self.any


class _Node:
    __slots__ = ("end", "literals", "tail", "wild")

    def __init__(self) -> None:
        self.literals: dict[str, _Node] = {}
        self.wild: _Node | None = None
        self.end: _Choice | None = None  # rules whose path ends here
        self.tail: _Choice | None = None  # "**" rules whose prefix ends here


class RouteTable:
    __slots__ = ("_marks", "_root", "rule_count")

    def __init__(self, root: _Node, rule_count: int) -> None:
        self._root = root
        self.rule_count = rule_count
        self._marks: dict[tuple[str, ...], Stage] = {}

    def mark(self, marks: Mapping[tuple[str, ...], Stage]) -> RouteTable:
        """Mark paths whose requests carry a stage of their own whichever rule matches them (an MCP endpoint:
        every method on its path is an MCP request). Returns the table."""
        self._marks = dict(marks)
        return self

    def stage_for(self, segments: tuple[str, ...]) -> Stage | None:
        """The stage a marked path carries (its decoded segments, as matched), or None."""
        return self._marks.get(segments) if self._marks else None

    @classmethod
    def build(
        cls,
        public: Sequence[PublicRule],
        routes: Sequence[RouteRule],
        *,
        preset: str | None,
    ) -> RouteTable:
        """Compile the policy; raise ConfigError listing every bad pattern, bad scope and tie. The admin
        scope is not compiled in: the gate passes it to evaluate() per request."""
        problems: list[Problem] = []
        rules: list[_Rule] = []
        written: list[PublicRule | RouteRule] = [*public, *routes]
        for rule in written:
            kind = "route" if isinstance(rule, RouteRule) else "public route"
            try:
                pattern = parse_pattern(rule.key)
                requirement = None
                condition = None
                if isinstance(rule, RouteRule):
                    condition = rule.when
                    requirement = compile_requirement(rule.scopes, pattern, preset=preset)
            except ValueError as bad:
                problems.append(Problem(rule.file, rule.line, f"{kind} {rule.key!r}: {bad}"))
                continue
            rules.append(_Rule(pattern, requirement, rule.file, rule.line, condition))
        problems.extend(cls.find_ties(rules))
        if problems:
            raise ConfigError(problems)
        return cls(_compile(rules), len(rules))

    @staticmethod
    def find_ties(rules: Sequence[_Rule]) -> list[Problem]:
        """Pairs of rules that could answer one request with equal rank and no more specific rule."""
        groups: defaultdict[tuple[int, ...], list[_Rule]] = defaultdict(list)
        for rule in rules:
            groups[rule.pattern.specificity].append(rule)
        named = {m for r in rules for m in (r.pattern.methods or ())}
        problems: list[Problem] = []
        for group in groups.values():
            for i, later in enumerate(group):
                for earlier in group[:i]:
                    problem = _tie(earlier, later, rules, named)
                    if problem is not None:
                        problems.append(problem)
        return problems

    def match(self, method: str, segments: tuple[str, ...]) -> RouteMatch | None:
        """The most specific rule for this method and decoded path, or None."""
        best = _walk(self._root, segments, 0, method, None)
        return None if best is None else best.result(segments)


def _walk(node: _Node, segments: tuple[str, ...], i: int, method: str, best: _Entry | None) -> _Entry | None:
    # Loops down literal children and recurses only where a wildcard branch also applies.
    n = len(segments)
    while True:
        if node.tail is not None:
            entry = node.tail.pick(method)
            if entry is not None and (best is None or entry.order > best.order):
                best = entry
        if i == n:
            if node.end is not None:
                entry = node.end.pick(method)
                if entry is not None and (best is None or entry.order > best.order):
                    best = entry
            return best
        child = node.literals.get(segments[i])
        wild = node.wild
        if wild is not None:
            if child is None:
                node, i = wild, i + 1
                continue
            best = _walk(wild, segments, i + 1, method, best)
        if child is None:
            return best
        node, i = child, i + 1


def _ranks(pattern: RoutePattern) -> Iterable[int]:
    if pattern.methods is None:
        return (RANK_ANY,)
    if "GET" in pattern.methods and "HEAD" not in pattern.methods:
        return (RANK_NAMED, RANK_HEAD_VIA_GET)
    return (RANK_NAMED,)


def _compile(rules: Sequence[_Rule]) -> _Node:
    keys = sorted({rule.key(rank) for rule in rules for rank in _ranks(rule.pattern)})
    order = {key: n for n, key in enumerate(keys)}
    root = _Node()
    for rule in rules:
        choice = _choice_for(root, rule.pattern)
        entry = {rank: _Entry(rule, order[rule.key(rank)]) for rank in _ranks(rule.pattern)}
        methods = rule.pattern.methods
        if methods is None:
            choice.any = entry[RANK_ANY]
            continue
        for method in methods:
            choice.by_method[method] = entry[RANK_NAMED]
        if RANK_HEAD_VIA_GET in entry:
            # A rule naming HEAD at the same node outranks the GET fallback, whatever the file order.
            choice.by_method.setdefault("HEAD", entry[RANK_HEAD_VIA_GET])
    return root


def _choice_for(root: _Node, pattern: RoutePattern) -> _Choice:
    node = root
    for segment in pattern.segments:
        if segment is None:
            if node.wild is None:
                node.wild = _Node()
            node = node.wild
        else:
            node = node.literals.setdefault(segment, _Node())
    if pattern.tail:
        if node.tail is None:
            node.tail = _Choice()
        return node.tail
    if node.end is None:
        node.end = _Choice()
    return node.end


def _shared_methods(a: RoutePattern, b: RoutePattern, named: set[str]) -> tuple[str | None, ...]:
    """Methods both admit at the same rank; None stands for every method no rule names."""
    if a.methods is None and b.methods is None:
        return (*sorted(named | ({"HEAD"} if "GET" in named else set())), None)
    if a.methods is None or b.methods is None:
        return ()  # a rule naming methods always outranks "*"
    return tuple(sorted(a.methods & b.methods))


def _tie(earlier: _Rule, later: _Rule, rules: Sequence[_Rule], named: set[str]) -> Problem | None:
    shape = intersection(earlier.pattern, later.pattern)
    if shape is None:
        return None
    methods = _shared_methods(earlier.pattern, later.pattern, named)
    longest = max(len(r.pattern.segments) for r in rules)
    if all(_settled(part, m, later, rules) for m in methods for part in _by_length(shape, longest)):
        return None
    where = f"line {earlier.line}" if earlier.file == later.file else f"{earlier.file}:{earlier.line}"
    if earlier.pattern.canonical == later.pattern.canonical:
        message = f"pattern {later.pattern.key!r} repeats {earlier.pattern.key!r} ({where})"
    else:
        message = (
            f"patterns {earlier.pattern.key!r} ({where}) and {later.pattern.key!r} (line {later.line})"
            f" tie for {shape_text(shape)}"
        )
    return Problem(later.file, later.line, message)


def _by_length(shape: Shape, longest: int) -> Iterable[Shape]:
    """A "**" shape split into one shape per path length, then one for every length past any prefix.

    Different rules may settle different lengths; past the longest prefix, every length is settled alike.
    """
    segments, tail = shape
    if not tail:
        return (shape,)
    pad = [segments + (None,) * (n - len(segments)) for n in range(len(segments), longest + 2)]
    return [*((p, False) for p in pad[:-1]), (pad[-1], True)]


def _settled(shape: Shape, method: str | None, tied: _Rule, rules: Sequence[_Rule]) -> bool:
    """True when one rule outranks the tied pair for `method` on every path of `shape`."""
    tie_key = tied.key(RANK_ANY if tied.pattern.methods is None else RANK_NAMED)
    for rule in rules:
        if method is None:
            if rule.pattern.methods is not None:
                continue  # only "*" rules admit a method no rule names
            rank = RANK_ANY
        else:
            rank = rule.pattern.method_rank(method)
        if rank >= 0 and rule.key(rank) > tie_key and shape_covered_by(rule.pattern, shape):
            return True
    return False
