"""`authproxy explain` shows a route's content checks with the caller's ids bound, and none for admins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from authproxy.cli.main import main
from tests.rigs.config import hs256_head

CONFIG = (
    hs256_head("explain-test")
    + """\
policy:
  admin_scope: ops:admin
  routes:
    "POST /notes/{{id}}":
      scopes: [notes:write]
      pin: {{json:/owner: user_id}}
      owner: {{get: "/notes/{{id}}?owner={{caller.user_id}}"}}
"""
)


@pytest.mark.parametrize(
    ("scopes", "expected"),
    [
        (
            ["notes:write"],
            "content checks: pin json:/owner = alice; owner lookup GET /notes/{id}?owner={caller.user_id} "
            "before forwarding; body read up to 1048576 bytes",
        ),
        (["ops:admin"], None),
    ],
)
def test_explain_prints_the_content_plan(
    tmp_path: Path,
    hs_secret: bytes,
    mint: Any,
    capsys: pytest.CaptureFixture[str],
    scopes: list[str],
    expected: str | None,
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG.format(secret=hs_secret.decode()))
    token = mint({"sub": "alice", "aud": "explain-test", "scopes": scopes})
    assert main(["explain", "-c", str(config), "--token", token, "POST", "/notes/n1"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("content checks:")]
    assert lines == ([expected] if expected else [])
    assert ("after its content checks" in out) == (expected is not None)
