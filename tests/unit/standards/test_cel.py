"""standards/cel.py: expressions checked at load against the declared variables, and an evaluation that only
passes on the boolean true."""

from __future__ import annotations

import pytest

from authproxy.standards.cel import compile_expression, evaluate


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            'claims.x + 1 == "a"',
            "column 14: found no matching overload for '_==_' applied to '(int, string)'",
        ),
        ("nosuch == 1", "column 1: undeclared reference to 'nosuch'"),
        ("request.method + 1 == 2", "no matching overload for '_+_' applied to '(string, int)'"),
        ("claims.tenant ==", "column 17: Syntax error"),
        ("request.method", "the condition must be a boolean, but it is of type string"),
        ("size(params)", "the condition must be a boolean, but it is of type int"),
        ("  ", "an empty condition"),
    ],
)
def test_a_condition_that_cannot_be_a_boolean_is_refused_at_load(source: str, message: str) -> None:
    with pytest.raises(ValueError) as refused:
        compile_expression(source, "route")
    assert message in str(refused.value)


def test_tool_variables_are_not_route_variables() -> None:
    with pytest.raises(ValueError, match=r"undeclared reference to 'tool\.name'"):
        compile_expression("tool.name == 'x'", "route")
    with pytest.raises(ValueError, match=r"undeclared reference to 'request\.method'"):
        compile_expression("request.method == 'GET'", "tool")
    assert compile_expression("tool.arguments.dry_run == true", "tool").names == {"tool.arguments"}


@pytest.mark.parametrize(
    ("source", "names"),
    [
        ("claims.tenant == params.tenant", {"claims", "params"}),
        ('request.method == "GET"', {"request.method"}),
        ('request.path.startsWith("/a") && "x" in request.query', {"request.path", "request.query"}),
        ('"v" in request.headers["x-v"]', {"request.headers"}),
        ("body.amount < 100", {"body"}),
        # A comprehension's own variable named like one of ours reads nothing of it.
        ("[1, 2].all(body, body > 0)", set()),
        ("[1].exists(claims, claims == 1) && body.a == 1", {"body"}),
    ],
)
def test_the_variables_read_are_the_checkers_own_reading(source: str, names: set[str]) -> None:
    assert compile_expression(source, "route").names == names


@pytest.mark.parametrize(
    ("source", "variables", "passed", "value"),
    [
        (
            "claims.tenant == params.tenant",
            {"claims": {"tenant": "a"}, "params": {"tenant": "a"}},
            True,
            "true",
        ),
        (
            "claims.tenant == params.tenant",
            {"claims": {"tenant": "b"}, "params": {"tenant": "a"}},
            False,
            "false",
        ),
        # A missing field is an error, never a false that a `!` could turn into an allow.
        ("!(claims.tenant == 'x')", {"claims": {}}, False, 'error: key not found in map: "tenant"'),
        (
            "claims.admin",
            {"claims": {"admin": "yes"}},
            False,
            "error: the condition gave a string, not a boolean",
        ),
        ("claims.admin", {"claims": {"admin": 1}}, False, "error: the condition gave a int, not a boolean"),
        ("body.amount < 100", {"body": {"amount": "50"}}, False, "error: no matching overloads found"),
        ("body.amount < 100", {"body": {"amount": 2**70}}, False, "error: integer value"),
        ("body.amount < 100", {"body": {"amount": 99.5}}, True, "true"),
        ("body.amount < 100", {"body": None}, False, "error: "),
    ],
)
def test_only_the_boolean_true_passes(
    source: str, variables: dict[str, object], passed: bool, value: str
) -> None:
    outcome = evaluate(compile_expression(source, "route"), variables)
    assert outcome.passed is passed
    assert outcome.value.startswith(value)


def test_a_value_cel_cannot_hold_is_a_failure_not_an_exception() -> None:
    outcome = evaluate(compile_expression("claims.a == 1", "route"), {"claims": {"a": object()}})
    assert not outcome.passed
    assert outcome.value.startswith("error: ")
