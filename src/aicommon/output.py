"""Human text or one versioned JSON envelope: data on stdout, chatter on stderr."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from aicommon.errors import AiError

SCHEMA_VERSION = 1


def envelope(
    command: str, ok: bool, data: Any, errors: list[dict[str, str | None]] | None = None
) -> dict[str, Any]:
    """The one JSON shape every reporting command prints with --json."""
    return {"schema": SCHEMA_VERSION, "command": command, "ok": ok, "data": data,
            "errors": errors or []}


def _wants_color(stream: TextIO) -> bool:
    """Colour only on a terminal, never with NO_COLOR set (https://no-color.org)."""
    return "NO_COLOR" not in os.environ and hasattr(stream, "isatty") and stream.isatty()


@dataclass
class Output:
    """Where a command's words go. Core code never prints; commands use this."""

    json_mode: bool = False
    verbosity: int = 0  # -1 quiet, 0 normal, 1+ verbose
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    color: bool | None = None  # stderr's messages
    color_stdout: bool | None = None  # PASS / WARN / FAIL in reports

    def __post_init__(self) -> None:
        if self.color is None:
            self.color = _wants_color(self.stderr)
        if self.color_stdout is None:
            self.color_stdout = not self.json_mode and _wants_color(self.stdout)

    # -- messages (stderr) -------------------------------------------------
    def _style(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.color else text

    def info(self, text: str) -> None:
        if self.verbosity >= 0:
            print(text, file=self.stderr)

    def detail(self, text: str) -> None:
        if self.verbosity >= 1:
            print(text, file=self.stderr)

    def warn(self, text: str) -> None:
        if self.verbosity < 0:  # -q: only errors
            return
        print(self._style("warning: ", "33") + text, file=self.stderr)

    def error(self, prog: str, err: AiError) -> None:
        print(f"{prog}: " + self._style("error: ", "31") + err.one_line(), file=self.stderr)

    # -- results (stdout) --------------------------------------------------
    def result(
        self,
        command: str,
        data: Any,
        human: Callable[[Any], str] | None = None,
        *,
        ok: bool = True,
        errors: list[dict[str, str | None]] | None = None,
    ) -> None:
        """Print a command's result: the envelope with --json, else the human text."""
        if self.json_mode:
            import json  # not at import time: `--help` and `--version` never need it

            json.dump(envelope(command, ok, data, errors), self.stdout, indent=2, sort_keys=False)
            self.stdout.write("\n")
        elif human is not None:
            text = human(data)
            if text:
                print(text, file=self.stdout)
        self.stdout.flush()

    def failure(self, prog: str, command: str, err: AiError) -> None:
        """Report a domain error: one line on stderr, plus the envelope on stdout with --json."""
        self.error(prog, err)
        if self.json_mode:
            self.result(command, None, ok=False, errors=err.details or [err.as_dict()])


def table(rows: list[list[str]], headers: list[str]) -> str:
    """A plain left-aligned text table."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
              for row in rows]
    return "\n".join(lines)
