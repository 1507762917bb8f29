"""The whole path a user has, for the real clients: simulator → `ai-server run` (real HAProxy)
→ `ai-client setup` in a temp HOME → `claude-ollama` / Aider / the SDKs.

Build it only inside `realclients.loopback_only()`: the real clients try to reach the internet,
and inside the namespace nothing but 127.0.0.0/8 exists.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import realclients
from tests.support.gatewayproc import GatewayProcess, start_gateway
from tests.support.ollama_sim import OllamaSimulator

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Stack:
    """A running simulator + gateway and a laptop HOME set up against it."""

    tmp: Path
    sim: OllamaSimulator
    gateway: GatewayProcess
    home: Path
    env: dict[str, str]
    token: str = ""
    claude_bins: dict[str, Path] = field(default_factory=dict)

    def cli(self, *args: str, timeout: float = 120,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "aiclient.cli", *args],
                              env=env or self.env, capture_output=True, text=True,
                              timeout=timeout, check=False, stdin=subprocess.DEVNULL)

    def setup(self, *extra: str) -> subprocess.CompletedProcess[str]:
        args = ["setup", "--server", "127.0.0.1", "--port", str(self.gateway.port), "--shell",
                "bash", "--yes", *extra]
        if self.token:
            args += ["--token", self.token]
        return self.cli(*args)

    @property
    def wrapper(self) -> Path:
        return Path(self.env["AI_CLIENT_HOME"]) / "state" / "bin" / "claude-ollama"

    def shell_env(self) -> dict[str, str]:
        """The environment an interactive bash gets from the env file setup wrote."""
        out = subprocess.run(["bash", "-c", '. "$1" && env -0', "_",
                              str(Path(self.env["AI_CLIENT_HOME"]) / "config" / "env.sh")],
                             env=self.env, capture_output=True, check=True, timeout=30).stdout
        return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)

    def claude_path_env(self, version: str) -> dict[str, str]:
        """bash's environment with `claude` resolving to the real Claude Code `version`."""
        bin_dir = self.tmp / f"claude-{version}-bin"
        if not bin_dir.exists():
            bin_dir.mkdir()
            (bin_dir / "claude").symlink_to(realclients.claude_bin(version))
        env = self.shell_env()
        env["PATH"] = f"{bin_dir}:{env['PATH']}"
        return env

    def claude_ollama(self, version: str, *args: str, cwd: Path | None = None,
                      timeout: float = 180, env: dict[str, str] | None = None
                      ) -> subprocess.CompletedProcess[str]:
        """Run `claude-ollama ARGS` (the wrapper setup wrote) with the real Claude Code."""
        run_env = env or self.claude_path_env(version)
        return subprocess.run([str(self.wrapper), *args], env=run_env, cwd=cwd or self.home,
                              capture_output=True, text=True, timeout=timeout, check=False,
                              stdin=subprocess.DEVNULL)

    def requests_to(self, path: str) -> list[Any]:
        return [r for r in self.sim.requests if r.path == path]

    def stop(self) -> None:
        self.gateway.stop()
        self.sim.stop()


def start_stack(tmp: Path, *, gateway: dict[str, Any] | None = None, token: str = "",
                models: Any = None, haproxy: str | None = None) -> Stack:
    """Start the simulator and the real gateway, and prepare a laptop HOME (not yet set up)."""
    sim = OllamaSimulator(models=models)
    sim.record_body_limit = 4 * 1024 * 1024  # whole Claude Code requests, to assert on
    sim.start()
    workdir = tmp / "server"
    workdir.mkdir(parents=True)
    try:
        gw = start_gateway(workdir, sim.port, gateway=gateway, haproxy=haproxy)
    except Exception:
        sim.stop()
        raise
    home = tmp / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ANTHROPIC_", "CLAUDE_", "OPENAI_", "OLLAMA_", "AIDER_"))}
    env.update(HOME=str(home), SHELL="/bin/bash", AI_CLIENT_HOME=str(home / "ai-client"),
               AI_SERVER_HOME=str(home / "ai-server"), SHIV_ROOT=str(tmp / "shiv"),
               # tailscale is not needed with --server; a missing CLI must not be looked up
               AI_TAILSCALE=str(tmp / "no-tailscale"))
    env.pop("ZDOTDIR", None)
    return Stack(tmp, sim, gw, home, env, token)


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HEX_ID = re.compile(r"\b(msg|call|req|toolu)_[0-9A-Za-z]{6,}")


def scrub_stream_json(text: str, replacements: dict[str, str]) -> str:
    """stream-json with temp paths, session ids, uuids and message/tool ids made constant, so
    recorded output can be committed as a parser fixture."""
    for old, new in sorted(replacements.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(old, new)
        # Claude Code names its per-project directory after the path, "/" as "-"
        text = text.replace(old.replace("/", "-"), new.replace("/", "-"))
    text = re.sub(r"/tmp/cc-socks/\d+\.sock", "/tmp/cc-socks/1.sock", text)
    seen: dict[str, str] = {}

    def stable(kind: str, value: str) -> str:
        return seen.setdefault(value, f"{kind}{len(seen):04d}")

    text = _UUID.sub(lambda m: "00000000-0000-4000-8000-" + stable("", m.group(0)).zfill(12),
                     text)
    return _HEX_ID.sub(lambda m: f"{m.group(1)}_fixture{stable('', m.group(0))}", text)


def stream_events(stdout: str) -> list[dict[str, Any]]:
    """The NDJSON lines of `claude -p --output-format stream-json --verbose`."""
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]
