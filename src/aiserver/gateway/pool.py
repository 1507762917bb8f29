"""Several Ollama nodes behind one gateway: health, model-aware routing, session affinity.

This module renders (pure); `nodes` keeps the pool's state (tokens, model lists, status).

HAProxy does the balancing. Every node has a health-anchor backend (`node_<i>`, checked on
GET /api/version); routing groups (`pool_<i>_<j>…`: the nodes that have a model) track those
checks. The model of a request is the top-level `"model"` of its JSON body (read as JSON
from the first 16 KB: clients put it first) or from the `/v1/models/{model}` path, looked up
in `models.map`, built from each node's `/api/tags` by `ai-server pool refresh` (also on run
and reload). Remote nodes
are other machines' ai-server gateways, reached through a local relay that adds their token.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiserver.settings import Settings, split_hostport

BODY_PEEK = "16k"  # how much of a POST body HAProxy waits for to find "model"
SESSION_HEADER = "x-claude-code-session-id"
# The top-level "model" read as JSON (escapes, pretty-printing, nested "model" keys before it),
# from the buffered part of the body. With duplicate top-level keys HAProxy takes the first
# and Ollama (Go) the last: routing only picks the node, so the worst case is that node's own
# "model not found" (tests/integration/test_pool.py pins it).
MODEL_FROM_BODY = "req.body,json_query('$.model')"
UPSTREAM_DOWN = ("Ollama is down on the server: the gateway cannot connect to it (its health "
                 "check fails)")
def cfg_path(path: Path | str) -> str:
    """A file or socket path as a single-quoted config word: the default state dir on macOS
    (~/Library/Application Support/…) has a space. Nothing in it can end the quotes."""
    text = str(path)
    if "'" in text or not text.isprintable():
        from aicommon.errors import AiError, ExitCode

        raise AiError(f"the path {text!r} cannot be written into haproxy.cfg (a quote or a "
                      "control character)", "use a plain path (AI_SERVER_HOME or the setting)",
                      code="gateway.path", exit_code=ExitCode.CONFIG)
    return f"'{text}'"


CHECK = "check inter 2s fastinter 500ms downinter 1s rise 1 fall 2"


@dataclass(frozen=True)
class PoolRender:
    backends: str
    routing: str
    files: list[tuple[str, str]]


def server_name(node: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.:-]", "_", node)


def is_local(node: str) -> bool:
    host, _ = split_hostport(node, "pool node")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def relay_socket(sock_dir: Path, index: int) -> Path:
    return sock_dir / f"relay-{index}.sock"


def relayed(node: str, tokens: dict[str, str]) -> bool:
    """Remote nodes, and any node that needs a token, are reached through a local relay."""
    return not is_local(node) or node in tokens


def _address(node: str, index: int, sock_dir: Path, tokens: dict[str, str]) -> str:
    return cfg_path(f"unix@{relay_socket(sock_dir, index)}") if relayed(node, tokens) else node


def _json_error(status_kind: str, shape: str) -> str:
    """A 404 for an unknown model in the caller's API shape (model name via log-format)."""
    model = "%[var(txn.model),json(utf8s)]"
    msg = f"model {model} not found on any node of the pool"  # no ' inside a '…' word
    if shape == "anthropic":
        return json.dumps({"type": "error", "error": {"type": status_kind, "message": msg}},
                          separators=(",", ":"))
    if shape == "openai":
        return json.dumps({"error": {"message": msg, "type": status_kind, "param": None,
                                     "code": None}}, separators=(",", ":"))
    return json.dumps({"error": msg}, separators=(",", ":"))


MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}")


def model_names(entries: list[dict[str, Any]]) -> list[str]:
    """Model names from a node's /api/tags; anything that is not a plain name (whitespace,
    control characters…) is dropped: names become lines of models.map."""
    names = [str(e.get("name") or e.get("model")) for e in entries
             if isinstance(e, dict) and (e.get("name") or e.get("model"))]
    return [n for n in names if MODEL_NAME.fullmatch(n)]


def render_pool(settings: Settings, target_dir: Path, sock_dir: Path,
                models: dict[str, list[dict[str, Any]]], tokens: dict[str, str],
                addresses: dict[str, str | None] | None = None) -> PoolRender:
    """addresses: where each node is now (nodes.safe_address); a node without a safe
    address stays disabled (`init-addr none`) until a later run or reload resolves it."""
    nodes = list(settings.pool.nodes)
    lim = settings.limits
    affinity = settings.pool.affinity == "session"
    out: list[str] = []
    # relays for remote gateways: add their token, keep the Host they expect
    for i, node in enumerate(nodes):
        if not relayed(node, tokens):
            continue
        lines = [f"listen pool_relay_{i}",
                 f"    bind {cfg_path(f'unix@{relay_socket(sock_dir, i)}')} mode 600",
                 "    no log",
                 "    option abortonclose",
                 "    # its own 502/503/504 in the caller's dialect, like the gateway's",
                 "    http-request set-var(txn.dialect) str(native) if { path_beg /api/ }",
                 f"    http-request set-header Host {node}"]
        token = tokens.get(node)
        if token:
            lines.append(f'    http-request set-header Authorization "Bearer {token}"')
        where = (addresses or {}).get(node) or f"{node} init-addr none"
        lines.append(f"    server {server_name(node)} {where}")
        out += [*lines, ""]
    for i, node in enumerate(nodes):
        address = _address(node, i, sock_dir, tokens)
        out += [f"backend node_{i}",
                "    option httpchk GET /api/version",
                "    http-check expect status 200",
                f"    server {server_name(node)} {address} {CHECK}", ""]
    # routing groups: all nodes, plus the node set of each model
    holders: dict[str, list[int]] = {}
    for i, node in enumerate(nodes):
        for name in model_names(models.get(node, [])):
            holders.setdefault(name, []).append(i)
    groups = {tuple(range(len(nodes)))} | {tuple(v) for v in holders.values()}

    def group_name(members: tuple[int, ...]) -> str:
        return "pool_all" if members == tuple(range(len(nodes))) else \
            "pool_" + "_".join(map(str, members))

    for members in sorted(groups, key=lambda m: (len(m), m), reverse=True):
        for sticky in ((False, True) if affinity else (False,)):
            name = group_name(members) + ("_s" if sticky else "")
            out += [f"backend {name}", "    option abortonclose",
                    "    # a node that refuses the connection: retry on another one",
                    "    option redispatch 1", "    retries 2",
                    f"    balance hdr({SESSION_HEADER})" if sticky else "    balance leastconn"]
            if sticky:
                out.append("    hash-type consistent")
            out.append("    http-request set-header Host localhost")
            for i in members:
                address = _address(nodes[i], i, sock_dir, tokens)
                out.append(f"    server {server_name(nodes[i])} {address}"
                           f" track node_{i}/{server_name(nodes[i])} "
                           f"maxconn {lim.upstream_concurrency} maxqueue {lim.queue_size}")
            out.append("")
    map_path = target_dir / "models.map"
    v1_path, tags_path = target_dir / "union-v1-models.json", target_dir / "union-api-tags.json"
    down_msg = "no Ollama node of the pool is up (every health check fails)"
    down = json.dumps({"type": "error", "error": {
        "type": "api_error", "code": "pool_down", "source": "ai-server gateway",
        "message": down_msg, "hint": "run `ai-server status` and `ai-server pool status` on "
        "the server"}}, separators=(",", ":"))
    down_native = json.dumps({"error": down_msg, "code": "pool_down",
                              "hint": "run `ai-server status` and `ai-server pool status` on "
                                      "the server", "source": "ai-server gateway"},
                             separators=(",", ":"))
    routing = [
        "    # The pool: route by the request's model, keep a session on one node.",
        "    acl pool_session req.hdr(" + SESSION_HEADER + ") -m found",
        f"    http-request wait-for-body time 2s at-least {BODY_PEEK} if METH_POST",
        f"    http-request set-var(txn.model) {MODEL_FROM_BODY} if METH_POST",
        "    http-request set-var(txn.model) path,field(4,/) "
        "if METH_GET { path_beg /v1/models/ }",
        f"    http-request set-var(txn.group) var(txn.model),map_str({cfg_path(map_path)}) "
        "if { var(txn.model) -m found }",
        "    acl pool_model var(txn.model) -m found",
        "    acl pool_known var(txn.group) -m found",
        "    http-request return status 404 content-type application/json lf-string "
        f"'{_json_error('not_found_error', 'anthropic')}' if pool_model !pool_known "
        "{ path /v1/messages }",
        "    http-request return status 404 content-type application/json lf-string "
        f"'{_json_error('not_found_error', 'openai')}' if pool_model !pool_known "
        "{ path_beg /v1/ }",
        "    http-request return status 404 content-type application/json lf-string "
        f"'{_json_error('not_found_error', 'native')}' if pool_model !pool_known",
        "    http-request return status 502 content-type application/json "
        f"string '{down_native}' if native_api {{ nbsrv(pool_all) eq 0 }}",
        "    http-request return status 502 content-type application/json "
        f"string '{down}' if {{ nbsrv(pool_all) eq 0 }}",
        "    http-request return status 200 content-type application/json "
        f"file {cfg_path(v1_path)} if METH_GET {{ path /v1/models }}",
        "    http-request return status 200 content-type application/json "
        f"file {cfg_path(tags_path)} if {{ path /api/tags }}",
    ]
    if affinity:
        routing.append("    use_backend %[var(txn.group)]_s if pool_known pool_session")
    routing.append("    use_backend %[var(txn.group)] if pool_known")
    if affinity:
        routing.append("    use_backend pool_all_s if pool_session")
    routing.append("    default_backend pool_all")
    union: dict[str, dict[str, Any]] = {}
    for node in nodes:
        for entry in models.get(node, []):
            for name in model_names([entry]):
                union.setdefault(name, entry)
    names = sorted(union)
    v1 = {"object": "list", "data": [
        {"id": n, "object": "model", "created": _created(union[n]), "owned_by": "library"}
        for n in names]}
    files = [
        ("models.map", "".join(f"{n} {group_name(tuple(holders[n]))}\n" for n in names)),
        ("union-v1-models.json", json.dumps(v1, separators=(",", ":"))),
        ("union-api-tags.json", json.dumps({"models": [union[n] for n in names]},
                                           separators=(",", ":"))),
    ]
    return PoolRender("\n".join(out), "\n".join(routing), files)


def _created(entry: dict[str, Any]) -> int:
    from datetime import datetime

    stamp = str(entry.get("modified_at", ""))
    try:
        return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0
