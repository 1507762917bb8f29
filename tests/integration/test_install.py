"""`ai-server install` / `uninstall` end to end, on a locked-down PATH of recording fakes.

The service-manager fakes really start what the definitions say: `ollama serve` (the fake
execs the Ollama simulator) and `ai-server run` (the real gateway on real HAProxy).
"""

from __future__ import annotations

import json
import os
import plistlib
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import tsfake
from tests.support.fakeenv import FakeEnv, ServiceDef, make_fake_env
from tests.support.gatewayproc import free_port, settings_toml

REPO = Path(__file__).resolve().parents[2]
AI_SERVER = str(Path(sys.executable).parent / "ai-server")


def snapshot(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, tuple[str, int, bytes]]:
    """Every file, link and directory under root with its mode and content."""
    out: dict[str, tuple[str, int, bytes]] = {}
    for path in sorted(root.rglob("*")):
        if any(path == s or s in path.parents for s in skip):
            continue
        rel = str(path.relative_to(root))
        st = path.lstat()
        if path.is_symlink():
            out[rel] = ("link", 0, os.readlink(path).encode())
        elif path.is_dir():
            out[rel] = ("dir", stat.S_IMODE(st.st_mode), b"")
        else:
            out[rel] = ("file", stat.S_IMODE(st.st_mode), path.read_bytes())
    return out


class Stack:
    def __init__(self, fe: FakeEnv) -> None:
        self.fe = fe
        self.home = Path(fe.env["AI_SERVER_HOME"])
        self.config = self.home / "config" / "config.toml"
        self.upstream = free_port()
        self.port = free_port()
        self.extra = {"AI_SERVER_BIN": AI_SERVER, "PYTHONPATH": str(REPO / "src")}

    @property
    def env(self) -> dict[str, str]:
        return {**self.fe.env, **self.extra}

    def write_settings(self, **extra: Any) -> None:
        gateway = {"listen": ["127.0.0.1"], "port": self.port,
                   "upstream": f"127.0.0.1:{self.upstream}", "metrics_port": free_port(),
                   "stats_socket": f"{self.fe.root}/gw.sock"}
        gateway.update(extra)
        self.config.parent.mkdir(parents=True, exist_ok=True)
        self.config.write_text(settings_toml({"gateway": gateway}))

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "aiserver.cli", *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout, check=False)

    def service_calls(self) -> list[list[str]]:
        """Calls that change services (not queries)."""
        out = []
        for tool in ("systemctl", "launchctl", "brew"):
            for argv in self.fe.calls(tool):
                if any(v in argv for v in ("start", "restart", "enable", "disable", "stop",
                                           "bootstrap", "bootout", "kickstart")):
                    out.append([tool, *argv])
        return out

    def state_snapshot(self) -> dict[str, tuple[str, int, bytes]]:
        # logs of a failed attempt are kept on purpose (they say what went wrong)
        return snapshot(self.fe.home, skip=(self.home / "logs",))


@pytest.fixture()
def stack(tmp_path: Path) -> Iterator[Stack]:
    fe = make_fake_env(tmp_path, platform="linux", with_brew=False,
                       tailscale=tsfake.status_doc())
    s = Stack(fe)
    s.write_settings()
    try:
        yield s
    finally:
        fe.stop_all()


def test_install_starts_both_services_and_is_idempotent(stack: Stack) -> None:
    res = stack.cli("install", "--yes", "--json")
    assert res.returncode == 0, res.stderr + res.stdout
    env = json.loads(res.stdout)
    data = env["data"]
    assert data["applied"] and data["audit"]["ok"], json.dumps(data["audit"], indent=1)
    assert data["services"] == {"ollama": "systemd", "gateway": "systemd"}
    units = stack.fe.unit_dir
    ollama_unit = (units / "ai-server-ollama.service").read_text()
    assert "ExecStart=" in ollama_unit and "0.0.0.0" not in ollama_unit
    served = stack.fe.ollama_serve_env()
    assert served is not None
    assert served["OLLAMA_HOST"] == f"127.0.0.1:{stack.upstream}"
    assert served["OLLAMA_NO_CLOUD"] == "1" and served["OLLAMA_KV_CACHE_TYPE"] == "q8_0"
    assert served["OLLAMA_CONTEXT_LENGTH"] == "65536"
    assert ["systemctl", "--user", "enable", "--now", "ai-server-gateway.service"] in \
        stack.service_calls()
    assert "tag:ai-server" in data["acl"] and data["client_command"].startswith(
        "ai-client setup --server studio.tail1234.ts.net")
    # the gateway the service runs answers, and refuses what it must
    from tests.support.rawhttp import exchange, request_bytes

    host = f"127.0.0.1:{stack.port}"  # a name of this gateway (its listen address)
    assert exchange("127.0.0.1", stack.port, request_bytes("GET", "/api/tags", host=host)
                    ).status == 200
    assert exchange("127.0.0.1", stack.port, request_bytes("POST", "/api/pull", host=host)
                    ).status == 403

    before = len(stack.service_calls())
    again = stack.cli("install", "--yes")
    assert again.returncode == 0, again.stderr
    assert "nothing to change" in again.stdout
    assert len(stack.service_calls()) == before

    status = stack.cli("status", "--json")
    sdata = json.loads(status.stdout)["data"]
    assert sdata["services"]["ollama"]["running"] and sdata["services"]["gateway"]["running"]
    assert sdata["ollama"]["version"] == "0.32.15"
    doctor = stack.cli("doctor", "--json")
    assert doctor.returncode == 0, doctor.stdout
    assert stack.cli("audit").returncode == 0


def test_dry_run_prints_diffs_and_changes_nothing(stack: Stack) -> None:
    before = stack.state_snapshot()
    res = stack.cli("install", "--dry-run", "--context-length", "40000")
    assert res.returncode == 0, res.stderr
    assert "+OLLAMA_CONTEXT_LENGTH" not in res.stdout  # the unit quotes Environment= lines
    assert "Environment=OLLAMA_CONTEXT_LENGTH=40000" in res.stdout
    assert "-context_length = 65536" in res.stdout or "+context_length = 40000" in res.stdout
    assert "would run: systemctl --user enable --now ai-server-ollama.service" in res.stdout
    assert stack.state_snapshot() == before
    assert stack.service_calls() == []


STEPS = ["write settings", "write ollama service (systemd)", "write gateway service (systemd)",
         "start ollama", "start gateway", "verify"]


@pytest.mark.parametrize("step", STEPS)
def test_a_failing_step_restores_everything(stack: Stack, step: str) -> None:
    before = stack.state_snapshot()
    stack.extra["AI_SERVER_FAILPOINT"] = step
    res = stack.cli("install", "--yes", "--context-length", "40000")
    assert res.returncode == 1
    assert f"install failed at step '{step}'" in res.stderr
    assert "previous state restored" in res.stderr and res.stderr.count("\n") == 1
    assert stack.state_snapshot() == before
    assert stack.fe.live_pids() == []


def test_a_failing_service_command_restores_everything(stack: Stack) -> None:
    before = stack.state_snapshot()
    stack.fe.fail("systemctl --user enable --now ai-server-gateway.service")
    res = stack.cli("install", "--yes")
    assert res.returncode == 1 and "step 'start gateway'" in res.stderr
    assert stack.state_snapshot() == before
    assert stack.fe.live_pids() == []  # Ollama, already started, was stopped again


def test_reinstall_over_a_running_install_restores_the_running_services(stack: Stack) -> None:
    assert stack.cli("install", "--yes").returncode == 0
    before = stack.state_snapshot()
    pids = sorted(stack.fe.live_pids())
    stack.extra["AI_SERVER_FAILPOINT"] = "verify"
    res = stack.cli("install", "--yes", "--context-length", "40000")
    assert res.returncode == 1
    assert stack.state_snapshot() == before
    assert len(stack.fe.live_pids()) == len(pids)  # restarted with the old definitions
    deadline = time.monotonic() + 10  # the restarted `ollama serve` records its environment
    while (stack.fe.ollama_serve_env() or {}).get("OLLAMA_CONTEXT_LENGTH") != "65536":
        assert time.monotonic() < deadline, stack.fe.ollama_serve_env()
        time.sleep(0.1)


def test_uninstall_leaves_home_as_before_apart_from_what_is_kept(stack: Stack) -> None:
    before = snapshot(stack.fe.home, skip=(stack.home / "logs",))
    assert stack.cli("install", "--yes").returncode == 0
    res = stack.cli("uninstall", "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)["data"]
    assert set(data["stopped"]) == {"ollama", "gateway"} and data["models"] == "kept"
    assert snapshot(stack.fe.home, skip=(stack.home / "logs",)) == before
    assert (stack.home / "logs").is_dir()  # kept
    assert stack.fe.live_pids() == []
    purge = stack.cli("uninstall", "--purge")
    assert purge.returncode == 0
    assert not stack.config.exists() and not (stack.home / "logs").exists()


@pytest.mark.parametrize("setup, needle, code", [
    ("logged-out", "tailscale: Tailscale is logged out on this device", 5),
    ("old-ollama", "the Anthropic endpoint needs Ollama >= 0.14.0", 5),
    ("no-haproxy", "haproxy: haproxy not found", 5),
])
def test_preflight_failures_write_nothing(stack: Stack, setup: str, needle: str,
                                          code: int) -> None:
    if setup == "logged-out":
        stack.fe.set_tailscale(tsfake.status_doc(state="NeedsLogin"))
    elif setup == "old-ollama":
        stack.extra["FAKE_OLLAMA_VERSION"] = "0.13.0"
    else:
        stack.extra["AI_SERVER_HAPROXY"] = "haproxy-not-installed"
    before = stack.state_snapshot()
    res = stack.cli("install", "--yes")
    assert res.returncode == code, res.stderr
    assert needle in res.stderr and res.stderr.count("\n") == 1
    assert stack.state_snapshot() == before
    assert stack.service_calls() == []


def test_userspace_install_moves_ollama_to_ipv6_loopback(stack: Stack) -> None:
    """With Tailscale in userspace networking, tailscaled delivers tailnet connections to
    127.0.0.1:<port>: install puts Ollama (and the metrics) on [::1] and the gateway alone on
    127.0.0.1, on Ollama's port, so clients keep using :11434-style URLs."""
    stack.fe.set_tailscale(tsfake.status_doc(tun=False))
    stack.write_settings(listen=["auto"], port=stack.upstream)
    res = stack.cli("install", "--yes", "--json")
    assert res.returncode == 0, res.stderr + res.stdout
    data = json.loads(res.stdout)["data"]
    moved = f"[::1]:{stack.upstream}"
    assert any("userspace networking" in n and moved in n for n in data["notes"])
    assert f'upstream = "{moved}"' in stack.config.read_text()
    served = stack.fe.ollama_serve_env()
    assert served is not None and served["OLLAMA_HOST"] == moved
    from tests.support.rawhttp import exchange, request_bytes

    # 127.0.0.1:<port> — where tailscaled delivers — is the gateway; Ollama is on ::1 only.
    # (laptops name the server by its Tailscale address or MagicDNS name, as Host)
    tailnet_host = f"{tsfake.status_doc()['TailscaleIPs'][0]}:{stack.upstream}"
    assert exchange("127.0.0.1", stack.upstream,
                    request_bytes("GET", "/api/tags", host=tailnet_host)).status == 200
    assert exchange("127.0.0.1", stack.upstream,
                    request_bytes("POST", "/api/pull", host=tailnet_host)).status == 403
    assert exchange("::1", stack.upstream, request_bytes(
        "GET", "/api/ps", host=f"[::1]:{stack.upstream}")).status == 200
    checks = {f["check"]: f for f in data["audit"]["findings"]}
    assert checks["userspace-ollama"]["ok"] and "userspace-gateway" not in checks
    doctor = stack.cli("doctor", "--json")
    found = {c["name"]: c for c in json.loads(doctor.stdout)["data"]["checks"]}
    assert found["tailscale-tun"]["status"] == "WARN"
    assert "127.0.0.1" in found["tailscale-tun"]["detail"]
    status = json.loads(stack.cli("status", "--json").stdout)["data"]
    assert "every tailnet client reaches the gateway from 127.0.0.1" in \
        status["tailscale"]["note"]
    assert "NOTE" in stack.cli("status").stdout


class BrewStack(Stack):
    """Ollama and ai-server installed as formulae, as Homebrew users have them. The ai-server
    formula's service block is Formula/ai-server.rb's (`run [opt_bin/"ai-server", "run"]`);
    Homebrew's ollama formula binds (here) a port of its own, so that a definition without our
    settings is visible as such."""

    def __init__(self, fe: FakeEnv) -> None:
        super().__init__(fe)
        self.formula_port = free_port()
        prefix = fe.brew_prefix
        fe.install_ollama_formula(extra_env={"OLLAMA_HOST": f"127.0.0.1:{self.formula_port}"})
        fe.brew_install("ai-server", "0.1.0", bins={"ai-server": AI_SERVER},
                        service=ServiceDef(run=[f"{prefix}/opt/ai-server/bin/ai-server", "run"],
                                           environment={"SHIV_ROOT": f"{prefix}/var/ai-server"},
                                           log_path=f"{prefix}/var/log/ai-server.log",
                                           error_log_path=f"{prefix}/var/log/ai-server.err.log"))
        self.env_dir = fe.home / ".homebrew" / "services"
        self.write_settings()

    def brew(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.fe.run(["brew", *args], extra_env=self.extra)

    def info(self, formula: str) -> dict[str, Any]:
        done = self.brew("services", "info", formula, "--json")
        assert done.returncode == 0, done.stderr
        data: dict[str, Any] = json.loads(done.stdout)[0]
        return data

    def wait_ollama_host(self, want: str) -> dict[str, str]:
        deadline = time.monotonic() + 15  # a restarted `ollama serve` records its environment
        while (served := self.fe.ollama_serve_env() or {}).get("OLLAMA_HOST") != want:
            assert time.monotonic() < deadline, served
            time.sleep(0.1)
        return served

    def status(self) -> dict[str, Any]:
        done = self.cli("status", "--json")
        data: dict[str, Any] = json.loads(done.stdout)["data"]
        return data


@pytest.fixture(params=["linux", "darwin"])
def brew_stack(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[BrewStack]:
    fe = make_fake_env(tmp_path, platform=request.param, with_brew=True,
                       tailscale=tsfake.status_doc())
    if request.param == "darwin":
        fe.use_live_lsof()
    try:
        yield BrewStack(fe)
    finally:
        fe.stop_all()


def test_brew_services_restart_keeps_the_setup(brew_stack: BrewStack) -> None:
    """What Homebrew's caveats tell users after an upgrade: `brew services restart <formula>`.
    It deletes the installed definition and regenerates it from the formula (restart.rb,
    cli.rb, formula_wrapper.rb); our settings are in Homebrew's env file, so they come back."""
    s = brew_stack
    res = s.cli("install", "--yes", "--json")
    assert res.returncode in (0, 3), res.stderr + res.stdout
    data = json.loads(res.stdout)["data"]
    assert data["services"] == {"ollama": "brew", "gateway": "brew"}
    starts = [c for c in s.fe.calls("brew") if c[:2] == ["services", "start"]]
    assert starts == [["services", "start", "ollama"], ["services", "start", "ai-server"]]
    env_file = s.env_dir / "ollama.env"
    assert f"OLLAMA_HOST=127.0.0.1:{s.upstream}\n" in env_file.read_text()
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o644  # Homebrew skips group-writable
    assert "AI_SERVER_HOME=" in (s.env_dir / "ai-server.env").read_text()
    served = s.wait_ollama_host(f"127.0.0.1:{s.upstream}")
    assert served["OLLAMA_CONTEXT_LENGTH"] == "65536" and served["OLLAMA_NO_CLOUD"] == "1"
    assert all(not v["differences"] for v in s.status()["services"].values())

    for formula in ("ollama", "ai-server"):
        pid = s.info(formula)["pid"]
        done = s.brew("services", "restart", formula)
        assert done.returncode == 0, done.stderr
        info = s.info(formula)
        assert info["running"] and info["registered"] and info["pid"] != pid
    served = s.wait_ollama_host(f"127.0.0.1:{s.upstream}")
    assert served["OLLAMA_KEEP_ALIVE"] == "30m" and served["OLLAMA_KV_CACHE_TYPE"] == "q8_0"
    from tests.support.rawhttp import exchange, request_bytes

    deadline = time.monotonic() + 30  # the regenerated gateway answers again
    while True:
        try:
            if exchange("127.0.0.1", s.port, request_bytes(
                    "GET", "/api/tags", host=f"127.0.0.1:{s.port}")).status == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline
        time.sleep(0.2)
    st = s.status()
    assert all(not v["differences"] for v in st["services"].values()), st["services"]
    # status reads the error log the loaded definition names (the formula's var/log)
    err_log = s.fe.brew_prefix / "var" / "log" / "ai-server.err.log"
    assert st["services"]["gateway"]["error_log"] == str(err_log)
    with err_log.open("a") as fh:
        fh.write("[ALERT] a recent error\n")
    assert s.status()["recent_errors"]["ai-server.err.log"][-1] == "[ALERT] a recent error"
    again = s.cli("install", "--yes")
    assert again.returncode == 0 and "nothing to change" in again.stdout, again.stderr


def test_a_replaced_definition_is_reported_and_install_restores_it(
        brew_stack: BrewStack) -> None:
    """A definition regenerated without our settings (here: a restart by a Homebrew older than
    6.0.15, which ignores the env file) is what status, doctor and audit compare -- not our
    own copy -- and `ai-server install` puts the settings back."""
    s = brew_stack
    assert s.cli("install", "--yes").returncode in (0, 3)
    s.wait_ollama_host(f"127.0.0.1:{s.upstream}")
    s.extra["FAKE_BREW_VERSION"] = "6.0.6"
    assert s.brew("services", "restart", "ollama").returncode == 0
    s.wait_ollama_host(f"127.0.0.1:{s.formula_port}")
    del s.extra["FAKE_BREW_VERSION"]

    diffs = s.status()["services"]["ollama"]["differences"]
    assert any(f"OLLAMA_HOST=127.0.0.1:{s.formula_port}, wanted 127.0.0.1:{s.upstream}" in d
               for d in diffs), diffs
    # the running process's environment, where the OS shows it (/proc: this test machine)
    assert any(d.startswith("running process") and "OLLAMA_CONTEXT_LENGTH=(unset)" in d
               for d in diffs), diffs
    human = s.cli("status").stdout
    assert "differs" in human and "OLLAMA_HOST" in human
    doctor = json.loads(s.cli("doctor", "--json").stdout)["data"]
    checks = {c["name"]: c for c in doctor["checks"]}
    assert checks["ollama-service"]["status"] != "pass"
    assert "OLLAMA_HOST" in checks["ollama-service"]["detail"]
    audit = json.loads(s.cli("audit", "--json").stdout)["data"]
    found = {f["check"]: f for f in audit["findings"]}
    assert found["ollama-service"]["ok"] is False and not audit["ok"]
    assert found["gateway-service"]["ok"] is True

    res = s.cli("install", "--yes", "--json")
    assert res.returncode in (0, 3), res.stderr
    assert "brew services restart ollama" in json.loads(res.stdout)["data"]["commands"]
    s.wait_ollama_host(f"127.0.0.1:{s.upstream}")
    assert s.status()["services"]["ollama"]["differences"] == []


def test_rollback_leaves_a_brew_service_that_ran_before_running_and_registered(
        brew_stack: BrewStack) -> None:
    """Ollama already ran from Homebrew's own definition; install fails at the last step.
    The rollback must restart it from a definition that exists (the formula's), never stop
    it first and then ask for a file it has just deleted."""
    s = brew_stack
    assert s.brew("services", "start", "ollama").returncode == 0
    s.wait_ollama_host(f"127.0.0.1:{s.formula_port}")
    before = s.state_snapshot()
    s.extra["AI_SERVER_FAILPOINT"] = "verify"
    res = s.cli("install", "--yes")
    assert res.returncode == 1 and "previous state restored" in res.stderr, res.stderr
    info = s.info("ollama")
    assert info["running"] and info["registered"], info
    s.wait_ollama_host(f"127.0.0.1:{s.formula_port}")
    assert not (s.env_dir / "ollama.env").exists()
    assert not s.info("ai-server")["running"]
    after = s.state_snapshot()
    assert {k: v for k, v in after.items() if "homebrew.mxcl.ollama" not in k} == \
        {k: v for k, v in before.items() if "homebrew.mxcl.ollama" not in k}


def test_homebrew_too_old_for_env_files_is_refused(brew_stack: BrewStack) -> None:
    s = brew_stack
    s.extra["FAKE_BREW_VERSION"] = "6.0.14"
    before = s.state_snapshot()
    res = s.cli("install", "--yes")
    assert res.returncode == 5, res.stderr
    assert "needs Homebrew 6.0.15" in res.stderr or "Homebrew 6.0.15 or newer" in res.stderr
    assert "brew update" in res.stderr and res.stderr.count("\n") == 1
    assert s.state_snapshot() == before and s.service_calls() == []


def test_uninstall_takes_only_our_block_out_of_homebrews_env_file(brew_stack: BrewStack
                                                                  ) -> None:
    s = brew_stack
    s.env_dir.mkdir(parents=True)
    mine = "# my own\nOLLAMA_MODELS=/Volumes/models\n"
    (s.env_dir / "ollama.env").write_text(mine)
    (s.env_dir / "ollama.env").chmod(0o600)
    assert s.cli("install", "--yes").returncode in (0, 3)
    assert s.wait_ollama_host(f"127.0.0.1:{s.upstream}")  # both: theirs and ours merged
    text = (s.env_dir / "ollama.env").read_text()
    assert text.startswith(mine)
    pin = s.cli("pin-ollama")
    assert pin.returncode == 0 and ["pin", "ollama"] in s.fe.calls("brew")
    assert s.status()["ollama_pinned"] is True
    res = s.cli("uninstall", "--json")
    assert res.returncode == 0, res.stderr
    assert (s.env_dir / "ollama.env").read_text() == mine
    assert not (s.env_dir / "ai-server.env").exists()
    assert not s.info("ollama")["registered"] and not s.info("ai-server")["registered"]


def test_macos_launchd_agents_without_homebrew(tmp_path: Path) -> None:
    fe = make_fake_env(tmp_path, platform="darwin", with_brew=False)
    try:
        s = Stack(fe)
        s.write_settings()
        fe.use_live_lsof()
        res = s.cli("install", "--yes", "--json")
        assert res.returncode in (0, 3), res.stderr + res.stdout
        agents = fe.launch_agents
        plist = plistlib.loads((agents / "com.remote-ollama-proxy.ollama.plist").read_bytes())
        assert plist["EnvironmentVariables"]["OLLAMA_HOST"] == f"127.0.0.1:{s.upstream}"
        assert plist["ProgramArguments"][1] == "serve"
        gw = plistlib.loads((agents / "com.remote-ollama-proxy.gateway.plist").read_bytes())
        assert gw["ProgramArguments"][-1] == "run" and gw["KeepAlive"] is True
        boot = [c for c in fe.calls("launchctl") if c[0] == "bootstrap"]
        assert len(boot) == 2 and all(c[1].startswith("gui/") for c in boot)
        for f in agents.iterdir():
            assert "0.0.0.0" not in f.read_text()
        warm = s.cli("models", "warm", "--at-boot", "qwen3-coder:30b", "--json")
        assert warm.returncode == 0, warm.stderr
        job = plistlib.loads((agents / "com.remote-ollama-proxy.warm.plist").read_bytes())
        assert job["ProgramArguments"][-1] == "qwen3-coder:30b"
        assert "--wait" in job["ProgramArguments"] and job["KeepAlive"] is False
        assert s.cli("uninstall").returncode == 0
        assert not agents.exists()  # install created it, uninstall removed it again
    finally:
        fe.stop_all()


def test_uninstall_stops_a_gateway_started_by_run_and_says_so(stack: Stack) -> None:
    """Issue 12 §6: uninstall had deleted the state of a gateway started by `ai-server run`
    (which then kept serving revoked tokens). It now stops that gateway first and says so."""
    proc = subprocess.Popen([sys.executable, "-m", "aiserver.cli", "run", "--wait", "0"],
                            env=stack.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        pid_file = stack.home / "state" / "gateway" / "haproxy.pid"
        deadline = time.monotonic() + 15
        while not (pid_file.exists() and pid_file.read_text().strip()):
            assert proc.poll() is None and time.monotonic() < deadline, "gateway never started"
            time.sleep(0.05)
        res = stack.cli("uninstall", "--json")
        assert res.returncode == 0, res.stderr
        stopped = json.loads(res.stdout)["data"]["stopped"]
        assert f"gateway started by `ai-server run` (HAProxy master pid {proc.pid})" in stopped
        assert proc.wait(timeout=15) is not None  # stopped, not orphaned
        assert not (stack.home / "state" / "gateway").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
