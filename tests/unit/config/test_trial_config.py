"""`policy.dry_run`, `policy.shadow` and `authz.dry_run`: what loads, and each mistake as FILE:LINE."""

from __future__ import annotations

from tests.rigs.configdir import ConfigDir

_POLICY = 'policy:\n  routes:\n    "GET /agents": [agents:read]\n'
_SHADOW = 'routes:\n  "GET /agents": [agents:read, agents:list]\n'


def test_off_by_default(cfg: ConfigDir, head: str) -> None:
    config = cfg.config(head + _POLICY)
    assert not config.policy.dry_run
    assert config.policy.shadow is None
    assert not config.authz.dry_run


def test_dry_run_and_a_shadow_file(cfg: ConfigDir, head: str) -> None:
    path = cfg.write(_SHADOW, "next.yaml")
    config = cfg.config(head + _POLICY + "  dry_run: true\n  shadow: next.yaml\nauthz:\n  dry_run: true\n")
    assert config.policy.dry_run
    assert config.authz.dry_run
    shadow = config.policy.shadow
    assert shadow is not None
    assert shadow.file.endswith(path.rsplit("/", 1)[-1])
    assert [r.key for r in shadow.policy.routes] == ["GET /agents"]
    assert shadow.policy.routes[0].scopes == ("agents:read", "agents:list")
    assert config.policy.routes[0].scopes == ("agents:read",)


def test_a_broken_shadow_file_is_located_in_that_file(cfg: ConfigDir, head: str) -> None:
    cfg.write('routes:\n  "GET /agents": [agents:read]\n  "GIT /x": []\n', "next.yaml")
    errors = cfg.errors(head + _POLICY + "  shadow: next.yaml\n")
    assert len(errors) == 1
    assert errors[0].startswith("next.yaml:3: ")


def test_a_missing_shadow_file(cfg: ConfigDir, head: str) -> None:
    errors = cfg.errors(head + _POLICY + "  shadow: nowhere.yaml\n")
    assert errors == ["config.yaml:11: policy.shadow: cannot read nowhere.yaml: No such file or directory"]


def test_dry_run_inside_a_shadow_is_refused(cfg: ConfigDir, head: str) -> None:
    cfg.write(_SHADOW + "dry_run: true\n", "next.yaml")
    errors = cfg.errors(head + _POLICY + "  shadow: next.yaml\n")
    assert errors == ["next.yaml:3: dry_run: belongs in the main policy, not a shadow"]


def test_dry_run_must_be_a_bool(cfg: ConfigDir, head: str) -> None:
    errors = cfg.errors(head + _POLICY + "  dry_run: sometimes\n")
    assert len(errors) == 1
    assert errors[0].startswith("config.yaml:11: policy.dry_run: ")
