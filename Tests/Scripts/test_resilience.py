"""scripts/resilience, short: a 60 s soak and one fault of each kind (8 s windows) under
steady traffic against a real gateway and a Triton of its own. The full run (a 10-minute
soak, 20 s windows) is `scripts/resilience`; its figures are in the README."""

import json
import os
from pathlib import Path

from processes import run_terminating

ROOT = Path(__file__).resolve().parents[2]


def test_soak_and_faults_lose_no_acknowledged_request(tmp_path):
    report_file = tmp_path / "resilience.json"
    returncode, output = run_terminating([str(ROOT / "scripts" / "resilience"), "--soak-seconds", "60", "--fault-seconds", "8",
                                          "--json", str(report_file)], timeout=900)
    assert returncode == 0, output[-5000:]
    report = json.loads(report_file.read_text())
    print(output[-2500:])
    soak = report["soak"]
    assert soak["error_rate"] < 0.001, soak
    assert soak["rss_growth"] < 0.10, f"the gateway's memory grows under steady traffic: {soak}"
    assert soak["fds_end"] - soak["fds_after_warmup"] <= max(8, soak["fds_after_warmup"] // 10), f"descriptors leak: {soak}"
    faults = {f["fault"]: f for f in report["faults"]}
    expected = {"triton_kill", "triton_stop", "bad_traffic_file", "gateway_kill", "audit_disk_full"}
    assert set(faults) == expected
    # Filling the audit file system needs a tmpfs mount (root with CAP_SYS_ADMIN; CI's job
    # container is started with it). Elsewhere the fault is skipped only when asked to be.
    if os.environ.get("RESILIENCE_ALLOW_NO_MOUNT") != "1":
        assert "skipped" not in faults["audit_disk_full"], (
            f"{faults['audit_disk_full']}: run as root with CAP_SYS_ADMIN, or set RESILIENCE_ALLOW_NO_MOUNT=1 to skip this fault")
    for name, fault in faults.items():
        if "skipped" in fault:
            continue
        assert fault["recovered_after_seconds"] is not None, f"{name} never ran clean again: {fault}"
    # A refused traffic file never reaches a request: routing by a broken file would fail
    # every infer. What remains is the soak's background rate (a rare 504 at the 2 s deadline
    # on a loaded machine), so the bound is 1 %.
    bad_file = faults["bad_traffic_file"]
    assert bad_file["errors"] <= bad_file["requests"] // 100, f"requests saw the bad traffic file: {bad_file}"
    audit = report["audit"]
    assert audit["verify_exit"] == 0 and audit["missing"] == 0 and audit["acknowledged"] > 0, audit
