"""A dashboard's queries as Grafana sends them to Prometheus, with every variable at "All".

Grafana (which the test machines cannot install) replaces a dashboard variable
with its `allValue` when "All" is selected (the dashboards set `.*`), and
`$__rate_interval` with at least four times the data source's scrape interval
(Grafana's docs, "Using Prometheus in Grafana": max($__interval + scrape
interval, 4 * scrape interval)); for an instant query here, four scrapes.
"""

from __future__ import annotations

import json
import re


def grafana_expression(expr: str, scrape_interval_seconds: int) -> str:
    expr = expr.replace("$__rate_interval", f"{4 * scrape_interval_seconds}s")
    return re.sub(r"\$(\w+)", ".*", expr)


def variable_queries(text: str) -> list[tuple[str, str, str]]:
    """(variable, metric, label) of every `label_values(metric, label)` variable of a dashboard."""
    found = []
    for variable in json.loads(text).get("templating", {}).get("list", []):
        match = re.fullmatch(r"label_values\((\w+), (\w+)\)", variable["query"]["query"])
        assert match, variable
        found.append((variable["name"], match.group(1), match.group(2)))
    return found
