"""The deployment, live: two gateway containers behind HAProxy (round robin, as the
Service balances the StatefulSet), one Triton container, and a real Prometheus
loading the project's alert rules and scraping all three with the metrics token.
The gateways run the image and the configuration the StatefulSet runs (the
rendered ConfigMap from k8s/base; only ports, keys and the Triton address
differ), share one volume for the traffic file and one for the canary state, and
keep one audit volume each.

What it shows, in this order (each step prints its figures; --json writes them):
  consistency   every subject gets the same variant from both replicas; an edit of
                the traffic file is followed by both (time to follow)
  drill-good    a new version of text_classifier is added to the repository,
                loaded through the gateway's admin passthrough (explicit model
                control), put on a 5 % canary and promoted by the canary's steps;
                clients see no failed request
  drill-bad     a deliberately slow version, same path: one replica's canary
                rolls it back, the other follows through the shared state file;
                clients see no failed request
  failover      `docker kill` of one gateway under load: errors, time until the
                balancer moved on; every request a client got a 2xx for is in one
                of the two audit chains, and both chains verify
  dashboard     every query of the Grafana dashboard returns series
  alert         Triton stopped: ModerationTritonNotReady pending, firing, and
                resolved once Triton is back (the rules' `for:` durations divided
                by --for-divisor, the expressions as shipped)
  restore       scripts/backup of each replica, the volumes destroyed,
                scripts/restore: the chains verify against their last anchors and
                the canary decisions survive

--short (what scripts/test runs) uses short canary windows and fault windows;
the default is the full drill with the README's figures.
Ports: TEST_PORT_BASE (default 18000) +410 Triton (+411, +412), +420 and +421 the
gateways, +430 HAProxy (+431 its stats), +440 Prometheus.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools" / "deploy"))
from dashboard_rules import expressions, with_values  # noqa: E402
from steady_load import SteadyLoad, audit_request_ids  # noqa: E402

BASE = int(os.environ.get("TEST_PORT_BASE", "18000"))
TRITON_PORT = BASE + 410
GATEWAY_PORTS = (BASE + 420, BASE + 421)
LB_PORT = BASE + 430
PROMETHEUS_PORT = BASE + 440
DOCKER = os.environ.get("DOCKER", "docker")
NAME = f"topology-{BASE}"
MODEL = "text_classifier"
INFER = json.dumps({"inputs": [{"name": "text", "shape": [1, 1], "datatype": "BYTES", "data": ["see you at the meeting tomorrow"]}]}).encode()
ROUTE_TEMPLATE = "/v2/models/" + MODEL + "/infer"


def log(text: str) -> None:
    print(f"[topology] {text}", file=sys.stderr, flush=True)


class Failure(Exception):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Failure(message)


def wait_until(predicate, seconds: float, what: str, interval: float = 0.25):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise Failure(f"{what} within {seconds:g} s")


def request(port: int, method: str, path: str, body: bytes | None = None, token: str | None = None,
            timeout: float = 30, content_type: str = "application/json") -> tuple[int | None, dict, bytes]:
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if body is not None:
        headers["Content-Type"] = content_type
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    except (OSError, http.client.HTTPException):
        return None, {}, b""
    finally:
        connection.close()


def mint(secret: bytes, claims: dict) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "dev"}, separators=(",", ":")).encode())
    payload = b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"


# --- model versions the drills add ---------------------------------------------------

def slow_model(path: Path, size: int = 512, multiplications: int = 24) -> None:
    """A text_classifier version with the right signature that answers (0.5, 0.5) after
    a chain of matrix products on random data (RandomUniform is never folded away at
    load): what a regressed build looks like to the canary, a slower p95."""
    import onnx
    from onnx import TensorProto, helper
    nodes = [helper.make_node("RandomUniform", [], ["r"], shape=[size, size], dtype=TensorProto.FLOAT)]
    previous = "r"
    for index in range(multiplications):
        nodes.append(helper.make_node("MatMul", [previous, "r"], [f"m{index}"]))
        previous = f"m{index}"
    nodes += [
        helper.make_node("ReduceSum", [previous], ["sum"], keepdims=0),
        helper.make_node("Mul", ["sum", "zero"], ["nothing"]),
        helper.make_node("Shape", ["text"], ["text_shape"]),
        helper.make_node("Slice", ["text_shape", "start", "end"], ["batch"]),
        helper.make_node("Concat", ["batch", "two"], ["out_shape"], axis=0),
        helper.make_node("Expand", ["half", "out_shape"], ["halves"]),
        helper.make_node("Add", ["halves", "nothing"], ["probabilities"]),
    ]
    initializers = [
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
        helper.make_tensor("half", TensorProto.FLOAT, [1, 2], [0.5, 0.5]),
        helper.make_tensor("start", TensorProto.INT64, [1], [0]),
        helper.make_tensor("end", TensorProto.INT64, [1], [1]),
        helper.make_tensor("two", TensorProto.INT64, [1], [2]),
    ]
    graph = helper.make_graph(nodes, "text_classifier_regressed",
                              [helper.make_tensor_value_info("text", TensorProto.STRING, [None, 1])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


WARMUP = """model_warmup [
  {
    name: "drill_warmup"
    batch_size: 1
    inputs { key: "text" value: { data_type: TYPE_STRING dims: [ 1 ] zero_data: true } }
    count: 8
  }
]
"""


def release_config(config: Path, versions: list[int]) -> None:
    """What the operator's release changes in config.pbtxt: the versions served, and a
    warm-up so a version is ready only after its first (slow) inferences, which
    would otherwise be the canary's first latency samples."""
    text = re.sub(r"(?m)^version_policy:.*\n", "", config.read_text())
    text = text.replace('backend: "onnxruntime"\n',
                        f'backend: "onnxruntime"\nversion_policy: {{ specific: {{ versions: [ {", ".join(map(str, versions))} ] }} }}\n', 1)
    if "model_warmup" not in text:
        text += WARMUP
    config.write_text(text)


# --- client load ----------------------------------------------------------------------

@dataclass
class Outcome:
    at: float
    status: int | None
    variant: str | None
    version: str | None
    request_id: str | None
    problem: str | None = None


class Load(SteadyLoad):
    """KServe inferences of text_classifier through the balancer at a fixed rate, each
    from a subject of the pool, on one keep-alive connection per thread; a thread that
    fell behind (a stall) does not send what it missed in a burst."""

    def __init__(self, tokens: list[str], rate: float, threads: int = 4):
        super().__init__(LB_PORT, rate, threads, max_lag=threads / rate, join_timeout=60)
        self.tokens = tokens

    def next_request(self, chooser):
        headers = {"Authorization": f"Bearer {chooser.choice(self.tokens)}", "Content-Type": "application/json"}
        return "POST", ROUTE_TEMPLATE, INFER, headers, None

    def outcome(self, at, tag, status, headers, body):
        ok = status is not None and 200 <= status < 300
        return Outcome(at, status, headers.get("x-moderation-variant"), headers.get("x-model-version"),
                       headers.get("x-request-id") if ok else None, None if ok else body[:200].decode(errors="replace"))


def failed(outcomes: list[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if o.status is None or not 200 <= o.status < 300]


# --- the platform ---------------------------------------------------------------------

class Topology:
    def __init__(self, work: Path, gateway_image: str, triton_image: str):
        self.work = work
        self.gateway_image = gateway_image
        self.triton_image = triton_image
        self.repo = work / "repo"
        self.config_dir = work / "config"
        self.keys = work / "keys"
        self.traffic_dir = work / "traffic"
        self.canary_dir = work / "canary"
        self.audits = [work / "audit-0", work / "audit-1"]
        self.processes: dict[str, subprocess.Popen] = {}
        self.triton_running = False

    # files ---------------------------------------------------------------------------
    def prepare(self) -> None:
        shutil.copytree(ROOT / "triton-model-repo", self.repo, ignore=shutil.ignore_patterns("__pycache__"))
        for folder in (self.config_dir, self.keys, self.traffic_dir, self.canary_dir, *self.audits):
            folder.mkdir(parents=True)
        self.secret = os.urandom(32).hex().encode()
        (self.keys / "dev-secret").write_bytes(self.secret)
        (self.keys / "audit-key").write_bytes(os.urandom(48))
        rendered = yaml.safe_load((ROOT / "k8s/base/gateway-configmap.yaml").read_text())["data"]["gateway.yaml"]
        self.base_config = yaml.safe_load(rendered)
        for index, port in enumerate(GATEWAY_PORTS):
            config = json.loads(json.dumps(self.base_config))
            config["listen"] = {**config["listen"], "host": "127.0.0.1", "port": port}
            config["triton"] = {**config.get("triton", {}), "url": f"http://127.0.0.1:{TRITON_PORT}"}
            config["auth"]["issuers"] = ["moderation-dev"]
            config["auth"]["keys"] = [{"kid": "dev", "algorithm": "HS256", "secret_file": "/etc/moderation-gateway/keys/dev-secret"}]
            config["audit"]["key_file"] = "/etc/moderation-gateway/keys/audit-key"
            # The load comes from one address (the balancer's clients): the per-peer
            # limit is the Service's concern, not what these checks are about.
            config["rate_limit"] = {"enabled": False}
            config["console"] = {"enabled": False}
            (self.config_dir / f"gateway-{index}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        # The volumes belong to the image's user (scripts/restore gives what it restores the
        # owner of the folder it lands in); secrets are owner-only. Without the right to
        # chown, the containers run as the caller instead.
        self.user: list[str] = []
        try:
            for path in (self.traffic_dir, self.canary_dir, *self.audits, self.keys, *self.keys.iterdir()):
                os.chown(path, 10001, 10001)
        except PermissionError:
            self.user = ["--user", f"{os.getuid()}:{os.getgid()}"]
        for path in self.keys.iterdir():
            path.chmod(0o600)
        self.config_path = lambda i: f"/etc/moderation-gateway/config/gateway-{i}.yaml"

    def write_traffic(self, text: str) -> str:
        staging = self.traffic_dir / ".traffic.yaml.new"
        staging.write_text(text)
        os.chmod(staging, 0o644)
        os.replace(staging, self.traffic_dir / "traffic.yaml")
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    # processes -----------------------------------------------------------------------
    def triton(self, *args: str) -> None:
        result = subprocess.run([str(ROOT / "scripts" / "triton"), *args], capture_output=True, text=True)
        if result.returncode != 0:
            raise Failure(f"scripts/triton {' '.join(args)} failed:\n{result.stdout[-2000:]}{result.stderr[-3000:]}")

    def start_triton(self) -> None:
        loads = []
        for model in sorted(p.name for p in self.repo.iterdir() if (p / "config.pbtxt").is_file()):
            loads += ["--load", model]
        self.triton("start", "--container", "--image", self.triton_image, "--name", NAME, "--model-repo", str(self.repo),
                    "--model-control", "explicit", *loads, "--http-port", str(TRITON_PORT), "--grpc-port", str(TRITON_PORT + 1),
                    "--metrics-port", str(TRITON_PORT + 2), "--timeout", "300")
        self.triton_running = True

    def stop_triton(self) -> None:
        subprocess.run([str(ROOT / "scripts" / "triton"), "stop", "--name", NAME], capture_output=True)
        self.triton_running = False

    def gateway_container(self, index: int) -> str:
        return f"{NAME}-gateway-{index}"

    def start_gateway(self, index: int, wait: bool = True) -> None:
        subprocess.run([DOCKER, "rm", "-f", self.gateway_container(index)], capture_output=True)
        # HOSTNAME is the replica's name (instance_id: audit file names, canary decisions),
        # the pod name of the StatefulSet in Kubernetes.
        run = [DOCKER, "run", "--detach", "--name", self.gateway_container(index), "--network", "host", "--read-only",
               "--tmpfs", "/tmp", "--env", f"HOSTNAME=moderation-platform-gateway-{index}", *self.user,
               "--volume", f"{self.config_dir}:/etc/moderation-gateway/config:ro",
               "--volume", f"{self.keys}:/etc/moderation-gateway/keys:ro",
               "--volume", f"{self.traffic_dir}:/etc/moderation-gateway/traffic:ro",
               "--volume", f"{self.canary_dir}:/var/lib/moderation/canary",
               "--volume", f"{self.audits[index]}:/var/lib/moderation/audit",
               self.gateway_image, "serve", "--config", self.config_path(index)]
        result = subprocess.run(run, capture_output=True, text=True)
        if result.returncode != 0:
            raise Failure(f"docker run of gateway {index} failed: {result.stderr}")
        if wait:
            wait_until(lambda: request(GATEWAY_PORTS[index], "GET", "/readyz")[0] == 200, 120,
                       f"gateway {index} was not ready:\n{self.gateway_logs(index)}")

    def gateway_logs(self, index: int) -> str:
        result = subprocess.run([DOCKER, "logs", "--tail", "40", self.gateway_container(index)], capture_output=True, text=True)
        return result.stdout + result.stderr

    def stop_gateway(self, index: int, kill: bool = False) -> None:
        name = self.gateway_container(index)
        subprocess.run([DOCKER, "kill", name] if kill else [DOCKER, "stop", "-t", "20", name], capture_output=True)
        with open(self.work / f"gateway-{index}.log", "ab") as saved:
            subprocess.run([DOCKER, "logs", name], stdout=saved, stderr=subprocess.STDOUT)
        subprocess.run([DOCKER, "rm", "-f", name], capture_output=True)

    def gateway_cli(self, *args: str, mounts: list[str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([DOCKER, "run", "--rm", "--network", "none", "--read-only", *(self.user or ["--user", "10001:10001"]),
                               "--volume", f"{self.config_dir}:/etc/moderation-gateway/config:ro",
                               "--volume", f"{self.keys}:/etc/moderation-gateway/keys:ro",
                               "--volume", f"{self.traffic_dir}:/etc/moderation-gateway/traffic:ro",
                               "--volume", f"{self.canary_dir}:/var/lib/moderation/canary:ro",
                               *(mounts or ["--volume", f"{self.audits[0]}:/var/lib/moderation/audit:ro"]),
                               self.gateway_image, *args], capture_output=True, text=True)

    def start_balancer(self) -> None:
        servers = "\n".join(f"  server gateway-{i} 127.0.0.1:{port} check inter 500ms fall 2 rise 2"
                            for i, port in enumerate(GATEWAY_PORTS))
        (self.work / "haproxy.cfg").write_text(f"""global
  maxconn 4096
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  # A connection refused by a replica that is gone is tried on the other one; a
  # request that reached a replica is never sent twice.
  retries 2
  option redispatch
  retry-on conn-failure
frontend moderation
  bind 127.0.0.1:{LB_PORT}
  default_backend gateways
frontend stats
  bind 127.0.0.1:{LB_PORT + 1}
  stats enable
  stats uri /stats
backend gateways
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
{servers}
""")
        self.spawn("haproxy", ["haproxy", "-db", "-f", str(self.work / "haproxy.cfg")])
        wait_until(lambda: request(LB_PORT, "GET", "/healthz")[0] == 200, 30, "HAProxy did not answer")
        self.alive("haproxy")
        self.wait_balanced()

    def balancer_states(self) -> dict[str, str]:
        """Each gateway's state in HAProxy (its stats CSV): UP once two health checks passed."""
        status, _, body = request(LB_PORT + 1, "GET", "/stats;csv")
        if status != 200:
            return {}
        lines = body.decode().splitlines()
        columns = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(columns, line.split(","))) for line in lines[1:] if line]
        return {row["svname"]: row["status"] for row in rows if row.get("pxname") == "gateways" and row["svname"].startswith("gateway-")}

    def wait_balanced(self) -> None:
        """A replica that answers /readyz is not yet in the balancer: wait until HAProxy
        sends to both, as a client would only after the Service has the pod again."""
        wait_until(lambda: list(self.balancer_states().values()) == ["UP", "UP"], 30,
                   f"HAProxy did not mark both gateways up: {self.balancer_states()}")

    def start_prometheus(self, metrics_token: str, divisor: float) -> None:
        rules = yaml.safe_load((ROOT / "k8s/base/prometheusrule.yaml").read_text())["spec"]["groups"]
        for group in rules:
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = f"{max(1, round(duration_seconds(rule['for']) / divisor))}s"
        (self.work / "rules.yaml").write_text(yaml.safe_dump({"groups": rules}, sort_keys=False, allow_unicode=True))
        (self.work / "metrics-token").write_text(metrics_token)
        prometheus = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(self.work / "rules.yaml")],
            "scrape_configs": [
                {"job_name": "moderation-platform-gateway",
                 "authorization": {"type": "Bearer", "credentials_file": str(self.work / "metrics-token")},
                 "static_configs": [{"targets": [f"127.0.0.1:{port}"], "labels": {"namespace": "moderation", "pod": f"gateway-{i}"}}
                                    for i, port in enumerate(GATEWAY_PORTS)]},
                {"job_name": "moderation-platform-triton",
                 "static_configs": [{"targets": [f"127.0.0.1:{TRITON_PORT + 2}"], "labels": {"namespace": "moderation", "pod": "triton-0"}}]},
            ],
        }
        (self.work / "prometheus.yml").write_text(yaml.safe_dump(prometheus, sort_keys=False))
        check_config = subprocess.run(["promtool", "check", "config", str(self.work / "prometheus.yml")], capture_output=True, text=True)
        if check_config.returncode != 0:
            raise Failure(f"promtool check config: {check_config.stdout}{check_config.stderr}")
        self.spawn("prometheus", ["prometheus", f"--config.file={self.work / 'prometheus.yml'}",
                                  f"--storage.tsdb.path={self.work / 'prometheus-data'}",
                                  f"--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}", "--storage.tsdb.retention.time=1d"])
        wait_until(lambda: request(PROMETHEUS_PORT, "GET", "/-/ready")[0] == 200, 60, "Prometheus was not ready")
        self.alive("prometheus")

    def spawn(self, name: str, command: list[str]) -> None:
        output = open(self.work / f"{name}.log", "ab")
        self.processes[name] = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        output.close()

    def prometheus(self, path: str, **query) -> dict:
        status, _, body = request(PROMETHEUS_PORT, "GET", f"/api/v1/{path}?{urllib.parse.urlencode(query)}")
        check(status == 200, f"Prometheus /api/v1/{path} answered {status}: {body[:300]!r}")
        return json.loads(body)["data"]

    def alive(self, name: str) -> None:
        """A stale HAProxy or Prometheus of an earlier, killed run would answer for one that
        failed to bind: the one started here must still run."""
        process = self.processes[name]
        check(process.poll() is None, f"{name} exited ({process.returncode}): {(self.work / f'{name}.log').read_text()[-1500:]}")

    def cleanup(self) -> None:
        """Every step on its own, signals held off: one failing step or a second Ctrl-C must
        not leave the others' containers and processes running."""
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
        steps = [lambda i=i: self.stop_gateway(i, kill=True) for i in range(2)] + [self.stop_triton]
        steps += [lambda p=p: stop_process(p) for p in self.processes.values()]
        try:
            for step in steps:
                try:
                    step()
                except Exception as error:  # noqa: BLE001 - report and go on with the rest
                    log(f"cleanup step failed: {error}")
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def duration_seconds(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)([smh])", text))


# --- the checks -----------------------------------------------------------------------

def traffic_file(variants: list[dict], canary: dict | None = None) -> str:
    """The shipped traffic file (its moderation route) plus a text_classifier route."""
    document = yaml.safe_load((ROOT / "config" / "traffic.yaml").read_text())
    document["routes"][MODEL] = {"stickiness": "subject", "variants": variants, **({"canary": canary} if canary else {})}
    return yaml.safe_dump(document, sort_keys=False)


def admin_traffic(port: int, token: str) -> dict:
    status, _, body = request(port, "GET", "/admin/traffic", token=token)
    check(status == 200, f"GET /admin/traffic on {port}: {status} {body[:300]!r}")
    return json.loads(body)


def route_canary(port: int, token: str, route: str) -> dict | None:
    document = admin_traffic(port, token)
    for entry in document.get("routes", []):
        if entry.get("name") == route:
            return entry.get("canary")
    return None


def revision_of(port: int, token: str) -> str:
    return str(admin_traffic(port, token).get("revision", ""))


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/topology", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="short windows (what scripts/test runs, under 5 minutes)")
    parser.add_argument("--up", action="store_true",
                        help="start the topology, print its addresses and tokens, and keep it up until Ctrl-C (no checks)")
    parser.add_argument("--rate", type=float, default=80, help="client requests per second through the balancer (default 80)")
    parser.add_argument("--subjects", type=int, default=400, help="distinct token subjects of the client load (default 400)")
    parser.add_argument("--json", default=str(ROOT / "bench-results" / "topology.json"),
                        help="write the figures here (default bench-results/topology.json)")
    parser.add_argument("--keep", help="keep the work folder (configs, logs, audit chains) here")
    parser.add_argument("--gateway-image", default=os.environ.get("GATEWAY_IMAGE"))
    parser.add_argument("--triton-image", default=os.environ.get("TRITON_IMAGE"))
    args = parser.parse_args()
    for tool in ("haproxy", "prometheus", "promtool"):
        if shutil.which(tool) is None:
            log(f"error: {tool} is not installed (scripts/bootstrap installs it)")
            return 1
    if not (args.gateway_image and args.triton_image):
        log("error: --gateway-image and --triton-image (or GATEWAY_IMAGE, TRITON_IMAGE) name the images (scripts/topology finds them)")
        return 1
    window = 5 if args.short else 30
    divisor = 60.0  # 15m -> 15s: the rules' `for:` in seconds instead of minutes

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # Under the checkout: in CI the Docker daemon is the runner's and sees the checkout at the same path.
    parent = ROOT / ".build-images"
    parent.mkdir(exist_ok=True)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="topology-", dir=parent))
    if args.keep and work.exists() and any(work.iterdir()):
        log(f"error: --keep {work} is not empty")
        return 1
    work.mkdir(parents=True, exist_ok=True)
    topology = Topology(work, args.gateway_image, args.triton_image)
    report: dict = {"short": args.short, "rate": args.rate}
    load: Load | None = None
    started = time.monotonic()
    try:
        topology.prepare()
        t0 = time.monotonic()
        topology.start_triton()
        report["triton_start_seconds"] = round(time.monotonic() - t0, 1)
        log(f"Triton container ready in {report['triton_start_seconds']} s")
        topology.write_traffic(traffic_file([{"name": "a", "model": MODEL, "version": "1", "weight": 50},
                                             {"name": "b", "model": MODEL, "version": "1", "weight": 50}]))
        minted = topology.gateway_cli("token", "--config", topology.config_path(0), "--role", "admin", "--sub", "topology-admin")
        check(minted.returncode == 0, f"token: {minted.stderr}")
        admin = minted.stdout.strip()
        claims = json.loads(base64.urlsafe_b64decode(admin.split(".")[1] + "=="))
        claims["exp"] = int(time.time()) + 4 * 3600

        def token(subject: str, roles: list[str]) -> str:
            return mint(topology.secret, {**claims, "sub": subject, "roles": roles})
        admin = token("topology-admin", ["admin"])
        metrics_token = token("prometheus", ["metrics"])
        clients = [token(f"subject-{i:04d}", ["inference"]) for i in range(args.subjects)]
        for index in range(2):
            topology.start_gateway(index)
        topology.start_balancer()
        topology.start_prometheus(metrics_token, divisor)
        log("two gateways, HAProxy and Prometheus are up")
        if args.up:
            print(f"""
  balancer (the Service)  http://127.0.0.1:{LB_PORT}
  gateways                http://127.0.0.1:{GATEWAY_PORTS[0]}  http://127.0.0.1:{GATEWAY_PORTS[1]}
  Triton                  http://127.0.0.1:{TRITON_PORT} (explicit model control; repository {topology.repo})
  Prometheus              http://127.0.0.1:{PROMETHEUS_PORT}/alerts
  traffic file            {topology.traffic_dir / 'traffic.yaml'} (edit it; both replicas follow)
  admin token             {admin}
  client token            {clients[0]}

  curl -s -H "Authorization: Bearer {clients[0]}" \\
    -H "Content-Type: application/json" http://127.0.0.1:{LB_PORT}{ROUTE_TEMPLATE} \\
    -d '{INFER.decode()}'
  Ctrl-C stops everything.
""", flush=True)
            signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
            while True:
                time.sleep(3600)

        # --- Prometheus scrapes every target ------------------------------------------
        def all_up():
            targets = topology.prometheus("targets")["activeTargets"]
            return len(targets) == 3 and all(t["health"] == "up" for t in targets) and targets
        targets = wait_until(all_up, 30, "Prometheus did not scrape all three targets")
        report["prometheus_targets"] = sorted(f"{t['labels']['job']}/{t['labels'].get('pod')}" for t in targets)
        log(f"Prometheus scrapes {report['prometheus_targets']}")

        # --- consistency ----------------------------------------------------------------
        def variants_by_replica(subjects: int) -> list[tuple[str, str]]:
            pairs = []
            for i in range(subjects):
                answers = []
                for port in GATEWAY_PORTS:
                    status, headers, body = request(port, "POST", ROUTE_TEMPLATE, INFER, clients[i])
                    check(status == 200, f"inference through {port}: {status} {body[:300]!r}")
                    answers.append(headers.get("x-moderation-variant", ""))
                pairs.append((answers[0], answers[1]))
            return pairs
        subjects = 40 if args.short else 200
        pairs = variants_by_replica(subjects)
        disagreements = [i for i, (a, b) in enumerate(pairs) if a != b]
        check(not disagreements, f"replicas disagree on subjects {disagreements[:5]}")
        check({a for a, _ in pairs} == {"a", "b"}, f"a 50/50 split gave only {set(pairs)}")
        revision = topology.write_traffic(traffic_file([{"name": "a", "model": MODEL, "version": "1", "weight": 10},
                                                        {"name": "b", "model": MODEL, "version": "1", "weight": 90}]))
        t0 = time.monotonic()
        followed = []
        for port in GATEWAY_PORTS:
            wait_until(lambda: revision_of(port, admin).startswith(revision), 30, f"gateway on {port} did not follow the traffic edit")
            followed.append(round(time.monotonic() - t0, 2))
        pairs = variants_by_replica(subjects)
        check(all(a == b for a, b in pairs), "replicas disagree after the edit")
        report["consistency"] = {"subjects": subjects, "disagreements": 0, "edit_followed_after_seconds": followed,
                                 "b_share_after_edit": round(sum(a == "b" for a, _ in pairs) / subjects, 2)}
        log(f"consistency: {report['consistency']}")

        # --- model update drills under client load -----------------------------------
        load = Load(clients, args.rate)
        load.start()

        def drill(version: int, baseline_version: int, bad: bool) -> dict:
            t_start = time.monotonic()
            folder = topology.repo / MODEL / str(version)
            folder.mkdir()
            if bad:
                slow_model(folder / "model.onnx")
            else:
                shutil.copy2(topology.repo / MODEL / "1" / "model.onnx", folder / "model.onnx")
            versions = sorted({1, baseline_version, version})
            release_config(topology.repo / MODEL / "config.pbtxt", versions)
            status, _, body = request(LB_PORT, "POST", f"/v2/repository/models/{MODEL}/load", b"{}", admin, timeout=120)
            check(status == 200, f"load of {MODEL} version {version} through the gateway: {status} {body[:500]!r}")
            status, _, _ = request(LB_PORT, "GET", f"/v2/models/{MODEL}/versions/{version}/ready", token=admin)
            check(status == 200, f"version {version} is not ready after its load ({status})")
            loaded_after = round(time.monotonic() - t_start, 1)
            # A p95 of a few samples is their maximum: one scheduling hiccup of a busy machine
            # would fail the window at the default 1.5; the bad version is ten times slower.
            canary = {"candidate": "next", "baseline": "current", "window_seconds": window, "min_requests": 10,
                      "max_error_rate": 0.02, "max_p95_latency_ratio": 3, "failure_limit": 1 if bad else 3,
                      "promotion_steps": [5, 25, 50, 100]}
            revision = topology.write_traffic(traffic_file([
                {"name": "current", "model": MODEL, "version": str(baseline_version), "weight": 0},
                {"name": "next", "model": MODEL, "version": str(version), "weight": 100}], canary))
            t_canary = time.monotonic()
            for port in GATEWAY_PORTS:
                wait_until(lambda: revision_of(port, admin).startswith(revision), 30, f"gateway on {port} did not take the canary route")
            goal = "rolled_back" if bad else "promoted"
            phases: dict[int, float] = {}

            def reached():
                for port in GATEWAY_PORTS:
                    state = route_canary(port, admin, MODEL) or {}
                    if state.get("phase") == goal and port not in phases:
                        phases[port] = time.monotonic()
                    elif state.get("phase") not in (goal, "promoting", "observing"):
                        raise Failure(f"canary on {port} went to {state.get('phase')}, not {goal}: {json.dumps(state)[:800]}")
                return len(phases) == 2
            wait_until(reached, 600 if not args.short else 120, f"the canary did not reach {goal} on both replicas", interval=0.2)
            states = [route_canary(port, admin, MODEL) or {} for port in GATEWAY_PORTS]
            decided_by = {s.get("decidedBy") or s.get("decided_by") for s in states}
            first, last = min(phases.values()), max(phases.values())
            time.sleep(1)
            outcomes = load.window(t_start)
            served = {(o.variant, o.version) for o in outcomes if o.status == 200}
            entry = {"version": version, "goal": goal, "loaded_after_seconds": loaded_after,
                     "canary_seconds": round(first - t_canary, 1), "other_replica_followed_after_seconds": round(last - first, 2),
                     "decided_by": sorted(d for d in decided_by if d), "duration_seconds": round(last - t_start, 1),
                     "client_requests": len(outcomes), "client_failures": len(failed(outcomes)),
                     "served": sorted(f"{v}/v{n}" for v, n in served if v)}
            check(entry["client_failures"] == 0,
                  f"clients saw {len(failed(outcomes))} failures during the drill: {[(o.status, o.problem) for o in failed(outcomes)][:3]}")
            check(("next", str(version)) in served, f"version {version} never served a client: {served}")
            if bad:
                check(all(s.get("candidateWeightInForce", s.get("candidate_weight_in_force")) == 0 for s in states),
                      f"the rolled-back candidate still has weight: {states}")
            return entry

        report["drill_good"] = drill(2, 1, bad=False)
        log(f"model update drill: {report['drill_good']}")
        report["drill_bad"] = drill(3, 2, bad=True)
        log(f"bad version drill: {report['drill_bad']}")

        # --- failover ---------------------------------------------------------------------
        time.sleep(2)
        t_kill = time.monotonic()
        topology.stop_gateway(1, kill=True)
        time.sleep(5 if args.short else 20)
        after = load.window(t_kill)
        errors = failed(after)
        last_error = max((o.at for o in errors), default=t_kill)
        check(len([o for o in after if o.at > last_error]) >= args.rate, "the surviving replica did not keep serving")
        report["failover"] = {"requests": len(after), "errors": len(errors),
                              "error_statuses": sorted({str(o.status) for o in errors}),
                              "moved_on_after_seconds": round(last_error - t_kill, 2) if errors else 0.0}
        log(f"failover: {report['failover']}")
        topology.start_gateway(1)
        topology.wait_balanced()
        load.stop()

        # --- audit chains -----------------------------------------------------------------
        for index in range(2):
            topology.stop_gateway(index)
        report["audit"] = verify_audit(topology, load)
        log(f"audit: {report['audit']}")

        # --- restore (the gateways run again afterwards) ----------------------------------
        report["restore"] = backup_destroy_restore(topology, admin)
        log(f"restore: {report['restore']}")

        # --- the Triton-not-ready alert, with what the dashboard's other panels show ------
        image = (ROOT / "Tests/Fixtures/images/gateway-sample.jpg").read_bytes()
        for _ in range(3):  # decisions per second
            status, _, body = request(LB_PORT, "POST", "/v1/moderate", image, clients[0], timeout=120, content_type="image/jpeg")
            check(status == 200, f"/v1/moderate through the balancer: {status} {body[:300]!r}")
        for _ in range(3):  # authentication failures
            request(LB_PORT, "POST", ROUTE_TEMPLATE, INFER, clients[0][:-4] + "AAAA")
        # Straight to a replica: through the balancer the outage requests may all meet HAProxy's
        # own 503 (both replicas already marked down), and the upstream-error panels stay empty.
        report["alert"] = triton_alert(topology, outage_traffic=lambda: request(GATEWAY_PORTS[0], "POST", ROUTE_TEMPLATE, INFER, clients[1]))
        log(f"alert: {report['alert']}")

        # --- the dashboard's queries ------------------------------------------------------
        dashboard = json.loads((ROOT / "helm/moderation-platform/files/dashboards/moderation-platform.json").read_text())
        queries = expressions(dashboard)

        empty: list[str] = []

        def all_with_series() -> bool:
            empty[:] = [title for title, expr in queries if not topology.prometheus("query", query=with_values(expr))["result"]]
            return not empty
        try:
            wait_until(all_with_series, 30, "some dashboard queries return no series")
        except Failure:
            raise Failure(f"dashboard queries without series: {empty}")
        report["dashboard"] = {"queries": len(queries), "with_series": len(queries)}
        log(f"dashboard: {report['dashboard']}")
    except Failure as failure:
        log(f"FAILED: {failure}")
        report["failure"] = str(failure)
    finally:
        if load is not None:
            load.stop()
        topology.cleanup()
        report["seconds"] = round(time.monotonic() - started, 1)
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        if "failure" in report:
            # CI keeps .build-images/*.log: the gateways', HAProxy's and Prometheus's logs.
            for source in work.glob("*.log"):
                shutil.copy2(source, parent / f"{work.name}-{source.name}")
            log(f"logs kept as {parent}/{work.name}-*.log")
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    log(f"{'failed' if 'failure' in report else 'passed'} in {report['seconds']} s")
    return 1 if "failure" in report else 0


def verify_audit(topology: Topology, load: Load) -> dict:
    chains = []
    recorded: set[str] = set()
    for index, audit in enumerate(topology.audits):
        verify = topology.gateway_cli("audit", "verify", "--json", "--key-file", "/etc/moderation-gateway/keys/audit-key",
                                      "/var/lib/moderation/audit", mounts=["--volume", f"{audit}:/var/lib/moderation/audit:ro"])
        check(verify.returncode == 0, f"audit verify of replica {index}: {verify.stdout[-1500:]}{verify.stderr[-1500:]}")
        for chain in json.loads(verify.stdout)["chains"]:
            chains.append({"replica": index, "records": chain["records"], "status": chain["status"]})
        recorded |= audit_request_ids(audit)
    acknowledged = {o.request_id for o in load.outcomes if o.request_id}
    missing = sorted(acknowledged - recorded)
    check(not missing, f"{len(missing)} acknowledged requests are in neither audit chain: {missing[:5]}")
    return {"chains": chains, "acknowledged": len(acknowledged), "missing": 0}


def backup_destroy_restore(topology: Topology, admin: str) -> dict:
    """Both replicas stopped: back each up, destroy the volumes, restore, start, compare."""
    backups = topology.work / "backups"
    backups.mkdir()
    before_state = (topology.canary_dir / "canary-state.json").read_bytes()
    t0 = time.monotonic()
    for index in range(2):
        result = subprocess.run([str(ROOT / "scripts" / "backup"), "--out", str(backups / f"replica-{index}.tar.gz"),
                                 "--config", str(topology.config_dir / f"gateway-{index}.yaml"),
                                 "--key-file", str(topology.keys / "audit-key"), "--audit", str(topology.audits[index]),
                                 "--traffic", str(topology.traffic_dir / "traffic.yaml"),
                                 "--canary-state", str(topology.canary_dir / "canary-state.json")],
                                capture_output=True, text=True)
        check(result.returncode == 0, f"scripts/backup of replica {index}: {result.stdout[-1500:]}{result.stderr[-1500:]}")
    backup_seconds = round(time.monotonic() - t0, 1)
    for folder in (*topology.audits, topology.canary_dir, topology.traffic_dir):
        for child in folder.iterdir():
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
    # Replica 0's archive restores the shared traffic file and canary state; replica 1's
    # copies of them go to a scratch folder and must be the same files.
    scratch = topology.work / "replica-1-shared"
    scratch.mkdir()
    t0 = time.monotonic()
    for index in range(2):
        shared = topology if index == 0 else None
        traffic = topology.traffic_dir / "traffic.yaml" if shared else scratch / "traffic.yaml"
        state = topology.canary_dir / "canary-state.json" if shared else scratch / "canary-state.json"
        result = subprocess.run([str(ROOT / "scripts" / "restore"), str(backups / f"replica-{index}.tar.gz"),
                                 "--config", str(topology.config_dir / f"gateway-{index}.yaml"),
                                 "--key-file", str(topology.keys / "audit-key"), "--audit", str(topology.audits[index]),
                                 "--traffic", str(traffic), "--canary-state", str(state)],
                                capture_output=True, text=True)
        check(result.returncode == 0, f"scripts/restore of replica {index}: {result.stdout[-1500:]}{result.stderr[-1500:]}")
    restore_seconds = round(time.monotonic() - t0, 1)
    check((topology.canary_dir / "canary-state.json").read_bytes() == before_state, "the canary state differs after the restore")
    check((scratch / "canary-state.json").read_bytes() == before_state, "replica 1's archive holds another canary state")
    check((scratch / "traffic.yaml").read_bytes() == (topology.traffic_dir / "traffic.yaml").read_bytes(),
          "replica 1's archive holds another traffic file")
    for index, audit in enumerate(topology.audits):
        verify = topology.gateway_cli("audit", "verify", "--key-file", "/etc/moderation-gateway/keys/audit-key",
                                      "/var/lib/moderation/audit", mounts=["--volume", f"{audit}:/var/lib/moderation/audit:ro"])
        check(verify.returncode == 0, f"the restored chain of replica {index} does not verify: {verify.stdout[-1500:]}{verify.stderr[-1500:]}")
    for index in range(2):
        topology.start_gateway(index)
    topology.wait_balanced()
    states = [route_canary(port, admin, MODEL) or {} for port in GATEWAY_PORTS]
    check(all(s.get("phase") == "rolled_back" for s in states), f"the rolled-back canary did not survive the restore: {states}")
    return {"backup_seconds": backup_seconds, "restore_seconds": restore_seconds, "chains_verify": True,
            "canary_decision_survived": True}


def triton_alert(topology: Topology, outage_traffic) -> dict:
    def alert_state():
        for alert in topology.prometheus("alerts")["alerts"]:
            if alert["labels"].get("alertname") == "ModerationTritonNotReady":
                return alert["state"]
        return None
    check(alert_state() is None, "ModerationTritonNotReady is active before Triton stopped")
    t0 = time.monotonic()
    topology.stop_triton()
    for _ in range(5):  # what clients see meanwhile: 503s, upstream errors on the dashboard
        outage_traffic()
    wait_until(lambda: alert_state() == "pending", 60, "ModerationTritonNotReady did not go pending")
    pending = round(time.monotonic() - t0, 1)
    wait_until(lambda: alert_state() == "firing", 120, "ModerationTritonNotReady did not fire")
    firing = round(time.monotonic() - t0, 1)
    t1 = time.monotonic()
    topology.start_triton()
    restarted = round(time.monotonic() - t1, 1)
    wait_until(lambda: alert_state() is None, 60, "ModerationTritonNotReady did not resolve after Triton came back")
    return {"pending_after_seconds": pending, "firing_after_seconds": firing,
            "triton_restart_seconds": restarted, "resolved_after_restart_seconds": round(time.monotonic() - t1 - restarted, 1)}


if __name__ == "__main__":
    sys.exit(main())
