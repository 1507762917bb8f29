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


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
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

    A missing program, a timeout, or (with check) a non-zero exit becomes an AiError whose
    message names the command line.
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
    except subprocess.TimeoutExpired as exc:
        raise AiError(f"`{line}` did not finish within {timeout:g} s", hint,
                      code="program.timeout") from exc
    done = Completed(tuple(args), proc.returncode, proc.stdout or "", proc.stderr or "")
    if check and not done.ok:
        why = _last_line(done.stderr) or _last_line(done.stdout) or "no output"
        raise AiError(f"`{line}` failed with exit code {done.returncode}: {why}", hint,
                      code="program.failed")
    return done
