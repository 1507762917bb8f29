"""Start the real gateway (`ai-server run` → HAProxy) for tests, the demo and benchmarks."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def haproxy_binaries() -> dict[str, str]:
    """The HAProxy builds every gateway test runs on: Debian's (2.6/3.0) and Homebrew's 3.4.0.

    The 3.4.0 build comes from scripts/setup-haproxy34 (scripts/test exports its path as
    ROP_HAPROXY34; without it the script is run here: it prints the cached build's path).
    """
    distro = shutil.which("haproxy")
    if distro is None:
        raise RuntimeError("haproxy is not installed: run scripts/test (it installs it)")
    v34 = os.environ.get("ROP_HAPROXY34", "")
    if not v34:
        v34 = subprocess.run([str(REPO / "scripts" / "setup-haproxy34")], capture_output=True,
                             text=True, check=True, timeout=1800).stdout.strip()
    if not os.access(v34, os.X_OK):
        raise RuntimeError(f"HAProxy 3.4.0 build not found at {v34!r}: run scripts/test")
    return {"haproxy-distro": distro, "haproxy-3.4": v34}


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_port(host: str, port: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def settings_toml(sections: dict[str, dict[str, Any]]) -> str:
    out = []
    for name, values in sections.items():
        out.append(f"[{name}]")
        out += [f"{k} = {toml_value(v)}" for k, v in values.items()]
        out.append("")
    return "\n".join(out)


@dataclass
class GatewayProcess:
    proc: subprocess.Popen[bytes]
    host: str
    port: int
    metrics_port: int
    config: Path
    log_path: Path
    err_path: Path
    env: dict[str, str] = field(default_factory=dict)
    sock_dir: str = ""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()

    def stderr_text(self) -> str:
        return self.err_path.read_text(errors="replace")

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "aiserver.cli", "--config", str(self.config),
                               *args], capture_output=True, text=True, env=self.env,
                              timeout=timeout, check=False)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.sock_dir:
            shutil.rmtree(self.sock_dir, ignore_errors=True)


def start_gateway(workdir: Path, upstream_port: int, *, gateway: dict[str, Any] | None = None,
                  limits: dict[str, Any] | None = None, timeouts: dict[str, Any] | None = None,
                  env: dict[str, str] | None = None, host: str = "127.0.0.1",
                  listen: list[str] | None = None, wait: bool = True,
                  pool: dict[str, Any] | None = None, haproxy: str | None = None
                  ) -> GatewayProcess:
    port = free_port(host)
    metrics_port = free_port()
    sock_dir = tempfile.mkdtemp(prefix="aigw-", dir="/tmp")  # Unix socket paths must be short
    g: dict[str, Any] = {"listen": listen or [host], "port": port,
                         "upstream": f"127.0.0.1:{upstream_port}", "metrics_port": metrics_port,
                         "stats_socket": f"{sock_dir}/admin.sock",
                         # raw-socket tests send `Host: gateway` (rawhttp.request_bytes)
                         "hosts": ["gateway"]}
    g.update(gateway or {})
    config = workdir / "server.toml"
    sections: dict[str, dict[str, Any]] = {"gateway": g, "limits": limits or {},
                                           "timeouts": timeouts or {}}
    if pool:
        sections["pool"] = pool
    config.write_text(settings_toml(sections))
    run_env = dict(os.environ if env is None else env)
    run_env.setdefault("AI_SERVER_HOME", str(workdir / "ai-server-home"))
    run_env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + run_env.get("PYTHONPATH", "")
    if haproxy is not None:
        run_env["AI_SERVER_HAPROXY"] = haproxy
    log_path, err_path = workdir / "gateway.log", workdir / "gateway.err"
    with open(log_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "aiserver.cli", "--config", str(config),
                                 "run", "--wait", "5"], stdout=out, stderr=err, env=run_env,
                                stdin=subprocess.DEVNULL)
    gw = GatewayProcess(proc, host, int(g["port"]), metrics_port, config, log_path, err_path,
                        run_env, sock_dir)
    # Readiness is read off the metrics listener: HAProxy binds every listener before it
    # serves, and a probe connection to the gateway port would count in its rate limits.
    if wait and not wait_port("127.0.0.1", metrics_port):
        gw.stop()
        raise RuntimeError(f"gateway did not start: {gw.stderr_text()[-2000:]}")
    return gw
