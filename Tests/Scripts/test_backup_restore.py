"""Disaster recovery with scripts/backup and scripts/restore, against a real gateway
(the debug build) in front of the fixture Triton that scripts/test starts.

A canary is rolled back by the gateway, the replica is backed up while it serves,
its volumes (configuration, traffic file, canary state, audit folder) are destroyed
and restored, and a new gateway on the restored files keeps the rollback; the
audit chain verifies against the backup's anchors and the operator's, and an
anchor from after the backup is reported as truncated, not silently passed.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TRITON_URL = os.environ.get("TRITON_URL")
PORT = int(os.environ.get("TEST_PORT_BASE", "18000")) + 396
INSTANCE = "dr-test"

CANARY = """\
routes:
  canary:
    variants:
      - {name: stable, model: variant_a, weight: 50}
      - {name: next, model: flaky, weight: 50}
    canary:
      candidate: next
      baseline: stable
      window_seconds: 1
      min_requests: 3
      max_error_rate: 0.2
      failure_limit: 2
"""


def gateway_binary() -> str:
    for candidate in (os.environ.get("GATEWAY_BIN"), ROOT / ".build" / "debug" / "moderation-gateway"):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    pytest.fail("no moderation-gateway build: run `swift build` (scripts/test does)", pytrace=False)


def call(path: str, token: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {token}"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(f"http://127.0.0.1:{PORT}{path}", data=data, headers=headers,
                                     method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, {}


def infer(token: str, fail: bool = False) -> tuple[int, str | None]:
    body = {"inputs": [{"name": "INPUT0", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}],
            "parameters": {"fail_fraction": 1} if fail else {}}
    request = urllib.request.Request(f"http://127.0.0.1:{PORT}/v2/models/canary/infer", data=json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers.get("X-Moderation-Variant")
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("X-Moderation-Variant")


def canary_of(status: dict) -> tuple[float | None, str | None]:
    """(weight in force of `next`, canary phase) from GET /admin/traffic."""
    route = next((r for r in status.get("routes", []) if r.get("name") == "canary"), {})
    weight = next((v.get("weightInForce") for v in route.get("variants", []) if v.get("name") == "next"), None)
    return weight, (route.get("canary") or {}).get("phase")


class Replica:
    """One gateway replica's files in `base`, and the process serving them."""

    def __init__(self, base: Path):
        self.base = base
        self.binary = gateway_binary()
        self.config = base / "gateway.yaml"
        self.key = base / "secrets" / "audit-key"
        self.process: subprocess.Popen | None = None

    def write_files(self) -> None:
        secrets = self.base / "secrets"
        secrets.mkdir()
        (secrets / "dev-secret").write_text(os.urandom(32).hex())
        self.key.write_bytes(os.urandom(48))
        for secret in secrets.iterdir():
            secret.chmod(0o600)  # the gateway refuses secrets others can read
        config = yaml.safe_load((ROOT / "config" / "gateway.yaml").read_text())
        config.update({
            "listen": {"host": "127.0.0.1", "port": PORT},
            "triton": {"url": TRITON_URL},
            "instance_id": INSTANCE,
            "routes": {"default": "moderation", "models": {"moderation": {"model": "variant_a"}}},
            "readiness": {"models": ["variant_a", "flaky"]},
            # Relative paths, as operators write them: resolved against the config's folder.
            "audit": {"enabled": True, "path": "audit", "key_file": "secrets/audit-key"},
            "traffic": {"file": "traffic.yaml", "canary_state_file": "state/canary-state.json", "poll_interval": 0.2},
            "console": {"enabled": False},
            "logging": {"level": "warning", "format": "json"},
        })
        config["auth"]["keys"][0]["secret_file"] = "secrets/dev-secret"
        self.config.write_text(yaml.safe_dump(config))
        (self.base / "traffic.yaml").write_text(CANARY)
        (self.base / "state").mkdir()

    def token(self, subject: str, role: str = "admin") -> str:
        return subprocess.run([self.binary, "token", "--config", str(self.config), "--sub", subject, "--role", role],
                              check=True, capture_output=True, text=True).stdout.strip()

    def start(self) -> None:
        log = open(self.base / "gateway.log", "ab")
        self.process = subprocess.Popen([self.binary, "serve", "--config", str(self.config)],
                                        stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 180
        while True:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{PORT}/readyz", timeout=5).status == 200:
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"the gateway did not become ready:\n{(self.base / 'gateway.log').read_text()[-3000:]}",
                            pytrace=False)
            time.sleep(0.3)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def verify(self, *anchors: str) -> tuple[int, dict]:
        return self.verify_folder(self.base / "audit", *anchors)

    def verify_folder(self, folder: Path, *anchors: str) -> tuple[int, dict]:
        command = [self.binary, "audit", "verify", "--json", "--key-file", str(self.key)]
        for anchor in anchors:
            command += ["--anchor", anchor]
        result = subprocess.run(command + [str(folder)], capture_output=True, text=True)
        return result.returncode, json.loads(result.stdout)


def script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "scripts" / name), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "GATEWAY_BIN": gateway_binary()})


@pytest.fixture(scope="module")
def drill(tmp_path_factory):
    """Runs the drill once; the tests below read what it saw."""
    if not TRITON_URL:
        pytest.fail("TRITON_URL is not set: run scripts/test (it starts the fixture Triton)", pytrace=False)
    base = tmp_path_factory.mktemp("dr-replica")
    replica = Replica(base)
    replica.write_files()
    seen: dict = {"replica": replica, "archive": base.parent / f"{base.name}-backup.tar.gz"}
    replica.start()
    try:
        admin = replica.token("dr-operator")
        callers = [replica.token(f"dr-caller-{i}") for i in range(16)]
        deadline = time.monotonic() + 60
        while canary_of(call("/admin/traffic", admin)[1]) != (0, "rolled_back"):
            assert time.monotonic() < deadline, f"the failing candidate was not rolled back: {call('/admin/traffic', admin)}"
            for caller in callers:
                infer(caller, fail=True)
        seen["variants_before"] = [infer(caller)[1] for caller in callers]
        status, audit = call("/admin/audit", admin)
        assert status == 200, audit
        # What an operator keeps outside the volumes (GET /admin/audit, or the log's anchors).
        seen["operator_anchor"] = f"{INSTANCE}:{audit['lastSeq']}:{audit['lastHash']}"
        started = time.monotonic()
        seen["backup"] = script("backup", "--config", str(replica.config), "--key-file", str(replica.key),
                                "--anchor", seen["operator_anchor"], "--out", str(seen["archive"]))
        seen["backup_seconds"] = time.monotonic() - started
        for caller in callers[:4]:  # records the backup does not hold
            assert infer(caller)[0] == 200
    finally:
        replica.stop()
    # The chain's end after shutdown: later than the backup, so the restore cannot reach it.
    code, report = replica.verify()
    assert code == 0, report
    end = report["chains"][0]
    seen["after_backup_anchor"] = f"{INSTANCE}:{end['lastSeq']}:{end['lastHash']}"

    # The volumes are lost: configuration, traffic file, canary state, audit folder.
    for lost in ("gateway.yaml", "traffic.yaml", "state", "audit"):
        path = base / lost
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    started = time.monotonic()
    seen["restore"] = script("restore", str(seen["archive"]), "--config", str(replica.config),
                             "--key-file", str(replica.key), "--anchor", seen["operator_anchor"])
    seen["restore_seconds"] = time.monotonic() - started
    if seen["restore"].returncode == 0:
        replica.start()
        try:
            admin = replica.token("dr-operator")
            seen["canary_after"] = canary_of(call("/admin/traffic", admin)[1])
            seen["variants_after"] = [infer(replica.token(f"dr-caller-{i}"))[1] for i in range(16)]
        finally:
            replica.stop()
    return seen


def test_backup_of_a_serving_replica_verifies_and_prints_its_anchor(drill):
    backup = drill["backup"]
    assert backup.returncode == 0, backup.stderr
    anchors = [line.split(" ", 1)[1] for line in backup.stdout.splitlines() if line.startswith("anchor ")]
    assert len(anchors) == 1 and anchors[0].startswith(f"{INSTANCE}:"), backup.stdout
    assert drill["archive"].stat().st_mode & 0o077 == 0, "audit records are not for everyone to read"
    with tarfile.open(drill["archive"]) as archive:
        names = set(archive.getnames())
        manifest = json.loads(archive.extractfile("MANIFEST.json").read())
    assert {"config/gateway.yaml", "traffic/traffic.yaml", "canary/canary-state.json", "MANIFEST.json"} <= names
    assert any(n.startswith("audit/0/") for n in names)
    assert not any("secret" in n or "key" in n for n in names), f"secrets stay out of the archive: {names}"
    assert manifest["chains"][0]["instance"] == INSTANCE
    state = json.loads(tarfile.open(drill["archive"]).extractfile("canary/canary-state.json").read())
    assert "rolled_back" in json.dumps(state), state
    print(f"backup of a serving replica: {drill['backup_seconds']:.2f} s")


def test_restore_brings_back_the_chain_and_the_canary_decision(drill):
    assert drill["variants_before"] == ["stable"] * 16
    restore = drill["restore"]
    assert restore.returncode == 0, restore.stderr
    assert "verifies" in restore.stderr and "anchors reached: 2" in restore.stderr, restore.stderr
    # A new gateway on the restored files keeps the rollback: every caller on the baseline.
    assert drill["canary_after"] == (0, "rolled_back")
    assert drill["variants_after"] == ["stable"] * 16
    # The chain goes on across the restore and still reaches the operator's anchor.
    code, report = drill["replica"].verify(drill["operator_anchor"])
    assert code == 0, report
    print(f"restore: {drill['restore_seconds']:.2f} s")


def test_an_anchor_from_after_the_backup_is_reported_as_truncated(drill, tmp_path):
    """Records written after the backup are gone after a restore, and the verifier
    says so when given the anchor the operator saw last."""
    target = tmp_path / "elsewhere"
    target.mkdir()
    config = target / "gateway.yaml"
    result = script("restore", str(drill["archive"]), "--config", str(config), "--audit", str(target / "audit"),
                    "--key-file", str(drill["replica"].key), "--anchor", drill["after_backup_anchor"])
    assert result.returncode == 1
    assert "truncated" in result.stderr, result.stderr
    assert list(target.iterdir()) == [], "verified before anything is written"


def test_restore_refuses_a_changed_archive_and_writes_nothing(drill, tmp_path):
    changed = tmp_path / "changed.tar.gz"
    with tarfile.open(drill["archive"]) as source, tarfile.open(changed, "w:gz") as target:
        for member in source:
            data = source.extractfile(member).read()
            if member.name == "canary/canary-state.json":
                data = data.replace(b"rolled_back", b"promoted")
                member.size = len(data)
            target.addfile(member, io.BytesIO(data))
    destination = tmp_path / "restore-here"
    destination.mkdir()
    result = script("restore", str(changed), "--config", str(destination / "gateway.yaml"),
                    "--key-file", str(drill["replica"].key))
    assert result.returncode == 1
    assert "canary/canary-state.json does not match its SHA-256" in result.stderr, result.stderr
    assert list(destination.iterdir()) == []


def test_restore_over_live_files_needs_force_and_moves_them_aside(drill, tmp_path):
    replica = drill["replica"]
    result = script("restore", str(drill["archive"]), "--config", str(replica.config), "--key-file", str(replica.key))
    assert result.returncode == 1 and "--force" in result.stderr, result.stderr
    before = (replica.base / "state" / "canary-state.json").read_bytes()
    result = script("restore", str(drill["archive"]), "--config", str(replica.config), "--key-file", str(replica.key),
                    "--force")
    assert result.returncode == 0, result.stderr
    aside = [p for p in (replica.base / "state").iterdir() if ".before-restore-" in p.name]
    assert len(aside) == 1 and aside[0].read_bytes() == before, "nothing is deleted"
    assert any(".before-restore-" in p.name for p in replica.base.iterdir()), "the audit folder was moved aside"


def test_two_forced_restores_keep_both_earlier_versions(drill, tmp_path):
    """Restoring twice within a second moves each earlier file aside under its own name."""
    replica = drill["replica"]
    state = replica.base / "state" / "canary-state.json"
    for _ in range(2):
        result = script("restore", str(drill["archive"]), "--config", str(replica.config), "--key-file", str(replica.key),
                        "--force")
        assert result.returncode == 0, result.stderr
    aside = [p for p in state.parent.iterdir() if ".before-restore-" in p.name]
    assert len(aside) >= 3 and len({p.name for p in aside}) == len(aside), aside
    assert all(p.read_bytes() == state.read_bytes() for p in aside)


def test_a_fresh_volume_with_only_lost_and_found_is_restored_into(drill, tmp_path):
    target = tmp_path / "fresh"
    (target / "audit" / "lost+found").mkdir(parents=True)
    result = script("restore", str(drill["archive"]), "--config", str(target / "gateway.yaml"),
                    "--key-file", str(drill["replica"].key))
    assert result.returncode == 0, result.stderr
    assert (target / "audit" / "lost+found").is_dir()
    assert any(p.suffix == ".jsonl" for p in (target / "audit").iterdir())


def test_restore_into_a_volume_mount_point_keeps_the_mount(drill, tmp_path):
    """In Kubernetes the audit folder is a volume's mount point, which cannot be renamed:
    the files in the way move into a folder inside it, the restored chain goes beside."""
    target = tmp_path / "pod"
    audit = target / "audit"
    audit.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(audit)], capture_output=True, text=True)
    if mounted.returncode != 0:
        if os.environ.get("RESILIENCE_ALLOW_NO_MOUNT") == "1":
            pytest.skip(f"no tmpfs mount here: {mounted.stderr.strip()}")
        pytest.fail(f"mount -t tmpfs failed ({mounted.stderr.strip()}): run as root with CAP_SYS_ADMIN, "
                    "or set RESILIENCE_ALLOW_NO_MOUNT=1 to skip", pytrace=False)
    try:
        (audit / "audit-old-000001.jsonl").write_text("an older chain\n")
        result = script("restore", str(drill["archive"]), "--config", str(target / "gateway.yaml"),
                        "--key-file", str(drill["replica"].key), "--force")
        assert result.returncode == 0, result.stderr
        assert os.path.ismount(audit)
        aside = [p for p in audit.iterdir() if p.is_dir() and ".before-restore-" in p.name]
        assert len(aside) == 1 and (aside[0] / "audit-old-000001.jsonl").read_text() == "an older chain\n"
        code, report = drill["replica"].verify_folder(audit)
        assert code == 0, report
    finally:
        subprocess.run(["umount", "-l", str(audit)], capture_output=True)


def test_backup_with_the_wrong_key_is_refused(drill, tmp_path):
    wrong = tmp_path / "wrong-key"
    wrong.write_bytes(os.urandom(48))
    wrong.chmod(0o600)
    out = tmp_path / "never.tar.gz"
    result = script("backup", "--config", str(drill["replica"].config), "--key-file", str(wrong), "--out", str(out))
    assert result.returncode == 1
    assert "do not verify" in result.stderr, result.stderr
    assert not out.exists() and not list(out.parent.glob("*.partial"))
