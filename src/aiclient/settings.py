"""ai-client settings: which server, which model, which shells. A TOML file, mode 0600
(it can hold the device token)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from aicommon.errors import AiError, ExitCode, type_mismatch

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
SCOPES = ("global", "aider")
SHELLS = ("zsh", "bash", "fish")


def _bad(message: str, hint: str) -> AiError:
    return AiError(message, hint, code="config.invalid", exit_code=ExitCode.CONFIG)


def check_host(host: str) -> str:
    """A DNS name or an IP literal, nothing else: the value ends up in shell files."""
    h = host.strip().rstrip(".")
    try:
        return str(ipaddress.ip_address(h.strip("[]")))
    except ValueError:
        pass
    if len(h) <= 253 and h and all(_LABEL.match(label) for label in h.split(".")):
        return h.lower()
    raise _bad(f"server {host!r} is not a DNS name or an IP address",
               "pass the server's MagicDNS name, e.g. --server studio.tail1234.ts.net")


def parse_server(value: str) -> tuple[str, int | None]:
    """`--server`: `host`, `host:port`, `[v6]:port` or `http://host[:port][/]` (the forms
    `ai-client test --server` takes) -> (checked host, port or None)."""
    from urllib.parse import urlsplit

    raw = value.strip()
    if "://" in raw and not raw.lower().startswith("http://"):
        raise _bad(f"server {value!r}: only http:// is spoken by the gateway",
                   "Tailscale encrypts the traffic; pass host, host:port or http://host:port")
    try:
        ipaddress.ip_address(raw)
        return check_host(raw), None  # a bare IPv6 address (its colons are not a port)
    except ValueError:
        pass
    parts = urlsplit(raw if "://" in raw else f"http://{raw}")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if (not parts.hostname or port == -1 or port == 0 or parts.path not in ("", "/", "/v1")
            or parts.query or parts.fragment or parts.username or parts.password):
        raise _bad(f"server {value!r} is not host, host:port or http://host:port",
                   "pass the server's MagicDNS name, e.g. --server studio.tail1234.ts.net")
    return check_host(parts.hostname), port


def check_token(token: str) -> str:
    if token and not re.fullmatch(r"[A-Za-z0-9._~+/=-]{1,256}", token):
        raise _bad("the token contains characters a device token never has",
                   "copy the token exactly as `ai-server tokens add` printed it")
    return token


@dataclass(frozen=True)
class Server:
    host: str = ""
    port: int = 11434
    token: str = ""  # device token; empty when the gateway checks none
    context_length: int = 0  # the server's OLLAMA_CONTEXT_LENGTH as seen at setup (0 unknown)
    ollama_version: str = ""
    native_api: bool = False  # the gateway allows Ollama's native /api/chat (profile "native")


@dataclass(frozen=True)
class Client:
    model: str = ""
    scope: str = "global"  # "global": OPENAI_*/OLLAMA_* for every tool; "aider": AIDER_* only
    shells: tuple[str, ...] = ()
    claude: bool = True  # write the claude-ollama wrapper
    skip_permissions: bool = False  # wrapper adds --dangerously-skip-permissions


@dataclass(frozen=True)
class ClientSettings:
    server: Server = field(default_factory=Server)
    client: Client = field(default_factory=Client)
    source: str = "defaults"

    @property
    def base_url(self) -> str:
        host = self.server.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.server.port}"

    @property
    def api_key(self) -> str:
        return self.server.token or "ollama"

    @property
    def model(self) -> str:
        return self.client.model

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("source")
        data["client"]["shells"] = list(self.client.shells)
        return data


def validate(s: ClientSettings) -> ClientSettings:
    if s.server.host:
        check_host(s.server.host)
    if not 1 <= s.server.port <= 65535:
        raise _bad(f"server.port {s.server.port} is out of range", "use 1-65535 (default 11434)")
    check_token(s.server.token)
    if s.client.scope not in SCOPES:
        raise _bad(f"client.scope {s.client.scope!r} is unknown", "use global or aider")
    for sh in s.client.shells:
        if sh not in SHELLS:
            raise _bad(f"unknown shell {sh!r}", "shells are zsh, bash and fish")
    if s.client.model and not re.fullmatch(r"[A-Za-z0-9._:/-]+", s.client.model):
        raise _bad(f"model name {s.client.model!r} has characters model names never have",
                   "use the name `ai-client status` lists")
    return s


def _section(name: str, cls: type[Any], raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise _bad(f"[{name}] must be a table", "see the README for the client settings")
    known = {f.name for f in fields(cls)}
    values = {}
    for key, value in raw.items():
        if key not in known:
            raise _bad(f"unknown setting {name}.{key}", f"known: {', '.join(sorted(known))}")
        default = getattr(cls(), key)
        if isinstance(default, tuple):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise _bad(type_mismatch(f"{name}.{key}", value, default), f"fix {name}.{key}")
            value = tuple(value)
        elif type(value) is not type(default):
            raise _bad(type_mismatch(f"{name}.{key}", value, default), f"fix {name}.{key}")
        values[key] = value
    return cls(**values)


def parse(text: str, source: str = "<string>") -> ClientSettings:
    import tomllib

    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _bad(f"{source} is not valid TOML: {exc}", "fix the syntax or rerun setup") from None
    unknown = set(raw) - {"server", "client"}
    if unknown:
        raise _bad(f"unknown section [{sorted(unknown)[0]}] in {source}",
                   "sections are [server] and [client]")
    return validate(ClientSettings(_section("server", Server, raw.get("server", {})),
                                   _section("client", Client, raw.get("client", {})), source))


def to_toml(s: ClientSettings) -> str:
    import tomli_w

    return ("# ai-client settings, written by `ai-client setup` (holds the device token).\n\n"
            + tomli_w.dumps(s.as_dict()))


def default_path() -> Path:
    from aicommon.paths import client_paths

    return client_paths().config_file


def load(path: Path | None = None) -> ClientSettings:
    from aicommon.fsutil import read_settings_text

    target = path or default_path()
    try:
        text = read_settings_text(target)
    except FileNotFoundError:
        raise AiError(f"ai-client is not set up ({target} does not exist)",
                      "run `ai-client setup --server <MagicDNS name>`", code="config.missing",
                      exit_code=ExitCode.CONFIG) from None
    except OSError as exc:
        raise AiError(f"cannot read {target}: {exc.strerror}", code="config.unreadable",
                      exit_code=ExitCode.CONFIG) from None
    return parse(text, str(target))
