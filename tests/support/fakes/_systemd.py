"""A small `systemd --user` model shared by the `systemctl` and `brew` fakes.

Units live in ``$XDG_CONFIG_HOME/systemd/user`` (default ``~/.config/systemd/user``), with
drop-ins in ``<unit>.d/*.conf``. Like the real manager, the fake keeps a *loaded* copy of each
unit it has seen (taken on first use or at ``daemon-reload``; ``enable``/``disable`` reload
too) and runs THAT copy: editing a unit file without ``daemon-reload`` prints the
"changed on disk" warning and keeps running the old definition. (Loaded units are never
garbage-collected here, so the warning shows up more reliably than on a real system.)

State (``$FAKE_STATE_DIR/systemctl.json``)::

    {"units": {"foo.service": {"snapshot": {...} | null, "job": id | null, "stopped": bool,
                               "active": bool (non-service units), "since": t, "n": starts}}}
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import signal
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the fakes import each other as top-level modules at run time
    from tests.support.fakes import _fakelib as fk
else:
    import _fakelib as fk

UNIT_SUFFIXES = (".service", ".timer", ".target", ".socket", ".path", ".mount", ".slice",
                 ".scope")
SYSTEM_EXEC_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CLEAN_SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE)
EXIT_NAMES = {0: "SUCCESS", 1: "FAILURE", 2: "INVALIDARGUMENT", 3: "NOTIMPLEMENTED",
              4: "NOPERMISSION", 5: "NOTINSTALLED", 6: "NOTCONFIGURED", 7: "NOTRUNNING",
              200: "CHDIR", 203: "EXEC", 209: "STDOUT"}
NO_INSTALL_INFO = """\
The unit files have no installation config (WantedBy=, RequiredBy=, UpheldBy=,
Also=, or Alias= settings in the [Install] section, and DefaultInstance= for
template units). This means they are not meant to be enabled or disabled using systemctl.

Possible reasons for having these kinds of units are:
• A unit may be statically enabled by being symlinked from another unit's
  .wants/, .requires/, or .upholds/ directory.
• A unit's purpose may be to act as a helper for some other unit which has
  a requirement dependency on it.
• A unit may be started when needed via activation (socket, path, timer,
  D-Bus, udev, scripted systemctl call, ...).
• In case of template units, the unit is meant to be enabled with some
  instance name specified."""


def unit_dir() -> Path:
    xdg = os.environ.get("XDG_CONFIG_HOME")
    return (Path(xdg) if xdg else fk.home() / ".config") / "systemd" / "user"


def unit_name(name: str) -> str:
    if not name or "/" in name:
        raise fk.FakeError(1, f"Invalid unit name \"{name}\" (the recording fake accepts plain "
                              "unit names only).")
    return name if name.endswith(UNIT_SUFFIXES) else name + ".service"


def reload_warning(name: str) -> str:
    return (f"Warning: The unit file, source configuration file or drop-ins of {name} changed "
            "on disk. Run 'systemctl --user daemon-reload' to reload units.")


def _files(name: str) -> tuple[Path | None, list[Path]]:
    base = unit_dir()
    fragment = base / name
    drop = base / f"{name}.d"
    dropins = sorted(drop.glob("*.conf")) if drop.is_dir() else []
    return (fragment if fragment.is_file() else None), dropins


def _fingerprint(fragment: Path | None, dropins: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in ([fragment] if fragment else []) + dropins:
        digest.update(str(path).encode() + b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"<unreadable>")
        digest.update(b"\0")
    return digest.hexdigest() if fragment else "missing"


def parse_unit_text(text: str) -> list[list[str]]:
    """[section, key, value] entries; comments, blank lines and continuations handled."""
    entries: list[list[str]] = []
    section = ""
    pending: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if pending is not None:
            if line.startswith(("#", ";")):
                continue
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            line, pending = pending + line, None
        else:
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
                continue
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
        key, sep, value = line.partition("=")
        if sep:
            entries.append([section, key.strip(), value.strip()])
    return entries


def expand_specifiers(value: str, name: str) -> str:
    uid = os.getuid()
    home = os.environ.get("HOME", "")
    stem = name.rsplit(".", 1)[0]
    table = {
        "%": "%", "h": home, "u": fk.current_user(), "U": str(uid), "n": name, "N": stem,
        "p": stem.split("@", 1)[0], "i": stem.split("@", 1)[1] if "@" in stem else "",
        "t": os.environ.get("XDG_RUNTIME_DIR", f"/run/user/{uid}"),
        "S": os.environ.get("XDG_STATE_HOME", f"{home}/.local/state"),
        "C": os.environ.get("XDG_CACHE_HOME", f"{home}/.cache"),
        "E": os.environ.get("XDG_CONFIG_HOME", f"{home}/.config"),
        "T": "/tmp", "V": "/var/tmp", "H": socket.gethostname(),
    }
    out: list[str] = []
    i = 0
    while i < len(value):
        if value[i] == "%" and i + 1 < len(value) and value[i + 1] in table:
            out.append(table[value[i + 1]])
            i += 2
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def parse_exec(value: str, env: dict[str, str], name: str) -> list[str]:
    """An ExecStart= line as argv: prefixes stripped, specifiers, quotes, $VAR / ${VAR}."""
    text = value.strip()
    flags = ""
    while text and text[0] in "@-:+!":
        flags += text[0]
        text = text[1:]
    words = shlex.split(expand_specifiers(text, name))
    if ":" in flags:
        return words
    argv: list[str] = []
    for word in words:
        whole = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if whole:
            argv.extend(env.get(whole[1], "").split())
            continue
        argv.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}",
                           lambda m: env.get(m[1], ""), word))
    return argv


def parse_env_assignments(value: str) -> list[tuple[str, str]]:
    pairs = []
    for item in shlex.split(value):
        key, sep, val = item.partition("=")
        if sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            pairs.append((key, val))
    return pairs


def read_env_file(path: Path) -> list[tuple[str, str]]:
    pairs = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key, sep, val = line.partition("=")
        val = val.strip()
        if len(val) >= 2 and val[0] == val[-1] and val[0] in "\"'":
            val = val[1:-1]
        if sep:
            pairs.append((key.strip(), val))
    return pairs


def parse_seconds(value: str, default: float) -> float:
    value = value.strip()
    if not value:
        return default
    if value == "infinity":
        return 10.0 ** 9
    total = 0.0
    units = {"us": 1e-6, "ms": 1e-3, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "": 1}
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value):
        total += float(number) * units.get(unit, 1)
    return total or default


def fail_message(argv: list[str]) -> str:
    words = [a for a in argv if not a.startswith("-")]
    verb = words[0] if words else ""
    unit = unit_name(words[1]) if len(words) > 1 and "/" not in words[1] else "unit"
    if verb in ("start", "restart", "try-restart", "reload-or-restart"):
        return (f"Job for {unit} failed because the control process exited with error code.\n"
                f"See \"systemctl --user status {unit}\" and \"journalctl --user -xeu {unit}\" "
                "for details.")
    if verb in ("enable", "disable"):
        return f"Failed to {verb} unit: Access denied"
    if verb == "stop":
        return f"Failed to stop {unit}: Access denied"
    return "Failed to connect to bus: No medium found"


class UnitConfig:
    """The effective settings of one loaded unit (fragment + drop-ins, resets honoured)."""

    def __init__(self, name: str, entries: list[list[str]]) -> None:
        self.name = name
        self.description = ""
        self.exec_start: list[str] = []
        self.environment: list[str] = []
        self.environment_files: list[str] = []
        self.working_directory = ""
        self.stdout = ""
        self.stderr = ""
        self.type = "simple"
        self.remain_after_exit = False
        self.timeout_start = ""
        self.wanted_by: list[str] = []
        self.required_by: list[str] = []
        self.aliases: list[str] = []
        self.has_install = False
        for section, key, value in entries:
            if section == "Unit" and key == "Description":
                self.description = value
            elif section == "Service":
                self._service(key, value)
            elif section == "Install":
                self.has_install = True
                for target, field in (("WantedBy", self.wanted_by),
                                      ("RequiredBy", self.required_by),
                                      ("Alias", self.aliases)):
                    if key == target:
                        if value:
                            field.extend(value.split())
                        else:
                            field.clear()

    def _service(self, key: str, value: str) -> None:
        if key == "ExecStart":
            if value:
                self.exec_start.append(value)
            else:
                self.exec_start.clear()
        elif key == "Environment":
            if value:
                self.environment.append(value)
            else:
                self.environment.clear()
        elif key == "EnvironmentFile":
            if value:
                self.environment_files.append(value)
            else:
                self.environment_files.clear()
        elif key == "WorkingDirectory":
            self.working_directory = value
        elif key == "StandardOutput":
            self.stdout = value
        elif key == "StandardError":
            self.stderr = value
        elif key == "Type":
            self.type = value or "simple"
        elif key == "RemainAfterExit":
            self.remain_after_exit = value.lower() in ("yes", "true", "1", "on")
        elif key == "TimeoutStartSec":
            self.timeout_start = value

    @property
    def is_service(self) -> bool:
        return self.name.endswith(".service")

    @property
    def install_info(self) -> bool:
        return bool(self.wanted_by or self.required_by or self.aliases)

    def bad_setting(self) -> bool:
        return self.is_service and not self.exec_start


class Systemd:
    def __init__(self, sd: Path, state: dict[str, Any]) -> None:
        self.sd = sd
        self.state = state
        self.units: dict[str, dict[str, Any]] = state.setdefault("units", {})

    # -- loading ---------------------------------------------------------------------------------

    def _snapshot(self, name: str) -> dict[str, Any] | None:
        fragment, dropins = _files(name)
        if fragment is None:
            return None
        entries: list[list[str]] = []
        for path in [fragment, *dropins]:
            try:
                entries += parse_unit_text(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError):
                continue
        return {"fingerprint": _fingerprint(fragment, dropins), "fragment": str(fragment),
                "dropins": [str(p) for p in dropins], "entries": entries,
                "loaded_at": time.time()}

    def load(self, name: str) -> dict[str, Any] | None:
        """The unit's record, loading it from disk when it is not in memory yet."""
        rec = self.units.get(name)
        if rec is not None and rec.get("snapshot") is not None:
            return rec
        snap = self._snapshot(name)
        if snap is None:
            return rec
        if rec is None:
            rec = {"job": None, "stopped": False, "active": False, "since": None, "n": 0}
            self.units[name] = rec
        rec["snapshot"] = snap
        return rec

    def config(self, name: str, rec: dict[str, Any] | None) -> UnitConfig | None:
        if rec is None or rec.get("snapshot") is None:
            return None
        return UnitConfig(name, rec["snapshot"]["entries"])

    def needs_reload(self, name: str, rec: dict[str, Any] | None) -> bool:
        if rec is None or rec.get("snapshot") is None:
            return False
        return bool(rec["snapshot"]["fingerprint"] != _fingerprint(*_files(name)))

    def daemon_reload(self) -> None:
        for name, rec in list(self.units.items()):
            snap = self._snapshot(name)
            if snap is not None:
                rec["snapshot"] = snap
            elif self.runtime(name, rec)[0] == "active":
                rec["snapshot"] = None
            else:
                del self.units[name]

    # -- runtime state ---------------------------------------------------------------------------

    def runtime(self, name: str, rec: dict[str, Any] | None
                ) -> tuple[str, str, str, fk.JobStatus | None]:
        """(ActiveState, SubState, Result, last job status)."""
        if rec is None:
            return "inactive", "dead", "success", None
        if not name.endswith(".service"):
            if rec.get("active"):
                return "active", "waiting" if name.endswith(".timer") else "active", "success", \
                    None
            return "inactive", "dead", "success", None
        job = rec.get("job")
        if not job:
            return "inactive", "dead", "success", None
        st = fk.job_status(self.sd, job)
        if st.running:
            return "active", "running", "success", st
        if rec.get("stopped"):
            return "inactive", "dead", "success", st
        if st.exited and st.signal is None:
            if st.exit_code == 0:
                cfg = self.config(name, rec)
                if cfg is not None and cfg.type == "oneshot" and cfg.remain_after_exit:
                    return "active", "exited", "success", st
                return "inactive", "dead", "success", st
            return "failed", "failed", "exit-code", st
        sig = st.signal if st.exited else signal.SIGKILL
        if sig in CLEAN_SIGNALS:
            return "inactive", "dead", "success", st
        return "failed", "failed", "signal", st

    def main_pid(self, name: str, rec: dict[str, Any] | None) -> int:
        st = self.runtime(name, rec)[3]
        return (st.pid or 0) if st is not None and st.running else 0

    def unit_file_state(self, name: str) -> str:
        fragment, _ = _files(name)
        if fragment is None:
            return ""
        base = unit_dir()
        for links in base.glob("*.wants"), base.glob("*.requires"):
            for folder in links:
                if (folder / name).is_symlink() or (folder / name).exists():
                    return "enabled"
        cfg = UnitConfig(name, parse_unit_text(fragment.read_text(encoding="utf-8")))
        return "disabled" if cfg.install_info else "static"

    # -- actions ---------------------------------------------------------------------------------

    def start(self, name: str, verb: str = "start") -> list[str]:
        """Start ``name`` (no-op when active); returns warnings for stderr."""
        rec = self.load(name)
        cfg = self.config(name, rec)
        if rec is None or cfg is None:
            raise fk.FakeError(5, f"Failed to {verb} {name}: Unit {name} not found.")
        warnings = [reload_warning(name)] if self.needs_reload(name, rec) else []
        if cfg.bad_setting():
            raise fk.FakeError(1, "\n".join([*warnings, f"Failed to {verb} {name}: Unit {name} "
                                             "has a bad unit file setting.",
                                             f"See user logs and 'systemctl --user status "
                                             f"{name}' for details."]))
        if self.runtime(name, rec)[0] == "active":
            return warnings
        if not cfg.is_service:
            rec.update(active=True, since=time.time())
            return warnings
        job_failed = (f"Job for {name} failed because the control process exited with error "
                      f"code.\nSee \"systemctl --user status {name}\" and \"journalctl --user "
                      f"-xeu {name}\" for details.")
        env = dict(os.environ)
        env["INVOCATION_ID"] = os.urandom(16).hex()
        file_env: dict[str, str] = {}
        for item in cfg.environment_files:
            path = Path(expand_specifiers(item.lstrip("-"), name))
            try:
                file_env.update(read_env_file(path))
            except OSError:
                if item.startswith("-"):
                    continue
                raise fk.FakeError(1, "\n".join([
                    *warnings, f"Job for {name} failed because of unavailable resources or "
                    "another system error.", f"See \"systemctl --user status {name}\" and "
                    f"\"journalctl --user -xeu {name}\" for details."])) from None
        for value in cfg.environment:
            env.update(parse_env_assignments(expand_specifiers(value, name)))
        env.update(file_env)  # EnvironmentFile= wins over Environment=
        argv = parse_exec(cfg.exec_start[-1], env, name)
        executable = argv[0] if argv else ""
        if argv and not executable.startswith("/"):
            found = None
            for folder in SYSTEM_EXEC_PATH.split(":"):
                candidate = Path(folder) / executable
                if candidate.is_file() and os.access(candidate, os.X_OK):
                    found = str(candidate)
                    break
            executable = found or f"/nonexistent-in-systemd-exec-path/{executable}"
        cwd = cfg.working_directory
        optional_cwd = cwd.startswith("-")
        cwd = expand_specifiers(cwd.lstrip("-"), name)
        if cwd == "~" or cwd.startswith("~/"):
            cwd = env.get("HOME", "/") + cwd[1:]
        if optional_cwd and cwd and not os.path.isdir(cwd):
            cwd = ""
        journal = self.sd / "journal"
        journal.mkdir(exist_ok=True)
        out_path, out_mode = self._output(cfg.stdout or "journal", journal / f"{name}.log")
        if (cfg.stderr or "inherit") == "inherit":
            err_path, err_mode = out_path, out_mode
        else:
            err_path, err_mode = self._output(cfg.stderr, journal / f"{name}.log")
        spec = fk.LaunchSpec(argv=argv, executable=executable or None, env=env,
                             cwd=cwd or env.get("HOME", "/"), stdout=out_path, stderr=err_path,
                             stdout_mode=out_mode, stderr_mode=err_mode, fail_code_exec=203,
                             fail_code_cwd=200, fail_code_stdout=209, fail_code_stderr=209)
        status = fk.spawn(self.sd, "systemctl", name, spec)
        rec.update(job=status.job_id, stopped=False, since=time.time(), n=rec.get("n", 0) + 1)
        if cfg.type == "oneshot":
            timeout = parse_seconds(cfg.timeout_start, 90.0)
            status = fk.wait_job(self.sd, status.job_id, timeout)
            if status.running:
                fk.terminate(self.sd, status.job_id)
                raise fk.FakeError(1, "\n".join([
                    *warnings, f"Job for {name} failed because a timeout was exceeded.",
                    f"See \"systemctl --user status {name}\" and \"journalctl --user -xeu "
                    f"{name}\" for details."]))
            if self.runtime(name, rec)[0] == "failed":
                raise fk.FakeError(1, "\n".join([*warnings, job_failed]))
        elif cfg.type == "exec" and status.error:
            raise fk.FakeError(1, "\n".join([*warnings, job_failed]))
        return warnings

    @staticmethod
    def _output(value: str, journal: Path) -> tuple[str | None, str]:
        for prefix, mode in (("append:", "append"), ("file:", "write"),
                             ("truncate:", "truncate")):
            if value.startswith(prefix):
                return value[len(prefix):], mode
        if value in ("null", "inherit"):
            return None, "append"
        return str(journal), "append"

    def stop(self, name: str) -> list[str]:
        rec = self.units.get(name) or self.load(name)
        if rec is None:
            raise fk.FakeError(5, f"Failed to stop {name}: Unit {name} not loaded.")
        warnings = [reload_warning(name)] if self.needs_reload(name, rec) else []
        if not name.endswith(".service"):
            rec["active"] = False
            return warnings
        st = self.runtime(name, rec)[3]
        if st is not None and st.running:
            fk.terminate(self.sd, st.job_id)
            rec["stopped"] = True
        return warnings

    def restart(self, name: str) -> list[str]:
        rec = self.load(name)
        if rec is None or rec.get("snapshot") is None:
            raise fk.FakeError(5, f"Failed to restart {name}: Unit {name} not found.")
        warnings = self.stop(name)
        if name.endswith(".service") and rec.get("job"):
            rec["job"] = None
        return warnings + [w for w in self.start(name, "restart") if w not in warnings]

    def reset_failed(self, name: str | None) -> None:
        for unit, rec in self.units.items():
            if (name is None or unit == name) and self.runtime(unit, rec)[0] == "failed":
                rec["job"] = None

    def enable(self, name: str) -> tuple[list[str], bool]:
        """Create the [Install] symlinks; (messages for stderr, whether anything changed)."""
        fragment, _ = _files(name)
        if fragment is None:
            raise fk.FakeError(1, f"Failed to enable unit: Unit file {name} does not exist.")
        cfg = UnitConfig(name, parse_unit_text(fragment.read_text(encoding="utf-8")))
        if not cfg.install_info:
            return [NO_INSTALL_INFO], False
        base = unit_dir()
        messages: list[str] = []
        links = [base / f"{t}.wants" / name for t in cfg.wanted_by]
        links += [base / f"{t}.requires" / name for t in cfg.required_by]
        links += [base / alias for alias in cfg.aliases]
        for link in links:
            if link.is_symlink() and Path(os.readlink(link)) == fragment:
                continue
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink():
                link.unlink()
            link.symlink_to(fragment)
            messages.append(f"Created symlink {link} \u2192 {fragment}.")
        return messages, bool(messages)

    def disable(self, name: str) -> tuple[list[str], bool]:
        fragment, _ = _files(name)
        if fragment is None:
            raise fk.FakeError(1, f"Failed to disable unit: Unit file {name} does not exist.")
        base = unit_dir()
        messages: list[str] = []
        candidates = [*base.glob(f"*.wants/{name}"), *base.glob(f"*.requires/{name}")]
        candidates += [p for p in base.iterdir() if p.is_symlink() and p.name != name
                       and Path(os.readlink(p)) == fragment]
        for link in candidates:
            if link.is_symlink():
                link.unlink()
                messages.append(f'Removed "{link}".')
        return messages, bool(messages)

    # -- renderings ------------------------------------------------------------------------------

    @staticmethod
    def _timestamp(t: float | None) -> str:
        return time.strftime("%a %Y-%m-%d %H:%M:%S %Z", time.localtime(t)) if t else ""

    def show(self, name: str) -> dict[str, str]:
        rec = self.load(name)
        cfg = self.config(name, rec)
        active, sub, result, st = self.runtime(name, rec)
        load_state = "not-found" if cfg is None else ("bad-setting" if cfg.bad_setting()
                                                      else "loaded")
        code, status = "0", "0"
        if st is not None and not st.running:
            if st.exited and st.signal:
                code, status = "2", str(st.signal)
            elif st.exited:
                code, status = "1", str(st.exit_code or 0)
            else:
                code, status = "2", str(int(signal.SIGKILL))
        props = {
            "Id": name, "Names": name,
            "Description": (cfg.description or name) if cfg else name,
            "LoadState": load_state, "ActiveState": active, "SubState": sub,
            "Result": result, "MainPID": str(self.main_pid(name, rec)),
            "ExecMainPID": str(st.pid or 0) if st else "0",
            "ExecMainCode": code, "ExecMainStatus": status,
            "FragmentPath": rec["snapshot"]["fragment"] if rec and rec.get("snapshot") else "",
            "DropInPaths": " ".join(rec["snapshot"]["dropins"]) if rec and rec.get("snapshot")
            else "",
            "UnitFileState": self.unit_file_state(name),
            "NeedDaemonReload": "yes" if self.needs_reload(name, rec) else "no",
            "Type": cfg.type if cfg and cfg.is_service else "",
            "Environment": " ".join(cfg.environment) if cfg else "",
            "WorkingDirectory": cfg.working_directory if cfg else "",
            "NRestarts": "0",
            "ActiveEnterTimestamp": self._timestamp(rec.get("since") if rec and active ==
                                                    "active" else None),
        }
        if cfg and cfg.exec_start:
            argv = shlex.split(cfg.exec_start[-1].lstrip("@-:+!"))
            if argv:
                props["ExecStart"] = (f"{{ path={argv[0]} ; argv[]={' '.join(argv)} ; "
                                      "ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; "
                                      "pid=0 ; code=(null) ; status=0/0 }")
        return props

    def status(self, name: str) -> tuple[str, int]:
        rec = self.load(name)
        cfg = self.config(name, rec)
        if rec is None or cfg is None:
            raise fk.FakeError(4, f"Unit {name} could not be found.")
        active, sub, result, st = self.runtime(name, rec)
        bullet = {"active": "\u25cf", "failed": "\u00d7"}.get(active, "\u25cb")
        file_state = self.unit_file_state(name) or "static"
        lines = [f"{bullet} {name} - {cfg.description or name}",
                 f"     Loaded: loaded ({rec['snapshot']['fragment']}; {file_state}; "
                 "preset: enabled)"]
        if rec["snapshot"]["dropins"]:
            first, *rest = rec["snapshot"]["dropins"]
            lines.append(f"    Drop-In: {os.path.dirname(first)}")
            lines += [f"             \u2514\u2500{os.path.basename(p)}" for p in [first, *rest]]
        since = rec.get("since")
        if active == "active":
            desc = f"active ({sub})"
        elif active == "failed":
            desc = f"failed (Result: {result})"
        else:
            desc = "inactive (dead)"
        when = ""
        if since and (active != "inactive" or st is not None):
            stamp = since if active == "active" else (st.ended_at if st and st.ended_at
                                                      else since)
            when = f" since {self._timestamp(stamp)}; {max(0, int(time.time() - stamp))}s ago"
        lines.append(f"     Active: {desc}{when}")
        if st is not None and not st.running:
            if st.exited and st.signal:
                how = f"code=killed, signal={fk.signal_name(st.signal).removeprefix('SIG')}"
            elif st.exited:
                code = st.exit_code or 0
                how = f"code=exited, status={code}/{EXIT_NAMES.get(code, str(code))}"
            else:
                how = "code=killed, signal=KILL"
            lines.append(f"    Process: {st.pid or 0} ExecStart={cfg.exec_start[-1]} ({how})"
                         if cfg.exec_start else f"    Process: {st.pid or 0} ({how})")
            lines.append(f"   Main PID: {st.pid or 0} ({how})")
        elif st is not None and st.pid:
            lines.append(f"   Main PID: {st.pid} ({fk.proc_comm(st.pid)})")
        if self.needs_reload(name, rec):
            lines.append("")
            lines.append(reload_warning(name))
        return "\n".join(lines), 0 if active == "active" else 3

    def cat(self, name: str) -> str:
        fragment, dropins = _files(name)
        if fragment is None:
            raise fk.FakeError(1, f"No files found for {name}.")
        parts = []
        if self.needs_reload(name, self.units.get(name)):
            parts.append(f"# Warning: {name} changed on disk, the version systemd has loaded "
                         "is outdated.\n# This output shows the current version of the unit's "
                         "original fragment and drop-in files.\n# If fragments or drop-ins were "
                         "added or removed, they are not properly reflected in this output.\n"
                         "# Run 'systemctl --user daemon-reload' to reload units.")
        for path in [fragment, *dropins]:
            parts.append(f"# {path}\n{path.read_text(encoding='utf-8').rstrip(chr(10))}")
        return "\n\n".join(parts)
