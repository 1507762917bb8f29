"""`ai-server audit` on a live stack inside a network namespace (real ss, real HAProxy).

The namespace has an interface with a Tailscale-range address (what the fake tailscale
CLI reports), Ollama's stand-in on its loopback, and the gateway from `ai-server run`.
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

from tests.integration.test_netns import REASON, stop_processes
from tests.support import tsfake
from tests.support.gatewayproc import settings_toml

REPO = Path(__file__).resolve().parents[2]
TS_IP, OTHER_IP = "100.100.88.1", "100.100.88.2"

pytestmark = pytest.mark.netns


@pytest.fixture()
def ns() -> Iterator[str]:
    if REASON:
        pytest.skip(REASON)
    name = f"aiaud{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        # a veth pair inside the namespace stands in for the tailscale0 interface
        for cmd in (["link", "set", "lo", "up"],
                    ["link", "add", "ts0", "type", "veth", "peer", "name", "ts1"],
                    ["addr", "add", f"{TS_IP}/32", "dev", "ts0"],
                    ["addr", "add", f"{OTHER_IP}/32", "dev", "ts0"],
                    ["link", "set", "ts0", "up"], ["link", "set", "ts1", "up"]):
            subprocess.run(["ip", "-n", name, *cmd], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_audit_clean_then_finding_when_ollama_is_exposed(ns: str, tmp_path: Path) -> None:
    env = dict(os.environ, AI_SERVER_HOME=str(tmp_path / "home"),
               PYTHONPATH=str(REPO / "src") + os.pathsep + str(REPO))
    tsfake.install(env, tmp_path, tsfake.status_doc(ips=(TS_IP,)))
    cfg = tmp_path / "server.toml"
    cfg.write_text(settings_toml({"gateway": {
        "listen": ["auto"], "port": 11434, "upstream": "127.0.0.1:11434",
        "stats_socket": f"/tmp/ai-audit-{secrets.token_hex(3)}.sock"}}))

    def start(*argv: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, *argv], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def audit() -> tuple[int, dict[str, object]]:
        res = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "aiserver.cli",
                              "--config", str(cfg), "audit", "--json"], env=env,
                             capture_output=True, text=True, timeout=60, check=False)
        return res.returncode, json.loads(res.stdout)

    sim = str(REPO / "tests/support/ollama_sim.py")
    procs = [start(sim, "--host", "127.0.0.1", "--port", "11434", "--quiet"),
             start("-m", "aiserver.cli", "--config", str(cfg), "run", "--wait", "0")]
    try:
        deadline = time.monotonic() + 15
        while True:
            code, report = audit()
            if code == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert code == 0, json.dumps(report, indent=1)
        data = report["data"]
        assert isinstance(data, dict)
        checks = {f["check"]: f for f in data["findings"]}
        assert checks["ollama-loopback"]["ok"] and checks["gateway-listen"]["ok"]
        assert "is the gateway, not Ollama" in checks["ollama-unreachable"]["detail"]
        assert "probes refused" in checks["gateway-refusals"]["detail"]
        # issue 12: a foreign Host and a browser Origin are refused; the admin socket is a
        # private UNIX socket
        assert checks["gateway-host"]["ok"] and checks["gateway-browser"]["ok"]
        assert checks["admin-socket"]["ok"], checks["admin-socket"]
        assert checks["admin-socket"]["detail"].endswith("is a UNIX socket, mode 600")
        assert data["listeners_from"] == "ss"
        assert data["seconds"] < 5

        # Deliberately expose Ollama's stand-in on another address as well.
        procs.append(start(sim, "--host", OTHER_IP, "--port", "11434", "--quiet"))
        time.sleep(1.0)
        code, report = audit()
        assert code == 3
        data = report["data"]
        assert isinstance(data, dict)
        bad = [f for f in data["findings"] if not f["ok"]]
        assert [f["check"] for f in bad] == ["ollama-loopback"]
        assert f"{OTHER_IP}:11434" in bad[0]["detail"]
    finally:
        stop_processes(procs)
