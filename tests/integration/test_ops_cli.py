"""logs / usage / tokens / acl as processes, against the real gateway (HAProxy) where it counts."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.integration.conftest import GatewayFactory
from tests.support.gatewayproc import REPO, GatewayProcess
from tests.support.ollama_sim import OllamaSimulator
from tests.support.signals import default_sigint

# The main cli registers these commands itself; until then, this entry point does.
ENTRY = ("from aiserver.cli import cli; "
         "from aiserver.cli_ops import logs, usage, tokens, acl; "
         "[cli.add_command(c) for c in (logs, usage, tokens, acl)]; "
         "from aicommon.clikit import run_main; run_main(cli, 'ai-server')")


def cli_env(base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.setdefault("AI_TAILSCALE", "/nonexistent/tailscale")  # never the real one
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def ai_server(*args: str, env: dict[str, str] | None = None,
              timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", ENTRY, *args], capture_output=True, text=True,
                          env=cli_env(env), timeout=timeout, check=False)


def get(gw: GatewayProcess, token: str | None, path: str = "/api/tags") -> int:
    conn = http.client.HTTPConnection(gw.host, gw.port, timeout=10)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def master_pid(gw: GatewayProcess) -> int:
    home = Path(gw.env["AI_SERVER_HOME"])
    return int((home / "state" / "gateway" / "haproxy.pid").read_text().split()[0])


def test_tokens_add_and_revoke_apply_to_the_running_gateway(
    sim: OllamaSimulator, gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    tokens_file = tmp_path / "tokens.map"
    pre = tmp_path / "pre.toml"
    pre.write_text(f'[gateway]\ntokens = true\ntokens_file = "{tokens_file}"\n')
    first = ai_server("--config", str(pre), "tokens", "add", "first-laptop")
    assert first.returncode == 0, first.stderr
    assert "not running" in first.stderr
    token1 = first.stdout.strip()

    gw = gateway_factory(sim.port, gateway={"tokens": True, "tokens_file": str(tokens_file)})
    pid = master_pid(gw)
    assert pid == gw.proc.pid  # `ai-server run` became the HAProxy master
    assert get(gw, token1) == 200

    added = ai_server("--config", str(gw.config), "tokens", "add", "second-laptop", "--json",
                      env=gw.env)
    assert added.returncode == 0, added.stderr
    data = json.loads(added.stdout)["data"]
    token2 = data["token"]
    assert data["gateway"]["state"] == "reloaded" and data["gateway"]["master_pid"] == pid
    assert eventually(lambda: get(gw, token2) == 200), "the new token was never accepted"
    assert get(gw, token1) == 200

    listed = ai_server("--config", str(gw.config), "tokens", "list", env=gw.env)
    assert "first-laptop" in listed.stdout and "second-laptop" in listed.stdout
    assert token1 not in listed.stdout and token2 not in listed.stdout

    revoked = ai_server("--config", str(gw.config), "tokens", "revoke", "second-laptop",
                        env=gw.env)
    assert revoked.returncode == 0, revoked.stderr
    assert "reloaded the gateway" in revoked.stderr
    assert eventually(lambda: get(gw, token2) == 401), "the revoked token is still accepted"
    assert get(gw, token1) == 200
    # graceful reloads only: the same master, still running
    assert gw.proc.poll() is None and master_pid(gw) == pid

    # the access log names the device; usage and logs read the gateway's real lines
    assert eventually(lambda: any('"device":"first-laptop"' in ln for ln in gw.log_lines()))
    usage = ai_server("usage", "--file", str(gw.log_path), "--json", env=gw.env)
    assert usage.returncode == 0, usage.stderr
    groups = {g["key"]: g for g in json.loads(usage.stdout)["data"]["groups"]}
    assert groups["first-laptop"]["requests"] >= 3 and groups["first-laptop"]["errors"] == 0
    assert groups["second-laptop"]["requests"] >= 1
    # requests refused with 401 carry no device: they are named by their address
    assert groups["127.0.0.1"]["client_errors"] == groups["127.0.0.1"]["requests"] >= 1
    logs = ai_server("logs", "--file", str(gw.log_path), "-n", "5", "--json", env=gw.env)
    entries = json.loads(logs.stdout)["data"]["entries"]
    assert entries and all(e["path"] == "/api/tags" for e in entries)


def test_tokens_add_when_the_pid_file_is_stale(tmp_path: Path) -> None:
    home = tmp_path / "home"
    gw_dir = home / "state" / "gateway"
    gw_dir.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (gw_dir / "haproxy.pid").write_text(f"{dead.pid}\n")
    config = tmp_path / "c.toml"
    config.write_text('[gateway]\ntokens = true\n')
    env = dict(os.environ, AI_SERVER_HOME=str(home))
    res = ai_server("--config", str(config), "tokens", "add", "x", env=env)
    assert res.returncode == 0 and "not running" in res.stderr
    assert (home / "config" / "tokens.map").stat().st_mode & 0o777 == 0o600


def test_logs_follow_prints_new_lines_and_ctrl_c_exits_130(tmp_path: Path) -> None:
    log = tmp_path / "gateway.log"
    old = ('{"time":"2026-03-10T11:00:00Z","client":"100.64.0.5","device":"alice",'
           '"method":"GET","path":"\\/v1\\/models","status":200,"bytes_in":90,"bytes_out":700,'
           '"queue_ms":0,"ttfb_ms":4,"total_ms":5,"termination":"----","session":"-",'
           '"agent":"-"}\n')
    log.write_text(old)
    env = cli_env(dict(os.environ, AI_TAILSCALE=str(tmp_path / "absent")))
    proc = subprocess.Popen([sys.executable, "-c", ENTRY, "logs", "-f", "--json", "--file",
                             str(log)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, preexec_fn=default_sigint)
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert first["device"] == "alice" and first["path"] == "/v1/models"
        with open(log, "a") as fh:
            fh.write(old.replace("alice", "bob"))
        second = json.loads(proc.stdout.readline())  # one JSON object per line, no envelope
        assert second["device"] == "bob" and second["name"] == "bob"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert "Traceback" not in err


def test_acl_command_as_a_process(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[gateway]\nport = 11435\n")
    res = ai_server("--config", str(config), "acl")
    assert res.returncode == 0, res.stderr
    from tests.support import hujson

    doc = hujson.loads(res.stdout)
    assert {"src": ["autogroup:member"], "dst": ["tag:ai-server"],
            "ip": ["tcp:11435"]} in doc["grants"]
