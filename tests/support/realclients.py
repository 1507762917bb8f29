"""Where the real third-party clients live, and the loopback-only network namespace they run in.

`scripts/setup-test-clients` installs Claude Code (npm), Aider and the openai/anthropic/ollama
SDKs (PyPI) into a cache outside the checkout, keyed by the pins in `clients.env`.
`scripts/test` exports ROP_TEST_CACHE; without it the default cache under the real HOME is used
(read at import time, before the autouse fixture swaps HOME for a temp dir).

`loopback_only()` moves the whole test process (and so every thread and child it starts
afterwards: the simulator, HAProxy, the clients) into a fresh network namespace whose only
interface is `lo`, asserts that nothing else is there, and moves it back afterwards. Claude Code
and Aider try to reach the internet; inside, they can reach 127.0.0.0/8 and nothing else.
"""

from __future__ import annotations

import ctypes
import os
import shlex
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PINS_FILE = Path(__file__).with_name("clients.env")
CLONE_NEWNET = 0x40000000


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in PINS_FILE.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if "=" in line:
            key, value = line.split("=", 1)
            pins[key] = " ".join(shlex.split(value))
    return pins


PINS = _pins()
CLAUDE_CODE_VERSIONS: list[str] = PINS["CLAUDE_CODE_VERSIONS"].split()
CLAUDE_CODE_CURRENT = CLAUDE_CODE_VERSIONS[0]
CACHE = Path(os.environ.get("ROP_TEST_CACHE")
             or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
             / "remote-ollama-proxy-tests")


class ClientsMissing(RuntimeError):
    """The cache lacks a client: the suite fails (never skips) and says how to install it."""


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise ClientsMissing(f"{what} is not installed at {path}: run scripts/setup-test-clients "
                             "(scripts/test does) so the real-client tests can run")
    return path


def claude_prefix(version: str = CLAUDE_CODE_CURRENT) -> Path:
    """The npm prefix holding Claude Code `version` (bin/claude, lib/node_modules/...)."""
    return _require(CACHE / "claude-code" / version / ".ok", f"Claude Code {version}").parent


def claude_bin(version: str = CLAUDE_CODE_CURRENT) -> Path:
    return claude_prefix(version) / "bin" / "claude"


def aider_bin() -> Path:
    return _require(CACHE / "aider" / "bin" / "aider", "Aider")


def sdk_python() -> Path:
    """A Python with the openai, anthropic and ollama SDKs at the pinned versions."""
    return _require(CACHE / "sdks" / "bin" / "python", "the openai/anthropic/ollama SDKs")


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc().setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def interfaces() -> list[str]:
    # Not /sys/class/net: sysfs shows the namespace it was mounted in, not the current one.
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                         check=True).stdout
    return sorted(line.split(":")[1].strip().split("@")[0] for line in out.splitlines())


def routes() -> str:
    out = subprocess.run(["ip", "-o", "route", "show", "table", "all"], capture_output=True,
                         text=True, check=True).stdout
    # The kernel's own local/broadcast entries for lo are not a way out.
    return "\n".join(line for line in out.splitlines()
                     if not line.startswith(("local ", "broadcast ", "multicast ", "anycast "))
                     and " dev lo " not in f" {line} ")


@contextmanager
def loopback_only() -> Iterator[None]:
    """Run the body with this process in a new network namespace that has only `lo` (root)."""
    if os.geteuid() != 0:
        raise ClientsMissing("the real-client tests need root to create a network namespace "
                             "(CI and scripts/test run as root)")
    original = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        if _libc().unshare(CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)}")
        try:
            subprocess.run(["ip", "link", "set", "lo", "up"], check=True, capture_output=True)
            if interfaces() != ["lo"]:
                raise AssertionError(f"namespace has interfaces {interfaces()}, expected only lo")
            if routes().strip():
                raise AssertionError(f"namespace has routes beyond lo:\n{routes()}")
            yield
        finally:
            _setns(original)
    finally:
        os.close(original)
