"""Driver of scripts/bench-gateway (see that script for what it measures)."""
import argparse
import base64
import concurrent.futures
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

from benchlib import model_stats, process_cpu, run_perf_analyzer

TRITON_PORT = int(os.environ.get("BENCH_TRITON_PORT", "8330"))
GATEWAY_PORT = int(os.environ.get("BENCH_GATEWAY_PORT", "8340"))
TRITON_NAME = os.environ.get("BENCH_TRITON_NAME", "bench-gateway")
AUDITED_GATEWAY_PORT = GATEWAY_PORT + 2
NGINX_PORT = GATEWAY_PORT + 4


def log(msg):
    print(f"[bench-gateway] {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)


def write_secret(path, data):
    """Owner-only, as the gateway requires of secret files."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def wait_http(url, seconds):
    end = time.time() + seconds
    while time.time() < end:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return True
        except Exception:
            pass
        time.sleep(0.3)
    return False


def perf(binary, url, concurrency, seconds, token=None):
    row, _ = run_perf_analyzer(binary, url, "identity_fp32", "INPUT0:16", concurrency, seconds,
                           ["-H", f"Authorization: Bearer {token}"] if token else [])
    return {
        "throughput": float(row["Inferences/Second"]),
        "p50_us": float(row["p50 latency"]),
        "p99_us": float(row["p99 latency"]),
    }


def triton_requests():
    """Successful inferences Triton has counted for the benchmark's models."""
    counts = [model_stats(f"127.0.0.1:{TRITON_PORT}", m) for m in ("identity_fp32", "identity_fp32_batched")]
    return sum(c["count"] for c in counts if c)


def perf_with_cpu(perf_analyzer, url, concurrency, seconds, pids, token=None):
    """perf() plus the CPU the given processes (the proxy in the path) spent per request,
    counting the requests that reached Triton while perf_analyzer ran."""
    before, count_before = process_cpu(*pids), triton_requests()
    result = perf(perf_analyzer, url, concurrency, seconds, token)
    used, count = process_cpu(*pids) - before, triton_requests() - count_before
    result["proxy_cpu_us_per_request"] = used / max(count, 1) * 1e6
    return result


def nginx_reference(work, perf_analyzer, seconds):
    """A bare reverse proxy (nginx, keep-alive upstream, no auth, no audit) in the same
    place as the gateway: what any HTTP hop costs on this machine. None without nginx."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if not nginx:
        log("nginx not installed (apt-get install nginx-light): skipping the reference proxy run")
        return None
    folder = os.path.join(work, "nginx")
    os.makedirs(folder, exist_ok=True)
    conf = os.path.join(folder, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""worker_processes 1;
daemon off;
error_log {folder}/error.log warn;
pid {folder}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {folder}/body;
  proxy_temp_path {folder}/proxy;
  fastcgi_temp_path {folder}/fastcgi;
  uwsgi_temp_path {folder}/uwsgi;
  scgi_temp_path {folder}/scgi;
  upstream triton {{ server 127.0.0.1:{TRITON_PORT}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{NGINX_PORT};
    location / {{ proxy_pass http://triton; proxy_http_version 1.1; proxy_set_header Connection ""; }}
  }}
}}
""")
    proxy = subprocess.Popen([nginx, "-c", conf, "-e", os.path.join(folder, "error.log")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        if not wait_http(f"http://127.0.0.1:{NGINX_PORT}/v2/health/ready", 20):
            log("nginx did not start: skipping the reference proxy run")
            return None
        workers = subprocess.run(["pgrep", "-P", str(proxy.pid)], capture_output=True, text=True).stdout.split()
        log("perf_analyzer identity_fp32 concurrency 16: direct (again, for the nginx reference)")
        direct = perf(perf_analyzer, f"127.0.0.1:{TRITON_PORT}", 16, seconds)
        log("perf_analyzer identity_fp32 concurrency 16: through nginx")
        via = perf_with_cpu(perf_analyzer, f"127.0.0.1:{NGINX_PORT}", 16, seconds, [proxy.pid] + [int(w) for w in workers])
        return {"direct_c16": direct, "nginx_c16": via, "ratio_throughput_c16": via["throughput"] / direct["throughput"]}
    finally:
        # nginx runs in its own session: stop the master and its workers together.
        try:
            os.killpg(proxy.pid, signal.SIGTERM)
            proxy.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proxy.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def hey(url, token, image, concurrency, seconds):
    out = run(["hey", "-z", f"{seconds}s", "-c", str(concurrency), "-m", "POST", "-T", "image/jpeg",
               "-H", f"Authorization: Bearer {token}", "-D", image, url]).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = float(re.search(r"50%+ in ([\d.]+) secs", out).group(1)) * 1e6
    p99 = float(re.search(r"99%+ in ([\d.]+) secs", out).group(1)) * 1e6
    codes = dict(re.findall(r"\[(\d{3})\]\s+(\d+) responses", out))
    return {"throughput": rps, "p50_us": p50, "p99_us": p99, "status_codes": codes}


def audited_run(results, work, base_config, gateway_bin, perf_analyzer, seconds):
    """A second gateway with the audit log on (fsync per group commit) and a 95/5
    split on the route perf_analyzer calls; direct Triton is measured again right
    before it so the ratio compares like with like."""
    traffic = os.path.join(work, "traffic.yaml")
    with open(traffic, "w") as f:
        f.write("""routes:
  identity_fp32:
    stickiness: none
    variants:
      - {name: baseline, model: identity_fp32, weight: 95}
      - {name: candidate, model: identity_fp32_batched, weight: 5}
""")
    write_secret(os.path.join(work, "audit-key"), os.urandom(32))
    config = os.path.join(work, "gateway-audited.yaml")
    with open(base_config) as f:
        text = f.read()
    text = text.replace(f"port: {GATEWAY_PORT}", f"port: {AUDITED_GATEWAY_PORT}")
    text = text.replace("permissions: [moderate, infer]", "permissions: [moderate, infer, admin]")
    text += "audit: {enabled: true, path: audit, key_file: audit-key}\ntraffic: {file: traffic.yaml}\ninstance_id: bench\n"
    with open(config, "w") as f:
        f.write(text)
    gateway = subprocess.Popen([gateway_bin, "serve", "--config", config], stdout=subprocess.DEVNULL,
                               stderr=open(os.path.join(work, "gateway-audited.log"), "w"))
    try:
        if not wait_http(f"http://127.0.0.1:{AUDITED_GATEWAY_PORT}/healthz", 60):
            raise SystemExit("audited gateway did not start (see its log)")
        token = run([gateway_bin, "token", "--config", config, "--sub", "bench", "--role", "bench"]).stdout.strip()

        def admin(path):
            req = urllib.request.Request(f"http://127.0.0.1:{AUDITED_GATEWAY_PORT}{path}",
                                         headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.load(r)

        before = admin("/admin/audit")
        log("perf_analyzer identity_fp32 concurrency 16: direct (again, for the audited run)")
        direct = perf(perf_analyzer, f"127.0.0.1:{TRITON_PORT}", 16, seconds)
        log("perf_analyzer identity_fp32 concurrency 16: gateway with audit log and 95/5 split")
        via = perf_with_cpu(perf_analyzer, f"127.0.0.1:{AUDITED_GATEWAY_PORT}", 16, seconds, [gateway.pid], token)
        after = admin("/admin/audit")
        records = after["records"] - before["records"]
        fsyncs = max(1, after["fsyncs"] - before["fsyncs"])
        fsync_seconds = after["fsyncSecondsTotal"] - before["fsyncSecondsTotal"]
        lines = []
        for name in sorted(os.listdir(os.path.join(work, "audit"))):
            with open(os.path.join(work, "audit", name)) as f:
                lines += [json.loads(line) for line in f if line.strip()]
        counts = {}
        for line in lines:
            if line.get("type") == "request" and line.get("variant"):
                counts[line["variant"]] = counts.get(line["variant"], 0) + 1
        verify = subprocess.run([gateway_bin, "audit", "verify", "--key-file", os.path.join(work, "audit-key"),
                                 os.path.join(work, "audit")], capture_output=True, text=True)
        results["audited"] = {
            "direct_c16": direct, "gateway_c16": via,
            "ratio_throughput_c16": via["throughput"] / direct["throughput"],
            "added_p50_us_c16": via["p50_us"] - direct["p50_us"],
            "added_p99_us_c16": via["p99_us"] - direct["p99_us"],
            "records": records, "fsyncs": fsyncs, "records_per_fsync": records / fsyncs,
            "mean_fsync_ms": fsync_seconds / fsyncs * 1000, "max_fsync_ms": after["fsyncSecondsMax"] * 1000,
            "variant_counts": counts, "audit_verify_exit": verify.returncode,
        }
    finally:
        gateway.send_signal(signal.SIGTERM)
        try:
            gateway.wait(timeout=20)
        except subprocess.TimeoutExpired:
            gateway.kill()


FLOOD_GATEWAY_PORT = GATEWAY_PORT + 6


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def wrk(url, header, connections, seconds):
    """wrk on one thread with a fixed Authorization header: (requests answered, requests/s)."""
    out = run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-H", f"Authorization: Bearer {header}", url]).stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))
    return total, float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def libjwt_verify_us(token, pem, calls=200):
    """What one RS256 check cost through libjwt 1.10 (the path main's gateway took for every
    token it had not accepted before): jwt_decode with the PEM, which OpenSSL parses each
    call. Timed through ctypes in this run, as the anchor for the gateway figures."""
    try:
        lib = ctypes.CDLL("libjwt.so.0")
    except OSError:
        return None
    lib.jwt_decode.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int]
    lib.jwt_free.argtypes = [ctypes.c_void_p]
    handle = ctypes.c_void_p()
    start = time.process_time()
    for _ in range(calls):
        if lib.jwt_decode(ctypes.byref(handle), token.encode(), pem, len(pem)) == 0:
            lib.jwt_free(handle)
    return (time.process_time() - start) / calls * 1e6


def forged_token_flood(results, work, gateway_bin, seconds, baseline_bin=None):
    """Forged RS256 tokens from one peer (wrk, 16 keep-alive connections, the same
    forged token every time; only accepted tokens are remembered, so each needs a
    check): the gateway's CPU per request with the failed-authentication limit off
    (every token verified: the cost of one RS256 check with the key parsed at load) and
    on (the default limit), libjwt's per-call cost measured in the same run as the
    anchor, and what legitimate clients (valid token, 4 connections) get alone and
    during the flood. `baseline_bin` (a build of main) adds its figure with the limit
    off, for the same measurement before the change."""
    key = os.path.join(work, "flood-rsa.key")
    run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key])
    run(["openssl", "pkey", "-in", key, "-pubout", "-out", os.path.join(work, "flood-rsa.pub")])
    with open(os.path.join(work, "flood-rsa.pub"), "rb") as f:
        pem = f.read()
    now = int(time.time())
    header = b64url(json.dumps({"alg": "RS256", "kid": "rs", "typ": "JWT"}).encode())
    claims = b64url(json.dumps({"iss": "bench", "aud": "moderation-gateway", "sub": "mallory", "roles": ["bench"],
                                "iat": now, "exp": now + 3600}).encode())
    forged = f"{header}.{claims}.{b64url(os.urandom(256))}"
    url = f"http://127.0.0.1:{FLOOD_GATEWAY_PORT}/v2/models/identity_fp32"

    def gateway(binary, limit_on, name):
        config = os.path.join(work, f"gateway-{name}.yaml")
        with open(config, "w") as f:
            f.write(f"""listen: {{host: 127.0.0.1, port: {FLOOD_GATEWAY_PORT}, max_connections_per_peer: 256}}
triton: {{url: "http://127.0.0.1:{TRITON_PORT}"}}
auth:
  issuers: [bench]
  audiences: [moderation-gateway]
  keys:
    - {{kid: bench, algorithm: HS256, secret_file: dev-secret}}
    - {{kid: rs, algorithm: RS256, pem_file: flood-rsa.pub}}
  roles: {{bench: {{permissions: [moderate, infer]}}}}
rate_limit: {{enabled: true, rate_per_second: 1000000, burst: 1000000}}
auth_failure_limit: {{enabled: {str(limit_on).lower()}}}
routes: {{default: moderation, models: {{moderation: {{model: identity_fp32}}}}}}
readiness: {{models: [identity_fp32]}}
logging: {{level: error, format: json}}
""")
        process = subprocess.Popen([binary, "serve", "--config", config], stdout=subprocess.DEVNULL,
                                   stderr=open(os.path.join(work, f"gateway-{name}.log"), "w"))
        if not wait_http(f"http://127.0.0.1:{FLOOD_GATEWAY_PORT}/healthz", 60):
            process.kill()
            raise SystemExit(f"the {name} gateway did not start (see its log)")
        token = run([gateway_bin, "token", "--config", config, "--sub", "bench", "--role", "bench"]).stdout.strip()
        return process, token

    def stop(process):
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()

    def cpu_per_request(process, connections, token_header):
        before = process_cpu(process.pid)
        total, rate = wrk(url, token_header, connections, seconds)
        return (process_cpu(process.pid) - before) / max(total, 1) * 1e6, rate

    flood = {"libjwt_rs256_verify_us": libjwt_verify_us(forged, pem)}
    runs = [("limit_off", gateway_bin, False)] + ([("main_limit_off", baseline_bin, False)] if baseline_bin else [])
    for name, binary, limit_on in runs:
        log(f"forged RS256 flood, {name.replace('_', ' ')}")
        process, _ = gateway(binary, limit_on, name)
        try:
            flood[f"{name}_cpu_us_per_request"], flood[f"{name}_requests_per_s"] = cpu_per_request(process, 16, forged)
        finally:
            stop(process)
    log("forged RS256 flood with the failed-authentication limit on, and legitimate clients")
    process, token = gateway(gateway_bin, True, "limit_on")
    try:
        _, flood["legit_alone_requests_per_s"] = wrk(url, token, 4, seconds)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            attack = pool.submit(wrk, url, forged, 16, seconds)
            time.sleep(0.5)  # the legitimate run falls inside the flood
            legit = pool.submit(wrk, url, token, 4, seconds - 1)
            attack.result()
            _, flood["legit_during_flood_requests_per_s"] = legit.result()
        flood["limit_on_cpu_us_per_request"], flood["limit_on_requests_per_s"] = cpu_per_request(process, 16, forged)
    finally:
        stop(process)
    flood["legit_throughput_kept"] = flood["legit_during_flood_requests_per_s"] / flood["legit_alone_requests_per_s"]
    results["forged_flood"] = flood


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--venv", required=True)
    ap.add_argument("--runtime", required=True)
    ap.add_argument("--json", dest="json_path")
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--no-moderate", action="store_true")
    ap.add_argument("--no-audit-run", action="store_true", help="skip the run with the audit log and a 95/5 split on")
    ap.add_argument("--flood-only", action="store_true",
                    help="only the forged-token flood (no perf_analyzer, /v1/moderate, audit or nginx runs)")
    ap.add_argument("--baseline-binary", help="a moderation-gateway built from main, measured in the flood run too")
    args = ap.parse_args()
    root = args.root
    perf_analyzer = os.path.join(args.runtime, "bin", "perf_analyzer")
    env = dict(os.environ, VENV=args.venv, TRITON_RUNTIME=args.runtime)

    subprocess.run([os.path.join(args.venv, "bin", "python"), "Tests/Fixtures/make-fixtures.py"], cwd=root, check=True,
                   stdout=subprocess.DEVNULL)
    work = tempfile.mkdtemp(prefix="bench-gateway-")
    repo = os.path.join(work, "repo")
    os.makedirs(repo)
    os.symlink(os.path.join(root, "Tests/Fixtures/model-repo/identity_fp32"), os.path.join(repo, "identity_fp32"))
    os.symlink(os.path.join(root, "Tests/Fixtures/model-repo/identity_fp32_batched"), os.path.join(repo, "identity_fp32_batched"))
    prod = os.environ.get("BENCH_MODEL_REPO", os.path.join(root, "triton-model-repo"))
    moderate = not args.no_moderate and not args.flood_only
    if moderate:
        if "BENCH_MODEL_REPO" in os.environ:
            check = subprocess.CompletedProcess([], 0)  # the caller vouches for that repository's weights
        elif os.path.exists(os.path.join(root, "scripts/fetch-models")):
            check = subprocess.run(["scripts/fetch-models", "--check"], cwd=root, env=env, capture_output=True)
        else:
            check = subprocess.CompletedProcess([], 1)
        if not os.path.isdir(prod) or check.returncode != 0:
            log("production model weights missing: skipping /v1/moderate (run scripts/fetch-models)")
            moderate = False
        else:
            for name in os.listdir(prod):
                if os.path.isfile(os.path.join(prod, name, "config.pbtxt")):
                    os.symlink(os.path.join(prod, name), os.path.join(repo, name))

    log("building the gateway (release)")
    run(["swift", "build", "-c", "release", "--product", "moderation-gateway"], cwd=root)
    binpath = run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=root).stdout.strip()
    gateway_bin = os.path.join(binpath, "moderation-gateway")

    write_secret(os.path.join(work, "dev-secret"), os.urandom(48))
    config = os.path.join(work, "gateway.yaml")
    with open(config, "w") as f:
        f.write(f"""listen: {{host: 127.0.0.1, port: {GATEWAY_PORT}}}
triton: {{url: "http://127.0.0.1:{TRITON_PORT}"}}
timeouts: {{connect: 2, request: 30, upstream_deadline: 60}}
limits: {{max_body_bytes: 8388608, max_concurrent_upstream: 128}}
auth:
  issuers: [bench]
  audiences: [moderation-gateway]
  keys: [{{kid: bench, algorithm: HS256, secret_file: dev-secret}}]
  roles: {{bench: {{permissions: [moderate, infer]}}}}
rate_limit: {{enabled: true, rate_per_second: 1000000, burst: 1000000}}
routes: {{default: moderation, models: {{moderation: {{model: {'moderation' if moderate else 'identity_fp32'}}}}}}}
readiness: {{models: [identity_fp32]}}
logging: {{level: warning, format: json}}
""")
    gateway = None
    started = False
    results = {"machine": os.uname().nodename, "cpus": os.cpu_count(), "paths": {}}
    try:
        log("starting Triton on :%d" % TRITON_PORT)
        subprocess.run(["scripts/triton", "start", "--name", TRITON_NAME, "--model-repo", repo,
                        "--http-port", str(TRITON_PORT), "--grpc-port", str(TRITON_PORT + 1),
                        "--metrics-port", str(TRITON_PORT + 2), "--timeout", "600"], cwd=root, env=env, check=True)
        started = True
        gateway = subprocess.Popen([gateway_bin, "serve", "--config", config], stdout=subprocess.DEVNULL,
                                   stderr=open(os.path.join(work, "gateway.log"), "w"))
        if not wait_http(f"http://127.0.0.1:{GATEWAY_PORT}/readyz", 60):
            raise SystemExit("gateway did not become ready")
        token = run([gateway_bin, "token", "--config", config, "--sub", "bench", "--role", "bench"]).stdout.strip()

        forged_token_flood(results, work, gateway_bin, max(args.seconds, 4), args.baseline_binary)
        for c in () if args.flood_only else (1, 16):
            log(f"perf_analyzer identity_fp32 concurrency {c}: direct")
            direct = perf(perf_analyzer, f"127.0.0.1:{TRITON_PORT}", c, args.seconds)
            log(f"perf_analyzer identity_fp32 concurrency {c}: through the gateway")
            via = perf_with_cpu(perf_analyzer, f"127.0.0.1:{GATEWAY_PORT}", c, args.seconds, [gateway.pid], token)
            results["paths"][f"direct_c{c}"] = direct
            results["paths"][f"gateway_c{c}"] = via
            results[f"ratio_throughput_c{c}"] = via["throughput"] / direct["throughput"]
            results[f"added_p50_us_c{c}"] = via["p50_us"] - direct["p50_us"]
            results[f"added_p99_us_c{c}"] = via["p99_us"] - direct["p99_us"]
        if moderate and not args.flood_only:
            image = os.path.join(root, "Tests/Fixtures/images/gateway-sample.jpg")
            for c in (1, 4):
                log(f"hey /v1/moderate concurrency {c}")
                results["paths"][f"moderate_c{c}"] = hey(f"http://127.0.0.1:{GATEWAY_PORT}/v1/moderate", token, image, c, args.seconds * 2)
        if not args.no_audit_run and not args.flood_only:
            audited_run(results, work, config, gateway_bin, perf_analyzer, args.seconds)
        try:
            reference = None if args.flood_only else nginx_reference(work, perf_analyzer, args.seconds)
        except Exception as error:  # the reference is optional: keep what was measured
            log(f"the nginx reference run failed: {error}")
            reference = None
        if reference:
            results["nginx_reference"] = reference
    finally:
        if gateway:
            gateway.send_signal(signal.SIGTERM)
            try:
                gateway.wait(timeout=20)
            except subprocess.TimeoutExpired:
                gateway.kill()
        if started:
            subprocess.run(["scripts/triton", "stop", "--name", TRITON_NAME], cwd=root, env=env)
        shutil.rmtree(work, ignore_errors=True)

    print(f"{'path':<16}{'throughput/s':>14}{'p50 us':>10}{'p99 us':>10}{'proxy cpu us/req':>18}")
    for name, r in results["paths"].items():
        cpu = r.get("proxy_cpu_us_per_request")
        print(f"{name:<16}{r['throughput']:>14.1f}{r['p50_us']:>10.0f}{r['p99_us']:>10.0f}"
              f"{(f'{cpu:.0f}' if cpu is not None else '-'):>18}")
    f = results["forged_flood"]
    anchor = f["libjwt_rs256_verify_us"]
    print(f"forged RS256 tokens, one peer, wrk 16 connections: libjwt jwt_decode (main's verifier) "
          f"{f'{anchor:.0f}' if anchor is not None else '-'} us per call (CPU, timed in this run)")
    if "main_limit_off_cpu_us_per_request" in f:
        print(f"  main's gateway: {f['main_limit_off_cpu_us_per_request']:.0f} us gateway CPU per request "
              f"({f['main_limit_off_requests_per_s']:.0f}/s)")
    print(f"  this gateway, limit off (every token verified, key parsed at load): "
          f"{f['limit_off_cpu_us_per_request']:.0f} us gateway CPU per request ({f['limit_off_requests_per_s']:.0f}/s)")
    print(f"  this gateway, limit on (default): {f['limit_on_cpu_us_per_request']:.1f} us gateway CPU per request "
          f"({f['limit_on_requests_per_s']:.0f}/s; target <= 30 us)")
    print(f"  legitimate clients (valid token, 4 connections): {f['legit_alone_requests_per_s']:.0f}/s alone, "
          f"{f['legit_during_flood_requests_per_s']:.0f}/s during the flood ({f['legit_throughput_kept']:.2f} kept; "
          f"wrk's flood shares this machine's cores)")
    for c in () if args.flood_only else (1, 16):
        print(f"concurrency {c:>2}: gateway/direct throughput {results[f'ratio_throughput_c{c}']:.3f}, "
              f"added p50 {results[f'added_p50_us_c{c}']:.0f} us, added p99 {results[f'added_p99_us_c{c}']:.0f} us")
    if "audited" in results:
        a = results["audited"]
        print(f"audit on + 95/5 split, concurrency 16: gateway/direct throughput {a['ratio_throughput_c16']:.3f} "
              f"(target >= 0.85), added p50 {a['added_p50_us_c16']:.0f} us; "
              f"{a['records_per_fsync']:.1f} records per fsync, mean fsync {a['mean_fsync_ms']:.3f} ms, "
              f"max fsync {a['max_fsync_ms']:.3f} ms, split {a['variant_counts']}; "
              f"gateway CPU {a['gateway_c16']['proxy_cpu_us_per_request']:.0f} us per request")
    if "nginx_reference" in results:
        n = results["nginx_reference"]
        print(f"reference, nginx as a bare keep-alive proxy (no auth, no audit), concurrency 16: "
              f"nginx/direct throughput {n['ratio_throughput_c16']:.3f}, "
              f"nginx CPU {n['nginx_c16']['proxy_cpu_us_per_request']:.0f} us per request "
              f"(the gateway's, with auth and all checks: {results['paths']['gateway_c16']['proxy_cpu_us_per_request']:.0f})")
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump(results, f, indent=2)
        log(f"wrote {args.json_path}")


if __name__ == "__main__":
    main()
