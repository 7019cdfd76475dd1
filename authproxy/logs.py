"""structlog, configured once: JSON or console lines, a level filter, ISO UTC timestamps, and redaction.

Redaction is defence in depth: the access line is built from chosen fields and never carries a token, but
any event (a traceback included) loses keys named like a credential and any value that looks like a JWT.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import sys
from collections.abc import Mapping
from typing import Protocol, TextIO, cast

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

__all__ = ["LogSettings", "access_logger", "configure_logging", "get_logger", "redact", "redact_text"]

_CREDENTIAL_KEYS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "token"})
# Three base64url parts; the first must decode to a JSON object for it to count as a JWT (not a host name).
_JWT_LIKE = re.compile(r"([A-Za-z0-9_-]{2,})\.([A-Za-z0-9_-]{2,})\.([A-Za-z0-9_-]*)")
_REDACTED = "[redacted]"
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def _is_jwt_header(part: str) -> bool:
    try:
        head = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        return False
    return head.lstrip()[:1] == b"{"


def _replace_jwt(match: re.Match[str]) -> str:
    return _REDACTED if _is_jwt_header(match.group(1)) else match.group(0)


def redact_text(text: str) -> str:
    """`text` with every JWT-looking run replaced."""
    if "." not in text:  # the common case costs one scan
        return text
    return _JWT_LIKE.sub(_replace_jwt, text)


def _redact_value(value: object) -> object:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_redact_value(v) for v in value)
    if isinstance(value, Mapping):
        return {k: _redact_value(v) for k, v in value.items() if str(k).lower() not in _CREDENTIAL_KEYS}
    return value


def redact(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
    """structlog processor: drop credential-named keys, mask JWT-looking values."""
    for key in [k for k in event if k.lower() in _CREDENTIAL_KEYS]:
        del event[key]
    for key, value in event.items():
        event[key] = _redact_value(value)
    return event


class LogSettings(Protocol):
    """What logging needs of the config (`config.model.LoggingConfig` is one): logs sit below config."""

    @property
    def level(self) -> str: ...

    @property
    def format(self) -> str: ...


def _renderer(fmt: str) -> Processor:
    if fmt == "console":
        return structlog.dev.ConsoleRenderer(colors=False)
    return structlog.processors.JSONRenderer()


def _static_fields(fields: Mapping[str, object]) -> Processor:
    def add(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
        for key, value in fields.items():
            event.setdefault(key, value)
        return event

    return add


def configure_logging(
    config: LogSettings, *, stream: TextIO | None = None, fields: Mapping[str, object] | None = None
) -> None:
    """Configure structlog (and route the stdlib's records, aiohttp's included, through the same output).

    `fields` go on every line (a worker process names itself with `worker` and `pid`).
    """
    out = stream if stream is not None else sys.stdout
    level = _LEVELS[config.level]
    shared: list[Processor] = [
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if fields:
        shared.append(_static_fields(dict(fields)))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            *shared,
            structlog.processors.format_exc_info,
            redact,
            _renderer(config.format),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # One write per line (message and newline together), so the lines of several worker processes
        # sharing stdout never interleave, even unbuffered (PYTHONUNBUFFERED).
        logger_factory=structlog.WriteLoggerFactory(out),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redact,
                _renderer(config.format),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Library chatter below warning is noise next to our own access line.
    root.setLevel(max(level, logging.WARNING))


def get_logger(name: str) -> FilteringBoundLogger:
    return cast(FilteringBoundLogger, structlog.get_logger(name))


def access_logger() -> FilteringBoundLogger:
    """The logger for the one line per request."""
    return get_logger("authproxy.access")
