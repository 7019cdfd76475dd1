"""The servers of one run, started on demand (with what they depend on) and owned by one Services."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.configs import authproxy_yaml, envoy_yaml, nginx_hop_conf, nginx_static_conf
from bench.procs import Service, ServiceError, Services, free_port
from bench.tls_material import bench_tls
from bench.tokens import AUDIENCE, KeySet

__all__ = ["BENCH_SITE", "REPO", "Stack", "authproxy_workers_supported", "uvicorn_parser"]

REPO = Path(__file__).resolve().parent.parent
_BIN = Path(sys.executable).parent
_NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
# httptools for the FastAPI upstream only (scripts/install-bench-tools.sh): uvicorn[standard] as users run it.
BENCH_SITE = REPO / ".tools" / "bench-site"
_UNUSED = "http://127.0.0.1:9"  # the in-process timing never forwards


def uvicorn_parser() -> str:
    return "httptools" if (BENCH_SITE / "httptools").is_dir() else "h11"


def authproxy_workers_supported() -> bool:
    """Whether `authproxy serve` takes --workers (issue 6); without it each proxy is one process."""
    done = subprocess.run(
        [str(_BIN / "authproxy"), "serve", "--help"], capture_output=True, text=True, check=False
    )
    return "--workers" in done.stdout


@dataclass(frozen=True, slots=True)
class _ProxySpec:
    alg: str
    upstream: str  # a service name
    public: bool = False
    tls: bool = False  # terminate TLS on the proxied port
    when: str | None = (
        None  # a `when:` on the bench route (the preset's rule, same scopes): a condition's cost
    )
    workers: int | None = None  # fixed worker count (the scaling variant); None: the run's --workers


_PROXIES: dict[str, _ProxySpec] = {
    "ap-public": _ProxySpec("RS256", "static", public=True),
    "ap-hs256": _ProxySpec("HS256", "static"),
    "ap-rs256": _ProxySpec("RS256", "static"),
    "ap-rs256-w2": _ProxySpec("RS256", "static", workers=2),
    "ap-rs256-tls": _ProxySpec("RS256", "static", tls=True),
    "ap-rs256-miss": _ProxySpec("RS256", "static"),
    "ap-es256": _ProxySpec("ES256", "static"),
    "ap-hs256-when": _ProxySpec("HS256", "static", when="claims.sub == 'bench-user'"),
    "ap-fastapi": _ProxySpec("RS256", "fastapi"),
    "ap-sse": _ProxySpec("RS256", "sse"),
}


class Stack:
    def __init__(self, services: Services, work: Path, keys: KeySet, workers: int) -> None:
        self._services = services
        self._work = work
        self._keys = keys
        self.workers = workers
        self._running: dict[str, Service] = {}
        self.proxy_workers = workers if authproxy_workers_supported() else 1

    def get(self, name: str) -> Service:
        """The named server, started first time it is asked for."""
        if name not in self._running:
            self._running[name] = self._start(name)
        return self._running[name]

    def url(self, name: str, path: str = "/") -> str:
        spec = _PROXIES.get(name)
        scheme = "https" if name == "hop-tls" or (spec is not None and spec.tls) else "http"
        return f"{scheme}://127.0.0.1:{self.get(name).port}{path}"

    def _start(self, name: str) -> Service:
        if name in _PROXIES:
            return self._authproxy(name, _PROXIES[name])
        starters = {
            "static": self._nginx_static,
            "hop": self._nginx_hop,
            "hop-tls": lambda: self._nginx_hop(tls=True),
            "envoy": self._envoy,
            "fastapi": lambda: self._fastapi("fastapi", agno=False),
            "fastapi-agno": lambda: self._fastapi("fastapi-agno", agno=True),
            "sse": self._sse,
        }
        return starters[name]()

    def _folder(self, name: str) -> Path:
        folder = self._work / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _tls(self) -> tuple[Path, Path]:
        made = bench_tls(self._folder("tls"))
        return made.cert_file, made.key_file

    def _nginx(self, name: str, conf: str, port: int, scheme: str = "http") -> Service:
        folder = self._folder(name)
        (folder / "nginx.conf").write_text(conf)
        argv = [
            _NGINX,
            "-p",
            str(folder),
            "-c",
            str(folder / "nginx.conf"),
            "-e",
            str(folder / "error.log"),
            "-g",
            "daemon off;",
        ]
        return self._services.start(name, argv, port=port, ready_url=f"{scheme}://127.0.0.1:{port}/")

    def _nginx_static(self) -> Service:
        port = free_port()
        return self._nginx("static", nginx_static_conf(self._folder("static"), port), port)

    def _nginx_hop(self, *, tls: bool = False) -> Service:
        name, upstream, port = "hop-tls" if tls else "hop", self.get("static").port, free_port()
        conf = nginx_hop_conf(
            self._folder(name), port, upstream, self.proxy_workers, self._tls() if tls else None
        )
        return self._nginx(name, conf, port, "https" if tls else "http")

    def _envoy(self) -> Service:
        upstream, port, admin = self.get("static").port, free_port(), free_port()
        conf = self._folder("envoy") / "envoy.yaml"
        conf.write_text(envoy_yaml(port, admin, upstream, self._keys.rsa_jwks()))
        argv = [
            str(_BIN / "envoy"),
            "-c",
            str(conf),
            "--concurrency",
            str(self.proxy_workers),
            "--disable-hot-restart",
            "--log-level",
            "warn",
        ]
        service = self._services.start("envoy", argv, port=port, ready_url=f"http://127.0.0.1:{admin}/ready")
        service.extra["admin"] = admin
        return service

    def _fastapi(self, name: str, *, agno: bool) -> Service:
        port = free_port()
        argv = [sys.executable, "-m", "bench.apps.fastapi_app", "--port", str(port), "--audience", AUDIENCE]
        if agno:
            argv += ["--agno-public-key", str(self._keys.rsa_public)]
        site = [str(BENCH_SITE)] if uvicorn_parser() == "httptools" else []
        env = {"PYTHONPATH": os.pathsep.join([*site, str(REPO)])}
        return self._services.start(
            name,
            argv,
            port=port,
            ready_url=f"http://127.0.0.1:{port}/healthz",
            want_ok=not agno,
            cwd=REPO,
            env=env,
        )

    def _sse(self) -> Service:
        port = free_port()
        argv = [sys.executable, "-m", "bench.apps.sse_upstream", "--port", str(port)]
        return self._services.start(
            "sse", argv, port=port, ready_url=f"http://127.0.0.1:{port}/healthz", cwd=REPO
        )

    def _key_line(self, alg: str) -> str:
        if alg == "HS256":
            return f'secret: "{self._keys.hmac_secret}"'
        pem = self._keys.rsa_public if alg == "RS256" else self._keys.ec_public
        return f"public_key_file: {pem}"

    def write_config(self, name: str, port: int = 8080, admin: int = 9901, upstream: str = _UNUSED) -> Path:
        """The config file of authproxy service `name`; also used, unstarted, for the in-process timing."""
        spec = _PROXIES[name]
        conf = self._folder(name) / "authproxy.yaml"
        conf.write_text(
            authproxy_yaml(
                port=port,
                admin_port=admin,
                upstream_url=upstream,
                alg=spec.alg,
                key_line=self._key_line(spec.alg),
                public=spec.public,
                tls=self._tls() if spec.tls else None,
                when=spec.when,
            )
        )
        return conf

    def _authproxy(self, name: str, spec: _ProxySpec) -> Service:
        port, admin = free_port(), free_port()
        conf = self.write_config(name, port, admin, self.url(spec.upstream).rstrip("/"))
        argv = [str(_BIN / "authproxy"), "serve", "-c", str(conf)]
        if authproxy_workers_supported():
            # Always explicit: without the flag authproxy starts one worker per CPU.
            argv += ["--workers", str(spec.workers or self.proxy_workers)]
        elif spec.workers is not None:
            raise ServiceError(
                f"{name}: `authproxy serve` has no --workers, so {spec.workers} cannot be asked"
            )
        service = self._services.start(
            name, argv, port=port, ready_url=f"http://127.0.0.1:{admin}/readyz", cwd=REPO
        )
        service.extra["admin"] = admin
        return service
