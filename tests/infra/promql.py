"""Helpers the infra tests share: where the files are, and the metric names in PromQL."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
DOCS = REPO / "docs"

# Ray's metrics agent prefixes every application metric with its namespace, "ray"
# (ray/_private/telemetry/open_telemetry_metric_recorder.py, NAMESPACE = "ray").
RAY_PREFIX = "ray_"
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

# Words PromQL reserves: operators, modifiers and grouping keywords.
_KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "inf",
    "nan",
    "atan2",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_BRACES = re.compile(r"\{[^}]*\}")
_BRACKETS = re.compile(r"\[[^\]]*\]")
_IDENT = re.compile(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, labels removed)."""
    text = _STRING.sub('""', expr)
    text = _GROUPING.sub(" ", text)
    text = _BRACES.sub(" ", text)
    text = _BRACKETS.sub(" ", text)
    names = set()
    for match in _IDENT.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


def base_metric(name: str) -> str:
    """The name evalcluster registers for an exported series name: no prefix, no suffix."""
    if name.startswith(RAY_PREFIX):
        name = name[len(RAY_PREFIX) :]
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def grafana_to_promql(expr: str) -> str:
    """Replace Grafana's template variables so plain Prometheus accepts the expression."""
    return (
        expr.replace("$__rate_interval", "1m")
        .replace("$__range", "5m")
        .replace("$provider", ".*")
        .replace("$run_id", ".*")
    )


def dashboard_exprs() -> list[str]:
    """Every PromQL expression of the Grafana dashboard."""
    import json

    dashboard = json.loads((INFRA / "grafana/dashboards/evalcluster.json").read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]


def alert_rules() -> list[dict]:
    """Every rule of infra/prometheus/alerts.yml."""
    doc = yaml.safe_load((INFRA / "prometheus/alerts.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def promtool() -> str | None:
    """Path of promtool (Debian: apt-get install prometheus), or None."""
    return shutil.which("promtool")
