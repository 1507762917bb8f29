"""Where programs are: PATH first, then the Homebrew prefix."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

BREW_CANDIDATES = ("/opt/homebrew/bin/brew", "/usr/local/bin/brew",
                   "/home/linuxbrew/.linuxbrew/bin/brew")


def find_brew() -> str | None:
    found = shutil.which("brew")
    if found:
        return found
    if os.environ.get("AI_SERVER_NO_BREW_PREFIXES"):  # tests: only what is on PATH counts
        return None
    return next((c for c in BREW_CANDIDATES if os.access(c, os.X_OK)), None)


def find_program(name: str, brew: str | None = None) -> str | None:
    """A program on PATH, else in the Homebrew prefix."""
    found = shutil.which(name)
    if found:
        return found
    if brew:
        prefix = Path(brew).resolve().parent.parent
        candidate = prefix / "bin" / name
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return None
