"""No module of authproxy holds an exception instance at module level.

An exception object raised from two requests is one object: each `raise` rewrites its `__traceback__`,
`__context__` and `__cause__`, so one request's frames (and every local they hold) stay alive in another's,
and two concurrent requests' tracebacks mix. Raise a fresh instance each time (a class, or a function that
builds one).
"""

from __future__ import annotations

import importlib
import pkgutil

import authproxy


def _modules() -> list[str]:
    # `__main__` runs the command line when imported; it defines nothing.
    found = pkgutil.walk_packages(authproxy.__path__, "authproxy.")
    return sorted(m.name for m in found if not m.name.endswith(".__main__"))


def test_every_module_of_the_package_is_found() -> None:
    names = _modules()
    assert {"authproxy.proxy.server", "authproxy.standards.sse", "authproxy.cli.main"} <= set(names)


def test_no_module_holds_an_exception_instance() -> None:
    shared = []
    for name in _modules():
        module = importlib.import_module(name)
        for attribute, value in vars(module).items():
            if isinstance(value, BaseException):
                shared.append(f"{name}.{attribute} = {value!r}")
    print("\n".join(shared))
    assert shared == [], "module-level exception instances: " + "; ".join(shared)
