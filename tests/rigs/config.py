"""Config files for the proxy under test: one template per suite, filled from keyword options.

`config_text` is the integration suite's (HS256, a catch-all route, identity headers); `preset_config_text`
the same keys in front of the agentos preset's route table; `attack_config_text` is the security suite's
(RS256 from a PEM file, header and cookie sources, an AgentOS-like route table).
"""

from __future__ import annotations

from typing import Any

AUDIENCE = "authproxy-tests"
ATTACK_AUDIENCE = "authproxy-security"
ATTACK_ISSUER = "https://issuer.security.test"
IDENTITY_HEADERS = ("X-Auth-User-Id", "X-Auth-Session-Id", "X-Auth-Scopes")
# The integration template's routes (its `routes` option, for a test that adds its own around them).
BASE_ROUTES = '    "* /**": [proxy:use]\n    "GET /private/**": [private:read]\n'

PROXY_CONFIG = """\
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream:
  url: {upstream}
  connect_timeout: {connect_timeout}
  read_timeout: {read_timeout}
jwt:
  algorithms: [{algorithms}]
  keys:
{keys}
  audience: {audience}
  sources: [{sources}]
  cookie: access_token
policy:
  admin_scope: proxy:admin
{policy}  public:
    - /public/**
  routes:
{routes}forward:
  identity_headers:
    user_id: X-Auth-User-Id
    session_id: X-Auth-Session-Id
    scopes: X-Auth-Scopes
  strip_authorization: {strip_authorization}
logging:
  level: info
  format: json
"""


def config_text(upstream_url: str, secret: bytes, **options: Any) -> str:
    values = {
        "upstream": upstream_url,
        "connect_timeout": "2s",
        "read_timeout": "30s",
        "keys": f'    - secret: "{secret.decode()}"',
        "audience": AUDIENCE,
        "strip_authorization": "false",
        "algorithms": "HS256",
        "sources": "header",
        "routes": BASE_ROUTES,
        "policy": "",  # more policy settings, indented (`  preset: agentos\n`)
    }
    values.update(options)
    return PROXY_CONFIG.format(**values)


PRESET_CONFIG = """\
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream:
  url: {upstream}
  connect_timeout: 2s
  read_timeout: 30s
jwt:
  algorithms: [HS256]
  keys:
    - secret: "{secret}"
  audience: {audience}
policy:
  preset: agentos
"""


def preset_config_text(upstream_url: str, secret: bytes, *, routes: str = "") -> str:
    """The agentos preset behind the integration suite's HS256 key; `routes` (indented entries) are the
    user's own rules on top of the preset's."""
    text = PRESET_CONFIG.format(upstream=upstream_url, secret=secret.decode(), audience=AUDIENCE)
    return text + f"  routes:\n{routes}" if routes else text


ATTACK_CONFIG = """\
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream:
  url: {upstream}
  connect_timeout: 2s
  read_timeout: 30s
jwt:
  algorithms: [RS256]
  keys:
    - public_key_file: {public_key}
  audience: {audience}
  issuer: {issuer}
  sources: [{sources}]
  cookie: access_token
policy:
  admin_scope: proxy:admin
  unmapped: {unmapped}
  public:
    - GET /health
    - /public/**
  routes:
    "GET /agents": [agents:read]
    "GET /agents/{{agent_id}}": [agents:read]
    "POST /agents/{{agent_id}}/runs": [agents:run]
    "GET /sessions": [sessions:read]
    "DELETE /sessions/{{session_id}}": [sessions:delete]
    "GET /reports/**": [reports:read]
    "GET /ws/**": [ws:use]
forward:
  identity_headers:
    user_id: X-Auth-User-Id
    session_id: X-Auth-Session-Id
    scopes: X-Auth-Scopes
logging:
  level: warning
  format: json
"""


def attack_config_text(upstream_url: str, public_key: str, **options: Any) -> str:
    values = {
        "upstream": upstream_url,
        "public_key": public_key,
        "audience": ATTACK_AUDIENCE,
        "issuer": ATTACK_ISSUER,
        "sources": "header, cookie",
        "unmapped": "deny",
    }
    values.update(options)
    return ATTACK_CONFIG.format(**values)


def hs256_head(audience: str | None = None, *, upstream: str = "http://127.0.0.1:9") -> str:
    """The head of a unit test's config text: an upstream and HS256 keyed by a `{secret}` placeholder (the
    caller's `.format` fills it, and `{audience}` when that is passed as the audience), then the audience."""
    lines = [
        "upstream:",
        f"  url: {upstream}",
        "jwt:",
        "  algorithms: [HS256]",
        "  keys:",
        '    - secret: "{secret}"',
    ]
    if audience is not None:
        lines.append(f"  audience: {audience}")
    return "\n".join(lines) + "\n"
