"""Helpers the benchmark drivers share: process CPU from /proc, Triton's model statistics and
one perf_analyzer run."""

import csv
import json
import os
import subprocess
import tempfile
import time
import urllib.request

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(*pids):
    """User + system CPU seconds of these processes, all their threads (0 for one that cannot be read)."""
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        except (OSError, IndexError, ValueError):
            pass
    return total


def session_pids(leader):
    """`leader` and every process in its session: a Triton started by scripts/triton (setsid)
    with its Python-backend stubs, which do most of the work of Python models."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if len(fields) > 3 and int(fields[3]) == leader:
            pids.append(int(entry))
    return pids or [leader]


def run_perf_analyzer(binary, url, model, shape, concurrency, seconds, extra=()):
    """One perf_analyzer run at one concurrency: its CSV row (the last) and the wall seconds it took.
    A shared 2-core machine is noisy, so windows within 100 % of each other count as stable, and
    at most 6 trials run (unsettled runs otherwise grow perf_analyzer's memory without bound)."""
    fd, report = tempfile.mkstemp(suffix=".csv")
    os.close(fd)
    command = [
        binary, "-m", model, "-u", url, "-i", "http", "--shape", shape,
        "--concurrency-range", str(concurrency), "--measurement-interval", str(int(seconds * 1000)),
        "--stability-percentage", "100", "--max-trials", "6", "--percentile", "99", "-f", report, *extra,
    ]
    try:
        begin = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, text=True)
        elapsed = time.perf_counter() - begin
        with open(report) as handle:
            rows = list(csv.DictReader(handle))
    finally:
        os.unlink(report)
    return rows[-1], elapsed


def model_stats(url, model):
    """Triton's own counters for `model` at `url` (host:port): successful requests, time in the
    server, time queued and time in the model instance (ns); None when they cannot be read."""
    try:
        with urllib.request.urlopen(f"http://{url}/v2/models/{model}/stats", timeout=5) as response:
            stats = json.load(response)["model_stats"][0]["inference_stats"]
    except (OSError, ValueError, KeyError, IndexError):
        return None
    compute = sum(int(stats[k]["ns"]) for k in ("compute_input", "compute_infer", "compute_output"))
    return {"count": int(stats["success"]["count"]), "server_ns": int(stats["success"]["ns"]),
            "queue_ns": int(stats["queue"]["ns"]), "compute_ns": compute}
