"""Renders helm/moderation-platform offline through Helm's Go SDK (helm-python-sdk).

One place knows the release name, the namespace and how values files combine,
so the committed k8s/ tree, the ci scenarios and the tests render alike.
"""
from __future__ import annotations

import copy
import logging
from pathlib import Path

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "moderation-platform"
RELEASE = "moderation-platform"
NAMESPACE = "moderation"
KUBE_VERSION = "v1.30.0"

# Helm logs the chart's files/traffic.yaml symlink (to config/traffic.yaml) on every load.
logging.getLogger("helm_python.native").setLevel(logging.ERROR)


def merge(base: dict, override: dict) -> dict:
    """Deep merge as Helm coalesces several -f files: maps merge, everything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_values(*files: Path) -> dict:
    values: dict = {}
    for path in files:
        values = merge(values, yaml.safe_load(Path(path).read_text()) or {})
    return values


def render(values: dict, *, include_tests: bool = True) -> dict[str, list[dict]]:
    """Template path → the objects it renders (NOTES.txt left out).

    Raises helm_python.HelmError when the values break the schema or a template fails.
    """
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    out: dict[str, list[dict]] = {}
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt") or (not include_tests and "/templates/tests/" in path):
            continue
        docs = [d for d in yaml.safe_load_all(text) if d]
        if docs:
            out[path.split("/templates/", 1)[1]] = docs
    return out


def objects(values: dict, *, include_tests: bool = True) -> list[dict]:
    return [doc for docs in render(values, include_tests=include_tests).values() for doc in docs]


def lint(values: dict) -> dict:
    return helm.lint(CHART, values, strict=True, namespace=NAMESPACE, kube_version=KUBE_VERSION)


def ci_values_files() -> list[Path]:
    return sorted((CHART / "ci").glob("*-values.yaml"))
