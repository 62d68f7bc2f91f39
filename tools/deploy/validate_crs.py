"""Checks custom resources against the vendored upstream CRD schemas (k8s/vendor/crds).

The CRD's openAPIV3Schema is made strict (unknown fields refused wherever the
schema does not say x-kubernetes-preserve-unknown-fields), so a misspelt field
fails here instead of being pruned silently by the API server.

    validate_crs.py FILE...   (multi-document YAML; kinds without a vendored CRD are skipped)
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path

import jsonschema
import yaml

VENDOR = Path(__file__).resolve().parents[2] / "k8s" / "vendor" / "crds"


# Where a structural schema holds further schemas; every other key is a keyword
# whose value is data (description, enum, default, example, required, ...). The
# walk follows only these, so a property literally named `description`,
# `format` or `properties` is a schema like any other, never a keyword.
SCHEMA_MAPS = ("properties", "patternProperties", "definitions")
SCHEMA_LISTS = ("anyOf", "oneOf", "allOf")
SCHEMA_ONE = ("items", "additionalProperties", "additionalItems", "not")


def strict(schema: dict) -> dict:
    """JSON Schema from a structural OpenAPI v3 schema, unknown properties refused."""
    out = copy.deepcopy(schema)

    def walk(node):
        if not isinstance(node, dict):
            return  # additionalProperties: true/false
        if node.pop("x-kubernetes-int-or-string", False):
            node.pop("type", None)  # the schema's anyOf [integer, string] says it
        preserve = node.pop("x-kubernetes-preserve-unknown-fields", False)
        for key in [k for k in node if k.startswith("x-kubernetes-")]:
            del node[key]
        node.pop("format", None)  # int64, date-time and friends: not checked here
        if node.pop("nullable", False) and isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
        if "properties" in node and "additionalProperties" not in node and not preserve:
            node["additionalProperties"] = False
        for key in SCHEMA_MAPS:
            for sub in (node.get(key) or {}).values():
                walk(sub)
        for key in SCHEMA_LISTS:
            for sub in node.get(key) or []:
                walk(sub)
        for key in SCHEMA_ONE:
            sub = node.get(key)
            for s in sub if isinstance(sub, list) else [sub]:
                walk(s)

    walk(out)
    return out


def load_schemas() -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) → strict JSON Schema, from every vendored CRD."""
    schemas = {}
    for path in sorted(VENDOR.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        spec = crd["spec"]
        for version in spec["versions"]:
            schema = (version.get("schema") or spec.get("validation") or {}).get("openAPIV3Schema")
            schemas[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = strict(schema)
    return schemas


def validate(documents: list[dict], schemas: dict) -> list[str]:
    errors = []
    for doc in documents:
        schema = schemas.get((doc.get("apiVersion"), doc.get("kind")))
        if schema is None:
            continue
        name = f"{doc['kind']} {doc.get('metadata', {}).get('name')}"
        for error in jsonschema.Draft7Validator(schema).iter_errors(doc):
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            errors.append(f"{name}: {where}: {error.message}")
    return errors


def main(paths: list[str]) -> int:
    schemas = load_schemas()
    errors, checked = [], 0
    for path in paths:
        docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if d]
        checked += sum((d.get("apiVersion"), d.get("kind")) in schemas for d in docs)
        errors += [f"{path}: {e}" for e in validate(docs, schemas)]
    for error in errors:
        print(error, file=sys.stderr)
    print(f"custom resources: {checked} checked against {len(schemas)} vendored schemas, {len(errors)} errors")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
