"""`authproxy explain` on conditions: each condition's expression, where it is written, and its value, for a
route (at the gate), a body (by the content stage) and an MCP tool call."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jwt
import pytest

from authproxy.cli.main import main

CONFIG = Path(__file__).resolve().parents[2] / "config" / "conditions.yaml"
SECRET = "dev-only-secret-replace-me-0123456789abcdef"  # the example's default, as `authproxy test` uses it
MCP = ["--header", "Accept: application/json, text/event-stream"]


def token(**claims: Any) -> str:
    return jwt.encode({"sub": "alice", "aud": "my-api", "exp": 4_000_000_000, **claims}, SECRET, "HS256")


def explain(capsys: pytest.CaptureFixture[str], *args: str, **claims: Any) -> tuple[int, dict[str, Any]]:
    code = main(["explain", "-c", str(CONFIG), "--json", "--token", token(**claims), *args])
    return code, json.loads(capsys.readouterr().out)


def conditions(document: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["description"], c["result"]) for c in document["checks"] if c["label"] == "condition"]


def line_of(text: str) -> int:
    return next(i for i, line in enumerate(CONFIG.read_text().splitlines(), 1) if text in line)


def test_a_route_condition_at_the_gate(capsys: pytest.CaptureFixture[str]) -> None:
    where = f"{CONFIG}:{line_of('claims.tenant == params.tenant')}"
    code, document = explain(capsys, "GET", "/tenants/acme/reports", scopes=["reports:read"], tenant="acme")
    assert code == 0
    assert conditions(document) == [(f"claims.tenant == params.tenant ({where}) = true", "passed")]
    code, document = explain(capsys, "GET", "/tenants/acme/reports", scopes=["reports:read"])
    assert (code, document["error"], document["status"]) == (1, "condition_failed", 403)
    assert conditions(document) == [
        (f'claims.tenant == params.tenant ({where}) = error: key not found in map: "tenant"', "refused")
    ]
    assert document["checks"][0] == {
        "label": "gate",
        "description": "GET /tenants/{tenant}/reports: needs reports:read",
        "result": "passed",  # the scopes held; the condition refused
    }
    assert document["body"] == {"detail": "a condition of this rule is not met", "error": "condition_failed"}


@pytest.mark.parametrize(("amount", "value", "result"), [(10, "true", "passed"), (5000, "false", "refused")])
def test_a_body_condition(capsys: pytest.CaptureFixture[str], amount: int, value: str, result: str) -> None:
    body = json.dumps({"amount": amount, "currency": "EUR"})
    args = ["--header", "Content-Type: application/json", "--body", body, "POST", "/payments"]
    _, document = explain(capsys, *args, scopes=["payments:write"])
    where = f"{CONFIG}:{line_of('body.amount <= 1000')}"
    assert conditions(document) == [
        (f"body.amount <= 1000 && body.currency == 'EUR' ({where}) = {value}", result)
    ]
    assert document["port"] == "proxied"


def test_a_body_condition_without_the_body_is_pending(capsys: pytest.CaptureFixture[str]) -> None:
    _, document = explain(capsys, "POST", "/payments", scopes=["payments:write"])
    assert conditions(document) == []
    assert ("request body", "pending") in [(c["label"], c["result"]) for c in document["checks"]]


@pytest.mark.parametrize(
    ("dry_run", "value", "result"), [(True, "true", "passed"), (False, "false", "refused")]
)
def test_a_tool_condition(capsys: pytest.CaptureFixture[str], dry_run: bool, value: str, result: str) -> None:
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "migrate", "arguments": {"dry_run": dry_run}},
    }
    args = [*MCP, "--header", "Content-Type: application/json", "--body", json.dumps(call), "POST", "/mcp"]
    _, document = explain(capsys, *args, scopes=["db:write"])
    where = f"{CONFIG}:{line_of('tool.arguments.dry_run')}"
    assert conditions(document) == [(f"tool.arguments.dry_run == true ({where}) = {value}", result)]
