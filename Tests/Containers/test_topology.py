"""The deployment as containers (scripts/topology --short): two gateway containers
behind HAProxy, a Triton container with explicit model control, Prometheus with the
project's rules. Every check lives in scripts/topology.py and fails it; this test
runs it as CI does and asserts the report's figures a user relies on.

Needs GATEWAY_IMAGE and TRITON_IMAGE (scripts/test's container mode); skipped without.
"""

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "Tests" / "Scripts"))
from processes import run_terminating  # noqa: E402

pytestmark = pytest.mark.skipif(
    not (os.environ.get("GATEWAY_IMAGE") and os.environ.get("TRITON_IMAGE")),
    reason="GATEWAY_IMAGE and TRITON_IMAGE name the images (scripts/test --triton container sets them)",
)


def test_two_replicas_behind_a_balancer_agree_update_fail_over_alert_and_restore(tmp_path):
    report_file = tmp_path / "topology.json"
    returncode, output = run_terminating([str(ROOT / "scripts" / "topology"), "--short", "--json", str(report_file)], timeout=600)
    assert returncode == 0, output[-6000:]
    report = json.loads(report_file.read_text())
    assert report["consistency"]["disagreements"] == 0
    assert max(report["consistency"]["edit_followed_after_seconds"]) < 10
    assert report["drill_good"]["goal"] == "promoted" and report["drill_good"]["client_failures"] == 0
    assert report["drill_bad"]["goal"] == "rolled_back" and report["drill_bad"]["client_failures"] == 0
    assert report["drill_bad"]["other_replica_followed_after_seconds"] < 10
    # One replica killed under load: at most the requests in flight on it fail, and the
    # balancer's health checks (0.5 s, two failures) move on within a few seconds.
    assert report["failover"]["errors"] <= 5, report["failover"]
    assert report["failover"]["moved_on_after_seconds"] < 3, report["failover"]
    assert report["audit"]["missing"] == 0 and all(c["status"] == "ok" for c in report["audit"]["chains"])
    assert {c["replica"] for c in report["audit"]["chains"]} == {0, 1}
    assert report["restore"]["canary_decision_survived"] and report["restore"]["chains_verify"]
    assert report["alert"]["firing_after_seconds"] > report["alert"]["pending_after_seconds"]
    assert report["dashboard"]["with_series"] == report["dashboard"]["queries"]
