"""Build `tailscale status --json` documents shaped like the real CLI's (REFERENCE §7)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FAKE_CLI = Path(__file__).resolve().parent / "fakes" / "tailscale"


ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time, as encoding/json prints it
NO_NETMAP_STATES = ("NoState", "NeedsLogin", "InUseOtherUser")


def status_doc(state: str = "Running", ips: tuple[str, ...] = ("100.101.102.103",
                                                               "fd7a:115c:a1e0::1234"),
               tun: bool = True, hostname: str = "studio", *, netmap: bool | None = None,
               key_expiry: str | None = None, auth_url: str = "",
               magic_dns: bool = True) -> dict[str, Any]:
    """A document shaped as ipnlocal's updateStatusLocked fills it (tailscale v1.103).

    `netmap` (default: none in NoState/NeedsLogin/InUseOtherUser, present otherwise) decides
    what a real tailscaled prints: without a network map TailscaleIPs, Self.TailscaleIPs and
    CurrentTailnet are null, Self.DNSName is "" and there are no peers (Peer null); with one
    (including Stopped, and NeedsLogin after key expiry) the addresses stay listed.
    """
    has_map = state not in NO_NETMAP_STATES if netmap is None else netmap
    addrs = list(ips) if has_map else None
    self_node: dict[str, Any] = {
        "ID": "n1234" if has_map else "", "PublicKey": "nodekey:abcd", "HostName": hostname,
        "DNSName": f"{hostname}.tail1234.ts.net." if has_map else "", "OS": "macOS",
        "UserID": 1 if has_map else 0, "TailscaleIPs": addrs, "LastSeen": ZERO_TIME,
        "Online": state == "Running", "Active": False, "InNetworkMap": has_map,
        "InMagicSock": False, "InEngine": False,
    }
    if key_expiry is not None and has_map:  # peerStatusFromNode: from the netmap only
        self_node["KeyExpiry"] = key_expiry
        if key_expiry < "2026-12":  # in the past for these tests: control marks it Expired
            self_node["Expired"] = True
    return {
        "Version": "1.103.0-t1234abcd",
        "TUN": tun,
        "BackendState": state,
        "HaveNodeKey": True,
        "AuthURL": auth_url,
        "TailscaleIPs": addrs,
        "Self": self_node,
        "Health": [],
        "MagicDNSSuffix": "tail1234.ts.net" if has_map else "",
        "CurrentTailnet": {"Name": "alice@example.com", "MagicDNSSuffix": "tail1234.ts.net",
                           "MagicDNSEnabled": magic_dns} if has_map else None,
        "CertDomains": None,
        "Peer": None,
        "User": {"1": {"ID": 1, "LoginName": "alice@example.com", "DisplayName": "Alice"}}
        if has_map else None,
    }


def install(env: dict[str, str], workdir: Path, doc: dict[str, Any] | None) -> Path:
    """Point AI_TAILSCALE at the fake; `doc` None = tailscaled not running."""
    status = workdir / "tailscale-status.json"
    if doc is not None:
        status.write_text(json.dumps(doc))
    elif status.exists():
        status.unlink()
    log = workdir / "tailscale-calls.jsonl"
    env.update(AI_TAILSCALE=str(FAKE_CLI), FAKE_TAILSCALE_STATUS=str(status),
               FAKE_TAILSCALE_LOG=str(log))
    return log


def peer(host_name: str, ips: tuple[str, ...], *, tags: tuple[str, ...] = ("tag:ai-server",),
         online: bool = True, dns: bool = True) -> dict[str, Any]:
    """One `Peer` entry of `tailscale status --json` (REFERENCE §7)."""
    node: dict[str, Any] = {
        "ID": f"n{abs(hash(host_name)) % 10**6}", "PublicKey": f"nodekey:{host_name}",
        "HostName": host_name, "DNSName": f"{host_name}.tail1234.ts.net." if dns else "",
        "OS": "macOS", "TailscaleIPs": list(ips), "Online": online, "Active": online,
        # LastSeen is "only present if offline": online peers carry Go's zero time.
        "LastSeen": ZERO_TIME if online else "2026-11-28T10:00:00Z", "UserID": 1,
    }
    if tags:
        node["Tags"] = list(tags)
    return node


def with_peers(doc: dict[str, Any], *peers: dict[str, Any]) -> dict[str, Any]:
    """Peers keyed by node key; no peers stays null, as the real map is nil then."""
    doc = dict(doc)
    doc["Peer"] = {f"nodekey:{p['HostName']}": p for p in peers} or None
    return doc
