"""scripts/triton starts Triton reachable from this host only.

Triton's HTTP, gRPC and metrics servers answer anyone who can reach them (no
authentication), so an instance the scripts start must not listen on every
interface: clients go through the gateway. This starts an instance the way the
suite does (a process, or a container with --network host when TRITON_IMAGE is
set) and reads the kernel's table of listening sockets.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PORT = int(os.environ.get("TRITON_LISTEN_TEST_PORT", "18060"))
NAME = "listen-check"


def listeners(port: int) -> list[str]:
    """Local addresses of sockets listening on `port` (IPv4 and IPv6, an IPv4-mapped
    IPv6 address as its IPv4 address), from /proc/net."""
    found = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            address, port_hex = fields[1].split(":")
            if fields[3] != "0A" or int(port_hex, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            if width == 8:
                found.append(".".join(str(b) for b in raw[::-1]))
            else:  # four little-endian 32-bit words
                address6 = ipaddress.IPv6Address(b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
                found.append(str(address6.ipv4_mapped or address6))
    return found


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    repo = tmp_path_factory.mktemp("empty-repo")  # no models: Triton starts and is ready
    repo.chmod(0o755)  # pytest makes it 0700; the image's Triton runs as a non-root user
    command = [str(ROOT / "scripts/triton"), "start", "--name", NAME, "--model-repo", str(repo),
               "--http-port", str(PORT), "--grpc-port", str(PORT + 1), "--metrics-port", str(PORT + 2),
               "--cache-size", "0", "--timeout", "300"]
    if os.environ.get("TRITON_IMAGE"):
        command += ["--container", "--image", os.environ["TRITON_IMAGE"]]
    subprocess.run(command, check=True, cwd=ROOT)
    try:
        yield
    finally:
        subprocess.run([str(ROOT / "scripts/triton"), "stop", "--name", NAME], cwd=ROOT)


@pytest.mark.parametrize("offset,server", [(0, "http"), (1, "grpc"), (2, "metrics")])
def test_listens_on_loopback_only(instance, offset, server):
    addresses = listeners(PORT + offset)
    assert addresses, f"nothing listens on the {server} port {PORT + offset}"
    assert set(addresses) == {"127.0.0.1"}, f"Triton's {server} server listens on {addresses}"
