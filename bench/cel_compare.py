"""The three CEL packages on PyPI compared for `when:` conditions: load-time checks, spec corners, eval cost.

Not part of `python -m bench` and not imported by the package: run it by hand in a venv that has all three,
    uv pip install 'common-expression-language==0.10.*' 'cel-python==0.5.*' 'cel-expr-python==0.1.*'
    python bench/cel_compare.py
None of the three wheels ships the cel-spec conformance suite, so the "spec" line runs a handful of the
suite's corner cases by hand (error absorption by && and ||, int/uint/double equality, missing map keys,
string functions, macros). Figures go to bench/README.md ("CEL packages").
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

EXPR = 'claims.tenant == params.tenant && request.method == "GET"'
DATA = {
    "claims": {"tenant": "acme", "sub": "u1", "scope": "a b"},
    "params": {"tenant": "acme"},
    "method": "GET",
}

# (expression, expected value or "error") — a few cases in the spirit of cel-spec's conformance files.
SPEC: list[tuple[str, object]] = [
    ("false && (1 / 0 == 1)", False),  # logical_and absorbs an error on the other side
    ("true || (1 / 0 == 1)", True),
    ("1 / 0 == 1", "error"),
    ("{'a': 1}.b == 1", "error"),  # a missing key is an error, never null
    ("dyn(1) == 1.0", True),  # heterogeneous numeric equality at run time (cel-spec 2022+)
    ("dyn(1u) == 1", True),
    ("'abc'.startsWith('ab') && 'abc'.contains('b')", True),
    ("[1, 2, 3].exists(x, x > 2) && [1, 2].all(x, x > 0)", True),
    ("size('héllo') == 5", True),  # code points, not bytes
    ("9223372036854775807 + 1 == 0", "error"),  # int overflow is an error
    ("has({'a': 1}.a) && !has({'a': 1}.b)", True),
    ("'a' in ['a', 'b'] && 'k' in {'k': 1}", True),
    ("1 == 'a'", "check"),  # no overload: a type error at check time, or false at run time
]

# Load-time checks: each must be refused at compile time by a good checker.
LOAD: list[str] = ['claims.x + 1 == "a"', "nosuch == 1", "request.method + 1 == 2", "1 +"]


def _timed(fn: Callable[[], object], n: int = 20000) -> float:
    """Median µs per call over 5 runs of n calls."""
    runs = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - t) / n * 1e6)
    return statistics.median(runs)


def cel_expr_python() -> dict[str, Any]:
    import cel_expr_python.cel as C

    t = C.Type
    env = C.NewEnv(
        variables={
            "claims": t.Map(t.STRING, t.DYN),
            "params": t.Map(t.STRING, t.STRING),
            "request.method": t.STRING,
        }
    )

    def run(src: str) -> object:
        try:
            result = env.compile(src).eval(data={})
        except RuntimeError as err:
            return "check" if "no matching overload" in str(err) else "error"
        return "error" if result.type() == t.ERROR else result.value()

    def load(src: str) -> bool:
        try:
            env.compile(src)
        except RuntimeError:
            return True
        return False

    prog = env.compile(EXPR)
    d = DATA
    return {
        "spec": [run(s) for s, _ in SPEC],
        "load": [load(s) for s in LOAD],
        "eval_us": _timed(
            lambda: prog.eval(
                data={"claims": d["claims"], "params": d["params"], "request.method": d["method"]}
            )
        ),
    }


def common_expression_language() -> dict[str, Any]:
    import cel

    def run(src: str) -> object:
        try:
            return cel.evaluate(src, {})
        except Exception:  # noqa: BLE001 - the package raises several builtin types for evaluation errors
            return "error"

    def load(src: str) -> bool:
        try:
            cel.compile(src)  # parse only: the package has no checker and no variable declarations
        except Exception:  # noqa: BLE001
            return True
        return False

    prog = cel.compile(EXPR)
    d = DATA
    return {
        "spec": [run(s) for s, _ in SPEC],
        "load": [load(s) for s in LOAD],
        "eval_us": _timed(
            lambda: prog.execute(
                {"claims": d["claims"], "params": d["params"], "request": {"method": d["method"]}}
            )
        ),
    }


def cel_python() -> dict[str, Any]:
    import celpy

    env = celpy.Environment()

    def run(src: str) -> object:
        try:
            value = env.program(env.compile(src)).evaluate({})
        except Exception:  # noqa: BLE001
            return "error"
        return "error" if isinstance(value, celpy.CELEvalError) else value

    def load(src: str) -> bool:
        try:
            env.compile(src)  # parse only: no type checker
        except Exception:  # noqa: BLE001
            return True
        return False

    prog = env.program(env.compile(EXPR))
    d = DATA
    return {
        "spec": [run(s) for s, _ in SPEC],
        "load": [load(s) for s in LOAD],
        "eval_us": _timed(
            lambda: prog.evaluate(
                {
                    "claims": celpy.json_to_cel(d["claims"]),
                    "params": celpy.json_to_cel(d["params"]),
                    "request": celpy.json_to_cel({"method": d["method"]}),
                }
            ),
            n=2000,
        ),
    }


def main() -> None:
    for name, fn in (
        ("cel-expr-python", cel_expr_python),
        ("common-expression-language", common_expression_language),
        ("cel-python", cel_python),
    ):
        r = fn()
        spec_ok = sum(
            1
            for (src, want), got in zip(SPEC, r["spec"], strict=True)
            if got == want or (want == "check" and got in ("check", False, "error"))
        )
        wrong = [
            src for (src, want), got in zip(SPEC, r["spec"], strict=True) if got != want and want != "check"
        ]
        print(f"## {name}")
        print(f"spec corners: {spec_ok}/{len(SPEC)}; wrong: {wrong}")
        print(f"refused at load: {sum(r['load'])}/{len(LOAD)} {dict(zip(LOAD, r['load'], strict=True))}")
        print(f"eval incl. activation: {r['eval_us']:.2f} µs")


if __name__ == "__main__":
    main()
