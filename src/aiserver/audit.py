"""`ai-server audit`: prove the three layers on the live system (exit 3 on any finding).

1. Ollama's port listens on loopback only, and nothing answers as Ollama on a Tailscale
   address; 2. the gateway listens only where the settings say and refuses everything outside
   the allowlist (probes derived from the allowlist table) and enforces tokens; 3. with
   Tailscale in userspace networking, nothing of ours but the gateway listens where tailscaled
   delivers (127.0.0.1); plus the HAProxy version.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aicommon import tailscale
from aicommon.errors import AiError
from aiserver import allowlist, listeners, preflight
from aiserver.settings import Settings, split_hostport

ENCODED_SAMPLES = ("/api/%70ull", "/api/%2570ull", "/v1/messages/../../api/pull",
                   "//api/pull", "/api\\pull", "/API/PULL", "/api/pull/", "/api/pull;x=1",
                   "/v1/models/..%2f..%2fapi%2fpull")


@dataclass(frozen=True)
class Finding:
    check: str
    ok: bool
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "ok": self.ok, "detail": self.detail, "fix": self.fix}


def _is_loopback(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return addr == "localhost"


def raw_request(host: str, port: int, method: str, path: str, headers: dict[str, str] | None
                = None, timeout: float = 2.0, host_header: str | None = None
                ) -> tuple[int, bytes] | None:
    """One request on a fresh connection; (status, body) or None if refused/unreachable.
    Host names the address and port connected to (what a client of the gateway sends)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if host_header is None:
        host_header = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host_header}", "Connection: close",
             *(f"{k}: {v}" for k, v in (headers or {}).items())]
    if method == "POST":
        lines.append("Content-Length: 2")
    payload = ("\r\n".join(lines) + "\r\n\r\n" + ("{}" if method == "POST" else "")).encode()
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect((host, port))
            s.sendall(payload)
            data = b""
            while len(data) < 65536:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        return int(head.split(b" ", 2)[1]), body
    except (IndexError, ValueError):
        return 0, body


def _from_gateway(body: bytes) -> bool:
    """A refusal of the gateway, in either dialect (Ollama's native shape on /api/*)."""
    try:
        doc = json.loads(body)
        err = doc["error"]
        source = err["source"] if isinstance(err, dict) else doc["source"]
        return bool(source == "ai-server gateway")
    except (ValueError, KeyError, TypeError):
        return False


def _error_code(body: bytes) -> str:
    try:
        doc = json.loads(body)
        err = doc["error"]
        return str(err["code"] if isinstance(err, dict) else doc["code"])
    except (ValueError, KeyError, TypeError):
        return ""


def audit_browser_and_host(probe_host: str, port: int) -> list[Finding]:
    """DNS rebinding: a foreign Host must get 421, and a browser request (Origin) 403."""
    found = []
    foreign = raw_request(probe_host, port, "GET", "/api/version",
                          host_header="rebound.audit.invalid")
    ok = foreign is not None and foreign[0] == 421 and _error_code(foreign[1]) == \
        "misdirected_request"
    found.append(Finding("gateway-host", ok, "a foreign Host is refused (421)" if ok else
                         f"a request with a foreign Host got {foreign[0] if foreign else 'none'}",
                         "" if ok else "reload the gateway: `ai-server reload`"))
    origin = raw_request(probe_host, port, "GET", "/api/version",
                         headers={"Origin": "https://rebound.audit.invalid"})
    ok = origin is not None and origin[0] == 403 and _error_code(origin[1]) == \
        "browser_request"
    found.append(Finding("gateway-browser", ok, "a browser request (Origin) is refused (403)"
                         if ok else "a request with an Origin header got "
                         f"{origin[0] if origin else 'no answer'}",
                         "" if ok else "reload the gateway: `ai-server reload`"))
    return found


def audit_admin_socket(settings: Settings) -> Finding:
    """The runtime API (admin level: it can add tokens) must be a private UNIX socket."""
    import stat

    from aiserver.gateway.paths import stats_socket

    path = stats_socket(settings)
    try:
        st = path.stat()
    except OSError:
        return Finding("admin-socket", False, f"no admin socket at {path}",
                       "start the gateway: `ai-server install`")
    mode = stat.S_IMODE(st.st_mode)
    if not stat.S_ISSOCK(st.st_mode) or mode != 0o600:
        kind = "a UNIX socket" if stat.S_ISSOCK(st.st_mode) else "not a socket"
        return Finding("admin-socket", False, f"{path} is {kind} with mode {mode:o}",
                       "reload the gateway (`ai-server reload`); the socket must be mode 600")
    return Finding("admin-socket", True, f"{path} is a UNIX socket, mode 600")


def audit_pool_nodes(settings: Settings) -> list[Finding]:
    """Every remote pool node is itself a gateway: its admin routes must be refused too."""
    if not settings.pool.nodes:
        return []
    from aiserver.gateway import nodes, pool

    tokens = nodes.read_tokens(settings)
    found = []
    for node in settings.pool.nodes:
        if not pool.relayed(node, tokens):
            continue  # this machine's own Ollama: covered by the loopback checks
        host, port = split_hostport(node, "pool node")
        headers = {"Authorization": f"Bearer {tokens[node]}"} if node in tokens else {}
        leaked = []
        reachable = True
        for method, path in (("POST", "/api/pull"), ("DELETE", "/api/delete"),
                             ("POST", "/api/create"), ("GET", "/api/%70s")):
            answer = raw_request(host, port, method, path, headers)
            if answer is None:
                reachable = False
                break
            if answer[0] not in (401, 403) or not _from_gateway(answer[1]):
                leaked.append(f"{method} {path} → {answer[0]}")
        if not reachable:
            found.append(Finding("pool-node", False, f"pool node {node} is unreachable",
                                 "check the node (`ai-server pool status`)"))
        elif leaked:
            found.append(Finding("pool-node", False, f"pool node {node} is not a gateway that "
                                 "refuses admin routes: " + "; ".join(leaked),
                                 "run ai-server on that machine and list its gateway here"))
        else:
            found.append(Finding("pool-node", True, f"pool node {node} refuses admin routes"))
    return found


def audit_services(settings: Settings) -> list[Finding]:
    """The loaded service definitions (and running environments) against the settings: a
    `brew services restart` or a hand edit must not silently change what runs."""
    from aicommon.paths import server_paths
    from aiserver.install import service_report

    cfg = (Path(settings.source) if settings.source not in ("", "defaults")
           else server_paths().config_file)
    found = []
    try:
        report = service_report(settings, cfg)
    except AiError as err:
        return [Finding("services", False, err.message, err.hint or "")]
    for key, s in report.items():
        if s["differences"]:
            found.append(Finding(f"{key}-service", False, "; ".join(s["differences"]),
                                 "run `ai-server install` (restores what is loaded)"))
        elif s["running"]:
            found.append(Finding(f"{key}-service", True,
                                 f"loaded {s['definition']} matches the settings"))
    return found


def _probe_tailscale_addresses(ts_addrs: list[str], up_port: int) -> list[Finding]:
    """With a TUN device, this machine's own Tailscale addresses route locally: probe them."""
    found = []
    for addr in ts_addrs:
        answer = raw_request(addr, up_port, "GET", "/api/status", timeout=1.0)
        if answer is None:
            found.append(Finding("ollama-unreachable", True,
                                 f"{addr}:{up_port} refuses connections"))
        elif _from_gateway(answer[1]):
            found.append(Finding("ollama-unreachable", True,
                                 f"{addr}:{up_port} is the gateway, not Ollama"))
        else:
            found.append(Finding("ollama-unreachable", False,
                                 f"{addr}:{up_port} answered HTTP {answer[0]} without going "
                                 "through the gateway", "bind Ollama to 127.0.0.1 only"))
    return found


def _where(socks: list[listeners.Listener]) -> str:
    return ", ".join(f"{s.address}:{s.port} ({s.process or '?'})" for s in socks)


def userspace_findings(settings: Settings, socks: list[listeners.Listener]) -> list[Finding]:
    """Tailscale in userspace networking: reason from what listens on 127.0.0.1.

    tailscaled delivers a peer's connection to <tailscale-ip>:P as a local connection to
    127.0.0.1:P for every port P the tailnet policy allows (wgengine/netstack/netstack.go,
    acceptTCP). A probe of this machine's own 100.x address proves nothing in this mode (no OS
    route: it never reaches tailscaled), so every socket that accepts 127.0.0.1 counts as
    reachable by allowed peers. Ollama among them fails the audit.
    """
    g = settings.gateway
    _, up_port = split_hostport(g.upstream)
    reachable = [s for s in socks if s.address == "127.0.0.1" or s.wildcard]
    from aiserver.gateway.pool import is_local

    ollama_ports = {up_port, *(split_hostport(n, "pool node")[1] for n in settings.pool.nodes
                               if is_local(n))}
    ollama = [s for s in reachable if s.port in ollama_ports and s.process != "haproxy"]
    answer = raw_request("127.0.0.1", up_port, "GET", "/api/status", timeout=1.0)
    if answer is not None and not _from_gateway(answer[1]) and not ollama:
        ollama = [listeners.Listener("127.0.0.1", up_port, "answers without the gateway", None)]
    rest = [s for s in reachable if s not in ollama
            and not (s.process == "haproxy" and s.port == g.port)]
    ours = [s for s in rest if s.process == "haproxy" and s.port == g.metrics_port]
    # Ollama's model runners (llama-server, or `ollama runner` in older releases) listen on
    # 127.0.0.1:<ephemeral port> while a model is loaded (llm/llama_server.go: --host 127.0.0.1).
    runners = [s for s in rest if s.process == "ollama" or s.process.startswith("llama-")]
    others = [s for s in rest if s not in ours and s not in runners]
    found = []
    if ollama:
        found.append(Finding(
            "userspace-ollama", False,
            "Tailscale userspace networking delivers tailnet connections to 127.0.0.1:<port>, "
            f"and Ollama listens there: {_where(ollama)} — peers reach it without the gateway",
            f"run `ai-server install` (it moves Ollama to "
            f"{preflight.userspace_upstream(g.upstream)}, where tailscaled never delivers)"))
    else:
        found.append(Finding("userspace-ollama", True, "userspace networking: Ollama does not "
                             f"listen on 127.0.0.1 (upstream {g.upstream})"))
    if ours:
        found.append(Finding("userspace-gateway", False, "userspace networking: the gateway's "
                             f"metrics listen on 127.0.0.1, where peers reach them: "
                             f"{_where(ours)}", "reload the gateway (`ai-server reload`): with "
                             "Ollama on ::1 the metrics move there too"))
    if runners:
        found.append(Finding("userspace-others", True,
                             "userspace networking: Ollama's model runners listen on 127.0.0.1 "
                             f"({_where(runners)}): peers reach them if the tailnet policy "
                             "allows their ports",
                             "remove the default allow-all rule; grant only the gateway port "
                             "(`ai-server acl`)"))
    if others:
        found.append(Finding("userspace-others", True,
                             "userspace networking: other services on 127.0.0.1 are reachable "
                             "by every peer the tailnet policy allows on their port: "
                             f"{_where(others)}",
                             "grant only the gateway port in the tailnet policy (`ai-server acl`)"))
    return found


def audit(settings: Settings) -> dict[str, Any]:
    started = time.monotonic()
    findings: list[Finding] = []
    g = settings.gateway
    _, up_port = split_hostport(g.upstream)
    try:
        ts = tailscale.status()
        ts_addrs = list(ts.addresses)
        tun = ts.tun
    except AiError as err:
        ts_addrs, tun = [], True
        findings.append(Finding("tailscale", False, err.message, err.hint or ""))
    from aiserver.gateway.control import resolve_listen

    try:
        gw_addrs = list(resolve_listen(settings, 0).addresses)
    except AiError as err:
        gw_addrs = []
        findings.append(Finding("gateway-addresses", False, err.message, err.hint or ""))

    tool, socks = listeners.listening()
    on_up = [s for s in socks if s.port == up_port and s.process != "haproxy"]
    exposed = [s for s in on_up if not _is_loopback(s.address)]
    if not on_up:
        findings.append(Finding("ollama-loopback", False,
                                f"nothing listens on Ollama's port {up_port} ({tool})",
                                "start Ollama: `ai-server install`"))
    elif exposed:
        where = ", ".join(f"{s.address}:{s.port} ({s.process or '?'})" for s in exposed)
        findings.append(Finding("ollama-loopback", False, f"Ollama's port is open on {where}",
                                "unset OLLAMA_HOST in Ollama's environment (or set it to "
                                "127.0.0.1:11434) and restart it; `ai-server install`"))
    else:
        findings.append(Finding("ollama-loopback", True,
                                f"port {up_port} listens on loopback only ({tool})"))

    gw_socks = [s for s in socks if s.process == "haproxy" and s.port == g.port]
    allowed = set(gw_addrs)
    stray = [s for s in gw_socks if s.wildcard or s.address not in allowed]
    if not gw_socks:
        findings.append(Finding("gateway-listen", False, f"no HAProxy listens on port {g.port}",
                                "start the gateway: `ai-server install`"))
    elif stray:
        where = ", ".join(f"{s.address}:{s.port}" for s in stray)
        findings.append(Finding("gateway-listen", False, f"the gateway also listens on {where}",
                                "remove the address from gateway.listen; never use wildcards"))
    else:
        findings.append(Finding("gateway-listen", True, "gateway listens on "
                                + ", ".join(sorted({s.address for s in gw_socks}))))

    if tun:
        findings += _probe_tailscale_addresses(ts_addrs, up_port)
    else:
        findings += userspace_findings(settings, socks)

    if gw_addrs:
        probe_host = gw_addrs[0]
        probes = [(m, p.replace("{digest}", "sha256-0").replace("{key}", "k"))
                  for m, p in allowlist.NEVER]
        probes += [("POST", p) for p in ("/api/chat", "/api/generate")
                   if not allowlist.is_allowed("POST", p, g.profiles)]
        probes += [("GET", p) for p in ENCODED_SAMPLES]
        leaked = []
        unreachable = False
        for method, path in probes:
            answer = raw_request(probe_host, g.port, method, path)
            if answer is None:
                unreachable = True
                break
            if answer[0] not in (401, 403) or (answer[0] == 403 and method != "HEAD"
                                               and not _from_gateway(answer[1])):
                leaked.append(f"{method} {path} → {answer[0]}")
        if unreachable:
            findings.append(Finding("gateway-refusals", False,
                                    f"cannot reach the gateway on {probe_host}:{g.port}",
                                    "start the gateway: `ai-server install`"))
        elif leaked:
            findings.append(Finding("gateway-refusals", False, "not refused: "
                                    + "; ".join(leaked[:5]), "reinstall: `ai-server install`"))
        else:
            findings.append(Finding("gateway-refusals", True,
                                    f"{len(probes)} admin/encoded probes refused"))
        findings += audit_browser_and_host(probe_host, g.port)
        findings.append(audit_admin_socket(settings))
        if g.tokens:
            answer = raw_request(probe_host, g.port, "GET", "/api/version")
            ok = answer is not None and answer[0] == 401
            got = answer[0] if answer else "no answer"
            findings.append(Finding("tokens", ok, "requests without a token get 401" if ok else
                                    f"a request without a token got {got}",
                                    "" if ok else "reload the gateway: `ai-server reload`"))

    findings += audit_services(settings)
    findings += audit_pool_nodes(settings)
    hp = preflight.check_haproxy()
    if hp.status != preflight.WARN:  # a warning is reported once, under "warnings"
        findings.append(Finding("haproxy-version", hp.status == preflight.PASS, hp.detail,
                                hp.fix))
    bad = [f for f in findings if not f.ok]
    warnings = [hp.detail] if hp.status == preflight.WARN else []
    warnings += [f.detail for f in findings if f.ok and f.check == "userspace-others"]
    return {"ok": not bad, "findings": [f.as_dict() for f in findings],
            "seconds": round(time.monotonic() - started, 3), "listeners_from": tool,
            "warnings": warnings}
