"""A key the IdP rotates in right after the proxy started is accepted at once, through the whole proxy and
against a real JWKS endpoint; random kids still cost the IdP at most one fetch per window."""

from __future__ import annotations

import asyncio
import secrets

import aiohttp
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.rigs.config import AUDIENCE
from tests.rigs.jwks import JWKS_PATH, running_jwks_server
from tests.rigs.keys import Mint, new_rsa_key, public_jwk
from tests.rigs.polling import poll, status_of
from tests.rigs.proxy import ProxyFactory
from tests.rigs.upstream import RecordingUpstream

CLAIMS = {"sub": "u", "aud": AUDIENCE, "scopes": ["proxy:use"]}


async def test_key_rotated_in_right_after_startup_is_accepted(
    start_proxy: ProxyFactory,
    upstream: RecordingUpstream,
    client: aiohttp.ClientSession,
    rsa_private_key: rsa.RSAPrivateKey,
    mint: Mint,
) -> None:
    rotated_in = new_rsa_key()
    async with running_jwks_server() as idp:
        idp.serve(public_jwk(rsa_private_key, "k1", alg="RS256"))
        proxy = await start_proxy(upstream.url, algorithms="RS256", keys=f"    - jwks_url: {idp.jwks_url}")

        async def ready() -> bool:
            return await status_of(client, proxy.admin_url + "/readyz") == 200

        await poll(ready, every=0.05)
        assert idp.hits[JWKS_PATH] == 1
        idp.serve(public_jwk(rsa_private_key, "k1", alg="RS256"), public_jwk(rotated_in, "k2", alg="RS256"))

        new_token = mint(CLAIMS, alg="RS256", key=rotated_in, headers={"kid": "k2"})
        assert await status_of(client, proxy.url + "/items", {"Authorization": f"Bearer {new_token}"}) == 200
        assert [r.raw_path for r in upstream.requests] == ["/items"]
        assert idp.hits[JWKS_PATH] == 2

        # Random kids right after: refused, nothing forwarded, and not one more fetch within the window.
        forged = [
            mint(CLAIMS, alg="RS256", key=rotated_in, headers={"kid": secrets.token_hex(8)})
            for _ in range(50)
        ]
        statuses = await asyncio.gather(
            *(status_of(client, proxy.url + "/items", {"Authorization": f"Bearer {t}"}) for t in forged)
        )
        assert set(statuses) == {401}
        assert len(upstream.requests) == 1
        assert idp.hits[JWKS_PATH] == 2
