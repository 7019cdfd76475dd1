"""Hot reload: file changes (in place and as a Kubernetes `..data` symlink swap) and SIGHUP swap the policy
atomically, under load, without failing a request; a bad file, or a new key source that never answers,
leaves the running policy in place."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import structlog
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.rigs.config import AUDIENCE, config_text
from tests.rigs.jwks import JWKS_PATH, running_jwks_server
from tests.rigs.keys import Mint, TokenFactory, public_jwk
from tests.rigs.metrics import scrape, value
from tests.rigs.polling import poll, status_of
from tests.rigs.proxy import Launch, proxies
from tests.rigs.serve import ServeFactory
from tests.rigs.upstream import RecordingUpstream


@pytest.fixture
async def launch() -> AsyncIterator[Launch]:
    async with proxies() as start:
        yield start


@pytest.fixture
def config(tmp_path: Path, upstream: RecordingUpstream, hs_secret: bytes) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(config_text(upstream.url, hs_secret))
    return path


def bearer(token: TokenFactory, *scopes: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(*scopes)}"}


def read(path: Path) -> str:
    return path.read_text()


def write(path: Path, text: str) -> None:
    path.write_text(text)


def edit(path: Path, old: str, new: str, count: int = -1) -> None:
    path.write_text(path.read_text().replace(old, new, count))


def require_write(path: Path) -> None:
    edit(path, "[private:read]", "[private:write]")


async def test_reload_under_load_applies_the_new_policy_and_fails_no_request(
    launch: Launch, config: Path, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    proxy = await launch(config, interval=1.0)  # the default of `authproxy serve`
    reader, writer = bearer(token, "proxy:use", "private:read"), bearer(token, "proxy:use", "private:write")
    seen: list[int] = []
    stop = asyncio.Event()

    async def keep_asking() -> None:
        while not stop.is_set():
            seen.append(await status_of(client, proxy.url + "/private/doc", reader))

    clients = [asyncio.create_task(keep_asking()) for _ in range(4)]

    async def switched() -> bool:
        return await status_of(client, proxy.url + "/private/doc", writer) == 200

    await poll(lambda: _true(len(seen) > 50))
    require_write(config)
    await poll(switched, within=2.0)
    after = len(seen)
    await poll(lambda: _true(len(seen) > after + 50))
    stop.set()
    await asyncio.gather(*clients)  # a failed request would raise here

    assert set(seen) == {200, 403}, "every request got the old or the new policy's answer"
    assert seen[after + 4 :] and set(seen[after + 4 :]) == {403}, "once switched, it stays switched"
    samples = await scrape(client, proxy.admin_url)
    assert value(samples, "authproxy_config_reloads_total") == 1
    assert value(samples, "authproxy_config_reload_failures_total") == 0


async def _true(condition: bool) -> bool:
    return condition


BAD_FILES = {
    "yaml syntax": ("policy:\n  routes:\n    - [unclosed\n", r"invalid YAML"),
    "unknown key": ("policy:\n  routez: {}\n", r"unknown key 'routez' in policy"),
    "missing key file": ("jwt:\n  keys:\n    - secret_file: absent-secret\n", r"cannot read .*absent-secret"),
}


@pytest.mark.parametrize("case", list(BAD_FILES), ids=list(BAD_FILES))
async def test_bad_file_is_refused_and_the_running_policy_stays(
    case: str, launch: Launch, config: Path, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    proxy = await launch(config, interval=0.05)
    reader = bearer(token, "proxy:use", "private:read")
    good = read(config)
    bad_part, expected = BAD_FILES[case]

    async def refused() -> bool:
        return value(await scrape(client, proxy.admin_url), "authproxy_config_reload_failures_total") == 1

    with structlog.testing.capture_logs() as logs:
        _replace_section(config, bad_part)
        await poll(refused)
    assert await status_of(client, proxy.url + "/private/doc", reader) == 200
    failures = [e for e in logs if e["event"] == "config reload failed; the running policy stays"]
    assert len(failures) == 1
    problems = failures[0]["problems"]
    assert problems and all(re.match(rf"{re.escape(str(config))}:\d+: ", p) for p in problems), problems
    assert any(re.search(expected, p) for p in problems), problems
    samples = await scrape(client, proxy.admin_url)
    assert value(samples, "authproxy_config_last_reload_successful") == 0

    write(config, good.replace("[private:read]", "[private:write]"))

    async def reloaded() -> bool:
        return value(await scrape(client, proxy.admin_url), "authproxy_config_reloads_total") == 1

    await poll(reloaded)
    assert await status_of(client, proxy.url + "/private/doc", reader) == 403
    assert value(await scrape(client, proxy.admin_url), "authproxy_config_last_reload_successful") == 1


def _replace_section(config: Path, section: str) -> None:
    """Replace one top-level section of the file with `section`."""
    name = section.split(":", 1)[0]
    config.write_text(re.sub(rf"(?m)^{name}:\n(?:  .*\n)*", "", config.read_text()) + section)


def _publish(volume: Path, version: str, files: dict[str, bytes]) -> None:
    """What the kubelet does for a ConfigMap/Secret volume: a new timestamped directory, then one rename
    of the `..data` symlink onto it; the old directory is removed afterwards."""
    target = volume / f"..{version}"
    target.mkdir()
    for name, data in files.items():
        (target / name).write_bytes(data)
    previous = os.readlink(volume / "..data") if (volume / "..data").is_symlink() else None
    (volume / "..data_tmp").symlink_to(target.name)
    os.replace(volume / "..data_tmp", volume / "..data")
    for name in files:
        if not (volume / name).is_symlink():
            (volume / name).symlink_to(f"..data/{name}")
    if previous is not None:
        shutil.rmtree(volume / previous)


async def test_kubernetes_symlink_swap_of_config_and_secret_is_picked_up(
    launch: Launch,
    tmp_path: Path,
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
    mint: Mint,
) -> None:
    old_secret, new_secret = b"o" * 40, b"n" * 40
    volume = tmp_path / "etc-authproxy"
    volume.mkdir()
    text = config_text(upstream.url, b"", keys="    - secret_file: jwt-secret")
    _publish(
        volume, "2026_01_01_00_00_00.1", {"config.yaml": text.encode(), "jwt-secret": old_secret + b"\n"}
    )
    proxy = await launch(volume / "config.yaml", interval=0.05)

    def headers(secret: bytes, *scopes: str) -> dict[str, str]:
        claims = {"sub": "u", "aud": AUDIENCE, "scopes": list(scopes)}
        return {"Authorization": f"Bearer {mint(claims, key=secret)}"}

    assert (
        await status_of(client, proxy.url + "/private/doc", headers(old_secret, "proxy:use", "private:read"))
        == 200
    )
    assert await status_of(client, proxy.url + "/items", headers(new_secret, "proxy:use")) == 401

    rotated = text.replace("[private:read]", "[private:write]").encode()
    _publish(volume, "2026_01_02_00_00_00.2", {"config.yaml": rotated, "jwt-secret": new_secret + b"\n"})

    async def swapped() -> bool:
        return await status_of(client, proxy.url + "/items", headers(new_secret, "proxy:use")) == 200

    await poll(swapped)
    assert await status_of(client, proxy.url + "/items", headers(old_secret, "proxy:use")) == 401
    writer = headers(new_secret, "proxy:use", "private:write")
    assert await status_of(client, proxy.url + "/private/doc", writer) == 200


async def test_in_flight_request_finishes_under_the_policy_it_started_with(
    launch: Launch,
    config: Path,
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
    token: TokenFactory,
) -> None:
    proxy = await launch(config)
    caller = bearer(token, "proxy:use")
    held = asyncio.create_task(status_of(client, proxy.url + "/slow", caller))
    await upstream.slow_waiting.wait()
    edit(config, '"* /**": [proxy:use]', '"* /**": [proxy:other]')
    assert await proxy.service.reloader.reload("test")
    assert await status_of(client, proxy.url + "/items", caller) == 403  # new requests: the new policy
    upstream.slow_release.set()
    assert await held == 200  # the request already running: the policy it started under


async def test_listen_and_upstream_changes_need_a_restart_and_keep_the_running_values(
    launch: Launch,
    config: Path,
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
    token: TokenFactory,
) -> None:
    proxy = await launch(config)
    edit(config, upstream.url, "http://127.0.0.1:1")
    edit(config, "listen: 127.0.0.1:0\n", "listen: 127.0.0.1:9\n", 1)  # the first: not admin_listen
    require_write(config)
    with structlog.testing.capture_logs() as logs:
        assert await proxy.service.reloader.reload("test")
    changes = {
        e["key"]: e for e in logs if e["event"] == "config change needs a restart; keeping the running value"
    }
    assert set(changes) == {"listen", "upstream.url"}
    assert changes["upstream.url"]["running"] == upstream.url
    assert changes["upstream.url"]["configured"] == "http://127.0.0.1:1"
    writer = bearer(token, "proxy:use", "private:write")
    assert await status_of(client, proxy.url + "/private/doc", writer) == 200  # new policy, old upstream
    assert upstream.last().raw_path == "/private/doc"


async def test_new_key_source_that_never_answers_is_refused_and_the_old_keys_stay(
    launch: Launch,
    tmp_path: Path,
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
    rsa_private_key: rsa.RSAPrivateKey,
    mint: Mint,
) -> None:
    claims = {"sub": "u", "aud": AUDIENCE, "scopes": ["proxy:use"]}
    caller = {"Authorization": f"Bearer {mint(claims, alg='RS256', headers={'kid': 'k1'})}"}
    async with running_jwks_server() as idp, running_jwks_server() as other:
        idp.serve(public_jwk(rsa_private_key, "k1", alg="RS256"))
        other.mode, other.status = "error", 503
        config = tmp_path / "jwks.yaml"
        write(
            config, config_text(upstream.url, b"", algorithms="RS256", keys=f"    - jwks_url: {idp.jwks_url}")
        )
        proxy = await launch(config, key_timeout=0.3)
        assert await proxy.service.holder.current.keys.wait_ready(10)
        first = proxy.service.holder.current.remotes[0][1]
        fetches = idp.hits[JWKS_PATH]

        require_write(config)
        assert await proxy.service.reloader.reload("test")
        assert proxy.service.holder.current.remotes[0][1] is first  # unchanged source: kept running
        assert idp.hits[JWKS_PATH] == fetches  # no refetch, no readiness gap

        edit(config, idp.jwks_url, other.jwks_url)
        with structlog.testing.capture_logs() as logs:
            assert not await proxy.service.reloader.reload("test")
        [failure] = [e for e in logs if e["event"] == "config reload failed; the running policy stays"]
        assert any(other.jwks_url in p for p in failure["problems"])
        assert await status_of(client, proxy.url + "/items", caller) == 200  # the old keys still verify

        other.serve(public_jwk(rsa_private_key, "k1", alg="RS256"))
        assert await proxy.service.reloader.reload("test")  # what SIGHUP does once the IdP is back
        assert await status_of(client, proxy.url + "/items", caller) == 200
        samples = await scrape(client, proxy.admin_url)
        assert value(samples, "authproxy_key_refreshes_total", source=idp.jwks_url) >= 1  # kept once retired
        assert value(samples, "authproxy_key_source_ready", source=other.jwks_url) == 1
        assert not [
            s
            for s in samples
            if s.name == "authproxy_key_source_ready" and s.labels["source"] == idp.jwks_url
        ]


async def test_sighup_reloads_a_served_process(
    serve: ServeFactory, config: Path, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    served = await serve(config, "--reload-interval", "0")  # no file watching: SIGHUP only
    reader = bearer(token, "proxy:use", "private:read")
    require_write(config)
    assert await status_of(client, served.url + "/private/doc", reader) == 200
    served.process.send_signal(signal.SIGHUP)
    reloaded = await served.log.wait_for("config reloaded")
    assert reloaded["trigger"] == "SIGHUP"
    assert await status_of(client, served.url + "/private/doc", reader) == 403
    served.process.terminate()
    assert await served.finish() == 0


async def test_served_process_watches_its_file_by_default(
    serve: ServeFactory, config: Path, client: aiohttp.ClientSession, token: TokenFactory
) -> None:
    served = await serve(config)
    reader = bearer(token, "proxy:use", "private:read")
    assert await status_of(client, served.url + "/private/doc", reader) == 200
    require_write(config)
    reloaded = await served.log.wait_for("config reloaded")
    assert reloaded["trigger"] == "file changed"
    assert await status_of(client, served.url + "/private/doc", reader) == 403
    served.process.terminate()
    assert await served.finish() == 0
