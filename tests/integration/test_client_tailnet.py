"""The laptop's side of Tailscale: names that do not resolve, userspace networking.

Name resolution runs inside a network namespace with only `lo` (root), so a lookup of a
MagicDNS name can never leave the machine: it fails there as it does on a laptop whose
MagicDNS is off. The userspace-networking refusals come before any lookup or connection;
they run in such a namespace too, so that even code that forgot to refuse could not leak.
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
from typing import Any

import pytest

from tests.integration.test_client_setup import Laptop
from tests.integration.test_netns import REASON, ip, probe, stop_processes
from tests.support import tsfake
from tests.support.gatewayproc import GatewayProcess, settings_toml

REPO = Path(__file__).resolve().parents[2]
GW_PORT, OLLAMA_PORT = 18434, 18435
USERSPACE = "runs in userspace networking (TUN false)"


class NsLaptop(Laptop):
    """The laptop's commands run in the namespace `ns`."""

    ns = ""

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.ns, sys.executable, "-m",
                               "aiclient.cli", *args], env=self.env, capture_output=True,
                              text=True, timeout=120, check=False, stdin=subprocess.DEVNULL)


@pytest.fixture()
def lo_ns(tmp_path: Path) -> Iterator[str]:
    """A namespace with only `lo` (plus 127.0.0.2, a second "server" address), running
    Ollama's stand-in and the gateway on 127.0.0.1 and 127.0.0.2."""
    if REASON:
        pytest.skip(REASON)
    name = f"aicln{secrets.token_hex(3)}"
    ip("netns", "add", name)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        ip("-n", name, "link", "set", "lo", "up")
        env = dict(os.environ, AI_SERVER_HOME=str(tmp_path / "server"),
                   PYTHONPATH=str(REPO / "src") + os.pathsep + str(REPO))
        cfg = tmp_path / "server.toml"
        cfg.write_text(settings_toml({"gateway": {
            "listen": ["127.0.0.1", "127.0.0.2"], "port": GW_PORT,
            "upstream": f"127.0.0.1:{OLLAMA_PORT}",
            "stats_socket": f"/tmp/ai-cln-{secrets.token_hex(3)}.sock"}}))
        for argv in ([str(REPO / "tests/support/ollama_sim.py"), "--host", "127.0.0.1",
                      "--port", str(OLLAMA_PORT), "--quiet"],
                     ["-m", "aiserver.cli", "--config", str(cfg), "run", "--wait", "0"]):
            procs.append(subprocess.Popen(["ip", "netns", "exec", name, sys.executable, *argv],
                                          env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 20
        # the gateway answers only to its own names: here the address it listens on
        target = ("127.0.0.2", GW_PORT, f"GET /api/version HTTP/1.1\r\nHost: 127.0.0.2:{GW_PORT}"
                                        "\r\nConnection: close\r\n\r\n")
        while not next(iter(probe(name, [target]).values())).startswith("HTTP/1.1 200"):
            assert time.monotonic() < deadline, "the gateway never came up"
            time.sleep(0.3)
        yield name
    finally:
        stop_processes(procs)
        ip("netns", "del", name)


@pytest.fixture()
def ns_laptop(tmp_path: Path, isolated_home: Path, lo_ns: str) -> NsLaptop:
    lp = NsLaptop(tmp_path, isolated_home)
    lp.ns = lo_ns
    return lp


def server_peer(addresses: tuple[str, ...], dns_name: str) -> dict[str, Any]:
    node = tsfake.peer("studio", addresses)
    node["DNSName"] = dns_name
    return node


def setup(lp: Laptop, peer: dict[str, Any]) -> dict[str, Any]:
    lp.tailscale(tsfake.with_peers(tsfake.status_doc(hostname="laptop"), peer))
    res = lp.cli("setup", "--port", str(GW_PORT), "--shell", "bash", "--yes", "--json")
    assert res.returncode == 0, res.stderr
    data: dict[str, Any] = json.loads(res.stdout)["data"]
    return data


def test_setup_writes_the_address_when_the_magicdns_name_does_not_resolve(
        ns_laptop: NsLaptop) -> None:
    """DNSName is set even with MagicDNS off or --accept-dns=false: never write a base URL
    that cannot work."""
    data = setup(ns_laptop, server_peer(("127.0.0.1",), "studio.tail1234.ts.net."))
    assert data["server"] == f"http://127.0.0.1:{GW_PORT}"
    note = next(n for n in data["notes"] if "studio.tail1234.ts.net" in n)
    assert "does not resolve on this device" in note and "using 127.0.0.1" in note
    env = (ns_laptop.home / "ai-client" / "config" / "env.sh").read_text()
    assert "ts.net" not in env and f"127.0.0.1:{GW_PORT}" in env


def test_setup_keeps_a_name_that_resolves_to_the_server(ns_laptop: NsLaptop) -> None:
    data = setup(ns_laptop, server_peer(("127.0.0.1",), "localhost."))
    assert data["server"] == f"http://localhost:{GW_PORT}"
    assert not any("resolve" in n for n in data["notes"])


def test_setup_does_not_trust_a_name_that_resolves_elsewhere(ns_laptop: NsLaptop) -> None:
    """The name answers, but not with the server's Tailscale address: use the address."""
    data = setup(ns_laptop, server_peer(("127.0.0.2",), "localhost."))
    assert data["server"] == f"http://127.0.0.2:{GW_PORT}"
    note = next(n for n in data["notes"] if "localhost" in n)
    assert "not to the server's Tailscale address" in note and "127.0.0.1" in note


@pytest.fixture()
def bare_ns() -> Iterator[str]:
    """A namespace with only `lo`: whatever a command tries, nothing leaves the machine."""
    if REASON:
        pytest.skip(REASON)
    name = f"aiclb{secrets.token_hex(3)}"
    ip("netns", "add", name)
    try:
        ip("-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        ip("netns", "del", name)


@pytest.fixture()
def bare_laptop(tmp_path: Path, isolated_home: Path, bare_ns: str) -> NsLaptop:
    lp = NsLaptop(tmp_path, isolated_home)
    lp.ns = bare_ns
    return lp


@pytest.fixture()
def userspace_laptop(bare_laptop: NsLaptop) -> NsLaptop:
    lp = bare_laptop
    doc = tsfake.with_peers(tsfake.status_doc(hostname="laptop", tun=False),
                            tsfake.peer("studio", ("100.64.0.9", "fd7a:115c:a1e0::9")))
    lp.tailscale(doc)
    return lp


def test_a_laptop_in_userspace_networking_is_told_why_and_what_to_do(
        userspace_laptop: NsLaptop) -> None:
    """Such a laptop has no route to 100.x and no MagicDNS: setup, doctor and test say so
    before trying (no connection is ever attempted)."""
    lp = userspace_laptop
    for args in (["setup", "--yes"], ["setup", "--server", "100.64.0.9", "--yes"],
                 ["setup", "--server", "studio.tail1234.ts.net", "--yes"],
                 ["test", "--server", "http://100.64.0.9:11434"]):
        res = lp.cli(*args)
        assert res.returncode == 5 and res.stderr.count("\n") == 1, (args, res.stderr)
        assert USERSPACE in res.stderr and "TUN device" in res.stderr, res.stderr
    cfg = lp.home / "ai-client" / "config" / "config.toml"
    assert not cfg.exists()  # nothing written
    cfg.parent.mkdir(parents=True)
    cfg.write_text('[server]\nhost = "100.64.0.9"\nport = 11434\n\n'
                   '[client]\nmodel = "qwen3-coder:30b"\nshells = []\n')
    doctor = lp.cli("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["data"]["checks"]}
    assert checks["server"]["status"] == "FAIL", checks
    assert USERSPACE in checks["server"]["detail"] and "TUN" in checks["server"]["fix"]
    res = lp.cli("test")
    assert res.returncode == 5 and USERSPACE in res.stderr


def test_a_userspace_laptop_may_still_use_a_server_off_the_tailnet(
        tmp_path: Path, isolated_home: Path, gateway: GatewayProcess) -> None:
    """The refusal is about tailnet hosts only: a loopback/LAN server still works."""
    lp = Laptop(tmp_path, isolated_home)
    lp.tailscale(tsfake.status_doc(hostname="laptop", tun=False))
    res = lp.cli("setup", "--server", "127.0.0.1", "--port", str(gateway.port),
                               "--shell", "bash", "--yes")
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("state, opts, says", [
    ("NeedsLogin", {"netmap": True, "key_expiry": "2026-01-02T03:04:05Z"},
     "this device's key expired (2026-01-02)"),
    ("NeedsLogin", {"netmap": True}, "needs login again"),
    ("NeedsLogin", {}, "logged out on this device"),
    ("Stopped", {}, "stopped (disconnected); the addresses it still lists do not work"),
    ("InUseOtherUser", {}, "in use by another user account"),
    ("NeedsMachineAuth", {}, "waiting for approval by the tailnet admin"),
    ("Starting", {}, "still connecting"),
])
def test_each_tailscale_state_gets_its_own_one_line_diagnosis(
        bare_laptop: NsLaptop, state: str, opts: dict[str, Any], says: str) -> None:
    """`tailscale status --json` exits 0 in all of these: the state is what tells."""
    lp = bare_laptop
    lp.tailscale(tsfake.with_peers(tsfake.status_doc(state=state, hostname="laptop", **opts),
                                   tsfake.peer("studio", ("100.64.0.9",))))
    res = lp.cli("setup", "--yes")
    assert res.returncode == 5 and res.stderr.count("\n") == 1, res.stderr
    assert says in res.stderr and "(hint: " in res.stderr, res.stderr
