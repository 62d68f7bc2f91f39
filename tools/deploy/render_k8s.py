"""Writes k8s/base and k8s/components/gpu from the Helm chart (the one source of truth).

    render_k8s.py           rewrite the rendered folders
    render_k8s.py --check   exit 1 when the committed folders differ from a fresh render
"""
from __future__ import annotations

import argparse
import difflib
import sys
import tempfile
from pathlib import Path

import helm_python as helm
import yaml

import chart

K8S = chart.ROOT / "k8s"
BASE_VALUES = K8S / "values" / "base.yaml"
GPU_VALUES = K8S / "values" / "gpu.yaml"
HEADER = (
    "# Rendered from helm/moderation-platform ({values}) by scripts/render-k8s.\n"
    "# Do not edit: change the chart or the values file, then run scripts/render-k8s.\n"
)


def render_text(values: dict) -> dict[str, str]:
    """Template file name → rendered text (comments kept), tests and NOTES left out."""
    with helm.Chart.load(chart.CHART) as c:
        manifests = c.render(values, name=chart.RELEASE, namespace=chart.NAMESPACE, is_install=True)
    out = {}
    for path, text in sorted(manifests.items()):
        name = path.split("/templates/", 1)[1]
        if name == "NOTES.txt" or name.startswith("tests/") or not text.strip():
            continue
        out[name] = text.strip() + "\n"
    return out


def dump(docs: list[dict]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False, width=120)


def files() -> dict[str, str]:
    """Relative path under k8s/ → content of every rendered file."""
    out: dict[str, str] = {}
    base_values = chart.load_values(BASE_VALUES)
    header = HEADER.format(values="k8s/values/base.yaml")
    names = []
    for name, text in render_text(base_values).items():
        out[f"base/{name}"] = header + text
        names.append(name)
    out["base/kustomization.yaml"] = header + dump([{
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": names,
    }])

    # GPU: Triton's Deployment as rendered with the GPU values (a patch over the
    # base one) and its HPA. The HPA owns the replica count, so the patch drops it.
    gpu = chart.render(chart.merge(base_values, chart.load_values(GPU_VALUES)))
    deployment = gpu["triton-deployment.yaml"][0]
    deployment["spec"].setdefault("replicas", None)
    header = HEADER.format(values="k8s/values/base.yaml + k8s/values/gpu.yaml")
    out["components/gpu/triton-deployment-patch.yaml"] = header + dump([deployment])
    out["components/gpu/triton-hpa.yaml"] = header + dump(gpu["triton-hpa.yaml"])
    out["components/gpu/kustomization.yaml"] = header + dump([{
        "apiVersion": "kustomize.config.k8s.io/v1alpha1",
        "kind": "Component",
        "resources": ["triton-hpa.yaml"],
        "patches": [{"path": "triton-deployment-patch.yaml"}],
    }])
    return out


RENDERED_DIRS = ("base", "components/gpu")


def committed() -> dict[str, str]:
    out = {}
    for folder in RENDERED_DIRS:
        for path in sorted((K8S / folder).glob("*.yaml")):
            out[str(path.relative_to(K8S))] = path.read_text()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail when k8s/ differs from a fresh render")
    args = parser.parse_args()
    fresh = files()
    if args.check:
        old = committed()
        stale = sorted(set(fresh) ^ set(old) | {p for p in fresh.keys() & old.keys() if fresh[p] != old[p]})
        for path in stale:
            diff = difflib.unified_diff(old.get(path, "").splitlines(), fresh.get(path, "").splitlines(),
                                        f"k8s/{path} (committed)", f"k8s/{path} (rendered)", lineterm="", n=1)
            print("\n".join(list(diff)[:40]), file=sys.stderr)
        if stale:
            print(f"k8s/ is stale in {len(stale)} file(s): run scripts/render-k8s and commit", file=sys.stderr)
            return 1
        print(f"k8s/{{{','.join(RENDERED_DIRS)}}} match the chart ({len(fresh)} files)")
        return 0
    for folder in RENDERED_DIRS:
        for path in (K8S / folder).glob("*.yaml"):
            path.unlink()
    for rel, text in fresh.items():
        path = K8S / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    print(f"wrote {len(fresh)} files under k8s/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
