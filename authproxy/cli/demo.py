"""`authproxy demo`: a small AgentOS-like upstream behind the proxy, with tokens and curl lines to paste.

The policy is demo.yaml beside this module (package data, so any install can run it). The upstream takes a
free port, and so do both proxy ports unless `--listen` / `--admin-listen` name them; the demo sets the
AUTHPROXY_DEMO_* variables before the policy is loaded, so the policy file stays the single source of
truth. Logs go to stderr; stdout carries only the instructions.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from importlib import resources
from pathlib import Path

import jwt
from aiohttp import web

from authproxy.config.model import Config, SecretKey
from authproxy.errors import ConfigError
from authproxy.logs import configure_logging
from authproxy.runtime import RuntimeHolder, load_runtime
from authproxy.serve.lifecycle import ProxyService, run_async
from authproxy.serve.settings import shutdown_grace

__all__ = ["AGENTS", "build_demo_upstream", "instructions", "main"]

AGENTS = (
    {"id": "web-search-agent", "name": "Web Search Agent"},
    {"id": "agno-agent", "name": "Agno Agent"},
    {"id": "research-agent", "name": "Research Agent"},
)
_TOKEN_TTL = 3600
# Where the curl lines point when the proxy listens on every interface: this machine, which is also where
# a container's published port arrives.
_REACHABLE = {"0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104 - compared against, not bound


# --- the demo upstream ---------------------------------------------------------------------------


async def _health(request: web.Request) -> web.Response:
    del request
    return web.json_response({"status": "ok"})


async def _agents(request: web.Request) -> web.Response:
    del request
    return web.json_response(list(AGENTS))


def _agent(request: web.Request) -> dict[str, str]:
    wanted = request.match_info["agent_id"]
    for agent in AGENTS:
        if agent["id"] == wanted:
            return agent
    raise web.HTTPNotFound(text=json.dumps({"detail": "Agent not found"}), content_type="application/json")


async def _get_agent(request: web.Request) -> web.Response:
    return web.json_response(_agent(request))


async def _run(request: web.Request) -> web.StreamResponse:
    agent = _agent(request)
    message = (await request.post()).get("message", "hello")
    user = request.headers.get("X-Auth-User-Id", "anonymous")
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    events = (
        ("RunStarted", {"agent_id": agent["id"]}),
        ("RunContent", {"content": f"{agent['name']} received {message!s} from {user}"}),
        ("RunCompleted", {"agent_id": agent["id"]}),
    )
    for name, data in events:
        await response.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
    await response.write_eof()
    return response


def build_demo_upstream() -> web.Application:
    app = web.Application()
    app.router.add_get("/health", _health)
    app.router.add_get("/agents", _agents)
    app.router.add_get("/agents/{agent_id}", _get_agent)
    app.router.add_post("/agents/{agent_id}/runs", _run)
    return app


# --- the instructions ------------------------------------------------------------------------------


def _tokens(config: Config) -> dict[str, str]:
    secret = next(k.secret for k in config.jwt.keys if isinstance(k, SecretKey))
    now = int(time.time())
    base: dict[str, object] = {"iat": now, "exp": now + _TOKEN_TTL}
    if config.jwt.audience:
        base["aud"] = config.jwt.audience[0]
    people = {
        "ADMIN_TOKEN": ("demo-admin", [config.policy.admin_scope or "agent_os:admin"]),
        "READER_TOKEN": ("demo-reader", ["agents:read"]),
        "RUNNER_TOKEN": ("demo-runner", ["agents:web-search-agent:run"]),
    }
    return {
        name: jwt.encode({**base, "sub": sub, "session_id": f"{sub}-session", "scopes": scopes}, secret)
        for name, (sub, scopes) in people.items()
    }


def _url(host: str, port: int) -> str:
    shown = _REACHABLE.get(host, host)
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


def instructions(host: str, port: int, tokens: dict[str, str]) -> list[str]:
    """What the demo prints: exports of `tokens`, then curl lines against the proxy bound at host:port."""

    def bearer(name: str) -> str:
        return f'-H "Authorization: Bearer ${name}"'

    url = _url(host, port)
    run = f"-X POST -d message=hi {url}/agents"
    everywhere = (
        [f"Listening on every interface, port {port}: from another host, put its address in the URLs.", ""]
        if host in _REACHABLE
        else []
    )
    return [
        "authproxy demo: a small AgentOS-like upstream behind the proxy.",
        "",
        *everywhere,
        "Tokens (HS256, one hour): paste these first.",
        *(f"export {name}={value}" for name, value in tokens.items()),
        "",
        "Requests, each with the status the policy gives it:",
        f"curl -i {url}/health  # -> 200",
        f"curl -i {url}/agents  # -> 401",
        f"curl -i {bearer('READER_TOKEN')} {url}/agents  # -> 200",
        f"curl -i {bearer('RUNNER_TOKEN')} {url}/agents  # -> 403",
        f"curl -i -N {bearer('RUNNER_TOKEN')} {run}/web-search-agent/runs  # -> 200",
        f"curl -i {bearer('RUNNER_TOKEN')} {run}/research-agent/runs  # -> 403",
        f"curl -i {bearer('ADMIN_TOKEN')} {url}/agents/research-agent  # -> 200",
        "",
        "Ctrl-C to stop.",
    ]


# --- running it ----------------------------------------------------------------------------------------


async def _demo(config_path: Path, listen: str, admin_listen: str) -> int:
    upstream = web.AppRunner(build_demo_upstream(), access_log=None)
    await upstream.setup()
    await web.TCPSite(upstream, "127.0.0.1", 0).start()
    host, port = upstream.addresses[0][:2]
    os.environ["AUTHPROXY_DEMO_UPSTREAM"] = f"http://{host}:{port}"
    os.environ["AUTHPROXY_DEMO_LISTEN"] = listen
    os.environ["AUTHPROXY_DEMO_ADMIN_LISTEN"] = admin_listen
    try:
        rt = load_runtime(config_path)
    except ConfigError as error:
        await upstream.cleanup()
        print("\n".join(str(p) for p in error.problems), file=sys.stderr)
        return 1
    configure_logging(rt.config.logging, stream=sys.stderr)
    service = ProxyService(RuntimeHolder(rt), grace=shutdown_grace())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await service.start()
        lines = instructions(*service.proxy_address, _tokens(rt.config))
        print("\n".join(lines), flush=True)
        await stop.wait()
        return 0
    finally:
        await service.stop()
        await upstream.cleanup()


def main(*, listen: str, admin_listen: str) -> int:
    """Run the demo until SIGINT/SIGTERM; `listen`, `admin_listen`: HOST:PORT (or :PORT, PORT)."""
    policy = resources.files("authproxy.cli").joinpath("demo.yaml")
    try:
        with resources.as_file(policy) as config_path:
            return run_async(_demo(config_path, listen, admin_listen))
    except OSError as error:  # a port given to --listen / --admin-listen is taken
        print(f"authproxy demo: {error}", file=sys.stderr)
        return 1
