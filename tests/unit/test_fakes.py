"""The recording fakes of macOS/Homebrew tools (tests/support/fakes) behave like the real ones
where the project depends on them, and really run the services they manage."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import plistlib
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support.fakeenv import FAKES_DIR, FakeEnv, ServiceDef, make_fake_env, pid_alive

SLEEPER = ["python3", "-c", "import time; time.sleep(60)"]


@pytest.fixture
def make_env(tmp_path: Path) -> Iterator[Callable[..., FakeEnv]]:
    made: list[FakeEnv] = []

    def make(**kwargs: Any) -> FakeEnv:
        fe = make_fake_env(tmp_path / f"env{len(made)}", **kwargs)
        made.append(fe)
        return fe

    yield make
    for fe in made:
        fe.stop_all()
    for fe in made:  # no stray processes: everything the fakes started is gone
        assert [p for p in fe.pids() if pid_alive(p)] == []
        assert fe.live_pids() == []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


def http_get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bytes(resp.read())
    except OSError:
        return None


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def write_definition(fe: FakeEnv, name: str, argv: list[str],
                     env: dict[str, str] | None = None) -> Path:
    """A launchd plist (darwin) or a systemd unit (linux) that runs ``argv``."""
    if fe.platform == "darwin":
        path = fe.root / f"{name}.plist"
        path.write_bytes(plistlib.dumps({
            "Label": f"homebrew.mxcl.{name}", "ProgramArguments": argv, "RunAtLoad": True,
            "KeepAlive": True, "EnvironmentVariables": env or {},
            "StandardErrorPath": str(fe.root / f"{name}.err")}))
        return path
    path = fe.root / f"{name}.service"
    lines = ["[Unit]", f"Description={name}", "", "[Service]",
             "ExecStart=" + " ".join(f'"{a}"' for a in argv),
             *(f'Environment="{k}={v}"' for k, v in (env or {}).items()),
             f"StandardError=append:{fe.root / f'{name}.err'}", "", "[Install]",
             "WantedBy=default.target"]
    path.write_text("\n".join(lines) + "\n")
    return path


def fe_service(fe: FakeEnv) -> ServiceDef:
    """A formula's own service block (brew services start --file needs one to exist)."""
    return ServiceDef(run=[f"{fe.brew_prefix}/opt/sleeper/bin/sleeper"])


def brew_info(fe: FakeEnv, formula: str) -> dict[str, Any]:
    done = fe.run(["brew", "services", "info", formula, "--json"])
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert isinstance(info, list) and len(info) == 1
    return dict(info[0])


def load_script(name: str) -> ModuleType:
    """Import an extension-less fake as a module (for its pure helpers)."""
    loader = importlib.machinery.SourceFileLoader(f"fake_{name}", str(FAKES_DIR / name))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------
# brew services
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("platform", ["darwin", "linux"])
def test_brew_services_start_with_file_runs_the_program_and_stop_kills_it(
        make_env: Callable[..., FakeEnv], platform: str) -> None:
    fe = make_env(platform=platform)
    fe.brew_install("sleeper", "1.2.3", service=None)
    definition = write_definition(fe, "sleeper", SLEEPER)
    # As in Homebrew, --file still needs the formula's own service file.
    done = fe.run(["brew", "services", "start", "sleeper", f"--file={definition}"])
    assert done.returncode == 1
    assert "has not implemented #plist, #service or installed a locatable service file" \
        in done.stderr
    fe.install_ollama_formula()  # any formula with a service block
    fe.brew_install("sleeper", "1.2.3", service=fe_service(fe))

    done = fe.run(["brew", "services", "start", "sleeper", f"--file={definition}"])
    assert done.returncode == 0, done.stderr
    label = "homebrew.mxcl.sleeper" if platform == "darwin" else "homebrew.sleeper"
    assert f"==> Successfully started `sleeper` (label: {label})" in done.stdout

    dest = (fe.launch_agents / "homebrew.mxcl.sleeper.plist" if platform == "darwin"
            else fe.unit_dir / "homebrew.sleeper.service")
    assert dest.read_bytes() == definition.read_bytes()
    info = brew_info(fe, "sleeper")
    assert info["name"] == "sleeper"
    assert info["service_name"] == label
    assert info["running"] is True and info["loaded"] is True
    assert info["status"] == "started"
    assert info["file"] == str(dest)
    assert set(info) >= {"name", "service_name", "running", "loaded", "schedulable", "pid",
                         "exit_code", "user", "status", "file", "registered", "loaded_file"}
    pid = info["pid"]
    assert isinstance(pid, int) and pid_alive(pid)
    assert "time.sleep(60)" in cmdline(pid)

    # The service manager underneath agrees.
    if platform == "darwin":
        printed = fe.run(["launchctl", "print", f"gui/{os.getuid()}/{label}"])
        assert printed.returncode == 0
        assert "\tstate = running" in printed.stdout and f"\tpid = {pid}" in printed.stdout
        assert f"\tpath = {dest}" in printed.stdout
    else:
        shown = fe.run(["systemctl", "--user", "show", f"{label}.service",
                        "--property=ActiveState,MainPID,UnitFileState"])
        assert shown.stdout.splitlines() == ["ActiveState=active", f"MainPID={pid}",
                                             "UnitFileState=enabled"]

    done = fe.run(["brew", "services", "stop", "sleeper"])
    assert done.returncode == 0, done.stderr
    assert "Successfully stopped `sleeper`" in done.stdout
    assert not pid_alive(pid)
    assert not dest.exists()
    info = brew_info(fe, "sleeper")
    assert (info["running"], info["loaded"], info["pid"], info["status"]) == \
        (False, False, None, "none")
    listed = json.loads(fe.run(["brew", "services", "list", "--json"]).stdout)
    assert {e["name"]: e["status"] for e in listed} == {"ollama": "none", "sleeper": "none"}
    assert all(set(e) == {"name", "status", "user", "file", "exit_code"} for e in listed)


@pytest.mark.parametrize("platform", ["darwin", "linux"])
def test_fake_fail_changes_no_state(make_env: Callable[..., FakeEnv], platform: str) -> None:
    fe = make_env(platform=platform)
    fe.brew_install("sleeper", service=fe_service(fe))
    definition = write_definition(fe, "sleeper", SLEEPER)
    fe.fail("brew services start sleeper")
    before = {t: fe.state(t) for t in ("brew", "launchctl", "systemctl")}

    done = fe.run(["brew", "services", "start", "sleeper", f"--file={definition}"])

    assert done.returncode == 1
    assert "Error: Failure while executing;" in done.stderr
    assert {t: fe.state(t) for t in ("brew", "launchctl", "systemctl")} == before
    assert fe.jobs() == []
    assert not fe.launch_agents.exists() and not fe.unit_dir.exists()
    assert fe.calls("brew") == [["services", "start", "sleeper", f"--file={definition}"]]
    # a prefix matches whole words only
    fe.clear_failures()
    fe.fail("brew services start sleep")
    assert fe.run(["brew", "services", "start", "sleeper", f"--file={definition}"]
                  ).returncode == 0


def test_nested_service_manager_failure_is_reported_like_brew(
        make_env: Callable[..., FakeEnv]) -> None:
    fe = make_env(platform="darwin")
    fe.brew_install("sleeper", service=fe_service(fe))
    definition = write_definition(fe, "sleeper", SLEEPER)
    fe.fail("launchctl bootstrap")
    done = fe.run(["brew", "services", "start", "sleeper", f"--file={definition}"])
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "Bootstrap failed: 5: Input/output error",
        "Try re-running the command as root for richer errors.",
        f"Error: Failure while executing; `/bin/launchctl bootstrap gui/{os.getuid()} "
        f"{fe.launch_agents / 'homebrew.mxcl.sleeper.plist'}` exited with 1."]
    assert fe.jobs() == []


def test_brew_pins_and_versions(make_env: Callable[..., FakeEnv]) -> None:
    fe = make_env()
    fe.brew_install("ollama", "0.32.15")
    assert fe.run(["brew", "list", "--versions", "ollama"]).stdout == "ollama 0.32.15\n"
    missing = fe.run(["brew", "list", "--versions", "haproxy"])
    assert (missing.returncode, missing.stdout) == (1, "")
    assert fe.run(["brew", "pin", "ollama"]).returncode == 0
    assert fe.run(["brew", "list", "--pinned"]).stdout == "ollama\n"
    assert fe.run(["brew", "pin", "haproxy"]).returncode == 1
    assert fe.run(["brew", "unpin", "ollama"]).returncode == 0
    assert fe.run(["brew", "list", "--pinned"]).stdout == ""
    assert fe.run(["brew", "--prefix"]).stdout.strip() == str(fe.brew_prefix)
    assert fe.run(["brew", "--prefix", "ollama"]).stdout.strip() == \
        str(fe.brew_prefix / "opt" / "ollama")


# ---------------------------------------------------------------------------------------------
# launchctl
# ---------------------------------------------------------------------------------------------


def test_launchctl_bootstrap_twice_fails_like_launchd(make_env: Callable[..., FakeEnv]) -> None:
    fe = make_env(platform="darwin")
    plist = write_definition(fe, "sleeper", SLEEPER)
    domain = f"gui/{os.getuid()}"
    target = f"{domain}/homebrew.mxcl.sleeper"
    unknown = fe.run(["launchctl", "print", target])
    assert unknown.returncode == 113
    assert 'Could not find service "homebrew.mxcl.sleeper"' in unknown.stderr

    assert fe.run(["launchctl", "bootstrap", domain, str(plist)]).returncode == 0
    again = fe.run(["launchctl", "bootstrap", domain, str(plist)])
    assert again.returncode == 5
    assert again.stderr.startswith("Bootstrap failed: 5: Input/output error")

    printed = fe.run(["launchctl", "print", target]).stdout
    pid = int(printed.split("\tpid = ")[1].split()[0])
    assert "time.sleep(60)" in cmdline(pid)
    listing = fe.run(["launchctl", "list"]).stdout.splitlines()
    assert listing[0] == "PID\tStatus\tLabel"
    assert f"{pid}\t0\thomebrew.mxcl.sleeper" in listing

    assert fe.run(["launchctl", "kickstart", "-k", target]).returncode == 0
    assert not pid_alive(pid)
    printed = fe.run(["launchctl", "print", target]).stdout
    new_pid = int(printed.split("\tpid = ")[1].split()[0])
    assert new_pid != pid and pid_alive(new_pid)
    assert "last terminating signal = Terminated: 15" in printed

    assert fe.run(["launchctl", "bootout", target]).returncode == 0
    assert not pid_alive(new_pid)
    assert fe.run(["launchctl", "bootout", target]).returncode == 3


def test_launchd_records_the_exit_of_a_dead_job(make_env: Callable[..., FakeEnv]) -> None:
    fe = make_env(platform="darwin")
    fe.brew_install("crasher", service=fe_service(fe))
    plist = write_definition(fe, "crasher", ["sh", "-c", "echo boom >&2; exit 3"])
    assert fe.run(["brew", "services", "start", "crasher", f"--file={plist}"]).returncode == 0
    target = f"gui/{os.getuid()}/homebrew.mxcl.crasher"
    printed = wait_for(lambda: (out := fe.run(["launchctl", "print", target]).stdout)
                       and "last exit code = 3" in out and out)
    assert printed and "\tstate = not running" in printed
    info = brew_info(fe, "crasher")
    # Homebrew reads launchctl list's LastExitStatus: the raw wait status.
    assert (info["status"], info["exit_code"], info["running"], info["loaded"]) == \
        ("error", 3 << 8, False, True)
    assert (fe.root / "crasher.err").read_text() == "boom\n"
    # The label is still loaded, so a plain start fails like the real thing.
    again = fe.run(["brew", "services", "start", "crasher", f"--file={plist}"])
    assert again.returncode == 1 and "Bootstrap failed: 5" in again.stderr


# ---------------------------------------------------------------------------------------------
# systemctl
# ---------------------------------------------------------------------------------------------


def ollama_unit(fe: FakeEnv, port: int, context: int = 65536) -> Path:
    fe.unit_dir.mkdir(parents=True, exist_ok=True)
    unit = fe.unit_dir / "ai-ollama.service"
    unit.write_text(f"""[Unit]
Description=Ollama for the gateway

[Service]
ExecStart={fe.bin_dir}/ollama serve
Environment=OLLAMA_HOST=127.0.0.1:{port}
Environment="OLLAMA_CONTEXT_LENGTH={context}" "OLLAMA_KEEP_ALIVE=-1"
WorkingDirectory=%h

[Install]
WantedBy=default.target
""")
    return unit


def test_systemctl_enable_now_runs_fake_ollama(make_env: Callable[..., FakeEnv]) -> None:
    fe = make_env(platform="linux")
    port = free_port()
    ollama_unit(fe, port)
    assert fe.run(["systemctl", "--user", "daemon-reload"]).returncode == 0
    done = fe.run(["systemctl", "--user", "enable", "--now", "ai-ollama.service"])
    assert done.returncode == 0, done.stderr
    assert "Created symlink" in done.stderr
    assert (fe.unit_dir / "default.target.wants" / "ai-ollama.service").is_symlink()

    body = wait_for(lambda: http_get(f"http://127.0.0.1:{port}/api/version"))
    assert json.loads(body or b"{}") == {"version": "0.32.15"}
    assert fe.ollama_serve_env() == {"OLLAMA_HOST": f"127.0.0.1:{port}",
                                     "OLLAMA_CONTEXT_LENGTH": "65536",
                                     "OLLAMA_KEEP_ALIVE": "-1"}
    active = fe.run(["systemctl", "--user", "is-active", "ai-ollama"])
    assert (active.returncode, active.stdout) == (0, "active\n")
    props = dict(line.split("=", 1) for line in fe.run(
        ["systemctl", "--user", "show", "ai-ollama.service",
         "--property=ActiveState,SubState,MainPID,FragmentPath,UnitFileState,ExecMainStatus"]
    ).stdout.splitlines())
    assert props["ActiveState"] == "active" and props["SubState"] == "running"
    assert props["FragmentPath"] == str(fe.unit_dir / "ai-ollama.service")
    assert props["UnitFileState"] == "enabled"
    pid = int(props["MainPID"])
    assert "ollama_sim.py" in cmdline(pid)
    assert Path(f"/proc/{pid}/comm").read_text().strip() == "ollama"
    version = fe.run(["ollama", "--version"], extra_env={"OLLAMA_HOST": f"127.0.0.1:{port}"})
    assert version.stdout == "ollama version is 0.32.15\n"

    done = fe.run(["systemctl", "--user", "disable", "--now", "ai-ollama"])
    assert done.returncode == 0, done.stderr
    assert not pid_alive(pid)
    assert http_get(f"http://127.0.0.1:{port}/api/version") is None
    inactive = fe.run(["systemctl", "--user", "is-active", "ai-ollama"])
    assert (inactive.returncode, inactive.stdout) == (3, "inactive\n")
    assert fe.run(["systemctl", "--user", "is-enabled", "ai-ollama"]).stdout == "disabled\n"


def test_systemctl_keeps_the_loaded_unit_until_daemon_reload(
        make_env: Callable[..., FakeEnv]) -> None:
    fe = make_env(platform="linux")
    port = free_port()
    unit = ollama_unit(fe, port, context=65536)
    assert fe.run(["systemctl", "--user", "start", "ai-ollama"]).returncode == 0
    wait_for(lambda: fe.ollama_serve_env())
    unit.write_text(unit.read_text().replace("65536", "4096"))

    done = fe.run(["systemctl", "--user", "restart", "ai-ollama"])
    assert done.returncode == 0
    assert done.stderr == ("Warning: The unit file, source configuration file or drop-ins of "
                           "ai-ollama.service changed on disk. Run 'systemctl --user "
                           "daemon-reload' to reload units.\n")
    wait_for(lambda: http_get(f"http://127.0.0.1:{port}/api/version"))
    assert (fe.ollama_serve_env() or {})["OLLAMA_CONTEXT_LENGTH"] == "65536"  # the old copy
    assert fe.run(["systemctl", "--user", "show", "ai-ollama", "-p", "NeedDaemonReload",
                   "--value"]).stdout == "yes\n"

    assert fe.run(["systemctl", "--user", "daemon-reload"]).returncode == 0
    done = fe.run(["systemctl", "--user", "restart", "ai-ollama"])
    assert (done.returncode, done.stderr) == (0, "")
    wait_for(lambda: (fe.ollama_serve_env() or {}).get("OLLAMA_CONTEXT_LENGTH") == "4096")
    assert (fe.ollama_serve_env() or {})["OLLAMA_CONTEXT_LENGTH"] == "4096"


def test_systemctl_unknown_and_failed_units(make_env: Callable[..., FakeEnv]) -> None:
    fe = make_env(platform="linux")
    missing = fe.run(["systemctl", "--user", "start", "nope"])
    assert (missing.returncode, missing.stderr) == (
        5, "Failed to start nope.service: Unit nope.service not found.\n")
    fe.unit_dir.mkdir(parents=True)
    (fe.unit_dir / "bad.service").write_text("[Service]\nExecStart=/bin/sh -c 'exit 3'\n")
    assert fe.run(["systemctl", "--user", "start", "bad"]).returncode == 0  # Type=simple
    state = wait_for(lambda: fe.run(["systemctl", "--user", "is-active", "bad"]).stdout
                     == "failed\n")
    assert state
    props = fe.run(["systemctl", "--user", "show", "bad", "-p", "ActiveState,Result,"
                    "ExecMainStatus,MainPID"]).stdout.splitlines()
    assert props == ["ActiveState=failed", "Result=exit-code", "ExecMainStatus=3", "MainPID=0"]
    status = fe.run(["systemctl", "--user", "status", "bad"])
    assert status.returncode == 3
    assert "(code=exited, status=3/NOTIMPLEMENTED)" in status.stdout
    no_user = fe.run(["systemctl", "start", "bad"])
    assert no_user.returncode == 1


# ---------------------------------------------------------------------------------------------
# lsof, ollama, stop_all
# ---------------------------------------------------------------------------------------------

LSOF_TEXT = """\
COMMAND   PID  USER   FD   TYPE             DEVICE SIZE/OFF NODE NAME
ollama   1234 alice    3u  IPv4 0x5f3c2a1b2c3d4e5f      0t0  TCP 127.0.0.1:11434 (LISTEN)
haproxy  2345 alice    7u  IPv4 0x5f3c2a1b2c3d4e61      0t0  TCP 100.101.102.103:11434 (LISTEN)
haproxy  2345 alice    9u  IPv4 0x5f3c2a1b2c3d4e62      0t0  TCP 127.0.0.1:8405 (LISTEN)
"""


def test_lsof_prints_the_given_output(make_env: Callable[..., FakeEnv]) -> None:
    fe = make_env(platform="darwin")
    nothing = fe.run(["lsof", "-nP", "-iTCP", "-sTCP:LISTEN"])
    assert (nothing.returncode, nothing.stdout) == (1, "")  # lsof: no match = exit 1, silent
    fe.set_lsof_output(LSOF_TEXT)
    done = fe.run(["lsof", "-nP", "-iTCP", "-sTCP:LISTEN"])
    assert (done.returncode, done.stdout) == (0, LSOF_TEXT)
    port = fe.run(["lsof", "-nP", "-iTCP:11434", "-sTCP:LISTEN"])
    assert port.stdout.splitlines() == LSOF_TEXT.splitlines()[:3]
    assert fe.run(["lsof", "-t", "-i", ":8405"]).stdout == "2345\n"
    assert fe.run(["lsof", "-nP", "-iTCP:9999", "-sTCP:LISTEN"]).returncode == 1
    assert fe.calls("lsof")[1] == ["-nP", "-iTCP", "-sTCP:LISTEN"]


def test_ollama_cli_without_a_server(make_env: Callable[..., FakeEnv]) -> None:
    fe = make_env()
    port = free_port()
    version = fe.run(["ollama", "-v"], extra_env={"OLLAMA_HOST": f"127.0.0.1:{port}",
                                                  "FAKE_OLLAMA_VERSION": "0.33.0"})
    assert version.returncode == 0
    assert version.stdout == ("Warning: could not connect to a running Ollama instance\n"
                              "Warning: client version is 0.33.0\n")
    listing = fe.run(["ollama", "list"], extra_env={"OLLAMA_HOST": f"127.0.0.1:{port}"})
    assert listing.returncode == 1 and "could not connect to ollama server" in listing.stderr
    unknown = fe.run(["ollama", "frobnicate"])
    assert unknown.returncode == 1 and "unknown command" in unknown.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = fe.run(["ollama", "serve"],
                      extra_env={"OLLAMA_HOST": f"127.0.0.1:{taken.getsockname()[1]}"})
    assert busy.returncode == 1
    assert busy.stderr.endswith("bind: address already in use\n")
    wide = fe.run(["ollama", "serve"], extra_env={"OLLAMA_HOST": "0.0.0.0"})
    assert wide.returncode == 1 and "refuses a non-loopback bind" in wide.stderr
    assert fe.ollama_serve_env() == {"OLLAMA_HOST": "0.0.0.0"}


def test_ollama_host_parsing_follows_ollama() -> None:
    parse_host = load_script("ollama").parse_host
    assert parse_host(None) == ("http", "127.0.0.1", 11434)
    assert parse_host("0.0.0.0") == ("http", "0.0.0.0", 11434)
    assert parse_host("127.0.0.1:8080") == ("http", "127.0.0.1", 8080)
    assert parse_host("http://127.0.0.1") == ("http", "127.0.0.1", 80)
    assert parse_host("https://example.com") == ("https", "example.com", 443)
    assert parse_host("http://[::1]:5000/path") == ("http", "::1", 5000)
    assert parse_host("[::1]") == ("http", "::1", 11434)
    assert parse_host(":9999") == ("http", "", 9999)
    assert parse_host("localhost:99999") == ("http", "localhost", 11434)


def test_stop_all_kills_a_process_that_ignores_sigterm(
        make_env: Callable[..., FakeEnv]) -> None:
    fe = make_env(platform="linux")
    fe.unit_dir.mkdir(parents=True)
    # ExecStart names are looked up in systemd's fixed PATH, not the caller's: use a full path
    (fe.unit_dir / "stubborn.service").write_text(
        f"[Service]\nExecStart={fe.bin_dir}/python3 -c 'import signal, time; "
        "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)'\n")
    assert fe.run(["systemctl", "--user", "start", "stubborn"]).returncode == 0
    pid = int(fe.run(["systemctl", "--user", "show", "stubborn", "-p", "MainPID",
                      "--value"]).stdout)
    assert pid_alive(pid)
    fe.stop_all(timeout=0.5)
    assert not pid_alive(pid)
    assert fe.live_pids() == []


def test_every_invocation_is_recorded(make_env: Callable[..., FakeEnv]) -> None:
    fe = make_env(platform="darwin")
    fe.run(["sw_vers", "-productVersion"])
    fe.run(["sysctl", "-n", "hw.memsize"])
    fe.run(["brew", "--version"])
    assert fe.calls() == [["sw_vers", "-productVersion"], ["sysctl", "-n", "hw.memsize"],
                          ["brew", "--version"]]
    record = fe.call_records("brew")[0]
    assert record["env"] == {"HOME": str(fe.home), "PATH": str(fe.bin_dir)}
    assert fe.run(["sysctl", "-n", "hw.memsize"]).stdout == f"{64 * 1024**3}\n"


@pytest.mark.parametrize("platform", ["darwin", "linux"])
def test_brew_services_start_and_restart_regenerate_from_the_formula(
        make_env: Callable[..., FakeEnv], platform: str) -> None:
    """As Homebrew: `start` without --file writes the definition generated from the formula's
    `service do` block with the user's env file merged in (service.rb:443-488; since 6.0.15),
    `restart` deletes a --file copy and regenerates, `start` on a running service only says
    so, and `restart --file=<missing>` stops (and unregisters) before it fails."""
    fe = make_env(platform=platform)
    fe.brew_install("sleeper", service=ServiceDef(run=SLEEPER, environment={"A": "formula"}))
    dest = (fe.launch_agents / "homebrew.mxcl.sleeper.plist" if platform == "darwin"
            else fe.unit_dir / "homebrew.sleeper.service")

    def loaded_env() -> dict[str, str]:
        if platform == "darwin":
            env: dict[str, str] = plistlib.loads(dest.read_bytes())["EnvironmentVariables"]
            return env
        return dict(line[len('Environment="'):-1].split("=", 1)
                    for line in dest.read_text().splitlines()
                    if line.startswith("Environment="))

    env_file = fe.home / ".homebrew" / "services" / "sleeper.env"
    env_file.parent.mkdir(parents=True)
    env_file.write_text("# mine\nA=user\nB = two \nnot a pair\n")
    env_file.chmod(0o644)
    done = fe.run(["brew", "services", "start", "sleeper"])
    assert done.returncode == 0, done.stderr
    assert loaded_env() == {"A": "user", "B": "two"}
    assert "Skipping invalid line" in done.stderr
    if platform == "darwin":
        assert plistlib.loads(dest.read_bytes())["LimitLoadToSessionType"] == [
            "Aqua", "Background", "LoginWindow", "StandardIO", "System"]
    else:
        assert "Restart=on-failure" in dest.read_text().splitlines()  # service.rb:641-644
    pid = brew_info(fe, "sleeper")["pid"]

    again = fe.run(["brew", "services", "start", "sleeper"])
    assert again.returncode == 0
    assert "Service `sleeper` already started, use `brew services restart sleeper` to " \
        "restart." in again.stdout
    assert brew_info(fe, "sleeper")["pid"] == pid

    own = write_definition(fe, "sleeper", SLEEPER)
    assert fe.run(["brew", "services", "restart", "sleeper", f"--file={own}"]).returncode == 0
    assert dest.read_bytes() == own.read_bytes()
    assert fe.run(["brew", "services", "restart", "sleeper"]).returncode == 0
    assert loaded_env() == {"A": "user", "B": "two"}  # regenerated: the --file copy is gone

    env_file.chmod(0o664)  # Homebrew skips a group-writable env file
    assert fe.run(["brew", "services", "restart", "sleeper"]).returncode == 0
    assert loaded_env() == {"A": "formula"}
    env_file.chmod(0o644)
    old = fe.run(["brew", "services", "restart", "sleeper"],
                 extra_env={"FAKE_BREW_VERSION": "6.0.14"})  # before env files existed
    assert old.returncode == 0 and loaded_env() == {"A": "formula"}

    missing = fe.root / "gone"
    failed = fe.run(["brew", "services", "restart", "sleeper", f"--file={missing}"])
    assert failed.returncode == 1
    assert "Provided service file does not exist." in failed.stderr
    info = brew_info(fe, "sleeper")
    assert (info["running"], info["registered"]) == (False, False)
    assert not dest.exists()
    # `start` checks the file before anything else: nothing changes
    assert fe.run(["brew", "services", "start", "sleeper"]).returncode == 0
    assert fe.run(["brew", "services", "start", "sleeper", f"--file={missing}"]
                  ).returncode == 1
    assert brew_info(fe, "sleeper")["running"] is True
