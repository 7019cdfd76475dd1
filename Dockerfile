# authproxy: the authorization sidecar / gateway image.
#
#   docker build -t authproxy .                      # online: dependencies from the package index
#   scripts/container/wheels.sh wheels && docker build -t authproxy .   # offline: from ./wheels
#
# Runs as uid/gid 10001 with a read-only root filesystem; only /tmp needs to be writable.

FROM python:3.11-slim-bookworm AS builder

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# .dockerignore lets through only the package sources, pyproject.toml, README.md and wheels/.
COPY . .

# Wheels in ./wheels mean "no index" (air-gapped builds); without them pip uses the index.
# The project is built into a wheel first, so the venv holds no link back to /src. Two extras are
# included, each imported only when configured: `otel`, so tracing can be turned on by environment
# alone, and `grpc`, Envoy's gRPC ext_authz service (authz.grpc_listen). scripts/container/wheels.sh
# downloads the same set.
RUN set -eu; \
    set -- wheels/*.whl; \
    if [ -e "$1" ]; then export PIP_NO_INDEX=1 PIP_FIND_LINKS=/src/wheels; fi; \
    python3 -m venv /opt/authproxy; \
    /opt/authproxy/bin/pip wheel --no-deps --wheel-dir /tmp/dist .; \
    set -- /tmp/dist/authproxy-*.whl; \
    /opt/authproxy/bin/pip install "$1[otel,grpc]"; \
    /opt/authproxy/bin/pip uninstall --yes pip setuptools; \
    rm -rf /tmp/dist


FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/authproxy/bin:$PATH \
    HOME=/tmp

# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
RUN groupadd --system --gid 10001 authproxy \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin authproxy

COPY --from=builder /opt/authproxy /opt/authproxy

USER 10001:10001
WORKDIR /tmp

EXPOSE 8080 9901

# python3 rather than curl: slim images have no curl. The admin port is configurable, so the
# URL is too (AUTHPROXY_HEALTHCHECK_URL).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ.get('AUTHPROXY_HEALTHCHECK_URL', 'http://127.0.0.1:9901/healthz'), timeout=2)"]

ENTRYPOINT ["authproxy"]
CMD ["serve", "-c", "/etc/authproxy/config.yaml"]
