"""ai-server settings: a TOML file, validated so that a wrong value fails closed.

Refused outright: a wildcard listen address (in any spelling), a non-loopback upstream, an
unknown key, and any value of the wrong kind: every string that reaches haproxy.cfg or a
generated file (paths, names, durations, origins) is checked against its kind, so no value can
add a line, a bind or a wildcard. Refused unless `allow_other_listen = true`: an explicit listen
address that is neither a Tailscale address nor loopback.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from aicommon.errors import AiError, ExitCode, type_mismatch
from aicommon.tailscale import is_tailscale_ip
from aiserver.allowlist import PROFILES

WILDCARDS = {"0.0.0.0", "::", "*", "[::]", "0", "::0", "0:0:0:0:0:0:0:0", "::ffff:0.0.0.0",
             "::ffff:0:0", "[::ffff:0:0]", "[::ffff:0.0.0.0]", "[0:0:0:0:0:0:0:0]"}
# A path that becomes config text: absolute (or ~/…), no whitespace, control characters,
# quotes, backslashes, `#` or `:` (so never an address such as 0.0.0.0:9999).
_PATH = re.compile(r"(/|~/)[A-Za-z0-9._/+@,=~-]*")
_HOST_NAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?")
_ORIGIN = re.compile(r"https?://([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}"
                     r"[a-z0-9])?)*|\[[0-9a-f:.]+\])(:[0-9]{1,5})?")
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}")
_DURATION = re.compile(r"^(\d+)(ms|s|m|h)$")
_GO_DURATION = re.compile(r"^-1$|^\d+$|^(\d+(\.\d+)?(ns|us|ms|s|m|h))+$")
KV_CACHE_TYPES = ("f16", "q8_0", "q4_0")
MAX_BODY_LIMIT = 999_999_999  # 9 digits: HAProxy 2.6 compares Content-Length as 32-bit


@dataclass(frozen=True)
class Gateway:
    listen: tuple[str, ...] = ("auto",)
    port: int = 11434
    upstream: str = "127.0.0.1:11434"
    profiles: tuple[str, ...] = ("default",)
    tokens: bool = False
    tokens_file: str = ""  # default: <config dir>/tokens.map
    allow_other_listen: bool = False
    metrics_port: int = 8405  # Prometheus exporter, loopback only
    stats_socket: str = ""  # default: <state dir>/gateway/admin.sock
    hosts: tuple[str, ...] = ()  # extra names clients may use in Host (MagicDNS is automatic)
    allow_origins: tuple[str, ...] = ()  # browser origins allowed (CORS), e.g. a web UI


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 32 * 1024 * 1024
    per_source_connections: int = 32
    per_source_requests_per_10s: int = 200
    max_connections: int = 2048
    upstream_concurrency: int = 4  # requests HAProxy lets through to Ollama at once
    queue_size: int = 256  # then 503 (Ollama's own queue is 512)


@dataclass(frozen=True)
class Timeouts:
    server: str = "30m"  # inactivity: time to first token AND gaps between tokens
    client: str = "60s"
    http_request: str = "10s"
    keep_alive: str = "10s"
    queue: str = "10m"
    connect: str = "5s"
    hard_stop_after: str = "30m"  # how long an old worker may finish streams after a reload


@dataclass(frozen=True)
class Ollama:
    """The environment the Ollama service is started with (REFERENCE §1.6)."""

    context_length: int = 65536  # Ollama recommends >= 64000 for coding agents
    keep_alive: str = "30m"  # Go duration, or "-1" (forever)
    flash_attention: bool = True
    kv_cache_type: str = "q8_0"  # about half the memory of f16
    no_cloud: bool = True  # no ollama.com passthrough, no web search
    warm: tuple[str, ...] = ()  # models `ai-server models warm` preloads (and --at-boot)
    binary: str = ""  # default: found on PATH / in the Homebrew prefix


@dataclass(frozen=True)
class Pool:
    """Several Ollama nodes behind one gateway (empty: gateway.upstream alone)."""

    nodes: tuple[str, ...] = ()  # "127.0.0.1:11434", "studio-2.tail1234.ts.net:11434", …
    affinity: str = "session"  # "session" (x-claude-code-session-id) | "none"
    tokens_file: str = ""  # "<node> <token>" lines for remote gateways; mode 600


@dataclass(frozen=True)
class Settings:
    gateway: Gateway = field(default_factory=Gateway)
    limits: Limits = field(default_factory=Limits)
    timeouts: Timeouts = field(default_factory=Timeouts)
    ollama: Ollama = field(default_factory=Ollama)
    pool: Pool = field(default_factory=Pool)
    source: str = "defaults"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("source")
        return data


SECTIONS: dict[str, type[Any]] = {"gateway": Gateway, "limits": Limits, "timeouts": Timeouts,
                                   "ollama": Ollama, "pool": Pool}


def to_toml(s: Settings) -> str:
    """The settings as a TOML file (every key written, so the file documents itself)."""
    import tomli_w

    data = s.as_dict()
    for section in data.values():
        for key, value in list(section.items()):
            if isinstance(value, tuple):
                section[key] = list(value)
    header = ("# ai-server settings. Written by `ai-server install`; edit and run\n"
              "# `ai-server install` (services) or `ai-server reload` (gateway only).\n\n")
    return header + tomli_w.dumps(data)


def duration_ms(value: str) -> int:
    m = _DURATION.fullmatch(value)
    if not m:
        raise ValueError(value)
    n, unit = int(m.group(1)), m.group(2)
    return n * {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}[unit]


def _one_line(text: str) -> str:
    """Control characters of a refused value shown escaped: a refusal is one line."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


def _bad(message: str, hint: str) -> AiError:
    return AiError(_one_line(message), _one_line(hint), code="config.invalid",
                   exit_code=ExitCode.CONFIG)


def split_hostport(value: str, what: str = "upstream") -> tuple[str, int]:
    """'127.0.0.1:11434' / '[::1]:11434' → (host, port)."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:\[\]]+):(\d+)", value)
    if not m:
        raise _bad(f"{what} {value!r} is not host:port",
                   "write it like \"127.0.0.1:11434\" or \"[::1]:11434\"")
    host = m.group(1) or m.group(3)
    port = int(m.group(2) or m.group(4))
    return host, port


def is_wildcard(addr: str) -> bool:
    """Any spelling of "every address": 0.0.0.0, ::, *, [::], ::ffff:0.0.0.0, 0, …"""
    text = addr.strip().lower()
    if text in WILDCARDS:
        return True
    try:
        ip = ipaddress.ip_address(text.strip("[]").split("%")[0])
    except ValueError:
        return False
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return ip.is_unspecified or (mapped is not None and mapped.is_unspecified)


def check_listen_address(addr: str, allow_other: bool) -> None:
    """Fail closed on any address that would widen exposure."""
    if is_wildcard(addr):
        raise _bad(f"listen address {addr!r} is a wildcard: it would expose the gateway on "
                   "every network", "use \"auto\" (this machine's Tailscale addresses)")
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        raise _bad(f"listen address {addr!r} is not an IP address",
                   "use \"auto\" or explicit IPv4/IPv6 addresses (no brackets, no port)") from None
    if "%" in addr:
        raise _bad(f"listen address {addr!r} carries a %zone", "drop the %zone")
    if ip.is_loopback or is_tailscale_ip(addr):
        return
    if not allow_other:
        raise _bad(f"listen address {addr} is neither a Tailscale address nor loopback",
                   "use \"auto\", or set allow_other_listen = true in [gateway] if you really "
                   "mean to expose the gateway on that network")


def _typed(section: str, cls: type[Any], raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise _bad(f"[{section}] must be a table", f"see the README for the [{section}] keys")
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            raise _bad(f"unknown setting {section}.{key}",
                       f"known keys in [{section}]: {', '.join(sorted(known))}")
        default = getattr(cls(), key)
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, tuple):
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        else:
            ok = isinstance(value, str)
        if not ok:
            raise _bad(type_mismatch(f"{section}.{key}", value, default),
                       f"fix {section}.{key} in the settings file")
        values[key] = tuple(value) if isinstance(default, tuple) else value
    return cls(**values)


def check_keep_alive(value: str, what: str = "ollama.keep_alive") -> str:
    """OLLAMA_KEEP_ALIVE: a Go duration, whole seconds, or -1 (forever)."""
    if not _GO_DURATION.fullmatch(value):  # fullmatch: "$" would let "2h\n" through
        raise _bad(f"{what} {value!r} is not a duration".lstrip(),
                   "write it like \"30m\", \"2h\", \"300\" (seconds) or \"-1\" (forever)")
    return value


def check_node(node: str) -> tuple[str, int]:
    """A pool node: loopback or Tailscale address, or a MagicDNS name, with a port."""
    host, port = split_hostport(node, "pool node")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None:
        if not (ip.is_loopback or is_tailscale_ip(host)):
            raise _bad(f"pool node {node} is neither loopback nor a Tailscale address",
                       "pool nodes are this machine's Ollama (127.0.0.1:11434) or other "
                       "machines' gateways on the tailnet")
    elif not re.fullmatch(r"([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+ts\.net", host.lower()):
        raise _bad(f"pool node {node} is not a MagicDNS name (…ts.net)",
                   "use the other machine's MagicDNS name or its 100.x address")
    if not 1 <= port <= 65535:
        raise _bad(f"pool node {node}: port out of range", "use 1-65535")
    return host, port


def check_file_path(key: str, value: str) -> None:
    """A file the tools read themselves (never written into a config): absolute or ~/…,
    printable (spaces allowed, as in macOS's Application Support)."""
    if value and (not value.startswith(("/", "~/")) or not value.isprintable()):
        raise _bad(f"{key} {value!r} is not an absolute path",
                   "use an absolute path (or ~/…) without control characters")


def check_path(key: str, value: str) -> None:
    """A path that reaches haproxy.cfg or a generated file (socket, program)."""
    if value and not _PATH.fullmatch(value):
        raise _bad(f"{key} {value!r} is not a plain absolute path",
                   "use an absolute path (or ~/…) of letters, digits and ._/+@,=~- only: no "
                   "spaces, quotes, '#', ':' or control characters (sockets are paths, never "
                   "addresses)")


def check_gateway_names(g: Gateway) -> None:
    for name in g.hosts:
        try:
            ipaddress.ip_address(name.strip("[]"))
            continue
        except ValueError:
            pass
        if not _HOST_NAME.fullmatch(name) or is_wildcard(name):
            raise _bad(f"gateway.hosts entry {name!r} is not a host name or an IP address",
                       "list names like \"ai.example.internal\" (no port, no wildcard)")
    for origin in g.allow_origins:
        if not _ORIGIN.fullmatch(origin):
            raise _bad(f"gateway.allow_origins entry {origin!r} is not an exact origin",
                       "write it as a browser sends it: scheme://host[:port] in lower case, "
                       "no path, no trailing slash, no wildcard (e.g. \"https://ui.example\")")


def check_pool(p: Pool) -> None:
    if p.affinity not in ("session", "none"):
        raise _bad(f"pool.affinity {p.affinity!r} is unknown", "use \"session\" or \"none\"")
    if len(set(p.nodes)) != len(p.nodes):
        raise _bad("pool.nodes lists a node twice", "list each node once")
    for node in p.nodes:
        check_node(node)


def validate(s: Settings) -> Settings:
    g, lim, t = s.gateway, s.limits, s.timeouts
    if not g.listen:
        raise _bad("gateway.listen is empty", "use [\"auto\"]")
    for addr in g.listen:
        if addr != "auto":
            check_listen_address(addr, g.allow_other_listen)
    for name, port in (("gateway.port", g.port), ("gateway.metrics_port", g.metrics_port)):
        if not 1 <= port <= 65535:
            raise _bad(f"{name} {port} is out of range", "use a port between 1 and 65535")
    host, uport = split_hostport(g.upstream)
    if g.metrics_port in (g.port, uport):
        raise _bad(f"gateway.metrics_port {g.metrics_port} is also the gateway's or Ollama's "
                   "port", "give the Prometheus exporter a port of its own (default 8405)")
    try:
        up_ip = ipaddress.ip_address(host)
    except ValueError:
        up_ip = None
    if up_ip is None or not up_ip.is_loopback:
        raise _bad(f"upstream {g.upstream} is not a loopback address",
                   "Ollama must listen on loopback only: use \"127.0.0.1:11434\"")
    if not 1 <= uport <= 65535:
        raise _bad(f"upstream port {uport} is out of range", "use 127.0.0.1:11434")
    for key, value in (("gateway.stats_socket", g.stats_socket),
                       ("ollama.binary", s.ollama.binary)):
        check_path(key, value)
    for key, value in (("gateway.tokens_file", g.tokens_file),
                       ("pool.tokens_file", s.pool.tokens_file)):
        check_file_path(key, value)
    check_gateway_names(g)
    for p in g.profiles:
        if p not in PROFILES:
            raise _bad(f"unknown allowlist profile {p!r}", f"profiles are: {', '.join(PROFILES)}")
    if lim.max_body_bytes > MAX_BODY_LIMIT:
        raise _bad(f"limits.max_body_bytes {lim.max_body_bytes} is above {MAX_BODY_LIMIT}",
                   "bodies of a gigabyte or more are not supported by the gateway")
    for key in ("max_body_bytes", "per_source_connections", "per_source_requests_per_10s",
                "max_connections", "upstream_concurrency", "queue_size"):
        if getattr(lim, key) < 1:
            raise _bad(f"limits.{key} must be at least 1", f"fix limits.{key}")
    check_pool(s.pool)
    o = s.ollama
    if o.context_length < 2048:
        raise _bad(f"ollama.context_length {o.context_length} is too small",
                   "use at least 2048; coding agents want 65536 or more")
    check_keep_alive(o.keep_alive)
    for name in o.warm:
        if not _MODEL_NAME.fullmatch(name):
            raise _bad(f"ollama.warm entry {name!r} is not a model name",
                       "write names like \"qwen3-coder:30b\"")
    if o.kv_cache_type not in KV_CACHE_TYPES:
        raise _bad(f"ollama.kv_cache_type {o.kv_cache_type!r} is unknown",
                   f"use one of {', '.join(KV_CACHE_TYPES)}")
    for f in fields(Timeouts):
        value = getattr(t, f.name)
        try:
            ms = duration_ms(value)
        except ValueError:
            raise _bad(f"timeouts.{f.name} {value!r} is not a duration",
                       "write durations like \"30m\", \"60s\", \"500ms\" or \"1h\"") from None
        if ms <= 0:
            raise _bad(f"timeouts.{f.name} must be more than zero", f"fix timeouts.{f.name}")
    return s


def parse(text: str, source: str = "<string>") -> Settings:
    import tomllib

    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _bad(f"{source} is not valid TOML: {exc}", "fix the syntax and retry") from None
    unknown = set(raw) - set(SECTIONS)
    if unknown:
        raise _bad(f"unknown section [{sorted(unknown)[0]}] in {source}",
                   "sections are " + ", ".join(f"[{name}]" for name in SECTIONS))
    s = Settings(
        gateway=_typed("gateway", Gateway, raw.get("gateway", {})),
        limits=_typed("limits", Limits, raw.get("limits", {})),
        timeouts=_typed("timeouts", Timeouts, raw.get("timeouts", {})),
        ollama=_typed("ollama", Ollama, raw.get("ollama", {})),
        pool=_typed("pool", Pool, raw.get("pool", {})),
        source=source,
    )
    return validate(s)


def load(path: Path | None) -> Settings:
    """Read settings from `path` (or the default file); a missing default file = defaults."""
    from aicommon.paths import server_paths

    explicit = path is not None
    target = path if path is not None else server_paths().config_file
    from aicommon.fsutil import read_settings_text

    try:
        text = read_settings_text(target)
    except FileNotFoundError:
        if explicit:
            raise AiError(f"settings file {target} does not exist",
                          "check the --config path", code="config.missing",
                          exit_code=ExitCode.CONFIG) from None
        return validate(Settings())
    except OSError as exc:
        raise AiError(f"cannot read {target}: {exc.strerror}", code="config.unreadable",
                      exit_code=ExitCode.CONFIG) from None
    return parse(text, str(target))
