"""Service definitions (launchd plists, systemd units) and the managers that run them.

Ollama and the gateway are started by `brew services … --file=<our definition>` when the
formula is installed through Homebrew, else by launchd (macOS) or systemd --user (Linux)
directly, from the same templates.
"""

from __future__ import annotations

import json
import re
import shlex
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from xml.sax.saxutils import escape

from aicommon import __version__, resources
from aicommon.errors import AiError, ExitCode
from aicommon.runner import run
from aiserver import system

LABEL_PREFIX = "com.remote-ollama-proxy"


@dataclass(frozen=True)
class ServiceSpec:
    key: str  # "ollama", "gateway", "warm"
    description: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    stdout: Path
    stderr: Path
    working_dir: Path
    daemon: bool = True  # keep alive / restart; False = run once at load (warm-up job)
    formula: str | None = None  # Homebrew formula whose service this replaces (--file)


@dataclass(frozen=True)
class ServiceState:
    key: str
    manager: str
    running: bool
    pid: int | None
    file: str | None
    detail: str = ""


def plist_text(spec: ServiceSpec, label: str) -> str:
    def s(value: str) -> str:
        return f"<string>{escape(value)}</string>"

    args = "\n".join(f"\t\t{s(a)}" for a in spec.argv)
    env = "\n".join(f"\t\t<key>{escape(k)}</key>\n\t\t{s(v)}" for k, v in spec.env)
    keep_alive = ("\t<key>KeepAlive</key>\n\t<true/>" if spec.daemon
                  else "\t<key>KeepAlive</key>\n\t<false/>")
    return string.Template(resources.read_text("launchd/service.plist.tmpl")).substitute(
        version=__version__, description=escape(spec.description), label=escape(label),
        program_arguments=args, environment=env, working_directory=escape(str(spec.working_dir)),
        stdout_path=escape(str(spec.stdout)), stderr_path=escape(str(spec.stderr)),
        keep_alive=keep_alive, process_type="Interactive" if spec.key == "ollama" else "Standard")


def _systemd_quote(value: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_./:=+,@%-]+", value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unit_text(spec: ServiceSpec) -> str:
    env = "\n".join(f"Environment={_systemd_quote(f'{k}={v}')}" for k, v in spec.env)
    return string.Template(resources.read_text("systemd/service.unit.tmpl")).substitute(
        version=__version__, description=spec.description,
        service_type="simple" if spec.daemon else "oneshot",
        exec_start=" ".join(_systemd_quote(a) for a in spec.argv), environment=env,
        working_directory=str(spec.working_dir), stdout_path=str(spec.stdout),
        stderr_path=str(spec.stderr),
        restart="Restart=always\nRestartSec=2" if spec.daemon else "RemainAfterExit=no")


class Manager(Protocol):
    name: str

    def definition_path(self, spec: ServiceSpec) -> Path: ...
    def render(self, spec: ServiceSpec) -> str: ...
    def start(self, spec: ServiceSpec, restart: bool) -> None: ...
    def stop(self, spec: ServiceSpec) -> None: ...
    def state(self, spec: ServiceSpec) -> ServiceState: ...
    def side_dirs(self) -> list[Path]: ...


@dataclass
class Brew:
    """`brew services` with our own definition file (--file)."""

    brew: str
    platform: str
    render_dir: Path
    name: str = "brew"

    def definition_path(self, spec: ServiceSpec) -> Path:
        assert spec.formula is not None
        suffix = ".plist" if self.platform == "darwin" else ".service"
        base = (f"homebrew.mxcl.{spec.formula}" if self.platform == "darwin"
                else f"homebrew.{spec.formula}")
        return self.render_dir / f"{base}{suffix}"

    def render(self, spec: ServiceSpec) -> str:
        assert spec.formula is not None
        if self.platform == "darwin":
            return plist_text(spec, f"homebrew.mxcl.{spec.formula}")
        return unit_text(spec)

    def start(self, spec: ServiceSpec, restart: bool) -> None:
        verb = "restart" if restart else "start"
        run([self.brew, "services", verb, str(spec.formula),
             f"--file={self.definition_path(spec)}"], timeout=120)

    def stop(self, spec: ServiceSpec) -> None:
        run([self.brew, "services", "stop", str(spec.formula)], timeout=120)

    def side_dirs(self) -> list[Path]:
        """Directories `brew services` itself may create (where it copies our definition)."""
        home = Path.home()
        if self.platform == "darwin":
            return [home / "Library", home / "Library" / "LaunchAgents"]
        user = home / ".config" / "systemd" / "user"
        return [home / ".config", user.parent, user, user / "default.target.wants"]

    def state(self, spec: ServiceSpec) -> ServiceState:
        done = run([self.brew, "services", "info", str(spec.formula), "--json"], timeout=60,
                   check=False)
        try:
            info = json.loads(done.stdout)[0] if done.ok else {}
        except (ValueError, IndexError, KeyError):
            info = {}
        pid = info.get("pid")
        return ServiceState(spec.key, self.name, bool(info.get("running")),
                            pid if isinstance(pid, int) else None, info.get("file"),
                            str(info.get("status", "unknown")))


@dataclass
class Launchd:
    home: Path
    name: str = "launchd"

    def label(self, spec: ServiceSpec) -> str:
        return f"{LABEL_PREFIX}.{spec.key}"

    def definition_path(self, spec: ServiceSpec) -> Path:
        return self.home / "Library" / "LaunchAgents" / f"{self.label(spec)}.plist"

    def render(self, spec: ServiceSpec) -> str:
        return plist_text(spec, self.label(spec))

    def side_dirs(self) -> list[Path]:
        return []

    def _target(self, spec: ServiceSpec) -> str:
        return f"gui/{system.uid()}/{self.label(spec)}"

    def start(self, spec: ServiceSpec, restart: bool) -> None:
        if self.state(spec).detail != "not loaded":
            run(["launchctl", "bootout", self._target(spec)], timeout=60)
        run(["launchctl", "bootstrap", f"gui/{system.uid()}", str(self.definition_path(spec))],
            timeout=60)

    def stop(self, spec: ServiceSpec) -> None:
        if self.state(spec).detail != "not loaded":
            run(["launchctl", "bootout", self._target(spec)], timeout=60)

    def state(self, spec: ServiceSpec) -> ServiceState:
        done = run(["launchctl", "print", self._target(spec)], timeout=30, check=False)
        if not done.ok:
            return ServiceState(spec.key, self.name, False, None, None, "not loaded")
        st = re.search(r"^\s*state = (.+)$", done.stdout, re.M)
        pid = re.search(r"^\s*pid = (\d+)", done.stdout, re.M)
        path = re.search(r"^\s*path = (.+)$", done.stdout, re.M)
        state = st.group(1).strip() if st else "unknown"
        return ServiceState(spec.key, self.name, state == "running",
                            int(pid.group(1)) if pid else None,
                            path.group(1).strip() if path else None, state)


@dataclass
class Systemd:
    home: Path
    name: str = "systemd"
    _reloaded: bool = field(default=False, repr=False)

    def unit(self, spec: ServiceSpec) -> str:
        return f"ai-server-{spec.key}.service"

    def definition_path(self, spec: ServiceSpec) -> Path:
        return self.home / ".config" / "systemd" / "user" / self.unit(spec)

    def render(self, spec: ServiceSpec) -> str:
        return unit_text(spec)

    def start(self, spec: ServiceSpec, restart: bool) -> None:
        run(["systemctl", "--user", "daemon-reload"], timeout=60)
        if restart:
            run(["systemctl", "--user", "enable", self.unit(spec)], timeout=60)
            run(["systemctl", "--user", "restart", self.unit(spec)], timeout=120)
        else:
            run(["systemctl", "--user", "enable", "--now", self.unit(spec)], timeout=120)

    def side_dirs(self) -> list[Path]:
        """`systemctl enable` makes default.target.wants/ and leaves it behind on disable."""
        return [self.home / ".config" / "systemd" / "user" / "default.target.wants"]

    def stop(self, spec: ServiceSpec) -> None:
        if self.definition_path(spec).exists():
            run(["systemctl", "--user", "disable", "--now", self.unit(spec)], timeout=120)

    def state(self, spec: ServiceSpec) -> ServiceState:
        done = run(["systemctl", "--user", "show", self.unit(spec),
                    "--property=ActiveState,SubState,MainPID,FragmentPath"], timeout=30,
                   check=False)
        props = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
        pid = int(props.get("MainPID", "0") or 0)
        return ServiceState(spec.key, self.name, props.get("ActiveState") == "active",
                            pid or None, props.get("FragmentPath") or None,
                            props.get("SubState", "unknown") if done.ok else "not found")


def direct_manager(platform: str, home: Path) -> Manager:
    return Launchd(home) if platform == "darwin" else Systemd(home)


def brew_has(brew: str, formula: str) -> bool:
    done = run([brew, "list", "--versions", formula], timeout=60, check=False)
    return done.ok and bool(done.stdout.strip())


def require_manager(platform: str) -> None:
    if platform not in ("darwin", "linux"):
        raise AiError(f"unsupported platform {platform!r}", "ai-server runs on macOS and Linux",
                      code="platform.unsupported", exit_code=ExitCode.UNAVAILABLE)


def shell_line(argv: tuple[str, ...]) -> str:
    return shlex.join(argv)
