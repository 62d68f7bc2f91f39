"""Policy of everything we deploy: every overlay, every chart scenario, Argo CD.

Each test names the rule an operator relies on; scripts/check-deploy runs them
after the schema checks (kubernetes-validate, vendored CRDs) and checkov.
"""
from __future__ import annotations

import re

import pytest
import yaml

from conftest import OVERLAYS, ROOT, find, pod_labels, pod_spec

TRAFFIC_CONFIGMAP = "moderation-platform-traffic"
GATEWAY = "moderation-platform-gateway"
TRITON = "moderation-platform-triton"


def containers(spec: dict) -> list[dict]:
    return spec.get("initContainers", []) + spec["containers"]


def matches(selector: dict, labels: dict) -> bool:
    """Label selector semantics for matchLabels and the four matchExpressions operators."""
    if not all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        value, op = labels.get(expr["key"]), expr["operator"]
        if (op == "In" and value not in expr["values"]) or (op == "NotIn" and value in expr["values"]) \
                or (op == "Exists" and value is None) or (op == "DoesNotExist" and value is not None):
            return False
    return True


# --- Pod Security "restricted", resources, identity --------------------------

def test_pods_meet_pod_security_restricted(workloads):
    for scenario, obj in workloads:
        spec = pod_spec(obj)
        where = f"{scenario} {obj['kind']}/{obj['metadata']['name']}"
        psc = spec.get("securityContext", {})
        assert psc.get("runAsNonRoot") is True, where
        assert psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        assert not any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), where
        assert not any("hostPath" in v for v in spec.get("volumes", [])), where
        assert spec.get("automountServiceAccountToken") is False, where
        for c in containers(spec):
            sc = c.get("securityContext", {})
            assert sc.get("allowPrivilegeEscalation") is False, f"{where} {c['name']}"
            assert sc.get("readOnlyRootFilesystem") is True, f"{where} {c['name']}"
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], f"{where} {c['name']}"
            assert not sc.get("capabilities", {}).get("add"), f"{where} {c['name']}"
            assert not sc.get("privileged"), f"{where} {c['name']}"
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c.get("resources", {}).get(part, {})), f"{where} {c['name']} {part}"


def test_namespace_enforces_restricted(rendered):
    for scenario, objs in rendered.items():
        for ns in find(objs, "Namespace"):
            labels = ns["metadata"]["labels"]
            for mode in ("enforce", "audit", "warn"):
                assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted", scenario


def test_service_accounts_mount_no_token(rendered):
    for scenario, objs in rendered.items():
        for sa in find(objs, "ServiceAccount"):
            assert sa.get("automountServiceAccountToken") is False, f"{scenario} {sa['metadata']['name']}"


def test_no_latest_or_untagged_images(workloads):
    for scenario, obj in workloads:
        for c in containers(pod_spec(obj)):
            image = c["image"]
            assert "@sha256:" in image or re.search(r":[A-Za-z0-9_][A-Za-z0-9_.-]*$", image.split("/")[-1]), image
            assert not image.endswith(":latest"), f"{scenario}: {image}"


# --- Selectors, ports, probes --------------------------------------------------

def test_workload_selectors_match_their_pod_labels(workloads):
    for scenario, obj in workloads:
        if obj["kind"] != "Pod":
            assert matches(obj["spec"]["selector"], pod_labels(obj)), f"{scenario} {obj['metadata']['name']}"


def test_services_pdbs_and_network_policies_select_pods(rendered):
    for scenario, objs in rendered.items():
        pods = [pod_labels(o) for o in objs if o["kind"] in ("Deployment", "StatefulSet", "Pod")]
        for svc in find(objs, "Service"):
            assert any(matches({"matchLabels": svc["spec"]["selector"]}, p) for p in pods), \
                f"{scenario}: Service {svc['metadata']['name']} selects no pod"
        for pdb in find(objs, "PodDisruptionBudget"):
            assert any(matches(pdb["spec"]["selector"], p) for p in pods), f"{scenario}: {pdb['metadata']['name']}"
        for np in find(objs, "NetworkPolicy"):
            sel = np["spec"]["podSelector"]
            if sel and "connection-test" not in np["metadata"]["name"]:
                assert any(matches(sel, p) for p in pods), f"{scenario}: NetworkPolicy {np['metadata']['name']}"


def test_probe_and_service_ports_exist(rendered):
    for scenario, objs in rendered.items():
        workloads = [o for o in objs if o["kind"] in ("Deployment", "StatefulSet")]
        for obj in workloads:
            for c in pod_spec(obj)["containers"]:
                names = {p["name"] for p in c.get("ports", [])}
                numbers = {p["containerPort"] for p in c.get("ports", [])}
                for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                    port = c[probe]["httpGet"]["port"]
                    assert port in names | numbers, f"{scenario} {c['name']} {probe} port {port}"
        for svc in find(objs, "Service"):
            backends = [c for o in workloads if matches({"matchLabels": svc["spec"]["selector"]}, pod_labels(o))
                        for c in pod_spec(o)["containers"]]
            offered = {p.get("name") for c in backends for p in c.get("ports", [])} | \
                      {p["containerPort"] for c in backends for p in c.get("ports", [])}
            for port in svc["spec"]["ports"]:
                assert port["targetPort"] in offered, f"{scenario}: {svc['metadata']['name']} → {port['targetPort']}"
        for sm in find(objs, "ServiceMonitor"):
            services = [s for s in find(objs, "Service") if matches(sm["spec"]["selector"], s["metadata"]["labels"])]
            assert services, f"{scenario}: ServiceMonitor {sm['metadata']['name']} selects no Service"
            for endpoint in sm["spec"]["endpoints"]:
                assert all(endpoint["port"] in {p["name"] for p in s["spec"]["ports"]} for s in services)


def test_hpa_targets_exist(rendered):
    for scenario, objs in rendered.items():
        for hpa in find(objs, "HorizontalPodAutoscaler"):
            ref = hpa["spec"]["scaleTargetRef"]
            assert find(objs, ref["kind"], ref["name"]), f"{scenario}: {hpa['metadata']['name']}"


# --- Network policies ------------------------------------------------------------

def test_every_pod_is_covered_by_network_policies(rendered):
    for scenario, objs in rendered.items():
        policies = find(objs, "NetworkPolicy")
        if not policies:
            continue  # the minimal scenario turns them off on purpose
        assert any(p["spec"]["podSelector"] == {} and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
                   and not p["spec"].get("ingress") and not p["spec"].get("egress") for p in policies), \
            f"{scenario}: no default deny"
        for obj in objs:
            if obj["kind"] in ("Deployment", "StatefulSet", "Pod"):
                own = [p for p in policies if p["spec"]["podSelector"] and matches(p["spec"]["podSelector"], pod_labels(obj))]
                assert own, f"{scenario}: {obj['metadata']['name']} has no NetworkPolicy of its own"


def test_only_the_gateway_reaches_triton_http_and_only_prometheus_metrics(rendered):
    objs = rendered["overlay:prod-gpu"]
    policy = find(objs, "NetworkPolicy", TRITON)[0]
    gateway_pods = pod_labels(find(objs, "StatefulSet", GATEWAY)[0])
    rules = {tuple(p["port"] for p in r["ports"]): r["from"] for r in policy["spec"]["ingress"]}
    assert set(rules) == {(8000,), (8002,)}, "Triton admits exactly http and metrics"
    assert len(rules[(8000,)]) == 1 and matches(rules[(8000,)][0]["podSelector"], gateway_pods)
    assert "namespaceSelector" not in rules[(8000,)][0], "the gateway peer is in Triton's own namespace"
    assert all("namespaceSelector" in peer for peer in rules[(8002,)])
    assert [p["port"] for r in policy["spec"]["egress"] for p in r["ports"]] == [53, 53], "Triton's only egress is DNS"


# --- Gateway: StatefulSet, audit, traffic file ----------------------------------

@pytest.mark.parametrize("scenario", [f"overlay:{o}" for o in OVERLAYS] + ["chart:cpu", "chart:gpu", "chart:minimal"])
def test_traffic_configmap_is_stable_and_mounted_as_a_directory(rendered, scenario):
    objs = rendered[scenario]
    assert find(objs, "ConfigMap", TRAFFIC_CONFIGMAP), "stable name, no hash suffix"
    sts = find(objs, "StatefulSet", GATEWAY)[0]
    spec = pod_spec(sts)
    volume = next(v for v in spec["volumes"] if v.get("configMap", {}).get("name") == TRAFFIC_CONFIGMAP)
    mounts = [m for c in spec["containers"] for m in c["volumeMounts"] if m["name"] == volume["name"]]
    assert mounts and all("subPath" not in m for m in mounts), "a subPath mount never sees updates"
    assert not any("subPath" in m for c in spec["containers"] for m in c["volumeMounts"])
    config = yaml.safe_load(find(objs, "ConfigMap", GATEWAY)[0]["data"]["gateway.yaml"])
    assert config["traffic"]["file"] == f"{mounts[0]['mountPath']}/traffic.yaml"
    annotations = sts["spec"]["template"]["metadata"].get("annotations", {})
    assert list(k for k in annotations if k.startswith("checksum/")) == ["checksum/config"], \
        "the traffic file must not roll the pods"


@pytest.mark.parametrize("scenario", ["overlay:staging", "overlay:prod-gpu", "chart:cpu", "chart:minimal"])
def test_gateway_is_a_statefulset_with_an_audit_claim_per_replica(rendered, scenario):
    objs = rendered[scenario]
    sts = find(objs, "StatefulSet", GATEWAY)[0]
    hpa = find(objs, "HorizontalPodAutoscaler", GATEWAY)
    assert (hpa[0]["spec"]["minReplicas"] if hpa else sts["spec"]["replicas"]) >= 2
    if hpa:
        assert "replicas" not in sts["spec"], "the HPA owns the replica count"
    assert [t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]] == ["audit"]
    spec = pod_spec(sts)
    mounts = {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    key_volume = next(v for v in spec["volumes"] if v["name"] == "audit-key")
    assert "secret" in key_volume
    assert not mounts["audit-key"].startswith(mounts["audit"].rstrip("/") + "/"), "chain key outside the audit volume"
    config = yaml.safe_load(find(objs, "ConfigMap", GATEWAY)[0]["data"]["gateway.yaml"])
    assert config["audit"]["path"] == mounts["audit"]
    assert config["audit"]["key_file"].startswith(mounts["audit-key"] + "/")
    assert find(objs, "PodDisruptionBudget", GATEWAY)


def test_gateway_probes_and_shutdown(rendered):
    for scenario, objs in rendered.items():
        for sts in find(objs, "StatefulSet", GATEWAY):
            spec = pod_spec(sts)
            c = spec["containers"][0]
            assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
            sleep = int(c["lifecycle"]["preStop"]["exec"]["command"][-1])
            config = yaml.safe_load(find(objs, "ConfigMap", GATEWAY)[0]["data"]["gateway.yaml"])
            assert spec["terminationGracePeriodSeconds"] > sleep + config["timeouts"]["shutdown_grace"], scenario


def test_failed_auth_limiter_is_off_behind_the_ingress(rendered):
    # The limiter keys on the peer address; behind the ingress every client has the
    # ingress's, so one client's bad tokens would make everyone else's new tokens 429.
    for scenario in ("overlay:prod-gpu", "chart:monitoring"):
        config = yaml.safe_load(find(rendered[scenario], "ConfigMap", GATEWAY)[0]["data"]["gateway.yaml"])
        assert config["auth_failure_limit"]["enabled"] is False, scenario


def test_metrics_need_a_token_and_servicemonitor_presents_one(rendered):
    for scenario in ("overlay:prod-gpu", "chart:monitoring"):
        objs = rendered[scenario]
        config = yaml.safe_load(find(objs, "ConfigMap", GATEWAY)[0]["data"]["gateway.yaml"])
        assert config["metrics"]["require_auth"] is True
        # The scrape token's role opens /metrics and nothing else.
        assert config["auth"]["roles"]["metrics"]["permissions"] == ["metrics"], scenario
        endpoint = find(objs, "ServiceMonitor", GATEWAY)[0]["spec"]["endpoints"][0]
        assert endpoint["authorization"]["type"] == "Bearer"
        assert endpoint["authorization"]["credentials"]["name"] == "moderation-metrics-token"
        for monitor in find(objs, "ServiceMonitor") + find(objs, "PrometheusRule"):
            assert "release" in monitor["metadata"]["labels"], "Prometheus selects by its release label"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_readiness_covers_every_variant_of_the_overlay_traffic_file(rendered, overlay):
    objs = rendered[f"overlay:{overlay}"]
    traffic = yaml.safe_load(find(objs, "ConfigMap", TRAFFIC_CONFIGMAP)[0]["data"]["traffic.yaml"])
    assert traffic == yaml.safe_load((ROOT / "k8s" / "overlays" / overlay / "traffic.yaml").read_text())
    config = yaml.safe_load(find(objs, "ConfigMap", GATEWAY)[0]["data"]["gateway.yaml"])
    models = {v["model"] for route in traffic["routes"].values() for v in route["variants"]}
    assert models <= set(config["readiness"]["models"])


# --- Triton -----------------------------------------------------------------------

def triton(objs):
    deployment = find(objs, "Deployment", TRITON)[0]
    return deployment, pod_spec(deployment)


def test_triton_probes_flags_memory_volumes_and_grace(rendered):
    for scenario, objs in rendered.items():
        if not find(objs, "Deployment", TRITON):
            continue
        _, spec = triton(objs)
        c = spec["containers"][0]
        args = c["args"]
        for flag in ("--strict-readiness=true", "--exit-on-error=true", "--disable-auto-complete-config"):
            assert flag in args, f"{scenario}: {flag}"
        assert any(a.startswith("--model-control-mode=") for a in args)
        assert any(a.startswith("--cache-config=local,size=") for a in args)
        exit_timeout = int(next(a for a in args if a.startswith("--exit-timeout-secs=")).split("=")[1])
        sleep = int(c["lifecycle"]["preStop"]["exec"]["command"][-1])
        assert spec["terminationGracePeriodSeconds"] > exit_timeout + sleep, scenario
        assert c["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
        assert c["startupProbe"]["failureThreshold"] * c["startupProbe"]["periodSeconds"] >= 300, "models need minutes"
        assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
        assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
        assert {p["containerPort"] for p in c["ports"]} == {8000, 8001, 8002}
        volumes = {v["name"]: v for v in spec["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        for path in ("/dev/shm", "/tmp"):
            assert volumes[mounts[path]]["emptyDir"]["medium"] == "Memory", f"{scenario} {path}"
        repo = next(a for a in args if a.startswith("--model-repository=")).split("=")[1]
        if repo in mounts:
            assert next(m for m in c["volumeMounts"] if m["mountPath"] == repo).get("readOnly") is True


def forward_pattern() -> str:
    """The header-forward pattern scripts/triton gives a local Triton (the one the tests check)."""
    text = (ROOT / "scripts/triton").read_text()
    return re.search(r"^HEADER_FORWARD_PATTERN='([^']+)'$", text, re.M).group(1)


def test_triton_hands_the_trace_headers_to_models_everywhere(rendered):
    """traceparent and X-Request-Id reach the models in every deployment, as they do in the
    tested Triton: the same pattern in each overlay, each chart scenario and the image."""
    pattern = forward_pattern()
    for scenario, objs in rendered.items():
        if not find(objs, "Deployment", TRITON):
            continue
        args = triton(objs)[1]["containers"][0]["args"]
        assert f"--http-header-forward-pattern={pattern}" in args, scenario
    entrypoint = (ROOT / "docker/triton/entrypoint.sh").read_text()
    escaped = pattern.replace("$", "\\$")  # inside the entry point's double quotes
    assert "TRITON_HTTP_HEADER_FORWARD_PATTERN:-" + escaped + "}" in entrypoint


@pytest.mark.parametrize("scenario", ["overlay:prod-gpu", "chart:gpu"])
def test_gpu_triton(rendered, scenario):
    deployment, spec = triton(rendered[scenario])
    c = spec["containers"][0]
    assert c["image"].startswith("moderation-platform/triton-gpu:")
    assert "--model-config-name=gpu" in c["args"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] >= 1
    assert any(t["key"] == "nvidia.com/gpu" for t in spec["tolerations"])
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["key"] == "nvidia.com/gpu.present"
    assert "replicas" not in deployment["spec"], "the HPA owns Triton's replica count"


@pytest.mark.parametrize("overlay", ["dev", "staging"])
def test_cpu_overlays_run_the_cpu_image(rendered, overlay):
    _, spec = triton(rendered[f"overlay:{overlay}"])
    assert spec["containers"][0]["image"].startswith("moderation-platform/triton-cpu:")
    assert "nvidia.com/gpu" not in spec["containers"][0]["resources"]["limits"]


def test_dev_runs_one_replica_of_each(rendered):
    objs = rendered["overlay:dev"]
    assert find(objs, "StatefulSet", GATEWAY)[0]["spec"]["replicas"] == 1
    assert find(objs, "Deployment", TRITON)[0]["spec"]["replicas"] == 1
    assert not find(objs, "HorizontalPodAutoscaler")


def test_triton_hpa_metric_is_the_adapter_rule(rendered):
    adapter = yaml.safe_load((ROOT / "k8s" / "overlays" / "prod-gpu" / "prometheus-adapter-values.yaml").read_text())
    served = {rule["name"]["as"] for rule in adapter["rules"]["custom"]}
    hpa = find(rendered["overlay:prod-gpu"], "HorizontalPodAutoscaler", TRITON)[0]
    names = {m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"}
    assert names and names <= served, f"HPA asks for {names}, the adapter serves {served}"


# --- Argo CD ------------------------------------------------------------------------

def test_argocd_applications_sync_every_overlay_automatically(rendered):
    apps = find(rendered["argocd"], "Application")
    assert sorted(a["spec"]["source"]["path"] for a in apps) == sorted(f"k8s/overlays/{o}" for o in OVERLAYS)
    project = find(rendered["argocd"], "AppProject")[0]
    for app in apps:
        assert app["spec"]["project"] == project["metadata"]["name"]
        assert app["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
        assert {"server": app["spec"]["destination"]["server"], "namespace": "moderation"} in project["spec"]["destinations"]


def test_sync_waves_and_custom_resources_skip_dry_run(rendered):
    order = {"Namespace": -3, "ConfigMap": -2, "Deployment": -1, "StatefulSet": 0, "ServiceMonitor": 1, "PrometheusRule": 1}
    for overlay in OVERLAYS:
        for obj in rendered[f"overlay:{overlay}"]:
            annotations = obj["metadata"].get("annotations", {})
            if obj["kind"] in order and obj["metadata"]["name"] != TRAFFIC_CONFIGMAP:
                assert int(annotations["argocd.argoproj.io/sync-wave"]) == order[obj["kind"]], obj["metadata"]["name"]
            if "." in obj["apiVersion"].split("/")[0] and obj["apiVersion"].split("/")[0].endswith((".coreos.com", "traefik.io")):
                assert "SkipDryRunOnMissingResource=true" in annotations["argocd.argoproj.io/sync-options"]
