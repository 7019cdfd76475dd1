"""The command line, in process: exit codes and what it prints."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest

from authproxy.cli.main import main

POLICY = """\
upstream:
  url: http://127.0.0.1:7777
jwt:
  algorithms: [{alg}]
  keys:
    - {key}
  audience: cli-test
policy:
  routes:
    "GET /agents": [agents:read]
"""


def _write_config(tmp_path: Path, alg: str, key: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.format(alg=alg, key=key))
    return path


def _token(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["token", "--aud", "cli-test", "--scopes", "agents:read", *args]) == 0
    return capsys.readouterr().out.strip()


@pytest.mark.parametrize(
    ("kind", "curve", "alg"),
    [
        ("rsa", "P-256", "RS256"),
        ("ec", "P-256", "ES256"),
        ("ec", "P-384", "ES384"),
        ("ed25519", "P-256", "EdDSA"),
    ],
)
def test_keys_then_token_signs_with_the_algorithm_of_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, curve: str, alg: str
) -> None:
    assert main(["keys", kind, "--out", str(tmp_path), "--curve", curve]) == 0
    capsys.readouterr()
    private, public = tmp_path / f"{kind}-private.pem", tmp_path / f"{kind}-public.pem"
    assert private.stat().st_mode & 0o077 == 0  # the private half is readable by its owner only
    token = _token(capsys, "--key", str(private))
    assert jwt.get_unverified_header(token)["alg"] == alg
    config = _write_config(tmp_path, alg, f"public_key_file: {public}")
    assert main(["explain", "-c", str(config), "--token", token, "GET", "/agents"]) == 0
    assert "decision: allow" in capsys.readouterr().out


def test_explain_denial_prints_status_error_and_body_and_exits_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "s" * 40
    config = _write_config(tmp_path, "HS256", f"secret: {secret}")
    token = _token(capsys, "--secret", secret, "--sub", "alice")
    assert main(["explain", "-c", str(config), "--token", token, "DELETE", "/agents"]) == 1
    out = capsys.readouterr().out
    assert "decision: deny" in out
    assert "status: 403" in out
    assert "error: insufficient_scope" in out
    assert token not in out


def test_explain_without_token_is_missing_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _write_config(tmp_path, "HS256", "secret: " + "s" * 40)
    assert main(["explain", "-c", str(config), "GET", "/agents"]) == 1
    assert "status: 401" in capsys.readouterr().out


def test_check_prints_located_problems_and_exits_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _write_config(tmp_path, "none", "secret: " + "s" * 40)
    assert main(["check", "-c", str(config)]) == 1
    assert f"{config}:4: " in capsys.readouterr().out


def test_check_accepts_a_good_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _write_config(tmp_path, "HS256", "secret: " + "s" * 40)
    assert main(["check", "-c", str(config)]) == 0
    assert ": ok (" in capsys.readouterr().out


def test_token_needs_exactly_one_key(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match="exactly one of --secret or --key"):
        main(["token", "--sub", "x"])
