"""Config files for every server in the run: nginx (static upstream and proxy hop), Envoy, authproxy."""

from __future__ import annotations

import json
from pathlib import Path

from bench.tokens import AUDIENCE

__all__ = ["BENCH_PATH", "authproxy_yaml", "envoy_yaml", "nginx_hop_conf", "nginx_static_conf"]

BENCH_PATH = "/agents/bench-agent"  # under the agentos preset: GET /agents/{agent_id} needs agents:read
_BODY = '{"id":"bench-agent","name":"bench"}'


def _nginx_common(prefix: Path, workers: int) -> str:
    # Every path nginx may write goes under the run's folder: no root-owned defaults, no system nginx.
    return f"""
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  keepalive_requests 1000000;
"""


def nginx_static_conf(prefix: Path, port: int) -> str:
    """The static upstream: a fixed 200 JSON answer, the proxies' ceiling."""
    return (
        _nginx_common(prefix, 1)
        + f"""
  server {{
    listen 127.0.0.1:{port};
    default_type application/json;
    location / {{ return 200 '{_BODY}'; }}
  }}
}}
"""
    )


def nginx_hop_conf(
    prefix: Path, port: int, upstream_port: int, workers: int, tls: tuple[Path, Path] | None = None
) -> str:
    """The reference hop: proxy_pass with pooled upstream connections, as authproxy pools them; with
    `tls` (certificate, key) it terminates TLS 1.2/1.3 on `port`."""
    listen = f"listen 127.0.0.1:{port};"
    if tls is not None:
        listen = (
            f"listen 127.0.0.1:{port} ssl;\n"
            f"    ssl_certificate {tls[0]};\n    ssl_certificate_key {tls[1]};\n"
            "    ssl_protocols TLSv1.2 TLSv1.3;\n    ssl_session_cache shared:bench:10m;"
        )
    return (
        _nginx_common(prefix, workers)
        + f"""
  upstream bench_upstream {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}
  server {{
    {listen}
    location / {{
      proxy_pass http://bench_upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"""
    )


_HCM_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
_ENVOY = """\
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin_port}}}}}
static_resources:
  listeners:
  - address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {hcm_type}
          stat_prefix: bench
          route_config:
            virtual_hosts:
            - {{name: all, domains: ["*"], routes: [{{match: {{prefix: /}}, route: {{cluster: upstream}}}}]}}
          http_filters:
          - name: envoy.filters.http.jwt_authn
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers:
                bench:
                  audiences: [{audience}]
                  local_jwks: {{inline_string: {jwks}}}
                  forward: true
                  payload_in_metadata: jwt_payload
                  jwt_cache_config: {{jwt_cache_size: 10000}}  # the counterpart of authproxy's cache
              rules:
              - {{match: {{prefix: /}}, requires: {{provider_name: bench}}}}
          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                action: ALLOW
                policies:
                  agents-read:  # the preset's rule: GET /agents/{{agent_id}} needs agents:read
                    permissions:
                    - and_rules:
                        rules:
                        - header: {{name: ":method", string_match: {{exact: GET}}}}
                        - url_path: {{path: {{safe_regex: {{regex: "^/agents/[^/]+/?$"}}}}}}
                    principals:
                    - sourced_metadata:
                        metadata_matcher:
                          filter: envoy.filters.http.jwt_authn
                          path: [{{key: jwt_payload}}, {{key: scopes}}]
                          value: {{list_match: {{one_of: {{string_match: {{exact: "agents:read"}}}}}}}}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: upstream
    type: STATIC
    connect_timeout: 5s
    load_assignment:
      cluster_name: upstream
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {upstream_port}}}}}}}
"""


def envoy_yaml(port: int, admin_port: int, upstream_port: int, jwks: str) -> str:
    """Envoy with jwt_authn (RS256, audience, token cache) and RBAC doing the preset's scope rule."""
    return _ENVOY.format(
        port=port,
        admin_port=admin_port,
        upstream_port=upstream_port,
        audience=AUDIENCE,
        hcm_type=_HCM_TYPE,
        jwks=json.dumps(jwks),  # a JSON string literal is a valid YAML double-quoted scalar
    )


def authproxy_yaml(
    *,
    port: int,
    admin_port: int,
    upstream_url: str,
    alg: str,
    key_line: str,
    public: bool = False,
    tls: tuple[Path, Path] | None = None,
    when: str | None = None,
) -> str:
    """An authproxy config: the agentos preset, or (public) a policy where the bench route needs no token;
    `when`: the preset's rule for the bench route again, with this condition."""
    policy = '  public: ["/agents/**"]\n' if public else "  preset: agentos\n"
    if when is not None:
        policy += f'  routes:\n    "GET /agents/{{agent_id}}": {{scopes: [agents:read], when: "{when}"}}\n'
    return f"""listen: 127.0.0.1:{port}
admin_listen: 127.0.0.1:{admin_port}
upstream:
  url: {upstream_url}
jwt:
  algorithms: [{alg}]
  keys:
    - {key_line}
  audience: {AUDIENCE}
policy:
{policy}logging:
  level: warning  # no per-request line: nginx and Envoy run with access logs off too
""" + (f"tls: {{cert_file: {tls[0]}, key_file: {tls[1]}}}\n" if tls is not None else "")
