"""Resilience harness (scripts/resilience): a real gateway (audit log on, traffic file)
in front of a Triton of its own, under steady mixed traffic, through a soak and a
series of faults; writes a JSON report and prints a table.

Traffic: a fixed rate of KServe infers routed by the traffic file (the hot path),
model-ready calls, and requests with a forged token (refusals, 401 expected).
A client-visible error is an answer other than the one expected (a 5xx, a refusal
of a good request, a connection error). Every request the gateway acknowledged
(2xx) must be in the audit chain at the end, and the chain must verify.

Faults, each under the same traffic, with the errors it caused and the time from
the fault to the first success after which the traffic ran clean:
  triton_kill        SIGKILL Triton, restart it
  triton_stop        SIGSTOP Triton for a while (it accepts, answers nothing), SIGCONT
  bad_traffic_file   the traffic file replaced by an invalid one, then restored
  gateway_kill       SIGKILL the gateway, restart it on the same files
  audit_disk_full    the audit folder's file system (a small tmpfs) filled up, then
                     freed; the writer stops on an I/O error and the gateway refuses
                     requests until it is restarted (by design: no unaudited answers)
"""

from __future__ import annotations

import argparse
import errno
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from steady_load import SteadyLoad, audit_request_ids

ROOT = Path(__file__).resolve().parents[1]
BASE = int(os.environ.get("TEST_PORT_BASE", "18000"))
TRITON_PORT, GATEWAY_PORT = BASE + 350, BASE + 398
INFER = json.dumps({"inputs": [{"name": "INPUT0", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}).encode()
TRAFFIC = """routes:
  moderation:
    variants:
      - {name: a, model: identity_fp32, weight: 50}
      - {name: b, model: identity_fp32_copy, weight: 50}
"""


def log(text: str) -> None:
    print(f"[resilience] {text}", file=sys.stderr, flush=True)


@dataclass
class Outcome:
    at: float
    kind: str
    ok: bool
    status: int | None
    request_id: str | None


class Load(SteadyLoad):
    """Mixed traffic at a fixed rate from a few threads, each on its own keep-alive connection:
    KServe infers, model-ready calls and forged tokens (which must get 401)."""

    def __init__(self, token: str, rate: float):
        super().__init__(GATEWAY_PORT, rate)
        self.token = token

    def next_request(self, chooser):
        roll = chooser.random()
        kind = "infer" if roll < 0.7 else "ready" if roll < 0.9 else "forged"
        if kind == "infer":
            method, path, body, token = "POST", "/v2/models/moderation/infer", INFER, self.token
        elif kind == "ready":
            method, path, body, token = "GET", "/v2/models/identity_fp32/ready", None, self.token
        else:
            method, path, body, token = "GET", "/v2/models/identity_fp32/ready", None, self.token[:-4] + "AAAA"
        headers = {"Authorization": f"Bearer {token}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        return method, path, body, headers, kind

    def outcome(self, at, kind, status, headers, body):
        ok = status == (401 if kind == "forged" else 200)
        return Outcome(at, kind, ok, status, headers.get("x-request-id") if status and 200 <= status < 300 else None)


class Platform:
    """A Triton of its own and a gateway on files in `work`."""

    def __init__(self, work: Path, gateway_binary: str, audit_fs_bytes: int):
        self.work = work
        self.binary = gateway_binary
        self.gateway: subprocess.Popen | None = None
        self.config = work / "gateway.yaml"
        self.audit = work / "auditfs" / "audit"
        self.audit_fs_bytes = audit_fs_bytes
        self.tmpfs = False

    def triton(self, *args: str) -> None:
        subprocess.run([str(ROOT / "scripts" / "triton"), *args], check=True, capture_output=True, text=True)

    def start_triton(self) -> None:
        self.triton("start", "--name", "resilience", "--model-repo", str(self.work / "repo"), "--http-port", str(TRITON_PORT),
                    "--grpc-port", str(TRITON_PORT + 1), "--metrics-port", str(TRITON_PORT + 2), "--timeout", "180")

    def triton_pid(self) -> int:
        runtime = Path(os.environ.get("TRITON_RUNTIME", ROOT / ".triton"))
        return int((runtime / "run" / "resilience.pid").read_text())

    def prepare(self) -> None:
        repo = self.work / "repo"
        repo.mkdir()
        fixture = ROOT / "Tests" / "Fixtures" / "model-repo" / "identity_fp32"
        shutil.copytree(fixture, repo / "identity_fp32")
        copy = repo / "identity_fp32_copy"
        shutil.copytree(fixture, copy)
        config_text = (copy / "config.pbtxt").read_text()
        (copy / "config.pbtxt").write_text(config_text.replace('name: "identity_fp32"', 'name: "identity_fp32_copy"'))
        (self.work / "auditfs").mkdir()
        # A small file system of its own for the audit folder, so it can be filled.
        self.no_tmpfs_reason = "not root: mounting a tmpfs needs CAP_SYS_ADMIN"
        if os.geteuid() == 0:
            result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.audit_fs_bytes}", "tmpfs", str(self.work / "auditfs")],
                                    capture_output=True, text=True)
            self.tmpfs = result.returncode == 0
            self.no_tmpfs_reason = f"mount -t tmpfs failed: {result.stderr.strip()} (a container needs --cap-add SYS_ADMIN)"
        if not self.tmpfs:
            log(f"no tmpfs for the audit folder ({self.no_tmpfs_reason}): audit_disk_full is skipped")
        self.audit.mkdir()
        (self.work / "dev-secret").write_text(os.urandom(32).hex())
        (self.work / "audit-key").write_bytes(os.urandom(48))
        for secret in ("dev-secret", "audit-key"):
            (self.work / secret).chmod(0o600)
        (self.work / "traffic.yaml").write_text(TRAFFIC)
        self.config.write_text(f"""listen: {{host: 127.0.0.1, port: {GATEWAY_PORT}}}
triton: {{url: "http://127.0.0.1:{TRITON_PORT}"}}
timeouts: {{upstream_deadline: 2}}
auth:
  issuers: [moderation-dev]
  audiences: [moderation-gateway]
  keys: [{{kid: dev, algorithm: HS256, secret_file: dev-secret}}]
  roles:
    inference: {{permissions: [moderate, infer]}}
    admin: {{permissions: [moderate, infer, admin, metrics]}}
rate_limit: {{enabled: false}}
auth_failure_limit: {{enabled: false}}
routes: {{default: moderation, models: {{moderation: {{model: identity_fp32}}}}}}
readiness: {{models: [identity_fp32, identity_fp32_copy], cache_seconds: 0}}
traffic: {{file: traffic.yaml, poll_interval: 0.2}}
audit: {{enabled: true, path: auditfs/audit, key_file: audit-key}}
console: {{enabled: false}}
logging: {{level: warning, format: json}}
""")

    def start_gateway(self) -> None:
        log_file = open(self.work / "gateway.log", "ab")
        self.gateway = subprocess.Popen([self.binary, "serve", "--config", str(self.config)], stdout=log_file, stderr=subprocess.STDOUT)
        log_file.close()
        deadline = time.monotonic() + 120
        while not self.ready():
            if self.gateway.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the gateway did not become ready:\n" + (self.work / "gateway.log").read_text()[-2000:])
            time.sleep(0.2)

    def ready(self) -> bool:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", GATEWAY_PORT, timeout=5)
            connection.request("GET", "/readyz")
            return connection.getresponse().status == 200
        except OSError:
            return False

    def stop_gateway(self, kill: bool = False) -> None:
        if self.gateway is None:
            return
        self.gateway.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.gateway.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.gateway.kill()
            self.gateway.wait()
        self.gateway = None

    def token(self, role: str) -> str:
        return subprocess.run([self.binary, "token", "--config", str(self.config), "--sub", f"resilience-{role}", "--role", role],
                              check=True, capture_output=True, text=True).stdout.strip()

    def rss_and_fds(self) -> tuple[int, int] | None:
        if self.gateway is None:
            return None
        try:
            status = Path(f"/proc/{self.gateway.pid}/status").read_text()
            rss = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) * 1024
            return rss, len(os.listdir(f"/proc/{self.gateway.pid}/fd"))
        except (OSError, StopIteration):
            return None

    def cleanup(self, keep: bool = False) -> None:
        self.stop_gateway(kill=True)
        subprocess.run([str(ROOT / "scripts" / "triton"), "stop", "--name", "resilience"], capture_output=True)
        if keep and self.tmpfs and self.audit.is_dir():
            shutil.copytree(self.audit, self.work / "audit-kept", dirs_exist_ok=True)  # the tmpfs goes away
        if self.tmpfs:
            subprocess.run(["umount", "-l", str(self.work / "auditfs")], capture_output=True)


def clean_after(outcomes: list[Outcome], start: float) -> float | None:
    """Seconds from `start` to the first success after which every outcome is ok."""
    last_bad = max((o.at for o in outcomes if not o.ok), default=None)
    if last_bad is None:
        return 0.0
    later = [o.at for o in outcomes if o.ok and o.at > last_bad]
    return round(min(later) - start, 2) if later else None


def wait_all_threads_stopped(pid: int, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        states = []
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
                states.append(stat[stat.rindex(")") + 2])
            except OSError:
                pass
        if states and all(s == "T" for s in states):
            return True
        time.sleep(0.02)
    return False


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/resilience", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--soak-seconds", type=float, default=600, help="length of the soak (default 600)")
    parser.add_argument("--fault-seconds", type=float, default=20, help="traffic window around each fault (default 20)")
    parser.add_argument("--rate", type=float, default=40, help="requests per second (default 40)")
    parser.add_argument("--json", default=str(ROOT / "bench-results" / "resilience.json"), help="where the report goes")
    parser.add_argument("--gateway", default=os.environ.get("GATEWAY_BIN", str(ROOT / ".build" / "debug" / "moderation-gateway")))
    parser.add_argument("--keep", help="keep the work folder (files, logs, audit chain) here")
    args = parser.parse_args()
    if not Path(args.gateway).is_file():
        print(f"[resilience] error: no gateway build at {args.gateway}: run swift build", file=sys.stderr)
        return 1

    # SIGTERM (a CI timeout, kill) still stops the Triton and the gateway and unmounts.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="resilience-"))
    work.mkdir(parents=True, exist_ok=True)
    # Room for every record of the run (about 600 bytes each) four times over: the audit file
    # system fills up only when the audit_disk_full fault fills it.
    expected_records = args.rate * (args.soak_seconds + 6 * args.fault_seconds)
    platform = Platform(work, args.gateway, audit_fs_bytes=max(8 << 20, int(expected_records * 600 * 4)))
    report: dict = {"rate": args.rate, "soak": {}, "faults": [], "audit": {}}
    try:
        platform.prepare()
        platform.start_triton()
        platform.start_gateway()
        load = Load(token=platform.token("inference"), rate=args.rate)
        load.start()

        # --- soak ---------------------------------------------------------------------
        log(f"soak: {args.soak_seconds:.0f} s at {args.rate:.0f} requests/s")
        start = time.monotonic()
        samples = []
        while time.monotonic() - start < args.soak_seconds:
            time.sleep(1)
            sample = platform.rss_and_fds()
            if sample:
                samples.append((time.monotonic() - start, *sample))
        outcomes = load.window(start, time.monotonic())
        warm = [s for s in samples if s[0] >= args.soak_seconds * 0.2]
        head, tail = warm[: max(1, len(warm) // 10)], warm[-max(1, len(warm) // 10):]
        mean = lambda rows, i: sum(r[i] for r in rows) / len(rows)  # noqa: E731
        report["soak"] = {
            "seconds": round(args.soak_seconds), "requests": len(outcomes),
            "errors": sum(not o.ok for o in outcomes),
            "error_rate": round(sum(not o.ok for o in outcomes) / max(1, len(outcomes)), 5),
            "rss_mib_after_warmup": round(mean(head, 1) / 2**20, 1), "rss_mib_end": round(mean(tail, 1) / 2**20, 1),
            "rss_growth": round(mean(tail, 1) / mean(head, 1) - 1, 4),
            "fds_after_warmup": round(mean(head, 2)), "fds_end": round(mean(tail, 2)),
            "fd_growth": round(mean(tail, 2) / mean(head, 2) - 1, 4),
        }
        log(f"soak: {report['soak']}")

        # --- faults ---------------------------------------------------------------------
        def fault(name: str, inject, note: str = "") -> None:
            settle = args.fault_seconds / 4
            time.sleep(settle)
            start = time.monotonic()
            detail = inject() or note
            time.sleep(max(0.0, args.fault_seconds - settle - (time.monotonic() - start)))
            # The window goes on until the traffic has run clean for 2 s after the last error
            # (a loaded machine restarts slower), at most 60 s more.
            limit = time.monotonic() + 60
            while time.monotonic() < limit:
                recent = load.window(start, time.monotonic())
                last_bad = max((o.at for o in recent if not o.ok), default=start)
                if time.monotonic() - last_bad >= 2 and any(o.ok and o.at > last_bad for o in recent):
                    break
                time.sleep(0.2)
            end = time.monotonic()
            outcomes = load.window(start, end)
            entry = {"fault": name, "requests": len(outcomes), "errors": sum(not o.ok for o in outcomes),
                     "recovered_after_seconds": clean_after(outcomes, start), "note": detail}
            report["faults"].append(entry)
            log(f"{name}: {entry}")

        def triton_kill():
            os.killpg(platform.triton_pid(), signal.SIGKILL)  # with its Python stubs, as an OOM kill of the pod would
            time.sleep(1)
            platform.triton("stop", "--name", "resilience")
            platform.start_triton()

        def triton_stop():
            pid = platform.triton_pid()
            os.kill(pid, signal.SIGSTOP)
            try:
                stopped = wait_all_threads_stopped(pid)
                time.sleep(3)
            finally:
                os.kill(pid, signal.SIGCONT)
            return "every Triton thread stopped" if stopped else "Triton's threads did not all stop within 30 s"

        def bad_traffic_file():
            good = (work / "traffic.yaml").read_text()
            (work / "traffic.yaml.new").write_text("routes: [this is: not a traffic file\n")
            os.replace(work / "traffic.yaml.new", work / "traffic.yaml")
            time.sleep(2)
            (work / "traffic.yaml.new").write_text(good)
            os.replace(work / "traffic.yaml.new", work / "traffic.yaml")
            return "the gateway kept the last good file; no request saw the bad one"

        def gateway_kill():
            platform.stop_gateway(kill=True)
            platform.start_gateway()

        def audit_disk_full():
            filler = work / "auditfs" / "filler"
            # Unbuffered: a buffered writer keeps the part of a write that did not fit and raises
            # ENOSPC again when it is closed (seen in CI).
            descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                block = b"\0" * (1 << 16)
                while os.write(descriptor, block) > 0:
                    pass
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
            finally:
                os.close(descriptor)
            time.sleep(3)
            readiness = "ready" if platform.ready() else "not ready"
            filler.unlink()
            platform.stop_gateway()
            platform.start_gateway()
            return f"writer stopped on ENOSPC; /readyz while full: {readiness}; restarted after the space was freed"

        fault("triton_kill", triton_kill)
        fault("triton_stop", triton_stop)
        fault("bad_traffic_file", bad_traffic_file)
        fault("gateway_kill", gateway_kill)
        if platform.tmpfs:
            fault("audit_disk_full", audit_disk_full)
        else:
            report["faults"].append({"fault": "audit_disk_full", "skipped": platform.no_tmpfs_reason})

        load.stop()
        platform.stop_gateway()

        # --- the audit chain ---------------------------------------------------------------
        verify = subprocess.run([args.gateway, "audit", "verify", "--json", "--key-file", str(work / "audit-key"), str(platform.audit)],
                                capture_output=True, text=True)
        chains = json.loads(verify.stdout)["chains"]
        recorded = audit_request_ids(platform.audit)
        acknowledged = {o.request_id for o in load.outcomes if o.request_id}
        missing = sorted(acknowledged - recorded)
        report["audit"] = {"verify_exit": verify.returncode, "chains": [{k: c[k] for k in ("instance", "records", "status")} for c in chains],
                           "acknowledged": len(acknowledged), "missing": len(missing), "missing_examples": missing[:5]}
        log(f"audit: {report['audit']}")
    finally:
        platform.cleanup(keep=bool(args.keep))
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(table(report))
    never = [f["fault"] for f in report["faults"] if "skipped" not in f and f["recovered_after_seconds"] is None]
    if never:
        log(f"never ran clean again: {never}")
    failed = report["soak"]["error_rate"] >= 0.001 or report["audit"]["verify_exit"] != 0 or report["audit"]["missing"] or never
    return 1 if failed else 0


def table(report: dict) -> str:
    s = report["soak"]
    lines = ["| run | requests | client-visible errors | recovered after | note |", "| --- | --- | --- | --- | --- |",
             f"| soak {s['seconds']} s at {report['rate']:.0f}/s | {s['requests']} | {s['errors']} ({s['error_rate']:.3%}) | — | "
             f"RSS {s['rss_mib_after_warmup']} → {s['rss_mib_end']} MiB ({s['rss_growth']:+.1%}), fds {s['fds_after_warmup']} → {s['fds_end']} |"]
    for f in report["faults"]:
        if "skipped" in f:
            lines.append(f"| {f['fault']} | — | — | — | skipped: {f['skipped']} |")
        else:
            recovered = "never" if f["recovered_after_seconds"] is None else f"{f['recovered_after_seconds']} s"
            lines.append(f"| {f['fault']} | {f['requests']} | {f['errors']} | {recovered} | {f['note']} |")
    a = report["audit"]
    lines.append(f"| audit chain | {sum(c['records'] for c in a['chains'])} records | verify exit {a['verify_exit']} | — | "
                 f"{a['acknowledged']} acknowledged request ids, {a['missing']} missing from the chain |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
