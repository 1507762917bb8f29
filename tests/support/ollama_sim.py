#!/usr/bin/env python3
"""A stand-in for Ollama's HTTP API, for integration tests, demos and benchmarks.

Stdlib only, one file.  It speaks the wire formats of Ollama v0.32.x (see
../shared/REFERENCE.md section 1): gin routing on the percent-decoded path (no path cleaning,
trailing-slash redirects, 404/405 text bodies), the loopback Host check, the CORS origin check,
native NDJSON streams, OpenAI SSE streams, Anthropic SSE events and the admin routes, so a leak
through the proxy is visible and recorded.

Library use::

    with OllamaSimulator() as sim:          # 127.0.0.1, ephemeral port
        ...  # point the proxy at sim.url
        assert sim.requests[-1].target == "/v1/messages?beta=true"

Attributes settable at any time (read once per request):

``stream_chunks``       generated tokens per answer (default 8)
``first_byte_delay``    seconds of silence before the status line of an inference answer
                        (Ollama sends nothing during prompt pre-fill)
``chunk_gap``           seconds between streamed chunks (non-stream inference answers wait
                        ``first_byte_delay + chunk_gap * (tokens - 1)`` before answering)
``close_after_chunks``  ``None`` or N: after N body chunks of any stream, close the connection
                        without finishing the chunked body
``queue_full``          inference routes answer 503 "server busy" in their own dialect
``host_check``          Ollama's loopback Host-header check (default on)
``cors_check``          Ollama's Origin check (default on)
``extra_allowed_hosts`` further Host names/IPs to accept (e.g. the machine's own tailnet IP)
``default_context_length`` / ``default_keep_alive``  what OLLAMA_CONTEXT_LENGTH /
                        OLLAMA_KEEP_ALIVE would be (None = unset: by ``total_vram_gib``,
                        16 → 4096, capped at the model's trained context / 300 s)
``total_vram_gib``      the machine's GPU memory (<23 → 4096, <47 → 32768, else 262144)
``cloud_disabled``      OLLAMA_NO_CLOUD=1 (default): ``:cloud``/``-cloud`` model names on
                        ``/v1/*`` answer 403 ``ollama cloud is disabled: …``
``record_requests``     append every request to ``requests`` (default on)
``record_body_limit``   bytes of each body kept in ``RecordedRequest.body`` (64 KiB)
``log``                 ``None`` or a callable receiving one access-log line per request
``fixed_ids``           constant ids and timestamps in answers (byte-for-byte comparisons)
``tool_calls``          answer with a tool call when ``tools`` are given and the last message is
                        a user message naming one of them (default on; see "Tool calls" below)

Contract-breaking switches (default off), for testing clients' conformance checks:

``break_event_order``   Anthropic streams out of order: ``True``/``"delta-first"`` sends the
                        first ``content_block_delta`` before its ``content_block_start``;
                        ``"stop-first"`` sends ``message_stop`` before ``message_delta``
``omit_done``           OpenAI streams (``/v1/chat/completions``, ``/v1/completions``) end
                        without ``data: [DONE]``
``tools_error_500``     requests carrying ``tools`` answer HTTP 500 in the route's dialect
``system_mid_conversation_500``  ``/v1/messages`` with a ``role: "system"`` message inside
                        ``messages[]`` answers HTTP 500 "system message must be at the
                        beginning" (Ollama < 0.32.14 with Qwen 3.5-family templates)

Test-only request headers (Ollama ignores them; they override the attributes per request):

``x-sim-first-byte-delay: S``  ``x-sim-chunk-gap: S``  ``x-sim-chunks: N``
``x-sim-close-after-chunks: N``
``x-sim-break-event-order: delta-first|stop-first``  ``x-sim-omit-done: 1``
``x-sim-tools-error-500: 1``  (``0`` turns a switch off for that request)

Tool calls: when a request to ``/v1/chat/completions`` or ``/v1/messages`` carries ``tools``
and its last message (trailing ``system`` messages skipped, as the model sees the conversation)
is a user message (not a tool result) whose text names one of them, the
answer is a call to the first tool named there (id ``call_`` + 8 hex, arguments built from the
tool's JSON schema: required properties, strings ``"sim"``, or the JSON object written right
after the tool's name: ``Read {"file_path": "/tmp/x"}``), finish_reason ``tool_calls`` /
stop_reason ``tool_use``.  Otherwise (e.g. after a tool result) the answer is text.
JSON mode: ``response_format`` ``json_object``/``json_schema`` on ``/v1/chat/completions``
makes the content a JSON object (``{"text": "..."}``), streamed token by token.

Routing follows gin as Ollama configures it: the percent-DECODED path is routed (``/api/%70ull``
is ``/api/pull``), ``//x`` and dot segments are not cleaned (404 ``404 page not found``), a known
path with a wrong method is 405 ``405 method not allowed``, and a trailing slash on a known route
redirects (301 for GET, 307 for other methods, as gin does).  Go's net/http rules apply first:
HTTP/1.1 without exactly one Host header, bad escapes or malformed requests are 400 (and closed).

Observations: ``requests`` (a snapshot list of RecordedRequest), ``disconnects`` (list of
Disconnect: client went away before an inference answer or a stream finished; noticed during
the first-byte delay and chunk gaps too, as Ollama cancels on client EOF),
``wait_for_disconnect()``, ``wait_for_requests()``, ``wait_for_streams()``, ``streams_started`` /
``streams_completed``, ``model_loads`` (every (re)load of a runner: model name and context
length), ``loaded_models()``, ``clear()``.

Standalone::

    python3 tests/support/ollama_sim.py --host 127.0.0.1 --port 11434 \\
        [--first-byte-delay S] [--chunk-gap S] [--chunks N] [--quiet]
    python3 -m tests.support.ollama_sim ...     # from the repository root
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import email.utils
import fnmatch
import hashlib
import http
import ipaddress
import json
import random
import re
import secrets
import select
import selectors
import signal
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, cast

__all__ = [
    "DEFAULT_MODELS",
    "SERVER_BUSY",
    "Disconnect",
    "OllamaSimulator",
    "RecordedRequest",
    "SimModel",
    "main",
]

DEFAULT_VERSION = "0.32.15"
SERVER_BUSY = "server busy, please try again.  maximum pending requests exceeded"
RECORD_BODY_LIMIT = 64 * 1024  # bytes of each request body kept in RecordedRequest.body
PROCESS_BODY_LIMIT = 32 * 1024 * 1024  # bytes kept for the route handlers (rest: counted)
MAX_LINE = 64 * 1024
MAX_HEADERS = 256
MAX_HEADER_BYTES = 1024 * 1024
READ_CHUNK = 64 * 1024

JSON_CT = "application/json; charset=utf-8"
NDJSON_CT = "application/x-ndjson"
SSE_CT = "text/event-stream"
TEXT_CT = "text/plain; charset=utf-8"
GIN_TEXT_CT = "text/plain"

SIM_TEXT = (
    "The quick brown fox jumps over the lazy dog while the simulator streams "
    "deterministic tokens through the proxy under test."
)
_WORDS = SIM_TEXT.split()
_MODIFIED_TS = 1_790_000_000  # a fixed "modified_at" for every model (2026-09-21)
_FOREVER = float((2**63 - 1) // 10**9)  # Go's time.Duration(math.MaxInt64), in seconds

_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION_RE = re.compile(r"HTTP/(\d)\.(\d)")
_BAD_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_HEX_RE = re.compile(r"[0-9A-Fa-f]+")
_GO_DURATION_RE = re.compile(r"([0-9]*\.?[0-9]*)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
             "h": 3600.0}
_PRIVATE_NETS = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)
_ALLOWED_ORIGINS = (
    *(f"{scheme}://{host}{port}"
      for scheme in ("http", "https")
      for host in ("localhost", "127.0.0.1", "0.0.0.0")
      for port in ("", ":*")),
    "app://*", "file://*", "tauri://*", "vscode-webview://*", "vscode-file://*",
)


# ---------------------------------------------------------------------------------------------
# Public data types
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimModel:
    """One model the simulator pretends to have."""

    name: str
    arch: str = "llama"
    context_length: int = 131072
    capabilities: tuple[str, ...] = ("completion", "tools")
    parameter_size: str = "3.2B"
    quantization_level: str = "Q4_K_M"
    size: int = 2_019_393_189
    embedding_length: int = 3072
    family: str = ""

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.name.encode()).hexdigest()

    @property
    def model_family(self) -> str:
        return self.family or self.arch

    @property
    def parameter_count(self) -> int:
        m = re.fullmatch(r"([0-9.]+)([KMBT]?)", self.parameter_size)
        if not m:
            return 0
        scale = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}[m.group(2)]
        return int(float(m.group(1)) * scale)


DEFAULT_MODELS: tuple[SimModel, ...] = (
    SimModel("qwen3-coder:30b", arch="qwen3moe", context_length=262144,
             parameter_size="30.5B", size=18_556_701_140, embedding_length=2048),
    SimModel("llama3.2:3b", arch="llama", context_length=131072),
    SimModel("nomic-embed-text:latest", arch="nomic-bert", context_length=2048,
             capabilities=("embedding",), parameter_size="137M", quantization_level="F16",
             size=274_302_450, embedding_length=768),
    SimModel("gemma3:1b", arch="gemma3", context_length=32768, capabilities=("completion",),
             parameter_size="999.89M", size=815_319_791, embedding_length=1152),
)


@dataclass
class RecordedRequest:
    """One request as received (the target is the raw request-target, never normalised)."""

    method: str
    target: str
    path: str
    version: str
    headers: list[tuple[str, str]]
    body_size: int
    body: bytes
    client: tuple[str, int]
    time: float
    status: int = 0  # status the simulator answered with (0: none sent)
    error: str | None = None  # why the request could not be parsed, if it could not

    def header(self, name: str) -> str | None:
        """First header of that name (case-insensitive), or None."""
        low = name.lower()
        for key, value in self.headers:
            if key.lower() == low:
                return value
        return None

    def header_all(self, name: str) -> list[str]:
        low = name.lower()
        return [value for key, value in self.headers if key.lower() == low]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Disconnect:
    """A client that went away before its inference answer or stream was finished."""

    method: str
    target: str
    path: str
    chunks_sent: int  # body chunks written before the disconnect was seen
    phase: str  # "before-first-byte" or "streaming"
    time: float


# ---------------------------------------------------------------------------------------------
# Internal types
# ---------------------------------------------------------------------------------------------


@dataclass
class _Request:
    record: RecordedRequest
    body: bytes
    body_sha256: str
    decoded_path: str
    query: str
    keep_alive: bool
    start_ns: int
    params: dict[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        return self.record.header(name)


@dataclass
class _Faults:
    first_byte_delay: float
    chunk_gap: float
    chunks: int
    close_after: int | None
    break_order: str = ""  # "", "delta-first" or "stop-first"
    omit_done: bool = False
    tools_error_500: bool = False
    text_before_tools: bool = False


@dataclass
class _Full:
    status: int
    body: bytes = b""
    content_type: str | None = JSON_CT
    headers: list[tuple[str, str]] = field(default_factory=list)
    delay_tokens: int = -1  # >= 0: an inference answer; wait as if generating that many
    close: bool = False


@dataclass
class _Stream:
    chunks: Iterator[bytes]
    content_type: str
    inference: bool = True
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)


_Response = _Full | _Stream
_Handler = Callable[[_Request, _Faults], _Response]
_ErrorFn = Callable[[int, str], _Full]


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: str
    handler: _Handler

    def match(self, path: str) -> dict[str, str] | None:
        if ":" not in self.pattern:
            return {} if path == self.pattern else None
        want = self.pattern.split("/")
        got = path.split("/")
        if len(want) != len(got):
            return None
        params: dict[str, str] = {}
        for w, g in zip(want, got, strict=True):
            if w.startswith(":"):
                if not g:
                    return None
                params[w[1:]] = g
            elif w != g:
                return None
        return params


@dataclass
class _Loaded:
    context_length: int
    expires_at: float | None  # None: forever
    loaded_at: float
    session: float | None = None  # keep-alive duration that sticks to the runner (None: forever)


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _KeepAlive:
    """A parsed ``keep_alive``: absent, forever (negative) or a number of seconds."""

    def __init__(self, present: bool, seconds: float | None) -> None:
        self.present = present
        self.seconds = seconds  # None: forever

    @property
    def is_zero(self) -> bool:
        return self.present and self.seconds == 0

    @classmethod
    def parse(cls, value: Any) -> _KeepAlive:
        if value is None:
            return cls(False, None)
        if isinstance(value, bool):
            raise ValueError("json: cannot unmarshal bool into Go value of type api.Duration")
        if isinstance(value, int | float):
            return cls(True, None if value < 0 else float(value))
        if isinstance(value, str):
            seconds = _parse_go_duration(value)
            return cls(True, None if seconds < 0 else seconds)
        raise ValueError("json: cannot unmarshal value into Go value of type api.Duration")


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------


def _j(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _ndjson(obj: Any) -> bytes:
    return _j(obj) + b"\n"


def _sse(obj: Any) -> bytes:
    return b"data: " + _j(obj) + b"\n\n"


def _event(name: str, obj: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _j(obj) + b"\n\n"


def _rfc3339(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts).astimezone().isoformat()


def _now_rfc3339() -> str:
    return _rfc3339(time.time())


def _http_date() -> str:
    return email.utils.formatdate(usegmt=True)


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _parse_go_duration(text: str) -> float:
    """time.ParseDuration, in seconds (errors worded like Go's)."""
    s = text
    sign = 1.0
    if s[:1] in ("+", "-"):
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f'time: invalid duration "{text}"')
    total = 0.0
    pos = 0
    while pos < len(s):
        m = _GO_DURATION_RE.match(s, pos)
        if not m or m.group(1) in ("", "."):
            if re.fullmatch(r"[0-9.]+", s[pos:]):
                raise ValueError(f'time: missing unit in duration "{text}"')
            raise ValueError(f'time: invalid duration "{text}"')
        total += float(m.group(1)) * _GO_UNITS[m.group(2)]
        pos = m.end()
    return sign * total


def _normalize_name(name: str) -> str:
    n = name.strip().lower()
    for prefix in ("registry.ollama.ai/library/", "registry.ollama.ai/"):
        if n.startswith(prefix):
            n = n[len(prefix):]
            break
    if ":" not in n.rsplit("/", 1)[-1]:
        n += ":latest"
    return n


def _registry_name(name: str) -> str:
    return name if "/" in name else f"registry.ollama.ai/library/{name}"


def _estimate_tokens(obj: Any) -> int:
    def chars(o: Any) -> int:
        if isinstance(o, str):
            return len(o)
        if isinstance(o, dict):
            return sum(chars(v) for v in o.values())
        if isinstance(o, list):
            return sum(chars(v) for v in o)
        return 0

    return max(1, chars(obj) // 4)


def _tokens(n: int) -> list[str]:
    return [(" " if i else "") + _WORDS[i % len(_WORDS)] for i in range(max(0, n))]


THINK_CHUNKS = 3
_THINK_WORDS = ["Let", "me", "think", "about", "what", "the", "user", "asked", "for."]


def _think_tokens(n: int) -> list[str]:
    return [(" " if i else "") + _THINK_WORDS[i % len(_THINK_WORDS)] for i in range(max(0, n))]


def _plan(chunks: int, limit: Any) -> tuple[list[str], bool]:
    """The tokens to generate and whether a token limit cut them short."""
    if isinstance(limit, int) and not isinstance(limit, bool) and 0 < limit < chunks:
        return _tokens(limit), True
    return _tokens(chunks), False


def _embedding(text: str, dims: int) -> list[float]:
    rng = random.Random(hashlib.sha256(text.encode()).digest())
    vec = [rng.gauss(0.0, 1.0) for _ in range(dims)]
    norm = sum(v * v for v in vec) ** 0.5 or 1.0
    return [round(v / norm, 6) for v in vec]


def _break_mode(value: bool | str) -> str:
    """The stream-order defect a ``break_event_order`` value asks for ("" for none)."""
    if value is True or value in ("1", "true", "yes", "on", "delta-first"):
        return "delta-first"
    if value == "stop-first":
        return "stop-first"
    return ""


def _schema_value(schema: Any) -> Any:
    """A value that fits a (small) JSON schema, for simulated tool-call arguments."""
    if not isinstance(schema, dict):
        return "sim"
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object":
        return _schema_args(schema)
    return {"integer": 1, "number": 1, "boolean": True, "array": [],
            "null": None}.get(str(kind), "sim")


def _schema_args(schema: Any) -> dict[str, Any]:
    """Arguments for a tool: every required property (all properties when none are)."""
    if not isinstance(schema, dict):
        return {}
    props = schema.get("properties")
    if not isinstance(props, dict):
        return {}
    required = schema.get("required")
    names = [n for n in required if n in props] if isinstance(required, list) else list(props)
    return {n: _schema_value(props[n]) for n in names}


ToolDecider = Callable[[dict[str, Any]], list[tuple[str, dict[str, Any]]]]


def _message_texts(content: Any) -> tuple[list[str], bool]:
    """The text blocks of a message's content and whether it carries a tool result."""
    if isinstance(content, str):
        return [content], False
    texts: list[str] = []
    tool_result = False
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "tool_result":
            tool_result = True
        elif isinstance(block.get("text"), str):
            texts.append(block["text"])
    return texts, tool_result


def _requested_tools(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """[(name, arguments)] when the last message is a user message naming tools ([] if not).

    Tools come in either dialect: OpenAI ``{"type":"function","function":{"name",
    "parameters"}}`` or Anthropic ``{"name","input_schema"}``.  A tool written with inline JSON
    arguments anywhere in the turn is called (several: parallel calls, in the order written);
    otherwise the first tool named in the turn's last text block (Claude Code puts its
    reminders in earlier blocks; they name tools too).
    """
    tools = data.get("tools")
    messages = data.get("messages")
    if not isinstance(tools, list) or not isinstance(messages, list):
        return []
    # The model sees the conversation as a whole: a trailing system message (Claude Code >=
    # 2.1.3xx ends messages[] with its reminders, REFERENCE 2.6) does not hide the user's turn.
    turns = [m for m in messages if not (isinstance(m, dict) and m.get("role") == "system")]
    if not turns:
        return []
    last = turns[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        return []
    texts, tool_result = _message_texts(last.get("content"))
    if tool_result or not texts:
        return []
    specs: list[dict[str, Any]] = []
    for tool in tools:
        if isinstance(tool, dict):
            function = tool.get("function")
            spec = function if isinstance(function, dict) else tool
            if isinstance(spec.get("name"), str) and spec["name"]:
                specs.append(spec)
    calls: list[tuple[int, str, dict[str, Any]]] = []
    joined = "\n".join(texts)
    for spec in specs:  # every tool written with inline arguments: parallel tool calls
        for pos, args in _inline_args(joined, spec["name"]):
            calls.append((pos, spec["name"], args))
    if calls:
        return [(name, args) for _, name, args in sorted(calls, key=lambda c: c[0])]
    for spec in specs:
        if spec["name"] in texts[-1]:
            return [(spec["name"],
                     _schema_args(spec.get("parameters", spec.get("input_schema"))))]
    return []


def _inline_args(text: str, name: str) -> list[tuple[int, dict[str, Any]]]:
    """Each JSON object written right after the tool's name (`Read {"file_path": "/x"}`), with
    its position: the arguments a test wants the "model" to pass."""
    found = []
    for match in re.finditer(r"(?<![A-Za-z0-9_])" + re.escape(name) + r"\s*(?=\{)", text):
        try:
            value, _ = json.JSONDecoder().raw_decode(text, match.end())
        except ValueError:
            continue
        if isinstance(value, dict):
            found.append((match.start(), value))
    return found


@dataclass
class _Generation:
    text: list[str]  # content tokens
    cut: bool  # a token limit cut the text short
    tools: list[tuple[str, dict[str, Any]]]  # tool calls, in order


def _anthropic_stream(mid: str, model: str, input_tokens: int, thinking: list[str],
                      toks: list[str], calls: list[dict[str, Any]]
                      ) -> list[tuple[str, dict[str, Any]]]:
    """message_start and the content blocks, as anthropic.StreamConverter emits them: a
    thinking block, a text block, then one block per tool call (one input_json_delta each);
    nothing generated = no block at all. message_start has no stop_reason/stop_sequence (Go
    omitempty)."""
    events: list[tuple[str, dict[str, Any]]] = [("message_start", {
        "type": "message_start", "message": {
            "id": mid, "type": "message", "role": "assistant", "model": model, "content": [],
            "usage": {"input_tokens": input_tokens, "output_tokens": 0}}})]
    index = 0

    def block(start: dict[str, Any], deltas: list[dict[str, Any]]) -> None:
        nonlocal index
        events.append(("content_block_start", {"type": "content_block_start", "index": index,
                                               "content_block": start}))
        events.extend(("content_block_delta", {"type": "content_block_delta", "index": index,
                                               "delta": d}) for d in deltas)
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        index += 1

    if thinking:
        block({"type": "thinking", "thinking": ""},
              [{"type": "thinking_delta", "thinking": t} for t in thinking])
    if toks:
        block({"type": "text", "text": ""}, [{"type": "text_delta", "text": t} for t in toks])
    for call in calls:
        block({**call, "input": {}},
              [{"type": "input_json_delta", "partial_json": _j(call["input"]).decode()}])
    return events


def _break_order(events: list[tuple[str, dict[str, Any]]], mode: str) -> None:
    """Reorder an Anthropic event list in place to break the stream contract on purpose."""
    names = [name for name, _ in events]

    def swap(first: str, second: str) -> None:
        if first in names and second in names:
            i = names.index(first)
            j = names.index(second, i)
            events[i], events[j] = events[j], events[i]

    if mode == "delta-first":
        swap("content_block_start", "content_block_delta")
    elif mode == "stop-first":
        swap("message_delta", "message_stop")


def _json_mode(data: dict[str, Any]) -> bool:
    fmt = data.get("response_format")
    return isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")


def _as_json_tokens(toks: list[str]) -> list[str]:
    """The same tokens, wrapped so that together they form one JSON object."""
    if not toks:
        return toks
    parts = [json.dumps(t, ensure_ascii=False)[1:-1] for t in toks]
    parts[0] = '{"text": "' + parts[0]
    parts[-1] += '"}'
    return parts


def _native_error(status: int, message: str) -> _Full:
    return _Full(status, _j({"error": message}))


def _openai_error(status: int, message: str) -> _Full:
    kind = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
    return _Full(status, _j({"error": {"message": message, "type": kind, "param": None,
                                       "code": None}}))


def _anthropic_error(status: int, message: str) -> _Full:
    kind = {
        400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
        404: "not_found_error", 429: "rate_limit_error", 503: "overloaded_error",
        529: "overloaded_error",
    }.get(status, "api_error")
    return _Full(status, _j({"type": "error", "error": {"type": kind, "message": message},
                             "request_id": f"req_{secrets.token_hex(12)}"}))


def _host_of(host_header: str) -> str:
    """net.SplitHostPort's host, or the whole value when there is no port (brackets dropped)."""
    h = host_header.strip()
    if h.startswith("["):
        end = h.find("]")
        if end > 0 and (h[end + 1:] == "" or h[end + 1:].startswith(":")):
            return h[1:end]
        return h
    if h.count(":") == 1:
        return h.split(":", 1)[0]
    return h


def local_ips() -> set[str]:
    """Every address of this machine's interfaces (Go's net.Interfaces()/Addrs(), which
    Ollama's isLocalIP walks), as seen from the current network namespace."""
    import subprocess

    for argv in (["ip", "-o", "addr", "show"], ["ifconfig", "-a"]):
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=5,
                                 check=False).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        found = re.findall(r"\binet6?\s+(?:addr:)?([0-9A-Fa-f.:]+)", out)
        if found:
            return {str(ipaddress.ip_address(a.split("%")[0])) for a in found}
    return set()


def host_allowed(host_header: str | None, extra: Sequence[str] = ()) -> bool:
    """Ollama's allowedHostsMiddleware decision for a server bound to loopback
    (server/routes.go: IsLoopback || IsPrivate || IsUnspecified || isLocalIP, then
    allowedHost's names). Link-local addresses are not private: refused."""
    if host_header is None:
        return True
    host = _host_of(host_header).lower()
    if host in {e.lower() for e in extra}:
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None:
        plain = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped \
            else ip
        return (plain.is_loopback or plain.is_unspecified
                or any(plain in net for net in _PRIVATE_NETS) or str(ip) in local_ips())
    if host in ("", "localhost") or host == socket.gethostname().lower():
        return True
    return host.endswith((".localhost", ".local", ".internal"))


def _clean_path(path: str) -> str:
    """net/http cleanPath: path.Clean, keeping a trailing slash."""
    import posixpath

    if not path:
        return "/"
    if not path.startswith("/"):
        path = "/" + path
    cleaned = posixpath.normpath(path)
    if cleaned.startswith("//"):  # posixpath keeps a leading "//"; path.Clean does not
        cleaned = "/" + cleaned.lstrip("/")
    if path.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned


def _cloud_model(name: Any) -> bool:
    """An explicit cloud model reference ("gpt-oss:20b:cloud", "kimi-k2.6:cloud",
    "qwen3:480b-cloud"), which Ollama passes through to ollama.com."""
    if not isinstance(name, str):
        return False
    tag = name.rsplit(":", 1)[1] if ":" in name else ""
    return tag == "cloud" or tag.endswith("-cloud")


def origin_allowed(origin: str) -> bool:
    return any(fnmatch.fnmatchcase(origin, pattern) for pattern in _ALLOWED_ORIGINS)


def _close_socket(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


def _peer_closed(sock: socket.socket) -> bool:
    """True when the peer has closed (EOF or reset); call only when the socket is readable."""
    try:
        data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True
    return data == b""


# ---------------------------------------------------------------------------------------------
# The simulator
# ---------------------------------------------------------------------------------------------


class OllamaSimulator:
    """An Ollama look-alike HTTP/1.1 server. See the module docstring."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        models: Sequence[SimModel | str] | None = None,
        version: str = DEFAULT_VERSION,
    ) -> None:
        self._bind_host = host
        self._bind_port = port
        self.version = version
        # knobs
        self.stream_chunks = 8
        self.first_byte_delay = 0.0
        self.chunk_gap = 0.0
        self.close_after_chunks: int | None = None
        self.queue_full = False
        self.tool_calls = True
        # a test may script which tools "the model" calls: data -> [(name, arguments)]
        self.decide_tools: ToolDecider | None = None
        self.text_before_tools = False
        # Contract-breaking switches (see the module docstring).
        self.break_event_order: bool | str = False
        self.omit_done = False
        self.tools_error_500 = False
        self.system_mid_conversation_500 = False
        # Fixed ids and timestamps in answers, so two answers can be compared byte for byte.
        self.fixed_ids = False
        self.host_check = True
        self.cors_check = True
        self.extra_allowed_hosts: list[str] = []
        self.default_context_length: int | None = None  # OLLAMA_CONTEXT_LENGTH (None: unset)
        self.total_vram_gib = 16.0  # what Ollama's default context follows when it is unset
        self.cloud_disabled = True  # OLLAMA_NO_CLOUD=1 (ai-server install sets it)
        self.default_keep_alive: float | None = 300.0
        # Ollama's http.Server sets no timeouts (server/routes.go, Serve): an idle keep-alive
        # connection stays open until the client closes it or Ollama exits. (seconds or None)
        self.idle_timeout: float | None = None
        self.record_requests = True
        self.record_body_limit = RECORD_BODY_LIMIT  # Claude Code's requests are ~100-200 KB
        self.log: Callable[[str], None] | None = None
        # state
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._requests: list[RecordedRequest] = []
        self._disconnects: list[Disconnect] = []
        self._models: dict[str, SimModel] = {}
        for m in DEFAULT_MODELS if models is None else models:
            spec = m if isinstance(m, SimModel) else SimModel(_normalize_name(m))
            self._models[_normalize_name(spec.name)] = spec
        self._loaded: dict[str, _Loaded] = {}
        self._blobs: set[str] = set()
        self.model_loads: list[tuple[str, int]] = []
        self.streams_started = 0
        self.streams_completed = 0
        self._conns: set[socket.socket] = set()
        self._local = threading.local()
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._address: tuple[str, int] = (host, port)
        self._thread: threading.Thread | None = None
        self._routes: list[_Route] = []
        self._register_routes()

    # -- lifecycle ------------------------------------------------------------------------------

    def _hex(self, n: int) -> str:
        return "0" * (2 * n) if self.fixed_ids else secrets.token_hex(n)

    def _small_id(self) -> int:
        return 0 if self.fixed_ids else random.randint(0, 999)

    def _unix(self) -> int:
        return _MODIFIED_TS if self.fixed_ids else int(time.time())

    def _now_rfc3339(self) -> str:
        return _rfc3339(_MODIFIED_TS if self.fixed_ids else time.time())

    def start(self) -> None:
        """Bind, listen and serve in background threads (one per connection)."""
        if self._listener is not None:
            raise RuntimeError("simulator already started")
        infos = socket.getaddrinfo(self._bind_host, self._bind_port, type=socket.SOCK_STREAM)
        family, _, _, _, addr = infos[0]
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(addr)
            listener.listen(1024)
            listener.setblocking(False)
        except OSError:
            listener.close()
            raise
        bound = listener.getsockname()
        self._address = (str(bound[0]), int(bound[1]))
        self._listener = listener
        self._wake = socket.socketpair()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._accept_loop, args=(listener, self._wake[0]),
                                        name=f"ollama-sim:{self.port}", daemon=True)
        self._thread.start()

    def _accept_loop(self, listener: socket.socket, wake: socket.socket) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(listener, selectors.EVENT_READ)
            selector.register(wake, selectors.EVENT_READ)
            while not self._stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is wake or self._stopping.is_set():
                        return
                    try:
                        conn, address = listener.accept()
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:  # e.g. out of file descriptors: back off a little
                        self._stopping.wait(0.01)
                        continue
                    threading.Thread(target=self._serve_connection, args=(conn, address),
                                     name="ollama-sim-conn", daemon=True).start()

    def stop(self) -> None:
        """Stop listening and close every client connection (idempotent)."""
        listener, wake, thread = self._listener, self._wake, self._thread
        if listener is None:
            return
        self._stopping.set()
        if wake is not None:
            with contextlib.suppress(OSError):
                wake[1].send(b"x")
        if thread is not None:
            thread.join(timeout=5)
        listener.close()
        if wake is not None:
            wake[0].close()
            wake[1].close()
        with self._lock:
            conns = list(self._conns)
            self._conns.clear()
        for sock in conns:
            _close_socket(sock)
        self._listener = None
        self._wake = None
        self._thread = None

    def __enter__(self) -> OllamaSimulator:
        if self._listener is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def host(self) -> str:
        return self._address[0]

    @property
    def port(self) -> int:
        return self._address[1]

    @property
    def url(self) -> str:
        host = self.host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    # -- observations ---------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def is_health_check(self, rec: RecordedRequest) -> bool:
        """HAProxy's own `option httpchk GET /api/version` probe (sent without a Host)."""
        return rec.method == "GET" and rec.path == "/api/version" and rec.header("host") is None

    def forwarded(self) -> list[RecordedRequest]:
        """What clients sent through the gateway: every request minus HAProxy's health checks,
        which arrive at any moment (every 2 s per node), so "the last request" is never one."""
        return [r for r in self.requests if not self.is_health_check(r)]

    def last(self, path: str) -> RecordedRequest:
        """The most recent request to `path` (health checks interleave with everything)."""
        matching = [r for r in self.requests if r.path == path]
        assert matching, f"no request to {path} reached the simulator"
        return matching[-1]

    @property
    def disconnects(self) -> list[Disconnect]:
        with self._lock:
            return list(self._disconnects)

    @property
    def models(self) -> list[SimModel]:
        with self._lock:
            return list(self._models.values())

    def loaded_models(self) -> dict[str, int]:
        """Loaded model name -> context length (what /api/ps would list now)."""
        with self._lock:
            self._expire(time.time())
            return {name: ld.context_length for name, ld in self._loaded.items()}

    def clear(self) -> None:
        """Forget recorded requests, disconnects, loads and stream counters."""
        with self._lock:
            self._requests.clear()
            self._disconnects.clear()
            self.model_loads.clear()
            self.streams_started = 0
            self.streams_completed = 0

    def wait_for_disconnect(self, timeout: float = 5.0, count: int = 1) -> bool:
        """Wait until at least ``count`` disconnects have been recorded."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._disconnects) >= count, timeout)

    def wait_for_requests(self, count: int = 1, timeout: float = 5.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self._requests) >= count, timeout)

    def wait_for_streams(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until ``count`` streams have completed."""
        with self._cond:
            return self._cond.wait_for(lambda: self.streams_completed >= count, timeout)

    # -- connection handling --------------------------------------------------------------------

    def _serve_connection(self, sock: socket.socket, address: Any) -> None:
        client = (str(address[0]), int(address[1]))
        with self._lock:
            if self._stopping.is_set():
                _close_socket(sock)
                return
            self._conns.add(sock)
        self._local.poller = None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(self.idle_timeout)
            rfile = sock.makefile("rb", buffering=READ_CHUNK)
            try:
                while not self._stopping.is_set():
                    if not self._handle_one(sock, rfile, client):
                        break
            finally:
                with contextlib.suppress(OSError):
                    rfile.close()
        except Exception:
            pass  # a connection thread must never die loudly
        finally:
            with self._lock:
                self._conns.discard(sock)
            _close_socket(sock)

    def _handle_one(self, sock: socket.socket, rfile: Any, client: tuple[str, int]) -> bool:
        line: bytes = rfile.readline(MAX_LINE + 1)
        for _ in range(8):  # tolerate stray CRLFs between requests (RFC 9112 2.2)
            if line not in (b"\r\n", b"\n"):
                break
            line = rfile.readline(MAX_LINE + 1)
        if not line:
            return False
        start_ns = time.monotonic_ns()
        rec = RecordedRequest("", "", "", "", [], 0, b"", client, time.time())
        if not line.endswith(b"\n"):
            if len(line) <= MAX_LINE:
                return False  # EOF in the middle of the request line
            return self._reject(sock, rec, 400, "request line too long")
        text = line.rstrip(b"\r\n").decode("latin-1")
        method, sp1, rest = text.partition(" ")
        target, sp2, version = rest.partition(" ")
        rec.method, rec.target, rec.version = method, target, version
        rec.path = target.split("?", 1)[0]
        if not sp1 or not sp2 or not _TOKEN_RE.fullmatch(method) or not target:
            return self._reject(sock, rec, 400, "malformed request line")
        vm = _VERSION_RE.fullmatch(version)
        if not vm:
            return self._reject(sock, rec, 400, "malformed HTTP version")
        if (vm.group(1), vm.group(2)) not in (("1", "0"), ("1", "1")):
            return self._reject(sock, rec, 505, "unsupported HTTP version")
        http11 = vm.group(2) == "1"
        try:
            self._read_headers(rfile, rec)
        except _BadRequest as exc:
            return self._reject(sock, rec, exc.status, str(exc))
        hosts = rec.header_all("host")
        if len(hosts) > 1:
            return self._reject(sock, rec, 400, "too many Host headers")
        if http11 and not hosts:
            return self._reject(sock, rec, 400, "missing required Host header")
        if any(ord(c) < 0x21 or ord(c) == 0x7F for c in target):
            return self._reject(sock, rec, 400, "invalid request target")
        try:
            body, digest = self._read_body(sock, rfile, rec, http11)
        except _BadRequest as exc:
            return self._reject(sock, rec, exc.status, str(exc))
        except EOFError:
            rec.error = "connection closed while reading the body"
            self._record(rec)
            return False
        tokens = {t.strip().lower() for v in rec.header_all("connection") for t in v.split(",")}
        keep_alive = "close" not in tokens and (http11 or "keep-alive" in tokens)
        # decode the path the way Go's url.ParseRequestURI + gin (UseRawPath=false) do
        raw_path = rec.path
        if target.startswith(("http://", "https://")):
            raw_path = urllib.parse.urlsplit(target).path or "/"
        elif not target.startswith("/") and target != "*":
            return self._reject(sock, rec, 400, "invalid URI for request")
        if _BAD_ESCAPE_RE.search(raw_path):
            return self._reject(sock, rec, 400, "invalid URL escape")
        decoded = urllib.parse.unquote_to_bytes(raw_path).decode("utf-8", "surrogateescape")
        query = target.split("?", 1)[1] if "?" in target else ""
        req = _Request(rec, body, digest, decoded, query, keep_alive, start_ns)
        self._record(rec)
        faults = self._faults_for(req)
        try:
            resp = self._dispatch(req, faults)
        except Exception as exc:  # a handler bug is a 500, like gin's Recovery
            resp = _native_error(500, f"simulator error: {exc!r}")
        if isinstance(resp, _Stream):
            keep = self._send_stream(sock, req, resp, faults)
        else:
            keep = self._send_full(sock, req, resp, faults)
        self._touch()
        if self.log is not None:
            self.log(f'{client[0]}:{client[1]} "{method} {target} {version}" {rec.status}')
        return keep and keep_alive

    def _record(self, rec: RecordedRequest) -> None:
        if not self.record_requests:
            return
        with self._cond:
            self._requests.append(rec)
            self._cond.notify_all()

    def _reject(self, sock: socket.socket, rec: RecordedRequest, status: int, why: str) -> bool:
        """Answer a request that could not be parsed (like Go's net/http) and close."""
        rec.error = why
        rec.status = status
        self._record(rec)
        body = f"{status} {_reason(status)}".encode()
        head = (
            f"HTTP/1.1 {status} {_reason(status)}\r\nContent-Type: {TEXT_CT}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        with contextlib.suppress(OSError):
            sock.sendall(head + body)
        if self.log is not None:
            self.log(f'{rec.client[0]}:{rec.client[1]} "{rec.method} {rec.target} '
                     f'{rec.version}" {status} ({why})')
        return False

    @staticmethod
    def _read_headers(rfile: Any, rec: RecordedRequest) -> None:
        total = 0
        while True:
            raw: bytes = rfile.readline(MAX_LINE + 1)
            if not raw:
                raise _BadRequest(400, "connection closed in the headers")
            if raw in (b"\r\n", b"\n"):
                return
            total += len(raw)
            if not raw.endswith(b"\n") or total > MAX_HEADER_BYTES:
                raise _BadRequest(431, "request header fields too large")
            if len(rec.headers) >= MAX_HEADERS:
                raise _BadRequest(431, "too many header fields")
            text = raw.rstrip(b"\r\n").decode("latin-1")
            if text[:1] in (" ", "\t"):
                raise _BadRequest(400, "obsolete line folding")
            name, colon, value = text.partition(":")
            if not colon or not _TOKEN_RE.fullmatch(name):
                raise _BadRequest(400, f"malformed header line {text[:60]!r}")
            rec.headers.append((name, value.strip(" \t")))

    def _read_body(
        self, sock: socket.socket, rfile: Any, rec: RecordedRequest, http11: bool
    ) -> tuple[bytes, str]:
        te_values = rec.header_all("transfer-encoding")
        cl_values = rec.header_all("content-length")
        chunked = False
        length = 0
        if te_values:
            codings = [c.strip().lower() for v in te_values for c in v.split(",") if c.strip()]
            if codings != ["chunked"]:
                raise _BadRequest(501, "unsupported transfer encoding")
            chunked = True
        elif cl_values:
            values = {v.strip() for v in cl_values}
            if len(values) != 1:
                raise _BadRequest(400, "conflicting Content-Length headers")
            value = values.pop()
            if not value.isdigit():
                raise _BadRequest(400, f"bad Content-Length {value!r}")
            length = int(value)
        if not chunked and length == 0:
            return b"", hashlib.sha256(b"").hexdigest()
        expect = (rec.header("expect") or "").lower()
        if http11 and expect == "100-continue":
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        kept = bytearray()
        hasher = hashlib.sha256()
        size = 0

        def take(n: int) -> None:
            nonlocal size
            while n > 0:
                piece: bytes = rfile.read(min(n, READ_CHUNK))
                if not piece:
                    raise EOFError
                n -= len(piece)
                size += len(piece)
                hasher.update(piece)
                room = PROCESS_BODY_LIMIT - len(kept)
                if room > 0:
                    kept.extend(piece[:room])
                rec.body_size = size

        if chunked:
            while True:
                size_line: bytes = rfile.readline(MAX_LINE + 1)
                if not size_line:
                    raise EOFError
                size_text = size_line.split(b";", 1)[0].strip()
                if not _HEX_RE.fullmatch(size_text.decode("latin-1")):
                    raise _BadRequest(400, "malformed chunk size")
                n = int(size_text, 16)
                if n == 0:
                    while True:  # trailer section
                        trailer: bytes = rfile.readline(MAX_LINE + 1)
                        if not trailer:
                            raise EOFError
                        if trailer in (b"\r\n", b"\n"):
                            break
                    break
                take(n)
                if rfile.readline(3) not in (b"\r\n", b"\n"):
                    raise _BadRequest(400, "malformed chunk terminator")
        else:
            take(length)
        rec.body = bytes(kept[:self.record_body_limit])
        rec.body_size = size
        return bytes(kept), hasher.hexdigest()

    def _faults_for(self, req: _Request) -> _Faults:
        def number(name: str, default: float) -> float:
            raw = req.header(name)
            if raw is None:
                return default
            try:
                return max(0.0, float(raw))
            except ValueError:
                return default

        close_raw = req.header("x-sim-close-after-chunks")
        close_after = self.close_after_chunks
        if close_raw is not None:
            with contextlib.suppress(ValueError):
                close_after = max(0, int(close_raw))
        def switch(name: str, default: bool) -> bool:
            raw = req.header(name)
            if raw is None:
                return default
            return raw.strip().lower() not in ("", "0", "false", "no", "off")

        order = _break_mode(self.break_event_order)
        order_raw = req.header("x-sim-break-event-order")
        if order_raw is not None:
            value = order_raw.strip().lower()
            order = _break_mode(value not in ("", "0", "false", "no", "off") and value)
        return _Faults(
            first_byte_delay=number("x-sim-first-byte-delay", self.first_byte_delay),
            chunk_gap=number("x-sim-chunk-gap", self.chunk_gap),
            chunks=min(1_000_000, int(number("x-sim-chunks", float(self.stream_chunks)))),
            close_after=close_after,
            break_order=order,
            omit_done=switch("x-sim-omit-done", self.omit_done),
            tools_error_500=switch("x-sim-tools-error-500", self.tools_error_500),
            text_before_tools=switch("x-sim-text-before-tools", self.text_before_tools),
        )

    # -- waiting with disconnect detection ---------------------------------------------------

    def _wait(self, sock: socket.socket, seconds: float) -> bool:
        """Sleep up to ``seconds``; True if the client closed meanwhile (or we are stopping)."""
        deadline = time.monotonic() + seconds
        poller = cast("select.poll | None", getattr(self._local, "poller", None))
        if poller is None:  # one poll object per connection thread, registered once
            poller = select.poll()
            poller.register(sock, select.POLLIN | select.POLLPRI)
            self._local.poller = poller
        while True:
            if self._stopping.is_set():
                return True
            remaining = deadline - time.monotonic()
            events = poller.poll(max(0, int(remaining * 1000 + 0.999)))
            if events:
                mask = events[0][1]
                if mask & (select.POLLHUP | select.POLLERR | select.POLLNVAL) or _peer_closed(
                    sock
                ):
                    return True
                # pipelined bytes waiting: the peer is alive, just sleep out the rest
                return self._stopping.wait(max(0.0, deadline - time.monotonic()))
            if time.monotonic() >= deadline:
                return False

    def _note_disconnect(self, req: _Request, chunks: int, phase: str) -> None:
        if self._stopping.is_set():
            return
        rec = req.record
        with self._cond:
            self._disconnects.append(
                Disconnect(rec.method, rec.target, rec.path, chunks, phase, time.time())
            )
            self._cond.notify_all()

    # -- writing responses ------------------------------------------------------------------------

    def _head(self, req: _Request, status: int, content_type: str | None,
              extra: list[tuple[str, str]], framing: list[tuple[str, str]], close: bool) -> bytes:
        version = "HTTP/1.1" if req.record.version == "HTTP/1.1" else "HTTP/1.0"
        lines = [f"{version} {status} {_reason(status)}"]
        if content_type is not None:
            lines.append(f"Content-Type: {content_type}")
        lines.extend(f"{k}: {v}" for k, v in extra)
        lines.append(f"Date: {_http_date()}")
        lines.extend(f"{k}: {v}" for k, v in framing)
        if close:
            lines.append("Connection: close")
        elif version == "HTTP/1.0":
            lines.append("Connection: keep-alive")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _send_full(self, sock: socket.socket, req: _Request, resp: _Full, f: _Faults) -> bool:
        if resp.delay_tokens >= 0:
            wait = f.first_byte_delay + f.chunk_gap * max(0, resp.delay_tokens - 1)
            if wait > 0 and self._wait(sock, wait):
                self._note_disconnect(req, 0, "before-first-byte")
                return False
        close = resp.close or not req.keep_alive
        framing = [] if resp.status in (204, 304) else [("Content-Length", str(len(resp.body)))]
        head = self._head(req, resp.status, resp.content_type, resp.headers, framing, close)
        req.record.status = resp.status
        try:
            sock.sendall(head if req.record.method == "HEAD" else head + resp.body)
        except OSError:
            return False
        return not close

    def _send_stream(self, sock: socket.socket, req: _Request, resp: _Stream, f: _Faults) -> bool:
        if resp.inference and f.first_byte_delay > 0 and self._wait(sock, f.first_byte_delay):
            self._note_disconnect(req, 0, "before-first-byte")
            return False
        chunked = req.record.version == "HTTP/1.1"
        close = not chunked or not req.keep_alive
        framing = [("Transfer-Encoding", "chunked")] if chunked else []
        pending = self._head(req, resp.status, resp.content_type, resp.headers, framing, close)
        req.record.status = resp.status
        with self._lock:
            self.streams_started += 1
        sent = 0
        for chunk in resp.chunks:
            if f.close_after is not None and sent >= f.close_after:
                if pending:
                    with contextlib.suppress(OSError):
                        sock.sendall(pending)
                _close_socket(sock)
                return False
            if sent and f.chunk_gap > 0:
                gone = self._wait(sock, f.chunk_gap)
            else:
                gone = self._wait(sock, 0)
            if gone:
                self._note_disconnect(req, sent, "streaming" if sent else "before-first-byte")
                return False
            data = b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk
            try:
                sock.sendall(pending + data)
            except OSError:
                self._note_disconnect(req, sent, "streaming" if sent else "before-first-byte")
                return False
            pending = b""
            sent += 1
        try:
            sock.sendall(pending + (b"0\r\n\r\n" if chunked else b""))
        except OSError:
            self._note_disconnect(req, sent, "streaming")
            return False
        with self._cond:
            self.streams_completed += 1
            self._cond.notify_all()
        return not close

    # -- routing ----------------------------------------------------------------------------------

    def _register_routes(self) -> None:
        table: list[tuple[str, str, _Handler]] = [
            ("GET", "/", self._h_root),
            ("HEAD", "/", self._h_root),
            ("GET", "/api/version", self._h_version),
            ("HEAD", "/api/version", self._h_version),
            ("GET", "/api/tags", self._h_tags),
            ("HEAD", "/api/tags", self._h_tags),
            ("POST", "/api/show", self._h_show),
            ("GET", "/api/ps", self._h_ps),
            ("GET", "/api/status", self._h_status),
            ("POST", "/api/chat", self._h_chat),
            ("POST", "/api/generate", self._h_generate),
            ("POST", "/api/embed", self._h_embed),
            ("POST", "/api/embeddings", self._h_embeddings),
            ("POST", "/api/pull", self._h_pull),
            ("POST", "/api/push", self._h_push),
            ("POST", "/api/create", self._h_create),
            ("POST", "/api/copy", self._h_copy),
            ("POST", "/api/blobs/:digest", self._h_blob_upload),
            ("HEAD", "/api/blobs/:digest", self._h_blob_head),
            ("DELETE", "/api/delete", self._h_delete),
            ("POST", "/api/me", self._h_me),
            ("POST", "/api/signout", self._h_empty_ok),
            ("DELETE", "/api/user/keys/:encodedKey", self._h_empty_ok),
            ("POST", "/api/experimental/web_search", self._h_web_search),
            ("POST", "/api/experimental/web_fetch", self._h_web_fetch),
            ("GET", "/api/experimental/model-recommendations", self._h_recommendations),
            ("POST", "/v1/chat/completions", self._h_oai_chat),
            ("POST", "/v1/completions", self._h_oai_completions),
            ("POST", "/v1/embeddings", self._h_oai_embeddings),
            ("GET", "/v1/models", self._h_oai_models),
            ("GET", "/v1/models/:model", self._h_oai_model),
            ("POST", "/v1/responses", self._h_oai_responses),
            ("POST", "/v1/messages", self._h_anthropic_messages),
            ("POST", "/v1/audio/transcriptions", self._h_oai_transcriptions),
        ]
        self._routes = [_Route(m, p, h) for m, p, h in table]

    def _find_route(self, method: str, path: str) -> tuple[_Route, dict[str, str]] | None:
        for route in self._routes:
            if route.method == method:
                params = route.match(path)
                if params is not None:
                    return route, params
        return None

    def _dispatch(self, req: _Request, f: _Faults) -> _Response:
        method, path = req.record.method, req.decoded_path
        # Go's ServeMux sits in front of gin (routes.go Serve: http.Handle("/", h)): a path with
        # "//", "." or ".." segments is answered with a redirect to the cleaned path before any
        # middleware (no Host or CORS check).
        cleaned = _clean_path(path)
        if cleaned != path and method != "CONNECT":
            return self._clean_redirect(req, cleaned)
        found = self._find_route(method, path)
        if (found is None and len(path) > 1 and path.endswith("/")
                and self._find_route(method, path[:-1]) is not None):
            return self._redirect(req, path[:-1])
        extra: list[tuple[str, str]] = []
        origin = req.header("origin")
        if self.cors_check and origin is not None:
            if not origin_allowed(origin):
                return _Full(403, b"", None)
            extra = [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
            if method == "OPTIONS" and req.header("access-control-request-method") is not None:
                return _Full(204, b"", None, [
                    *extra,
                    ("Access-Control-Allow-Methods", "GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS"),
                    ("Access-Control-Allow-Headers", "Authorization,Content-Type,User-Agent,"
                     "Accept,X-Requested-With,X-Stainless-Lang,X-Stainless-Package-Version,"
                     "X-Stainless-Os,X-Stainless-Arch,X-Stainless-Retry-Count,"
                     "X-Stainless-Runtime,X-Stainless-Runtime-Version,X-Stainless-Async,"
                     "X-Stainless-Helper-Method,X-Stainless-Poll-Helper,"
                     "X-Stainless-Custom-Poll-Interval,X-Stainless-Timeout"),
                    ("Access-Control-Max-Age", "43200"),
                ])
        if self.host_check:
            host = req.header("host")
            if not host_allowed(host, self.extra_allowed_hosts):
                return _Full(403, b"", None, extra)
            if method == "OPTIONS" and not _is_ip(_host_of(host or "")):
                return _Full(204, b"", None, extra)
        if found is None:
            allowed: list[str] = []
            for route in self._routes:
                if route.method != method and route.method not in allowed and route.match(path) \
                        is not None:
                    allowed.append(route.method)
            if allowed:
                return _Full(405, b"405 method not allowed", GIN_TEXT_CT,
                             [*extra, ("Allow", ", ".join(allowed))])
            return _Full(404, b"404 page not found", GIN_TEXT_CT, extra)
        route, req.params = found
        resp = route.handler(req, f)
        resp.headers = extra + resp.headers
        return resp

    def _clean_redirect(self, req: _Request, new_path: str) -> _Full:
        """net/http's RedirectHandler(StatusMovedPermanently): 301, an HTML body for GET only,
        a text/html content type for GET and HEAD."""
        location = urllib.parse.quote(new_path, safe="/:@!$&'()*+,;=-._~")
        if req.query:
            location += "?" + req.query
        method = req.record.method
        body = b""
        if method == "GET":
            escaped = location.replace("&", "&amp;").replace('"', "&#34;").replace("<", "&lt;")
            body = f'<a href="{escaped}">Moved Permanently</a>.\n\n'.encode()
        ctype = "text/html; charset=utf-8" if method in ("GET", "HEAD") else None
        return _Full(301, body, ctype, [("Location", location)])

    def _redirect(self, req: _Request, new_path: str) -> _Full:
        location = urllib.parse.quote(new_path, safe="/:@!$&'()*+,;=-._~")
        if req.query:
            location += "?" + req.query
        if req.record.method == "GET":
            escaped = location.replace("&", "&amp;").replace('"', "&#34;").replace("<", "&lt;")
            body = f'<a href="{escaped}">Moved Permanently</a>.\n\n'.encode()
            return _Full(301, body, "text/html; charset=utf-8", [("Location", location)])
        ctype = "text/html; charset=utf-8" if req.record.method == "HEAD" else None
        return _Full(307, b"", ctype, [("Location", location)])

    # -- model state -----------------------------------------------------------------------------

    def _find_model(self, name: str) -> SimModel | None:
        with self._lock:
            return self._models.get(_normalize_name(name))

    def _add_model(self, name: str, like: SimModel | None = None) -> SimModel:
        key = _normalize_name(name)
        with self._lock:
            if key not in self._models:
                base = like or SimModel(key)
                self._models[key] = SimModel(
                    key, base.arch, base.context_length, base.capabilities, base.parameter_size,
                    base.quantization_level, base.size, base.embedding_length, base.family)
            return self._models[key]

    def _expire(self, now: float) -> None:
        for name in [n for n, ld in self._loaded.items()
                     if ld.expires_at is not None and ld.expires_at <= now]:
            del self._loaded[name]

    def _use_model(self, model: SimModel, keep_alive: _KeepAlive, num_ctx: int | None) -> None:
        """Load (or reload, on a context change) a runner, and apply keep_alive like Ollama:
        the duration given by a request sticks to the runner (sched.go sessionDuration), and
        the idle countdown restarts after every request that used it (see _touch)."""
        now = time.time()
        with self._lock:
            self._expire(now)
            if keep_alive.is_zero and model.name not in self._loaded:
                return
            ctx = min(num_ctx or self.context_default(), model.context_length)
            current = self._loaded.get(model.name)
            if current is None or current.context_length != ctx:
                if keep_alive.present:
                    session = keep_alive.seconds
                else:
                    default = self.default_keep_alive
                    session = None if default is None or default < 0 else default
                current = _Loaded(ctx, None, now, session)
                self._loaded[model.name] = current
                self.model_loads.append((model.name, ctx))
            elif keep_alive.present:
                current.session = keep_alive.seconds
            current.expires_at = None if current.session is None else now + current.session
        self._local.used_model = model.name

    def _touch(self) -> None:
        """The request that used a runner has finished: its idle countdown starts now."""
        name = getattr(self._local, "used_model", None)
        self._local.used_model = None
        if name is None:
            return
        now = time.time()
        with self._lock:
            current = self._loaded.get(name)
            if current is not None and current.session is not None:
                current.expires_at = now + current.session

    def context_default(self) -> int:
        """OLLAMA_CONTEXT_LENGTH, or when unset Ollama's default by total VRAM (routes.go
        Serve: >= 47 GiB 262144, >= 23 GiB 32768, else 4096); capped by each model's trained
        context where it is used."""
        if self.default_context_length is not None:
            return self.default_context_length
        if self.total_vram_gib >= 47:
            return 262144
        return 32768 if self.total_vram_gib >= 23 else 4096

    def _unload(self, model: SimModel) -> None:
        with self._lock:
            self._loaded.pop(model.name, None)

    # -- request helpers ---------------------------------------------------------------------------

    @staticmethod
    def _json_body(req: _Request, err: _ErrorFn) -> dict[str, Any] | _Full:
        if not req.body.strip():
            return err(400, "missing request body")
        try:
            data = json.loads(req.body)
        except (ValueError, UnicodeDecodeError) as exc:
            return err(400, f"invalid character in request body: {exc}")
        if not isinstance(data, dict):
            return err(400, f"json: cannot unmarshal {type(data).__name__} into Go value")
        return cast(dict[str, Any], data)

    def _resolve(self, data: dict[str, Any], err: _ErrorFn, verb: str | None,
                 faults: _Faults | None = None) -> tuple[SimModel, str] | _Full:
        """Model lookup and capability checks, then the queue (order as in Ollama)."""
        name = data.get("model")
        if not isinstance(name, str) or not name:
            return err(400, "model is required")
        model = self._find_model(name)
        if model is None:
            return err(404, f"model '{name}' not found")
        if verb is not None and "completion" not in model.capabilities:
            return err(400, f'"{name}" does not support {verb}')
        if data.get("tools") and "tools" not in model.capabilities:
            return err(400, f"{_registry_name(model.name)} does not support tools")
        if data.get("tools") and faults is not None and faults.tools_error_500:
            return err(500, "simulated failure: this server breaks on requests with tools")
        if self.queue_full:
            return err(503, SERVER_BUSY)
        return model, name

    @staticmethod
    def _options(data: dict[str, Any]) -> dict[str, Any]:
        opts = data.get("options")
        return cast(dict[str, Any], opts) if isinstance(opts, dict) else {}

    def _num_ctx(self, data: dict[str, Any]) -> int | None:
        value = self._options(data).get("num_ctx")
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        return None

    @staticmethod
    def _thinking(model: SimModel, enabled: bool, f: _Faults) -> list[str]:
        """Thinking tokens: a thinking-capable model thinks unless the request turns it off
        (routes.go ChatHandler sets Think=true when the request leaves it unset)."""
        if not enabled or "thinking" not in model.capabilities:
            return []
        return _think_tokens(min(THINK_CHUNKS, f.chunks))

    def _generation(self, data: dict[str, Any], f: _Faults, limit: Any) -> _Generation:
        """What the "model" answers: tool calls when the turn asks for them (with text first
        when x-sim-text-before-tools / text_before_tools says so), else text."""
        tools = (self.decide_tools or _requested_tools)(data) if self.tool_calls else []
        if tools and not f.text_before_tools:
            return _Generation([], False, tools)
        toks, cut = _plan(f.chunks, limit)
        return _Generation(toks, cut, tools)

    def _stats(self, req: _Request, prompt_tokens: int, eval_count: int) -> dict[str, Any]:
        total = 123_456_789 if self.fixed_ids else time.monotonic_ns() - req.start_ns
        return {
            "total_duration": total, "load_duration": total // 10,
            "prompt_eval_count": prompt_tokens, "prompt_eval_duration": total // 5,
            "eval_count": eval_count, "eval_duration": total - total // 10 - total // 5,
        }

    # -- simple routes -----------------------------------------------------------------------------

    def _h_root(self, req: _Request, f: _Faults) -> _Response:
        return _Full(200, b"Ollama is running", TEXT_CT)

    def _h_version(self, req: _Request, f: _Faults) -> _Response:
        return _Full(200, _j({"version": self.version}))

    @staticmethod
    def _details(m: SimModel) -> dict[str, Any]:
        return {"parent_model": "", "format": "gguf", "family": m.model_family,
                "families": [m.model_family], "parameter_size": m.parameter_size,
                "quantization_level": m.quantization_level}

    def _h_tags(self, req: _Request, f: _Faults) -> _Response:
        return _Full(200, _j({"models": [
            {"name": m.name, "model": m.name, "modified_at": _rfc3339(_MODIFIED_TS),
             "size": m.size, "digest": m.digest, "details": self._details(m),
             "capabilities": list(m.capabilities)}
            for m in self.models
        ]}))

    def _h_show(self, req: _Request, f: _Faults) -> _Response:
        data = self._json_body(req, _native_error)
        if isinstance(data, _Full):
            return data
        name = data.get("model") or data.get("name")
        if not isinstance(name, str) or not name:
            return _native_error(400, "model is required")
        m = self._find_model(name)
        if m is None:
            return _native_error(404, f"model '{name}' not found")
        if "completion" in m.capabilities:
            template = ("{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
                        "{{ end }}<|im_start|>assistant\n")
            params = ('stop                           "<|im_end|>"\n'
                      "temperature                    0.7")
        else:
            template = "{{ .Prompt }}"
            params = f"num_ctx                        {m.context_length}"
        param_lines = "\n".join(
            "PARAMETER " + " ".join(line.split(None, 1)) for line in params.splitlines())
        modelfile = (
            '# Modelfile generated by "ollama show"\n'
            "# To build a new Modelfile based on this, replace FROM with:\n"
            f"# FROM {m.name}\n\n"
            f"FROM /root/.ollama/models/blobs/sha256-{m.digest}\n"
            f'TEMPLATE """{template}"""\n{param_lines}\n'
        )
        arch = m.arch
        return _Full(200, _j({
            "license": "Simulated model: no license.",
            "modelfile": modelfile,
            "parameters": params,
            "template": template,
            "details": self._details(m),
            "model_info": {
                "general.architecture": arch,
                "general.basename": m.name.split(":")[0],
                "general.file_type": 15,
                "general.parameter_count": m.parameter_count,
                "general.quantization_version": 2,
                f"{arch}.context_length": m.context_length,
                f"{arch}.embedding_length": m.embedding_length,
                f"{arch}.block_count": 28,
                f"{arch}.attention.head_count": 32,
                f"{arch}.attention.head_count_kv": 4,
            },
            "capabilities": list(m.capabilities),
            "modified_at": _rfc3339(_MODIFIED_TS),
        }))

    def _h_ps(self, req: _Request, f: _Faults) -> _Response:
        now = time.time()
        with self._lock:
            self._expire(now)
            loaded = [(self._models.get(n), ld) for n, ld in self._loaded.items()]
        entries = []
        for m, ld in loaded:
            if m is None:
                continue
            kv = ld.context_length * 131072
            expires = now + _FOREVER if ld.expires_at is None else ld.expires_at
            entries.append({
                "name": m.name, "model": m.name, "size": m.size + kv, "digest": m.digest,
                "details": self._details(m), "expires_at": _rfc3339(expires),
                "size_vram": m.size + kv, "context_length": ld.context_length,
            })
        return _Full(200, _j({"models": entries}))

    def _h_status(self, req: _Request, f: _Faults) -> _Response:
        return _Full(200, _j({"cloud": {"disabled": False, "source": "default"}}))

    # -- native inference -----------------------------------------------------------------------

    def _native_common(self, req: _Request, verb: str | None, f: _Faults | None = None
                       ) -> tuple[dict[str, Any], SimModel, str, _KeepAlive] | _Full:
        data = self._json_body(req, _native_error)
        if isinstance(data, _Full):
            return data
        try:
            keep_alive = _KeepAlive.parse(data.get("keep_alive"))
        except ValueError as exc:
            return _native_error(400, str(exc))
        resolved = self._resolve(data, _native_error, verb, f)
        if isinstance(resolved, _Full):
            return resolved
        return data, resolved[0], resolved[1], keep_alive

    def _h_generate(self, req: _Request, f: _Faults) -> _Response:
        common = self._native_common(req, "generate", f)
        if isinstance(common, _Full):
            return common
        data, model, name, keep_alive = common
        prompt = data.get("prompt")
        if not prompt and not data.get("images"):
            reason = "unload" if keep_alive.is_zero else "load"
            if reason == "unload":
                self._unload(model)
            else:
                self._use_model(model, keep_alive, self._num_ctx(data))
            return _Full(200, _j({"model": name, "created_at": self._now_rfc3339(), "response": "",
                                  "done": True, "done_reason": reason}), delay_tokens=0)
        self._use_model(model, keep_alive, self._num_ctx(data))
        toks, cut = _plan(f.chunks, self._options(data).get("num_predict"))
        reason = "length" if cut else "stop"
        prompt_tokens = _estimate_tokens([prompt, data.get("system")])

        def final(response: str) -> dict[str, Any]:
            out: dict[str, Any] = {"model": name, "created_at": self._now_rfc3339(),
                                   "response": response, "done": True, "done_reason": reason}
            out.update(self._stats(req, prompt_tokens, len(toks)))
            return out

        def unload_after() -> None:
            if keep_alive.is_zero:
                self._unload(model)

        if data.get("stream") is False:
            unload_after()
            return _Full(200, _j(final("".join(toks))), delay_tokens=len(toks))

        def gen() -> Iterator[bytes]:
            for tok in toks:
                yield _ndjson({"model": name, "created_at": self._now_rfc3339(), "response": tok,
                               "done": False})
            unload_after()
            yield _ndjson(final(""))

        return _Stream(gen(), NDJSON_CT)

    def _h_chat(self, req: _Request, f: _Faults) -> _Response:
        common = self._native_common(req, "chat", f)
        if isinstance(common, _Full):
            return common
        data, model, name, keep_alive = common
        messages = data.get("messages")
        if not messages:
            reason = "unload" if keep_alive.is_zero else "load"
            if reason == "unload":
                self._unload(model)
            else:
                self._use_model(model, keep_alive, self._num_ctx(data))
            return _Full(200, _j({"model": name, "created_at": self._now_rfc3339(),
                                  "message": {"role": "assistant", "content": ""},
                                  "done": True, "done_reason": reason}), delay_tokens=0)
        if not isinstance(messages, list):
            return _native_error(400, "json: cannot unmarshal messages into []api.Message")
        self._use_model(model, keep_alive, self._num_ctx(data))
        toks, cut = _plan(f.chunks, self._options(data).get("num_predict"))
        reason = "length" if cut else "stop"
        prompt_tokens = _estimate_tokens(messages)
        # routes.go ChatHandler: Think unset on a thinking-capable model means think
        thinking = self._thinking(model, data.get("think") not in (False, "none"), f)

        def final(content: str, thought: str = "") -> dict[str, Any]:
            message = {"role": "assistant", "content": content}
            if thought:
                message["thinking"] = thought
            out: dict[str, Any] = {"model": name, "created_at": self._now_rfc3339(),
                                   "message": message, "done": True, "done_reason": reason}
            out.update(self._stats(req, prompt_tokens, len(thinking) + len(toks)))
            return out

        if data.get("stream") is False:
            if keep_alive.is_zero:
                self._unload(model)
            return _Full(200, _j(final("".join(toks), "".join(thinking))),
                         delay_tokens=len(thinking) + len(toks))

        def gen() -> Iterator[bytes]:
            for tok in thinking:
                yield _ndjson({"model": name, "created_at": self._now_rfc3339(),
                               "message": {"role": "assistant", "content": "", "thinking": tok},
                               "done": False})
            for tok in toks:
                yield _ndjson({"model": name, "created_at": self._now_rfc3339(),
                               "message": {"role": "assistant", "content": tok}, "done": False})
            if keep_alive.is_zero:
                self._unload(model)
            yield _ndjson(final(""))

        return _Stream(gen(), NDJSON_CT)

    @staticmethod
    def _inputs(value: Any) -> list[str] | None:
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and value:
            return [v if isinstance(v, str) else json.dumps(v) for v in value]
        return None

    def _h_embed(self, req: _Request, f: _Faults) -> _Response:
        common = self._native_common(req, None, f)
        if isinstance(common, _Full):
            return common
        data, model, name, keep_alive = common
        inputs = self._inputs(data.get("input"))
        if inputs is None:
            inputs = []
        self._use_model(model, keep_alive, self._num_ctx(data))
        out: dict[str, Any] = {
            "model": name,
            "embeddings": [_embedding(t, model.embedding_length) for t in inputs],
        }
        stats = self._stats(req, _estimate_tokens(inputs), 0)
        out.update({k: stats[k] for k in ("total_duration", "load_duration",
                                          "prompt_eval_count")})
        return _Full(200, _j(out), delay_tokens=0)

    def _h_embeddings(self, req: _Request, f: _Faults) -> _Response:
        common = self._native_common(req, None, f)
        if isinstance(common, _Full):
            return common
        data, model, _, keep_alive = common
        prompt = data.get("prompt")
        self._use_model(model, keep_alive, self._num_ctx(data))
        vec = _embedding(prompt, model.embedding_length) if isinstance(prompt, str) and prompt \
            else []
        return _Full(200, _j({"embedding": vec}), delay_tokens=0)

    # -- OpenAI-compatible ------------------------------------------------------------------------

    def _h_oai_models(self, req: _Request, f: _Faults) -> _Response:
        models = self.models
        data = [{"id": m.name, "object": "model", "created": _MODIFIED_TS, "owned_by": "library"}
                for m in models]
        return _Full(200, _j({"object": "list", "data": data or None}))

    def _cloud_refusal(self, req: _Request, name: Any, details: bool = False) -> _Full | None:
        """cloudPassthroughMiddleware: a cloud model name with cloud disabled is a 403 in
        Ollama's own {"error"} shape, before any dialect middleware."""
        if not _cloud_model(name) or not self.cloud_disabled:
            return None
        what = "remote model details are unavailable" if details else \
            "remote model is unavailable"
        return _native_error(403, f"ollama cloud is disabled: {what}")

    def _h_recommendations(self, req: _Request, f: _Faults) -> _Response:
        # routes.go ModelRecommendationsExperimentalHandler: the built-in defaults when
        # cloud is disabled (no refresh from ollama.com).
        return _Full(200, _j({"recommendations": [
            {"model": "kimi-k2.6:cloud", "description": "State-of-the-art coding, long-horizon "
             "execution, and multimodal agent swarm capability", "context_length": 262144,
             "max_output_tokens": 262144},
            {"model": "glm-5.1:cloud", "description": "Reasoning and code generation",
             "context_length": 202752, "max_output_tokens": 131072},
        ]}))

    def _h_oai_model(self, req: _Request, f: _Faults) -> _Response:
        name = req.params["model"]
        cloud = self._cloud_refusal(req, name, details=True)
        if cloud is not None:
            return cloud
        m = self._find_model(name)
        if m is None:
            return _openai_error(404, f"model '{name}' not found")
        return _Full(200, _j({"id": name, "object": "model", "created": _MODIFIED_TS,
                              "owned_by": "library"}))

    def _oai_common(self, req: _Request, verb: str | None, f: _Faults | None = None,
                    messages: bool = False) -> tuple[dict[str, Any], SimModel, str] | _Full:
        data = self._json_body(req, _openai_error)
        if isinstance(data, _Full):
            return data
        cloud = self._cloud_refusal(req, data.get("model"))
        if cloud is not None:
            return cloud
        if messages and not data.get("messages"):  # middleware/openai.go ChatMiddleware
            return _openai_error(400, "[] is too short - 'messages'")
        resolved = self._resolve(data, _openai_error, verb, f)
        if isinstance(resolved, _Full):
            return resolved
        self._use_model(resolved[0], _KeepAlive(False, None), None)
        return data, resolved[0], resolved[1]

    @staticmethod
    def _include_usage(data: dict[str, Any]) -> bool:
        opts = data.get("stream_options")
        return isinstance(opts, dict) and opts.get("include_usage") is True

    def _h_oai_chat(self, req: _Request, f: _Faults) -> _Response:
        common = self._oai_common(req, "chat", f, messages=True)
        if isinstance(common, _Full):
            return common
        data, model, name = common
        limit = data.get("max_completion_tokens", data.get("max_tokens"))
        effort = data.get("reasoning_effort")
        if isinstance(data.get("reasoning"), dict):
            effort = data["reasoning"].get("effort")
        thinking = self._thinking(model, effort != "none", f)
        gen_out = self._generation(data, f, limit)
        toks, cut = gen_out.text, gen_out.cut
        if _json_mode(data):
            toks = _as_json_tokens(toks)
        finish = "length" if cut else "stop"
        calls: list[dict[str, Any]] = [
            {"id": f"call_{self._hex(4)}", "index": i, "type": "function",
             "function": {"name": tool, "arguments": _j(args).decode()}}
            for i, (tool, args) in enumerate(gen_out.tools)]
        if calls:
            finish = "tool_calls"
        n_out = len(thinking) + len(toks) + sum(_estimate_tokens(_j(args).decode())
                                                for _, args in gen_out.tools)
        prompt_tokens = _estimate_tokens(data.get("messages"))
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": n_out,
                 "total_tokens": prompt_tokens + n_out}
        cid = f"chatcmpl-{self._small_id()}"
        created = self._unix()
        if not data.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": "".join(toks)}
            if thinking:
                message["reasoning"] = "".join(thinking)
            if calls:
                message["tool_calls"] = calls
            return _Full(200, _j({
                "id": cid, "object": "chat.completion", "created": created, "model": name,
                "system_fingerprint": "fp_ollama",
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": usage,
            }), delay_tokens=n_out)
        include_usage = self._include_usage(data)

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            obj: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk",
                                   "created": created, "model": name,
                                   "system_fingerprint": "fp_ollama", "choices": choices}
            obj.update(extra)
            return _sse(obj)

        def gen() -> Iterator[bytes]:
            # openai.ToStreamChunks: "role" only in the first delta of the stream.
            deltas: list[dict[str, Any]] = [{"reasoning": t} for t in thinking]
            deltas += [{"content": t} for t in toks]
            if calls:
                deltas.append({"content": "", "tool_calls": calls})
            if not deltas:
                deltas.append({"content": ""})
            for n, delta in enumerate(deltas):
                if n == 0:
                    delta = {"role": "assistant", **delta}
                yield chunk([{"index": 0, "delta": delta, "finish_reason": None}])
            yield chunk([{"index": 0, "delta": {}, "finish_reason": finish}])
            if include_usage:
                yield chunk([], usage=usage)
            if not f.omit_done:
                yield b"data: [DONE]\n\n"

        return _Stream(gen(), SSE_CT, headers=[("Cache-Control", "no-cache")])

    def _h_oai_completions(self, req: _Request, f: _Faults) -> _Response:
        common = self._oai_common(req, "generate", f)
        if isinstance(common, _Full):
            return common
        data, _, name = common
        toks, cut = _plan(f.chunks, data.get("max_tokens"))
        finish = "length" if cut else "stop"
        prompt_tokens = _estimate_tokens(data.get("prompt"))
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(toks),
                 "total_tokens": prompt_tokens + len(toks)}
        cid = f"cmpl-{self._small_id()}"
        created = self._unix()
        if not data.get("stream"):
            return _Full(200, _j({
                "id": cid, "object": "text_completion", "created": created, "model": name,
                "system_fingerprint": "fp_ollama",
                "choices": [{"text": "".join(toks), "index": 0, "logprobs": None,
                             "finish_reason": finish}],
                "usage": usage,
            }), delay_tokens=len(toks))
        include_usage = self._include_usage(data)

        def obj(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            out: dict[str, Any] = {"id": cid, "object": "text_completion", "created": created,
                                   "choices": choices, "model": name,
                                   "system_fingerprint": "fp_ollama"}
            out.update(extra)
            return _sse(out)

        def gen() -> Iterator[bytes]:
            for i, tok in enumerate(toks):
                yield obj([{"text": tok, "index": 0,
                            "finish_reason": finish if i == len(toks) - 1 else None}])
            if not toks:
                yield obj([{"text": "", "index": 0, "finish_reason": finish}])
            if include_usage:
                yield obj([], usage=usage)
            if not f.omit_done:
                yield b"data: [DONE]\n\n"

        return _Stream(gen(), SSE_CT, headers=[("Cache-Control", "no-cache")])

    def _h_oai_embeddings(self, req: _Request, f: _Faults) -> _Response:
        common = self._oai_common(req, None, f)
        if isinstance(common, _Full):
            return common
        data, model, name = common
        inputs = self._inputs(data.get("input"))
        if inputs is None:
            return _openai_error(400, "invalid input")
        tokens = _estimate_tokens(inputs)
        return _Full(200, _j({
            "object": "list",
            "data": [{"object": "embedding", "embedding": _embedding(t, model.embedding_length),
                      "index": i} for i, t in enumerate(inputs)],
            "model": name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }), delay_tokens=0)

    def _h_oai_transcriptions(self, req: _Request, f: _Faults) -> _Response:
        if self.queue_full:
            return _openai_error(503, SERVER_BUSY)
        return _Full(200, _j({"text": SIM_TEXT}), delay_tokens=0)

    def _h_oai_responses(self, req: _Request, f: _Faults) -> _Response:
        common = self._oai_common(req, "chat", f)
        if isinstance(common, _Full):
            return common
        data, _, name = common
        toks, cut = _plan(f.chunks, data.get("max_output_tokens"))
        text = "".join(toks)
        input_tokens = _estimate_tokens([data.get("input"), data.get("instructions")])
        rid = f"resp_{self._hex(12)}"
        mid = f"msg_{self._hex(12)}"
        created = self._unix()

        def part(t: str) -> dict[str, Any]:
            return {"type": "output_text", "text": t, "annotations": [], "logprobs": []}

        def item(done: bool) -> dict[str, Any]:
            return {"id": mid, "type": "message", "status": "completed" if done else "in_progress",
                    "role": "assistant", "content": [part(text)] if done else []}

        def response(done: bool) -> dict[str, Any]:
            status = ("incomplete" if cut else "completed") if done else "in_progress"
            out: dict[str, Any] = {
                "id": rid, "object": "response", "created_at": created, "status": status,
                "error": None,
                "incomplete_details": {"reason": "max_output_tokens"} if done and cut else None,
                "instructions": data.get("instructions"),
                "max_output_tokens": data.get("max_output_tokens"), "model": name,
                "output": [item(True)] if done else [], "parallel_tool_calls": True,
                "previous_response_id": None, "store": False,
                "temperature": data.get("temperature", 1.0),
                "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [],
                "top_p": data.get("top_p", 1.0), "truncation": "disabled", "usage": None,
                "metadata": {},
            }
            if done:
                out["completed_at"] = self._unix()
                out["usage"] = {
                    "input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": 0},
                    "output_tokens": len(toks),
                    "output_tokens_details": {"reasoning_tokens": 0},
                    "total_tokens": input_tokens + len(toks),
                }
            return out

        if not data.get("stream"):
            return _Full(200, _j(response(True)), delay_tokens=len(toks))

        def gen() -> Iterator[bytes]:
            seq = 0

            def ev(kind: str, **payload: Any) -> bytes:
                nonlocal seq
                obj: dict[str, Any] = {"type": kind, "sequence_number": seq}
                obj.update(payload)
                seq += 1
                return _event(kind, obj)

            where = {"item_id": mid, "output_index": 0, "content_index": 0}
            yield ev("response.created", response=response(False))
            yield ev("response.in_progress", response=response(False))
            yield ev("response.output_item.added", output_index=0, item=item(False))
            yield ev("response.content_part.added", part=part(""), **where)
            for tok in toks:
                yield ev("response.output_text.delta", delta=tok, logprobs=[], **where)
            yield ev("response.output_text.done", text=text, logprobs=[], **where)
            yield ev("response.content_part.done", part=part(text), **where)
            yield ev("response.output_item.done", output_index=0, item=item(True))
            yield ev("response.incomplete" if cut else "response.completed",
                     response=response(True))

        return _Stream(gen(), SSE_CT, headers=[("Cache-Control", "no-cache")])

    # -- Anthropic-compatible ----------------------------------------------------------------------

    def _h_anthropic_messages(self, req: _Request, f: _Faults) -> _Response:
        err = _anthropic_error
        data = self._json_body(req, err)
        if isinstance(data, _Full):
            return data
        cloud = self._cloud_refusal(req, data.get("model"))
        if cloud is not None:
            return cloud
        if not isinstance(data.get("model"), str) or not data["model"]:
            return err(400, "model is required")
        max_tokens = data.get("max_tokens")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens <= 0:
            return err(400, "max_tokens is required and must be positive")
        messages = data.get("messages")
        if not isinstance(messages, list) or not messages:
            return err(400, "messages is required")
        for msg in messages:
            content = msg.get("content") if isinstance(msg, dict) else None
            for block in content if isinstance(content, list) else []:
                if (isinstance(block, dict) and block.get("type") == "image"
                        and isinstance(block.get("source"), dict)
                        and block["source"].get("type") == "url"):
                    return err(400, "image URLs are not currently supported, please use base64 "
                                    "encoded image data")
        resolved = self._resolve(data, err, "chat", f)
        if isinstance(resolved, _Full):
            return resolved
        if self.system_mid_conversation_500 and any(
                isinstance(m, dict) and m.get("role") == "system" for m in messages):
            return err(500, "system message must be at the beginning")
        model, name = resolved
        self._use_model(model, _KeepAlive(False, None), None)
        setting = data.get("thinking")
        thinking = self._thinking(model, not (isinstance(setting, dict)
                                              and setting.get("type") == "disabled"), f)
        gen_out = self._generation(data, f, max_tokens)
        toks, cut = gen_out.text, gen_out.cut
        input_tokens = _estimate_tokens([data.get("system"), messages])
        mid = f"msg_{self._hex(12)}"
        calls = [{"type": "tool_use", "id": f"call_{self._hex(4)}", "name": tool, "input": args}
                 for tool, args in gen_out.tools]
        # anthropic.mapStopReason: tool calls win, then stop/length.
        stop_reason = "tool_use" if calls else ("max_tokens" if cut else "end_turn")
        output_tokens = len(thinking) + len(toks) + sum(_estimate_tokens(_j(c["input"]).decode())
                                                        for c in calls)
        if not data.get("stream"):
            # anthropic.ToMessagesResponse: thinking, then text, then tool_use blocks; a nil
            # slice (nothing generated) marshals as "content": null. stop_sequence is
            # omitempty and never set.
            blocks: list[dict[str, Any]] = []
            if thinking:
                blocks.append({"type": "thinking", "thinking": "".join(thinking)})
            if toks:
                blocks.append({"type": "text", "text": "".join(toks)})
            blocks += calls
            return _Full(200, _j({
                "id": mid, "type": "message", "role": "assistant", "model": name,
                "content": blocks or None, "stop_reason": stop_reason,
                "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
            }), delay_tokens=output_tokens)
        events = _anthropic_stream(mid, name, input_tokens, thinking, toks, calls)
        events.append(("message_delta", {
            "type": "message_delta", "delta": {"stop_reason": stop_reason},
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}}))
        events.append(("message_stop", {"type": "message_stop"}))
        _break_order(events, f.break_order)
        return _Stream(iter([_event(n, obj) for n, obj in events]), SSE_CT,
                       headers=[("Cache-Control", "no-cache")])

    # -- admin routes (must never be reachable through the proxy) ---------------------------------

    @staticmethod
    def _layers(name: str, size: int) -> list[tuple[str, int]]:
        return [(hashlib.sha256(f"{name}/{i}".encode()).hexdigest(), n)
                for i, n in enumerate((max(size, 1), 11_338, 487))]

    def _progress(self, data: dict[str, Any], statuses: list[dict[str, Any]]) -> _Response:
        if data.get("stream") is False:
            return _Full(200, _j(statuses[-1]))
        return _Stream(iter([_ndjson(s) for s in statuses]), NDJSON_CT, inference=False)

    def _admin_name(self, req: _Request) -> tuple[dict[str, Any], str] | _Full:
        data = self._json_body(req, _native_error)
        if isinstance(data, _Full):
            return data
        name = data.get("model") or data.get("name")
        if not isinstance(name, str) or not name:
            return _native_error(400, "model is required")
        return data, name

    def _h_pull(self, req: _Request, f: _Faults) -> _Response:
        got = self._admin_name(req)
        if isinstance(got, _Full):
            return got
        data, name = got
        model = self._find_model(name) or self._add_model(name)
        statuses: list[dict[str, Any]] = [{"status": "pulling manifest"}]
        for digest, total in self._layers(model.name, model.size):
            status = f"pulling {digest[:12]}"
            statuses.append({"status": status, "digest": f"sha256:{digest}", "total": total})
            statuses.append({"status": status, "digest": f"sha256:{digest}", "total": total,
                             "completed": total // 2})
            statuses.append({"status": status, "digest": f"sha256:{digest}", "total": total,
                             "completed": total})
        statuses += [{"status": "verifying sha256 digest"}, {"status": "writing manifest"},
                     {"status": "removing unused layers"}, {"status": "success"}]
        return self._progress(data, statuses)

    def _h_push(self, req: _Request, f: _Faults) -> _Response:
        got = self._admin_name(req)
        if isinstance(got, _Full):
            return got
        data, name = got
        model = self._find_model(name)
        if model is None:
            return _native_error(404, f"model '{name}' not found")
        statuses: list[dict[str, Any]] = [{"status": "retrieving manifest"}]
        for digest, total in self._layers(model.name, model.size):
            statuses.append({"status": f"pushing {digest[:12]}", "digest": f"sha256:{digest}",
                             "total": total, "completed": total})
        statuses += [{"status": "pushing manifest"}, {"status": "success"}]
        return self._progress(data, statuses)

    def _h_create(self, req: _Request, f: _Faults) -> _Response:
        got = self._admin_name(req)
        if isinstance(got, _Full):
            return got
        data, name = got
        base_name = data.get("from")
        base = self._find_model(base_name) if isinstance(base_name, str) else None
        self._add_model(name, base)
        layer = hashlib.sha256(name.encode()).hexdigest()
        return self._progress(data, [
            {"status": "reading model metadata"}, {"status": "creating system layer"},
            {"status": f"using already created layer sha256:{layer}"},
            {"status": "writing manifest"}, {"status": "success"},
        ])

    def _h_copy(self, req: _Request, f: _Faults) -> _Response:
        data = self._json_body(req, _native_error)
        if isinstance(data, _Full):
            return data
        source, dest = data.get("source"), data.get("destination")
        if not isinstance(source, str) or not isinstance(dest, str) or not source or not dest:
            return _native_error(400, "source and destination are required")
        model = self._find_model(source)
        if model is None:
            return _native_error(404, f"model '{source}' not found")
        self._add_model(dest, model)
        return _Full(200, b"", None)

    def _h_delete(self, req: _Request, f: _Faults) -> _Response:
        got = self._admin_name(req)
        if isinstance(got, _Full):
            return got
        _, name = got
        key = _normalize_name(name)
        with self._lock:
            if key not in self._models:
                return _native_error(404, f"model '{name}' not found")
            del self._models[key]
            self._loaded.pop(key, None)
        return _Full(200, b"", None)

    def _h_blob_upload(self, req: _Request, f: _Faults) -> _Response:
        digest = req.params["digest"]
        actual = f"sha256:{req.body_sha256}"
        if digest.replace("-", ":", 1) != actual:
            return _native_error(400, f'digest mismatch, expected "{digest}", got "{actual}"')
        with self._lock:
            self._blobs.add(actual)
        return _Full(201, b"", None)

    def _h_blob_head(self, req: _Request, f: _Faults) -> _Response:
        digest = req.params["digest"].replace("-", ":", 1)
        with self._lock:
            known = digest in self._blobs or any(
                digest == f"sha256:{m.digest}" for m in self._models.values())
        return _Full(200 if known else 404, b"", None)

    def _h_me(self, req: _Request, f: _Faults) -> _Response:
        return _Full(200, _j({"id": "sim-user-1", "name": "sim-user",
                              "email": "sim-user@example.invalid", "plan": "free"}))

    def _h_empty_ok(self, req: _Request, f: _Faults) -> _Response:
        return _Full(200, b"", None)

    def _h_web_search(self, req: _Request, f: _Faults) -> _Response:
        data = self._json_body(req, _native_error)
        if isinstance(data, _Full):
            return data
        query = data.get("query")
        if not isinstance(query, str) or not query:
            return _native_error(400, "query is required")
        return _Full(200, _j({"results": [
            {"title": f"Result for {query}", "url": "https://example.invalid/result",
             "content": SIM_TEXT},
        ]}))

    def _h_web_fetch(self, req: _Request, f: _Faults) -> _Response:
        data = self._json_body(req, _native_error)
        if isinstance(data, _Full):
            return data
        url = data.get("url")
        if not isinstance(url, str) or not url:
            return _native_error(400, "url is required")
        return _Full(200, _j({"title": "Simulated page", "content": SIM_TEXT, "links": [url]}))


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ollama-sim", description="Simulated Ollama HTTP API (for tests, demos, benchmarks).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument("--first-byte-delay", type=float, default=0.0, metavar="S")
    parser.add_argument("--chunk-gap", type=float, default=0.0, metavar="S")
    parser.add_argument("--chunks", type=int, default=8, metavar="N")
    parser.add_argument("--close-after-chunks", type=int, default=None, metavar="N")
    parser.add_argument("--queue-full", action="store_true")
    parser.add_argument("--no-host-check", action="store_true")
    parser.add_argument("--ollama-version", default=DEFAULT_VERSION)
    parser.add_argument("--quiet", action="store_true", help="no access log on stderr")
    args = parser.parse_args(argv)

    sim = OllamaSimulator(args.host, args.port, version=args.ollama_version)
    sim.first_byte_delay = args.first_byte_delay
    sim.chunk_gap = args.chunk_gap
    sim.stream_chunks = args.chunks
    sim.close_after_chunks = args.close_after_chunks
    sim.queue_full = args.queue_full
    sim.host_check = not args.no_host_check
    sim.record_requests = False  # a long-running process must not grow without bound
    if not args.quiet:
        def log(line: str) -> None:
            print(line, file=sys.stderr, flush=True)

        sim.log = log

    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        sim.start()
    except OSError as exc:
        print(f"ollama-sim: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(f"ollama-sim listening on {sim.url}", file=sys.stderr, flush=True)
    while not done.wait(0.2):
        pass
    sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
