"""`policy.dry_run` and `policy.shadow`: trying a policy on real traffic before it answers anyone.

    policy:
      dry_run: true                  # would-be refusals are forwarded, logged and counted, never answered
      shadow: policy-next.yaml       # a second policy, decided beside this one; its differences are logged

The shadow file holds a policy section's own keys (preset, admin_scope, unmapped, public, routes,
user_isolation), read by the same reader as `policy:`; its problems are reported as FILE:LINE of the shadow
file, so a broken shadow file fails the load (and a reload keeps the running pair).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Mapping

from authproxy.config.fields import Checks, Invalid, Report, read_bool, read_str, read_yaml_file
from authproxy.config.model import PolicyConfig, ShadowPolicy
from authproxy.config.rules import read_policy
from authproxy.config.source import MapNode, Node
from authproxy.errors import ConfigError

__all__ = ["TRIAL_KEYS", "load_shadow", "read_trial"]

TRIAL_KEYS = ("dry_run", "shadow")  # keys of `policy:` read here, not by config/rules.py


def read_trial(
    report: Report,
    node: Node,
    policy: PolicyConfig,
    base_dir: str,
    preset_dir: str,
    env: Mapping[str, str],
) -> PolicyConfig:
    """`policy` with its dry_run and shadow keys read from the `policy:` node; Invalid once reported."""
    if not isinstance(node, MapNode):
        return policy  # reported by read_policy
    entries = {key.text: value for key, value in node.items}  # unknown keys: reported by read_policy
    checks = Checks()
    dry_run = False
    if (flag := entries.get("dry_run")) is not None:
        dry_run = checks.attempt("dry_run", lambda: read_bool(report, "policy.dry_run", flag), False)
    shadow = None
    if (file := entries.get("shadow")) is not None:
        read = lambda: _shadow(report, "policy.shadow", file, base_dir, preset_dir, env)  # noqa: E731
        shadow = checks.attempt("shadow", read, None)
    checks.done()
    return dataclasses.replace(policy, dry_run=dry_run, shadow=shadow)


def load_shadow(file: str, preset_dir: str, env: Mapping[str, str]) -> PolicyConfig:
    """A shadow policy file on its own (`authproxy explain/test --shadow FILE`); raises ConfigError."""
    report = Report(file)
    shadow = None
    with contextlib.suppress(Invalid):  # reported
        shadow = _shadow_file(report, 1, "--shadow", file, preset_dir, env)
    if shadow is None or report.errors:
        raise ConfigError(report.errors)
    return shadow.policy


def _shadow(
    report: Report, path: str, node: Node, base_dir: str, preset_dir: str, env: Mapping[str, str]
) -> ShadowPolicy:
    file = os.path.join(base_dir, read_str(report, path, node))
    return _shadow_file(report, node.line, path, file, preset_dir, env)


def _shadow_file(
    report: Report, line: int, path: str, file: str, preset_dir: str, env: Mapping[str, str]
) -> ShadowPolicy:
    there, root, parsed = read_yaml_file(report, line, f"{path}: cannot read", file, env)
    if isinstance(root, MapNode) and (nested := [k for k, _ in root.items if k.text in TRIAL_KEYS]):
        # A shadow of a shadow, or a dry run inside one, would mean nothing: say so rather than ignore it.
        raise there.invalid(nested[0].line, f"{nested[0].text}: belongs in the main policy, not a shadow")
    shadow = read_policy(there, 1, root, preset_dir, env)
    if not parsed:
        raise Invalid
    return ShadowPolicy(file, shadow)
