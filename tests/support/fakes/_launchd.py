"""A small launchd model shared by the `launchctl` and `brew` fakes.

State (``$FAKE_STATE_DIR/launchctl.json``)::

    {"services": {"gui/501/homebrew.mxcl.ollama": {"domain", "label", "plist", "definition",
                                                   "job", "runs", "last_exit"}},
     "disabled": {"gui/501": {"<label>": true|false}}}

launchd reads a plist once, at bootstrap: later edits of the file change nothing until the
service is booted out and bootstrapped again (kickstart reuses the loaded definition).
"""

from __future__ import annotations

import os
import plistlib
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the fakes import each other as top-level modules at run time
    from tests.support.fakes import _fakelib as fk
else:
    import _fakelib as fk

EX_CONFIG = 78
RICHER = "Try re-running the command as root for richer errors."


def user_domain() -> str:
    return f"gui/{os.getuid()}"


def load_plist(path: Path) -> dict[str, Any]:
    """Parse a launchd plist (XML or binary); ValueError when it is not a usable job."""
    try:
        with open(path, "rb") as fh:
            data = plistlib.load(fh)
    except (OSError, plistlib.InvalidFileException, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a dictionary")
    return data


def definition_from_plist(data: dict[str, Any]) -> dict[str, Any]:
    """The parts of a job definition the fake acts on, as JSON-friendly values."""
    label = data.get("Label")
    if not isinstance(label, str) or not label:
        raise ValueError("missing Label")
    args = data.get("ProgramArguments")
    program = data.get("Program")
    if args is not None and (not isinstance(args, list) or not args):
        raise ValueError("ProgramArguments must be a non-empty array")
    if args is None and not isinstance(program, str):
        raise ValueError("neither Program nor ProgramArguments")
    env = data.get("EnvironmentVariables") or {}
    if not isinstance(env, dict):
        raise ValueError("EnvironmentVariables must be a dictionary")
    keep_alive = data.get("KeepAlive", False)
    return {
        "label": label,
        "program": program if isinstance(program, str) else None,
        "arguments": [str(a) for a in args] if args else [str(program)],
        "env": {str(k): str(v) for k, v in env.items()},
        "working_directory": data.get("WorkingDirectory"),
        "stdout": data.get("StandardOutPath"),
        "stderr": data.get("StandardErrorPath"),
        "run_at_load": bool(data.get("RunAtLoad", False)),
        "keep_alive": keep_alive if isinstance(keep_alive, bool) else dict(keep_alive),
        "disabled": bool(data.get("Disabled", False)),
        "start_interval": data.get("StartInterval"),
        "calendar": data.get("StartCalendarInterval") is not None,
    }


def starts_at_load(defn: dict[str, Any]) -> bool:
    keep_alive = defn.get("keep_alive")
    # launchd.plist(5): KeepAlive's SuccessfulExit key implies RunAtLoad.
    return bool(defn.get("run_at_load") or keep_alive is True
                or (isinstance(keep_alive, dict) and "SuccessfulExit" in keep_alive))


def split_service_target(target: str) -> tuple[str, str]:
    parts = target.split("/")
    if parts[0] in ("gui", "user", "login") and len(parts) >= 3 and parts[1].isdigit():
        return "/".join(parts[:2]), "/".join(parts[2:])
    if parts[0] == "system" and len(parts) >= 2 and parts[1]:
        return "system", "/".join(parts[1:])
    raise fk.FakeError(64, "Unrecognized target specifier.")


def check_domain(domain: str) -> str:
    parts = domain.split("/")
    if domain == "system" or (len(parts) == 2 and parts[0] in ("gui", "user", "login")
                              and parts[1].isdigit()):
        return domain
    raise fk.FakeError(64, "Unrecognized target specifier.")


def not_found_message(domain: str, label: str) -> str:
    kind, _, ident = domain.partition("/")
    where = f"user {kind}: {ident}" if ident else "system"
    return f'Could not find service "{label}" in domain for {where}'


def fail_message(argv: list[str]) -> str:
    sub = argv[0] if argv else ""
    if sub == "bootstrap":
        return f"Bootstrap failed: 5: Input/output error\n{RICHER}"
    if sub == "bootout":
        return f"Boot-out failed: 5: Input/output error\n{RICHER}"
    if sub in ("kickstart", "print", "kill") and argv[1:]:
        domain, _, label = argv[-1].rpartition("/")
        return not_found_message(domain, label)
    return "Operation not permitted while System Integrity Protection is engaged"


class Launchd:
    def __init__(self, sd: Path, state: dict[str, Any]) -> None:
        self.sd = sd
        self.state = state
        self.services: dict[str, dict[str, Any]] = state.setdefault("services", {})
        self.overrides: dict[str, dict[str, bool]] = state.setdefault("disabled", {})

    # -- queries ---------------------------------------------------------------------------------

    def service(self, domain: str, label: str) -> dict[str, Any] | None:
        svc = self.services.get(f"{domain}/{label}")
        if svc is not None:
            self._refresh(svc)
        return svc

    def _refresh(self, svc: dict[str, Any]) -> fk.JobStatus | None:
        """The current job's status; a finished job becomes ``last_exit``."""
        job_id = svc.get("job")
        if not job_id:
            return None
        status = fk.job_status(self.sd, job_id)
        if not status.running:
            if status.exited:
                svc["last_exit"] = {"code": status.exit_code, "signal": status.signal,
                                    "wait_status": status.wait_status}
            else:  # killed together with its supervisor: the signal is not known to us
                svc["last_exit"] = {"code": None, "signal": signal.SIGKILL,
                                    "wait_status": signal.SIGKILL}
            svc["job"] = None
            svc["last_pid"] = status.pid
        return status

    def pid(self, svc: dict[str, Any]) -> int | None:
        status = self._refresh(svc)
        return status.pid if status is not None and status.running else None

    def is_disabled(self, domain: str, label: str, defn: dict[str, Any] | None) -> bool:
        override = self.overrides.get(domain, {}).get(label)
        if override is not None:
            return override
        return bool(defn and defn.get("disabled"))

    # -- actions ---------------------------------------------------------------------------------

    def bootstrap(self, domain: str, path: Path) -> None:
        domain = check_domain(domain)
        if not path.exists():
            raise fk.FakeError(2, "Bootstrap failed: 2: No such file or directory")
        try:
            mode = path.stat().st_mode
            defn = definition_from_plist(load_plist(path))
        except (OSError, ValueError) as exc:
            raise fk.FakeError(5, f"Bootstrap failed: 5: Input/output error\n{RICHER}") from exc
        if mode & 0o022:  # launchd refuses group/world-writable job files
            raise fk.FakeError(5, f"Bootstrap failed: 5: Input/output error\n{RICHER}")
        label = defn["label"]
        if self.service(domain, label) is not None:
            raise fk.FakeError(5, f"Bootstrap failed: 5: Input/output error\n{RICHER}")
        if self.is_disabled(domain, label, defn):
            raise fk.FakeError(119, f"Bootstrap failed: 119: Service is disabled\n{RICHER}")
        svc: dict[str, Any] = {"domain": domain, "label": label, "plist": str(path.absolute()),
                               "definition": defn, "job": None, "runs": 0, "last_exit": None}
        self.services[f"{domain}/{label}"] = svc
        if starts_at_load(defn):
            self._start(svc)

    def bootout(self, domain: str, label: str, by_path: bool = False) -> None:
        svc = self.service(domain, label)
        if svc is None:
            if by_path:
                raise fk.FakeError(5, f"Boot-out failed: 5: Input/output error\n{RICHER}")
            raise fk.FakeError(3, "Boot-out failed: 3: No such process")
        if svc.get("job"):
            fk.terminate(self.sd, svc["job"])
        del self.services[f"{domain}/{label}"]

    def kickstart(self, domain: str, label: str, kill: bool) -> int | None:
        svc = self.service(domain, label)
        if svc is None:
            raise fk.FakeError(113, not_found_message(domain, label))
        if svc.get("job"):
            if not kill:
                return self.pid(svc)
            fk.terminate(self.sd, svc["job"])
            self._refresh(svc)
        self._start(svc)
        return self.pid(svc)

    def kill(self, domain: str, label: str, sig: int) -> None:
        svc = self.service(domain, label)
        if svc is None:
            raise fk.FakeError(113, not_found_message(domain, label))
        if not svc.get("job") or not fk.send_signal(self.sd, svc["job"], sig):
            raise fk.FakeError(3, "No process to signal.")

    def set_disabled(self, domain: str, label: str, disabled: bool) -> None:
        self.overrides.setdefault(check_domain(domain), {})[label] = disabled

    def _start(self, svc: dict[str, Any]) -> None:
        defn = svc["definition"]
        env = dict(os.environ)
        env.update(defn["env"])
        env["XPC_SERVICE_NAME"] = svc["label"]
        spec = fk.LaunchSpec(
            argv=list(defn["arguments"]), executable=defn.get("program"), env=env,
            cwd=defn.get("working_directory") or "/",
            stdout=defn.get("stdout"), stderr=defn.get("stderr"),
            fail_code_exec=EX_CONFIG, fail_code_cwd=EX_CONFIG, fail_code_stdout=EX_CONFIG,
            fail_code_stderr=EX_CONFIG,
        )
        status = fk.spawn(self.sd, "launchctl", svc["label"], spec)
        svc["job"] = status.job_id
        svc["runs"] = int(svc.get("runs", 0)) + 1
        self._refresh(svc)

    # -- renderings ------------------------------------------------------------------------------

    @staticmethod
    def _last_exit_line(svc: dict[str, Any]) -> str:
        last = svc.get("last_exit")
        if not last:
            return "last exit code = (never exited)"
        if last.get("signal"):
            sig = int(last["signal"])
            names = {int(signal.SIGTERM): "Terminated", int(signal.SIGKILL): "Killed",
                     int(signal.SIGINT): "Interrupt", int(signal.SIGHUP): "Hangup",
                     int(signal.SIGABRT): "Abort trap", int(signal.SIGSEGV): "Segmentation fault"}
            return f"last terminating signal = {names.get(sig, fk.signal_name(sig))}: {sig}"
        code = int(last.get("code") or 0)
        return f"last exit code = {code}: EX_CONFIG" if code == EX_CONFIG else \
            f"last exit code = {code}"

    def render_print(self, domain: str, label: str) -> str:
        svc = self.service(domain, label)
        if svc is None:
            raise fk.FakeError(113, not_found_message(domain, label))
        defn = svc["definition"]
        pid = self.pid(svc)
        lines = [f"{domain}/{label} = {{",
                 f"\tactive count = {1 if pid else 0}",
                 f"\tpath = {svc['plist']}",
                 "\ttype = LaunchAgent" if domain != "system" else "\ttype = LaunchDaemon",
                 f"\tstate = {'running' if pid else 'not running'}",
                 "",
                 f"\tprogram = {defn.get('program') or defn['arguments'][0]}",
                 "\targuments = {"]
        lines += [f"\t\t{a}" for a in defn["arguments"]]
        lines += ["\t}", ""]
        if defn.get("working_directory"):
            lines += [f"\tworking directory = {defn['working_directory']}", ""]
        if defn.get("stdout"):
            lines.append(f"\tstdout path = {defn['stdout']}")
        if defn.get("stderr"):
            lines.append(f"\tstderr path = {defn['stderr']}")
        lines += ["\tdefault environment = {", "\t\tPATH => /usr/bin:/bin:/usr/sbin:/sbin",
                  "\t}", "", "\tenvironment = {"]
        env = dict(defn["env"])
        env["XPC_SERVICE_NAME"] = label
        lines += [f"\t\t{k} => {v}" for k, v in sorted(env.items())]
        lines += ["\t}", "", f"\tdomain = {domain}", "\tminimum runtime = 10",
                  "\texit timeout = 5", f"\truns = {svc.get('runs', 0)}"]
        if pid:
            lines.append(f"\tpid = {pid}")
        lines += ["\timmediate reason = speculative", "\tforks = 0",
                  f"\texecs = {svc.get('runs', 0)}", "\tinitialized = 1",
                  "\ttrampolined = 1", "\tstarted suspended = 0",
                  "\tproxy started suspended = 0", f"\t{self._last_exit_line(svc)}", "",
                  "\tspawn type = daemon (3)", "\tjetsam priority = 40",
                  f"\tjob state = {'running' if pid else 'exited'}", ""]
        props = []
        if defn.get("keep_alive"):
            props.append("keepalive")
        if defn.get("run_at_load"):
            props.append("runatload")
        if not defn.get("program"):
            props.append("inferred program")
        lines.append(f"\tproperties = {' | '.join(props)}")
        lines.append("}")
        return "\n".join(lines)

    def list_rows(self) -> list[tuple[str, str, str]]:
        """(PID, Status, Label) for the caller's gui/user domains, as ``launchctl list``."""
        uid = os.getuid()
        rows = []
        for svc in self.services.values():
            if svc["domain"] not in (f"gui/{uid}", f"user/{uid}"):
                continue
            pid = self.pid(svc)
            last = svc.get("last_exit") or {}
            status = -int(last["signal"]) if last.get("signal") else int(last.get("code") or 0)
            rows.append((str(pid) if pid else "-", str(status), svc["label"]))
        return rows

    def render_list_label(self, label: str) -> str:
        uid = os.getuid()
        svc = self.service(f"gui/{uid}", label) or self.service(f"user/{uid}", label)
        if svc is None:
            raise fk.FakeError(113, f'Could not find service "{label}" in domain for port')
        defn = svc["definition"]
        pid = self.pid(svc)
        last = svc.get("last_exit") or {}
        lines = ["{", '\t"LimitLoadToSessionType" = "Aqua";', f'\t"Label" = "{label}";',
                 '\t"OnDemand" = ' + ("false" if defn.get("keep_alive") else "true") + ";",
                 f'\t"LastExitStatus" = {int(last.get("wait_status") or 0)};']
        if pid:
            lines.append(f'\t"PID" = {pid};')
        lines.append(f'\t"Program" = "{defn.get("program") or defn["arguments"][0]}";')
        lines.append('\t"ProgramArguments" = (')
        lines += [f'\t\t"{a}";' for a in defn["arguments"]]
        lines += ["\t);", "};"]
        return "\n".join(lines)
