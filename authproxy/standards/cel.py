"""CEL (the Common Expression Language, cel-spec) for `when:` conditions, through Google's cel-cpp runtime
(the `cel-expr-python` package): parsed and type-checked once, at load, against the variables a rule offers.

Why cel-cpp: it is the reference implementation's C++ core, and its checker refuses at load what the other
Python packages only find per request (an unknown variable, `claims.x + 1 == "a"`, a condition that can only
be a string); one evaluation costs ~3 µs (bench/cel_compare.py, figures in bench/README.md).

Evaluation never raises and never allows by accident: only the boolean `true` passes. A missing field, a
wrong type, a value CEL cannot hold (an integer past 64 bits) or a non-boolean result is a failure, with
its text for `explain` and the access line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

import cel_expr_python.cel as cel

__all__ = ["VARIABLES", "Expression", "Kind", "Outcome", "compile_expression", "evaluate"]

Kind = Literal["route", "tool"]

_T = cel.Type
_STRINGS = _T.Map(_T.STRING, _T.List(_T.STRING))  # a query or the headers: every value of each name
# The variables each kind of rule offers, with their CEL types: the checker holds expressions to them.
_DECLARED: dict[Kind, dict[str, Any]] = {
    "route": {
        "claims": _T.Map(_T.STRING, _T.DYN),
        "request.method": _T.STRING,
        "request.path": _T.STRING,
        "request.query": _STRINGS,
        "request.headers": _STRINGS,
        "params": _T.Map(_T.STRING, _T.STRING),
        "body": _T.DYN,
    },
    "tool": {
        "claims": _T.Map(_T.STRING, _T.DYN),
        "tool.name": _T.STRING,
        "tool.arguments": _T.Map(_T.STRING, _T.DYN),
    },
}
VARIABLES: dict[Kind, tuple[str, ...]] = {kind: tuple(names) for kind, names in _DECLARED.items()}


@dataclass(frozen=True, slots=True)
class Expression:
    """A checked expression; `names` are the variables it reads (an activation needs only those)."""

    source: str
    names: frozenset[str]
    program: Any = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an evaluation gave: `passed` only for the boolean true; `value` as explain prints it."""

    passed: bool
    value: str  # "true", "false", or "error: <why>"


_NO_CONTAINER = " (in container '')"  # we declare no container: the phrase only adds noise


@cache
def _env(kind: Kind, without: str | None = None) -> Any:
    # One environment per kind (the library's first one costs ~0.1 s, later ones ~50 µs); `without`: the
    # same minus one variable, which tells whether an expression reads it (see _reads).
    declared = {n: t for n, t in _DECLARED[kind].items() if n != without}
    return cel.NewEnv(variables=declared)


def compile_expression(source: str, kind: Kind) -> Expression:
    """Parse and type-check `source` against the variables of `kind`; ValueError(message) if it cannot be
    a boolean condition (a syntax error, an unknown variable, no matching overload, a non-boolean type)."""
    if not source.strip():
        raise ValueError("an empty condition")
    try:
        program = _env(kind).compile(source)
    except RuntimeError as bad:
        raise ValueError(_message(str(bad))) from None
    result = program.return_type()
    if result != _T.BOOL and result != _T.DYN:  # DYN (a claim, a body field): checked per request
        raise ValueError(f"the condition must be a boolean, but it is of type {result.name().lower()}")
    return Expression(source, _reads(source, kind), program)


def _reads(source: str, kind: Kind) -> frozenset[str]:
    """The declared variables the expression reads, by the checker itself: compiled without one, it fails
    exactly when it reads that one (a comprehension's own `body` or `claims` is not a read)."""
    read: set[str] = set()
    for name in VARIABLES[kind]:
        try:
            _env(kind, name).compile(source)
        except RuntimeError:
            read.add(name)
    return frozenset(read)


def _message(text: str) -> str:
    # cel-cpp: "INVALID_ARGUMENT: ERROR: <input>:1:14: found no matching overload ...\n | source\n | ..^"
    first = text.splitlines()[0] if text else "invalid expression"
    _, marker, rest = first.partition("ERROR: <input>:")
    if not marker:
        return first
    line, _, rest = rest.partition(":")
    column, _, message = rest.partition(":")
    where = f"column {column}" if line == "1" else f"line {line} column {column}"
    return f"{where}: {message.removesuffix(_NO_CONTAINER).strip()}"


_PASSED = Outcome(True, "true")
_FALSE = Outcome(False, "false")


def evaluate(expression: Expression, variables: Mapping[str, Any]) -> Outcome:
    """The expression's outcome on `variables` (name -> plain Python value, as JSON gives them)."""
    try:
        result = expression.program.eval(data=variables)
    except RuntimeError as bad:  # a value CEL cannot hold (a mapping proxy, a type it does not know)
        return Outcome(False, f"error: {_runtime_message(str(bad))}")
    value = result.value()
    if value is True:  # only a BOOL's value is the object True (an error's is its status text)
        return _PASSED
    kind = result.type()
    if kind == _T.ERROR:
        return Outcome(False, f"error: {_runtime_message(str(value))}")
    if kind != _T.BOOL:
        return Outcome(False, f"error: the condition gave a {kind.name().lower()}, not a boolean")
    return _FALSE


def _runtime_message(text: str) -> str:
    # "NOT_FOUND: Key not found in map : \"x\"" -> "key not found in map: \"x\""
    _, colon, rest = text.partition(": ")
    message = (rest if colon and text[: text.find(":")].isupper() else text).strip()
    return message.replace(" : ", ": ")[:1].lower() + message.replace(" : ", ": ")[1:]
