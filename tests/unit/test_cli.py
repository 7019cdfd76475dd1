"""The command line, in process: exit codes and what it prints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


REPO = Path(__file__).resolve().parents[2]
CONTENT_POLICY = """\
upstream:
  url: http://127.0.0.1:7777
jwt:
  algorithms: [HS256]
  keys:
    - secret: {secret}
  audience: cli-test
policy:
  routes:
    "GET /sessions": {{scopes: [sessions:read], pin: {{query.user_id: user_id}}}}
    "POST /sessions": {{scopes: [sessions:write], pin: {{json:/user_id: user_id}}}}
    "GET /sessions/{{id}}": {{scopes: [sessions:read], response: {{json:/user_id: user_id}}}}
    "POST /runs/{{run_id}}/cancel":
      scopes: [sessions:write]
      owner:
        get: "/runs/{{run_id}}?session={{query.session_id}}"
        expect: {{json:/user_id: "{{caller.user_id}}"}}
"""
SECRET = "s" * 40


def _content_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, str]:
    config = tmp_path / "content.yaml"
    config.write_text(CONTENT_POLICY.format(secret=SECRET))
    token = _token(capsys, "--secret", SECRET, "--sub", "alice", "--scopes", "sessions:read,sessions:write")
    return config, token


def _explain_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["explain", "--json", *args])
    return code, json.loads(capsys.readouterr().out)


def test_explain_runs_the_query_pin_and_answers_as_the_proxy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, token = _content_config(tmp_path, capsys)
    code, document = _explain_json(
        capsys, "-c", str(config), "--token", token, "GET", "/sessions?user_id=bob"
    )
    assert code == 1
    assert document == {
        "decision": "deny",
        "status": 403,
        "forwarded": False,
        "port": "proxied",
        "route": "GET /sessions",
        "required_scopes": ["sessions:read"],
        "missing_scopes": [],
        "subject": "alice",
        "reason": "query.user_id must be the caller's own",
        "error": "forbidden",
        "checks": [
            {"label": "gate", "description": "GET /sessions: needs sessions:read", "result": "passed"},
            {"label": "content checks", "description": "pin query.user_id = alice", "result": "refused"},
        ],
        "headers": {"Content-Type": "application/json", "Server": "authproxy"},
        "body": {"detail": "query.user_id must be the caller's own", "error": "forbidden"},
        "decision_port": {"status": 403, "error": "proxied_port_only"},
    }
    assert token not in json.dumps(document)


@pytest.mark.parametrize(
    ("body", "content_type", "status", "result"),
    [
        ('{"user_id": "bob"}', "application/json", 403, "refused"),
        ('{"user_id": "alice"}', "application/json", 200, "passed"),
        ('{"user_id": "alice"}', None, 400, "refused"),  # no media type is guessed: the reader says so
        ("user_id=bob", "application/x-www-form-urlencoded", 400, "refused"),  # a JSON pin needs JSON
    ],
)
def test_explain_reads_the_body_given_as_the_proxy_reads_it(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    body: str,
    content_type: str | None,
    status: int,
    result: str,
) -> None:
    config, token = _content_config(tmp_path, capsys)
    header = ["--header", f"Content-Type: {content_type}"] if content_type else []
    code, document = _explain_json(
        capsys, "-c", str(config), "--token", token, *header, "--body", body, "POST", "/sessions"
    )
    assert (code, document["status"], document["checks"][-1]["result"]) == (
        int(status != 200),
        status,
        result,
    )
    assert document["forwarded"] is (status == 200)


def test_explain_takes_the_body_from_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, token = _content_config(tmp_path, capsys)
    (tmp_path / "body.json").write_text('{"user_id": "bob"}')
    args = ["-c", str(config), "--token", token, "--header", "Content-Type: application/json"]
    code, document = _explain_json(capsys, *args, "--body", f"@{tmp_path / 'body.json'}", "POST", "/sessions")
    assert (code, document["status"], document["error"]) == (1, 403, "forbidden")
    with pytest.raises(SystemExit, match="cannot read"):
        main(["explain", *args, "--body", f"@{tmp_path / 'absent.json'}", "POST", "/sessions"])


def test_explain_without_the_body_leaves_its_checks_pending(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, token = _content_config(tmp_path, capsys)
    code, document = _explain_json(capsys, "-c", str(config), "--token", token, "POST", "/sessions")
    assert (code, document["decision"], document["status"], document["forwarded"]) == (0, "allow", 200, True)
    assert [(c["label"], c["result"]) for c in document["checks"]] == [
        ("gate", "passed"),
        ("content checks", "passed"),
        ("request body", "pending"),
    ]


def test_explain_names_what_the_checks_needing_the_upstream_compare(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, token = _content_config(tmp_path, capsys)
    assert (
        main(["explain", "-c", str(config), "--token", token, "POST", "/runs/r1/cancel?session_id=s1"]) == 0
    )
    out = capsys.readouterr().out
    assert "  owner lookup: pending (GET /runs/r1?session=s1 expects 200 with json:/user_id = alice)" in out
    assert main(["explain", "-c", str(config), "--token", token, "GET", "/sessions/s1"]) == 0
    assert "  response check: pending (a 2xx answer's json:/user_id must be alice)" in capsys.readouterr().out
    assert main(["explain", "-c", str(config), "--token", token, "POST", "/runs/r1/cancel"]) == 1
    out = capsys.readouterr().out
    assert "status: 400" in out
    assert "  owner lookup: refused (GET /runs/{run_id}?session={query.session_id})" in out


CASES = """\
- name: another user's sessions
  request: GET /sessions?user_id=bob
  claims: {sub: alice, scopes: [sessions:read]}
  expect: {status: 403, error: forbidden, body: {detail: "query.user_id must be the caller's own"}}
- name: a session for oneself
  request: POST /sessions
  claims: {sub: alice, scopes: [sessions:write]}
  body: {user_id: alice}
  expect: 200
- name: a body sent as written, its type given
  request: POST /sessions
  claims: {sub: alice, scopes: [sessions:write]}
  headers: {Content-Type: text/plain}
  body: '{"user_id": "bob"}'
  content_type: application/json
  expect: {status: 403, error: forbidden}
- name: the owner lookup finds the run under the caller
  request: POST /runs/r1/cancel?session_id=s1
  claims: {sub: alice, scopes: [sessions:write]}
  upstream: [{status: 200, json: {user_id: alice}}]
  expect: 200
- name: the owner lookup finds it under someone else
  request: POST /runs/r1/cancel?session_id=s1
  claims: {sub: alice, scopes: [sessions:write]}
  upstream: [{status: 200, json: {user_id: bob}}]
  expect: {status: 404, error: not_found}
- name: the answer is someone else's session
  request: GET /sessions/s1
  claims: {sub: alice, scopes: [sessions:read]}
  upstream: {status: 200, json: {user_id: bob, secret: x}}
  expect: {status: 404, body: {detail: not found, error: not_found}}
- name: the answer is the caller's own
  request: GET /sessions/s1
  claims: {sub: alice, scopes: [sessions:read]}
  upstream: [{status: 200, json: {user_id: alice, note: mine}}]
  expect: {status: 200, body: {note: mine}}
"""


def test_policy_cases_send_bodies_and_take_canned_upstream_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = _content_config(tmp_path, capsys)
    cases = tmp_path / "cases.yaml"
    cases.write_text(CASES)
    assert main(["test", "-c", str(config), str(cases)]) == 0
    assert "7 passed, 0 failed" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("case", "shown"),
    [
        ("  expect: {status: 403, body: {detail: other}}\n", "FAIL"),
        ("  expect: {status: 403, error: not_found}\n", "FAIL"),
        ("  upstream: [{status: 200, json: {}}]\n  expect: 403\n", "1 upstream answer(s) no check asked for"),
    ],
)
def test_a_policy_case_fails_on_its_body_its_error_or_an_answer_nobody_asked_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, shown: str
) -> None:
    config, _ = _content_config(tmp_path, capsys)
    cases = tmp_path / "cases.yaml"
    cases.write_text(
        "- request: GET /sessions?user_id=bob\n  claims: {sub: alice, scopes: [sessions:read]}\n" + case
    )
    assert main(["test", "-c", str(config), str(cases)]) == 1
    assert shown in capsys.readouterr().out


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("  expect: {status: 200, detail: x}\n", "unknown key 'detail' in `expect`"),
        ("  body: 5\n  expect: 200\n", "`body` is a mapping or a list"),
        ("  content_type: text/plain\n  expect: 200\n", "`content_type` goes with a `body`"),
        ("  upstream: [{status: 200, json: {}, body: x}]\n  expect: 200\n", "an upstream answer is"),
        ("  upstream: [{status: 99}]\n  expect: 200\n", "an upstream answer's status is an HTTP status"),
        ("  expect: {error: forbidden}\n", "case needs `expect: STATUS`"),
    ],
)
def test_a_bad_policy_case_is_reported_at_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, message: str
) -> None:
    config, _ = _content_config(tmp_path, capsys)
    cases = tmp_path / "cases.yaml"
    cases.write_text("- request: GET /sessions\n  expect: 401\n- request: GET /sessions\n" + case)
    assert main(["test", "-c", str(config), str(cases)]) == 1
    assert f"{cases}:3: {message}" in capsys.readouterr().out


def test_the_isolation_example_cases_pass(capsys: pytest.CaptureFixture[str]) -> None:
    config = REPO / "config" / "agentos-isolation.yaml"
    assert main(["test", "-c", str(config), str(REPO / "config" / "agentos-isolation.cases.yaml")]) == 0
    out = capsys.readouterr().out
    assert (
        "PASS listing another user's sessions is refused, never forwarded: GET /sessions?user_id=bob -> 403"
        in out
    )
    assert " 0 failed" in out
