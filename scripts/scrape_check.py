"""A real Prometheus scrapes a running gateway with deploy/prometheus.yml and answers every query
of the Grafana dashboard (part of `make docker-check`).

    python scripts/scrape_check.py --gateway 127.0.0.1:11434 --prometheus /path/to/prometheus

Checks: /metrics names every gateway family the dashboard queries; Prometheus, configured by
deploy/prometheus.yml with only the target and interval changed, sees the target up; each dashboard
query evaluates without error, and the request-rate query returns series.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

# Run as a script: its own folder is first on sys.path.
from dashboard_rules import DASHBOARD, panel_queries

REPO = Path(__file__).resolve().parents[1]
HISTOGRAM_SERIES = re.compile(r"_(bucket|sum|count)$")


def fetch(url: str, timeout: float = 10) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read()
    return body.decode()


def exported_families(metrics_text: str) -> set[str]:
    """Names from `# TYPE` lines: counters carry `_total` there, as in PromQL."""
    return set(re.findall(r"^# TYPE (\S+) \S+$", metrics_text, flags=re.MULTILINE))


def queried_families(queries: list[tuple[str, str]]) -> set[str]:
    names = {n for _, expr in queries for n in re.findall(r"\b(gateway_[a-z_]+)\b", expr)}
    return {HISTOGRAM_SERIES.sub("", name) for name in names}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def prometheus_config(gateway: str) -> dict[str, Any]:
    """deploy/prometheus.yml with the compose target swapped for `gateway` and a 1 s interval."""
    config: dict[str, Any] = yaml.safe_load((REPO / "deploy" / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = "1s"
    (job,) = config["scrape_configs"]
    job["static_configs"] = [{"targets": [gateway]}]
    return config


def query(prometheus: str, expr: str) -> list[Any]:
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    answer = json.loads(fetch(url))
    if answer.get("status") != "success":
        raise AssertionError(f"{expr}: {answer}")
    result: list[Any] = answer["data"]["result"]
    return result


def wait_for(what: str, seconds: float, check: Callable[[], object]) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if check():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds:.0f} s")
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateway", required=True, help="host:port of a running gateway")
    parser.add_argument("--prometheus", required=True, help="the prometheus binary")
    args = parser.parse_args()

    queries = panel_queries(json.loads(DASHBOARD.read_text()))
    exported = exported_families(fetch(f"http://{args.gateway}/metrics"))
    missing = queried_families(queries) - exported
    assert not missing, f"the dashboard queries families /metrics lacks: {sorted(missing)}"

    with tempfile.TemporaryDirectory(prefix="scrape-check-") as tmp:
        config = Path(tmp) / "prometheus.yml"
        config.write_text(yaml.safe_dump(prometheus_config(args.gateway)))
        # The scrape key the config names beside itself: the repository's empty one (the
        # gateway checked here has no keys).
        key = REPO / "deploy" / "gateway-metrics-key"
        (Path(tmp) / "gateway-metrics-key").write_bytes(key.read_bytes())
        address = f"127.0.0.1:{free_port()}"
        log = (Path(tmp) / "prometheus.log").open("w")
        server = subprocess.Popen(
            [args.prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp}/data",
             f"--web.listen-address={address}"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            base = f"http://{address}"
            wait_for("prometheus ready", 60, lambda: "Ready" in fetch(f"{base}/-/ready"))
            wait_for("target up", 60, lambda: query(base, 'up{job="embedding-gateway"} == 1'))
            # A few scrapes, so that rate() over the dashboard's windows has two samples.
            time.sleep(5)
            empty = []
            for name, expr in queries:
                if not query(base, expr):
                    empty.append(name)
            rate = next(
                e for _, e in queries if e.startswith("sum by (route) (rate(gateway_requests")
            )
            assert query(base, rate), "the request rate by route family has no series"
            print(
                f"prometheus scraped {args.gateway}: {len(exported)} families exported, "
                f"{len(queries)} dashboard queries evaluated ({len(queries) - len(empty)} with "
                "series; the rest have no events yet, e.g. evictions or image fetches)"
            )
        except AssertionError:
            log.flush()
            print((Path(tmp) / "prometheus.log").read_text()[-3000:], file=sys.stderr)
            raise
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()


if __name__ == "__main__":
    main()
