"""`authproxy explain --shadow` and `authproxy test --shadow`: two policies compared offline, and `check`
saying that a policy runs in dry run or beside a shadow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from authproxy.cli.main import main

CONFIG = """\
upstream:
  url: http://127.0.0.1:7777
jwt:
  algorithms: [HS256]
  keys:
    - secret: ssssssssssssssssssssssssssssssssssssssss
  audience: cli-test
policy:
  routes:
    "GET /agents": [agents:read]
    "GET /sessions": [sessions:read]
"""
# Narrows GET /agents, widens nothing else: exactly one route answers otherwise.
SHADOW = 'routes:\n  "GET /agents": [agents:read, agents:list]\n  "GET /sessions": [sessions:read]\n'
CASES = """\
- name: a reader lists agents
  request: GET /agents
  claims: {sub: alice, scopes: [agents:read]}
  expect: 200
- name: a reader lists sessions
  request: GET /sessions
  claims: {sub: alice, scopes: [sessions:read]}
  expect: 200
- name: no token
  request: GET /agents
  expect: 401
"""


@pytest.fixture
def files(tmp_path: Path) -> tuple[str, str]:
    (tmp_path / "config.yaml").write_text(CONFIG)
    (tmp_path / "next.yaml").write_text(SHADOW)
    return str(tmp_path / "config.yaml"), str(tmp_path / "next.yaml")


def test_test_shadow_lists_exactly_the_cases_whose_status_differs(
    files: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, shadow = files
    (tmp_path / "cases.yaml").write_text(CASES)
    assert main(["test", "-c", config, "--shadow", shadow, str(tmp_path / "cases.yaml")]) == 0
    out = capsys.readouterr().out.splitlines()
    at = out.index(f"shadow {shadow}: 1 case(s) answered with another status")
    assert out[at + 1].split() == ["case", "request", "enforced", "shadow"]
    assert out[at + 2].split("  ")[0] == "a reader lists agents"
    assert out[at + 2].split()[-3:] == ["200", "403", "insufficient_scope"]
    assert out[at + 3 :] == []


def test_test_shadow_with_no_difference_says_so(
    files: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = files
    (tmp_path / "same.yaml").write_text(CONFIG.partition("policy:\n")[2].replace("\n  ", "\n")[2:])
    (tmp_path / "cases.yaml").write_text(CASES)
    same = str(tmp_path / "same.yaml")
    assert main(["test", "-c", config, "--shadow", same, str(tmp_path / "cases.yaml")]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last == f"shadow {same}: 0 case(s) answered with another status"


def test_a_broken_shadow_file_is_located(
    files: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, shadow = files
    Path(shadow).write_text('routes:\n  "GIT /agents": []\n')
    (tmp_path / "cases.yaml").write_text(CASES)
    assert main(["test", "-c", config, "--shadow", shadow, str(tmp_path / "cases.yaml")]) == 1
    assert f"{shadow}:2: " in capsys.readouterr().out


def test_explain_shadow_gives_the_shadows_answer_beside(
    files: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    config, shadow = files
    assert main(["token", "--secret", "s" * 40, "--aud", "cli-test", "--scopes", "agents:read"]) == 0
    token = capsys.readouterr().out.strip()
    assert main(["explain", "-c", config, "--token", token, "--shadow", shadow, "GET", "/agents"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last == f"shadow {shadow}: 403 insufficient_scope (DIFFERS)"
    assert main(["explain", "-c", config, "--json", "--shadow", shadow, "GET", "/agents"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["shadow"] == {"file": shadow, "status": 401, "error": "missing_token", "differs": False}


def test_check_says_dry_run_and_names_the_shadow(
    files: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = files
    Path(config).write_text(CONFIG + "  dry_run: true\n  shadow: next.yaml\n")
    assert main(["check", "-c", config]) == 0
    out = capsys.readouterr().out
    assert "dry run: requests the policy would refuse are forwarded, not refused" in out
    assert "next.yaml: its differences are logged, never answered" in out
