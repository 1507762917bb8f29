"""Listening TCP sockets: `ss -ltnpH` on Linux, `lsof -nP -iTCP -sTCP:LISTEN` on macOS."""

from __future__ import annotations

import re
from dataclasses import dataclass

from aicommon.runner import run
from aiserver import system


@dataclass(frozen=True)
class Listener:
    address: str  # "127.0.0.1", "::1", "*", "0.0.0.0", "::" …
    port: int
    process: str  # command name, "" if unknown
    pid: int | None

    @property
    def wildcard(self) -> bool:
        return self.address in ("*", "0.0.0.0", "::", "[::]")


def _split_addr(text: str) -> tuple[str, int] | None:
    m = re.fullmatch(r"\[?(.+?)\]?:(\d+)", text)
    if not m:
        return None
    addr = m.group(1).split("%")[0]  # drop an interface scope (fe80::1%lo0)
    return addr.removeprefix("::ffff:"), int(m.group(2))


def parse_ss(text: str) -> list[Listener]:
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4 or (parts[0] not in ("LISTEN", "UNCONN") and not parts[0].isdigit()):
            continue
        local = parts[3] if parts[0] == "LISTEN" else parts[2]
        split = _split_addr(local)
        if split is None:
            continue
        proc = re.search(r'users:\(\("([^"]+)",pid=(\d+)', line)
        out.append(Listener(split[0], split[1], proc.group(1) if proc else "",
                            int(proc.group(2)) if proc else None))
    return out


def parse_lsof(text: str) -> list[Listener]:
    out = []
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 9 or "(LISTEN)" not in line:
            continue
        name = parts[-2] if parts[-1] == "(LISTEN)" else parts[-1]
        split = _split_addr(name)
        if split is None:
            continue
        out.append(Listener(split[0], split[1], parts[0],
                            int(parts[1]) if parts[1].isdigit() else None))
    return out


def listening() -> tuple[str, list[Listener]]:
    """(tool used, listeners)."""
    if system.platform_name() == "darwin":
        done = run(["lsof", "-nP", "-iTCP", "-sTCP:LISTEN"], timeout=20, check=False)
        return "lsof", parse_lsof(done.stdout)
    done = run(["ss", "-ltnpH"], timeout=20, check=False)
    return "ss", parse_ss(done.stdout)
