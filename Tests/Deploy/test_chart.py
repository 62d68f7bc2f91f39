"""The chart itself: lint, schema refusals, the committed k8s/ render, CR schemas."""
from __future__ import annotations

import copy

import helm_python as helm
import pytest

import chart
import render_k8s
import validate_crs
from conftest import find


@pytest.mark.parametrize("values_file", chart.ci_values_files(), ids=lambda p: p.name)
def test_chart_lints_cleanly_for_every_ci_scenario(values_file):
    report = chart.lint(chart.load_values(values_file))
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert not problems, problems


@pytest.mark.parametrize("values, refusal", [
    ({"gateway": {"replicaz": 3}}, "replicaz"),                       # typo'd key
    ({"triton": {"modelRepository": {"sourec": "image"}}}, "sourec"),  # typo'd nested key
    ({"ingress": {"kind": "nginx"}}, "kind"),                          # value outside the enum
    ({"triton": {"modelControlMode": "auto"}}, "modelControlMode"),
    ({"gateway": {"audit": {"subjectMode": "hashed"}}}, "subjectMode"),
    ({"gateway": {"image": {"tag": "latest"}}}, "tag"),                # never :latest
    ({"gateway": {"replicas": 1}}, "replicas"),                        # each replica is an audit chain; two at least
])
def test_schema_refuses(values, refusal):
    with pytest.raises(helm.HelmError) as error:
        chart.render(values)
    assert refusal in str(error.value)


def test_template_guards_refuse_a_grace_period_shorter_than_the_drain():
    with pytest.raises(helm.HelmError, match="terminationGracePeriodSeconds"):
        chart.render({"triton": {"terminationGracePeriodSeconds": 20}})


def test_committed_k8s_tree_is_the_chart_rendered():
    fresh, committed = render_k8s.files(), render_k8s.committed()
    stale = sorted(p for p in fresh.keys() | committed.keys() if fresh.get(p) != committed.get(p))
    assert not stale, f"k8s/ is stale ({', '.join(stale)}): run scripts/render-k8s and commit"


def test_custom_resources_match_their_upstream_schemas(rendered):
    schemas = validate_crs.load_schemas()
    kinds = set()
    for scenario, objs in rendered.items():
        assert validate_crs.validate(objs, schemas) == [], scenario
        kinds |= {o["kind"] for o in objs if (o["apiVersion"], o["kind"]) in schemas}
    assert kinds == {"ServiceMonitor", "PrometheusRule", "IngressRoute", "Application", "AppProject"}


@pytest.mark.parametrize("kind, mistake", [
    ("ServiceMonitor", lambda o: o["spec"]["endpoints"][0].update(bearerTokenSecrett={"key": "token"})),
    ("PrometheusRule", lambda o: o["spec"]["groups"][0]["rules"][0].update(expression="up")),
    ("IngressRoute", lambda o: o["spec"]["routes"][0]["services"][0].update(kind="Ingress")),
    ("Application", lambda o: o["spec"]["syncPolicy"]["automated"].update(selfheal=True)),
    # spec.sources and operation were elided to free objects in the old reduced copy
    ("Application", lambda o: o["spec"].update(sources=[{"repoURL": "x", "targetRevison": "main"}])),
    ("Application", lambda o: o.update(operation={"sync": {"prun": True}})),
    ("AppProject", lambda o: o["spec"].update(sourceRepo=["x"])),
])
def test_custom_resource_mistakes_are_caught(rendered, kind, mistake):
    schemas = validate_crs.load_schemas()
    obj = copy.deepcopy(next(o for objs in rendered.values() for o in find(objs, kind)))
    mistake(obj)
    assert validate_crs.validate([obj], schemas), f"a broken {kind} passed"


def test_strict_schema_walks_schemas_not_keywords():
    """Properties named like keywords stay properties; keyword data stays untouched."""
    schema = validate_crs.strict({
        "type": "object",
        "properties": {
            "description": {"type": "string", "description": "a property named description"},
            "format": {"type": "string", "format": "int64"},
            "properties": {"type": "object", "properties": {"a": {"type": "string"}}},
            "port": {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": True},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                     "properties": {"known": {"type": "string"}}},
            "list": {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "string"}}}},
        },
    })
    assert set(schema["properties"]) == {"description", "format", "properties", "port", "free", "list"}
    assert schema["properties"]["format"] == {"type": "string"}
    assert schema["properties"]["properties"]["additionalProperties"] is False
    check = lambda doc: list(validate_crs.jsonschema.Draft7Validator(schema).iter_errors(doc))
    assert not check({"description": "d", "format": "f", "properties": {"a": "b"}, "port": "http",
                      "free": {"anything": 1}, "list": [{"x": "y"}]})
    assert check({"properties": {"b": "c"}})    # strict inside a property named properties
    assert check({"list": [{"z": "y"}]})        # strict inside items
    assert check({"descripton": "typo"})        # strict at the top
    assert check({"port": 1.5})                 # int-or-string still typed


def test_vendored_crds_are_verbatim():
    """k8s/vendor/crds holds upstream files unedited: their hashes are in k8s/vendor/SHA256SUMS."""
    import hashlib
    vendor = validate_crs.VENDOR.parent
    sums = dict(reversed(line.split()) for line in (vendor / "SHA256SUMS").read_text().splitlines() if line)
    files = {f"crds/{p.name}" for p in validate_crs.VENDOR.glob("*.yaml")}
    assert files == set(sums), "every vendored CRD has a hash, every hash a file"
    for name, digest in sums.items():
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, f"{name} was edited"
