"""`authproxy serve` as a process: `--upstream` standing in for a missing `upstream`, the decision port
running alone when there is no upstream, and the short `--listen` forms."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from tests.rigs.config import config_text
from tests.rigs.serve import AUTHPROXY, ServeFactory
from tests.rigs.upstream import RecordingUpstream

_UPSTREAM_BLOCK = "upstream:\n  url: http://127.0.0.1:1\n  connect_timeout: 2s\n  read_timeout: 30s\n"


def _without_upstream(hs_secret: bytes, *, extra: str = "") -> str:
    text = config_text("http://127.0.0.1:1", hs_secret)
    assert _UPSTREAM_BLOCK in text
    return text.replace(_UPSTREAM_BLOCK, "").replace("listen: 127.0.0.1:0\n", extra, 1)


async def test_upstream_flag_stands_in_for_a_missing_upstream(
    serve: ServeFactory,
    upstream: RecordingUpstream,
    tmp_path: Path,
    hs_secret: bytes,
    client: aiohttp.ClientSession,
    auth: dict[str, str],
) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text(_without_upstream(hs_secret))
    served = await serve(config, "--listen", "0", "--upstream", upstream.url)
    assert served.url.startswith("http://127.0.0.1:")  # a bare PORT listens on loopback only
    async with client.get(served.url + "/flag", headers=auth) as resp:
        assert resp.status == 200
    assert upstream.last().raw_path == "/flag"


async def test_without_upstream_only_the_decision_port_runs(
    serve: ServeFactory,
    tmp_path: Path,
    hs_secret: bytes,
    client: aiohttp.ClientSession,
    auth: dict[str, str],
) -> None:
    config = tmp_path / "authz.yaml"
    config.write_text(_without_upstream(hs_secret, extra="authz_listen: 127.0.0.1:0\n"))
    served = await serve(config)
    listening = served.log.find("listening")
    assert listening is not None and listening["proxy"] is None and listening["upstream"] is None
    check = f"http://{listening['authz']}/forward-auth"
    headers = {"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/private/x"}
    async with client.get(check, headers={**headers, **auth}) as resp:
        assert resp.status == 403  # proxy:use does not hold private:read
    async with client.get(check, headers={**headers, "X-Forwarded-Uri": "/agents"}) as resp:
        assert resp.status == 401
        assert (await resp.json())["error"] == "missing_token"
    async with client.get(check, headers={**headers, "X-Forwarded-Uri": "/agents", **auth}) as resp:
        assert resp.status == 200


async def test_bad_listen_is_a_usage_error_naming_the_option(tmp_path: Path, hs_secret: bytes) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text(config_text("http://127.0.0.1:1", hs_secret))
    process = await asyncio.create_subprocess_exec(
        AUTHPROXY,
        "serve",
        "-c",
        str(config),
        "--listen",
        "localhost:http",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 2
    assert out == b""
    last = err.decode().splitlines()[-1]
    assert last == (
        "authproxy serve: error: argument --listen: the port must be a number from 0 to 65535; got 'http'"
    )
