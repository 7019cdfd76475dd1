"""`helm test`: a Pod of the authproxy image asks /readyz on the admin port (through a Service made for the
test) and expects 401 from a protected route without a token. Checked as rendered (hook annotations,
Kubernetes schema, the Services and ports it targets) and by running its script against a real
`authproxy serve` started from the rendered config."""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.rigs.certs import Pki
from tests.rigs.serve import serve_processes

CHART = Path(__file__).resolve().parents[2] / "helm" / "authproxy"
MINIMAL = CHART / "examples" / "minimal-values.yaml"
CI = CHART / "ci"
SCRIPT = (CHART / "files" / "helm-test.py").read_text()

Render = Callable[..., Any]
Materialise = Callable[[Any, Path], tuple[Path, dict[str, str]]]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container["env"] if "value" in item}


def hook_pod(manifests: Any) -> dict[str, Any]:
    pod: dict[str, Any] = manifests.hooks().one("Pod")
    return pod


def hook_env(manifests: Any) -> dict[str, str]:
    return env_of(hook_pod(manifests)["spec"]["containers"][0])


@pytest.mark.parametrize("mode", ["gateway", "authz"])
def test_test_hooks_render_in_the_modes_that_own_the_deployment(render: Render, mode: str) -> None:
    hooks = render(MINIMAL, sets=(f"mode={mode}",)).hooks()
    assert hooks.kinds() == ["Pod", "Service"]
    weights = {doc["kind"]: int(doc["metadata"]["annotations"]["helm.sh/hook-weight"]) for doc in hooks.docs}
    assert weights["Service"] < weights["Pod"]  # the admin Service exists before the Pod asks it
    for doc in hooks.docs:
        assert (
            doc["metadata"]["annotations"]["helm.sh/hook-delete-policy"]
            == "before-hook-creation,hook-succeeded"
        )


def test_no_test_hook_in_sidecar_mode_or_when_disabled(render: Render) -> None:
    assert render(MINIMAL, sets=("mode=sidecar",)).hooks().docs == []
    assert render(MINIMAL, sets=("helmTest.enabled=false",)).hooks().docs == []


@pytest.mark.parametrize(
    "values",
    [(MINIMAL,), (CI / "gateway-tls-tracing-values.yaml",), (CI / "gateway-existing-secret-values.yaml",)],
    ids=["minimal", "tls", "existing-secret"],
)
def test_test_hooks_pass_strict_kubernetes_validation(
    render: Render, validate: Callable[[str], None], values: tuple[Path, ...]
) -> None:
    validate(render(*values).hooks().text)


def test_admin_service_reaches_the_proxy_pods_admin_port(render: Render) -> None:
    manifests = render(CI / "gateway-existing-secret-values.yaml")  # admin port 19901
    admin = next(s for s in manifests.hooks().all("Service"))
    assert admin["spec"]["selector"] == manifests.one("Deployment")["spec"]["selector"]["matchLabels"]
    assert [(p["port"], p["targetPort"]) for p in admin["spec"]["ports"]] == [(19901, "authproxy-admin")]
    container_ports = {p["name"]: p["containerPort"] for p in manifests.container()["ports"]}
    assert container_ports["authproxy-admin"] == 19901
    # A pod that is not ready still answers, so the test prints /readyz's reason.
    assert admin["spec"]["publishNotReadyAddresses"] is True
    assert hook_env(manifests)["ADMIN_URL"] == f"http://{admin['metadata']['name']}:19901"


def test_gateway_test_targets_the_release_service_port(render: Render) -> None:
    manifests = render(MINIMAL, sets=("service.port=8081",))
    service = manifests.installed().one("Service")
    method, url = hook_env(manifests)["TARGET"].split(" ")
    target = urlsplit(url)
    assert (target.scheme, target.hostname, target.port) == ("http", service["metadata"]["name"], 8081)
    assert [p["port"] for p in service["spec"]["ports"]] == [8081]
    assert (method, target.path) == ("GET", "/agents")  # agents:read under the agentos preset
    assert hook_env(manifests)["EXPECT"] == "401"


def test_authz_test_targets_the_decision_port_under_its_prefix(render: Render) -> None:
    manifests = render(CI / "authz-values.yaml")
    service = manifests.installed().one("Service")
    target = urlsplit(hook_env(manifests)["TARGET"].split(" ")[1])
    assert (target.hostname, target.port) == (service["metadata"]["name"], 9191)
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["authproxy-authz"]
    assert target.path == "/ext-authz/agents"


@pytest.mark.parametrize(
    ("values", "sets", "request_line"),
    [
        # sorted routes: "GET /reports/**" before "POST /agents/{agent_id}/runs"
        (CI / "gateway-autoscaling-values.yaml", (), "GET /reports/x"),
        # "* /v1/admin/**" sorts first; "*" is sent as GET
        (CI / "gateway-existing-secret-values.yaml", (), "GET /v1/admin/x"),
        (CI / "gateway-remote-keys-values.yaml", (), "POST /reports"),  # helmTest.request
        (MINIMAL, ("helmTest.request=/teams",), "GET /teams"),
        (MINIMAL, ("helmTest.request=DELETE\\,PATCH /agents/{id}",), "DELETE /agents/x"),
    ],
)
def test_request_comes_from_the_policy_or_the_value(
    render: Render, values: Path, sets: tuple[str, ...], request_line: str
) -> None:
    method, url = hook_env(render(values, sets=sets))["TARGET"].split(" ")
    assert f"{method} {urlsplit(url).path}" == request_line


def test_required_client_certificates_expect_a_refused_handshake(render: Render) -> None:
    env = hook_env(render(CI / "gateway-tls-tracing-values.yaml"))
    assert env["TARGET"].split(" ")[1].startswith("https://")
    assert env["EXPECT"] == "tls-refused"


def test_test_pod_runs_the_script_in_the_release_image(render: Render) -> None:
    manifests = render(CI / "gateway-existing-secret-values.yaml")
    pod = hook_pod(manifests)["spec"]
    container = pod["containers"][0]
    assert container["image"] == manifests.container()["image"]  # no busybox or curl image to pull
    assert container["command"] == ["python3", "-c", SCRIPT]
    assert pod["restartPolicy"] == "Never"
    assert pod["imagePullSecrets"] == [{"name": "registry-credentials"}]


def test_test_pod_is_locked_down_and_outside_the_release_selector(render: Render) -> None:
    manifests = render(MINIMAL)
    pod = hook_pod(manifests)
    context = pod["spec"]["containers"][0]["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["automountServiceAccountToken"] is False
    selector = manifests.installed().one("Service")["spec"]["selector"]
    assert not selector.items() <= pod["metadata"]["labels"].items()  # the Service and PDB never count it


# --- the script itself, against a real authproxy ---------------------------------------------------------


async def run_script(env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SCRIPT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


@pytest.fixture(params=["gateway", "authz"])
def release(
    request: pytest.FixtureRequest, render: Render, materialise: Materialise, tmp_path: Path
) -> tuple[Path, dict[str, str], dict[str, str]]:
    """The minimal values rendered in one mode, laid out on disk: (config, container env, test env)."""
    manifests = render(MINIMAL, sets=(f"mode={request.param}",))
    config, env = materialise(manifests, tmp_path)
    loopback = {key: "127.0.0.1:0" for key in env if key.endswith("_LISTEN")}
    return config, {**env, **loopback}, hook_env(manifests)


def on_loopback(test: dict[str, str], listening: dict[str, Any], admin: str | None = None) -> dict[str, str]:
    """The test Pod's env with the Service addresses replaced by the local process's ports."""
    method, url = test["TARGET"].split(" ")
    port = listening["authz"] if "authz" in listening else listening["proxy"]
    target = urlsplit(url)._replace(netloc=port).geturl()
    return {
        "ADMIN_URL": admin or f"http://{listening['admin']}",
        "TARGET": f"{method} {target}",
        "EXPECT": test["EXPECT"],
    }


async def test_script_passes_against_the_rendered_release(
    release: tuple[Path, dict[str, str], dict[str, str]],
) -> None:
    config, env, test = release
    async with serve_processes() as serve:
        served = await serve(config, env=env)
        code, out = await run_script(on_loopback(test, await served.log.wait_for("listening")))
    assert code == 0, out
    assert "/readyz -> 200\n" in out
    assert "without a token -> 401\n" in out


async def test_script_fails_when_readyz_is_not_200(
    release: tuple[Path, dict[str, str], dict[str, str]],
) -> None:
    config, env, test = release
    async with serve_processes() as serve:
        served = await serve(config, env=env)
        listening = await served.log.wait_for("listening")
        # /readyz asked on the proxied port: a route no rule names, so 401 rather than 200.
        code, out = await run_script(on_loopback(test, listening, admin=f"http://{listening['proxy']}"))
    assert code == 1
    assert "FAIL: /readyz answered 401, not 200" in out


async def test_script_fails_when_the_route_answers_without_a_token(
    tmp_path: Path, render: Render, materialise: Materialise
) -> None:
    # A public route as the test request: the proxy forwards it (to a closed port: 502), never 401.
    manifests = render(
        MINIMAL,
        sets=("policy.public[0]=/open", "helmTest.request=GET /open", "upstream.url=http://127.0.0.1:9"),
    )
    config, env = materialise(manifests, tmp_path)
    env |= {"AUTHPROXY_LISTEN": "127.0.0.1:0", "AUTHPROXY_ADMIN_LISTEN": "127.0.0.1:0"}
    async with serve_processes() as serve:
        served = await serve(config, env=env)
        code, out = await run_script(on_loopback(hook_env(manifests), await served.log.wait_for("listening")))
    assert code == 1
    assert "FAIL: expected 401 without a token, got 502" in out


@pytest.mark.parametrize(("client_auth", "answer"), [("required", "tls-refused"), ("optional", "401")])
async def test_script_passes_against_a_tls_listener(
    render: Render, materialise: Materialise, tmp_path: Path, client_auth: str, answer: str
) -> None:
    # Required client certificates: the pod has none, so a refused handshake is the pass; optional: 401.
    manifests = render(MINIMAL, sets=("tls.secretName=authproxy-tls", f"tls.clientAuth={client_auth}"))
    config, env = materialise(manifests, tmp_path / "etc")
    pki = Pki.create(tmp_path / "pki")
    for name, source in (
        ("tls.crt", pki.server.cert_file),
        ("tls.key", pki.server.key_file),
        ("ca.crt", pki.ca.cert_file),
    ):
        shutil.copy(source, tmp_path / "etc" / "tls" / name)
    env |= {"AUTHPROXY_LISTEN": "127.0.0.1:0", "AUTHPROXY_ADMIN_LISTEN": "127.0.0.1:0"}
    async with serve_processes() as serve:
        served = await serve(config, env=env)
        code, out = await run_script(on_loopback(hook_env(manifests), await served.log.wait_for("listening")))
    assert code == 0, out
    assert f"without a token -> {answer}\n" in out


async def test_script_fails_when_a_refused_handshake_is_expected_of_a_plain_port(
    release: tuple[Path, dict[str, str], dict[str, str]],
) -> None:
    # The https client meets plain HTTP: a TLS error, but no server's refusal, so no pass.
    config, env, test = release
    async with serve_processes() as serve:
        served = await serve(config, env=env)
        listening = await served.log.wait_for("listening")
        test_env = {**on_loopback(test, listening), "EXPECT": "tls-refused"}
        test_env["TARGET"] = test_env["TARGET"].replace("http://", "https://")
        code, out = await run_script(test_env)
    assert code == 1
    assert "FAIL: expected tls-refused without a token, got SSLError" in out
