"""deploy/: Kubernetes manifests valid against the API schemas (kubernetes-validate), wired to
each other and to routes the app really has; the KubeRay RayService and the `serve run` config
checked field by field, their pod templates validated as Pods, their Serve args accepted by the
gateway's own option parsers."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from gateway.api.app import create_app
from gateway.distributed.options import RayServeOptions
from gateway.settings import Settings
from tools.paths import REPO

K8S = REPO / "deploy" / "k8s"
RAYSERVICE = K8S / "ray" / "rayservice.yaml"
SERVE_CONFIG = REPO / "deploy" / "ray" / "serve-config.yaml"
# The oldest Kubernetes still commonly run, and the newest schema the package carries.
VERSIONS = ["1.30.0", kubernetes_validate.utils.latest_version() + ".0"]
BUILDER = "gateway.distributed.serve_app:app_builder"


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def k8s_resources() -> dict[str, dict[str, Any]]:
    """The resources the kustomization applies, by kind."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    found: dict[str, dict[str, Any]] = {}
    for name in kustomization["resources"]:
        for doc in documents(K8S / name):
            found[doc["kind"]] = doc
    return found


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_validates_strictly(version: str) -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk, "every manifest is applied by the kustomization"
    for name in sorted(listed):
        for doc in documents(K8S / name):
            kubernetes_validate.validate(doc, version, strict=True)


def test_deployment_is_probed_bounded_and_unprivileged() -> None:
    resources = k8s_resources()
    deployment = resources["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    for container in pod["containers"] + pod.get("initContainers", []):
        resources_of = container["resources"]
        assert {"cpu", "memory"} <= set(resources_of["requests"]) <= set(resources_of["limits"])
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    (gateway,) = pod["containers"]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert gateway[probe]["httpGet"]["port"] == "http", probe
    # The model volume is the claim the kustomization creates.
    claims = [
        v["persistentVolumeClaim"]["claimName"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    ]
    assert claims == [resources["PersistentVolumeClaim"]["metadata"]["name"]]


def test_probe_paths_are_routes_of_the_app(tmp_path: Path) -> None:
    app = create_app(
        Settings.load(
            environ={
                "GATEWAY_REGISTRY": str(REPO / "registry.yaml"),
                "GATEWAY_MODELS_DIR": str(tmp_path),
            }
        )
    )
    routes = {route.path for route in app.routes}
    (gateway,) = k8s_resources()["Deployment"]["spec"]["template"]["spec"]["containers"]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert gateway[probe]["httpGet"]["path"] in routes, probe


def test_service_hpa_and_budget_point_at_the_deployment() -> None:
    resources = k8s_resources()
    deployment, service, hpa = (
        resources["Deployment"],
        resources["Service"],
        resources["HorizontalPodAutoscaler"],
    )
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert (
        resources["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items()
        <= labels.items()
    )
    (gateway,) = deployment["spec"]["template"]["spec"]["containers"]
    port_names = {port["name"] for port in gateway["ports"]}
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= port_names
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods" and metric["pods"]["metric"]["name"] == "gateway_queue_depth"
    # Each replica's model budget stays under its memory limit.
    env = {e["name"]: e["value"] for e in gateway["env"]}
    settings = Settings.load(environ=env)
    limit = gateway["resources"]["limits"]["memory"]
    assert settings.max_ram is not None and limit.endswith("Gi")
    from gateway.units import parse_bytes

    assert parse_bytes(settings.max_ram) < int(limit[:-2]) * 2**30
    # Behind an Ingress the controller's pod address is the peer: its X-Forwarded-For counts.
    pod = ipaddress.ip_address("10.244.1.7")
    assert any(pod in ipaddress.ip_network(net) for net in settings.trusted_proxies)
    assert "*" not in settings.trusted_proxies


def check_serve_config(config: dict[str, Any]) -> None:
    """A Serve config whose one application is the gateway's, with args the gateway accepts."""
    (application,) = config["applications"]
    assert application["import_path"] == BUILDER
    assert application["route_prefix"] == "/"
    args = dict(application["args"])
    settings = {k: str(v) for k, v in args.pop("settings", {}).items()}
    Settings.load(environ={}, overrides=settings)  # unknown or malformed settings fail
    assert set(settings) <= {f for f in Settings.__dataclass_fields__}, settings
    RayServeOptions.load(environ={}, overrides=args)  # unknown or malformed options fail


def test_serve_run_config() -> None:
    check_serve_config(yaml.safe_load(SERVE_CONFIG.read_text()))


def test_rayservice_fields_and_pod_templates() -> None:
    (service,) = documents(RAYSERVICE)
    assert (service["apiVersion"], service["kind"]) == ("ray.io/v1", "RayService")
    assert service["metadata"]["name"]
    spec = service["spec"]
    check_serve_config(yaml.safe_load(spec["serveConfigV2"]))
    cluster = spec["rayClusterConfig"]
    assert cluster["rayVersion"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    for group in cluster["workerGroupSpecs"]:
        assert group["groupName"]
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    for group in groups:
        assert "rayStartParams" in group
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "template"},
            "spec": group["template"]["spec"],
        }
        for version in VERSIONS:
            kubernetes_validate.validate(pod, version, strict=True)
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        for container in pod["spec"]["containers"]:
            assert {"cpu", "memory"} <= set(container["resources"]["limits"])


def image_user() -> tuple[int, int]:
    """The uid and gid the Dockerfile runs as (`USER uid:gid`)."""
    users = [
        line.split()[1]
        for line in (REPO / "Dockerfile").read_text().splitlines()
        if line.startswith("USER ")
    ]
    uid, gid = users[-1].split(":")
    return int(uid), int(gid)


def test_pods_run_as_the_image_user() -> None:
    uid, gid = image_user()
    (service,) = documents(RAYSERVICE)
    cluster = service["spec"]["rayClusterConfig"]
    pods = {
        "Deployment": k8s_resources()["Deployment"]["spec"]["template"]["spec"],
        "ray head": cluster["headGroupSpec"]["template"]["spec"],
        **{
            f"ray {group['groupName']}": group["template"]["spec"]
            for group in cluster["workerGroupSpecs"]
        },
    }
    for name, pod in pods.items():
        context = pod["securityContext"]
        assert (context["runAsUser"], context["runAsGroup"]) == (uid, gid), name
        # The models volume must be writable by that user (`gateway pull`).
        assert context["fsGroup"] == gid, name


def test_readiness_sees_the_drain_before_the_listener_closes() -> None:
    """Readiness probes the route that turns 503 on SIGTERM, often enough to see it while the
    listener is still open; the gateway's own shutdown ends before Kubernetes kills it."""
    pod = k8s_resources()["Deployment"]["spec"]["template"]["spec"]
    (gateway,) = pod["containers"]
    readiness = gateway["readinessProbe"]
    # gateway/api/probes.py: the one route that answers 503 once shutdown begins (/health and
    # /api/version stay 200); test_probe_paths_are_routes_of_the_app checks it is served.
    assert readiness["httpGet"]["path"] == "/health/ready"
    env = {e["name"]: e["value"] for e in gateway["env"]}
    settings = Settings.load(environ=env)
    period, failures = readiness.get("periodSeconds", 10), readiness.get("failureThreshold", 3)
    seen_within = period * failures + readiness.get("timeoutSeconds", 1)
    assert settings.drain_delay > seen_within
    assert settings.shutdown_grace > settings.drain_delay
    assert pod.get("terminationGracePeriodSeconds", 30) > settings.shutdown_grace
