"""Typed readers over located nodes: each checks one value and returns it, or reports a located Problem
and raises Invalid. A section catches Invalid per key (`Checks`), reads the rest, then raises Invalid
itself, so a build keeps going and reports every problem in one pass.

Messages about a value's type never quote the value (it may be a secret).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from authproxy.config.model import Address
from authproxy.config.source import MapNode, Node, Scalar, SeqNode, parse
from authproxy.config.values import ADDRESS_FORMS, parse_address, parse_duration
from authproxy.errors import Problem

__all__ = [
    "Checks",
    "Invalid",
    "Report",
    "Section",
    "model_keys",
    "read_address",
    "read_bool",
    "read_choice",
    "read_duration",
    "read_fraction",
    "read_items",
    "read_list",
    "read_map",
    "read_preset_file",
    "read_section",
    "read_str",
    "read_value",
]

T = TypeVar("T")


class Invalid(Exception):
    """A value was found unusable and the reason reported (FILE:LINE is in the Report): raised by a reader
    instead of returning a value, caught by the section reading it (`Checks`)."""


@dataclass(slots=True)
class Checks:
    """The reads of one section (or list): a reader's Invalid is caught here, so the others still run.

    A failed read gives its `stand_in`, which is never built into anything: `done()` raises Invalid once
    anything failed. `ok(...)` tells a cross-check whether the values it compares were read.
    """

    failed: set[str] = field(default_factory=set)

    def attempt(self, name: str, read: Callable[[], T], stand_in: T) -> T:
        try:
            return read()
        except Invalid:
            self.failed.add(name)
            return stand_in

    def key(self, section: Section, name: str, read: Callable[[str, Node], T], default: T) -> T:
        """`default` when `name` is absent; otherwise what `read` makes of it (given its path and node)."""
        node = section.get(name)
        if node is None:
            return default
        return self.attempt(name, lambda: read(section.sub(name), node), default)

    def ok(self, *names: str) -> bool:
        return self.failed.isdisjoint(names)

    def done(self) -> None:
        if self.failed:
            raise Invalid


@dataclass(slots=True)
class Report:
    """Collects errors and warnings; `at(file)` gives a view that files problems under another file."""

    file: str
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def error(self, line: int, message: str) -> None:
        self.errors.append(Problem(self.file, line, message))

    def warn(self, line: int, message: str) -> None:
        self.warnings.append(Problem(self.file, line, message))

    def invalid(self, line: int, message: str) -> Invalid:
        """Report an error, and give the Invalid to raise for it: `raise report.invalid(line, message)`."""
        self.error(line, message)
        return Invalid()

    def at(self, file: str) -> Report:
        return Report(file, self.errors, self.warnings)


@dataclass(frozen=True, slots=True)
class Section:
    """A mapping read against its known keys; `line` is where its name stands, for "missing" messages."""

    path: str
    line: int
    entries: dict[str, Node]
    key_lines: dict[str, int]

    def get(self, name: str) -> Node | None:
        return self.entries.get(name)

    def key_line(self, name: str) -> int:
        return self.key_lines.get(name, self.line)

    def sub(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name


# Where a value was written, set by the reader: never a key of the YAML.
_LOCATION_FIELDS = frozenset({"line", "file"})


def model_keys(
    model: type[Any], *, skip: Collection[str] = (), rename: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    """The keys of the YAML section read into the frozen dataclass `model`: its field names, in order, less
    `line`/`file` and `skip`, with `rename` (field -> key) where the YAML spells one differently. A name in
    `skip` or `rename` that is no field is a mistake in the reader: ValueError at import."""
    names = [f.name for f in dataclasses.fields(model)]
    rename = rename or {}
    strays = (set(skip) | set(rename)) - set(names)
    if strays:
        raise ValueError(f"{model.__name__} has no field {', '.join(sorted(strays))}")
    return tuple(rename.get(n, n) for n in names if n not in _LOCATION_FIELDS and n not in skip)


def describe(node: Node) -> str:
    if isinstance(node, MapNode):
        return "a map"
    if isinstance(node, SeqNode):
        return "a list"
    value = node.value
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    return "a string"


def _expected(report: Report, path: str, node: Node, what: str, hint: str = "") -> Invalid:
    report.error(node.line, f"{path}: expected {what}, got {describe(node)}{hint}")
    return Invalid()


def _check_substituted(node: Node) -> None:
    # A `${VAR}` that could not be substituted was reported where it was parsed (source.py).
    if isinstance(node, Scalar) and node.failed:
        raise Invalid


def read_section(
    report: Report,
    path: str,
    line: int,
    node: Node,
    known: Collection[str],
    required: Collection[str] = (),
) -> Section:
    """Read a map with a fixed key set: unknown keys and missing required keys are reported (the section
    is still returned, so its other keys are checked too); Invalid when the node is no map."""
    mapping = read_map(report, path, node)
    entries: dict[str, Node] = {}
    key_lines: dict[str, int] = {}
    where = f" in {path}" if path else ""
    for key, value in mapping.items:
        if key.text not in known:
            close = difflib.get_close_matches(key.text, list(known), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            report.error(key.line, f"unknown key '{key.text}'{where}{hint}")
            continue
        entries[key.text] = value
        key_lines[key.text] = key.line
    for name in required:
        if name not in entries:
            report.error(line, f"missing required key '{name}'{where}")
    return Section(path, line, entries, key_lines)


def read_map(report: Report, path: str, node: Node) -> MapNode:
    """A map whose keys the config's author chooses (routes, endpoints, tools); Invalid when it is none."""
    _check_substituted(node)
    if not isinstance(node, MapNode):
        raise _expected(report, path or "the configuration", node, "a map")
    return node


def read_yaml_file(
    report: Report, line: int, cannot: str, path: str, env: Mapping[str, str]
) -> tuple[Report, Node, bool]:
    """Another YAML file the config names (a preset, a shadow policy), its problems filed under it: (its
    report, its root, whether it parsed without problems). Invalid when it cannot be read at all, reported
    at `line` of the user's file as `{cannot} {path}: {reason}`."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
        raise report.invalid(line, f"{cannot} {path}: {reason}") from None
    there = report.at(path)
    root, problems = parse(text, path, env)
    there.errors.extend(problems)
    if root is None:
        raise Invalid
    return there, root, not problems


def read_preset_file(
    report: Report,
    line: int,
    path: str,
    what: str,
    known: Collection[str],
    env: Mapping[str, str],
    required: Collection[str] = (),
) -> tuple[Report, Section, bool]:
    """A preset file shipped with authproxy, read as a top-level section with problems filed under it.

    Invalid when it cannot be read or is no map (the reason is reported at `line` of the user's file, or
    in the preset); otherwise (its report, its section, whether it parsed without problems).
    """
    there, root, parsed = read_yaml_file(report, line, f"policy.preset: cannot read the {what}", path, env)
    return there, read_section(there, "", 1, root, known, required), parsed


def read_str(
    report: Report, path: str, node: Node, *, allow_empty: bool = False, what: str = "a string"
) -> str:
    """A string; `what` names the expected form in the type message."""
    _check_substituted(node)
    if not isinstance(node, Scalar) or not (isinstance(node.value, str) or node.substituted):
        quote = what == "a string" and isinstance(node, Scalar) and node.value is not None
        raise _expected(report, path, node, what, " (quote it to make it text)" if quote else "")
    if not node.text and not allow_empty:
        raise report.invalid(node.line, f"{path}: must not be empty")
    return node.text


def read_bool(report: Report, path: str, node: Node) -> bool:
    _check_substituted(node)
    if isinstance(node, Scalar) and isinstance(node.value, bool):
        return node.value
    raise _expected(report, path, node, "true or false")


def read_choice(report: Report, path: str, node: Node, choices: tuple[str, ...]) -> str:
    """A string that must be one of `choices`; the wrong value is quoted (choices are never secrets)."""
    value = read_str(report, path, node)
    if value not in choices:
        raise report.invalid(node.line, f"{path}: must be one of {', '.join(choices)}; got '{value}'")
    return value


def read_list(report: Report, path: str, node: Node, *, allow_empty: bool = False) -> tuple[Node, ...]:
    _check_substituted(node)
    if not isinstance(node, SeqNode):
        raise _expected(report, path, node, "a list")
    if not node.items and not allow_empty:
        raise report.invalid(node.line, f"{path}: must not be an empty list")
    return node.items


def read_items(
    report: Report,
    path: str,
    node: Node,
    read: Callable[[str, Node], T],
    stand_in: T,
    *,
    allow_empty: bool = False,
) -> tuple[T, ...]:
    """A list, each item as `read(f"{path}[i]", item)` makes it: every item is read, so each bad one is
    reported at its own line, before Invalid is raised for any."""
    checks = Checks()
    values = tuple(
        checks.attempt(str(i), lambda: read(f"{path}[{i}]", item), stand_in)  # noqa: B023
        for i, item in enumerate(read_list(report, path, node, allow_empty=allow_empty))
    )
    checks.done()
    return values


def read_value(report: Report, path: str, node: Node, parse: Callable[[str], T], what: str = "a string") -> T:
    """A string checked by a pure `parse` that raises ValueError(message) (shared with the command line)."""
    text = read_str(report, path, node, what=what)
    try:
        return parse(text)
    except ValueError as bad:
        raise report.invalid(node.line, f"{path}: {bad}") from None


def read_address(report: Report, path: str, node: Node) -> Address:
    """A listen address (values.parse_address); an unquoted number is the bare PORT form."""
    if isinstance(node, Scalar) and type(node.value) is int:
        node = Scalar(node.text, node.text, node.line, substituted=True)
    return read_value(report, path, node, parse_address, ADDRESS_FORMS)


def read_fraction(report: Report, path: str, node: Node) -> float:
    """A number from 0.0 to 1.0 (a share, such as a sampling rate)."""
    _check_substituted(node)
    value: object = None
    if isinstance(node, Scalar):
        value = node.value
        if node.substituted:  # `${RATE}`: the text is the number, whatever YAML made of it
            try:
                value = float(node.text)
            except ValueError:
                value = None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _expected(report, path, node, "a number from 0.0 to 1.0")
    if not 0.0 <= value <= 1.0:  # NaN fails this too
        raise report.invalid(node.line, f"{path}: must be from 0.0 to 1.0; got {value}")
    return float(value)


def read_duration(report: Report, path: str, node: Node, *, positive: bool = False) -> float:
    _check_substituted(node)
    if not isinstance(node, Scalar) or node.value is None:
        raise _expected(report, path, node, "a duration such as 10s, 5m, 1h, 250ms or a number of seconds")
    raw = node.value if isinstance(node.value, int | float) and not node.substituted else node.text
    try:
        seconds = parse_duration(raw)
    except ValueError as bad:
        raise report.invalid(node.line, f"{path}: {bad}") from None
    if positive and seconds == 0:
        raise report.invalid(node.line, f"{path}: must be more than zero")
    return seconds
