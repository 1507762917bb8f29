"""The one way we run other programs: argv lists, a timeout, captured output."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aicommon.errors import AiError, ExitCode


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def command_line(self) -> str:
        return shlex.join(self.argv)


def command_line(argv: Sequence[str]) -> str:
    return shlex.join(list(argv))


_NPM_DETAIL_SKIP = ("syscall ", "path ", "errno ", "code ", "A complete log")
_ERROR_STARTS = ("error:", "Error:", "ERROR:", "fatal:", "×")


def _npm_cause(lines: list[str]) -> str:
    """npm's `npm error code X` line, the first line after it that says why, and the log."""
    code = next((i for i, line in enumerate(lines) if line.startswith("npm error code ")), None)
    if code is None:
        return ""
    why = ""
    for line in lines[code + 1:]:
        rest = line.removeprefix("npm error").strip()
        if rest and not rest.startswith(_NPM_DETAIL_SKIP):
            first, _, tail = rest.partition(" ")
            # `npm error notarget No matching …`: the repeated lowercase code is not the news
            why = tail if first.islower() and first.isalpha() and tail else rest
            break
    log = next((line.rsplit(": ", 1)[-1] for line in lines if "A complete log" in line), "")
    return (lines[code] + (f": {why}" if why else "") + (f" (log: {log})" if log else ""))


def failure_cause(text: str) -> str:
    """The line of a tool's output that says why it failed (npm's error code and reason, the
    first `error:` line, uv's `×` explanation), else the last line (REFERENCE §2.6)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    npm = _npm_cause(lines)
    if npm:
        return npm
    for i, line in enumerate(lines):
        if line.startswith(_ERROR_STARTS):
            if line.startswith("×") and i + 1 < len(lines) and lines[i + 1].startswith("╰"):
                return f"{line} {lines[i + 1]}"
            return line
    return lines[-1] if lines else ""


def run(
    argv: Sequence[str],
    *,
    timeout: float = 60.0,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    input_text: str | None = None,
    hint: str | None = None,
) -> Completed:
    """Run argv (never through a shell) and capture its output as text.

    A missing program, any other OSError from starting it (e.g. ENOEXEC), a timeout, or (with
    check) a non-zero exit becomes an AiError whose message names the command line; for a
    non-zero exit, with the line of output that says why.
    """
    args = [str(a) for a in argv]
    line = command_line(args)
    try:
        proc = subprocess.run(
            args,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            input=input_text,
            stdin=None if input_text is not None else subprocess.DEVNULL,
            check=False,
        )
    except FileNotFoundError as exc:
        raise AiError(
            f"`{args[0]}` is not installed or not on PATH (running `{line}`)",
            hint or f"install {args[0]} or put it on PATH",
            code="program.missing",
            exit_code=ExitCode.UNAVAILABLE,
        ) from exc
    except PermissionError as exc:
        raise AiError(f"`{args[0]}` is not executable (running `{line}`)", hint,
                      code="program.not_executable", exit_code=ExitCode.UNAVAILABLE) from exc
    except OSError as exc:  # ENOEXEC (npm's placeholder binary), a missing cwd, ...
        raise AiError(f"cannot run `{args[0]}`: {exc.strerror or exc} (running `{line}`)",
                      hint or "reinstall it", code="program.cannot_run",
                      exit_code=ExitCode.UNAVAILABLE) from exc
    except subprocess.TimeoutExpired as exc:
        raise AiError(f"`{line}` did not finish within {timeout:g} s", hint,
                      code="program.timeout") from exc
    done = Completed(tuple(args), proc.returncode, proc.stdout or "", proc.stderr or "")
    if check and not done.ok:
        why = failure_cause(done.stderr) or failure_cause(done.stdout) or "no output"
        raise AiError(f"`{line}` failed with exit code {done.returncode}: {why}", hint,
                      code="program.failed")
    return done
