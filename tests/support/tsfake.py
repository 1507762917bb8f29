"""Build `tailscale status --json` documents shaped like the real CLI's (REFERENCE §7)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FAKE_CLI = Path(__file__).resolve().parent / "fakes" / "tailscale"


def status_doc(state: str = "Running", ips: tuple[str, ...] = ("100.101.102.103",
                                                               "fd7a:115c:a1e0::1234"),
               tun: bool = True, hostname: str = "studio") -> dict[str, Any]:
    return {
        "Version": "1.96.2-t1234abcd",
        "TUN": tun,
        "BackendState": state,
        "HaveNodeKey": True,
        "AuthURL": "",
        "TailscaleIPs": list(ips) if state == "Running" else [],
        "Self": {
            "ID": "n1234", "PublicKey": "nodekey:abcd", "HostName": hostname,
            "DNSName": f"{hostname}.tail1234.ts.net.", "OS": "macOS",
            "TailscaleIPs": list(ips) if state == "Running" else [],
            "Online": state == "Running", "Active": True, "UserID": 1,
        },
        "Health": [],
        "MagicDNSSuffix": "tail1234.ts.net",
        "CurrentTailnet": {"Name": "alice@example.com", "MagicDNSSuffix": "tail1234.ts.net",
                           "MagicDNSEnabled": True},
        "Peer": {},
        "User": {"1": {"ID": 1, "LoginName": "alice@example.com", "DisplayName": "Alice"}},
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
        "LastSeen": "2026-11-28T10:00:00Z", "UserID": 1,
    }
    if tags:
        node["Tags"] = list(tags)
    return node


def with_peers(doc: dict[str, Any], *peers: dict[str, Any]) -> dict[str, Any]:
    doc = dict(doc)
    doc["Peer"] = {f"nodekey:{p['HostName']}": p for p in peers}
    return doc
