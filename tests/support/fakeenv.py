"""A locked-down environment whose PATH holds the recording fakes of tests/support/fakes/.

    fe = make_fake_env(tmp_path, platform="darwin")
    request.addfinalizer(fe.stop_all)            # or: with make_fake_env(...) as fe:
    fe.install_ollama_formula()                  # Cellar/opt layout + Homebrew's service files
    fe.fail("brew services start ollama")        # FAKE_FAIL entry
    done = fe.run(["brew", "services", "info", "ollama", "--json"])
    assert fe.calls("brew")[-1] == ["services", "info", "ollama", "--json"]

``FakeEnv.env`` is the whole environment for the code under test: PATH is ONLY ``bin_dir``
(symlinks to the chosen fakes and to real tools found in the system directories), HOME is
``<tmp>/home``, plus FAKE_STATE_DIR, FAKE_PLATFORM, FAKE_BREW_PREFIX, SHIV_ROOT,
AI_SERVER_HOME / AI_CLIENT_HOME, AI_SERVER_PLATFORM, AI_SERVER_NO_BREW_PREFIXES and the
Tailscale fake's variables (tests/support/tsfake.py).

Which fakes are linked: brew (``with_brew``), ollama and tailscale always; launchctl, lsof,
sw_vers and sysctl (replacing the real sysctl) for ``platform="darwin"``; systemctl and
loginctl for ``platform="linux"``. ``extra_fakes`` links more (e.g. ``("lsof",)`` on linux).

Processes the service-manager fakes start are recorded under ``$FAKE_STATE_DIR/jobs``;
``stop_all()`` terminates them (and any other process carrying this FAKE_STATE_DIR in its
environment), so call it in teardown.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import tsfake
from tests.support.fakes import _brewservice  # what Homebrew generates from `service do`
from tests.support.fakes._fakelib import pid_alive  # the fakes' own liveness check

FAKES_DIR = Path(__file__).resolve().parent / "fakes"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_REAL_TOOLS = ("python3", "haproxy", "ss", "ip", "sh", "bash", "env", "sleep", "cat",
                      "id", "uname", "sysctl")
DARWIN_FAKES = ("launchctl", "lsof", "sw_vers", "sysctl")
LINUX_FAKES = ("systemctl", "loginctl")
OLLAMA_VERSION = "0.32.15"


@dataclass
class ServiceDef:
    """A formula's `service do` block, rendered the way Homebrew renders it."""

    run: list[str]
    environment: dict[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    log_path: str | None = None
    error_log_path: str | None = None
    keep_alive: bool = True
    run_at_load: bool = True

    def description(self) -> dict[str, Any]:
        return {"run": list(self.run), "environment": dict(self.environment),
                "working_dir": self.working_dir, "log_path": self.log_path,
                "error_log_path": self.error_log_path, "keep_alive": self.keep_alive,
                "run_at_load": self.run_at_load}

    def plist(self, label: str) -> bytes:
        return _brewservice.plist_bytes(self.description(), label, dict(self.environment))

    def unit(self, formula: str) -> str:
        return _brewservice.unit_text(self.description(), formula, dict(self.environment))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@dataclass
class FakeEnv:
    root: Path
    platform: str
    bin_dir: Path
    home: Path
    state_dir: Path
    brew_prefix: Path
    env: dict[str, str]

    # -- records ---------------------------------------------------------------------------------

    def call_records(self, tool: str | None = None) -> list[dict[str, Any]]:
        """Every recorded invocation ({"tool", "argv", "env", "cwd", "time"}), oldest first."""
        try:
            lines = (self.state_dir / "calls.jsonl").read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            lines = []
        records = [json.loads(line) for line in lines if line.strip()]
        return [r for r in records if tool is None or r["tool"] == tool]

    def calls(self, tool: str | None = None) -> list[list[str]]:
        """argv lists of ``tool``'s invocations; with no tool, ``[tool, *argv]`` of all.
        tailscale logs to its own file (FAKE_TAILSCALE_LOG): ``calls("tailscale")`` reads it."""
        if tool == "tailscale":
            log = Path(self.env.get("FAKE_TAILSCALE_LOG", self.root / "none"))
            with contextlib.suppress(FileNotFoundError):
                return [json.loads(line) for line in log.read_text().splitlines() if line]
            return []
        records = self.call_records(tool)
        if tool is None:
            return [[r["tool"], *r["argv"]] for r in records]
        return [list(r["argv"]) for r in records]

    def state(self, tool: str) -> dict[str, Any]:
        data = _read_json(self.state_dir / f"{tool}.json")
        return data if isinstance(data, dict) else {}

    def ollama_serve_env(self) -> dict[str, str] | None:
        """The OLLAMA_* environment the last `ollama serve` ran with (None: never ran)."""
        data = _read_json(self.state_dir / "ollama-serve-env.json")
        return data if isinstance(data, dict) else None

    # -- configuration ---------------------------------------------------------------------------

    def fail(self, prefix: str) -> None:
        """Make invocations starting with ``prefix`` (e.g. "systemctl --user enable") fail."""
        entries = [e for e in self.env.get("FAKE_FAIL", "").splitlines() if e.strip()]
        entries.append(prefix)
        self.env["FAKE_FAIL"] = "\n".join(entries)

    def clear_failures(self) -> None:
        self.env.pop("FAKE_FAIL", None)

    def set_lsof_output(self, text: str) -> Path:
        """What `lsof` prints (header + rows in macOS format; see fakes/lsof)."""
        path = self.root / "lsof-output.txt"
        path.write_text(text, encoding="utf-8")
        self.env["FAKE_LSOF_OUTPUT"] = str(path)
        self.env.pop("FAKE_LSOF_LIVE", None)
        return path

    def use_live_lsof(self) -> None:
        """`lsof` reports the real listening sockets of this environment's processes."""
        self.env.pop("FAKE_LSOF_OUTPUT", None)
        self.env["FAKE_LSOF_LIVE"] = "1"

    def set_tailscale(self, doc: dict[str, Any] | None) -> None:
        """The `tailscale status --json` document (None: tailscaled not running)."""
        tsfake.install(self.env, self.root, doc)

    @property
    def launch_agents(self) -> Path:
        return self.home / "Library" / "LaunchAgents"

    @property
    def unit_dir(self) -> Path:
        return self.home / ".config" / "systemd" / "user"

    # -- Homebrew layout -------------------------------------------------------------------------

    def brew_install(self, name: str, version: str = "1.0.0", *,
                     bins: Mapping[str, str | Path] | None = None,
                     service: ServiceDef | None = None) -> Path:
        """Make ``name`` an installed formula: Cellar/<name>/<version> with ``bins`` (name ->
        target, symlinked into the keg's and the prefix's bin), opt/<name> -> the keg, and,
        with ``service``, the keg's homebrew.mxcl.<name>.plist and homebrew.<name>.service."""
        keg = self.brew_prefix / "Cellar" / name / version
        (keg / "bin").mkdir(parents=True, exist_ok=True)
        for folder in ("bin", "opt", "etc", "var/log", "var/homebrew"):
            (self.brew_prefix / folder).mkdir(parents=True, exist_ok=True)
        for bin_name, target in (bins or {}).items():
            for link, dest in ((keg / "bin" / bin_name, Path(target)),
                               (self.brew_prefix / "bin" / bin_name, keg / "bin" / bin_name)):
                if link.is_symlink() or link.exists():
                    link.unlink()
                link.symlink_to(dest)
        opt = self.brew_prefix / "opt" / name
        if opt.is_symlink() or opt.exists():
            opt.unlink()
        opt.symlink_to(keg)
        if service is not None:
            (keg / f"homebrew.mxcl.{name}.plist").write_bytes(service.plist(
                f"homebrew.mxcl.{name}"))
            (keg / f"homebrew.{name}.service").write_text(service.unit(name), encoding="utf-8")
            (keg / _brewservice.DESCRIPTION).write_text(json.dumps(service.description()),
                                                        encoding="utf-8")
        return keg

    def install_ollama_formula(self, version: str = OLLAMA_VERSION,
                               extra_env: Mapping[str, str] | None = None) -> Path:
        """Homebrew's ollama formula (REFERENCE §1.6): `ollama serve` (this fake) with
        OLLAMA_FLASH_ATTENTION=1 and OLLAMA_KV_CACHE_TYPE=q8_0, no OLLAMA_HOST (so its own
        service binds 127.0.0.1:11434 — pass ``extra_env={"OLLAMA_HOST": ...}`` or start it
        with --file to keep parallel tests apart)."""
        prefix = self.brew_prefix
        env = {"OLLAMA_FLASH_ATTENTION": "1", "OLLAMA_KV_CACHE_TYPE": "q8_0",
               **(extra_env or {})}
        return self.brew_install("ollama", version, bins={"ollama": FAKES_DIR / "ollama"},
                                 service=ServiceDef(
                                     run=[f"{prefix}/opt/ollama/bin/ollama", "serve"],
                                     environment=env, working_dir=f"{prefix}/var",
                                     log_path=f"{prefix}/var/log/ollama.log",
                                     error_log_path=f"{prefix}/var/log/ollama.log"))

    def install_haproxy_formula(self, version: str = "3.3.0") -> Path:
        """Homebrew's haproxy formula: `haproxy -f etc/haproxy.cfg` (the real binary of this
        machine when there is one), keep_alive, log var/log/haproxy.log; no haproxy.cfg."""
        prefix = self.brew_prefix
        real = shutil.which("haproxy", path=SYSTEM_PATH)
        return self.brew_install("haproxy", version,
                                 bins={"haproxy": real} if real else {},
                                 service=ServiceDef(
                                     run=[f"{prefix}/opt/haproxy/bin/haproxy", "-f",
                                          f"{prefix}/etc/haproxy.cfg"],
                                     log_path=f"{prefix}/var/log/haproxy.log",
                                     error_log_path=f"{prefix}/var/log/haproxy.log"))

    # -- running things --------------------------------------------------------------------------

    def run(self, argv: Sequence[str | Path], *, timeout: float = 60.0, input: str | None = None,
            cwd: Path | None = None, extra_env: Mapping[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in this environment (``argv[0]`` looked up on the fake PATH)."""
        env = {**self.env, **(extra_env or {})}
        program = shutil.which(str(argv[0]), path=env["PATH"]) or str(argv[0])
        return subprocess.run([program, *map(str, argv[1:])], env=env, cwd=cwd or self.root,
                              input=input, capture_output=True, text=True, timeout=timeout,
                              check=False)

    # -- processes -------------------------------------------------------------------------------

    def jobs(self) -> list[dict[str, Any]]:
        """Every process record the service-manager fakes wrote (jobs/<id>.json)."""
        records = []
        for path in sorted((self.state_dir / "jobs").glob("*.json")):
            data = _read_json(path)
            if isinstance(data, dict):
                records.append(data)
        return records

    def pids(self) -> list[int]:
        """Every pid the fakes started: services' programs and their supervisors."""
        found: list[int] = []
        for job in self.jobs():
            for key in ("pid", "supervisor"):
                if isinstance(job.get(key), int) and job[key] not in found:
                    found.append(job[key])
        return found

    def live_pids(self) -> list[int]:
        """The pids of :meth:`pids` still running, plus any process of this environment."""
        alive = [p for p, start in self._tracked() if pid_alive(p, start)]
        return alive + [p for p in self._env_processes() if p not in alive]

    def _tracked(self) -> list[tuple[int, int | None]]:
        tracked = []
        for job in self.jobs():
            for key, start in (("pid", "starttime"), ("supervisor", "supervisor_starttime")):
                if isinstance(job.get(key), int):
                    tracked.append((int(job[key]), job.get(start)))
        return tracked

    def _env_processes(self) -> list[int]:
        """Processes (not us, not our ancestors) whose environment has our FAKE_STATE_DIR."""
        if not os.path.isdir("/proc/self"):
            return []
        marker = f"FAKE_STATE_DIR={self.state_dir}".encode()
        skip = {os.getpid()}
        pid = os.getppid()
        while pid > 1 and pid not in skip:
            skip.add(pid)
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                pid = int(stat[stat.rindex(")") + 2:].split()[1])
            except (OSError, ValueError):
                break
        found = []
        for proc in Path("/proc").glob("[0-9]*"):
            pid = int(proc.name)
            if pid in skip:
                continue
            try:
                if marker in proc.joinpath("environ").read_bytes().split(b"\0") \
                        and pid_alive(pid):
                    found.append(pid)
            except OSError:
                continue
        return found

    def stop_all(self, timeout: float = 5.0) -> None:
        """Terminate every process the fakes started (and any other process carrying this
        environment's FAKE_STATE_DIR): SIGTERM to each and to its process group, SIGKILL after
        ``timeout``. Never raises; safe to call twice."""
        own_group = os.getpgid(0)

        def targets() -> list[tuple[int, int | None]]:
            found = [(p, s) for p, s in self._tracked() if pid_alive(p, s)]
            with contextlib.suppress(Exception):
                found += [(p, None) for p in self._env_processes()
                          if p not in {q for q, _ in found}]
            return found

        def signal_all(sig: int) -> None:
            for pid, _start in targets():
                with contextlib.suppress(OSError):
                    os.kill(pid, sig)
                with contextlib.suppress(OSError):
                    group = os.getpgid(pid)
                    if group != own_group:
                        os.killpg(group, sig)

        try:
            signal_all(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while targets() and time.monotonic() < deadline:
                time.sleep(0.05)
            if targets():
                signal_all(signal.SIGKILL)
                deadline = time.monotonic() + 2.0
                while targets() and time.monotonic() < deadline:
                    time.sleep(0.05)
        except Exception as exc:  # teardown must not fail on a vanished /proc entry etc.
            print(f"fakeenv.stop_all: {exc!r}", file=sys.stderr)

    def __enter__(self) -> FakeEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def _real_tool(name: str) -> str | None:
    if name == "python3":  # the interpreter running the tests, not a pyenv/venv shim
        return os.path.realpath(sys.executable)
    return shutil.which(name, path=SYSTEM_PATH)


def make_fake_env(tmp: Path, *, platform: str = "linux", with_brew: bool = True,
                  real_tools: Sequence[str] = DEFAULT_REAL_TOOLS,
                  extra_fakes: Sequence[str] = (),
                  tailscale: dict[str, Any] | bool | None = True) -> FakeEnv:
    """Build the environment under ``tmp`` (see the module docstring). ``tailscale``: True =
    a Running node (tsfake.status_doc()), a dict = that status document, None/False = no
    tailscaled."""
    if platform not in ("darwin", "linux"):
        raise ValueError(f"platform must be darwin or linux, not {platform!r}")
    root = Path(tmp)
    bin_dir = root / "fakebin"
    home = root / "home"
    state_dir = root / "fake-state"
    brew_prefix = root / "homebrew"
    for folder in (bin_dir, home, state_dir, brew_prefix, root / "tmp"):
        folder.mkdir(parents=True, exist_ok=True)
    fakes = ["ollama", "tailscale", *(["brew"] if with_brew else []),
             *(DARWIN_FAKES if platform == "darwin" else LINUX_FAKES), *extra_fakes]
    for tool in real_tools:
        if tool in fakes:
            continue
        found = _real_tool(tool)
        if found:
            link = bin_dir / tool
            if not link.is_symlink():
                link.symlink_to(found)
    for tool in fakes:
        link = bin_dir / tool
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(FAKES_DIR / tool)
    user = os.environ.get("USER") or "tester"
    env = {
        "PATH": str(bin_dir),
        "HOME": str(home),
        "USER": user,
        "LOGNAME": user,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TMPDIR": str(root / "tmp"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "FAKE_STATE_DIR": str(state_dir),
        "FAKE_PLATFORM": platform,
        "FAKE_BREW_PREFIX": str(brew_prefix),
        "SHIV_ROOT": str(root / "shiv"),
        "AI_SERVER_HOME": str(home / "ai-server"),
        "AI_CLIENT_HOME": str(home / "ai-client"),
        "AI_SERVER_PLATFORM": platform,
        "AI_SERVER_NO_BREW_PREFIXES": "1",
    }
    fake_env = FakeEnv(root=root, platform=platform, bin_dir=bin_dir, home=home,
                       state_dir=state_dir, brew_prefix=brew_prefix, env=env)
    if tailscale is True:
        fake_env.set_tailscale(tsfake.status_doc())
    elif isinstance(tailscale, dict):
        fake_env.set_tailscale(tailscale)
    else:
        fake_env.set_tailscale(None)
    # tsfake points AI_TAILSCALE at the fake's real path; keep `tailscale` on PATH too.
    return fake_env
