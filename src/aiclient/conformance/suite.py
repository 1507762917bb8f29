"""`ai-client test`: an end-to-end conformance test of a server as Aider and Claude Code use it.

`run_suite` sends the requests those tools send (OpenAI chat, Anthropic `/v1/messages?beta=true`,
streamed and not, JSON mode, tools) and checks the answers against the wire contracts in
REFERENCE.md §1.3/§1.4. It returns data (a SuiteResult) and never prints. The SSE parser
(`sse`) and the stream/shape validators (`contracts`) are pure functions, tested against
recorded byte sequences.

requests is imported lazily (fast CLI start).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiclient.conformance.contracts import (
    StreamReport,
    _dict,
    _error_message,
    _parse_arguments,
    anthropic_error_problems,
    anthropic_message_problems,
    check_anthropic_stream,
    check_openai_stream,
    openai_completion_problems,
)
from aiclient.conformance.sse import SseEvent, SseParser
from aicommon.errors import AiError, ExitCode

if TYPE_CHECKING:
    import requests

ANTHROPIC_VERSION = "2023-06-01"
MESSAGES_PATH = "/v1/messages?beta=true"  # what Claude Code sends (REFERENCE §2.1)
MISSING_MODEL = "ai-client-test-missing-model:latest"
DEFAULT_PORT = 11434
CONNECT_TIMEOUT = 3.05
INFO_TIMEOUT = 30.0
# Nothing is sent during prompt pre-fill, and a cold model loads first: be patient.
INFERENCE_TIMEOUT = 300.0

TOOL_NAME = "get_weather"
TOOL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "City name"}},
    "required": ["city"],
}
TOOL_PROMPT = f"Use the {TOOL_NAME} tool to look up the weather in Paris."
TOOL_RESULT = "Sunny, 21 degrees Celsius."


class Status(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True)
class CheckResult:
    name: str
    title: str
    status: Status
    detail: str
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "status": str(self.status),
                "detail": self.detail, "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class Performance:
    """Figures from one streamed answer (reported, never judged)."""

    api: str  # "openai" or "anthropic"
    ttft_s: float | None  # request sent -> first generated token
    tokens: int
    tokens_per_second: float | None  # after the first token
    total_s: float
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"api": self.api, "ttft_s": _round(self.ttft_s), "tokens": self.tokens,
                "tokens_per_second": _round(self.tokens_per_second, 1),
                "total_s": _round(self.total_s), "note": self.note}


@dataclass
class SuiteResult:
    base_url: str
    model: str
    capabilities: tuple[str, ...]
    quick: bool
    checks: list[CheckResult] = field(default_factory=list)
    performance: list[Performance] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status != Status.FAIL for c in self.checks)

    def counts(self) -> dict[str, int]:
        return {s.value.lower(): sum(c.status == s for c in self.checks) for s in Status}

    def as_dict(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "model": self.model,
                "capabilities": list(self.capabilities), "quick": self.quick,
                "summary": self.counts(), "checks": [c.as_dict() for c in self.checks],
                "performance": [p.as_dict() for p in self.performance]}


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


# ---------------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------------


class CheckFailed(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class _Skip(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def content_type(self) -> str:
        return next((v for k, v in self.headers.items() if k.lower() == "content-type"), "")


@dataclass
class StreamReply:
    status: int
    headers: dict[str, str]
    events: list[SseEvent]
    truncated: bool
    broken: str | None  # why the connection broke mid-stream
    body: bytes  # the body of a non-200 answer
    total_s: float

    @property
    def content_type(self) -> str:
        return next((v for k, v in self.headers.items() if k.lower() == "content-type"), "")


def normalize_base_url(text: str) -> str:
    """`host`, `host:port` or `http(s)://host[:port][/prefix]` -> a base URL without `/v1`."""
    raw = text.strip()
    bare = "://" not in raw
    parts = urlsplit(f"http://{raw}" if bare else raw)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or port == -1 \
            or parts.query or parts.fragment:
        raise AiError(f"{text!r} is not a server address",
                      "pass a host name, host:port or http://host:port",
                      code="test.bad_server", exit_code=ExitCode.USAGE)
    netloc = parts.netloc
    if bare and port is None:
        netloc += f":{DEFAULT_PORT}"
    path = parts.path.rstrip("/")
    path = path.removesuffix("/v1")  # clients append /v1 themselves
    return f"{parts.scheme}://{netloc}{path}"


class _Http:
    """Requests as the tools send them, with one-line reasons for transport failures."""

    def __init__(self, base_url: str, api_key: str, timeout: float) -> None:
        import requests

        from aicommon import __version__

        self.base_url = base_url
        self.api_key = api_key
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = f"ai-client-test/{__version__}"
        self.session_id = f"ai-client-test-{uuid.uuid4().hex[:12]}"

    def close(self) -> None:
        self.session.close()

    def headers(self, dialect: str) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        if dialect == "anthropic":  # like Claude Code (REFERENCE §2.1)
            headers.update({"x-api-key": self.api_key, "anthropic-version": ANTHROPIC_VERSION,
                            "x-claude-code-session-id": self.session_id})
        return headers

    def transport_reason(self, exc: requests.RequestException,
                         read_timeout: float | None = None) -> str:
        import requests

        from aicommon.httpclient import connection_failure

        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return f"no connection within {CONNECT_TIMEOUT:g} s"
        if isinstance(exc, requests.exceptions.ReadTimeout):
            return f"connected, but no answer within {read_timeout or self.timeout:g} s"
        if isinstance(exc, requests.exceptions.ConnectionError):
            return connection_failure(exc)[1]
        return f"{type(exc).__name__}: {exc}"

    def call(self, method: str, path: str, body: Any = None, *, dialect: str = "openai",
             timeout: float | None = None) -> Reply:
        """One request; raises _Transport on a transport failure."""
        import requests

        try:
            resp = self.session.request(
                method, self.base_url + path, json=body, headers=self.headers(dialect),
                timeout=(CONNECT_TIMEOUT, timeout or self.timeout), allow_redirects=False)
        except requests.RequestException as exc:
            raise _Transport(self.transport_reason(exc, timeout)) from exc
        return Reply(resp.status_code, dict(resp.headers), resp.content)

    def stream(self, path: str, body: Any, *, dialect: str) -> StreamReply:
        import requests

        start = time.monotonic()
        try:
            resp = self.session.post(self.base_url + path, json=body,
                                     headers=self.headers(dialect), stream=True,
                                     timeout=(CONNECT_TIMEOUT, self.timeout),
                                     allow_redirects=False)
        except requests.RequestException as exc:
            raise _Transport(self.transport_reason(exc)) from exc
        with resp:
            headers = dict(resp.headers)
            if resp.status_code != 200:
                return StreamReply(resp.status_code, headers, [], False, None, resp.content,
                                   time.monotonic() - start)
            parser = SseParser()
            events: list[SseEvent] = []
            broken = None
            try:
                for piece in resp.iter_content(chunk_size=None):
                    events += parser.feed(piece, time.monotonic() - start)
            except requests.RequestException as exc:
                broken = f"the connection broke mid-stream ({self.transport_reason(exc)})"
            return StreamReply(200, headers, events, parser.pending, broken, b"",
                               time.monotonic() - start)


class _Transport(Exception):
    """A request that got no HTTP answer."""

    @property
    def connected(self) -> bool:
        """The server took the connection (then stayed silent, closed it, or spoke garbage)."""
        import requests

        cause = self.__cause__
        if isinstance(cause, requests.exceptions.ReadTimeout):
            return True
        from aicommon.httpclient import connection_failure

        return isinstance(cause, requests.exceptions.ConnectionError) and connection_failure(
            cause)[0] in ("http.garbage", "http.closed")


def _status_detail(status: int, body: bytes, context: str = "") -> str:
    """One line for an unexpected status, naming the likely cause for 401/403."""
    try:
        obj = json.loads(body) if body else None
    except ValueError:
        obj = body[:80].decode("utf-8", "replace")
    message = _error_message(obj) if not isinstance(obj, str) else obj
    if status == 404 and message.startswith("404 page not found"):
        message += "; the route is missing: Ollama too old? (/v1/messages needs 0.14.0+)"
    if status == 401:
        return f"HTTP 401{context}: the token was refused ({message})"
    if status == 403:
        return (f"HTTP 403{context} on a route the gateway allows: not this gateway, or its "
                f"profile does not expose the route ({message})")
    return f"HTTP {status}{context}: {message}"


def _diagnose(base_url: str, method: str, path: str, status: int, body: bytes) -> AiError:
    """The first request failed: say in one line what is most likely wrong."""
    where = f"{method} {path}"
    if status == 401:
        return AiError(f"{base_url} refused the token (HTTP 401 on {where})",
                       "the device token is missing or wrong: pass --token, or rerun "
                       "`ai-client setup` with the token `ai-server tokens add` printed",
                       code="test.unauthorized", exit_code=ExitCode.CONFIG)
    if status == 403:
        return AiError(f"{base_url} answered HTTP 403 on {where}, a route the ai-server gateway "
                       "allows: it is not this gateway, or its profile does not expose the route",
                       "check the server address and port, and the gateway's profiles",
                       code="test.forbidden", exit_code=ExitCode.UNAVAILABLE)
    return AiError(f"{base_url}: {_status_detail(status, body, f' on {where}')}",
                   "is this an ai-server gateway (or Ollama)?", code="test.http_status",
                   exit_code=ExitCode.UNAVAILABLE)


# ---------------------------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckSpec:
    name: str
    title: str
    needs: tuple[str, ...]  # model capabilities (POST /api/show)
    quick: bool
    run: Callable[[_Suite], str]  # returns the PASS detail; raises CheckFailed


def _user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def _need(condition: bool, detail: str) -> None:
    if not condition:
        raise CheckFailed(detail)


def _ok_json(reply: Reply, context: str = "") -> Any:
    _need(reply.status == 200, _status_detail(reply.status, reply.body, context))
    obj = reply.json()
    _need(obj is not None, f"the answer is not JSON ({reply.content_type or 'no content type'})")
    return obj


def _first(problems: list[str], more: str = "") -> None:
    if problems:
        extra = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise CheckFailed(problems[0] + extra + more)


class _Suite:
    def __init__(self, http: _Http, model: str, capabilities: tuple[str, ...]) -> None:
        self.http = http
        self.model = model
        self.capabilities = capabilities
        self.performance: list[Performance] = []

    # -- helpers --------------------------------------------------------------------------------

    def openai_tools(self) -> list[dict[str, Any]]:
        return [{"type": "function", "function": {
            "name": TOOL_NAME, "description": "Current weather for a city.",
            "parameters": TOOL_SCHEMA}}]

    def anthropic_tools(self) -> list[dict[str, Any]]:
        return [{"name": TOOL_NAME, "description": "Current weather for a city.",
                 "input_schema": TOOL_SCHEMA}]

    def stream(self, path: str, body: dict[str, Any], dialect: str,
               context: str = "") -> StreamReply:
        reply = self.http.stream(path, body, dialect=dialect)
        _need(reply.status == 200, _status_detail(reply.status, reply.body, context))
        _need(reply.content_type.startswith("text/event-stream"),
              f"content type {reply.content_type!r}, not text/event-stream")
        return reply

    def record(self, api: str, reply: StreamReply | None, rep: StreamReport | None,
               note: str = "") -> None:
        if reply is None or rep is None:
            self.performance.append(Performance(api, None, 0, None, 0.0, note))
            return
        tokens = rep.usage_tokens if rep.usage_tokens else rep.deltas
        rate = None
        if rep.first_delta_at is not None and rep.last_delta_at is not None and tokens > 1:
            span = rep.last_delta_at - rep.first_delta_at
            rate = (tokens - 1) / span if span > 0 else None
        self.performance.append(Performance(api, rep.first_delta_at, tokens, rate,
                                            reply.total_s, note))

    @staticmethod
    def stream_problems(reply: StreamReply, rep: StreamReport) -> None:
        problems = list(rep.problems)
        if reply.broken:
            problems.insert(0, reply.broken)
        _first(problems)

    # -- OpenAI -------------------------------------------------------------------------------

    def openai_models(self) -> str:
        obj = _ok_json(self.http.call("GET", "/v1/models", timeout=INFO_TIMEOUT))
        data = obj.get("data") if isinstance(obj, dict) else None
        _need(isinstance(obj, dict) and obj.get("object") == "list",
              "the answer is not {\"object\": \"list\", ...}")
        _need(isinstance(data, list), "data is not a list (no models?)")
        assert isinstance(data, list)
        ids = [str(m.get("id")) for m in data if isinstance(m, dict)]
        _need(_same_model(self.model, ids), f"{self.model} is not listed "
                                            f"({', '.join(ids[:5]) or 'empty list'})")
        return f"{len(ids)} models, {self.model} listed"

    def openai_model(self) -> str:
        if "/" in self.model:
            raise _Skip(f"{self.model} contains '/', which /v1/models/{{model}} cannot address")
        obj = _ok_json(self.http.call("GET", f"/v1/models/{self.model}", timeout=INFO_TIMEOUT))
        _need(isinstance(obj, dict) and obj.get("object") == "model",
              "the answer is not {\"object\": \"model\", ...}")
        _need(_same_model(self.model, [str(obj.get("id"))]),
              f"id is {obj.get('id')!r}, not {self.model}")
        return f"object model, id {obj.get('id')}"

    def openai_chat(self) -> str:
        body = {"model": self.model, "messages": _user("Say hello in five words."),
                "max_tokens": 32, "stream": False}
        obj = _ok_json(self.http.call("POST", "/v1/chat/completions", body))
        _first(openai_completion_problems(obj))
        choice = obj["choices"][0]
        return (f"{obj['id']}: finish_reason {choice['finish_reason']}, "
                f"{obj['usage']['completion_tokens']} tokens")

    def openai_stream(self) -> str:
        body = {"model": self.model, "stream": True, "stream_options": {"include_usage": True},
                "messages": _user("Count from one to twenty in words."), "max_tokens": 64}
        try:
            reply = self.stream("/v1/chat/completions", body, "openai")
        except CheckFailed as exc:
            self.record("openai", None, None, exc.detail)
            raise
        rep = check_openai_stream(reply.events, include_usage=True, truncated=reply.truncated)
        self.record("openai", reply, rep)
        self.stream_problems(reply, rep)
        return (f"{rep.events - 1} chunks, finish_reason {rep.finish}, usage "
                f"{rep.usage_tokens} tokens, data: [DONE] last")

    def openai_json(self) -> str:
        body = {"model": self.model, "response_format": {"type": "json_object"},
                "messages": [{"role": "system", "content": "Answer with one JSON object."},
                             *_user('Give a JSON object with the key "answer" set to 42.')],
                "max_tokens": 256, "stream": False}
        obj = _ok_json(self.http.call("POST", "/v1/chat/completions", body),
                       " with response_format json_object")
        _first(openai_completion_problems(obj))
        content = obj["choices"][0]["message"].get("content") or ""
        try:
            value = json.loads(content)
        except ValueError:
            raise CheckFailed(f"content is not JSON: {content[:60]!r}") from None
        kind = {"dict": "object", "list": "array", "str": "string"}.get(
            type(value).__name__, "value")
        return f"content parses as a JSON {kind}"

    def openai_tool_call(self) -> str:
        body = {"model": self.model, "messages": _user(TOOL_PROMPT), "tools": self.openai_tools(),
                "max_tokens": 1024, "stream": False}
        obj = _ok_json(self.http.call("POST", "/v1/chat/completions", body), " with tools")
        _first(openai_completion_problems(obj))
        choice = obj["choices"][0]
        calls = choice["message"].get("tool_calls")
        _need(isinstance(calls, list) and bool(calls),
              f"no tool_calls (finish_reason {choice['finish_reason']}): the model answered text")
        call = calls[0] if isinstance(calls[0], dict) else {}
        fn = _dict(call.get("function"))
        _need(call.get("type") == "function", f"tool call type {call.get('type')!r}")
        _need(isinstance(call.get("id"), str) and bool(call["id"]), "tool call without an id")
        _need(fn.get("name") == TOOL_NAME, f"called {fn.get('name')!r}, not {TOOL_NAME}")
        raw = fn.get("arguments")
        args = _parse_arguments(raw) if isinstance(raw, str) else None
        _need(isinstance(args, dict), f"arguments are not a JSON object string: {raw!r:.60}")
        assert isinstance(args, dict)
        _need("city" in args, f"arguments lack the required 'city': {raw!r:.60}")
        _need(choice["finish_reason"] == "tool_calls",
              f"finish_reason {choice['finish_reason']!r}, expected tool_calls")
        return f"{TOOL_NAME}({raw}) id {call['id']}, finish_reason tool_calls"

    # -- Anthropic ------------------------------------------------------------------------------

    def messages_body(self, messages: list[dict[str, Any]], max_tokens: int = 32,
                      stream: bool = False, **extra: Any) -> dict[str, Any]:
        return {"model": self.model, "max_tokens": max_tokens, "messages": messages,
                "stream": stream, **extra}

    def anthropic_message(self) -> str:
        body = self.messages_body(_user("Say hello in five words."))
        obj = _ok_json(self.http.call("POST", MESSAGES_PATH, body, dialect="anthropic"))
        _first(anthropic_message_problems(obj))
        kinds = ",".join(str(b["type"]) for b in obj["content"] or [])
        return (f"{obj['id']}: content [{kinds}], stop_reason {obj['stop_reason']}, "
                f"usage {obj['usage']['input_tokens']}/{obj['usage']['output_tokens']}")

    def anthropic_stream(self) -> str:
        body = self.messages_body(_user("Count from one to twenty in words."), 64, True)
        try:
            reply = self.stream(MESSAGES_PATH, body, "anthropic")
        except CheckFailed as exc:
            self.record("anthropic", None, None, exc.detail)
            raise
        rep = check_anthropic_stream(reply.events, truncated=reply.truncated)
        self.record("anthropic", reply, rep)
        self.stream_problems(reply, rep)
        return (f"{rep.events} events in order, {len(rep.blocks)} block(s), stop_reason "
                f"{rep.finish}, {rep.usage_tokens} output tokens")

    def anthropic_system(self) -> str:
        system_text = "You are a terse assistant. Answer in one short sentence."
        forms: list[tuple[str, Any]] = [
            ("string", system_text),
            ("text blocks", [{"type": "text", "text": system_text,
                              "cache_control": {"type": "ephemeral"}}]),
        ]
        for label, system in forms:
            body = self.messages_body(_user("What is the capital of France?"), system=system)
            obj = _ok_json(self.http.call("POST", MESSAGES_PATH, body, dialect="anthropic"),
                           f" with a system prompt as {label}")
            _first(anthropic_message_problems(obj), f" (system prompt as {label})")
        return "system prompt accepted as a string and as text blocks"

    def anthropic_tool_use(self) -> str:
        tools = self.anthropic_tools()
        first = _user(TOOL_PROMPT)
        reply = self.stream(MESSAGES_PATH, self.messages_body(first, 1024, True, tools=tools),
                            "anthropic", " with tools")
        rep = check_anthropic_stream(reply.events, truncated=reply.truncated)
        self.stream_problems(reply, rep)
        _need(bool(rep.tool_calls), f"no tool_use block (stop_reason {rep.finish}): the model "
                                    "answered text")
        call = rep.tool_calls[0]
        _need(bool(call.id), "tool_use block without an id")
        _need(call.name == TOOL_NAME, f"tool_use names {call.name!r}, not {TOOL_NAME}")
        _need(isinstance(call.arguments, dict) and "city" in call.arguments,
              f"tool_use input lacks the required 'city': {call.raw or call.arguments!r:.60}")
        _need(rep.finish == "tool_use", f"stop_reason {rep.finish!r}, expected tool_use")
        sent_back = [b for b in rep.blocks if b.get("type") != "text" or b.get("text")]
        # every tool_use (a model may call several at once) needs its tool_result
        history = [*first, {"role": "assistant", "content": sent_back},
                   {"role": "user", "content": [{"type": "tool_result", "tool_use_id": c.id,
                                                 "content": TOOL_RESULT}
                                                for c in rep.tool_calls]}]
        reply = self.stream(MESSAGES_PATH, self.messages_body(history, 1024, True, tools=tools),
                            "anthropic", " with a tool_result")
        rep = check_anthropic_stream(reply.events, truncated=reply.truncated)
        self.stream_problems(reply, rep)
        _need(rep.finish == "end_turn",
              f"after the tool_result stop_reason is {rep.finish!r}, expected end_turn")
        _need(bool(rep.text.strip()), "no text after the tool_result")
        return f"tool_use {call.id} {json.dumps(call.arguments)} -> tool_result -> text, end_turn"

    def anthropic_error(self) -> str:
        body = {"model": MISSING_MODEL, "max_tokens": 16, "messages": _user("hi")}
        reply = self.http.call("POST", MESSAGES_PATH, body, dialect="anthropic")
        if reply.status in (401, 403):
            raise CheckFailed(_status_detail(reply.status, reply.body))
        _first(anthropic_error_problems(reply.status, reply.json()))
        return "404 {\"type\": \"error\", \"error\": {\"type\": \"not_found_error\", ...}}"

    # -- gateway -------------------------------------------------------------------------------

    def admin_refused(self) -> str:
        # An empty body: should the route be open, Ollama refuses it (400) and pulls nothing.
        reply = self.http.call("POST", "/api/pull", {}, timeout=INFO_TIMEOUT)
        _need(reply.status != 401, "HTTP 401: the token was refused")
        _need(reply.status == 403, f"POST /api/pull answered HTTP {reply.status}: the admin "
                                   "route reaches Ollama")
        obj = reply.json()
        _need(isinstance(obj, dict), "403 without a JSON body")
        return f"403 {_error_message(obj)}"


CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec("openai.models", "GET /v1/models lists the model", (), True, _Suite.openai_models),
    CheckSpec("openai.model", "GET /v1/models/<model> retrieves it", (), True,
              _Suite.openai_model),
    CheckSpec("openai.chat", "chat completion, not streamed", ("completion",), True,
              _Suite.openai_chat),
    CheckSpec("openai.stream", "chat completion, streamed", ("completion",), True,
              _Suite.openai_stream),
    CheckSpec("openai.json_mode", "response_format json_object", ("completion",), False,
              _Suite.openai_json),
    CheckSpec("openai.tool_call", "tool call", ("completion", "tools"), False,
              _Suite.openai_tool_call),
    CheckSpec("anthropic.message", "messages, not streamed", ("completion",), True,
              _Suite.anthropic_message),
    CheckSpec("anthropic.stream", "messages, streamed (event order)", ("completion",), True,
              _Suite.anthropic_stream),
    CheckSpec("anthropic.system", "system prompt accepted", ("completion",), False,
              _Suite.anthropic_system),
    CheckSpec("anthropic.tool_use", "tool_use round trip", ("completion", "tools"), False,
              _Suite.anthropic_tool_use),
    CheckSpec("anthropic.error", "error shape for a missing model", (), False,
              _Suite.anthropic_error),
    CheckSpec("gateway.admin_refused", "admin route POST /api/pull refused", (), True,
              _Suite.admin_refused),
)


def _same_model(model: str, names: list[str]) -> bool:
    def norm(name: str) -> str:
        return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"

    return norm(model) in {norm(n) for n in names}


def _run_check(suite: _Suite, spec: CheckSpec) -> CheckResult:
    start = time.monotonic()
    missing = [c for c in spec.needs if c not in suite.capabilities]
    if missing:
        have = ", ".join(suite.capabilities) or "none"
        return CheckResult(spec.name, spec.title, Status.SKIP,
                           f"{suite.model} lacks the {missing[0]!r} capability "
                           f"(POST /api/show lists: {have})", 0.0)
    try:
        status, detail = Status.PASS, spec.run(suite)
    except CheckFailed as exc:
        status, detail = Status.FAIL, exc.detail
    except _Skip as exc:
        status, detail = Status.SKIP, exc.detail
    except _Transport as exc:
        status, detail = Status.FAIL, f"no HTTP answer: {exc}"
    return CheckResult(spec.name, spec.title, status, detail, time.monotonic() - start)


# ---------------------------------------------------------------------------------------------
# Model choice and the suite
# ---------------------------------------------------------------------------------------------


def _first_call(http: _Http, method: str, path: str, body: Any = None) -> Reply:
    """A request whose failure stops the suite with a one-line diagnosis."""
    try:
        reply = http.call(method, path, body, timeout=INFO_TIMEOUT)
    except _Transport as exc:
        raise AiError(f"{http.base_url} gave no HTTP answer: {exc}" if exc.connected
                      else f"cannot reach {http.base_url}: {exc}",
                      "check the port (the gateway speaks plain HTTP); on the server run "
                      "`ai-server status`" if exc.connected else
                      "check the address, that the server is on, and that this machine is on "
                      "the tailnet (`tailscale status`)",
                      code="test.no_answer" if exc.connected else "test.unreachable",
                      exit_code=ExitCode.UNAVAILABLE) from None
    if reply.status in (401, 403) or (reply.status != 200 and path != "/api/show"):
        raise _diagnose(http.base_url, method, path, reply.status, reply.body)
    return reply


def _capabilities(http: _Http, model: str) -> tuple[str, ...] | None:
    """The model's capabilities from POST /api/show; None when the server does not know it."""
    reply = _first_call(http, "POST", "/api/show", {"model": model})
    if reply.status in (400, 404):  # unknown, or not a valid model name
        return None
    obj = reply.json()
    if reply.status != 200 or not isinstance(obj, dict):
        raise _diagnose(http.base_url, "POST", "/api/show", reply.status, reply.body)
    caps = obj.get("capabilities")
    if not isinstance(caps, list):  # older Ollama: assume a plain chat model
        return ("completion",)
    return tuple(str(c) for c in caps)


def choose_model(http: _Http, wanted: str | None) -> tuple[str, tuple[str, ...]]:
    """The given model, else the first tools-capable one (else the first chat model)."""
    tags = _first_call(http, "GET", "/api/tags").json()
    models = tags.get("models") if isinstance(tags, dict) else None
    if not isinstance(models, list):
        raise AiError(f"{http.base_url}/api/tags did not list models: not Ollama or the gateway",
                      code="test.not_ollama", exit_code=ExitCode.UNAVAILABLE)
    names = [str(m.get("name") or m.get("model")) for m in models if isinstance(m, dict)]
    if wanted:
        caps = _capabilities(http, wanted)
        if caps is None:
            raise AiError(f"model {wanted!r} is not on the server",
                          f"models there: {', '.join(names) or 'none'}",
                          code="test.unknown_model", exit_code=ExitCode.FAILURE)
        return wanted, caps
    fallback: tuple[str, tuple[str, ...]] | None = None
    for name in names:
        caps = _capabilities(http, name) or ()
        if "completion" in caps and "tools" in caps:
            return name, caps
        if "completion" in caps and fallback is None:
            fallback = (name, caps)
    if fallback is not None:
        return fallback
    raise AiError("the server has no chat model", "pull a tools-capable model on the server "
                  "(e.g. qwen3-coder:30b)", code="test.no_model", exit_code=ExitCode.FAILURE)


def run_suite(base_url: str, api_key: str, model: str | None, quick: bool, *,
              timeout: float = INFERENCE_TIMEOUT,
              progress: Callable[[str], None] | None = None) -> SuiteResult:
    """Run the conformance checks against `base_url` (a gateway or Ollama itself).

    Raises AiError, with a one-line diagnosis, when the server cannot be tested at all
    (unreachable, token refused, not this gateway). Check failures are data.
    """
    base = normalize_base_url(base_url)
    http = _Http(base, api_key, timeout)
    try:
        name, caps = choose_model(http, model)
        suite = _Suite(http, name, caps)
        result = SuiteResult(base, name, caps, quick)
        for spec in CHECKS:
            if quick and not spec.quick:
                continue
            check = _run_check(suite, spec)
            result.checks.append(check)
            if progress is not None:
                progress(f"{check.status}  {check.name}: {check.detail}")
        result.performance = suite.performance
        return result
    finally:
        http.close()
