"""Envoy's gRPC ext_authz service (`authz.grpc_listen`) asked directly, with what no Envoy would send. A real
Envoy, configured by the shipped envoy-grpc.yaml, asks it in test_authz_engines.py beside the HTTP front
ends; the answer is the HTTP decision port's, carried as gRPC fields."""

from __future__ import annotations

import json
import warnings

import pytest

from tests.rigs.authz import AuthzFactory, RunningAuthz
from tests.rigs.upstream import RecordingUpstream


@pytest.fixture
async def authz(start_authz: AuthzFactory, upstream: RecordingUpstream) -> RunningAuthz:
    return await start_authz(upstream.url, authz="authz:\n  grpc_listen: 127.0.0.1:0\n")


async def test_check_request_without_http_attributes_is_refused(authz: RunningAuthz) -> None:
    # A real gRPC client (grpclib, Envoy's generated messages) sending what no Envoy would: an empty check.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # envoy-data-plane's own, at import
        from envoy_data_plane.envoy.service.auth.v3 import AuthorizationAsyncStub, CheckRequest
    from grpclib.client import Channel

    assert authz.service.decisions is not None and authz.service.decisions.grpc_address is not None
    host, port = authz.service.decisions.grpc_address
    channel = Channel(host, port)
    try:
        response = await AuthorizationAsyncStub(channel).check(CheckRequest())
    finally:
        channel.close()
    assert response.status is not None and response.status.code == 3  # INVALID_ARGUMENT
    denied = response.denied_response
    assert denied is not None and denied.status is not None and int(denied.status.code) == 400
    assert json.loads(denied.body) == {
        "detail": "the check request carries no HTTP request",
        "error": "bad_request",
    }
