"""One domain error type and the named exit codes both tools use."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes; documented in the README (keep the two in step)."""

    OK = 0
    FAILURE = 1  # the command could not do what was asked
    USAGE = 2  # click's usage errors (bad option, unknown command)
    FINDINGS = 3  # a check/audit/test ran and found problems
    CONFIG = 4  # settings file missing a value, unreadable or refused by validation
    UNAVAILABLE = 5  # a needed program, service or server is missing or unreachable
    INTERRUPTED = 130  # Ctrl-C


class AiError(Exception):
    """An error a user can cause or fix: shown as one line with a hint, never a traceback."""

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        code: str = "error",
        exit_code: ExitCode = ExitCode.FAILURE,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code
        self.exit_code = exit_code

    def one_line(self) -> str:
        text = " ".join(self.message.split())
        if self.hint:
            text += f" (hint: {' '.join(self.hint.split())})"
        return text

    def as_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "message": self.message, "hint": self.hint}
