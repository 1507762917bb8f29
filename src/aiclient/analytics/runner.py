"""`ai-client analytics run`: Claude Code in a loop, measured, always finalised.

Each iteration runs `claude -p --output-format stream-json --verbose … -- PROMPT` as an argv
list (no shell: the goal arrives byte for byte), in the backend's environment, with stdout
going straight into the run directory's iteration-N.ndjson (so the raw log survives whatever
happens to us) while we tail that file through the streaming parser. Whatever ends an
iteration — success, an error, a killed `claude`, our timeout, Ctrl-C, SIGTERM or SIGHUP — the
iteration is recorded and the run is finalised (DB row and summary.json), with interrupts held
back while that happens.

`claude` runs in its own session so Ctrl-C reaches only us; we then stop its whole process
group (SIGTERM, then SIGKILL). That needs Popen with start_new_session, which is why this
module starts `claude` itself instead of going through aicommon.runner.run (which captures
output in memory and waits); `claude --version` and `git push` do go through it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from aiclient.analytics.parser import LineSplitter, StreamParser
from aiclient.analytics.records import (
    COMPLETE,
    ERROR,
    FAILED,
    INTERRUPTED,
    KILLED,
    NO_RESULT,
    OK,
    RUNNING,
    STOPPED,
    TIMEOUT,
    IterationRecord,
    RunInfo,
    now_iso,
)
from aiclient.analytics.store import Store
from aiclient.analytics.summary import summarize
from aicommon.errors import AiError, ExitCode
from aicommon.runner import command_line

CLOUD_BASE_URL = "https://api.anthropic.com"
PLACEHOLDER = re.compile(r"\{\{(goal|iteration)\}\}")
POLL_S = 0.1
TERM_GRACE_S = 3.0
# options the loop owns: the user passes them to `analytics run`, not through to claude
RESERVED_CLAUDE_ARGS = ("-p", "--print", "--output-format", "--verbose", "--model")


@dataclass(frozen=True)
class Backend:
    name: str  # cloud | ollama
    env: dict[str, str]  # the whole environment claude runs in
    base_url: str
    model: str | None  # None: claude's own default (cloud without --model)
    model_args: tuple[str, ...] = ()


def resolve_backend(name: str, model: str | None, config: Path | None,
                    base_env: Mapping[str, str]) -> Backend:
    """cloud: the user's environment untouched (plus `--model M` on claude's command line when
    asked). ollama: the user's environment plus exactly what `claude-ollama` exports."""
    env = dict(base_env)
    if name == "cloud":
        return Backend("cloud", env, env.get("ANTHROPIC_BASE_URL") or CLOUD_BASE_URL, model,
                       ("--model", model) if model else ())
    if name != "ollama":
        raise AiError(f"unknown backend {name!r}", "use cloud or ollama", code="usage",
                      exit_code=ExitCode.USAGE)
    from aiclient.settings import load
    from aiclient.tools.claude import wrapper_env

    settings = load(config)
    if not settings.server.host:
        raise AiError("no server in the client settings", "run `ai-client setup --server HOST`",
                      code="config.missing", exit_code=ExitCode.CONFIG)
    chosen = model or settings.model
    if not chosen:
        raise AiError("no model for the ollama backend",
                      "pass --model, or set one with `ai-client setup --model M`",
                      code="config.missing", exit_code=ExitCode.CONFIG)
    env.update(wrapper_env(settings.base_url, settings.server.token, chosen,
                           settings.server.context_length))
    return Backend("ollama", env, settings.base_url, chosen)


def resolve_prompt(prompt: str | None, prompt_file: Path | None, goal: str | None) -> str:
    """The prompt template: --prompt, --prompt-file, or (only --goal) the goal itself."""
    if prompt is not None and prompt_file is not None:
        raise AiError("--prompt and --prompt-file are exclusive", "give one of them",
                      code="usage", exit_code=ExitCode.USAGE)
    if prompt_file is not None:
        try:
            template = prompt_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise AiError(f"cannot read the prompt file {prompt_file}: {exc}",
                          "give a readable UTF-8 text file", code="usage",
                          exit_code=ExitCode.USAGE) from None
    elif prompt is not None:
        template = prompt
    elif goal is not None:
        template = "{{goal}}"
    else:
        raise AiError("no prompt", "pass --prompt TEXT, --prompt-file F or --goal TEXT",
                      code="usage", exit_code=ExitCode.USAGE)
    has_slot = "{{goal}}" in template
    if goal is not None and not has_slot:
        raise AiError("--goal given but the prompt has no {{goal}} placeholder",
                      "put {{goal}} where the goal belongs in the prompt", code="usage",
                      exit_code=ExitCode.USAGE)
    if goal is None and has_slot:
        raise AiError("the prompt has a {{goal}} placeholder but no --goal was given",
                      "pass --goal TEXT", code="usage", exit_code=ExitCode.USAGE)
    if not template.strip():
        raise AiError("the prompt is empty", "give a prompt", code="usage",
                      exit_code=ExitCode.USAGE)
    return template


def render_prompt(template: str, goal: str | None, iteration: int) -> str:
    """Substitute {{goal}} and {{iteration}} in one pass, literally: no shell, glob, format or
    regex-replacement syntax in the goal is ever interpreted."""
    values = {"goal": goal or "", "iteration": str(iteration)}
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def prompt_digest(template: str, goal: str | None) -> str:
    """Identifies the task: two runs are only comparable when these match."""
    return hashlib.sha256(f"{template}\0{goal or ''}".encode()).hexdigest()


def check_claude_args(args: Sequence[str]) -> None:
    for arg in args:
        name = arg.split("=", 1)[0]
        if name in RESERVED_CLAUDE_ARGS:
            raise AiError(f"`{arg}` is set by the analytics loop itself",
                          "use `analytics run --model M`; -p/--output-format/--verbose are "
                          "always passed", code="usage", exit_code=ExitCode.USAGE)


@dataclass(frozen=True)
class RunSpec:
    backend: Backend
    template: str
    goal: str | None = None
    iterations: int = 1
    stop_file: Path | None = None
    push: bool = False
    claude_args: tuple[str, ...] = ()
    label: str = ""
    iteration_timeout: float | None = None
    keep_going: bool = False
    cwd: Path | None = None


class Progress:
    """What the loop reports while it runs; the CLI overrides these (core never prints)."""

    def started(self, info: RunInfo) -> None:
        pass

    def iteration_started(self, n: int, total: int) -> None:
        pass

    def tool(self, n: int, name: str, sub: bool) -> None:
        pass

    def iteration_finished(self, rec: IterationRecord, total: int, backend: str) -> None:
        pass

    def note(self, text: str) -> None:
        pass


@dataclass
class RunResult:
    info: RunInfo
    records: list[IterationRecord]
    summary: dict[str, Any]
    interrupted: bool = False
    problems: list[str] = field(default_factory=list)


# -- interrupts ------------------------------------------------------------------------------

def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


# Signals that end a run (finalised). One that is ignored when we start (`nohup`, a background
# job) stays ignored.
INTERRUPT_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _live_signals() -> list[signal.Signals]:
    return [s for s in INTERRUPT_SIGNALS if signal.getsignal(s) is not signal.SIG_IGN]


@contextlib.contextmanager
def _handled(handler: Any) -> Iterator[None]:
    if not _in_main_thread():  # signal handlers can only be set there
        yield
        return
    previous = {s: signal.signal(s, handler) for s in _live_signals()}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP end the run like Ctrl-C does, instead of killing us outright (which
    would leave claude, in its own session, running with nobody recording it)."""
    with _handled(_raise_interrupt):
        yield


@contextlib.contextmanager
def _deferred_interrupts() -> Iterator[list[int]]:
    """Hold interrupts while finalising; the caller sees the held signals in the list."""
    pending: list[int] = []

    def hold(signum: int, _frame: FrameType | None) -> None:
        pending.append(signum)

    with _handled(hold):
        yield pending


# -- one iteration ---------------------------------------------------------------------------

def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to claude's whole process group, then SIGKILL to whatever is left of it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(TERM_GRACE_S)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # claude if it lingers, and its tools' processes
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10.0)  # not even SIGKILL worked (uninterruptible sleep): do not hang


def _drain(tail: Any, splitter: LineSplitter, parser: StreamParser) -> None:
    while True:
        chunk = tail.read(1 << 20)
        if not chunk:
            return
        for line in splitter.feed(chunk):
            parser.feed_line(line)


def _last_line(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - 4096))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def run_iteration(n: int, argv: list[str], env: Mapping[str, str], run_dir: Path,
                  cwd: Path | None, timeout: float | None, progress: Progress
                  ) -> tuple[IterationRecord, bool]:
    """Run claude once; the record, and whether an interrupt (Ctrl-C, SIGTERM) arrived."""
    raw_name = f"iteration-{n}.ndjson"
    raw_path = run_dir / raw_name
    err_path = run_dir / f"iteration-{n}.stderr"
    parser = StreamParser(on_tool=lambda name, sub: progress.tool(n, name, sub))
    splitter = LineSplitter()
    started = now_iso()
    t0 = time.monotonic()
    status: str | None = None
    error: str | None = None
    exit_code: int | None = None
    proc: subprocess.Popen[bytes] | None = None
    with open(raw_path, "wb") as out, open(err_path, "wb") as err, open(raw_path, "rb") as tail:
        try:
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                        env=dict(env), cwd=cwd, start_new_session=True)
            except OSError as exc:
                status, error = ERROR, f"cannot start `{command_line(argv[:1])}`: {exc}"
            deadline = t0 + timeout if timeout else None
            while proc is not None:
                try:
                    exit_code = proc.wait(POLL_S)
                    break
                except subprocess.TimeoutExpired:
                    pass
                _drain(tail, splitter, parser)
                if deadline is not None and time.monotonic() > deadline:
                    status = TIMEOUT
                    error = f"no end after {timeout:g} s: claude was stopped"
                    break
        except KeyboardInterrupt:
            status, error = INTERRUPTED, "interrupted: claude was stopped"
        finally:
            with _deferred_interrupts() as held:
                if proc is not None and proc.poll() is None:
                    _stop_group(proc)
                elif proc is not None and proc.returncode < 0:
                    # claude itself was killed: its tools' processes would run on unseen
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, signal.SIGKILL)
                if proc is not None:
                    exit_code = proc.returncode
        wall = time.monotonic() - t0
        with _deferred_interrupts() as held_too:  # the rest, including an unterminated line
            _drain(tail, splitter, parser)
            rest = splitter.close()
            if rest is not None:
                parser.feed_line(rest, last=True)
            parser.stats.oversized_lines += splitter.oversized
    interrupted = status == INTERRUPTED or bool(held or held_too)
    stats = parser.finish()
    if status is None:
        if exit_code is not None and exit_code < 0:
            status = KILLED
            error = f"claude was killed by {_signal_name(-exit_code)}"
        elif exit_code:
            status = ERROR
            why = _last_line(err_path) or (stats.result_errors[0] if stats.result_errors
                                           else "no output on stderr")
            error = f"claude exited with {exit_code}: {why}"
        elif stats.result_is_error:
            status = ERROR
            error = f"result {stats.result_subtype or 'error'}" + (
                f": {stats.result_errors[0]}" if stats.result_errors else "")
        elif not stats.has_result:
            status, error = NO_RESULT, "the stream ended without a result event"
        else:
            status = OK
    rec = IterationRecord(n=n, started_at=started, status=status, raw_file=raw_name,
                          stats=stats, finished_at=now_iso(), exit_code=exit_code,
                          wall_s=round(wall, 3), error=error)
    return rec, interrupted


# -- the loop --------------------------------------------------------------------------------

def claude_version(claude: str, env: Mapping[str, str]) -> str | None:
    from aicommon.runner import run

    try:
        done = run([claude, "--version"], timeout=30, check=False, env=env)
    except AiError:
        return None
    found = re.search(r"\d+\.\d+\.\d+\S*", done.stdout)
    return found.group(0) if done.ok and found else None


def _push(cwd: Path | None, env: Mapping[str, str]) -> str:
    from aicommon.runner import run

    try:
        done = run(["git", "push"], timeout=600, check=False, env=env,
                   cwd=str(cwd) if cwd else None)
    except AiError as err:
        return f"failed: {err.message}"
    if done.ok:
        return "ok"
    last = (done.stderr or done.stdout).strip().splitlines()
    return f"failed (exit {done.returncode}): {last[-1] if last else 'no output'}"


def _finalise(store: Store, info: RunInfo, records: list[IterationRecord],
              run_dir: Path) -> dict[str, Any]:
    from aicommon.fsutil import atomic_write

    summary = summarize(info, records)
    store.save_run(info, summary)
    atomic_write(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def run(spec: RunSpec, progress: Progress | None = None, store_root: Path | None = None
        ) -> RunResult:
    """The whole `analytics run`: returns once the run is finalised, however it ended."""
    progress = progress or Progress()
    backend = spec.backend
    check_claude_args(spec.claude_args)
    if spec.iterations < 1:
        raise AiError("--iterations must be at least 1", code="usage", exit_code=ExitCode.USAGE)
    claude = shutil.which("claude", path=backend.env.get("PATH", os.defpath))
    if claude is None:
        raise AiError("`claude` (Claude Code) is not on PATH",
                      "install Claude Code (https://claude.ai/install.sh) and retry",
                      code="program.missing", exit_code=ExitCode.UNAVAILABLE)
    if spec.stop_file is not None and spec.stop_file.exists():
        raise AiError(f"the stop file {spec.stop_file} already exists",
                      "remove it (a stale stop file would end the run at once)",
                      code="analytics.stop_file", exit_code=ExitCode.USAGE)
    first_prompt = render_prompt(spec.template, spec.goal, 1)
    with Store.open(store_root) as store:
        stem = time.strftime("%Y%m%d-%H%M%S") + f"-{backend.name}"
        run_id, run_dir = store.new_run_dir(stem)
        base_argv = [claude, "-p", "--output-format", "stream-json", "--verbose",
                     *backend.model_args, *spec.claude_args, "--"]
        info = RunInfo(
            id=run_id, created_at=now_iso(), backend=backend.name, directory=str(run_dir),
            source="run", status=RUNNING, base_url=backend.base_url, model=backend.model,
            claude_version=claude_version(claude, backend.env),
            iterations_planned=spec.iterations,
            prompt_sha256=prompt_digest(spec.template, spec.goal),
            goal=spec.goal, label=spec.label, argv=[*base_argv, "<prompt>"])
        from aicommon.fsutil import atomic_write

        atomic_write(run_dir / "prompt.txt", first_prompt)
        records: list[IterationRecord] = []
        result = RunResult(info, records, {})
        final = COMPLETE
        with _signals_interrupt():
            try:
                with _deferred_interrupts() as held:
                    result.summary = _finalise(store, info, records, run_dir)
                if held:
                    raise KeyboardInterrupt
                progress.started(info)
                for n in range(1, spec.iterations + 1):
                    progress.iteration_started(n, spec.iterations)
                    argv = [*base_argv, render_prompt(spec.template, spec.goal, n)]
                    rec, interrupted = run_iteration(n, argv, backend.env, run_dir, spec.cwd,
                                                     spec.iteration_timeout, progress)
                    records.append(rec)
                    with _deferred_interrupts() as held:
                        store.save_iteration(run_id, rec)
                        result.summary = _finalise(store, info, records, run_dir)
                    progress.iteration_finished(rec, spec.iterations, backend.name)
                    if interrupted or held:
                        raise KeyboardInterrupt
                    if spec.push:
                        rec.push = _push(spec.cwd, backend.env)
                        store.save_iteration(run_id, rec)
                        if rec.push != "ok":
                            progress.note(f"git push after iteration {n} {rec.push}")
                    if spec.stop_file is not None and spec.stop_file.exists():
                        with contextlib.suppress(OSError):
                            spec.stop_file.unlink()
                        progress.note(f"stop file {spec.stop_file} appeared (removed it)")
                        if n < spec.iterations:
                            final = STOPPED
                            break
                    if not rec.ok and not spec.keep_going and n < spec.iterations:
                        final = FAILED
                        progress.note("stopping after a failed iteration "
                                      "(--keep-going runs the rest)")
                        break
            except KeyboardInterrupt:
                final = INTERRUPTED
                result.interrupted = True
            except BaseException:  # e.g. the disk filled up: record what we have, then report
                final = FAILED
                raise
            finally:
                with _deferred_interrupts():
                    info.status = final
                    info.finished_at = now_iso()
                    result.summary = _finalise(store, info, records, run_dir)
    result.problems = [f"iteration {r.n}: {r.status}" + (f" ({r.error})" if r.error else "")
                       for r in records if not r.ok]
    return result
