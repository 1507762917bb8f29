"""The pool's state: the remote nodes' tokens, each node's model list (asked from its
`/api/tags` by `ai-server pool refresh`, also on run and reload) and the nodes' status from the
stats socket. Nothing here renders config; `pool` does that from what this module reads.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import stat
import time
from pathlib import Path
from typing import Any

from aicommon.errors import AiError, ExitCode
from aicommon.fsutil import atomic_write
from aicommon.tailscale import is_tailscale_ip
from aiserver.gateway.paths import pool_models_path, pool_tokens_path, stats_socket
from aiserver.gateway.pool import is_local, model_names, relayed, server_name
from aiserver.settings import Settings, split_hostport


def safe_address(node: str) -> str | None:
    """Where a node really is: the literal address, or what its MagicDNS name resolves to now
    — but only if that is a loopback or Tailscale address (a name answered by another DNS
    must never receive the node's token or users' prompts). None: unusable for now."""
    host, port = split_hostport(node, "pool node")
    try:
        ipaddress.ip_address(host)
        return node
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return None
    for info in infos:
        ip = str(info[4][0])
        if ipaddress.ip_address(ip).is_loopback or is_tailscale_ip(ip):
            return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
    return None


# -- tokens and the stored model lists ------------------------------------------------------

def tokens_path(settings: Settings) -> Path:
    return pool_tokens_path(settings)


def read_tokens(settings: Settings) -> dict[str, str]:
    path = tokens_path(settings)
    try:
        st = path.stat()
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise AiError(f"the pool token file {path} is readable by other users",
                      f"chmod 600 {path}", code="pool.tokens_permissions",
                      exit_code=ExitCode.CONFIG)
    tokens = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or parts[0] not in settings.pool.nodes or not re.fullmatch(
                r"[A-Za-z0-9._~+/=-]{16,256}", parts[1]):
            raise AiError(f"{path} line {n} is not '<node from pool.nodes> <token>'",
                          "one line per remote node: host:port and its device token",
                          code="pool.tokens_invalid", exit_code=ExitCode.CONFIG)
        tokens[parts[0]] = parts[1]
    return tokens


def models_path(settings: Settings) -> Path:
    return pool_models_path(settings)


def stored_models(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    try:
        doc = json.loads(models_path(settings).read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return {node: info.get("models", []) for node, info in doc.get("nodes", {}).items()
            if node in settings.pool.nodes}


def refresh(settings: Settings, timeout: float = 3.0) -> dict[str, Any]:
    """Ask every node for its models; keep the last known list of a node that is down."""
    from aicommon.httpclient import request

    tokens = read_tokens(settings)
    old = stored_models(settings)
    report: dict[str, Any] = {"time": int(time.time()), "nodes": {}}
    for node in settings.pool.nodes:
        address = safe_address(node)
        entry: dict[str, Any]
        if address is None:
            report["nodes"][node] = {"ok": False, "models": old.get(node, []),
                                     "stale": node in old,
                                     "error": "does not resolve to a Tailscale address"}
            continue
        url = f"http://{address}/api/tags"
        headers = {"Authorization": f"Bearer {tokens[node]}"} if node in tokens else {}
        try:
            resp = request("GET", url, headers=headers, timeout=(timeout, timeout),
                           what=f"pool node {node}")
            if resp.status != 200:
                raise AiError(f"HTTP {resp.status}", code="pool.node_status")
            entry = {"ok": True, "models": resp.json().get("models") or []}
        except AiError as err:
            entry = {"ok": False, "error": err.message, "models": old.get(node, []),
                     "stale": node in old}
        report["nodes"][node] = entry
    path = models_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report


# -- status from the stats socket --------------------------------------------------------------

def show_stat(sock: Path) -> list[dict[str, str]]:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(3)
        s.connect(str(sock))
        s.sendall(b"show stat\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    lines = data.decode().splitlines()
    if not lines or not lines[0].startswith("# "):
        return []
    header = lines[0][2:].split(",")
    return [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]


def status(settings: Settings) -> dict[str, Any]:
    models = stored_models(settings)
    try:
        rows = show_stat(stats_socket(settings))
        live = True
    except OSError:
        rows, live = [], False
    nodes = []
    for i, node in enumerate(settings.pool.nodes):
        name = server_name(node)
        anchor = next((r for r in rows if r.get("pxname") == f"node_{i}"
                       and r.get("svname") == name), {})
        inflight = sum(int(r.get("scur") or 0) for r in rows
                       if r.get("svname") == name and r.get("pxname", "").startswith("pool_"))
        queued = sum(int(r.get("qcur") or 0) for r in rows
                     if r.get("svname") == name and r.get("pxname", "").startswith("pool_"))
        nodes.append({"node": node, "local": is_local(node),
                      "health": anchor.get("status", "unknown") if live else "gateway down",
                      "in_flight": inflight, "queued": queued,
                      "models": sorted(model_names(models.get(node, [])))})
    return {"gateway_running": live, "affinity": settings.pool.affinity, "nodes": nodes}


def addresses(settings: Settings, tokens: dict[str, str]) -> dict[str, str | None]:
    """Where each relayed node is now (see safe_address); direct nodes are literal."""
    return {node: safe_address(node) for node in settings.pool.nodes if relayed(node, tokens)}
