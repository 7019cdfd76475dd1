"""YAML text -> located plain-data nodes: every value keeps its 1-based line for `FILE:LINE: message`.

Parsing stops at composition (PyYAML nodes, SafeLoader rules), so no Python object is ever built
from a tag. Duplicate keys, `${VAR}` substitution and non-plain data are reported here as Problems.
"""

from __future__ import annotations

import re
from collections.abc import Mapping as EnvMap
from dataclasses import dataclass

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.resolver import Resolver

from authproxy.errors import Problem

__all__ = ["MapNode", "Node", "Scalar", "SeqNode", "parse"]

ScalarValue = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class Scalar:
    value: ScalarValue
    text: str  # the scalar as written, after ${VAR} substitution
    line: int
    # The text came (partly) from the environment: string fields take `text` whatever type the
    # substituted value resolved to, since the writer of the file cannot control that type.
    substituted: bool = False
    # Already reported (bad ${VAR}, bad tag, recursive alias); readers skip it silently.
    failed: bool = False


@dataclass(frozen=True, slots=True)
class SeqNode:
    items: tuple[Node, ...]
    line: int


@dataclass(frozen=True, slots=True)
class MapNode:
    items: tuple[tuple[Scalar, Node], ...]  # file order; keys are unique by text
    line: int


Node = Scalar | SeqNode | MapNode

_YAML = "tag:yaml.org,2002:"
_PLAIN_SCALAR_TAGS = frozenset(_YAML + t for t in ("str", "int", "float", "bool", "null"))
# Implicitly resolved, but not plain data: kept as the text the writer typed.
_TEXT_SCALAR_TAGS = frozenset(_YAML + t for t in ("timestamp", "value"))
_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_NAME_AND_DEFAULT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)
_RESOLVER = Resolver()


def parse(text: str, file: str, env: EnvMap[str, str]) -> tuple[Node | None, list[Problem]]:
    """Compose one YAML document into located nodes; None when there is nothing usable to build from."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        return None, [_syntax_problem(file, err)]
    except yaml.reader.ReaderError as err:
        line = text.count("\n", 0, err.position) + 1
        return None, [Problem(file, line, f"invalid YAML: {err.reason}")]
    except yaml.YAMLError as err:
        return None, [Problem(file, 1, f"invalid YAML: {err}")]
    if root is None:
        return None, [Problem(file, 1, "the file is empty")]
    converter = _Converter(file, env)
    return converter.node(root), converter.problems


def _implicit_tag(text: str, plain: bool) -> str:
    # PyYAML's resolver is untyped; it returns the tag string.
    return str(_RESOLVER.resolve(yaml.ScalarNode, text, (plain, not plain)))  # type: ignore[no-untyped-call]


def _syntax_problem(file: str, err: yaml.MarkedYAMLError) -> Problem:
    mark = err.problem_mark or err.context_mark
    line = mark.line + 1 if mark is not None else 1
    message = f"invalid YAML: {err.problem or err.context or 'unreadable document'}"
    if err.context and err.problem and err.context_mark is not None:
        message += f" ({err.context} at line {err.context_mark.line + 1})"
    return Problem(file, line, message)


class _Converter:
    """One pass over the composed graph; aliases are converted once and shared, cycles refused."""

    def __init__(self, file: str, env: EnvMap[str, str]) -> None:
        self.file = file
        self.env = env
        self.problems: list[Problem] = []
        self._done: dict[int, Node] = {}
        self._open: set[int] = set()
        self._constructor = SafeConstructor()

    def _fail(self, line: int, message: str, text: str = "") -> Scalar:
        self.problems.append(Problem(self.file, line, message))
        return Scalar(None, text, line, failed=True)

    def node(self, node: yaml.Node) -> Node:
        key = id(node)
        if key in self._done:
            return self._done[key]
        line = node.start_mark.line + 1
        if key in self._open:
            return self._fail(line, "recursive alias: the value contains itself")
        self._open.add(key)
        try:
            result = self._convert(node, line)
        finally:
            self._open.discard(key)
        self._done[key] = result
        return result

    def _convert(self, node: yaml.Node, line: int) -> Node:
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, line)
        if isinstance(node, yaml.SequenceNode) and node.tag == _YAML + "seq":
            return SeqNode(tuple(self.node(item) for item in node.value), line)
        if isinstance(node, yaml.MappingNode) and node.tag == _YAML + "map":
            return self._mapping(node, line)
        return self._fail(line, f"tag '{node.tag}' is not allowed: only plain maps, lists and scalars")

    def _mapping(self, node: yaml.MappingNode, line: int) -> MapNode:
        items: list[tuple[Scalar, Node]] = []
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                self._fail(key_line, "a key must be a plain scalar, not a map or list")
                continue
            if key_node.tag == _YAML + "merge":
                self._fail(key_line, "merge keys ('<<') are not supported: write the keys out")
                continue
            key = self.node(key_node)
            if not isinstance(key, Scalar) or key.failed:
                continue
            if key.text in seen:
                self._fail(key_line, f"duplicate key '{key.text}' (first at line {seen[key.text]})")
                continue
            seen[key.text] = key_line
            items.append((key, self.node(value_node)))
        return MapNode(tuple(items), line)

    def _scalar(self, node: yaml.ScalarNode, line: int) -> Scalar:
        text, substituted, ok = self._substitute(node.value, line)
        if not ok:
            return Scalar(None, text, line, substituted=True, failed=True)
        plain = node.style is None
        implicit = node.tag == _implicit_tag(node.value, plain)
        tag = node.tag
        if substituted and implicit:
            # An unquoted `${PORT}` means what the value would mean written out; `!!str ${X}` stays text.
            tag = _implicit_tag(text, plain)
        if implicit and tag in _TEXT_SCALAR_TAGS:
            return Scalar(text, text, line, substituted)
        if tag not in _PLAIN_SCALAR_TAGS:
            return self._fail(line, f"tag '{tag}' is not allowed: only plain maps, lists and scalars", text)
        try:
            value = self._constructor.construct_object(yaml.ScalarNode(tag, text, style=node.style))
        except (ConstructorError, ValueError) as err:
            return self._fail(line, f"cannot read the value as {tag.removeprefix(_YAML)}: {err}", text)
        return Scalar(value, text, line, substituted)

    def _substitute(self, raw: str, line: int) -> tuple[str, bool, bool]:
        """Replace ${VAR} and ${VAR:-default}; `$${` is a literal `${`. Returns (text, substituted, ok)."""
        if "${" not in raw:
            return raw, False, True
        out: list[str] = []
        pos = 0
        ok = True
        for match in _REFERENCE.finditer(raw):
            out.append(raw[pos : match.start()])
            pos = match.end()
            if match.group(0) == "$${":
                out.append("${")
                continue
            value = self._lookup(match.group(1), line)
            ok = ok and value is not None
            out.append(value or "")
        out.append(raw[pos:])
        return "".join(out), True, ok

    def _lookup(self, inner: str | None, line: int) -> str | None:
        if inner is None:
            self._fail(line, "unterminated '${': write '$${' for a literal '${'")
            return None
        parsed = _NAME_AND_DEFAULT.fullmatch(inner)
        if parsed is None:
            # The reference is not echoed: it may sit inside an inline secret.
            self._fail(line, "invalid '${...}' reference: use ${NAME} or ${NAME:-default}")
            return None
        name, default = parsed.group(1), parsed.group(2)
        value = self.env.get(name)
        if default is not None and not value:
            return default
        if value is None:
            self._fail(
                line, f"environment variable {name} is not set (use ${{{name}:-default}} for a default)"
            )
            return None
        return value
