"""This machine's Tailscale state, read from `tailscale status --json` (parsed defensively)."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import time
from dataclasses import dataclass
from typing import Any

from aicommon.errors import AiError, ExitCode
from aicommon.runner import run

MACOS_APP_CLI = "/Applications/Tailscale.app/Contents/MacOS/Tailscale"
TAILSCALE_V4 = ipaddress.ip_network("100.64.0.0/10")
TAILSCALE_V6 = ipaddress.ip_network("fd7a:115c:a1e0::/48")


def is_tailscale_ip(addr: str) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return ip in (TAILSCALE_V4 if ip.version == 4 else TAILSCALE_V6)


@dataclass(frozen=True)
class TailscaleState:
    backend_state: str
    tun: bool
    addresses: tuple[str, ...]  # this node's Tailscale IPs (v4 first)
    dns_name: str
    tailnet: str
    host_name: str = ""  # Self.HostName: the machine's short name


def cli_path() -> str:
    """The tailscale CLI: $AI_TAILSCALE, `tailscale` on PATH, the macOS app's bundled CLI, or
    the Homebrew prefix's."""
    override = os.environ.get("AI_TAILSCALE")
    if override:
        return override
    found = shutil.which("tailscale")
    if found:
        return found
    if os.path.exists(MACOS_APP_CLI):
        return MACOS_APP_CLI
    from aicommon.programs import find_brew, find_program

    in_brew = find_program("tailscale", find_brew())
    if in_brew:
        return in_brew
    raise AiError("the tailscale command was not found",
                  "install Tailscale (https://tailscale.com/download) and log in",
                  code="tailscale.missing", exit_code=ExitCode.UNAVAILABLE)


def parse_status(raw: str) -> TailscaleState:
    try:
        doc: Any = json.loads(raw)
    except ValueError:
        raise AiError("`tailscale status --json` did not print JSON",
                      "check that tailscaled is running", code="tailscale.bad_output",
                      exit_code=ExitCode.UNAVAILABLE) from None
    if not isinstance(doc, dict):
        raise AiError("unexpected `tailscale status --json` output", code="tailscale.bad_output",
                      exit_code=ExitCode.UNAVAILABLE)
    self_node: dict[str, Any] = doc["Self"] if isinstance(doc.get("Self"), dict) else {}
    ips = doc.get("TailscaleIPs") or self_node.get("TailscaleIPs") or []
    addrs = [ip for ip in ips if isinstance(ip, str) and is_tailscale_ip(ip)]
    addrs.sort(key=lambda a: ":" in a)  # IPv4 first
    tailnet: dict[str, Any] = (doc["CurrentTailnet"] if isinstance(doc.get("CurrentTailnet"), dict)
                               else {})
    return TailscaleState(
        backend_state=str(doc.get("BackendState", "NoState")),
        tun=doc.get("TUN") is not False,
        addresses=tuple(addrs),
        dns_name=str(self_node.get("DNSName", "")).rstrip("."),
        tailnet=str(tailnet.get("Name", "")),
        host_name=str(self_node.get("HostName", "")),
    )


def status_json() -> str:
    done = run([cli_path(), "status", "--json"], timeout=15, check=False)
    if not done.stdout.strip():
        why = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no output"
        raise AiError(f"`tailscale status --json` failed: {why}",
                      "start Tailscale and log in", code="tailscale.unavailable",
                      exit_code=ExitCode.UNAVAILABLE)
    return done.stdout


def status() -> TailscaleState:
    return parse_status(status_json())


@dataclass(frozen=True)
class Peer:
    dns_name: str  # MagicDNS FQDN without the trailing dot ("" when MagicDNS is off)
    host_name: str
    addresses: tuple[str, ...]
    online: bool
    tags: tuple[str, ...]
    os: str

    @property
    def address(self) -> str:
        """What a client should connect to: the MagicDNS name, else the first IP."""
        return self.dns_name or (self.addresses[0] if self.addresses else self.host_name)


def peers(raw: str) -> list[Peer]:
    """Every peer in `tailscale status --json` (defensive: fields may be missing)."""
    try:
        doc: Any = json.loads(raw)
    except ValueError:
        return []
    found = []
    table = doc.get("Peer") if isinstance(doc, dict) else None
    for node in (table or {}).values():
        if not isinstance(node, dict):
            continue
        ips = tuple(ip for ip in node.get("TailscaleIPs") or [] if isinstance(ip, str))
        found.append(Peer(str(node.get("DNSName", "")).rstrip("."), str(node.get("HostName", "")),
                          ips, bool(node.get("Online")),
                          tuple(t for t in node.get("Tags") or [] if isinstance(t, str)),
                          str(node.get("OS", ""))))
    return sorted(found, key=lambda p: p.address)


def wait_running(timeout: float, poll: float = 1.0) -> TailscaleState:
    """Wait (bounded) for BackendState Running with at least one address."""
    deadline = time.monotonic() + timeout
    while True:
        state = status()
        if state.backend_state == "Running" and state.addresses:
            return state
        if time.monotonic() >= deadline:
            waited = f" after waiting {timeout:g} s" if timeout > 0 else ""
            raise AiError(
                (f"Tailscale is running but this machine has no Tailscale address{waited}"
                 if state.backend_state == "Running" else
                 f"Tailscale is not running (state {state.backend_state}){waited}"),
                ("check `tailscale ip` and `tailscale status`" if state.backend_state == "Running"
                 else "start Tailscale and log in (`tailscale up`)")
                + "; the gateway never listens anywhere else",
                code="tailscale.not_running", exit_code=ExitCode.UNAVAILABLE)
        time.sleep(poll)
