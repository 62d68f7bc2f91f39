"""End to end through both images: the gateway container in front of a Triton
container serving the production repository baked into the CPU image.

Needs GATEWAY_IMAGE and TRITON_IMAGE (scripts/test sets them in its container
mode, after scripts/images built them); skipped without. Both containers run as
production runs them: --network host (loopback only), read-only root
filesystem, uid 10001, configuration and keys as read-only mounts, the audit
log on a writable mount.
"""

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_IMAGE = os.environ.get("GATEWAY_IMAGE")
TRITON_IMAGE = os.environ.get("TRITON_IMAGE")
DOCKER = os.environ.get("DOCKER", "docker")
TRITON_PORT = int(os.environ.get("CONTAINER_E2E_TRITON_PORT", "18300"))
GATEWAY_PORT = TRITON_PORT + 80
TRITON_NAME = "container-e2e"
GATEWAY_CONTAINER = f"gateway-e2e-{TRITON_PORT}"

pytestmark = pytest.mark.skipif(
    not (GATEWAY_IMAGE and TRITON_IMAGE),
    reason="GATEWAY_IMAGE and TRITON_IMAGE name the images (scripts/test --triton container sets them)",
)


def triton(*args):
    subprocess.run([str(ROOT / "scripts/triton"), *args], check=True)


def start_triton():
    triton("start", "--container", "--image", TRITON_IMAGE, "--name", TRITON_NAME, "--model-repo", "image",
           "--http-port", str(TRITON_PORT), "--grpc-port", str(TRITON_PORT + 1),
           "--metrics-port", str(TRITON_PORT + 2), "--timeout", "300")


def status(url, method="GET", body=None, headers=None):
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None, b""


def wait_for(predicate, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    logs = subprocess.run([DOCKER, "logs", "--tail", "30", GATEWAY_CONTAINER], capture_output=True, text=True)
    pytest.fail(f"{what} within {seconds} s; gateway log:\n{logs.stdout}{logs.stderr}")


@pytest.fixture(scope="module")
def deployment():
    # Under the checkout, not /tmp: in CI the Docker daemon is the runner's and
    # sees the checkout at the same path (see .github/workflows/ci.yml).
    base = ROOT / ".build-images" / f"gateway-e2e-{os.getpid()}"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    config_dir, keys_dir, audit_dir = base / "config", base / "keys", base / "audit"
    for d in (config_dir, keys_dir, audit_dir):
        d.mkdir()
    (keys_dir / "dev-secret").write_text(os.urandom(32).hex())
    (keys_dir / "audit-key").write_bytes(os.urandom(48))
    config = yaml.safe_load((ROOT / "config/gateway.yaml").read_text())
    config["listen"] = {"host": "127.0.0.1", "port": GATEWAY_PORT}
    config["triton"] = {"url": f"http://127.0.0.1:{TRITON_PORT}"}
    config["auth"]["keys"][0]["secret_file"] = "/etc/moderation-gateway/keys/dev-secret"
    config["audit"] = {"enabled": True, "path": "/var/lib/moderation/audit",
                       "key_file": "/etc/moderation-gateway/keys/audit-key"}
    config["readiness"] = {"models": ["moderation"]}
    config.pop("traffic", None)
    (config_dir / "gateway.yaml").write_text(yaml.safe_dump(config))
    # The gateway runs as 10001 and only reads the mounts; it writes the audit folder.
    # Secrets are owner-only (the gateway refuses others-readable ones), so they belong
    # to the gateway's uid; without the right to chown, the container runs as our uid.
    for path in (config_dir, keys_dir, *config_dir.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    user = []
    try:
        for path in (audit_dir, *keys_dir.iterdir()):
            os.chown(path, 10001, 10001)
    except PermissionError:
        audit_dir.chmod(0o777)
        user = ["--user", f"{os.getuid()}:{os.getgid()}"]
    for path in keys_dir.iterdir():
        path.chmod(0o600)
    mounts = ["--volume", f"{config_dir}:/etc/moderation-gateway/config:ro",
              "--volume", f"{keys_dir}:/etc/moderation-gateway/keys:ro",
              "--volume", f"{audit_dir}:/var/lib/moderation/audit"]
    run = [DOCKER, "run", "--network", "host", "--read-only", "--tmpfs", "/tmp", *user, *mounts]

    token = subprocess.run([*run, "--rm", GATEWAY_IMAGE, "token", "--config", "/etc/moderation-gateway/config/gateway.yaml"],
                           check=True, capture_output=True, text=True).stdout.strip()
    start_triton()
    subprocess.run([DOCKER, "rm", "-f", GATEWAY_CONTAINER], capture_output=True)
    subprocess.run([*run, "--detach", "--name", GATEWAY_CONTAINER, GATEWAY_IMAGE], check=True, capture_output=True)
    url = f"http://127.0.0.1:{GATEWAY_PORT}"
    try:
        wait_for(lambda: status(url + "/readyz")[0] == 200, 120, "the gateway was not ready")
        yield {"url": url, "token": token, "run": run}
    finally:
        subprocess.run([DOCKER, "stop", "-t", "20", GATEWAY_CONTAINER], capture_output=True)
        subprocess.run([DOCKER, "rm", "-f", GATEWAY_CONTAINER], capture_output=True)
        triton("stop", "--name", TRITON_NAME)
        shutil.rmtree(base, ignore_errors=True)


def test_version_names_the_revision_the_image_was_built_from():
    label = subprocess.run([DOCKER, "image", "inspect", "--format",
                            '{{ index .Config.Labels "org.opencontainers.image.revision" }}', GATEWAY_IMAGE],
                           check=True, capture_output=True, text=True).stdout.strip()
    version = subprocess.run([DOCKER, "run", "--rm", "--read-only", GATEWAY_IMAGE, "--version"],
                             check=True, capture_output=True, text=True).stdout.strip()
    assert label and version == label


def test_moderates_a_real_image_through_both_containers(deployment):
    image = (ROOT / "Tests/Fixtures/images/gateway-sample.jpg").read_bytes()
    code, body = status(deployment["url"] + "/v1/moderate", "POST", image,
                        {"Authorization": f"Bearer {deployment['token']}", "Content-Type": "image/jpeg"})
    assert code == 200, body[:500]
    answer = json.loads(body)
    assert answer["decision"] in ("allow", "review", "block")
    assert answer["model"]["name"] == "moderation"
    assert isinstance(answer["scores"], dict) and answer["scores"]
    code, _ = status(deployment["url"] + "/v1/moderate", "POST", image, {"Content-Type": "image/jpeg"})
    assert code == 401, "no token, no moderation"


def test_the_image_serves_the_console(deployment):
    # config/gateway.yaml's console.directory (../console) is /etc/moderation-gateway/console in the image.
    code, body = status(deployment["url"] + "/console/")
    assert code == 200 and b"Moderation console" in body
    code, _ = status(deployment["url"] + "/console/js/app.js")
    assert code == 200


def test_readyz_follows_triton_readiness(deployment):
    url = deployment["url"] + "/readyz"
    assert status(url)[0] == 200
    triton("stop", "--name", TRITON_NAME)
    wait_for(lambda: status(url)[0] == 503, 60, "/readyz did not turn 503 after Triton stopped")
    assert status(deployment["url"] + "/healthz")[0] == 200, "the gateway itself stays alive"
    start_triton()
    wait_for(lambda: status(url)[0] == 200, 60, "/readyz did not return to 200 after Triton came back")
