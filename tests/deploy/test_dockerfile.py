"""The Dockerfile read as text: hadolint, and the contract the image keeps (test_container runs it)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    joined = DOCKERFILE.read_text().replace("\\\n", " ")
    pairs = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


def only(stage: list[tuple[str, str]], keyword: str) -> str:
    found = [rest for kw, rest in stage if kw == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {found}"
    return found[0]


def test_dockerfile_passes_hadolint(hadolint: str, run_tool: Callable[..., Any]) -> None:
    result = run_tool([hadolint, str(DOCKERFILE)], check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_stage_builds_on_python_3_11_slim_bookworm() -> None:
    bases = [rest.split()[0] for keyword, rest in instructions() if keyword == "FROM"]
    assert len(bases) >= 2, "multi-stage: a builder and a slim final stage"
    assert set(bases) == {"python:3.11-slim-bookworm"}


def test_final_stage_runs_as_fixed_non_root_uid() -> None:
    assert only(final_stage(), "USER") == "10001:10001"


def test_entrypoint_and_cmd_are_exec_form_authproxy_serve() -> None:
    # Exec form: authproxy is PID 1 and receives SIGTERM itself, so `docker stop` drains it.
    stage = final_stage()
    assert json.loads(only(stage, "ENTRYPOINT")) == ["authproxy"]
    assert json.loads(only(stage, "CMD")) == ["serve", "-c", "/etc/authproxy/config.yaml"]


def test_proxy_and_admin_ports_are_exposed() -> None:
    assert only(final_stage(), "EXPOSE").split() == ["8080", "9901"]


def test_healthcheck_uses_python3_against_healthz() -> None:
    check = only(final_stage(), "HEALTHCHECK")
    command = json.loads(check[check.index("CMD") + 3 :])
    assert command[0] == "python3"
    assert "http://127.0.0.1:9901/healthz" in command[-1]


def test_no_bytecode_or_pip_cache_is_written() -> None:
    env = " ".join(rest for keyword, rest in instructions() if keyword == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "PIP_NO_CACHE_DIR=1" in env


def test_offline_wheels_are_installed_without_an_index() -> None:
    install = " ".join(rest for keyword, rest in instructions() if keyword == "RUN")
    assert "PIP_NO_INDEX=1" in install
    assert "PIP_FIND_LINKS=/src/wheels" in install


def test_dockerignore_admits_only_the_build_inputs() -> None:
    lines = [
        line
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    admitted = sorted(line[1:] for line in lines if line.startswith("!"))
    assert admitted == ["README.md", "authproxy/", "pyproject.toml", "wheels/"]
