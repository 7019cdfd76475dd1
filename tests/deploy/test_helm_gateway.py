"""Gateway mode: what the rendered Deployment, Service, ConfigMap, HPA and PDB promise."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

CHART = Path(__file__).resolve().parents[2] / "helm" / "authproxy"
AUTOSCALING = CHART / "ci" / "gateway-autoscaling-values.yaml"
EXISTING_SECRET = CHART / "ci" / "gateway-existing-secret-values.yaml"
MINIMAL = CHART / "examples" / "minimal-values.yaml"
INLINE_KEY = ("keys.existingSecret=", "keys.inline.jwt-secret=first-secret")

Render = Callable[..., Any]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container["env"] if "value" in item}


def test_gateway_renders_deployment_service_configmap_and_pdb(render: Render) -> None:
    assert render(MINIMAL).installed().kinds() == [
        "ConfigMap",
        "Deployment",
        "PodDisruptionBudget",
        "Service",
    ]


def test_probes_hit_the_admin_port_paths(render: Render) -> None:
    container = render(MINIMAL).container()
    admin = {p["name"]: p["containerPort"] for p in container["ports"]}["authproxy-admin"]
    assert admin == 9901
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "authproxy-admin"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "authproxy-admin"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "authproxy-admin"}


def test_admin_port_listens_beyond_loopback_so_the_kubelet_can_probe(render: Render) -> None:
    manifests = render(EXISTING_SECRET)
    env = env_of(manifests.container())
    assert env["AUTHPROXY_ADMIN_LISTEN"] == "0.0.0.0:19901"
    assert env["AUTHPROXY_LISTEN"] == "0.0.0.0:18080"
    assert manifests.config()["admin_listen"] == "${AUTHPROXY_ADMIN_LISTEN}"


def test_pod_runs_as_non_root_uid_10001(render: Render) -> None:
    pod = render(MINIMAL).pod()["spec"]
    container = render(MINIMAL).container()
    for context in (pod["securityContext"], container["securityContext"]):
        assert context["runAsNonRoot"] is True
        assert context["runAsUser"] == 10001
        assert context["runAsGroup"] == 10001
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["fsGroup"] == 10001
    assert pod["automountServiceAccountToken"] is False


def test_container_is_locked_down(render: Render) -> None:
    context = render(MINIMAL).container()["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["privileged"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}


def test_tmp_is_the_only_writable_mount(render: Render) -> None:
    manifests = render(MINIMAL)
    mounts = {m["mountPath"]: m for m in manifests.container()["volumeMounts"]}
    assert mounts["/etc/authproxy"]["readOnly"] is True
    writable = [path for path, mount in mounts.items() if not mount.get("readOnly")]
    assert writable == ["/tmp"]
    volumes = {v["name"]: v for v in manifests.pod()["spec"]["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]


def test_policy_configmap_content_equals_the_values_policy(render: Render) -> None:
    policy = yaml.safe_load(AUTOSCALING.read_text())["policy"]
    assert render(AUTOSCALING).config()["policy"] == policy


def test_config_sections_come_from_values_and_addresses_from_env(render: Render) -> None:
    values = yaml.safe_load(EXISTING_SECRET.read_text())
    config = render(EXISTING_SECRET).config()
    assert config["jwt"] == values["jwt"]
    assert config["logging"] == values["logging"]
    assert config["listen"] == "${AUTHPROXY_LISTEN}"
    assert config["upstream"]["url"] == "${AUTHPROXY_UPSTREAM_URL}"


def test_upstream_and_timeouts_are_container_env(render: Render) -> None:
    env = env_of(render(AUTOSCALING).container())
    assert env["AUTHPROXY_UPSTREAM_URL"] == "http://agentos.agents.svc.cluster.local:7777/api"
    assert env["AUTHPROXY_UPSTREAM_CONNECT_TIMEOUT"] == "2s"
    assert env["AUTHPROXY_UPSTREAM_READ_TIMEOUT"] == "10m"


def test_worker_count_is_set_explicitly_not_taken_from_the_node(render: Render) -> None:
    assert env_of(render(MINIMAL).container())["AUTHPROXY_WORKERS"] == "1"
    assert env_of(render(MINIMAL, sets=("workers=3",)).container())["AUTHPROXY_WORKERS"] == "3"


def test_policy_change_leaves_the_pod_template_alone(render: Render) -> None:
    # A rolled pod would drop in-flight agent runs; authproxy reloads the ConfigMap instead.
    before = render(MINIMAL, sets=("policy.routes.GET /agents[0]=agents:read",))
    after = render(MINIMAL, sets=("policy.routes.GET /agents[0]=agents:write",))
    assert before.config()["policy"] != after.config()["policy"]
    assert before.pod() == after.pod()


def test_no_checksum_annotation_covers_the_configmap(render: Render) -> None:
    annotations = render(AUTOSCALING).pod()["metadata"].get("annotations", {})
    checksums = [key for key in annotations if key.startswith("checksum/")]
    assert checksums == ["checksum/keys"]


@pytest.mark.parametrize(
    "change",
    [
        "upstream.url=http://other:7777",
        "ports.http=9090",
        "upstream.readTimeout=1h",
        "shutdownGraceSeconds=20",
        "workers=2",
    ],
)
def test_restart_only_setting_change_rolls_the_pods(render: Render, change: str) -> None:
    assert render(MINIMAL).pod() != render(MINIMAL, sets=(change,)).pod()


def test_inline_key_change_rolls_the_pods_through_the_checksum(render: Render) -> None:
    first = render(MINIMAL, sets=INLINE_KEY).pod()["metadata"]["annotations"]["checksum/keys"]
    second = render(MINIMAL, sets=("keys.existingSecret=", "keys.inline.jwt-secret=second-secret")).pod()[
        "metadata"
    ]["annotations"]
    assert first != second["checksum/keys"]


def test_inline_keys_are_a_secret_mounted_read_only_under_etc_authproxy_keys(render: Render) -> None:
    manifests = render(AUTOSCALING)
    secret = manifests.one("Secret")
    assert sorted(secret["data"]) == ["jwt-secret", "jwt-secret-previous"]
    sources = {v["name"]: v for v in manifests.pod()["spec"]["volumes"]}["authproxy-config"]["projected"]
    secret_source = next(s["secret"] for s in sources["sources"] if "secret" in s)
    assert secret_source["name"] == secret["metadata"]["name"]
    paths = {item["path"]: item["mode"] for item in secret_source["items"]}
    assert paths == {"keys/jwt-secret": 0o440, "keys/jwt-secret-previous": 0o440}


def test_existing_secret_is_mounted_and_no_secret_is_rendered(render: Render) -> None:
    manifests = render(EXISTING_SECRET)
    assert manifests.all("Secret") == []
    sources = manifests.pod()["spec"]["volumes"][0]["projected"]["sources"]
    secret = next(s["secret"] for s in sources if "secret" in s)
    assert secret["name"] == "idp-keys"
    assert [item["path"] for item in secret["items"]] == ["keys/public.pem", "keys/jwks.json"]
    assert {item["mode"] for item in secret["items"]} == {0o400}


def test_termination_grace_exceeds_the_app_drain_time(render: Render) -> None:
    for manifests in (render(MINIMAL), render(EXISTING_SECRET)):
        container = manifests.container()
        grace = int(env_of(container)["AUTHPROXY_SHUTDOWN_GRACE"])
        pre_stop = container.get("lifecycle", {}).get("preStop", {"exec": {"command": ["sleep", "0"]}})
        assert pre_stop["exec"]["command"][0] == "sleep"
        pause = int(pre_stop["exec"]["command"][1])
        assert manifests.pod()["spec"]["terminationGracePeriodSeconds"] > grace + pause


def test_service_exposes_only_the_proxied_port(render: Render) -> None:
    service = render(MINIMAL).installed().one("Service")
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(80, "authproxy-http")]
    assert service["spec"]["selector"] == render(MINIMAL).pod()["metadata"]["labels"]


def test_hpa_scales_the_deployment_when_enabled(render: Render) -> None:
    manifests = render(AUTOSCALING)
    hpa = manifests.one("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == manifests.one("Deployment")["metadata"]["name"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
    targets = {
        m["resource"]["name"]: m["resource"]["target"]["averageUtilization"] for m in hpa["spec"]["metrics"]
    }
    assert targets == {"cpu": 60, "memory": 80}
    # The HPA owns the replica count; a fixed one would fight it on every upgrade.
    assert "replicas" not in manifests.one("Deployment")["spec"]


def test_hpa_is_absent_unless_enabled(render: Render) -> None:
    manifests = render(MINIMAL)
    assert manifests.all("HorizontalPodAutoscaler") == []
    assert manifests.one("Deployment")["spec"]["replicas"] == 2


def test_pdb_guards_the_deployment_when_enabled(render: Render) -> None:
    manifests = render(AUTOSCALING)
    pdb = manifests.one("PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"] == {
        "minAvailable": "50%",
        "selector": {"matchLabels": manifests.one("Deployment")["spec"]["selector"]["matchLabels"]},
    }


def test_pdb_is_absent_when_disabled(render: Render) -> None:
    assert render(EXISTING_SECRET).all("PodDisruptionBudget") == []


def test_metrics_annotations_point_at_the_admin_port(render: Render) -> None:
    annotations = render(MINIMAL).pod()["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "9901"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert "annotations" not in render(EXISTING_SECRET).pod()["metadata"]
