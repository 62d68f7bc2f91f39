"""Writes every PromQL expression of the Grafana dashboard as a recording rule,
so `promtool check rules` parses each one (Debian's promtool has no bare PromQL
parser). Grafana's variables are replaced by values of the same type first.

    dashboard_rules.py DASHBOARD.json OUT.yaml
"""
from __future__ import annotations

import json
import sys

import yaml

GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "$namespace": "moderation"}


def expressions(dashboard: dict) -> list[tuple[str, str]]:
    out = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            out.append((f"{panel['title']} [{target['refId']}]", target["expr"]))
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, dict) and query.get("query", "").startswith("label_values("):
            metric = query["query"][len("label_values("):].rsplit(",", 1)[0]
            out.append((f"variable {variable['name']}", metric))
    return out


def with_values(expr: str) -> str:
    """`expr` with Grafana's variables replaced by values of the same type."""
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


def main(source: str, target: str) -> int:
    dashboard = json.loads(open(source).read())
    rules = []
    for index, (title, expr) in enumerate(expressions(dashboard)):
        expr = with_values(expr)
        rules.append({"record": f"dashboard:expr_{index}", "expr": expr, "labels": {"panel": title}})
    open(target, "w").write(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, sort_keys=False, width=200))
    print(f"{len(rules)} dashboard expressions written to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
