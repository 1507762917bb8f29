"""Render HAProxy's config and files from the settings (pure: settings + resolved names +
target dir → files). `control` writes, validates, runs and reloads them.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aicommon import __version__, resources
from aicommon.errors import AiError, ExitCode
from aiserver.allowlist import Entry, entries_for
from aiserver.gateway.pool import CHECK, UPSTREAM_DOWN, cfg_path, render_pool
from aiserver.settings import Settings, duration_ms, split_hostport

# Static pages: also what HAProxy's HTTP parser sends before a request exists (400, 408 for
# headers that never complete, its own 500), where a reply cannot be computed.
ERRORFILE_CODES = (400, 401, 403, 404, 405, 408, 413, 429, 500, 501)
# Only ever answered within a request, so in the caller's dialect (see dialect_error_map)
DIALECT_ERROR_CODES = (502, 503, 504)
TOKEN_RE = re.compile(r"^[A-Za-z0-9._~+/=-]{16,256}$")
DEVICE_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
HOST_NAME_RE = re.compile(r"(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
                          r"(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")
SOCKET_PATH_MAX = 103  # sun_path is 104 bytes on macOS (108 on Linux), NUL included

# One JSON line per request. Strings that can hold client bytes are JSON-escaped into vars.
LOG_FIELDS = (
    ("time", '"%[date,utime(%Y-%m-%dT%H:%M:%SZ)]"'),
    ("client", '"%ci"'),
    ("device", '"%[var(txn.device)]"'),
    ("method", '"%HM"'),
    ("path", '"%[var(txn.path)]"'),
    ("status", "%ST"),
    ("bytes_in", "%U"),
    ("bytes_out", "%B"),
    ("queue_ms", "%Tw"),
    ("ttfb_ms", "%Tr"),
    ("total_ms", "%Ta"),
    ("termination", '"%tsc"'),
    ("node", '"%s"'),
    ("session", '"%[var(txn.session)]"'),
    ("agent", '"%[var(txn.agent)]"'),
    ("auth", '"%[var(txn.auth)]"'),
)


@dataclass(frozen=True)
class RenderedFile:
    relpath: str
    content: str
    mode: int = 0o644


@dataclass(frozen=True)
class Rendered:
    files: tuple[RenderedFile, ...]
    listen: tuple[str, ...]

    @property
    def config(self) -> str:
        return self.file("haproxy.cfg").content

    def file(self, relpath: str) -> RenderedFile:
        return next(f for f in self.files if f.relpath == relpath)


def log_format() -> str:
    return "{" + ",".join(f'"{k}":{v}' for k, v in LOG_FIELDS) + "}"


def _error_body(status: int, message: str | None = None, **extra: str) -> str:
    body = json.loads(resources.read_text(f"haproxy/errors/{status}.json"))
    if message is not None:
        body["error"]["message"] = message
    body["error"].update(extra)
    return json.dumps(body, separators=(",", ":"))


def _native_body(message: str, **extra: str) -> str:
    """Ollama's native error shape: {"error": "<message>"} (extra fields allowed)."""
    return json.dumps({"error": message, **extra, "source": "ai-server gateway"},
                      separators=(",", ":"))


def refusal(status: int, message: str, *, code: str, cond: str = "", unless: str = "",
            lf: bool = False, headers: str = "", **extra: str) -> str:
    """Two `http-request return` lines refusing a request in the caller's dialect: Ollama's
    native shape on /api/* (acl native_api), the Anthropic/OpenAI shape elsewhere.
    `cond` may join terms with `||`; `unless` is an allow condition (refuse when false)."""
    kind = "lf-string" if lf else "string"
    hdr = f"{headers} " if headers else ""
    native = _native_body(message, code=code, **extra)
    other = _error_body(status, message, code=code, **extra)
    if lf:
        native, other = _lf_json_fields(native), _lf_json_fields(other)
    for body in (native, other):
        assert "'" not in body, body  # the bodies sit inside single quotes
    # Each line tests native_api first, so a request evaluates the condition once, not twice.
    if unless:
        native_when = f"unless !native_api || {unless}"
        other_when = f"unless native_api || {unless}"
    else:
        terms = cond.split(" || ")
        native_when = "if " + " || ".join(f"native_api {term}" for term in terms)
        other_when = "if " + " || ".join(f"!native_api {term}" for term in terms)
    head = f"    http-request return status {status} content-type application/json {hdr}{kind}"
    return f"{head} '{native}' {native_when}\n{head} '{other}' {other_when}"


def _lf_json_fields(text: str) -> str:
    """Put log-format expressions into a JSON body built by json.dumps (placeholders)."""
    return (text.replace("@@METHOD@@", "%[method,json(utf8s)]")
            .replace("@@PATH@@", "%[var(txn.path)]")
            .replace("@@HOST@@", "%[var(txn.host)]")
            .replace("@@ORIGIN@@", "%[var(txn.origin)]"))


def _http_errorfile(code: int) -> str:
    body = resources.read_text(f"haproxy/errors/{code}.json")
    reason = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
              405: "Method Not Allowed", 408: "Request Timeout", 413: "Payload Too Large",
              429: "Too Many Requests", 500: "Internal Server Error", 501: "Not Implemented",
              502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}[code]
    retry = "Retry-After: 10\r\n" if code in (429, 503) else ""
    head = (f"HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\n{retry}"
            f"Content-Length: {len(body.encode())}\r\nCache-Control: no-cache\r\n"
            "Connection: close\r\n\r\n")
    return head + body


def dialect_error_map(code: int) -> str:
    """The map of one HAProxy error reply: key `native` (Ollama's {"error": …} shape, for
    /api/*) and `other` (the Anthropic/OpenAI shape), each value one line of JSON."""
    other = json.loads(resources.read_text(f"haproxy/errors/{code}.json"))
    err = other["error"]
    extra = {"retry_after_seconds": "10"} if code == 503 else {}
    err.update(extra)
    native = _native_body(err["message"], code=err["code"], **extra)
    return f"native {native}\nother {json.dumps(other, separators=(',', ':'))}\n"


def http_error_line(code: int, map_path: Path) -> str:
    """The map's path sits in single quotes inside a double-quoted log-format string, where
    HAProxy would expand `$NAME` and unescape backslashes: such paths are refused."""
    if any(c in str(map_path) for c in '"$\\'):
        raise AiError(f"the path {str(map_path)!r} cannot be written into haproxy.cfg (a $, a "
                      "backslash or a double quote)", "use a plain path (AI_SERVER_HOME)",
                      code="gateway.path", exit_code=ExitCode.CONFIG)
    retry = "hdr Retry-After 10 " if code in (429, 503) else ""
    return (f"    http-error status {code} content-type application/json {retry}"
            f"hdr Cache-Control no-cache lf-string "
            f"\"%[var(txn.dialect,other),map({cfg_path(map_path)})]\"")


def bind_address(addr: str, port: int) -> str:
    ip = ipaddress.ip_address(addr)
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def bind_line(addr: str, port: int) -> str:
    return f"    bind {bind_address(addr, port)}"


def accepted_hosts(listen: list[str], names: list[str], extra: tuple[str, ...]) -> list[str]:
    """The names this gateway answers to (Host / :authority, without port): its listen
    addresses (IPv6 in brackets), this machine's tailnet names, the extra `hosts` setting,
    and loopback names only when the gateway itself listens on loopback."""
    found: list[str] = []
    for addr in listen:
        ip = ipaddress.ip_address(addr)
        found.append(f"[{ip}]" if ip.version == 6 else str(ip))
    if any(ipaddress.ip_address(a).is_loopback for a in listen):
        found += ["localhost", "127.0.0.1", "[::1]"]
    for name in [*names, *extra]:
        name = name.lower().rstrip(".")
        try:
            ip = ipaddress.ip_address(name.strip("[]"))
            found.append(f"[{ip}]" if ip.version == 6 else str(ip))
        except ValueError:
            if HOST_NAME_RE.fullmatch(name):
                found.append(name)
    return list(dict.fromkeys(found))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def host_variants(hosts: list[str], port: int) -> list[str]:
    """Each accepted name as a client may spell it: with or without `:port`, and a name
    (not an address) with a trailing dot. Compared after lower-casing."""
    out: list[str] = []
    for h in hosts:
        spellings = [h] if _is_ip(h.strip("[]")) else [h, h + "."]
        out += [v for s in spellings for v in (s, f"{s}:{port}")]
    return out


def host_rules(hosts: list[str], port: int, origins: tuple[str, ...]) -> str:
    """421 for a Host this gateway does not answer to (Ollama's DNS-rebinding defence, which
    the Host rewrite would otherwise undo); 403 for browser requests (Origin or Sec-Fetch-*)
    unless their exact origin is allowed, whose CORS preflights are then answered."""
    lines = [
        "    # Host / :authority must name this gateway: the Host rewrite for Ollama would",
        "    # otherwise undo its DNS-rebinding defence.",
        "    http-request set-var(txn.host) req.fhdr(host),bytes(0,256),json(utf8s)",
        f"    acl host_ok req.fhdr(host),lower -m str {' '.join(host_variants(hosts, port))}",
        "    acl host_one req.hdr_cnt(host) eq 1",
        refusal(421, "this gateway does not answer to the Host @@HOST@@", lf=True,
                code="misdirected_request", cond="!host_ok || !host_one",
                host="@@HOST@@", accepted=", ".join(f"{h}:{port}" for h in hosts),
                hint="use the MagicDNS name or Tailscale address of the server, as `ai-client "
                     "setup` writes it"),
        "    # Browsers are not clients of this gateway unless their origin is allowed.",
        "    http-request set-var(txn.origin) req.fhdr(origin),bytes(0,256),json(utf8s)",
        "    acl browser req.hdr(origin) -m found",
        "    acl browser req.hdr_names -m reg -i (^|,)sec-fetch-",
    ]
    allowed = ""
    if origins:
        lines.append(f"    acl origin_allowed req.fhdr(origin) -m str {' '.join(origins)}")
        allowed = " !origin_allowed"
    lines.append(refusal(
        403, "browser requests are refused by the ai-server gateway (origin @@ORIGIN@@)",
        lf=True, code="browser_request", cond=f"browser{allowed}", origin="@@ORIGIN@@",
        hint="list the origin in [gateway] allow_origins on the server to allow a web UI"))
    if origins:
        lines += [
            "    # CORS for the allowed origins only.",
            "    http-request set-var(txn.cors) req.fhdr(origin) if origin_allowed",
            "    http-request return status 204 hdr Access-Control-Allow-Origin %[var(txn.cors)] "
            "hdr Access-Control-Allow-Methods \"GET, HEAD, POST\" hdr Access-Control-Allow-Headers "
            "%[req.fhdr(access-control-request-headers)] hdr Access-Control-Max-Age 600 "
            "hdr Vary Origin if METH_OPTIONS origin_allowed "
            "{ req.hdr(access-control-request-method) -m found }",
            "    http-after-response set-header Access-Control-Allow-Origin %[var(txn.cors)] "
            "if { var(txn.cors) -m found }",
            "    http-after-response add-header Vary Origin if { var(txn.cors) -m found }",
        ]
    return "\n".join(lines)


def allowlist_block(entries: list[Entry], prefix: str = "") -> tuple[str, str]:
    """ACL lines and the condition that is true for an allowlisted request.

    With a prefix, only the path ACLs are declared (under prefixed names): the method ACLs
    of the full allowlist are reused.
    """
    methods = sorted({e.method for e in entries})
    lines = [] if prefix else [f"    acl m_{m.lower()} method {m}" for m in methods]
    conds: list[str] = []
    for m in methods:
        exact = [e.path for e in entries if e.method == m and e.regex is None]
        regexes = [e for e in entries if e.method == m and e.regex is not None]
        if exact:
            name = f"{prefix}{m.lower()}_paths"
            lines.append(f"    acl {name} path -m str {' '.join(exact)}")
            conds.append(f"m_{m.lower()} {name}")
        for i, e in enumerate(regexes):
            name = f"{prefix}{m.lower()}_pattern{i}"
            lines.append(f"    acl {name} path -m reg {e.regex}")
            conds.append(f"m_{m.lower()} {name}")
    return "\n".join(lines), " || ".join(conds)


def auth_block(map_path: Path) -> str:
    """Per-device tokens: Bearer or x-api-key, looked up in a `<token> <device>` map."""
    return "\n".join([
        "    # Per-device tokens (layer 4): the device name goes into the access log.",
        "    acl auth_bearer req.fhdr(authorization) -m beg -i \"bearer \"",
        "    http-request set-var(txn.token) req.fhdr(authorization),word(2,' ') if auth_bearer",
        "    http-request set-var(txn.token) req.fhdr(x-api-key) if !auth_bearer "
        "{ req.fhdr(x-api-key) -m found }",
        f"    http-request set-var(txn.device) var(txn.token),map({cfg_path(map_path)})"
        " if { var(txn.token) -m found }",
        "    acl auth_device var(txn.device) -m found",
        "    acl auth_ambiguous req.hdr_cnt(authorization) gt 1",
        "    acl auth_ambiguous req.hdr_cnt(x-api-key) gt 1",
        "    acl auth_sent req.hdr(authorization) -m found",
        "    acl auth_sent req.hdr(x-api-key) -m found",
        "    # The access log tells a missing token from a rejected one (clients often show",
        "    # only \"Not logged in\").",
        "    http-request set-var(txn.auth) str(missing) if !auth_sent",
        "    http-request set-var(txn.auth) str(rejected) if auth_sent !auth_device",
        "    http-request set-var(txn.auth) str(rejected) if auth_ambiguous",
        "    http-request set-var(txn.auth) str(ok) if auth_device !auth_ambiguous",
        refusal(401, "a device token is required: send Authorization: Bearer <token> or "
                "x-api-key: <token>", code="token_required", cond="!auth_sent",
                headers="hdr WWW-Authenticate Bearer", hint="ask the server owner for a token"),
        refusal(401, "the device token was not accepted (unknown or revoked, or sent twice)",
                code="token_rejected", cond="auth_ambiguous || !auth_device",
                headers="hdr WWW-Authenticate Bearer",
                hint="check the token with the server owner (`ai-server tokens list`)"),
    ])


def parse_token_map(text: str, source: str) -> list[tuple[str, str]]:
    """Validate `<token> <device>` lines; comments and blank lines allowed."""
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or not TOKEN_RE.match(parts[0]) or not DEVICE_RE.match(parts[1]):
            raise AiError(f"{source} line {n} is not '<token> <device>'",
                          "tokens: 16+ chars of [A-Za-z0-9._~+/=-]; device: [A-Za-z0-9._-]",
                          code="tokens.invalid", exit_code=ExitCode.CONFIG)
        if parts[0] in seen:
            raise AiError(f"{source} line {n} repeats a token", "give each device its own token",
                          code="tokens.duplicate", exit_code=ExitCode.CONFIG)
        seen.add(parts[0])
        pairs.append((parts[0], parts[1]))
    return pairs


# Buffers: a whole typical agent request fits (tune.bufsize); the request line and headers
# keep the limit a default 16 KB buffer gave them (16384 - tune.maxrewrite).
TUNE_BUFSIZE = 1 << 20
# HAProxy >= 2.8: each thread keeps up to this much freed memory for reuse, room for the
# buffers of a few requests (a request in flight uses several).
MEMORY_HOT_SIZE = 4 * TUNE_BUFSIZE
MAX_HEAD_BYTES = 15360
# Bodies up to this size are read whole before connecting (bufsize minus the head, the
# rewrite reserve and HTX block overhead, with margin); larger ones use ollama_bulk.
BUFFERED_BODY_BYTES = 960 * 1024
META_CONCURRENCY = 4  # at least this many slots for the cheap read-only routes (ollama_meta)


def _backend(name: str, why: str, settings: Settings, server: str, maxconn: int) -> list[str]:
    g, lim = settings.gateway, settings.limits
    return [
        f"backend {name}",
        f"    # {why}",
        "    # A client that hangs up frees its queue slot and makes Ollama stop generating.",
        "    option abortonclose",
        "    # A new client connection's first request may use an idle connection to Ollama, as",
        "    # nginx's keep-alive pool does: one trusted server, nothing tied to a connection, and",
        "    # Ollama never closes an idle connection itself (its http.Server sets no timeouts).",
        "    # (Pool nodes are other gateways, which do: their backends keep the default.)",
        "    http-reuse always",
        "    # Ollama on loopback answers 403 to any other Host (e.g. a MagicDNS name).",
        f"    http-request set-header Host {g.upstream}",
        f"    server ollama {g.upstream} {server} maxconn {maxconn} maxqueue {lim.queue_size}",
        ""]


def meta_concurrency(settings: Settings) -> int:
    # as many as inference has (a burst of model lists is not throttled below it), never < 4
    return max(META_CONCURRENCY, settings.limits.upstream_concurrency)


def bulk_concurrency(settings: Settings) -> int:
    return max(1, settings.limits.upstream_concurrency // 2)


def single_backend(settings: Settings) -> str:
    lim = settings.limits
    main = _backend("ollama", "Inference: upstream_concurrency slots, then HAProxy's queue.",
                    settings, CHECK, lim.upstream_concurrency)
    main[2:2] = ["    option httpchk GET /api/version", "    http-check expect status 200"]
    return "\n".join([
        *main,
        *_backend("ollama_meta", "Cheap read-only routes: their own slots, never queued "
                  "behind inference.", settings, "track ollama/ollama", meta_concurrency(settings)),
        *_backend("ollama_bulk", "Bodies larger than the buffer (they stream in after the "
                  "connect): their own slots.", settings, "track ollama/ollama",
                  bulk_concurrency(settings))])


def target_rule() -> str:
    """Absolute-form targets with an empty or user-info authority (http:///x, http://a@/x, an
    empty HTTP/2 :authority) are client errors, said before the Host check (HAProxy would fail
    rewriting Host: 500)."""
    return refusal(400, "the request target has an empty authority or one with user info",
                   code="bad_target",
                   cond="{ url -m reg ^[A-Za-z][A-Za-z0-9+.-]*://([/?\\#]|$|[^/?\\#]*@) }")


def head_rules() -> str:
    """The request line and headers stay within what a 16 KB buffer held (bufsize is larger)."""
    return "\n".join([
        refusal(414, f"the request target is longer than {MAX_HEAD_BYTES} bytes",
                code="uri_too_long", cond=f"{{ url,length gt {MAX_HEAD_BYTES} }}"),
        refusal(431, f"the request headers are larger than {MAX_HEAD_BYTES} bytes",
                code="headers_too_large", cond=f"{{ req.hdrs,length gt {MAX_HEAD_BYTES} }}")])


def body_rules(max_body_bytes: int, http_request_timeout: str) -> str:
    """Every body obeys the limits, on every method and protocol, refused in the caller's
    dialect; then the body is read before the request may take an Ollama slot."""
    no_body = "a GET or HEAD request must not carry a body"
    too_large = f"the request body is larger than {max_body_bytes} bytes"
    length_required = "chunked request bodies are not accepted; send Content-Length"
    return "\n".join([
        "    # Bodies. A GET or HEAD carries none (HTTP/2 DATA frames without content-length are",
        "    # caught once the body is read, below).",
        "    acl get_or_head method GET HEAD",
        refusal(400, no_body, code="body_not_allowed",
                cond="get_or_head { req.hdr(transfer-encoding) -m found }"),
        refusal(400, no_body, code="body_not_allowed", cond="get_or_head "
                "{ req.hdr(content-length) -m found } !{ req.hdr_val(content-length) eq 0 }"),
        "    # Refuse chunked uploads (their size is unknown up front) and oversized ones.",
        refusal(411, length_required, code="length_required",
                cond="{ req.hdr(transfer-encoding) -m found }"),
        "    # Every exposed POST carries a JSON body: without Content-Length (HTTP/2 may omit",
        "    # it) its size is unknown up front, so it is refused like a chunked upload.",
        refusal(411, length_required, code="length_required",
                cond="METH_POST !{ req.hdr(content-length) -m found }"),
        "    # hdr_val is a 32-bit integer on 2.6, so a value longer than the limit's digits is",
        "    # refused by its length first (max_body_bytes is capped at 9 digits).",
        refusal(413, too_large, code="payload_too_large",
                cond=f"{{ req.fhdr(content-length),length gt {len(str(max_body_bytes))} }}"),
        refusal(413, too_large, code="payload_too_large",
                cond=f"{{ req.hdr_val(content-length) gt {max_body_bytes} }}"),
        "    # A slow client must not hold an Ollama slot: read the body (up to the buffer) under",
        "    # timeout http-request before connecting, else 408. Bodies beyond the buffer stream",
        "    # on to their own backend (see the routing below), whose slots are not the main ones.",
        f"    http-request wait-for-body time {http_request_timeout}",
        refusal(400, no_body, code="body_not_allowed", cond="get_or_head { req.body_len gt 0 }"),
    ])


def single_routing(entries: list[Entry], queue_size: int) -> str:
    """Cheap read-only routes to their own backend, bodies beyond the buffer to another, the
    rest to the inference backend. A full inference queue is said at once (HAProxy would park
    the request in the backend's unbounded queue until `timeout queue`), and only to requests
    bound for that backend: a model list still answers while inference is queued."""
    acls, cheap = allowlist_block([e for e in entries if e.cheap], prefix="cheap_")
    return "\n".join([
        acls,
        f"    http-request set-var(txn.route) str(meta) if {cheap}",
        "    http-request set-var(txn.route) str(bulk) if !{ var(txn.route) -m found } "
        f"{{ req.hdr_val(content-length) gt {BUFFERED_BODY_BYTES} }}",
        refusal(503, f"every Ollama slot is busy and the queue of {queue_size} is full; retry "
                     "later", code="queue_full", headers="hdr Retry-After 10",
                cond=f"!{{ var(txn.route) -m found }} {{ queue(ollama) ge {queue_size} }}",
                retry_after_seconds="10"),
        "    use_backend ollama_meta if { var(txn.route) -m str meta }",
        "    use_backend ollama_bulk if { var(txn.route) -m str bulk }",
        "    default_backend ollama"])


def render(settings: Settings, listen: list[str], target_dir: Path, *,
           host_names: list[str] | None = None,
           token_map: str | None = None, stats_socket: Path | None = None,
           pool_models: dict[str, list[dict[str, Any]]] | None = None,
           pool_tokens: dict[str, str] | None = None,
           pool_addresses: dict[str, str | None] | None = None) -> Rendered:
    """Everything HAProxy needs, as files relative to target_dir (which the config names)."""
    g, lim, t = settings.gateway, settings.limits, settings.timeouts
    if not listen:
        raise AiError("the gateway has no address to listen on",
                      "start Tailscale, or list explicit addresses in gateway.listen",
                      code="gateway.no_address", exit_code=ExitCode.UNAVAILABLE)
    target_dir = target_dir.absolute()
    socket_path = stats_socket or target_dir / "admin.sock"
    if len(str(socket_path)) > SOCKET_PATH_MAX:
        raise AiError(f"stats socket path {socket_path} is too long for a Unix socket",
                      "set gateway.stats_socket to a shorter path", code="gateway.socket_path",
                      exit_code=ExitCode.CONFIG)
    files: list[RenderedFile] = []
    errorfiles = []
    for code in ERRORFILE_CODES:
        rel = f"errors/{code}.http"
        files.append(RenderedFile(rel, _http_errorfile(code)))
        errorfiles.append(f"    errorfile {code} {cfg_path(target_dir / rel)}")
    http_errors = []
    for code in DIALECT_ERROR_CODES:
        rel = f"errors/{code}.map"
        files.append(RenderedFile(rel, dialect_error_map(code)))
        http_errors.append(http_error_line(code, target_dir / rel))
    auth = ""
    if g.tokens:
        pairs = parse_token_map(token_map or "", "the token map")
        files.append(RenderedFile("tokens.map", "".join(f"{tok} {dev}\n" for tok, dev in pairs),
                                  0o600))
        auth = auth_block(target_dir / "tokens.map") + "\n"
    acls, allow = allowlist_block(entries_for(g.profiles))
    if settings.pool.nodes:
        pooled = render_pool(settings, target_dir, socket_path.parent, pool_models or {},
                             pool_tokens or {}, pool_addresses or {})
        backends, routing = pooled.backends, pooled.routing
        files += [RenderedFile(rel, text, 0o644) for rel, text in pooled.files]
    else:
        backends = single_backend(settings)
        routing = single_routing(entries_for(g.profiles), lim.queue_size)
    values = {
        "version": __version__,
        # a comment: anything unprintable in the settings file's path is shown as '?'
        "settings_source": "".join(c if c.isprintable() else "?" for c in settings.source),
        "global_maxconn": str(lim.max_connections + 64),
        "stats_socket": cfg_path(socket_path),
        "hard_stop_after": t.hard_stop_after,
        "timeout_connect": t.connect,
        "timeout_client": t.client,
        "timeout_server": t.server,
        "timeout_http_request": t.http_request,
        "tune_bufsize": str(TUNE_BUFSIZE),
        "memory_hot_size": str(MEMORY_HOT_SIZE),
        "target_rule": target_rule(),
        "head_rules": head_rules(),
        "body_rules": body_rules(lim.max_body_bytes, t.http_request),
        "timeout_keep_alive": t.keep_alive,
        "timeout_queue": t.queue,
        "errorfiles": "\n".join(errorfiles),
        "http_errors": "\n".join(http_errors),
        "binds": "\n".join(bind_line(a, g.port) for a in listen),
        "max_connections": str(lim.max_connections),
        "log_format": log_format(),
        "hard_connection_cap": str(lim.per_source_connections * 2),
        "per_source_connections": str(lim.per_source_connections),
        "per_source_requests": str(lim.per_source_requests_per_10s),
        "host_rules": host_rules(accepted_hosts(listen, host_names or [], g.hosts), g.port,
                                 g.allow_origins),
        "limit_rules": "\n".join([
            refusal(429, "too many open connections from this address",
                    code="too_many_requests", headers="hdr Retry-After 10",
                    cond=f"{{ sc0_conn_cur gt {lim.per_source_connections} }}",
                    retry_after_seconds="10"),
            refusal(429, "too many requests from this address", code="too_many_requests",
                    headers="hdr Retry-After 10",
                    cond=f"{{ sc0_http_req_rate gt {lim.per_source_requests_per_10s} }}",
                    retry_after_seconds="10")]),
        "path_rules": refusal(
            403, "the path contains a percent sign, a dot segment, a double slash or a "
                 "backslash; the gateway never forwards such paths", code="suspicious_path",
            lf=True, cond="suspicious_path", method="@@METHOD@@", path="@@PATH@@"),
        "route_rules": refusal(
            403, "this endpoint is not exposed by the ai-server gateway", code="not_exposed",
            lf=True, unless=allow, method="@@METHOD@@", path="@@PATH@@",
            hint="run `ai-server allowlist` on the server to see what is exposed"),
        "auth_rules": auth,
        "acls": acls,
        "backends": backends,
        "upstream_down": "" if settings.pool.nodes else refusal(
            502, UPSTREAM_DOWN, code="upstream_down", cond="{ nbsrv(ollama) eq 0 }",
            hint="run `ai-server status` on the server"),
        "routing": routing,
        # The exporter shares Ollama's loopback address: [::1] when Tailscale's userspace
        # networking would deliver tailnet connections to anything on 127.0.0.1.
        "metrics_bind": bind_address(split_hostport(g.upstream)[0], g.metrics_port),
    }
    config = string.Template(resources.read_text("haproxy/haproxy.cfg.tmpl")).substitute(values)
    # 0600: with a pool, the config carries the remote gateways' tokens
    files.insert(0, RenderedFile("haproxy.cfg", config, 0o600))
    return Rendered(tuple(files), tuple(listen))


def server_timeout_seconds(settings: Settings) -> float:
    return duration_ms(settings.timeouts.server) / 1000


def haproxy_binary() -> str:
    return os.environ.get("AI_SERVER_HAPROXY", "haproxy")
