"""`authproxy explain` reports the limits that apply without taking a token; `authproxy test` counts them."""

from __future__ import annotations

from pathlib import Path

import pytest

from authproxy.cli.main import main

REPO = Path(__file__).resolve().parents[3]
CONFIG = REPO / "config" / "rate-limits.yaml"
SECRET = "dev-only-secret-replace-me-0123456789abcdef"


def _token(capsys: pytest.CaptureFixture[str], scopes: str) -> str:
    args = ["token", "--secret", SECRET, "--aud", "my-agent-os", "--sub", "alice", "--scopes", scopes]
    assert main(args) == 0
    return capsys.readouterr().out.strip()


def test_explain_names_every_limit_and_never_uses_up_the_budget(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Redis backend nobody listens on: explain must not need it, since it takes no token.
    monkeypatch.setenv("RATE_LIMIT_BACKEND", "redis://127.0.0.1:1/0")
    token = _token(capsys, "agents:run")
    for _ in range(5):  # more than the burst of 3
        assert main(["explain", "-c", str(CONFIG), "--token", token, "POST", "/agents/a1/runs"]) == 0
        out = capsys.readouterr().out
        assert "decision: allow" in out
        assert (
            "rate limits: default 600/min; POST /agents/{agent_id}/runs 10/min burst 3 (per user_id 'alice')"
        ) in out


def test_explain_of_a_public_route_shows_no_limit(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "-c", str(CONFIG), "GET", "/health"]) == 0
    assert "rate limits" not in capsys.readouterr().out


def test_policy_cases_count_repeats(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", "-c", str(CONFIG), str(REPO / "config" / "rate-limits.cases.yaml")]) == 0
    assert "7 passed, 0 failed" in capsys.readouterr().out


def test_a_case_expecting_the_wrong_side_of_a_limit_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = tmp_path / "cases.yaml"
    cases.write_text(
        "- request: POST /agents/a1/runs\n  claims: {scopes: [agents:run]}\n  repeat: 4\n  expect: 200\n"
        "- request: POST /agents/a1/runs\n  claims: {scopes: [agents:run]}\n  repeat: 0\n  expect: 200\n"
    )
    assert main(["test", "-c", str(CONFIG), str(cases)]) == 1
    assert "cases.yaml:5: `repeat` must be a whole number from 1 to 100000" in capsys.readouterr().out
    cases.write_text(
        "- request: POST /agents/a1/runs\n  claims: {scopes: [agents:run]}\n  repeat: 4\n  expect: 200\n"
    )
    assert main(["test", "-c", str(CONFIG), str(cases)]) == 1
    assert "-> 429" in capsys.readouterr().out
