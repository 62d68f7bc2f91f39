"""A real gateway (the debug build of moderation-gateway) in front of the
moderation Triton that scripts/test starts (TRITON_MODERATION_URL), serving
the console from console/, with its own traffic file, keys and audit folder
in a temporary directory; and a headless Chromium (Debian's package) driven by
Playwright."""

import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TRITON_URL = os.environ.get("TRITON_MODERATION_URL")
PORT = int(os.environ.get("CONSOLE_TEST_PORT", "18390"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("CONSOLE_ARTIFACTS", ROOT / "test-artifacts" / "console"))


def gateway_binary():
    for candidate in (os.environ.get("GATEWAY_BIN"), ROOT / ".build" / "debug" / "moderation-gateway"):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    pytest.fail("no moderation-gateway build: run `swift build` (scripts/test does)", pytrace=False)


def fetch(url, method="GET", body=None, headers=None):
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None, {}, b""


@pytest.fixture(scope="session")
def gateway(tmp_path_factory):
    if not TRITON_URL:
        pytest.fail("TRITON_MODERATION_URL is not set: run scripts/test (it starts the moderation Triton)", pytrace=False)
    base = tmp_path_factory.mktemp("console-gateway")
    (base / "dev-secret").write_text(os.urandom(32).hex())
    (base / "audit-key").write_bytes(os.urandom(48))
    for secret in ("dev-secret", "audit-key"):
        (base / secret).chmod(0o600)  # the gateway refuses secrets others can read
    # The operators' file, with canary windows of 2 s that one request can fill, so
    # the operate view has judged windows to show within the test's time.
    traffic = base / "traffic.yaml"
    text = (ROOT / "config" / "traffic.yaml").read_text()
    for old, new in (("window_seconds: 60 ", "window_seconds: 2 "), ("min_requests: 50 ", "min_requests: 1 ")):
        assert old in text, f"config/traffic.yaml has no '{old}'"
        text = text.replace(old, new)
    traffic.write_text(text)
    config = yaml.safe_load((ROOT / "config" / "gateway.yaml").read_text())
    config["listen"] = {"host": "127.0.0.1", "port": PORT}
    config["triton"] = {"url": TRITON_URL}
    config["auth"]["keys"][0]["secret_file"] = str(base / "dev-secret")
    config["audit"] = {"enabled": True, "path": str(base / "audit"), "key_file": str(base / "audit-key")}
    config["traffic"] = {"file": str(traffic), "canary_state_file": str(base / "canary-state.json"), "poll_interval": 0.2}
    config["console"] = {"directory": str(ROOT / "console")}
    config["logging"] = {"level": "warning", "format": "json"}
    config_file = base / "gateway.yaml"
    config_file.write_text(yaml.safe_dump(config))
    binary = gateway_binary()

    def token(role, subject):
        return subprocess.run([binary, "token", "--config", str(config_file), "--sub", subject, "--role", role],
                              check=True, capture_output=True, text=True).stdout.strip()

    log = open(base / "gateway.log", "wb")
    process = subprocess.Popen([binary, "serve", "--config", str(config_file)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{PORT}"
    try:
        deadline = time.monotonic() + 180
        while fetch(url + "/readyz")[0] != 200:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the gateway did not become ready:\n{(base / 'gateway.log').read_text()[-3000:]}", pytrace=False)
            time.sleep(0.3)
        yield {"url": url, "traffic": traffic, "admin": token("admin", "console-admin"),
               "client": token("client", "console-client"), "token": token}
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: scripts/bootstrap installs Debian's chromium", pytrace=False)
    with sync_playwright() as playwright:
        # The system Chromium, never a downloaded browser; no sandbox when run as root (CI).
        instance = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=["--no-sandbox"] if os.geteuid() == 0 else [])
        yield instance
        instance.close()


@pytest.fixture
def page(browser, gateway):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(gateway["url"] + "/console/")
    yield page
    context.close()
    # A CSP violation or a script error shows up here: the console must run clean.
    unexpected = [e for e in errors if "Failed to load resource" not in e]
    assert not unexpected, unexpected


@pytest.fixture(scope="session")
def artifacts():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
