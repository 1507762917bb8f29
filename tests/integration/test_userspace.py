"""Tailscale userspace networking, reproduced in network namespaces (root only).

A "server" namespace (only `lo`) runs Ollama's stand-in and the gateway; a "peer" namespace
is a tailnet device the policy lets in on the relayed ports. tests/support/tsrelay.py is
tailscaled's delivery rule: it accepts the peer's connection to the server's Tailscale address
TS_IP:P (in the peer's namespace) and dials 127.0.0.1:P inside the server's namespace, where it
has no socket of its own. The server has no route to its own Tailscale address, as in real
userspace mode, so a probe of it from the server itself never reaches "tailscaled" — exactly
why such a probe proves nothing.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_netns import REASON, in_ns, ip, probe, stop_processes
from tests.support import tsfake
from tests.support.gatewayproc import settings_toml

REPO = Path(__file__).resolve().parents[2]
TS_IPS = ("100.100.99.1", "fd7a:115c:a1e0::99")  # the server's tailnet addresses
ENTRY_IP = TS_IPS[0]  # as the peer dials it
PORT, ALT_PORT, METRICS = 11434, 11435, 8405

pytestmark = pytest.mark.netns


@pytest.fixture()
def namespaces() -> Iterator[tuple[str, str]]:
    if REASON:
        pytest.skip(REASON)
    tag = secrets.token_hex(3)
    srv, peer = f"aiusr{tag}", f"aiusp{tag}"
    ip("netns", "add", srv)
    ip("netns", "add", peer)
    try:
        ip("-n", srv, "link", "set", "lo", "up")
        ip("-n", peer, "link", "set", "lo", "up")
        # the peer reaches the server's tailnet address through "tailscaled" (the relay)
        ip("-n", peer, "addr", "add", f"{ENTRY_IP}/32", "dev", "lo")
        yield srv, peer
    finally:
        ip("netns", "del", srv)
        ip("netns", "del", peer)


class Server:
    """Processes in the server namespace, with the fake tailscale CLI in userspace mode."""

    def __init__(self, ns: str, peer: str, tmp_path: Path, gateway: dict[str, object]) -> None:
        self.ns, self.peer = ns, peer
        self.env = dict(os.environ, AI_SERVER_HOME=str(tmp_path / "home"),
                        PYTHONPATH=str(REPO / "src") + os.pathsep + str(REPO))
        tsfake.install(self.env, tmp_path, tsfake.status_doc(ips=TS_IPS, tun=False))
        self.cfg = tmp_path / "server.toml"
        self.cfg.write_text(settings_toml({"gateway": {
            "listen": ["auto"], "metrics_port": METRICS,
            "stats_socket": f"/tmp/ai-us-{secrets.token_hex(3)}.sock", **gateway}}))
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *argv: str) -> subprocess.Popen[bytes]:
        proc = in_ns(self.ns, sys.executable, *argv, env=self.env, stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE)
        self.procs.append(proc)
        return proc

    def ollama(self, host: str) -> None:
        self.start(str(REPO / "tests/support/ollama_sim.py"), "--host", host, "--port",
                   str(PORT), "--quiet")

    def relay(self, *ports: int) -> None:
        proc = in_ns(self.peer, sys.executable, str(REPO / "tests/support/tsrelay.py"),
                     f"/var/run/netns/{self.ns}", ENTRY_IP, *map(str, ports),
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"

    def ai_server(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.ns, sys.executable, "-m",
                               "aiserver.cli", "--config", str(self.cfg), *args], env=self.env,
                              capture_output=True, text=True, timeout=60, check=False)

    def audit(self) -> tuple[int, dict[str, dict[str, object]]]:
        res = self.ai_server("audit", "--json")
        doc = json.loads(res.stdout)
        return res.returncode, {f["check"]: f for f in doc["data"]["findings"]}

    def stop(self) -> None:
        stop_processes(self.procs)


def request(method: str, path: str, host: str) -> str:
    return f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"


def wait_until(check: object, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.3)


def test_ollama_on_ipv4_loopback_is_reached_by_peers_and_the_audit_says_so(
        namespaces: tuple[str, str], tmp_path: Path) -> None:
    """The layout before the fix: Ollama on 127.0.0.1, the gateway moved to another port.

    A peer reaches Ollama's admin API through tailscaled's delivery; the audit must fail
    (it used to pass: its probe of the server's own 100.x address was simply refused).
    """
    srv, peer = namespaces
    server = Server(srv, peer, tmp_path, {"port": ALT_PORT, "upstream": f"127.0.0.1:{PORT}"})
    try:
        server.ollama("127.0.0.1")
        server.relay(PORT, ALT_PORT)
        pull = (ENTRY_IP, PORT, request("POST", "/api/pull", f"localhost:{PORT}"))
        wait_until(lambda: probe(peer, [pull])[" ".join(map(str, pull))].startswith("HTTP/1.1 "),
                   "the relay never delivered to Ollama")
        # The hazard is real in this reproduction: the peer talks to Ollama itself.
        seen = probe(peer, [(ENTRY_IP, PORT, request("GET", "/api/version", "localhost"))])
        assert next(iter(seen.values())) == "HTTP/1.1 200 OK"

        # The gateway as this layout ran it: refused now, serving 127.0.0.1:11435 before.
        run = server.start("-m", "aiserver.cli", "--config", str(server.cfg), "run", "--wait",
                           "0")
        gateway = ("127.0.0.1", ALT_PORT, request("GET", "/api/version", "127.0.0.1"))
        wait_until(lambda: run.poll() is not None or probe(srv, [gateway])[
            " ".join(map(str, gateway))].startswith("HTTP/1.1 200"), "run neither ran nor quit")

        code, checks = server.audit()
        assert code == 3, json.dumps(checks, indent=1)
        finding = checks["userspace-ollama"]
        assert finding["ok"] is False
        assert f"127.0.0.1:{PORT}" in str(finding["detail"])
        assert f"[::1]:{PORT}" in str(finding["fix"])
        # ...and nothing in the report claims the 100.x probe proved isolation.
        assert "ollama-unreachable" not in checks

        # The gateway refuses to run in front of an Ollama that tailscaled delivers to.
        assert run.wait(timeout=30) == 4
        assert run.stderr is not None
        err = run.stderr.read().decode()
        assert err.count("\n") == 1 and "userspace networking" in err and "[::1]" in err, err
    finally:
        server.stop()


def test_ollama_on_ipv6_loopback_is_out_of_reach_and_the_gateway_is_all_peers_see(
        namespaces: tuple[str, str], tmp_path: Path) -> None:
    """The fix: Ollama on [::1]:11434, the gateway alone on 127.0.0.1 (same port)."""
    srv, peer = namespaces
    server = Server(srv, peer, tmp_path, {"port": PORT, "upstream": f"[::1]:{PORT}"})
    try:
        server.ollama("::1")
        server.start("-m", "aiserver.cli", "--config", str(server.cfg), "run", "--wait", "0")
        server.relay(PORT, METRICS)
        version = (ENTRY_IP, PORT, request("GET", "/api/version", f"{TS_IPS[0]}:{PORT}"))
        wait_until(lambda: probe(peer, [version])[" ".join(map(str, version))]
                   .startswith("HTTP/1.1 200"), "the gateway never answered through the relay")
        seen = list(probe(peer, [
            (ENTRY_IP, PORT, request("POST", "/api/pull", f"{TS_IPS[0]}:{PORT}")),
            (ENTRY_IP, PORT, request("DELETE", "/api/delete", "localhost")),
            (ENTRY_IP, METRICS, request("GET", "/metrics", "localhost")),
        ]).values())
        assert seen[0].startswith("HTTP/1.1 403") and seen[1].startswith("HTTP/1.1 403"), seen
        assert seen[2].startswith("error: "), seen  # metrics moved to ::1 with Ollama

        code, checks = server.audit()
        assert code == 0, json.dumps(checks, indent=1)
        assert checks["userspace-ollama"]["ok"] is True
        assert "userspace-gateway" not in checks
        # Ollama really is on ::1 only: 127.0.0.1:11434 is the gateway.
        # Ollama's stand-in handles an admin route itself on ::1 (a 400 for the missing body);
        # 127.0.0.1:11434 is the gateway and refuses it.
        local = probe(srv, [("::1", PORT, request("DELETE", "/api/delete", "localhost")),
                            ("127.0.0.1", PORT, request("DELETE", "/api/delete", "localhost"))])
        answers = list(local.values())
        assert answers[0].startswith("HTTP/1.1 4") and not answers[0].startswith(
            "HTTP/1.1 403") and answers[1].startswith("HTTP/1.1 403"), local
    finally:
        server.stop()


def test_without_ipv6_loopback_the_preflight_fails_instead_of_exposing_ollama(
        namespaces: tuple[str, str], tmp_path: Path) -> None:
    """Ollama cannot leave 127.0.0.1 on a machine without ::1: say so, never fall back."""
    srv, peer = namespaces
    subprocess.run(["ip", "netns", "exec", srv, "sysctl", "-qw",
                    "net.ipv6.conf.lo.disable_ipv6=1"], check=True)
    server = Server(srv, peer, tmp_path, {"port": PORT, "upstream": f"[::1]:{PORT}"})
    res = server.ai_server("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(res.stdout)["data"]["checks"]}
    assert res.returncode == 3
    assert checks["tailscale-tun"]["status"] == "FAIL"
    assert "no IPv6 loopback" in checks["tailscale-tun"]["detail"]
