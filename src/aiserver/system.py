"""Facts about this machine: platform, memory, where programs are."""

from __future__ import annotations

import os
import platform
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from aicommon.programs import find_brew, find_program
from aicommon.runner import run

__all__ = ["find_brew", "find_program"]  # re-exported: callers use system.find_*

def platform_name() -> str:
    """"darwin" or "linux" ($AI_SERVER_PLATFORM overrides, for tests of the macOS paths)."""
    override = os.environ.get("AI_SERVER_PLATFORM", "").strip()
    if override:
        return override
    return "darwin" if sys.platform == "darwin" else "linux"


@dataclass(frozen=True)
class OsInfo:
    platform: str
    release: str
    machine: str


def os_info() -> OsInfo:
    name = platform_name()
    if name == "darwin":
        done = run(["sw_vers", "-productVersion"], check=False, timeout=10) \
            if shutil.which("sw_vers") else None
        release = done.stdout.strip() if done is not None and done.ok else platform.release()
    else:
        release = platform.release()
    return OsInfo(name, release, platform.machine())


def memory_bytes() -> int | None:
    """Physical memory: sysctl hw.memsize on macOS, /proc/meminfo on Linux."""
    if platform_name() == "darwin":
        if not shutil.which("sysctl"):
            return None
        done = run(["sysctl", "-n", "hw.memsize"], check=False, timeout=10)
        return int(done.stdout.strip()) if done.ok and done.stdout.strip().isdigit() else None
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    m = re.search(r"^MemTotal:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) * 1024 if m else None


def uid() -> int:
    return os.getuid()
