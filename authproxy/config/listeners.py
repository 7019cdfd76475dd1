"""`listen`, `admin_listen`, the command-line overrides, and which mode runs.

With an upstream (in the file, or `serve --upstream URL`) the proxied port forwards to it. Without one,
only the decision port (`authz_listen`, `authz.grpc_listen`) may run: the proxied port is not opened, so a
`listen` would name a port that forwards nowhere and is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from authproxy.config.fields import Checks, Invalid, Report, Section, read_address
from authproxy.config.model import Address, AuthzConfig, Config, Overrides
from authproxy.config.values import parse_address
from authproxy.errors import Problem

__all__ = ["check_mode", "command_line", "read_listeners"]

T = TypeVar("T")

_WILDCARD = frozenset({"0.0.0.0", "::"})  # noqa: S104 - compared against, not bound
_NO_UPSTREAM = "the proxied port forwards to upstream, which is not set (without it only authz_listen runs)"
_MISSING_UPSTREAM = (
    "missing required key 'upstream' (the URL requests are forwarded to; `serve --upstream URL` sets it "
    "too; a config with authz_listen and no upstream runs the decision port alone)"
)


def command_line(report: Report, option: str, text: str, parse: Callable[[str], T]) -> T:
    """A command-line value checked by the parser its config key uses; reported as `OPTION: message`."""
    try:
        return parse(text)
    except ValueError as bad:
        report.errors.append(Problem(option, 0, str(bad)))
        raise Invalid from None


def read_listeners(
    report: Report, top: Section, checks: Checks, overrides: Overrides, defaults: Config, *, proxied: bool
) -> tuple[Address | None, Address | None]:
    """(listen, admin_listen); a failed one is None, and failed in `checks`. listen is None too when
    nothing is proxied."""
    admin = _address(report, top, checks, "admin_listen", defaults.admin_listen)
    if not proxied:
        if "listen" in top.entries:
            report.error(top.key_line("listen"), f"listen: {_NO_UPSTREAM}")
        if overrides.listen is not None:
            report.errors.append(Problem("--listen", 0, _NO_UPSTREAM))
        return None, admin
    listen = _address(report, top, checks, "listen", defaults.listen)
    if (option := overrides.listen) is not None:
        listen = checks.attempt(
            "listen", lambda: command_line(report, "--listen", option, parse_address), None
        )
    if listen is not None and admin is not None:
        _check_shared_port(report, top, listen, admin)
    return listen, admin


def check_mode(report: Report, *, proxied: bool, authz: AuthzConfig | None) -> None:
    """No upstream is an error unless a decision port runs instead."""
    if not proxied and authz is not None and not authz.enabled:
        report.error(1, _MISSING_UPSTREAM)


def _address(
    report: Report, top: Section, checks: Checks, key: str, default: Address | None
) -> Address | None:
    """The address under `key`, `default` when absent; None when invalid (reported, failed in `checks`)."""
    node = top.get(key)
    return default if node is None else checks.attempt(key, lambda: read_address(report, key, node), None)


def _check_shared_port(report: Report, top: Section, listen: Address, admin: Address) -> None:
    if listen.port == 0 or listen.port != admin.port:
        return  # port 0 binds a fresh port each time, so two of them never collide
    if listen.host == admin.host or listen.host in _WILDCARD or admin.host in _WILDCARD:
        name = "admin_listen" if "admin_listen" in top.entries else "listen"
        report.error(top.key_line(name), f"{name}: listen ({listen}) and admin_listen ({admin}) share a port")
