"""`ai-client setup` → shells, Aider, claude-ollama → `uninstall`, against the real gateway
and the simulator, in a temp HOME with fake tailscale and claude."""

from __future__ import annotations

import http.server
import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import GatewayFactory
from tests.support import tsfake
from tests.support.gatewayproc import GatewayProcess, free_port
from tests.support.ollama_sim import OllamaSimulator

REPO = Path(__file__).resolve().parents[2]
FAKES = REPO / "tests" / "support" / "fakes"


class Laptop:
    def __init__(self, tmp: Path, home: Path) -> None:
        self.home = home
        self.bin = tmp / "bin"
        self.bin.mkdir()
        (self.bin / "claude").symlink_to(FAKES / "claude")
        self.claude_log = tmp / "claude.jsonl"
        self.env = dict(os.environ, HOME=str(home), SHELL="/bin/bash",
                        FAKE_CLAUDE_LOG=str(self.claude_log),
                        PATH=f"{self.bin}:{os.environ['PATH']}")
        self.env.pop("ZDOTDIR", None)
        self.tmp = tmp

    def tailscale(self, doc: dict[str, Any] | None) -> None:
        tsfake.install(self.env, self.tmp, doc)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "aiclient.cli", *args], env=self.env,
                              capture_output=True, text=True, timeout=120, check=False,
                              stdin=subprocess.DEVNULL)

    def snapshot(self) -> dict[str, bytes]:
        """Every file of the laptop's HOME; the gateway's own state (`ai-server/`, which the
        test's server keeps in the same temp HOME and writes as it starts) is not the laptop's."""
        return {str(p.relative_to(self.home)): (p.read_bytes() if p.is_file() else b"<dir>")
                for p in sorted(self.home.rglob("*"))
                if p.relative_to(self.home).parts[0] != "ai-server"}


@pytest.fixture()
def laptop(tmp_path: Path, isolated_home: Path) -> Laptop:
    lp = Laptop(tmp_path, isolated_home)
    lp.tailscale(tsfake.status_doc())
    return lp


def test_setup_idempotent_effective_and_uninstall_restores(laptop: Laptop,
                                                            gateway: GatewayProcess) -> None:
    rc = laptop.home / ".bashrc"
    rc.write_text("# my bashrc\nalias ll='ls -l'\n")
    zrc = laptop.home / ".zshrc"
    zrc.write_text("export EDITOR=vim")  # no final newline
    meta = laptop.home / ".aider.model.metadata.json"
    mine = {"openai/llama3.2:3b": {"max_input_tokens": 1234}, "other/x": {"a": 1}}
    meta.write_text(json.dumps(mine))
    before = laptop.snapshot()

    res = laptop.cli("setup", "--server", "127.0.0.1", "--port", str(gateway.port),
                     "--shell", "bash,zsh", "--yes", "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)["data"]
    assert data["applied"] and data["model"] == "qwen3-coder:30b"
    assert data["server"] == f"http://127.0.0.1:{gateway.port}"
    cfg = laptop.home / "ai-client" / "config" / "config.toml"
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600

    again = laptop.cli("setup", "--server", "127.0.0.1", "--port", str(gateway.port),
                       "--shell", "bash,zsh", "--yes")
    assert again.returncode == 0 and "nothing to change" in again.stdout, again.stderr

    # the user's Aider entries survive; ours describe the server's models at zero cost
    doc = json.loads(meta.read_text())
    assert doc["openai/llama3.2:3b"] == {"max_input_tokens": 1234} and doc["other/x"] == {"a": 1}
    ours = doc["openai/qwen3-coder:30b"]
    assert ours["input_cost_per_token"] == 0 and ours["max_input_tokens"] > 0

    # real shells see the variables and the wrapper
    for argv in (["bash", "-i", "-c"], ["zsh", "-i", "-c"]):
        out = subprocess.run([*argv, 'printf "%s|%s|%s\\n" "$OPENAI_API_BASE" "$AIDER_MODEL" '
                              '"$(command -v claude-ollama)"'], env=laptop.env,
                             capture_output=True, text=True, timeout=30, check=True).stdout
        base, model, wrapper = out.strip().splitlines()[-1].split("|")
        assert base == f"http://127.0.0.1:{gateway.port}/v1", argv
        assert model == "openai/qwen3-coder:30b" and wrapper.endswith("/claude-ollama")
        # the wrapper runs the (fake) claude with every argument and the backend environment
        subprocess.run([*argv, 'claude-ollama -p "hello world" --model x'], env=laptop.env,
                       capture_output=True, text=True, timeout=30, check=True)
    call = json.loads(laptop.claude_log.read_text().splitlines()[-1])
    settings_file = laptop.home / "ai-client" / "state" / "bin" / "claude-ollama.settings.json"
    # the wrapper's values also go in with --settings, which beats user/project settings
    assert call["argv"] == ["--settings", str(settings_file), "-p", "hello world", "--model", "x"]
    assert stat.S_IMODE(settings_file.stat().st_mode) == 0o600  # holds the token
    env = call["env"]
    assert json.loads(settings_file.read_text())["env"] == {
        k: v for k, v in env.items() if k.startswith(("ANTHROPIC_", "CLAUDE_", "API_TIMEOUT",
                                                      "DISABLE_"))}
    assert env["ANTHROPIC_BASE_URL"] == f"http://127.0.0.1:{gateway.port}"
    assert env["ANTHROPIC_API_KEY"] == "" and env["ANTHROPIC_AUTH_TOKEN"] == "ollama"
    assert env["ANTHROPIC_MODEL"] == env["CLAUDE_CODE_SUBAGENT_MODEL"] == "qwen3-coder:30b"
    assert env["CLAUDE_CODE_ATTRIBUTION_HEADER"] == "0"
    assert int(env["CLAUDE_CODE_MAX_CONTEXT_TOKENS"]) > 0

    # doctor starts each configured shell and sees the integration; status lists the tools
    doctor = laptop.cli("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["data"]["checks"]}
    assert doctor.returncode == 0, doctor.stdout
    assert checks["bash effective"]["status"] == checks["zsh effective"]["status"] == "PASS"
    assert checks["server"]["detail"].startswith("Ollama 0.32.15")
    assert checks["claude"]["detail"] == \
        f"claude 2.1.240 (unknown: {laptop.bin / 'claude'})"  # how it is installed, where
    # a block removed by hand is noticed
    saved = rc.read_text()
    rc.write_text("# my bashrc\nalias ll='ls -l'\n")
    broken = laptop.cli("doctor", "--json")
    assert broken.returncode == 3
    bad = {c["name"] for c in json.loads(broken.stdout)["data"]["checks"]
           if c["status"] == "FAIL"}
    assert {"bash .bashrc", "bash effective"} <= bad
    rc.write_text(saved)

    # the user edits outside the block; uninstall keeps that and removes only ours
    rc.write_text(rc.read_text() + "export LATER=1\n")
    res = laptop.cli("uninstall", "--purge")
    assert res.returncode == 0, res.stderr
    after = laptop.snapshot()
    assert after.pop(".bashrc") == before.pop(".bashrc") + b"export LATER=1\n"
    assert after == before


def test_dry_run_shows_diffs_and_writes_nothing(laptop: Laptop, gateway: GatewayProcess) -> None:
    before = laptop.snapshot()
    res = laptop.cli("setup", "--server", "127.0.0.1", "--port", str(gateway.port), "--shell",
                     "bash", "--dry-run")
    assert res.returncode == 0, res.stderr
    assert "+# >>> ai-client >>>" in res.stdout and "+export OPENAI_API_BASE=" in res.stdout
    assert "(dry run: nothing changed)" in res.stdout
    assert laptop.snapshot() == before


@pytest.mark.parametrize("form", ["127.0.0.1:{port}", "http://127.0.0.1:{port}",
                                  "http://127.0.0.1:{port}/", "http://127.0.0.1:{port}/v1"])
def test_setup_server_takes_the_forms_test_takes(laptop: Laptop, gateway: GatewayProcess,
                                                 form: str) -> None:
    res = laptop.cli("setup", "--server", form.format(port=gateway.port), "--shell", "bash",
                     "--dry-run", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["data"]["server"] == f"http://127.0.0.1:{gateway.port}"


def test_a_failing_step_changes_nothing(laptop: Laptop, gateway: GatewayProcess) -> None:
    (laptop.home / ".bashrc").write_text("# mine\n")
    before = laptop.snapshot()
    laptop.env["AI_CLIENT_FAILPOINT"] = "edit .bashrc"
    res = laptop.cli("setup", "--server", "127.0.0.1", "--port", str(gateway.port), "--shell",
                     "bash", "--yes")
    assert res.returncode == 1 and "setup failed at step 'edit .bashrc'" in res.stderr
    assert laptop.snapshot() == before


@pytest.mark.parametrize("host, words", [
    ("studio; rm -rf ~", "not a DNS name or an IP"), ("$(id)", "not a DNS name or an IP"),
    ("a b", "not a DNS name or an IP"), ("-x", "not a DNS name or an IP"),
    ("http://h:1/x", "is not host, host:port or http://host:port"),
    ("https://h:1", "only http:// is spoken by the gateway")])
def test_host_must_be_a_name_or_ip(laptop: Laptop, host: str, words: str) -> None:
    res = laptop.cli("setup", "--server", host, "--yes")  # a bad option value: usage, exit 2
    assert res.returncode == 2 and "Invalid value for '--server'" in res.stderr
    assert words in res.stderr


def test_token_gateway(laptop: Laptop, sim: OllamaSimulator, gateway_factory: GatewayFactory,
                       tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.map"
    tokens.write_text("laptop-token-0123456789 laptop\n")
    tokens.chmod(0o600)
    gw = gateway_factory(sim.port, gateway={"tokens": True, "tokens_file": str(tokens)})
    res = laptop.cli("setup", "--server", "127.0.0.1", "--port", str(gw.port), "--yes")
    assert res.returncode == 5 and "requires a device token" in res.stderr
    res = laptop.cli("setup", "--server", "127.0.0.1", "--port", str(gw.port), "--token",
                     "wrong-token-0000000000", "--yes")
    assert res.returncode == 5 and "rejected the one given" in res.stderr
    res = laptop.cli("setup", "--server", "127.0.0.1", "--port", str(gw.port), "--token",
                     "laptop-token-0123456789", "--shell", "bash", "--yes")
    assert res.returncode == 0, res.stderr
    envsh = (laptop.home / "ai-client" / "config" / "env.sh").read_text()
    assert "OPENAI_API_KEY='laptop-token-0123456789'" in envsh


def test_discovery_zero_one_two_tagged_peers(laptop: Laptop, gateway: GatewayProcess) -> None:
    base = tsfake.status_doc()
    laptop.tailscale(tsfake.with_peers(base, tsfake.peer("nas", ("100.64.0.9",), tags=())))
    res = laptop.cli("setup", "--yes", "--port", str(gateway.port))
    assert res.returncode == 5 and "no device on the tailnet is tagged tag:ai-server" in \
        res.stderr
    laptop.tailscale(tsfake.with_peers(base, tsfake.peer("studio", ("127.0.0.1",), dns=False)))
    res = laptop.cli("setup", "--yes", "--port", str(gateway.port), "--shell", "bash")
    assert res.returncode == 0, res.stderr
    laptop.cli("uninstall", "--purge")
    laptop.tailscale(tsfake.with_peers(base, tsfake.peer("studio", ("127.0.0.1",), dns=False),
                                       tsfake.peer("gpubox", ("100.64.0.8",))))
    res = laptop.cli("setup", "--yes", "--port", str(gateway.port))
    assert res.returncode == 2 and "several servers" in res.stderr
    assert "gpubox.tail1234.ts.net" in res.stderr and "127.0.0.1" in res.stderr


class _Fake(http.server.BaseHTTPRequestHandler):
    status = 200
    body = b"<html>hello</html>"

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture()
def other_server() -> Iterator[tuple[int, type[_Fake]]]:
    handler = type("H", (_Fake,), {})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1], handler
    srv.shutdown()
    srv.server_close()


def test_each_probe_failure_has_its_own_diagnosis(laptop: Laptop,
                                                  other_server: tuple[int, type[_Fake]]) -> None:
    port, handler = other_server
    closed = free_port()
    res = laptop.cli("setup", "--server", "127.0.0.1", "--port", str(closed), "--yes")
    assert res.returncode == 5 and "refused" in res.stderr and "tailnet policy" in res.stderr
    res = laptop.cli("setup", "--server", "127.0.0.1", "--port", str(port), "--yes")
    assert res.returncode == 5 and "is not an Ollama gateway" in res.stderr
    handler.status = 403
    res = laptop.cli("setup", "--server", "127.0.0.1", "--port", str(port), "--yes")
    assert res.returncode == 5 and "refused /api/version (HTTP 403)" in res.stderr
    laptop.tailscale(tsfake.status_doc(state="NeedsLogin"))
    res = laptop.cli("setup", "--server", "127.0.0.1", "--port", str(closed), "--yes")
    assert res.returncode == 5 and "Tailscale is logged out on this device" in res.stderr
    laptop.tailscale(tsfake.with_peers(tsfake.status_doc(), tsfake.peer(
        "studio", ("127.0.0.1",), online=False, dns=False)))
    res = laptop.cli("setup", "--server", "127.0.0.1", "--port", str(closed), "--yes")
    assert res.returncode == 5 and "offline on the tailnet" in res.stderr
    for r in (res,):
        assert r.stderr.count("\n") == 1


def test_env_command_prints_exports(laptop: Laptop, gateway: GatewayProcess) -> None:
    assert laptop.cli("setup", "--server", "127.0.0.1", "--port", str(gateway.port), "--shell",
                      "bash", "--yes", "--scope", "aider").returncode == 0
    out = laptop.cli("env").stdout
    assert f"export AIDER_OPENAI_API_BASE='http://127.0.0.1:{gateway.port}/v1'" in out
    assert "OPENAI_API_BASE=" not in out.replace("AIDER_OPENAI_API_BASE", "")
    fish = laptop.cli("env", "--shell", "fish").stdout
    assert "set -gx AIDER_MODEL 'openai/qwen3-coder:30b'" in fish
