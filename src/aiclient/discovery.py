"""Finding the server on the tailnet and probing it, with a precise diagnosis on failure."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Any

from aicommon import tailscale
from aicommon.errors import AiError, ExitCode

SERVER_TAG = "tag:ai-server"
PROBE_TIMEOUT = (3.05, 15.0)  # (connect, read) seconds for each probe request


def tagged_servers() -> list[tailscale.Peer]:
    """Peers tagged tag:ai-server (raises when Tailscale is not usable)."""
    raw = tailscale.status_json()
    state = tailscale.parse_status(raw)
    problem = tailscale.diagnose(state)
    if problem is not None:
        raise AiError(problem[0], problem[1], code="tailscale.down",
                      exit_code=ExitCode.UNAVAILABLE)
    return [p for p in tailscale.peers(raw) if SERVER_TAG in p.tags]


def choose_server(found: list[tailscale.Peer]) -> tailscale.Peer | None:
    """The only tagged server, or None when the caller must ask (several)."""
    if not found:
        raise AiError("no device on the tailnet is tagged tag:ai-server",
                      "tag the server (only the server) tag:ai-server: admin console -> "
                      "Machines -> Edit ACL tags, or `tailscale up --advertise-tags=tag:ai-server`"
                      " on it (`ai-server acl` prints the policy); or pass --server NAME",
                      code="discovery.none", exit_code=ExitCode.UNAVAILABLE)
    return found[0] if len(found) == 1 else None


@dataclass
class Probe:
    base_url: str
    version: str
    models: list[str]
    capabilities: dict[str, list[str]] = field(default_factory=dict)
    trained_context: dict[str, int] = field(default_factory=dict)
    loaded_context: dict[str, int] = field(default_factory=dict)
    native_api: bool = False  # POST /api/chat is forwarded (the "native" allowlist profile)


def _peer_for(host: str) -> tailscale.Peer | None:
    try:
        raw = tailscale.status_json()
    except AiError:
        return None
    for p in tailscale.peers(raw):
        if host in (p.dns_name, p.host_name, *p.addresses) or p.dns_name.startswith(host + "."):
            return p
    return None


def _on_tailnet(host: str, raw: str) -> bool:
    """Is `host` a Tailscale address, a MagicDNS name or the name of a peer?"""
    if tailscale.is_tailscale_ip(host.strip("[]")):
        return True
    name = host.lower().rstrip(".")
    if name.endswith(".ts.net"):
        return True
    return any(name in (p.dns_name.lower(), p.host_name.lower())
               or p.dns_name.lower().startswith(name + ".") for p in tailscale.peers(raw))


def local_tailscale_problem(host: str) -> AiError | None:
    """Why this device cannot reach `host` over Tailscale at all right now (None: no reason).

    Only for tailnet hosts. A device whose tailscaled runs in userspace networking (`TUN`
    false) has no route to 100.x addresses and no MagicDNS: programs reach the tailnet only
    through tailscaled's SOCKS5/HTTP proxy.
    """
    try:
        raw = tailscale.status_json()
        state = tailscale.parse_status(raw)
    except AiError:
        return None
    if not _on_tailnet(host, raw):
        return None
    problem = tailscale.diagnose(state)
    if problem is not None:
        return AiError(f"cannot reach {host}: {problem[0]}", problem[1],
                       code="probe.tailscale_down", exit_code=ExitCode.UNAVAILABLE)
    if not state.tun:
        return AiError(f"cannot reach {host}: {tailscale.USERSPACE_CLIENT}",
                       tailscale.USERSPACE_CLIENT_FIX, code="probe.tailscale_userspace",
                       exit_code=ExitCode.UNAVAILABLE)
    return None


def _resolved(host: str, port: int) -> set[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return set()
    return {str(ipaddress.ip_address(str(i[4][0]).split("%")[0])) for i in infos}


def usable_host(host: str, port: int) -> tuple[str, str | None]:
    """The host to write into the settings, and a note when it is not `host`.

    `DNSName` is set even when MagicDNS is off, and a device may run with
    `--accept-dns=false`: a tailnet name is kept only if it resolves here to one of the
    server's Tailscale addresses; otherwise the server's 100.x address is used instead.
    """
    try:
        ipaddress.ip_address(host.strip("[]"))
        return host, None
    except ValueError:
        pass
    peer = _peer_for(host)
    if peer is None or not peer.addresses:
        return host, None
    resolved = _resolved(host, port)
    if resolved & {str(ipaddress.ip_address(a)) for a in peer.addresses}:
        return host, None
    ip = peer.addresses[0]
    why = (f"resolves to {', '.join(sorted(resolved))}, not to the server's Tailscale address"
           if resolved else "does not resolve on this device (MagicDNS is off, or Tailscale "
           "runs with --accept-dns=false)")
    return ip, (f"{host} {why}: using {ip} instead; rerun `ai-client setup --server {host}` "
                "once the name resolves")


def _transport_diagnosis(host: str, port: int, err: AiError) -> AiError:
    """Why the connection failed, as precisely as the local facts allow."""
    try:
        state = tailscale.status()
    except AiError:
        state = None
    problem = tailscale.diagnose(state) if state is not None else None
    if problem is not None:
        return AiError(f"cannot reach {host}:{port}: {problem[0]}", problem[1],
                       code="probe.tailscale_down", exit_code=ExitCode.UNAVAILABLE)
    blocked = local_tailscale_problem(host)
    if blocked is not None:
        return blocked
    peer = _peer_for(host)
    if peer is not None and not peer.online:
        return AiError(f"cannot reach {host}:{port}: the server is offline on the tailnet",
                       "wake or start the server; check `tailscale status`",
                       code="probe.peer_offline", exit_code=ExitCode.UNAVAILABLE)
    if err.code == "http.connect_timeout":
        return AiError(f"{host}:{port} did not answer: the tailnet policy may drop this "
                       "device's traffic, or the server is asleep",
                       "check the grants in the tailnet policy (`ai-server acl` prints them)",
                       code="probe.timeout", exit_code=ExitCode.UNAVAILABLE)
    if err.code == "http.dns" or "getaddrinfo" in str(err.__cause__):
        return AiError(f"cannot resolve {host}", "use the MagicDNS name from `tailscale status`"
                       " or the server's 100.x address", code="probe.dns",
                       exit_code=ExitCode.UNAVAILABLE)
    if err.code == "http.read_timeout":
        return AiError(f"{host}:{port} {err.message.split(' ', 1)[1]}: something listens there "
                       "but does not answer like the gateway",
                       "check the port; on the server run `ai-server status` (Ollama or the "
                       "gateway may be stuck)", code="probe.no_answer",
                       exit_code=ExitCode.UNAVAILABLE)
    if err.code in ("http.garbage", "http.closed") and err.__cause__ is not None:
        from aicommon.httpclient import connection_failure

        return AiError(f"{host}:{port} {connection_failure(err.__cause__)[1]}",
                       "check the port: the gateway speaks plain HTTP (default 11434)",
                       code="probe.not_http", exit_code=ExitCode.UNAVAILABLE)
    if err.code == "http.refused":
        return AiError(f"connection to {host}:{port} refused: the gateway is not running there, "
                       "or the tailnet policy does not let this device in",
                       "on the server run `ai-server status`; check the tailnet policy grants",
                       code="probe.refused", exit_code=ExitCode.UNAVAILABLE)
    return AiError(f"cannot reach {host}:{port}: {err.message}", err.hint,
                   code="probe.unreachable", exit_code=ExitCode.UNAVAILABLE)


def _get(base_url: str, path: str, headers: dict[str, str], host: str, port: int,
         body: Any = None) -> Any:
    from aicommon.httpclient import request

    try:
        resp = request("POST" if body is not None else "GET", base_url + path, json_body=body,
                       headers=headers, timeout=PROBE_TIMEOUT, what=f"{host}:{port}")
    except AiError as err:
        raise _transport_diagnosis(host, port, err) from None
    if resp.status == 401:
        raise AiError(f"{host}:{port} requires a device token and "
                      + ("none was given" if "Authorization" not in headers
                         or headers["Authorization"].endswith(" ollama")
                         else "rejected the one given"),
                      "on the server: `ai-server tokens add <this device>`; then "
                      "`ai-client setup --token <token>`", code="probe.token",
                      exit_code=ExitCode.UNAVAILABLE)
    if resp.status == 403:
        raise AiError(f"{host}:{port} refused {path} (HTTP 403)",
                      "this is not an ai-server gateway, or its allowlist differs",
                      code="probe.forbidden", exit_code=ExitCode.UNAVAILABLE)
    if resp.status != 200:
        raise AiError(f"{host}:{port} answered {path} with HTTP {resp.status}",
                      "check `ai-server status` on the server", code="probe.status",
                      exit_code=ExitCode.UNAVAILABLE)
    try:
        return resp.json()
    except AiError:
        raise AiError(f"{host}:{port} is not an Ollama gateway ({path} did not return JSON)",
                      "check the server name and port", code="probe.not_ollama",
                      exit_code=ExitCode.UNAVAILABLE) from None


def _native_api(base_url: str, headers: dict[str, str], host: str, port: int) -> bool:
    """Does the gateway forward Ollama's native API? An empty model name costs nothing: Ollama
    answers 400 "model is required"; a gateway without the native profile answers 403."""
    from aicommon.httpclient import request

    try:
        resp = request("POST", base_url + "/api/chat", json_body={"model": ""},
                       headers=headers, timeout=(3.05, 15.0), what=f"{host}:{port}")
    except AiError:
        return False
    return resp.status == 400


def probe(host: str, port: int, token: str, with_details: bool = True) -> Probe:
    blocked = local_tailscale_problem(host)
    if blocked is not None:
        raise blocked
    hostpart = f"[{host}]" if ":" in host else host
    base = f"http://{hostpart}:{port}"
    headers = {"Authorization": f"Bearer {token or 'ollama'}"}
    version_doc = _get(base, "/api/version", headers, host, port)
    if not isinstance(version_doc, dict) or not isinstance(version_doc.get("version"), str):
        raise AiError(f"{host}:{port} is not an Ollama gateway (no version in /api/version)",
                      "check the server name and port", code="probe.not_ollama",
                      exit_code=ExitCode.UNAVAILABLE)
    models_doc = _get(base, "/v1/models", headers, host, port)
    models = [str(m.get("id")) for m in (models_doc.get("data") or []) if isinstance(m, dict)]
    result = Probe(base, version_doc["version"], models)
    if with_details:
        for name in models:
            show = _get(base, "/api/show", headers, host, port, body={"model": name})
            result.capabilities[name] = [str(c) for c in show.get("capabilities") or []]
            info = show.get("model_info") or {}
            arch = info.get("general.architecture")
            ctx = info.get(f"{arch}.context_length") if arch else None
            if isinstance(ctx, int):
                result.trained_context[name] = ctx
        result.native_api = _native_api(base, headers, host, port)
        ps = _get(base, "/api/ps", headers, host, port)
        for m in ps.get("models") or []:
            if isinstance(m, dict) and isinstance(m.get("context_length"), int):
                result.loaded_context[str(m.get("name"))] = m["context_length"]
    return result


SERVER_DEFAULT_CONTEXT = 65536  # ai-server install's default OLLAMA_CONTEXT_LENGTH


def tools_models(p: Probe) -> list[str]:
    return [m for m in p.models if "tools" in p.capabilities.get(m, [])]


def chat_models(p: Probe) -> list[str]:
    """Models that can be the chat model: `completion` capability (all of them when the
    capabilities are unknown, e.g. an Ollama too old to report them)."""
    if not p.capabilities:
        return list(p.models)
    return [m for m in p.models if "completion" in p.capabilities.get(m, [])]


def context_for(p: Probe, model: str) -> tuple[int, str]:
    """The context length clients will get, and how it was found."""
    if model in p.loaded_context:
        return p.loaded_context[model], "loaded on the server"
    trained = p.trained_context.get(model)
    if trained:
        return min(trained, SERVER_DEFAULT_CONTEXT), "ai-server's default, capped by the model"
    return SERVER_DEFAULT_CONTEXT, "ai-server's default"
