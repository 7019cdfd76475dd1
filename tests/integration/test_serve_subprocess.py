"""`authproxy serve` as a process: config problems on stderr, overrides, JSON logs without tokens."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import aiohttp

from tests.rigs.config import config_text
from tests.rigs.keys import TokenFactory
from tests.rigs.serve import AUTHPROXY, ServeFactory
from tests.rigs.upstream import RecordingUpstream


async def run_to_exit(*args: str) -> tuple[int, bytes, bytes]:
    process = await asyncio.create_subprocess_exec(
        AUTHPROXY, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out, err


async def test_invalid_config_prints_located_problems_and_exits_one(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("listen: nowhere\nupstream:\n  url: ftp://x\njwt:\n  algorithms: [none]\n  keys: []\n")
    code, out, err = await run_to_exit("serve", "-c", str(config))
    assert code == 1
    assert out == b""
    lines = err.decode().splitlines()
    assert lines
    assert all(line.startswith(f"{config}:") for line in lines), lines
    assert any(line.startswith(f"{config}:1:") for line in lines), lines


async def test_missing_config_file_exits_one(tmp_path: Path) -> None:
    code, out, err = await run_to_exit("serve", "-c", str(tmp_path / "absent.yaml"))
    assert code == 1
    assert out == b""
    assert err


async def test_listen_and_upstream_overrides_apply(
    serve: ServeFactory,
    upstream: RecordingUpstream,
    tmp_path: Path,
    hs_secret: bytes,
    client: aiohttp.ClientSession,
    auth: dict[str, str],
) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text(
        config_text("http://127.0.0.1:1", hs_secret).replace(
            "listen: 127.0.0.1:0\n", "listen: 127.0.0.1:1\n", 1
        )
    )
    served = await serve(config, "--listen", "127.0.0.1:0", "--upstream", upstream.url)
    assert not served.url.endswith(":1")
    async with client.get(served.url + "/over", headers=auth) as resp:
        assert resp.status == 200
    assert upstream.last().raw_path == "/over"


async def test_logs_are_json_access_lines_without_tokens(
    serve: ServeFactory,
    upstream: RecordingUpstream,
    tmp_path: Path,
    hs_secret: bytes,
    client: aiohttp.ClientSession,
    token: TokenFactory,
) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text(config_text(upstream.url, hs_secret))
    served = await serve(config)
    bearer = token("proxy:use", sub="alice")
    async with client.get(
        served.url + f"/q?access_token={bearer}", headers={"Authorization": f"Bearer {bearer}"}
    ) as r:
        assert r.status == 200
    async with client.get(served.url + f"/t/{bearer}", headers={"Cookie": f"access_token={bearer}"}) as r:
        assert r.status == 401
    served.process.terminate()
    assert await served.finish() == 0
    requests = [line for line in served.log.lines if line.get("event") == "request"]
    assert [r["status"] for r in requests] == [200, 401]
    assert requests[0]["subject"] == "alice"
    assert requests[0]["level"] == "info"
    assert requests[0]["timestamp"].endswith("Z")
    assert requests[1]["path"] == "/t/[redacted]"  # a token in the path is masked, defence in depth
    assert bearer not in json.dumps(served.log.lines)


async def test_port_in_use_exits_one(tmp_path: Path, hs_secret: bytes, upstream: RecordingUpstream) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "serve.yaml"
        config.write_text(
            config_text(upstream.url, hs_secret).replace(
                "listen: 127.0.0.1:0", f"listen: 127.0.0.1:{port}", 1
            )
        )
        code, out, _ = await run_to_exit("serve", "-c", str(config))
    assert code == 1
    events = [json.loads(line)["event"] for line in out.decode().splitlines()]
    assert "cannot listen" in events
