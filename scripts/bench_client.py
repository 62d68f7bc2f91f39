"""Driver for scripts/bench-client: runs the three load tools and prints ratios.

Each tool drives the same model with the same tensors (binary tensor data)
at the same concurrency, one tool at a time, against the same Triton:
  swift   triton-load, built on the TritonClient library
  perf    perf_analyzer (Triton's C++ load tool)
  python  tritonclient.http, one client per thread
"""

import argparse
import json
import resource
import subprocess
import sys
import threading
import time

import numpy as np

from benchlib import model_stats, process_cpu, run_perf_analyzer, session_pids



def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def triton_side(before, after, seconds):
    """What Triton itself spent while one tool ran: the bound a perfect client would still meet."""
    if not before or not after or after["count"] <= before["count"]:
        return {}
    count = after["count"] - before["count"]
    compute = after["compute_ns"] - before["compute_ns"]
    return {
        # Time from request received to response sent, per request (no client in it).
        "triton_server_us": (after["server_ns"] - before["server_ns"]) / count / 1e3,
        "triton_queue_us": (after["queue_ns"] - before["queue_ns"]) / count / 1e3,
        # Share of the wall time the model's one instance was executing.
        "instance_busy": compute / (seconds * 1e9),
        # Inferences/s if that instance were never idle at its measured cost per request.
        "instance_ceiling": count / (compute / 1e9) if compute else 0.0,
    }


WORKLOADS = [
    # name, model, datatype, elements, string length (BYTES)
    ("fp32x1024", "identity_fp32", "FP32", 1024, 0),
    ("bytes16x64", "identity_bytes", "BYTES", 16, 64),
]


def run_swift(binary, url, workload, concurrency, duration):
    _, model, datatype, elements, strlen = workload
    command = [
        binary, "--url", f"http://{url}", "--model", model, "--datatype", datatype,
        "--elements", str(elements), "--concurrency", str(concurrency),
        "--duration-seconds", str(duration), "--warmup-seconds", "1",
    ]
    if strlen:
        command += ["--bytes-length", str(strlen)]
    cpu_before = children_cpu()
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    cpu = children_cpu() - cpu_before
    result = json.loads(out.strip().splitlines()[-1])
    # CPU covers the warm-up second too: count its requests at the same rate.
    requests = result["throughput"] * (duration + 1.0)
    return {
        "throughput": result["throughput"],
        "p50_us": result["p50_us"],
        "p99_us": result["p99_us"],
        "errors": result.get("errors", 0),
        "client_cpu_us_per_infer": cpu / max(requests, 1) * 1e6,
    }


def run_perf(binary, url, workload, concurrency, duration):
    _, model, datatype, elements, strlen = workload
    cpu_before = children_cpu()
    row, elapsed = run_perf_analyzer(binary, url, model, f"INPUT0:{elements}", concurrency, duration,
                                 ["--string-length", str(strlen)] if strlen else [])
    cpu = children_cpu() - cpu_before
    throughput = float(row["Inferences/Second"])
    return {
        "throughput": throughput,
        "p50_us": float(row["p50 latency"]),
        "p99_us": float(row["p99 latency"]),
        "errors": 0,
        # perf_analyzer runs several windows; assume it sent at the reported rate throughout.
        "client_cpu_us_per_infer": cpu / max(throughput * elapsed, 1) * 1e6,
    }


def run_python(url, workload, concurrency, duration):
    import tritonclient.http as httpclient

    _, model, datatype, elements, strlen = workload
    rng = np.random.default_rng(7)
    if datatype == "BYTES":
        data = np.array(
            [[bytes(rng.integers(97, 123, strlen, dtype=np.uint8)) for _ in range(elements)]],
            dtype=object,
        )
    else:
        data = rng.random((1, elements), dtype=np.float32)
    latencies, errors, lock = [], [0], threading.Lock()
    stop_at = [0.0]
    start_gate = threading.Barrier(concurrency + 1)

    def worker():
        client = httpclient.InferenceServerClient(url)
        tensor = httpclient.InferInput("INPUT0", list(data.shape), datatype)
        tensor.set_data_from_numpy(data, binary_data=True)
        outputs = [httpclient.InferRequestedOutput("OUTPUT0", binary_data=True)]
        client.infer(model, [tensor], outputs=outputs)  # warm the connection
        start_gate.wait()
        mine = []
        while time.perf_counter() < stop_at[0]:
            begin = time.perf_counter()
            try:
                client.infer(model, [tensor], outputs=outputs)
                mine.append(time.perf_counter() - begin)
            except Exception:
                with lock:
                    errors[0] += 1
        with lock:
            latencies.extend(mine)
        client.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    stop_at[0] = time.perf_counter() + 1e9
    start_gate.wait()
    cpu_before = time.process_time()
    begin = time.perf_counter()
    stop_at[0] = begin + duration
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - begin
    cpu = time.process_time() - cpu_before
    values = np.array(latencies) * 1e6
    return {
        "throughput": len(latencies) / elapsed,
        "p50_us": float(np.percentile(values, 50)) if len(values) else 0.0,
        "p99_us": float(np.percentile(values, 99)) if len(values) else 0.0,
        "errors": errors[0],
        "client_cpu_us_per_infer": cpu / max(len(latencies), 1) * 1e6,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True, help="Triton HTTP host:port")
    parser.add_argument("--triton-load", required=True)
    parser.add_argument("--perf-analyzer", required=True)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--concurrency", default="1 8 32")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved runs per tool; the median counts")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--triton-pid", type=int, help="Triton's pid, to report its CPU use (with its backend stubs) per run")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    levels = [int(c) for c in args.concurrency.split()]

    rows = []
    for workload in WORKLOADS:
        for concurrency in levels:
            runners = {
                "swift": lambda: run_swift(args.triton_load, args.url, workload, concurrency, args.duration),
                "perf_analyzer": lambda: run_perf(args.perf_analyzer, args.url, workload, concurrency, args.duration),
                "python": lambda: run_python(args.url, workload, concurrency, args.duration),
            }
            # Triton's Python backend swings by up to 40 % between back-to-back runs on this
            # 2-core machine (it depends on where the scheduler puts the stub process), so each
            # tool runs several times, interleaved and in a rotating order, and the run with
            # the median throughput stands for it.
            samples = {tool: [] for tool in runners}
            names = list(runners)
            for round_index in range(args.rounds):
                order = names[round_index % len(names):] + names[:round_index % len(names)]
                for tool in order:
                    triton_pids = session_pids(args.triton_pid) if args.triton_pid else []
                    triton_before, begin = process_cpu(*triton_pids), time.perf_counter()
                    stats_before = model_stats(args.url, workload[1])
                    result = runners[tool]()
                    result.update(triton_side(stats_before, model_stats(args.url, workload[1]), time.perf_counter() - begin))
                    if args.triton_pid:
                        # Share of the machine's cores Triton used while this tool drove it.
                        used = process_cpu(*triton_pids) - triton_before
                        result["triton_cores_busy"] = used / (time.perf_counter() - begin)
                    samples[tool].append(result)
            results = {}
            for tool, runs in samples.items():
                ranked = sorted(runs, key=lambda r: r["throughput"])
                chosen = dict(ranked[(len(ranked) - 1) // 2])
                chosen["throughput_runs"] = [round(r["throughput"], 1) for r in runs]
                results[tool] = chosen
            swift = results["swift"]["throughput"]
            row = {
                "workload": workload[0],
                "model": workload[1],
                "concurrency": concurrency,
                "results": results,
                "swift_over_perf_analyzer": swift / results["perf_analyzer"]["throughput"],
                "swift_over_python": swift / results["python"]["throughput"],
            }
            # The most any client could reach, from Triton's own counters in the Swift runs:
            # one request at a time waits at least Triton's server time per request; with more
            # in flight, the model's single instance cannot run faster than its cost per request.
            swift_runs = samples["swift"]
            if concurrency == 1:
                server = [r["triton_server_us"] for r in swift_runs if r.get("triton_server_us")]
                limit = 1e6 / min(server) if server else None
            else:
                ceilings = [r["instance_ceiling"] for r in swift_runs if r.get("instance_ceiling")]
                limit = max(ceilings) if ceilings else None
            if limit:
                row["triton_limit"] = limit
                row["best_possible_over_python"] = limit / results["python"]["throughput"]
            rows.append(row)
            print(f"measured {workload[0]} c={concurrency}", file=sys.stderr)

    header = (
        f"{'workload':<11} {'c':>3} | {'tool':<13} {'infer/s':>9} {'p50 us':>8} {'p99 us':>8}"
        f" {'client cpu us/inf':>17} {'triton cores':>12} {'server us':>9} {'inst busy':>9}"
    )
    header += "  runs (infer/s)"
    print(header)
    print("-" * len(header))
    for row in rows:
        for tool, result in row["results"].items():
            print(
                f"{row['workload']:<11} {row['concurrency']:>3} | {tool:<13} "
                f"{result['throughput']:>9.1f} {result['p50_us']:>8.0f} {result['p99_us']:>8.0f}"
                f" {result['client_cpu_us_per_infer']:>17.0f} {result.get('triton_cores_busy', float('nan')):>12.2f}"
                f" {result.get('triton_server_us', float('nan')):>9.0f} {result.get('instance_busy', float('nan')):>9.2f}"
                f"  {' '.join(f'{t:.0f}' for t in result['throughput_runs'])}"
            )
        print(
            f"{'':<15} | swift/perf_analyzer = {row['swift_over_perf_analyzer']:.2f}  "
            f"swift/python = {row['swift_over_python']:.2f}"
        )
        if "triton_limit" in row:
            print(
                f"{'':<15} | Triton's own limit here: {row['triton_limit']:.0f} infer/s "
                f"(a zero-cost client would reach at most {row['best_possible_over_python']:.2f}x python)"
            )
    targets_met = all(
        r["swift_over_perf_analyzer"] >= 0.95 and r["swift_over_python"] >= 2.0 for r in rows
    )
    print(f"targets (swift >= 0.95x perf_analyzer and >= 2x python everywhere): {'met' if targets_met else 'NOT met'}")
    print(
        f"each row is the median of {args.rounds} interleaved runs per tool (all runs listed at the right);"
        " client cpu us/inf is the load tool's own CPU per request (what the client library costs);"
        " triton cores is how many of the machine's cores Triton kept busy meanwhile. When every tool"
        " reaches the same throughput while Triton uses most of the cores, the bound is Triton, not the client."
        " server us is Triton's time per request from its statistics (request in to response out); inst busy"
        " is the share of wall time the model's one instance was executing. Triton's limit is 1e6/server us"
        " at c=1 and the instance's requests per second of execution time at c>1."
    )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"rows": rows, "targets_met": targets_met}, handle, indent=2)


if __name__ == "__main__":
    main()
