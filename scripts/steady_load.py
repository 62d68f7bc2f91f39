"""Steady client load for the harnesses (scripts/resilience.py, scripts/topology.py):
a few threads, each on its own keep-alive connection, sending at a fixed total rate, and
what the audit chains hold to compare with what clients were answered.
"""
from __future__ import annotations

import http.client
import json
import random
import threading
import time
from pathlib import Path


class SteadyLoad:
    """Requests at `rate` per second in all from `threads` threads to 127.0.0.1:`port`.

    A subclass says what to send (`next_request`) and what to keep of each answer
    (`outcome`, which must return an object with an `at` attribute). `max_lag` bounds how
    far a thread catches up after a stall (None: it sends every missed request at once).
    """

    def __init__(self, port: int, rate: float, threads: int = 4, max_lag: float | None = None, join_timeout: float = 30):
        self.port = port
        self.rate = rate
        self.threads = threads
        self.max_lag = max_lag
        self.join_timeout = join_timeout
        self.outcomes: list = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def next_request(self, chooser: random.Random) -> tuple[str, str, bytes | None, dict, object]:
        """(method, path, body, headers, tag); the tag is handed back to `outcome`."""
        raise NotImplementedError

    def outcome(self, at: float, tag: object, status: int | None, headers: dict, body: bytes):
        raise NotImplementedError

    def start(self) -> None:
        self.workers = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(self.threads)]
        for worker in self.workers:
            worker.start()

    def stop(self) -> None:
        self.stopping.set()
        for worker in self.workers:
            worker.join(timeout=self.join_timeout)

    def run(self, index: int) -> None:
        interval = self.threads / self.rate
        chooser = random.Random(index)
        connection = None
        next_at = time.monotonic() + interval * index / self.threads
        while not self.stopping.is_set():
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            next_at += interval
            if self.max_lag is not None:
                next_at = max(next_at, time.monotonic() - self.max_lag)
            method, path, body, headers, tag = self.next_request(chooser)
            status, answer_headers, answer = None, {}, b""
            try:
                if connection is None:
                    connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                answer = response.read()
                status, answer_headers = response.status, {k.lower(): v for k, v in response.getheaders()}
                if answer_headers.get("connection", "").lower() == "close":
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException):
                if connection is not None:
                    connection.close()
                connection = None
            record = self.outcome(time.monotonic(), tag, status, answer_headers, answer)
            with self.lock:
                self.outcomes.append(record)

    def window(self, start: float, end: float | None = None) -> list:
        end = float("inf") if end is None else end
        with self.lock:
            return [o for o in self.outcomes if start <= o.at < end]


def audit_request_ids(folder: Path) -> set[str]:
    """Every request id in an audit folder's chain files."""
    recorded: set[str] = set()
    for path in folder.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            try:
                recorded.add(json.loads(line)["request_id"])
            except (ValueError, KeyError):
                pass
    return recorded
