"""Lingering (Linux): systemd --user services run only while their user has a session,
unless logind lets the user "linger" — then the user's manager starts at boot and survives
logout. `ai-server install` enables it (it is what makes a headless box serve after a reboot)
and `uninstall` disables it again only when install was the one that enabled it.

We keep user units (not system units) even when run as root: one code path, the same unit
files `brew services` writes on Linux, and uninstall removes exactly what install wrote.
"""

from __future__ import annotations

import os
import pwd

from aicommon.errors import AiError
from aicommon.runner import run

HINT = "run `sudo loginctl enable-linger {user}` once, then `ai-server install` again"


def user_name() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


def enabled(user: str) -> bool | None:
    """True/False from `loginctl show-user USER --property=Linger`; None when logind cannot
    tell (no loginctl, no logind)."""
    try:
        done = run(["loginctl", "show-user", user, "--property=Linger"], timeout=30,
                   check=False)
    except AiError:
        return None
    if done.ok:
        for line in done.stdout.splitlines():
            if line.startswith("Linger="):
                return line.split("=", 1)[1].strip() == "yes"
        return None
    if "not logged in or lingering" in done.stderr:  # no session and no lingering
        return False
    return None


def enable(user: str) -> None:
    try:
        run(["loginctl", "enable-linger", user], timeout=60)
    except AiError as exc:  # the way out goes into the message: callers wrap the hint
        raise AiError(f"{exc.message} ({HINT.format(user=user)})", HINT.format(user=user),
                      code="linger.refused", exit_code=exc.exit_code) from None


def disable(user: str) -> None:
    run(["loginctl", "disable-linger", user], timeout=60)


def describe(user: str) -> str:
    return f"loginctl enable-linger {user}"

