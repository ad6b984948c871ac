"""Print the Grafana dashboard's PromQL as a Prometheus recording-rules file.

`promtool check rules` then parses every panel query with Prometheus' own parser (used by
`make docker-check` and tests/unit/test_deploy_config.py). Grafana's variables are replaced by
values a query would get: `$__rate_interval` by 1m, the label filters by `.*`.

    python scripts/dashboard_rules.py [deploy/grafana/embedding-gateway.json] > rules.yml
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "embedding-gateway.json"


def panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(record name, expression) for every query target of every panel."""
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            name = f"dashboard:panel_{panel['id']}_{target['refId'].lower()}"
            expr = target["expr"].replace("$__rate_interval", "1m")
            queries.append((name, re.sub(r"\$\w+", ".*", expr)))
    return queries


def rules_file(queries: list[tuple[str, str]]) -> str:
    # JSON is YAML: no YAML writer needed, and every expression stays one quoted string.
    rules = [{"record": name, "expr": expr} for name, expr in queries]
    return json.dumps(
        {"groups": [{"name": "embedding-gateway-dashboard", "rules": rules}]}, indent=2
    )


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DASHBOARD
    print(rules_file(panel_queries(json.loads(path.read_text()))))


if __name__ == "__main__":
    main()
