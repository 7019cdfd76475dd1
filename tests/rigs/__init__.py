"""The test rig, one package for every suite: real parts on 127.0.0.1 with OS-chosen ports.

- `upstream`: the recording upstream (steerable endpoints) and `serving` for any aiohttp server;
  `tapped`: the upstream that counts every connection and byte (security suite);
  `threaded_upstream`: an upstream on a thread of its own, for tests whose own thread blocks.
- `proxy`: the proxy in process (`proxies()`, `RunningProxy`); `serve`: `authproxy serve` as a subprocess.
- `config`: the config templates; `keys`: real keys, JWKs and tokens (forged ones included);
  `jwks`: a steerable identity provider (JWKS, discovery, TLS).
- `raw`: a raw-socket HTTP/1.1 client; `client`: plain requests through the proxy;
  `polling`: bounded waits; `metrics`: /metrics scraped and parsed.
- `container`: the docker CLI and a proxy container; `agentos` and `agentos_app`: a real AgentOS.
"""
