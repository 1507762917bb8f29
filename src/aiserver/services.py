"""Service definitions (launchd plists, systemd units) and the managers that run them.

When the formula (ollama, ai-server) is installed through Homebrew, `brew services` runs it
with the definition Homebrew itself generates from the formula's `service do` block; our
settings reach it through Homebrew's per-user env file
(`$HOMEBREW_USER_CONFIG_HOME/services/<formula>.env`, Homebrew 6.0.15+), which Homebrew
merges in every time it (re)generates the definition (service.rb:443-488). So a user's
`brew services restart <formula>` -- which deletes the installed definition and regenerates
it (restart.rb:29-40, cli.rb:122-161, formula_wrapper.rb:270-278) -- keeps our setup.
Otherwise launchd (macOS) or systemd --user (Linux) run our own definitions directly.
"""

from __future__ import annotations

import json
import os
import plistlib
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
# Homebrew merges $HOMEBREW_USER_CONFIG_HOME/services/<formula>.env since 6.0.15 (commit
# 9a239b2, 2026-07-31; service.rb:443-488).
BREW_ENV_FILES_SINCE = (6, 0, 15)
ENV_BEGIN = "# >>> ai-server install (brew services reads this block) >>>"
ENV_END = "# <<< ai-server install <<<"


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
    formula: str | None = None  # Homebrew formula whose service this is (brew services)


@dataclass(frozen=True)
class ServiceState:
    key: str
    manager: str
    running: bool
    pid: int | None
    file: str | None
    detail: str = ""


@dataclass(frozen=True)
class Loaded:
    """A service definition as the service manager has it: program arguments, environment."""

    file: Path
    argv: tuple[str, ...]
    env: dict[str, str]
    stderr: str | None = None  # where the service's error output goes


def read_definition(path: Path) -> Loaded | None:
    """Parse a launchd plist or a systemd unit (ours or one Homebrew generated)."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    if raw.lstrip().startswith((b"<?xml", b"<!DOCTYPE", b"<plist", b"bplist")):
        try:
            data = plistlib.loads(raw)
        except (ValueError, plistlib.InvalidFileException):
            return None
        env = data.get("EnvironmentVariables") or {}
        err = data.get("StandardErrorPath")
        return Loaded(path, tuple(str(a) for a in data.get("ProgramArguments") or ()),
                      {str(k): str(v) for k, v in env.items()},
                      str(err) if err else None)
    argv: tuple[str, ...] = ()
    env = {}
    stderr = None
    section = ""
    for line in raw.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        if section != "Service" or "=" not in line:
            continue
        key, value = line.split("=", 1)
        if key == "StandardError" and value.startswith(("append:", "file:")):
            stderr = value.split(":", 1)[1]
            continue
        try:
            words = shlex.split(value)
        except ValueError:
            continue
        if key == "ExecStart":
            argv = tuple(words)
        elif key == "Environment":
            for word in words:
                name, sep, val = word.partition("=")
                if sep:
                    env[name] = val
    return Loaded(path, argv, env, stderr)


def process_env(pid: int | None) -> dict[str, str] | None:
    """The environment of a running process where the OS shows it (Linux /proc; None else)."""
    if not pid:
        return None
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    out = {}
    for item in raw.split(b"\0"):
        name, sep, value = item.decode("utf-8", "replace").partition("=")
        if sep:
            out[name] = value
    return out


def brew_user_config_home() -> Path:
    """Where Homebrew reads per-user configuration (bin/brew:163-170)."""
    if os.environ.get("XDG_CONFIG_HOME"):
        return Path(os.environ["XDG_CONFIG_HOME"]) / "homebrew"
    if os.environ.get("HOMEBREW_XDG_CONFIG_HOME"):
        return Path(os.environ["HOMEBREW_XDG_CONFIG_HOME"]) / "homebrew"
    return Path.home() / ".homebrew"


def strip_env_block(text: str) -> str:
    """An env file without our block (the user's own lines stay as they were)."""
    lines = text.splitlines(keepends=True)
    try:
        begin = next(i for i, line in enumerate(lines) if line.rstrip("\r\n") == ENV_BEGIN)
        end = next(i for i in range(begin, len(lines)) if lines[i].rstrip("\r\n") == ENV_END)
    except StopIteration:
        return text
    return "".join(lines[:begin] + lines[end + 1:])


def env_file_text(old: str | None, env: tuple[tuple[str, str], ...]) -> str:
    """The user's lines, then our block last (later lines win in Homebrew's merge)."""
    keep = strip_env_block(old or "")
    if not env:
        return keep
    if keep and not keep.endswith("\n"):
        keep += "\n"
    block = "".join(f"{k}={v}\n" for k, v in env)
    return f"{keep}{ENV_BEGIN}\n{block}{ENV_END}\n"


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
    def loaded(self, spec: ServiceSpec) -> Loaded | None: ...


def differences(spec: ServiceSpec, manager: Manager, state: ServiceState) -> list[str]:
    """What the loaded definition (and, where the OS shows it, the running process's
    environment) has that differs from what `ai-server install` wants. PATH is left out:
    Homebrew's and launchd's PATH are theirs to choose."""
    loaded = manager.loaded(spec)
    where = str(manager.installed_path(spec)) if isinstance(manager, Brew) else str(
        manager.definition_path(spec))
    if loaded is None:
        return [f"no definition at {where}"] if state.running else []
    found = []
    if loaded.argv[1:] != spec.argv[1:]:
        found.append(f"{where} runs {shlex.join(loaded.argv)!r}, wanted arguments "
                     f"{shlex.join(spec.argv[1:])!r}")
    wanted = [(k, v) for k, v in spec.env if k != "PATH"]
    for key, value in wanted:
        if loaded.env.get(key) != value:
            found.append(f"{where}: {key}={loaded.env.get(key, '(unset)')}, wanted {value}")
    penv = process_env(state.pid) if state.running else None
    if penv is not None:
        for key, value in wanted:
            if penv.get(key) != value:
                found.append(f"running process {state.pid}: {key}="
                             f"{penv.get(key, '(unset)')}, wanted {value}")
    return found


@dataclass
class Brew:
    """`brew services` with the formula's own definition; our settings live in Homebrew's
    per-user env file for the formula, which every (re)generation merges in."""

    brew: str
    platform: str
    name: str = "brew"

    def definition_path(self, spec: ServiceSpec) -> Path:
        """What install writes: $HOMEBREW_USER_CONFIG_HOME/services/<formula>.env."""
        return brew_user_config_home() / "services" / f"{spec.formula}.env"

    def installed_path(self, spec: ServiceSpec) -> Path:
        """Where `brew services start` installs the generated definition (formula_wrapper.rb:
        131-139: the user's LaunchAgents or systemd user directory)."""
        home = Path.home()
        if self.platform == "darwin":
            return home / "Library" / "LaunchAgents" / f"homebrew.mxcl.{spec.formula}.plist"
        return home / ".config" / "systemd" / "user" / f"homebrew.{spec.formula}.service"

    def render(self, spec: ServiceSpec) -> str:
        try:
            old = self.definition_path(spec).read_text(encoding="utf-8")
        except FileNotFoundError:
            old = None
        return env_file_text(old, spec.env)

    def start(self, spec: ServiceSpec, restart: bool) -> None:
        # no --file: Homebrew generates the definition from the formula and the env file
        verb = "restart" if restart else "start"
        run([self.brew, "services", verb, str(spec.formula)], timeout=120)

    def stop(self, spec: ServiceSpec) -> None:
        run([self.brew, "services", "stop", str(spec.formula)], timeout=120)

    def side_dirs(self) -> list[Path]:
        """Directories `brew services` itself may create (where it installs definitions)."""
        home = Path.home()
        if self.platform == "darwin":
            return [home / "Library", home / "Library" / "LaunchAgents"]
        user = home / ".config" / "systemd" / "user"
        return [home / ".config", user.parent, user, user / "default.target.wants"]

    def loaded(self, spec: ServiceSpec) -> Loaded | None:
        return read_definition(self.installed_path(spec))

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


def brew_version(brew: str) -> tuple[int, ...] | None:
    done = run([brew, "--version"], timeout=60, check=False)
    match = re.search(r"Homebrew (\d+)\.(\d+)\.(\d+)", done.stdout)
    return tuple(int(g) for g in match.groups()) if done.ok and match else None


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

    def loaded(self, spec: ServiceSpec) -> Loaded | None:
        return read_definition(self.definition_path(spec))

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

    def loaded(self, spec: ServiceSpec) -> Loaded | None:
        return read_definition(self.definition_path(spec))

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
