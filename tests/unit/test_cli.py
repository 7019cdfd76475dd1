"""The command line, in process: exit codes and what it prints."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest

from authproxy.cli.demo import instructions
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


def test_token_ttl_takes_the_config_durations(capsys: pytest.CaptureFixture[str]) -> None:
    token = _token(capsys, "--secret", "s" * 40, "--ttl", "90m")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 5400


@pytest.mark.parametrize("ttl", ["1y", "soon", "-5s"])
def test_bad_token_ttl_is_a_usage_error(capsys: pytest.CaptureFixture[str], ttl: str) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["token", "--secret", "s" * 40, f"--ttl={ttl}"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "authproxy token: error: argument --ttl: " in err
    assert "Traceback" not in err


def test_unusable_token_keys_are_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "ec", "--out", str(tmp_path)]) == 0
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("not a key\n")
    ec_key = str(tmp_path / "ec-private.pem")
    cases = {
        (
            "--key",
            str(tmp_path / "absent.pem"),
        ): f"--key: cannot read {tmp_path / 'absent.pem'}: No such file",
        ("--key", str(not_pem)): f"--key: {not_pem} is not an unencrypted PEM private key",
        (
            "--key",
            ec_key,
            "--alg",
            "RS256",
        ): f"--alg RS256 cannot sign with the EC key in {ec_key} (use ES256)",
        ("--secret", "s" * 40, "--alg", "ES256"): "--alg ES256 signs with a private key: pass --key PEM",
    }
    capsys.readouterr()
    for args, message in cases.items():
        assert main(["token", *args]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith(f"authproxy token: error: {message}"), err


def test_unknown_token_algorithm_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["token", "--secret", "s" * 40, "--alg", "HS257"])
    assert exited.value.code == 2
    assert "argument --alg: invalid choice: 'HS257'" in capsys.readouterr().err


def test_keys_into_an_unwritable_place_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["keys", "rsa", "--out", str(blocker / "keys")]) == 1
    assert capsys.readouterr().err.startswith(f"authproxy keys: cannot write into {blocker / 'keys'}: ")


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_bad_listen_is_a_usage_error_with_the_address_message(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--listen", "localhost:http"])
    assert exited.value.code == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last == (
        f"authproxy {command}: error: argument --listen: "
        "the port must be a number from 0 to 65535; got 'http'"
    )


@pytest.mark.parametrize(("host", "url"), [("0.0.0.0", "http://127.0.0.1:8080"), ("::", "http://[::1]:8080")])
def test_demo_on_every_interface_prints_urls_that_work_from_this_host(host: str, url: str) -> None:
    lines = instructions(host, 8080, {"READER_TOKEN": "t"})
    curls = [line for line in lines if line.startswith("curl ")]
    assert curls and all(f" {url}/" in line for line in curls)
    assert "Listening on every interface, port 8080: from another host, put its address in the URLs." in lines


def test_demo_on_loopback_prints_its_own_address() -> None:
    lines = instructions("127.0.0.1", 41234, {"READER_TOKEN": "t"})
    assert "curl -i http://127.0.0.1:41234/health  # -> 200" in lines
    assert not any(line.startswith("Listening on every interface") for line in lines)
