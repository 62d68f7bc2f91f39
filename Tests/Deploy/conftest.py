"""Renders everything the deployment tests look at, once per session.

`rendered` maps a scenario name to its objects: each kustomize overlay
(`overlay:dev`, …), each chart ci values file (`chart:cpu`, …) and the Argo CD
folder (`argocd`).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "deploy"))

import chart  # noqa: E402

OVERLAYS = ("dev", "staging", "prod-gpu")


def kustomize(path: Path) -> list[dict]:
    out = subprocess.run(["kubectl", "kustomize", str(path)], check=True, capture_output=True, text=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict]]:
    scenarios = {f"overlay:{name}": kustomize(ROOT / "k8s" / "overlays" / name) for name in OVERLAYS}
    for path in chart.ci_values_files():
        scenarios[f"chart:{path.name.removesuffix('-values.yaml')}"] = chart.objects(chart.load_values(path))
    scenarios["argocd"] = kustomize(ROOT / "k8s" / "argocd")
    return scenarios


@pytest.fixture(scope="session")
def workloads(rendered) -> list[tuple[str, dict]]:
    """(scenario, object) for every object that holds a pod template or is a Pod."""
    return [(name, o) for name, objs in rendered.items() for o in objs
            if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job", "Pod")]


def pod_spec(obj: dict) -> dict:
    return obj["spec"] if obj["kind"] == "Pod" else obj["spec"]["template"]["spec"]


def pod_labels(obj: dict) -> dict:
    return obj["metadata"].get("labels", {}) if obj["kind"] == "Pod" else obj["spec"]["template"]["metadata"]["labels"]


def find(objs: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
