"""Helpers the benchmark drivers share: process CPU from /proc and Triton's model statistics."""

import json
import os
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
