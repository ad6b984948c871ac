"""The deployment files agree with each other and with the metrics the gateway documents.

compose.yaml, deploy/prometheus.yml, Grafana's provisioning and dashboard, and the Dockerfile are
read as data (no engine needed); `make docker-check` builds and runs the image itself. The last
test runs promtool: PROMTOOL's, PATH's, or Debian's package unpacked under .cache by
scripts/fetch_prometheus.sh (which `make test` runs first).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "embedding-gateway.json"
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# Labels Prometheus attaches to every scraped series.
TARGET_LABELS = {"job", "instance"}
# prometheus-client's own families (docs/metrics.md: "process_* and python_*").
CLIENT_FAMILIES: dict[str, set[str]] = {
    "process_resident_memory_bytes": set(),
    "process_cpu_seconds_total": set(),
}


def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _documented_families() -> dict[str, tuple[str, set[str]]]:
    """Family -> (type, labels) from the table in docs/metrics.md."""
    families: dict[str, tuple[str, set[str]]] = {}
    row = re.compile(r"^\| `(gateway_\w+)` \| (\w+) \| ([^|]*) \|")
    for line in (REPO / "docs" / "metrics.md").read_text().splitlines():
        match = row.match(line)
        if match:
            name, kind, labels = match.groups()
            # "`kind` (`real`, `padded`)": the names in parentheses are values, not labels.
            families[name] = (kind, set(re.findall(r"`(\w+)`", re.sub(r"\([^)]*\)", "", labels))))
    return families


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def _graph_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def _base_family(series: str, families: dict[str, tuple[str, set[str]]]) -> str | None:
    if series in families:
        return series
    for suffix in HISTOGRAM_SUFFIXES:
        base = series.removesuffix(suffix)
        if base != series and families.get(base, ("", set()))[0] == "histogram":
            return base
    return None


def test_docs_table_is_read() -> None:
    families = _documented_families()
    assert len(families) >= 15
    assert families["gateway_requests_total"] == ("counter", {"route", "model", "status"})
    assert families["gateway_batch_tokens"] == ("histogram", {"model", "kind"})
    assert families["gateway_image_fetches_total"] == ("counter", {"outcome"})


def test_every_panel_queries_exported_families_with_their_labels() -> None:
    families = _documented_families()
    known = {name: labels for name, (_, labels) in families.items()} | CLIENT_FAMILIES
    used: set[str] = set()
    for panel in _graph_panels(_dashboard()):
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), expr
            series = set(re.findall(r"\b((?:gateway|process)_[a-z_]+)\b", expr))
            assert series, f"{panel['title']}: {expr} names no exported family"
            labels_allowed = set(TARGET_LABELS)
            for name in series:
                base = _base_family(name, families) or (name if name in CLIENT_FAMILIES else None)
                assert base is not None, f"{panel['title']}: {name} is not an exported family"
                used.add(base)
                labels_allowed |= known[base]
                if name.endswith("_bucket"):
                    labels_allowed.add("le")
            selector_labels = set(re.findall(r"[{,]\s*(\w+)\s*(?:=~|!=|!~|=)", expr))
            grouping = {
                label.strip()
                for group in re.findall(r"\bby \(([^)]*)\)", expr)
                for label in group.split(",")
            }
            unknown = (selector_labels | grouping) - labels_allowed
            assert not unknown, f"{panel['title']}: labels {unknown} not on {series}"
    # Every documented family is on the dashboard somewhere.
    assert set(families) <= used, set(families) - used


def test_dashboard_covers_the_asked_views() -> None:
    exprs = {
        panel["title"]: " ".join(t["expr"] for t in panel["targets"])
        for panel in _graph_panels(_dashboard())
    }

    def panels_with(*needles: str) -> list[str]:
        return [title for title, expr in exprs.items() if all(n in expr for n in needles)]

    assert panels_with("gateway_requests_total", "by (route)")
    assert panels_with("gateway_requests_total", "by (model)")
    assert panels_with("gateway_request_duration_seconds_bucket", "le, route")
    assert panels_with("gateway_request_duration_seconds_bucket", "le, model")
    assert panels_with("gateway_queue_depth")
    assert panels_with("gateway_batch_size")
    assert panels_with('result="hit"', "gateway_cache_lookups_total")
    assert panels_with("gateway_model_memory_bytes", "gateway_memory_budget_bytes")
    assert panels_with("gateway_model_loads_total")
    assert panels_with("gateway_model_evictions_total")
    assert panels_with("gateway_image_fetches_total", "by (outcome)")


def test_dashboard_layout_and_variables() -> None:
    dashboard = _dashboard()
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area
    variables = {var["name"] for var in dashboard["templating"]["list"]}
    for panel in _graph_panels(dashboard):
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            referenced = set(re.findall(r"\$(\w+)", target["expr"])) - {"__rate_interval"}
            assert referenced <= variables, referenced - variables


def test_each_panel_has_one_unit_on_one_axis() -> None:
    """Latencies (quantiles of a *_seconds histogram) share a panel only with each other, in
    seconds; no series moves to a second axis or unit of its own (queue wait and queue
    rejections once shared a panel: rejections per second read against a seconds axis)."""
    for panel in _graph_panels(_dashboard()):
        latencies = [
            "histogram_quantile" in target["expr"] and "_seconds_bucket" in target["expr"]
            for target in panel["targets"]
        ]
        unit = panel["fieldConfig"]["defaults"].get("unit")
        assert all(latencies) or not any(latencies), f"{panel['title']} mixes latencies"
        assert (unit == "s") == all(latencies), f"{panel['title']}: unit {unit}"
        for override in panel["fieldConfig"].get("overrides", []):
            changed = {prop["id"] for prop in override["properties"]}
            assert not changed & {"unit", "custom.axisPlacement"}, panel["title"]


def test_compose_wires_gateway_prometheus_and_grafana() -> None:
    compose = _load_yaml(REPO / "compose.yaml")
    services = compose["services"]
    gateway = services["gateway"]
    assert gateway["build"]["context"] == "."
    assert "11434:11434" in gateway["ports"]
    assert "models:/models" in gateway["volumes"]
    assert set(compose["volumes"]) >= {"models"}
    # Every bind-mounted file or folder exists in the repository.
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), source

    prometheus = _load_yaml(REPO / "deploy" / "prometheus.yml")
    (job,) = prometheus["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["gateway:11434"]
    assert "prometheus" in services
    assert any(
        v.endswith(":/etc/prometheus/prometheus.yml:ro") for v in services["prometheus"]["volumes"]
    )


def _default(value: str) -> str:
    """A compose `${NAME:-default}` value as compose reads it when NAME is unset."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def test_compose_keeps_metrics_behind_keys_and_gives_prometheus_one() -> None:
    """/metrics is not opened on the published port by default: where keys are set it takes
    one, which Prometheus sends as a bearer token from the file compose mounts beside its
    config (empty by default, for a gateway without keys)."""
    services = _load_yaml(REPO / "compose.yaml")["services"]
    public = _default(services["gateway"]["environment"]["GATEWAY_METRICS_PUBLIC"])
    assert public == "false"
    (job,) = _load_yaml(REPO / "deploy" / "prometheus.yml")["scrape_configs"]
    key_file = job["authorization"]["credentials_file"]
    assert job["authorization"].get("type", "Bearer") == "Bearer"
    volumes = (_default(volume).split(":") for volume in services["prometheus"]["volumes"])
    mounted = {parts[1]: parts[0] for parts in volumes}
    # Relative to the config file's folder, as Prometheus and promtool resolve it.
    source = mounted[f"/etc/prometheus/{key_file}"]
    assert (REPO / source).read_text() == ""  # the repository's default holds no key


def test_grafana_provisioning_points_at_the_dashboard() -> None:
    provisioning = REPO / "deploy" / "grafana" / "provisioning"
    (source,) = _load_yaml(provisioning / "datasources" / "prometheus.yml")["datasources"]
    assert source["url"] == "http://prometheus:9090"
    dashboard_var = next(
        var for var in _dashboard()["templating"]["list"] if var["name"] == "datasource"
    )
    assert dashboard_var["current"]["value"] == source["uid"]
    (provider,) = _load_yaml(provisioning / "dashboards" / "embedding-gateway.yml")["providers"]
    grafana = _load_yaml(REPO / "compose.yaml")["services"]["grafana"]
    mounted = {v.split(":")[1] for v in grafana["volumes"] if v.startswith("./")}
    assert f"{provider['options']['path']}/embedding-gateway.json" in mounted


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text()
    joined = re.sub(
        r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    )
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in joined.splitlines()
        if line.strip()
    ]


def test_dockerfile_runs_non_root_with_healthcheck_and_models_volume() -> None:
    instructions = _dockerfile_instructions()
    args = [value for op, value in instructions if op == "ARG"]
    assert "BASE=python:3.11-slim" in args
    final = instructions[max(i for i, (op, _) in enumerate(instructions) if op == "FROM") :]
    (user,) = [value for op, value in final if op == "USER"]
    assert user.split(":")[0] not in {"0", "root"}
    env = " ".join(value for op, value in final if op == "ENV")
    for setting in ("GATEWAY_MODELS_DIR=/models", "GATEWAY_HOST=0.0.0.0", "GATEWAY_PORT=11434"):
        assert setting in env
    assert ("VOLUME", '["/models"]') in final
    (health,) = [value for op, value in final if op == "HEALTHCHECK"]
    assert "urllib.request" in health and "/health" in health and "GATEWAY_PORT" in health
    # USER comes after every RUN: nothing installs as the runtime user, nothing runs as root.
    last_run = max(i for i, (op, _) in enumerate(final) if op == "RUN")
    assert last_run < next(i for i, (op, _) in enumerate(final) if op == "USER")


@pytest.mark.parametrize("path", ["pyproject.toml", "README.md", "registry.yaml", "gateway"])
def test_dockerignore_keeps_what_the_image_copies(path: str) -> None:
    ignored = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert (REPO / path).exists()
    assert path not in ignored
    copies = " ".join(value for op, value in _dockerfile_instructions() if op == "COPY")
    assert path in copies


def _dashboard_rules() -> str:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "dashboard_rules.py"), str(DASHBOARD)],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def test_dashboard_rules_carry_every_query_with_variables_filled() -> None:
    (group,) = json.loads(_dashboard_rules())["groups"]
    targets = [t for panel in _graph_panels(_dashboard()) for t in panel["targets"]]
    assert len(group["rules"]) == len(targets)
    assert not any("$" in rule["expr"] for rule in group["rules"])


UNPACKED_PROMTOOL = REPO / ".cache" / "prometheus" / "usr" / "bin" / "promtool"


@pytest.fixture(scope="module")
def promtool() -> str:
    """PROMTOOL, or promtool on PATH, or Debian's package unpacked under .cache (as `make test`
    does, with the same script); a machine that can do none of these fails here, saying why."""
    found = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if found:
        return found
    if not UNPACKED_PROMTOOL.is_file():
        script = REPO / "scripts" / "fetch_prometheus.sh"
        target = UNPACKED_PROMTOOL.parents[2]
        result = subprocess.run([str(script), str(target)], capture_output=True, text=True)
        assert result.returncode == 0, f"cannot get promtool: {result.stderr or result.stdout}"
    return str(UNPACKED_PROMTOOL)


def test_promtool_accepts_prometheus_config_and_every_dashboard_query(
    tmp_path: Path, promtool: str
) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(_dashboard_rules())
    for args in (
        ["check", "config", str(REPO / "deploy" / "prometheus.yml")],
        ["check", "rules", str(rules)],
    ):
        result = subprocess.run([promtool, *args], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
