"""Driver of scripts/bench-gateway (see that script for what it measures)."""
import argparse
import csv
import io
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

TRITON_PORT = 8330
GATEWAY_PORT = 8340


def log(msg):
    print(f"[bench-gateway] {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)


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


def perf(perf_analyzer, url, concurrency, seconds, token=None):
    fd, csv_path = tempfile.mkstemp(suffix=".csv")
    os.close(fd)
    cmd = [perf_analyzer, "-m", "identity_fp32", "-u", url, "--shape", "INPUT0:16",
           "--concurrency-range", str(concurrency), "--measurement-interval", str(seconds * 1000),
           "--stability-percentage", "100", "--max-trials", "10", "--percentile", "99", "-f", csv_path]
    if token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    try:
        run(cmd)
        with open(csv_path) as f:
            rows = list(csv.DictReader(f))
    finally:
        os.unlink(csv_path)
    row = rows[-1]
    return {
        "throughput": float(row["Inferences/Second"]),
        "p50_us": float(row["p50 latency"]),
        "p99_us": float(row["p99 latency"]),
    }


def hey(url, token, image, concurrency, seconds):
    out = run(["hey", "-z", f"{seconds}s", "-c", str(concurrency), "-m", "POST", "-T", "image/jpeg",
               "-H", f"Authorization: Bearer {token}", "-D", image, url]).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = float(re.search(r"50%+ in ([\d.]+) secs", out).group(1)) * 1e6
    p99 = float(re.search(r"99%+ in ([\d.]+) secs", out).group(1)) * 1e6
    codes = dict(re.findall(r"\[(\d{3})\]\s+(\d+) responses", out))
    return {"throughput": rps, "p50_us": p50, "p99_us": p99, "status_codes": codes}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--venv", required=True)
    ap.add_argument("--runtime", required=True)
    ap.add_argument("--json", dest="json_path")
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--no-moderate", action="store_true")
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
    prod = os.environ.get("BENCH_MODEL_REPO", os.path.join(root, "triton-model-repo"))
    moderate = not args.no_moderate
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

    secret = os.path.join(work, "dev-secret")
    with open(secret, "wb") as f:
        f.write(os.urandom(48))
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
        subprocess.run(["scripts/triton", "start", "--name", "bench-gateway", "--model-repo", repo,
                        "--http-port", str(TRITON_PORT), "--grpc-port", str(TRITON_PORT + 1),
                        "--metrics-port", str(TRITON_PORT + 2), "--timeout", "600"], cwd=root, env=env, check=True)
        started = True
        gateway = subprocess.Popen([gateway_bin, "serve", "--config", config], stdout=subprocess.DEVNULL,
                                   stderr=open(os.path.join(work, "gateway.log"), "w"))
        if not wait_http(f"http://127.0.0.1:{GATEWAY_PORT}/readyz", 60):
            raise SystemExit("gateway did not become ready")
        token = run([gateway_bin, "token", "--config", config, "--sub", "bench", "--role", "bench"]).stdout.strip()

        for c in (1, 16):
            log(f"perf_analyzer identity_fp32 concurrency {c}: direct")
            direct = perf(perf_analyzer, f"127.0.0.1:{TRITON_PORT}", c, args.seconds)
            log(f"perf_analyzer identity_fp32 concurrency {c}: through the gateway")
            via = perf(perf_analyzer, f"127.0.0.1:{GATEWAY_PORT}", c, args.seconds, token)
            results["paths"][f"direct_c{c}"] = direct
            results["paths"][f"gateway_c{c}"] = via
            results[f"ratio_throughput_c{c}"] = via["throughput"] / direct["throughput"]
            results[f"added_p50_us_c{c}"] = via["p50_us"] - direct["p50_us"]
            results[f"added_p99_us_c{c}"] = via["p99_us"] - direct["p99_us"]
        if moderate:
            image = os.path.join(root, "Tests/Fixtures/images/gateway-sample.jpg")
            for c in (1, 4):
                log(f"hey /v1/moderate concurrency {c}")
                results["paths"][f"moderate_c{c}"] = hey(f"http://127.0.0.1:{GATEWAY_PORT}/v1/moderate", token, image, c, args.seconds * 2)
    finally:
        if gateway:
            gateway.send_signal(signal.SIGTERM)
            try:
                gateway.wait(timeout=20)
            except subprocess.TimeoutExpired:
                gateway.kill()
        if started:
            subprocess.run(["scripts/triton", "stop", "--name", "bench-gateway"], cwd=root, env=env)
        shutil.rmtree(work, ignore_errors=True)

    print(f"{'path':<16}{'throughput/s':>14}{'p50 us':>10}{'p99 us':>10}")
    for name, r in results["paths"].items():
        print(f"{name:<16}{r['throughput']:>14.1f}{r['p50_us']:>10.0f}{r['p99_us']:>10.0f}")
    for c in (1, 16):
        print(f"concurrency {c:>2}: gateway/direct throughput {results[f'ratio_throughput_c{c}']:.3f}, "
              f"added p50 {results[f'added_p50_us_c{c}']:.0f} us, added p99 {results[f'added_p99_us_c{c}']:.0f} us")
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump(results, f, indent=2)
        log(f"wrote {args.json_path}")


if __name__ == "__main__":
    main()
