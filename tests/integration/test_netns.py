"""Loopback isolation proof with real network namespaces (root only).

A "server" namespace runs Ollama's stand-in on its loopback and the gateway on a
Tailscale-range address of a veth link; a "client" namespace on the other end of the link
reaches the gateway, and reaches the upstream on no address at all.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gatewayproc import settings_toml

REPO = Path(__file__).resolve().parents[2]
SERVER_IP, CLIENT_IP = "100.100.77.1", "100.100.77.2"
PORT = 11434  # the gateway and Ollama share the port, as in a real install

pytestmark = pytest.mark.netns


def _netns_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    probe = f"aiprobe{secrets.token_hex(3)}"
    res = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True,
                         check=False)
    if res.returncode != 0:
        return f"cannot create a network namespace: {res.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], check=False)
    return None


REASON = _netns_unavailable()
if REASON:
    print(f"\nskipping network-namespace tests: {REASON}", file=sys.stderr)


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@pytest.fixture()
def namespaces() -> Iterator[tuple[str, str]]:
    if REASON:
        pytest.skip(REASON)
    tag = secrets.token_hex(3)
    srv, cli = f"aisrv{tag}", f"aicli{tag}"
    ip("netns", "add", srv)
    ip("netns", "add", cli)
    try:
        ip("link", "add", f"vs{tag}", "type", "veth", "peer", "name", f"vc{tag}")
        ip("link", "set", f"vs{tag}", "netns", srv)
        ip("link", "set", f"vc{tag}", "netns", cli)
        for ns, dev, addr in ((srv, f"vs{tag}", SERVER_IP), (cli, f"vc{tag}", CLIENT_IP)):
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")
        yield srv, cli
    finally:
        ip("netns", "del", srv)
        ip("netns", "del", cli)


PROBE = textwrap.dedent("""
    import json, socket, sys
    def attempt(host, port, request):
        try:
            with socket.create_connection((host, port), timeout=3) as s:
                s.sendall(request)
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                return data.split(b"\\r\\n", 1)[0].decode()
        except OSError as exc:
            return "error: " + type(exc).__name__
    targets = json.loads(sys.argv[1])
    print(json.dumps({f"{h} {p} {r}": attempt(h, p, r.encode()) for h, p, r in targets}))
""")


def stop_processes(procs: list[subprocess.Popen[bytes]]) -> None:
    """Terminate every process, then wait for each (killing one that outlives 10 s)."""
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()


def in_ns(ns: str, *argv: str, **kw: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["ip", "netns", "exec", ns, *argv], **kw)  # type: ignore[call-overload]


def probe(ns: str, targets: list[tuple[str, int, str]]) -> dict[str, str]:
    res = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", PROBE,
                          json.dumps(targets)], capture_output=True, text=True, timeout=60,
                         check=True)
    return dict(json.loads(res.stdout))


def req(method: str, path: str) -> str:
    # the gateway answers only to its own names (issue 12 §1): its listen address here
    return f"{method} {path} HTTP/1.1\r\nHost: {SERVER_IP}:{PORT}\r\nConnection: close\r\n\r\n"


def test_client_reaches_gateway_and_never_ollama(namespaces: tuple[str, str],
                                                 tmp_path: Path) -> None:
    srv, cli = namespaces
    env = dict(os.environ, AI_SERVER_HOME=str(tmp_path / "home"),
               PYTHONPATH=str(REPO / "src") + os.pathsep + str(REPO))
    cfg = tmp_path / "server.toml"
    cfg.write_text(settings_toml({"gateway": {
        "listen": [SERVER_IP], "port": PORT, "upstream": f"127.0.0.1:{PORT}",
        "stats_socket": f"/tmp/ai-netns-{secrets.token_hex(3)}.sock"}}))
    procs = [
        in_ns(srv, sys.executable, str(REPO / "tests/support/ollama_sim.py"), "--host",
              "127.0.0.1", "--port", str(PORT), "--quiet", env=env,
              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        in_ns(srv, sys.executable, "-m", "aiserver.cli", "--config", str(cfg), "run", "--wait",
              "0", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE),
    ]
    try:
        good = (SERVER_IP, PORT, req("GET", "/api/version"))
        deadline = time.monotonic() + 15
        while not probe(cli, [good])[" ".join(map(str, good))].startswith("HTTP/1.1 200"):
            assert time.monotonic() < deadline, "gateway never became reachable"
            time.sleep(0.3)
        seen = probe(cli, [
            good,
            (SERVER_IP, PORT, req("POST", "/api/pull")),
            (SERVER_IP, PORT, req("DELETE", "/api/delete")),
            # Ollama's own port on every address the client could try:
            ("127.0.0.1", PORT, req("GET", "/api/version")),
            (CLIENT_IP, PORT, req("GET", "/api/version")),
            (SERVER_IP, 8405, req("GET", "/metrics")),
        ])
        values = list(seen.values())
        assert values[0].startswith("HTTP/1.1 200")
        assert values[1].startswith("HTTP/1.1 403") and values[2].startswith("HTTP/1.1 403")
        for refused in values[3:]:
            assert refused.startswith("error: "), seen
        # ...while inside the server namespace Ollama is right there on loopback.
        local = probe(srv, [("127.0.0.1", PORT, req("POST", "/api/pull"))])
        assert next(iter(local.values())).startswith("HTTP/1.1 ")
    finally:
        stop_processes(procs)
