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
        details: list[dict[str, str | None]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code
        self.exit_code = exit_code
        self.details = details  # several problems at once: one --json error each

    def one_line(self) -> str:
        text = " ".join(self.message.split())
        if self.hint:
            text += f" (hint: {' '.join(self.hint.split())})"
        return text

    def as_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "message": self.message, "hint": self.hint}


def toml_kind(value: object) -> str:
    """What a TOML value is, in the words of the TOML spec (for settings type errors)."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "a number"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        other = [v for v in value if not isinstance(v, str)]
        return f"a list with {toml_kind(other[0])} in it" if other else "a list"
    if isinstance(value, dict):
        return "a table"
    return "a date/time"


def type_mismatch(key: str, value: object, default: object) -> str:
    """`gateway.port must be a whole number, not a string: write port = 11434`."""
    import json

    name = key.split(".")[-1]
    if isinstance(default, bool):
        want, example = "true or false", ("true" if default else "false")
    elif isinstance(default, int):
        want, example = "a whole number", str(default)
    elif isinstance(default, tuple):
        want, example = "a list of strings", json.dumps(list(default) or ["..."])
    else:
        want, example = "a string", json.dumps(default or "...")
    if isinstance(default, tuple) and isinstance(value, str):
        return f"{key} must be {want}, not a string: write {name} = {json.dumps([value])}"
    if (isinstance(default, int) and not isinstance(default, bool) and isinstance(value, str)
            and value.strip().isdigit()):
        return f"{key} must be {want}, not a string: write {name} = {value.strip()}"
    shown = str(value).lower() if isinstance(value, bool) else json.dumps(value, default=str)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return f"{key} must be {want}, not {toml_kind(value)} ({shown}): e.g. {name} = {example}"
