"""logs.py: redaction is defence in depth — credential-named keys dropped, JWT-looking values masked."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from authproxy.config.model import LoggingConfig
from authproxy.logs import configure_logging, get_logger, redact, redact_text
from tests.rigs.keys import Mint


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:], root.level = handlers, level


def test_jwt_in_text_is_masked(mint: Mint) -> None:
    token = mint({"sub": "a"})
    assert redact_text(f"Bearer {token} trailing") == "Bearer [redacted] trailing"
    assert redact_text(f"/t/{token}") == "/t/[redacted]"


@pytest.mark.parametrize(
    "text", ["agents.example.com", "v1.2.3", "a.b.c", "/agents/web-search-agent", "10.0.0.1"]
)
def test_dotted_text_that_is_no_jwt_is_kept(text: str) -> None:
    assert redact_text(text) == text


def test_unsigned_jwt_is_masked_too() -> None:
    # alg "none" tokens have an empty third part and must not slip through.
    assert redact_text("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.") == "[redacted]"


@pytest.mark.parametrize("key", ["authorization", "Authorization", "cookie", "set-cookie", "token"])
def test_credential_named_key_is_dropped(key: str) -> None:
    event = redact(None, "info", {"event": "x", key: "secret-value", "path": "/a"})
    assert event == {"event": "x", "path": "/a"}


def test_nested_values_are_redacted(mint: Mint) -> None:
    token = mint({"sub": "a"})
    event = redact(
        None, "info", {"event": "x", "items": (token, "ok"), "headers": {"Cookie": "c", "A": token}}
    )
    assert event == {"event": "x", "items": ("[redacted]", "ok"), "headers": {"A": "[redacted]"}}


def test_configured_json_lines_never_carry_a_token(mint: Mint) -> None:
    out = io.StringIO()
    configure_logging(LoggingConfig(level="info", format="json"), stream=out)
    token = mint({"sub": "a"})
    log = get_logger("test")
    log.info("request", path=f"/x/{token}", authorization=f"Bearer {token}", status=200)
    log.debug("dropped below the level")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 1
    assert lines[0]["path"] == "/x/[redacted]"
    assert "authorization" not in lines[0]
    assert lines[0]["level"] == "info"
    assert lines[0]["timestamp"].endswith("Z")
    assert token not in out.getvalue()


def test_console_format_renders_one_line(mint: Mint) -> None:
    out = io.StringIO()
    configure_logging(LoggingConfig(level="debug", format="console"), stream=out)
    get_logger("test").debug("hello", token=mint({"sub": "a"}), n=1)
    text = out.getvalue()
    assert text.count("\n") == 1
    assert "hello" in text and "n=1" in text and "token" not in text


def test_stdlib_records_share_the_format_and_redaction(mint: Mint) -> None:
    out = io.StringIO()
    configure_logging(LoggingConfig(level="info", format="json"), stream=out)
    token = mint({"sub": "a"})
    logging.getLogger("aiohttp.server").warning("bad request carrying %s", token)
    logging.getLogger("aiohttp.server").info("below warning: library chatter is dropped")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 1
    assert lines[0]["event"] == "bad request carrying [redacted]"
    assert lines[0]["logger"] == "aiohttp.server"
