"""Shared machinery of the recording fakes in this directory (stdlib only).

Environment contract (see also tests/support/fakeenv.py):

``FAKE_STATE_DIR``  required. ``<tool>.json`` holds each tool's state, ``calls.jsonl`` one line
                    per invocation (``{"tool", "argv", "env": {HOME, PATH}, "cwd", "time"}``),
                    ``jobs/<id>.json`` one file per process a service manager started.
``FAKE_FAIL``       newline-separated command prefixes (``brew services start ollama``); an
                    invocation whose ``tool + argv`` joined by spaces starts with one of them
                    (at a word boundary, or anywhere when the prefix ends in ``=``, ``/`` or
                    ``:``) prints a realistic error, exits 1 and changes no state.

Processes ("jobs") are started through a small supervisor (this file run as a script) that
plays launchd's / systemd's part: it is the session leader of a new session, starts the
service's program as its child, records the program's pid and, when it ends, its exit status,
so status commands can report ``last exit code`` like the real managers. The supervisor ignores
SIGTERM (so a group-wide SIGTERM lets it record the exit); stopping a job signals the whole
process group: SIGTERM, then SIGKILL after 5 s.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
SUPPORT_DIR = HERE.parent
STOP_TIMEOUT = 5.0


class FakeError(Exception):
    """Ends the command: ``message`` goes to stderr (when not empty), ``code`` is the status."""

    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# ---------------------------------------------------------------------------------------------
# Invocation: state dir, call log, failure injection
# ---------------------------------------------------------------------------------------------


def state_dir(tool: str) -> Path:
    value = os.environ.get("FAKE_STATE_DIR", "")
    if not value:
        raise FakeError(70, f"{tool} (recording fake): FAKE_STATE_DIR is not set")
    path = Path(value)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    with open(path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def record_call(sd: Path, tool: str, argv: Sequence[str]) -> None:
    try:
        cwd: str | None = os.getcwd()
    except OSError:  # the caller's working directory was removed
        cwd = None
    record = {
        "tool": tool,
        "argv": list(argv),
        "env": {k: os.environ[k] for k in ("HOME", "PATH") if k in os.environ},
        "cwd": cwd,
        "time": time.time(),
    }
    line = (json.dumps(record) + "\n").encode()
    log = sd / "calls.jsonl"
    with file_lock(sd / ".calls.lock"), open(log, "ab") as fh:
        fh.write(line)


def failure_requested(tool: str, argv: Sequence[str]) -> bool:
    joined = " ".join([tool, *argv])
    for raw in os.environ.get("FAKE_FAIL", "").splitlines():
        prefix = raw.strip()
        if not prefix:
            continue
        if joined == prefix or joined.startswith(prefix + " "):
            return True
        if prefix[-1] in "=/:" and joined.startswith(prefix):
            return True
    return False


def run_main(tool: str, main: Callable[[Path, list[str]], int],
             fail_message: Callable[[list[str]], str]) -> None:
    """Common entry point: record the call, honour FAKE_FAIL, map FakeError to an exit."""
    argv = sys.argv[1:]
    try:
        sd = state_dir(tool)
        record_call(sd, tool, argv)
        if failure_requested(tool, argv):
            raise FakeError(1, fail_message(argv))
        code = main(sd, argv)
    except FakeError as exc:
        sys.stdout.flush()
        if exc.message:
            sys.stderr.write(exc.message.rstrip("\n") + "\n")
        code = exc.code
    except BrokenPipeError:
        code = 141
    sys.stdout.flush()
    sys.exit(code)


# ---------------------------------------------------------------------------------------------
# JSON state
# ---------------------------------------------------------------------------------------------


def read_json(path: Path, default: Any) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return default
    except ValueError:
        return default


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)


@contextlib.contextmanager
def tool_state(sd: Path, tool: str) -> Iterator[dict[str, Any]]:
    """The tool's state, locked for the duration and saved afterwards (also on FakeError:
    what a command changed before failing stays changed, as with the real tools)."""
    with file_lock(sd / f".{tool}.lock"):
        state: dict[str, Any] = read_json(sd / f"{tool}.json", {})
        try:
            yield state
        finally:
            write_json_atomic(sd / f"{tool}.json", state)


# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) from /proc, None when the pid does not exist."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()
    return fields[0], int(fields[19])


def proc_starttime(pid: int) -> int | None:
    stat = _proc_stat(pid)
    return stat[1] if stat else None


def pid_alive(pid: int | None, starttime: int | None = None) -> bool:
    """True when ``pid`` runs (zombies count as dead; a reused pid does not count)."""
    if not pid or pid <= 0:
        return False
    if os.path.isdir("/proc/self"):
        stat = _proc_stat(pid)
        if stat is None or stat[0] in ("Z", "X", "x"):
            return False
        return starttime is None or stat[1] == starttime
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def proc_comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


@dataclass
class JobStatus:
    """What a service manager knows about one started process."""

    job_id: str
    running: bool
    pid: int | None
    exited: bool          # the end was observed (exit code or signal known)
    exit_code: int | None  # exit status when it exited normally
    signal: int | None    # terminating signal
    error: str | None     # the program could not be started (exec, chdir, log file)
    started_at: float
    ended_at: float | None

    @property
    def wait_status(self) -> int:
        """The raw wait(2) status (what launchd's LastExitStatus shows)."""
        if self.signal:
            return self.signal
        return (self.exit_code or 0) << 8


def jobs_dir(sd: Path) -> Path:
    path = sd / "jobs"
    path.mkdir(exist_ok=True)
    return path


def read_job(sd: Path, job_id: str) -> dict[str, Any] | None:
    data = read_json(sd / "jobs" / f"{job_id}.json", None)
    return data if isinstance(data, dict) else None


def job_status(sd: Path, job_id: str) -> JobStatus:
    job = read_job(sd, job_id) or {}
    pid = job.get("pid")
    alive = pid_alive(pid, job.get("starttime")) if job.get("state") == "running" else False
    if not alive and job.get("state") == "running":
        # The program is gone; give its supervisor a moment to record the exit status.
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline and pid_alive(job.get("supervisor")):
            time.sleep(0.02)
            job = read_job(sd, job_id) or job
            if job.get("state") != "running":
                break
    state = job.get("state")
    return JobStatus(
        job_id=job_id,
        running=alive,
        pid=pid,
        exited=state == "exited",
        exit_code=job.get("exit_code"),
        signal=job.get("signal"),
        error=job.get("error"),
        started_at=float(job.get("started_at") or 0.0),
        ended_at=job.get("ended_at"),
    )


@dataclass
class LaunchSpec:
    """How to start one service process (what a plist or a unit says, resolved)."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    stdout: str | None          # path, or None = /dev/null
    stderr: str | None          # path, None = /dev/null
    stdout_mode: str = "append"  # append | write | truncate
    stderr_mode: str = "append"
    fail_code_exec: int = 127   # exit status recorded when the program cannot be executed
    fail_code_cwd: int = 127
    fail_code_stdout: int = 127
    fail_code_stderr: int = 127
    executable: str | None = None  # launchd's Program key (argv[0] may then differ)


def spawn(sd: Path, owner: str, name: str, spec: LaunchSpec, timeout: float = 10.0) -> JobStatus:
    """Start ``spec`` detached (new session) under a supervisor; returns once its pid is known."""
    job_id = f"{int(time.time() * 1000)}-{uuid.uuid4().hex[:8]}"
    path = jobs_dir(sd) / f"{job_id}.json"
    write_json_atomic(path, {
        "id": job_id, "owner": owner, "name": name, "state": "spawning",
        "spec": {
            "argv": spec.argv, "executable": spec.executable, "env": spec.env, "cwd": spec.cwd,
            "stdout": spec.stdout, "stderr": spec.stderr,
            "stdout_mode": spec.stdout_mode, "stderr_mode": spec.stderr_mode,
            "fail_code_exec": spec.fail_code_exec, "fail_code_cwd": spec.fail_code_cwd,
            "fail_code_stdout": spec.fail_code_stdout, "fail_code_stderr": spec.fail_code_stderr,
        },
        "started_at": time.time(),
    })
    read_fd, write_fd = os.pipe()
    log = open(jobs_dir(sd) / f"{job_id}.supervisor.log", "ab")  # noqa: SIM115
    try:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--supervise", str(path),
             str(write_fd)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
            pass_fds=(write_fd,), start_new_session=True, close_fds=True,
        )
    finally:
        os.close(write_fd)
        log.close()
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    os.set_blocking(read_fd, False)
    try:
        while time.monotonic() < deadline:
            try:
                chunk = os.read(read_fd, 4096)
            except BlockingIOError:
                time.sleep(0.005)
                continue
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_fd)
    if not chunks:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        raise FakeError(1, f"{owner} (recording fake): the supervisor of {name} did not report")
    return job_status(sd, job_id)


def _signal_job(job: Mapping[str, Any], sig: int) -> None:
    """Signal the program and its process group (= the supervisor's session, whose id is the
    supervisor's pid: a group id is not reused while any member lives, so this is safe even
    after the supervisor died). Never our own group."""
    own_group = os.getpgid(0)
    pid, sup = job.get("pid"), job.get("supervisor")
    if pid and pid_alive(pid, job.get("starttime")):
        with contextlib.suppress(OSError):
            os.kill(pid, sig)
        with contextlib.suppress(OSError):
            group = os.getpgid(pid)
            if group != own_group:
                os.killpg(group, sig)
    if sup and sup != own_group:
        with contextlib.suppress(OSError):
            os.killpg(sup, sig)


def terminate(sd: Path, job_id: str, timeout: float = STOP_TIMEOUT) -> JobStatus:
    """SIGTERM the job's process group, SIGKILL after ``timeout``, wait for the end."""
    job = read_job(sd, job_id)
    if job is None:
        return job_status(sd, job_id)

    def program_alive() -> bool:
        assert job is not None
        return pid_alive(job.get("pid"), job.get("starttime"))

    if program_alive():
        _signal_job(job, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while program_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if program_alive():
            _signal_job(job, signal.SIGKILL)
            deadline = time.monotonic() + 2.0
            while program_alive() and time.monotonic() < deadline:
                time.sleep(0.02)
    # let the supervisor write the exit status down
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        current = read_job(sd, job_id) or {}
        if current.get("state") != "running" or not pid_alive(
                current.get("supervisor"), current.get("supervisor_starttime")):
            break
        time.sleep(0.02)
    return job_status(sd, job_id)


def send_signal(sd: Path, job_id: str, sig: int) -> bool:
    job = read_job(sd, job_id)
    if not job or not pid_alive(job.get("pid"), job.get("starttime")):
        return False
    with contextlib.suppress(OSError):
        os.kill(int(job["pid"]), sig)
    return True


def wait_job(sd: Path, job_id: str, timeout: float) -> JobStatus:
    deadline = time.monotonic() + timeout
    status = job_status(sd, job_id)
    while status.running and time.monotonic() < deadline:
        time.sleep(0.02)
        status = job_status(sd, job_id)
    return status


# ---------------------------------------------------------------------------------------------
# The supervisor (this file run as a script)
# ---------------------------------------------------------------------------------------------


def _open_target(path: str | None, mode: str) -> int:
    if path is None:
        return os.open(os.devnull, os.O_WRONLY)
    flags = os.O_WRONLY | os.O_CREAT
    if mode == "append":
        flags |= os.O_APPEND
    elif mode == "truncate":
        flags |= os.O_TRUNC
    return os.open(path, flags, 0o644)


def _supervise(job_path: Path, report_fd: int) -> int:
    job: dict[str, Any] = read_json(job_path, {})
    spec: dict[str, Any] = job.get("spec", {})

    def ignore(signum: int, frame: object) -> None:
        """A handler (not SIG_IGN, which the child would inherit)."""

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, ignore)
    job["supervisor"] = os.getpid()
    job["supervisor_starttime"] = proc_starttime(os.getpid())

    def report(data: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            os.write(report_fd, (json.dumps(data) + "\n").encode())
        with contextlib.suppress(OSError):
            os.close(report_fd)

    def fail(code: int, why: str, log_path: str | None) -> int:
        job.update(state="exited", pid=None, exit_code=code, signal=None, error=why,
                   ended_at=time.time())
        write_json_atomic(job_path, job)
        if log_path:
            with contextlib.suppress(OSError), open(log_path, "a", encoding="utf-8") as fh:
                fh.write(why + "\n")
        report({"pid": None, "error": why, "exit_code": code})
        return 0

    out_fd = err_fd = -1
    stdout, stderr = spec.get("stdout"), spec.get("stderr")
    try:
        out_fd = _open_target(stdout, spec.get("stdout_mode", "append"))
    except OSError as exc:
        return fail(spec.get("fail_code_stdout", 127), f"cannot open {stdout}: {exc.strerror}",
                    None)
    try:
        if stderr is not None and stderr == stdout:
            err_fd = os.dup(out_fd)
        else:
            err_fd = _open_target(stderr, spec.get("stderr_mode", "append"))
    except OSError as exc:
        return fail(spec.get("fail_code_stderr", 127), f"cannot open {stderr}: {exc.strerror}",
                    None)
    log_for_errors = stderr or stdout
    cwd = spec.get("cwd") or "/"
    if not os.path.isdir(cwd):
        return fail(spec.get("fail_code_cwd", 127),
                    f"Changing to the requested working directory failed: {cwd}: "
                    "No such file or directory", log_for_errors)
    argv = [str(a) for a in spec.get("argv", [])]
    if not argv:
        return fail(spec.get("fail_code_exec", 127), "no program to run", log_for_errors)
    try:
        child = subprocess.Popen(argv, executable=spec.get("executable"), env=spec.get("env"),
                                 cwd=cwd, stdin=subprocess.DEVNULL,
                                 stdout=out_fd, stderr=err_fd, close_fds=True)
    except OSError as exc:
        return fail(spec.get("fail_code_exec", 127),
                    f"Failed to execute {argv[0]}: {exc.strerror}", log_for_errors)
    finally:
        os.close(out_fd)
        os.close(err_fd)
    job.update(state="running", pid=child.pid, starttime=proc_starttime(child.pid))
    write_json_atomic(job_path, job)
    report({"pid": child.pid})
    returncode = child.wait()
    job.update(state="exited", ended_at=time.time(),
               exit_code=returncode if returncode >= 0 else None,
               signal=-returncode if returncode < 0 else None)
    write_json_atomic(job_path, job)
    return 0


# ---------------------------------------------------------------------------------------------
# Small helpers shared by the CLIs
# ---------------------------------------------------------------------------------------------


def out(text: str = "", stream: IO[str] | None = None) -> None:
    (stream or sys.stdout).write(text + "\n")


def err(text: str) -> None:
    sys.stdout.flush()
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def current_user() -> str:
    user = os.environ.get("USER")
    if user:
        return user
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return str(os.getuid())


def home() -> Path:
    value = os.environ.get("HOME")
    if not value:
        raise FakeError(1, "HOME is not set")
    return Path(value)


def signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return str(sig)


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "--supervise":
    sys.exit(_supervise(Path(sys.argv[2]), int(sys.argv[3])))
