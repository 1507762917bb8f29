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
    has_netmap: bool = True  # CurrentTailnet is null until a network map arrives
    auth_url: str = ""
    key_expiry: str = ""  # Self.KeyExpiry (RFC 3339), "" when absent
    key_expired: bool = False  # Self.Expired, or KeyExpiry in the past


def _expired(stamp: str) -> bool:
    """Is a Go time (RFC 3339, maybe with nanoseconds) in the past? Zero time is not."""
    import re
    from datetime import UTC, datetime

    plain = re.sub(r"\.\d+", "", stamp).replace("Z", "+00:00")
    try:
        when = datetime.fromisoformat(plain)
    except ValueError:
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.year > 1 and when <= datetime.now(UTC)


def diagnose(state: TailscaleState) -> tuple[str, str] | None:
    """One line saying why this device cannot use the tailnet now, and the fix; None if it can.

    `tailscale status --json` exits 0 in every backend state (ipn/backend.go lists them), so
    the state, not the exit code, says what is wrong. Addresses are still listed while Stopped
    and while NeedsLogin with a stale network map: they do not mean the device is connected.
    """
    s = state.backend_state
    if s == "Running":
        if state.addresses:
            return None
        return ("Tailscale is running but has no Tailscale address yet",
                "wait a few seconds, then check `tailscale status`")
    if s == "Stopped":
        return ("Tailscale is stopped (disconnected); the addresses it still lists do not work",
                "connect: `tailscale up` (or Connect in the Tailscale app)")
    if s == "NeedsLogin":
        if state.key_expired:
            when = f" ({state.key_expiry[:10]})" if state.key_expiry else ""
            return (f"Tailscale needs login: this device's key expired{when}",
                    "log in again with `tailscale up`; for a server, disable key expiry "
                    "for it in the admin console (Machines)")
        if state.has_netmap:
            return ("Tailscale needs login again (its key expired or it was logged out); the "
                    "addresses it still lists do not work", "log in again: `tailscale up`")
        return ("Tailscale is logged out on this device",
                f"log in at {state.auth_url}" if state.auth_url else "log in: `tailscale up`")
    if s == "NeedsMachineAuth":
        return ("this device is waiting for approval by the tailnet admin",
                "approve it in the Tailscale admin console (Machines)")
    if s == "InUseOtherUser":
        return ("Tailscale on this computer is in use by another user account",
                "log in to Tailscale as this user (the Tailscale app), or use the account "
                "that owns it")
    if s == "Starting":
        return ("Tailscale is still connecting to the tailnet",
                "wait a few seconds; if it stays so, check `tailscale status`")
    if s == "NoState":
        return ("tailscaled has no state yet (it is starting or was never set up)",
                "start Tailscale and log in: `tailscale up`")
    return (f"Tailscale is in an unexpected state {s!r}", "check `tailscale status`")


USERSPACE_DELIVERY_HOST = "127.0.0.1"
USERSPACE_SAFE_HOST = "::1"


def delivered_in_userspace(host: str) -> bool:
    """Would tailscaled in userspace mode deliver tailnet connections to a listener on `host`?

    For a connection to one of this node's Tailscale addresses it dials 127.0.0.1:<port>, for
    every port the policy allows, and never ::1 (tailscale v1.103 wgengine/netstack/netstack.go,
    acceptTCP: `case isTailscaleIP: dialIP = ipv4Loopback`). A listener on 127.0.0.1 or on a
    wildcard address accepts that; only IPv6 loopback is certainly out of its reach.
    """
    return host.strip("[]") != USERSPACE_SAFE_HOST


USERSPACE_CLIENTS_NOTE = ("Tailscale runs in userspace networking: every tailnet client reaches "
                          "the gateway from 127.0.0.1, so per-source limits count all clients "
                          "together and usage cannot tell devices apart by address (`tailscale "
                          "whois` knows a client only while its connection is open); give each "
                          "device a token (`ai-server tokens add DEVICE`) to name it")
USERSPACE_CLIENT = ("Tailscale on this device runs in userspace networking (TUN false): programs "
                    "here cannot reach 100.x addresses or MagicDNS names (only through "
                    "tailscaled's SOCKS5/HTTP proxy, which Aider and Claude Code are not "
                    "set up to use)")
USERSPACE_CLIENT_FIX = ("run Tailscale with a TUN device: on macOS the Tailscale app, or "
                        "`sudo brew services start tailscale`; on Linux the packaged tailscaled "
                        "service (as root, without --tun=userspace-networking)")


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
    expiry = self_node.get("KeyExpiry")
    expiry = expiry if isinstance(expiry, str) else ""
    return TailscaleState(
        backend_state=str(doc.get("BackendState", "NoState")),
        tun=doc.get("TUN") is not False,
        addresses=tuple(addrs),
        dns_name=str(self_node.get("DNSName") or "").rstrip("."),
        tailnet=str(tailnet.get("Name", "")),
        host_name=str(self_node.get("HostName", "")),
        has_netmap=isinstance(doc.get("CurrentTailnet"), dict),
        auth_url=str(doc.get("AuthURL") or ""),
        key_expiry=expiry,
        key_expired=self_node.get("Expired") is True or (bool(expiry) and _expired(expiry)),
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


def member_login(raw: str | None = None) -> str | None:
    """A person's login on this tailnet (this node's user first), for policy tests.

    Tagged nodes belong to the "tagged-devices" user, which is nobody; None when no person's
    login is known (or Tailscale cannot be asked).
    """
    if raw is None:
        try:
            raw = status_json()
        except AiError:
            return None
    try:
        doc: Any = json.loads(raw)
    except ValueError:
        return None
    users = doc.get("User") if isinstance(doc, dict) else None
    if not isinstance(users, dict):
        return None
    self_node = doc.get("Self") if isinstance(doc.get("Self"), dict) else {}
    first = str(self_node.get("UserID", ""))
    ordered = sorted(users.items(), key=lambda kv: kv[0] != first)
    for _, profile in ordered:
        login = profile.get("LoginName") if isinstance(profile, dict) else None
        if isinstance(login, str) and "@" in login and login != "tagged-devices":
            return login
    return None


def wait_running(timeout: float, poll: float = 1.0) -> TailscaleState:
    """Wait (bounded) for BackendState Running with at least one address."""
    deadline = time.monotonic() + timeout
    while True:
        state = status()
        problem = diagnose(state)
        if problem is None:
            return state
        if time.monotonic() >= deadline:
            waited = f" after waiting {timeout:g} s" if timeout > 0 else ""
            raise AiError(
                f"{problem[0]}"
                + ("" if state.backend_state == "Running" else f" (state {state.backend_state})")
                + waited,
                f"{problem[1]}; the gateway never listens anywhere else",
                code="tailscale.not_running", exit_code=ExitCode.UNAVAILABLE)
        time.sleep(poll)
