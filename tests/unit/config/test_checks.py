"""Readers raise Invalid once they have reported; a section catches it per key and reads on, so every problem
of a section is reported in one pass, and the section raises Invalid only after reading them all."""

from __future__ import annotations

import pytest

from authproxy.config.fields import (
    Checks,
    Invalid,
    Report,
    read_bool,
    read_duration,
    read_map,
    read_section,
    read_str,
)
from authproxy.config.source import MapNode, parse


def _section(text: str) -> tuple[Report, MapNode]:
    root, problems = parse(text, "c.yaml", {})
    assert problems == [] and isinstance(root, MapNode)
    return Report("c.yaml"), root


def test_a_reader_raises_invalid_after_reporting() -> None:
    report, root = _section("a: 5\n")
    section = read_section(report, "s", 1, root, ("a",))
    node = section.get("a")
    assert node is not None
    with pytest.raises(Invalid):
        read_str(report, "s.a", node)
    assert [(p.line, p.message) for p in report.errors] == [
        (1, "s.a: expected a string, got an integer (quote it to make it text)")
    ]


def test_checks_read_every_key_then_raise_once() -> None:
    report, root = _section("a: 5\nb: yes please\nc: 10s\n")
    section = read_section(report, "s", 1, root, ("a", "b", "c", "d"))
    checks = Checks()
    a = checks.key(section, "a", lambda p, n: read_str(report, p, n), "stand-in")
    b = checks.key(section, "b", lambda p, n: read_bool(report, p, n), False)
    c = checks.key(section, "c", lambda p, n: read_duration(report, p, n), 0.0)
    d = checks.key(section, "d", lambda p, n: read_str(report, p, n), "absent")
    assert (a, b, c, d) == ("stand-in", False, 10.0, "absent")
    assert (checks.ok("c", "d"), checks.ok("a"), checks.ok("b", "c")) == (True, False, False)
    assert [p.line for p in report.errors] == [1, 2]  # both bad keys reported, not just the first
    with pytest.raises(Invalid):
        checks.done()


def test_checks_without_a_failure_are_done_quietly() -> None:
    Checks().done()


def test_a_section_that_is_no_map_raises_invalid() -> None:
    report, root = _section("s: [1]\n")
    node = root.items[0][1]
    with pytest.raises(Invalid):
        read_section(report, "s", 1, node, ("a",))
    assert [p.message for p in report.errors] == ["s: expected a map, got a list"]


def test_a_map_of_chosen_keys_is_read_whole_and_anything_else_raises_invalid() -> None:
    report, root = _section("routes: {GET /a: [x], anything: 1}\nlist: [1]\n")
    routes, listed = root.items[0][1], root.items[1][1]
    assert read_map(report, "routes", routes) is routes  # no key is unknown: the author names them
    with pytest.raises(Invalid):
        read_map(report, "list", listed)
    assert [(p.line, p.message) for p in report.errors] == [(2, "list: expected a map, got a list")]


def test_report_invalid_reports_and_gives_the_exception_to_raise() -> None:
    report = Report("c.yaml")
    raised = report.invalid(3, "s.a: wrong")
    assert isinstance(raised, Invalid)
    assert [(p.file, p.line, p.message) for p in report.errors] == [("c.yaml", 3, "s.a: wrong")]
