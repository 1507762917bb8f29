"""A hostile request corpus for the gateway, and a sender that speaks raw HTTP/1.x and h2c.

Every case is exact bytes plus what the gateway must answer (as measured against HAProxy 2.6
and checked against the documented behaviour, DESIGN.md §4, REFERENCE.md §4):

* ``403`` + JSON ``error.code`` ``suspicious_path`` when the raw path holds ``%``, ``..``,
  ``//`` or ``\\``, ``not_exposed`` for any other (method, path) outside the allowlist;
* ``400`` from HAProxy's own HTTP/1 parser for malformed requests (HTML on 2.6, JSON on 3.3);
  ``422`` for ``Transfer-Encoding: gzip, chunked`` (the 2.6 parser's answer);
* ``411`` (JSON ``length_required``) for an allowlisted request with ``Transfer-Encoding``;
* ``413`` (JSON ``payload_too_large``) for an allowlisted request with ``Content-Length`` above
  the limit;
* ``0`` (no HTTP response) only for HTTP/2 streams HAProxy resets as malformed (RST_STREAM or
  GOAWAY: the h2 form of a parser 400);
* the simulator's own answer for allowlisted requests, which must arrive as exactly
  ``forwarded_as`` (method, path).

Every HTTP/1 request carries ``Connection: close`` (a pipelined case: its last request), and an
``X-Hostile-Case`` header naming the case (``marker(name)``) whenever that does not change what
is being tested, so a forwarded request can be traced back to its case.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import struct
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from aiserver.allowlist import ENTRIES, NEVER, entries_for, is_allowed, probe_body
from tests.support.rawhttp import parse_response, read_until

METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
BAD_IN_PATH = ("%", "..", "//", "\\")
CASE_HEADER = "X-Hostile-Case"
NATIVE_PATHS = tuple(sorted({e.path for e in ENTRIES if e.profile == "native"}))
DIGEST = "sha256:" + "ab" * 32
ADMIN_BODY = b'{"model":"qwen3-coder:30b","name":"qwen3-coder:30b"}'


@dataclass(frozen=True)
class Case:
    name: str  # unique; marker(name) is its X-Hostile-Case value
    category: str
    raw: bytes
    expect: frozenset[int]  # acceptable final statuses of the (first) response; 0 = none
    code: str | None = None  # error.code a JSON 403/411/413 must carry
    forwarded_as: tuple[str, str] | None = None  # (method, path) the simulator must record
    head: bool = False  # a HEAD request: responses carry no body
    then: tuple[int, ...] = ()  # statuses of the responses to pipelined follow-up requests
    h2: bool = False
    # statuses in `expect` at which the gateway itself refused a `forwarded_as` case (a parser
    # that differs between HAProxy versions): then nothing may reach the simulator
    gateway_may_refuse: frozenset[int] = frozenset()


@dataclass
class Outcome:
    statuses: list[int]  # final (non-1xx) statuses, in order; [0] when none arrived
    content_types: list[str]
    bodies: list[bytes]
    raw: bytes = b""
    events: list[str] = field(default_factory=list)

    @property
    def status(self) -> int:
        return self.statuses[0]

    @property
    def body(self) -> bytes:
        return self.bodies[0]

    @property
    def content_type(self) -> str:
        return self.content_types[0]


def marker(name: str) -> str:
    """The X-Hostile-Case header value of a case (ASCII)."""
    return name.encode("ascii", "backslashreplace").decode("ascii")


_MARK_RE = re.compile(rb"(X-Hostile-Case: )[^\r\n]*")


def haproxy_path(target: str) -> str:
    """The path HAProxy's `path` fetch sees (and Ollama routes on): no query, no authority."""
    if "://" in target.split("?", 1)[0]:
        return urllib.parse.urlsplit(target).path
    return target.split("?", 1)[0]


def refusal_code(path: str) -> str:
    return "suspicious_path" if any(b in path for b in BAD_IN_PATH) else "not_exposed"


# -- HTTP/1 request bytes ------------------------------------------------------------------------

def h1(name: str, method: str, target: str, *, version: str = "HTTP/1.1",
       host: str | None = "gateway", headers: Sequence[tuple[str, str]] = (),
       body: bytes = b"", content_length: bool = True, mark: bool = True) -> bytes:
    lines = [f"{method} {target} {version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    if mark:
        lines.append(f"{CASE_HEADER}: {name}")
    lines += [f"{k}: {v}" for k, v in headers]
    if content_length and (body or method in ("POST", "PUT", "PATCH")):
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def body_for(method: str, path: str) -> bytes:
    if method not in ("POST", "PUT", "PATCH"):
        return b""
    probe = probe_body(path)
    return json.dumps(probe).encode() if probe is not None else ADMIN_BODY


# -- h2c (prior knowledge) -----------------------------------------------------------------------

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_H2_STATIC_STATUS = {8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500}
_DATA, _HEADERS, _RST_STREAM, _SETTINGS, _GOAWAY = 0, 1, 3, 4, 7
_END_STREAM, _END_HEADERS = 0x1, 0x4


def _h2_frame(ftype: int, flags: int, stream: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(
        ">I", stream) + payload


def _hpack_int(value: int, prefix_bits: int, first: int) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append((value & 127) | 128)
        value >>= 7
    out.append(value)
    return bytes(out)


def _hpack_literal(name: bytes, value: bytes) -> bytes:
    """Literal header field without indexing, new name, no Huffman coding."""
    return (b"\x00" + _hpack_int(len(name), 7, 0) + name + _hpack_int(len(value), 7, 0)
            + value)


def h2_request(headers: Sequence[tuple[bytes, bytes]], body: bytes = b"") -> bytes:
    """Client preface, empty SETTINGS, one request on stream 1 (HEADERS [+ DATA])."""
    block = b"".join(_hpack_literal(k, v) for k, v in headers)
    out = H2_PREFACE + _h2_frame(_SETTINGS, 0, 0, b"")
    out += _h2_frame(_HEADERS, _END_HEADERS | (0 if body else _END_STREAM), 1, block)
    for i in range(0, len(body), 16384):
        chunk = body[i:i + 16384]
        out += _h2_frame(_DATA, _END_STREAM if i + 16384 >= len(body) else 0, 1, chunk)
    return out


def _h2_status(block: bytes) -> int:
    """:status from the first field of a response header block (HAProxy never uses Huffman)."""
    first = block[0]
    if first & 0x80:
        return _H2_STATIC_STATUS.get(first & 0x7F, -1)
    name_index = first & (0x3F if first & 0x40 else 0x0F)
    if name_index != 8 or block[1] & 0x80:
        return -1
    return int(block[2:2 + block[1]])


def _h2_parse(data: bytes) -> tuple[int, bytes, list[str], bool]:
    """(status, stream-1 body, frame log, done) from the server's frames so far."""
    pos, status, body, events, done = 0, 0, b"", [], False
    while pos + 9 <= len(data):
        length = int.from_bytes(data[pos:pos + 3], "big")
        ftype, flags = data[pos + 3], data[pos + 4]
        stream = int.from_bytes(data[pos + 5:pos + 9], "big") & 0x7FFFFFFF
        if pos + 9 + length > len(data):
            break
        payload = data[pos + 9:pos + 9 + length]
        pos += 9 + length
        events.append(f"type={ftype} flags={flags:#x} stream={stream}")
        if stream == 1 and ftype == _HEADERS and not status:
            status = _h2_status(payload)
        if stream == 1 and ftype == _DATA:
            body += payload
        if stream == 1 and ftype in (_HEADERS, _DATA) and flags & _END_STREAM:
            done = True
        if ftype in (_RST_STREAM, _GOAWAY):
            done = True
    return status, body, events, done


# -- sending -------------------------------------------------------------------------------------

def split_responses(data: bytes, head: bool) -> Outcome:
    """Every HTTP/1 response in `data` (the server closed after the last one); 1xx skipped."""
    out = Outcome([], [], [], data)
    pos = 0
    while pos < len(data):
        rest = data[pos:]
        resp, complete = parse_response(rest, head_only=head and not out.statuses)
        if resp is None or resp.status == 0:
            break
        sep = rest.find(b"\r\n\r\n") + 4
        if 100 <= resp.status < 200:
            pos += sep
            continue
        out.statuses.append(resp.status)
        out.content_types.append(resp.header("content-type") or "")
        out.bodies.append(resp.body)
        if not complete:
            break
        if head or resp.status in (204, 304):
            pos += sep
        elif "chunked" in (resp.header("transfer-encoding") or "").lower():
            end = rest.find(b"\r\n0\r\n\r\n", sep)
            pos += (end + 7) if end >= 0 else len(rest)
        else:
            pos += sep + int(resp.header("content-length") or len(rest) - sep)
        head = False
    if not out.statuses:
        out.statuses, out.content_types, out.bodies = [0], [""], [b""]
    return out


def send(host: str, port: int, case: Case, timeout: float = 5.0) -> Outcome:
    """Send the case's bytes on a fresh connection and read every response until close."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect((host, port))
        with contextlib.suppress(OSError):  # the gateway may answer and close before the end
            sock.sendall(case.raw)
        if case.h2:
            data = read_until(sock, timeout, lambda d: _h2_parse(d)[3])
            status, body, events, _ = _h2_parse(data)
            return Outcome([status], [""], [body], data, events)
        data = read_until(sock, timeout)
    return split_responses(data, case.head)


# -- the corpus ----------------------------------------------------------------------------------

class _Builder:
    def __init__(self, profiles: Sequence[str]) -> None:
        self.profiles = tuple(profiles)
        self.cases: list[Case] = []

    def add(self, name: str, category: str, raw: bytes, expect: Iterable[int], *,
            code: str | None = None, forwarded_as: tuple[str, str] | None = None,
            head: bool = False, then: tuple[int, ...] = (), h2: bool = False,
            gateway_may_refuse: Iterable[int] = ()) -> None:
        if not h2:  # the (first) request's X-Hostile-Case header names its case
            raw = _MARK_RE.sub(lambda m: m.group(1) + marker(name).encode(), raw, count=1)
        self.cases.append(Case(name, category, raw, frozenset(expect), code, forwarded_as,
                               head, then, h2, frozenset(gateway_may_refuse)))

    def allowed(self, method: str, target: str) -> bool:
        return is_allowed(method, haproxy_path(target), self.profiles)

    def misdirected(self, name: str, category: str, method: str, target: str,
                    host: str | None, *, version: str = "HTTP/1.1",
                    parser_may_refuse: bool = False) -> None:
        """A request whose Host is not a name of this gateway: 421 whatever the route (or the
        parser's 400 for a malformed Host, on versions whose parser checks it)."""
        raw = h1(name, method, target, version=version, host=host,
                 body=body_for(method, haproxy_path(target)))
        self.add(name, category, raw, {400, 421} if parser_may_refuse else {421},
                 code="misdirected_request", head=method == "HEAD")

    def route(self, name: str, category: str, method: str, target: str, *,
              ok: Iterable[int] = (200,), headers: Sequence[tuple[str, str]] = (),
              body: bytes | None = None, version: str = "HTTP/1.1",
              host: str | None = "gateway") -> None:
        """A request that must be refused with 403 unless (method, path) is allowlisted."""
        path = haproxy_path(target)
        raw = h1(name, method, target, version=version, host=host, headers=headers,
                 body=body_for(method, path) if body is None else body)
        if self.allowed(method, target):
            self.add(name, category, raw, ok, forwarded_as=(method, path), head=method == "HEAD")
        else:
            self.add(name, category, raw, {403}, code=refusal_code(path), head=method == "HEAD")


def _route_paths() -> list[str]:
    paths = [p.replace("{digest}", DIGEST).replace("{key}", "ssh-ed25519-AAAAC3Nza")
             for _, p in NEVER]
    paths += list(NATIVE_PATHS)
    paths += [e.example_path for e in entries_for(["default"])]
    paths += ["/api/hello", "/v1/messages/count_tokens", "/metrics", "/debug/pprof/"]
    return list(dict.fromkeys(paths))


def build_corpus(profiles: Sequence[str] = ("default",), max_body_bytes: int = 4096
                 ) -> list[Case]:
    b = _Builder(profiles)
    _route_matrix(b)
    _encoded(b)
    _dot_segments(b)
    _double_slash_and_backslash(b)
    _trailing_slash_params_query(b)
    _case_variants(b)
    _absolute_form(b)
    _odd_methods(b)
    _method_override(b)
    _http_versions_and_host(b)
    _framing(b)
    _oversize(b, max_body_bytes)
    _nul_and_control(b)
    _garbage_and_pipelining(b)
    _h2c(b)
    _bodies_on_get_and_head(b)
    _odd_authorities(b)
    _trickling(b, max_body_bytes)
    names = [c.name for c in b.cases]
    assert len(names) == len(set(names)), "case names must be unique"
    return b.cases


def _route_matrix(b: _Builder) -> None:
    """Every admin, native, allowlisted and unknown route with every method."""
    for path in _route_paths():
        for method in METHODS:
            b.route(f"route {method} {path}", "route_matrix", method, path)


def _encoded(b: _Builder) -> None:
    post = ["/api/%70ull", "/api/%2570ull", "/%61pi/pull", "/api%2Fpull", "/api%2fpull",
            "/api/pul%6C", "/api/pul%6c", "/api/%70%75%6C%6C", "/api/%25%37%30ull",
            "/api/%u0070ull", "/api/%c0%afpull", "/api/pull%00", "/api/pull%", "/api/pull%zz",
            "/api/%63reate", "/api/%63opy", "/api/experimental/web%5Fsearch",
            "/api/blobs/sha256%3A" + "ab" * 32, "/%2e%2e/api/pull", "/%252e%252e/api/pull",
            "/api/chat%2F..%2Fpull", "/v1/chat%2Fcompletions", "/v1/messages%3Fbeta=true",
            "/api/%73how", "/api/me%20", "/api/signout%09"]
    for target in post:
        b.route(f"encoded POST {target}", "encoded", "POST", target)
    get = ["/api/%74ags", "/api/tags%00", "/api/tags%20", "/api/tags%2F", "/api/tags%3F",
           "/api/tags%23", "/api/%73tatus", "/api/%2573tatus", "/v1/models/qwen3-coder%3A30b",
           "/v1/models/%2e%2e%2fapi%2fpull", "/v1/models/%2E%2E", "/%2F/api/tags", "/%"]
    for target in get:
        b.route(f"encoded GET {target}", "encoded", "GET", target)
    b.route("encoded DELETE /api/%64elete", "encoded", "DELETE", "/api/%64elete")
    b.route("encoded DELETE /api/user/keys/%2e%2e", "encoded", "DELETE", "/api/user/keys/%2e%2e")
    b.route("encoded HEAD /api/blobs/%73ha256", "encoded", "HEAD", "/api/blobs/%73ha256:00")


def _dot_segments(b: _Builder) -> None:
    cases = [("POST", "/api/../api/pull"), ("POST", "/api/./pull"), ("GET", "/./api/tags"),
             ("GET", "/api/tags/."), ("GET", "/api/tags/.."), ("GET", "/v1/models/.."),
             ("GET", "/v1/models/..."), ("POST", "/api/chat/../pull"), ("GET", "/../api/tags"),
             ("POST", "/api/tags/../../api/pull"), ("POST", "/v1/./messages"), ("GET", "/.."),
             ("GET", "/."), ("POST", "/api/.../pull"), ("GET", "/api/.hidden"),
             ("DELETE", "/api/./delete"), ("GET", "/api/status/.."), ("POST", "/v1/messages/.."),
             ("GET", "/v1/models/./qwen3-coder:30b"), ("GET", "/api/..;/status")]
    for method, target in cases:
        b.route(f"dots {method} {target}", "dot_segments", method, target)
    # `.` is a legal character of a model name: /v1/models/. is allowlisted; Go's ServeMux in
    # front of Ollama redirects it (301) to the cleaned /v1/models, itself allowlisted
    b.route("dots GET /v1/models/.", "dot_segments", "GET", "/v1/models/.", ok={301})


def _double_slash_and_backslash(b: _Builder) -> None:
    cases = [("GET", "//api/tags"), ("GET", "/api//tags"), ("GET", "/api/tags//"),
             ("POST", "///api/pull"), ("GET", "//"), ("GET", "/v1//models"),
             ("GET", "/v1/models//x"), ("POST", "//v1/messages"), ("POST", "/api//pull"),
             ("DELETE", "//api/delete"), ("GET", "//api/status"), ("POST", "/api/chat//")]
    for method, target in cases:
        b.route(f"slashes {method} {target}", "double_slash", method, target)
    cases = [("GET", "/api\\tags"), ("POST", "/api\\pull"), ("GET", "/api/tags\\"),
             ("POST", "/api\\..\\pull"), ("GET", "/v1\\models"), ("POST", "/api/\\/pull"),
             ("DELETE", "/api\\delete"), ("GET", "/\\api/status")]
    for method, target in cases:
        b.route(f"backslash {method} {target}", "backslash", method, target)
    # a target that does not start with '/' is not origin-form: the parser refuses it
    b.add("backslash GET \\api\\tags", "backslash", h1("backslash-first", "GET", "\\api\\tags"),
          {400})


def _trailing_slash_params_query(b: _Builder) -> None:
    seen: set[tuple[str, str]] = set()
    for e in [*entries_for(["default", "native"])]:
        if (e.method, e.path) in seen or e.path == "/":
            continue
        seen.add((e.method, e.path))
        target = e.example_path + "/"
        b.route(f"trailing {e.method} {target}", "trailing_slash", e.method, target)
    for method, path in NEVER[:6]:
        target = path.replace("{digest}", DIGEST) + "/"
        b.route(f"trailing {method} {target}", "trailing_slash", method, target)
    params = [("GET", "/api/tags;x"), ("GET", "/api/tags;"), ("GET", "/api;/tags"),
              ("POST", "/api/pull;"), ("POST", "/api/pull;x=1"),
              ("POST", "/v1/messages;jsessionid=abc"), ("GET", "/v1/models/qwen3-coder:30b;x"),
              ("POST", "/;/api/pull"), ("GET", "/api/tags;/../pull"), ("GET", "/api/ps;"),
              ("POST", "/api/show;.json"), ("DELETE", "/api/delete;")]
    for method, target in params:
        b.route(f"params {method} {target}", "params", method, target)
    # query strings are allowed (DESIGN §4) and Ollama routes on the path only
    query = [("GET", "/api/tags?x=1"), ("GET", "/api/tags?"), ("POST", "/v1/messages?beta=true"),
             ("GET", "/api/tags?/../api/pull"), ("GET", "/api/tags?x=%2e%2e%2f"),
             ("POST", "/v1/messages?beta=true/../../api/pull"), ("GET", "/api/tags?x=\\"),
             ("POST", "/api/pull?/v1/messages"), ("GET", "/api/status?x=1"),
             ("GET", "/api/tags?_method=DELETE"), ("POST", "/api/pull?.json"),
             ("GET", "/api/pull?"), ("DELETE", "/api/delete?model=x")]
    for method, target in query:
        b.route(f"query {method} {target}", "query", method, target)


def _case_variants(b: _Builder) -> None:
    methods = [("get", "/api/tags"), ("Get", "/api/tags"), ("gET", "/api/version"),
               ("head", "/api/tags"), ("post", "/v1/messages"), ("Post", "/api/show"),
               ("pOST", "/v1/chat/completions"), ("post", "/api/pull"), ("delete", "/api/delete"),
               ("Delete", "/api/delete"), ("get", "/api/status"), ("options", "/")]
    for method, target in methods:
        b.route(f"case {method} {target}", "case_variants", method, target)
    paths = [("GET", "/API/TAGS"), ("GET", "/Api/Tags"), ("GET", "/api/Tags"),
             ("POST", "/API/PULL"), ("POST", "/api/Pull"), ("POST", "/V1/MESSAGES"),
             ("POST", "/v1/Messages"), ("GET", "/v1/MODELS"), ("GET", "/API/VERSION"),
             ("DELETE", "/API/DELETE"), ("GET", "/API/STATUS"), ("POST", "/API/CHAT"),
             ("POST", "/V1/Chat/Completions"), ("GET", "/API/PS")]
    for method, target in paths:
        b.route(f"case {method} {target}", "case_variants", method, target)


def _absolute_form(b: _Builder) -> None:
    cat = "absolute_form"
    # authority matching Host: HAProxy routes on the path after the authority
    same = [("GET", "http://gateway/api/tags"), ("GET", "http://gateway:80/api/tags"),
            ("GET", "https://gateway/api/tags"), ("HEAD", "http://gateway/api/version"),
            ("POST", "http://gateway/v1/messages?beta=true"), ("POST", "http://gateway/api/pull"),
            ("GET", "http://gateway/api/status"), ("DELETE", "http://gateway/api/delete"),
            ("GET", "http://gateway//api/tags"), ("POST", "http://gateway/api/%70ull"),
            ("GET", "http://gateway/api/../api/tags"),
            ("POST", "http://gateway/api/chat"), ("GET", "http://gateway/API/TAGS")]
    for method, target in same:
        b.route(f"absolute {method} {target}", cat, method, target)
    # no path at all: 2.6's `path` is empty (403); 3.4 normalises it to `/` (allowlisted)
    b.add("absolute GET http://gateway", cat, h1("absolute-nopath", "GET", "http://gateway"),
          {200, 403}, code="not_exposed", forwarded_as=("GET", "/"), gateway_may_refuse={403})
    # authority not matching Host: the parser refuses it
    other = [("GET", "http://evil.example/api/tags"), ("GET", "http://127.0.0.1:11434/api/tags"),
             ("POST", "http://127.0.0.1:11434/api/pull"), ("GET", "http://[::1]:11434/api/tags"),
             ("GET", "http://gateway.evil/api/tags")]
    for method, target in other:
        b.add(f"absolute {method} {target}", cat, h1(f"absolute-other {target}", method, target,
                                                     body=body_for(method, "/x")), {400})
    b.add("absolute no Host", cat, h1("absolute no Host", "GET", "http://127.0.0.1:11434/api/pull",
                                      host=None), {421}, code="misdirected_request")
    # neither origin-form nor absolute-form: refused by the parser, or (2.6 lets these two
    # through as opaque targets) by the allowlist
    for target in ("api/tags", "gateway:80", "/api/tags#frag"):
        b.add(f"absolute bad target {target}", cat, h1(f"bad target {target}", "GET", target),
              {400})
    for target in ("gateway/api/tags", "*/api/tags"):  # 3.4's parser: 400
        b.add(f"absolute bad target {target}", cat, h1(f"bad target {target}", "GET", target),
              {400, 403}, code="not_exposed")


def _odd_methods(b: _Builder) -> None:
    cat = "odd_methods"
    for method, target in [("TRACE", "/"), ("TRACE", "/api/tags"), ("TRACK", "/api/tags"),
                           ("DEBUG", "/"), ("PROPFIND", "/"), ("MKCOL", "/api/x"),
                           ("COPY", "/api/tags"), ("MOVE", "/api/tags"), ("LOCK", "/api/tags"),
                           ("UNLOCK", "/"), ("PURGE", "/api/tags"), ("SEARCH", "/api/tags"),
                           ("QUERY", "/api/tags"), ("LINK", "/api/tags"), ("BREW", "/"),
                           ("PULL", "/api/pull"), ("GETS", "/api/tags"), ("HEADER", "/"),
                           ("POSTS", "/v1/messages"), ("M-SEARCH", "/"), ("TRACE", "/api/pull"),
                           ("OPTIONS", "*"), ("G" * 5000, "/api/tags")]:
        b.route(f"method {method[:20]} {target}", cat, method, target,
                body=body_for("POST", target) if method.startswith("POST") else b"")
    b.route("method CONNECT gateway:443", cat, "CONNECT", "gateway:443")
    b.add("method CONNECT without a port", cat, h1("connect-noport", "CONNECT", "gateway"), {400})
    b.add("method CONNECT to the upstream", cat, h1("connect-up", "CONNECT", "127.0.0.1:11434"),
          {400})
    b.add("method CONNECT upstream as Host", cat,
          h1("connect-up-host", "CONNECT", "127.0.0.1:11434", host="127.0.0.1:11434"),
          {421}, code="misdirected_request")
    b.add("method CONNECT origin-form", cat, h1("connect-path", "CONNECT", "/api/tags"), {400})
    for method in ("G@T", "GE(T", "G,ET", "GET:", "GE[T]", "\xc7ET"):
        b.add(f"method invalid token {method!r}", cat, h1(f"bad method {method[:2]}", method,
                                                           "/api/tags"), {400})
    # within the 1 MiB buffer the parser takes it (refused as not exposed); beyond a 16 KB
    # buffer 2.6's parser answered 400, 3.4's 414
    b.add("method 20000 bytes", cat, h1("method 20000", "G" * 20000, "/api/tags"),
          {400, 403, 414}, code="not_exposed")


def _method_override(b: _Builder) -> None:
    cat = "method_override"
    overrides = [("X-HTTP-Method-Override", "DELETE"), ("X-HTTP-Method-Override", "PUT"),
                 ("X-HTTP-Method", "DELETE"), ("X-Method-Override", "POST"),
                 ("X-Original-Method", "DELETE"), ("X-Original-URL", "/api/pull"),
                 ("X-Rewrite-URL", "/api/delete"), ("X-Forwarded-Uri", "/api/pull"),
                 ("X-Forwarded-Prefix", "/api/pull"), ("X-Override-URL", "/api/create"),
                 ("X-Forwarded-Path", "/api/experimental/web_fetch"),
                 ("Forwarded", "for=127.0.0.1;host=127.0.0.1:11434;proto=http"),
                 ("X-Forwarded-Host", "127.0.0.1:11434"), ("X-Real-IP", "127.0.0.1")]
    for i, (header, value) in enumerate(overrides):
        method, path = [("GET", "/api/tags"), ("POST", "/v1/messages"), ("POST", "/api/show"),
                        ("GET", "/v1/models")][i % 4]
        b.route(f"override {header}: {value} on {method} {path}", cat, method, path,
                headers=[(header, value)])
    # several at once, and overrides cannot turn a refused request into an allowed one
    b.route("override all on GET /api/tags", cat, "GET", "/api/tags",
            headers=[(h, v) for h, v in overrides[:6]])
    for method, path, header, value in [
            ("DELETE", "/api/tags", "X-HTTP-Method-Override", "GET"),
            ("POST", "/api/pull", "X-HTTP-Method-Override", "GET"),
            ("GET", "/api/delete", "X-HTTP-Method-Override", "DELETE"),
            ("PUT", "/v1/messages", "X-HTTP-Method", "POST"),
            ("POST", "/api/pull", "X-Original-URL", "/v1/messages"),
            ("GET", "/api/status", "X-Rewrite-URL", "/api/tags"),
            ("PATCH", "/api/show", "X-Method-Override", "POST")]:
        b.route(f"override {header}: {value} on {method} {path}", cat, method, path,
                headers=[(header, value)])


def _http_versions_and_host(b: _Builder) -> None:
    cat = "http_version"
    # no Host at all: not a name of this gateway (421), whatever the route
    b.misdirected("http/1.0 GET /api/tags no Host", cat, "GET", "/api/tags", None,
                  version="HTTP/1.0")
    b.route("http/1.0 GET /api/tags", cat, "GET", "/api/tags", version="HTTP/1.0")
    b.misdirected("http/1.0 HEAD /", cat, "HEAD", "/", None, version="HTTP/1.0")
    b.route("http/1.0 POST /v1/messages", cat, "POST", "/v1/messages", version="HTTP/1.0")
    for method, path in [("POST", "/api/pull"), ("DELETE", "/api/delete"), ("GET", "/api/status"),
                         ("POST", "/api/%70ull"), ("GET", "//api/tags"), ("POST", "/api/chat")]:
        b.misdirected(f"http/1.0 {method} {path}", cat, method, path, None, version="HTTP/1.0")
        b.route(f"http/1.0 {method} {path} with Host", cat, method, path, version="HTTP/1.0")
    # versions HAProxy 2.6 accepts and forwards as HTTP/1.1 (harmless on allowlisted routes)
    b.route("http/1.2 GET /api/tags", cat, "GET", "/api/tags", version="HTTP/1.2")
    b.route("http/2.0 in an HTTP/1 request line", cat, "GET", "/api/tags", version="HTTP/2.0")
    b.route("http/1.2 POST /api/pull", cat, "POST", "/api/pull", version="HTTP/1.2")
    for version in ("http/1.1", "HTTP/1", "HTTP/1.1x", "HTTP/11", "HTTPS/1.1", "HTTP/1.1 x"):
        b.add(f"version {version}", cat, h1(f"version {version}", "POST", "/api/pull",
                                            version=version, body=ADMIN_BODY), {400})
    b.add("http/0.9 GET /api/pull", cat, b"GET /api/pull\r\n\r\n", {400})
    b.add("http/0.9 GET /api/tags", cat, b"GET /api/tags\r\n", {400})

    cat = "host_header"
    b.route("host duplicate same value", cat, "GET", "/api/tags",
            headers=[("Host", "gateway")])
    b.add("host duplicate different values", cat,
          h1("host dup diff", "GET", "/api/tags", headers=[("Host", "127.0.0.1:11434")]), {400})
    b.add("host duplicate different values on /api/pull", cat,
          h1("host dup diff pull", "POST", "/api/pull", headers=[("Host", "127.0.0.1")],
             body=ADMIN_BODY), {400})
    # Host must name this gateway (Ollama's DNS-rebinding defence): anything else is 421
    for name, host in [("empty", ""), ("absent on HTTP/1.1", None),
                       ("is the upstream", "127.0.0.1:11434"),
                       ("another MagicDNS name", "box.tail1234.ts.net:11434"),
                       ("with a path", "gateway/api/pull"), ("rebound name", "evil.example"),
                       ("rebound name with port", "evil.example:11434"),
                       ("suffix of ours", "gateway.evil"), ("prefix of ours", "xgateway"),
                       ("ours as a subdomain", "gateway.evil.example"),
                       ("two dots", "gateway.."), ("leading dot", ".gateway"),
                       ("userinfo", "gateway@evil.example"), ("comma list", "gateway,evil"),
                       ("space inside", "gate way"), ("tab after", "gateway\tx"),
                       ("ip wildcard", "0.0.0.0"), ("ipv6 wildcard", "[::]"),
                       ("loopback other port", "127.0.0.1:1"),
                       ("loopback v4-mapped", "[::ffff:127.0.0.1]"),
                       ("loopback decimal", "2130706433"), ("percent-encoded", "gatew%61y")]:
        # HAProxy 3.x's parser refuses a Host that is not host[:port] itself (400)
        malformed = name in ("with a path", "userinfo", "comma list", "space inside",
                             "tab after")
        for method, path in [("GET", "/api/tags"), ("POST", "/v1/messages"),
                             ("POST", "/api/pull")]:
            b.misdirected(f"host {name} on {method} {path}", cat, method, path, host,
                          parser_may_refuse=malformed)
    # spellings of our own name that must pass: case, trailing dot
    for host in ("GATEWAY", "Gateway", "gateway.", "GATEWAY."):
        b.route(f"host spelled {host}", cat, "GET", "/api/tags", host=host)
    b.route("host localhost on DELETE /api/delete", cat, "DELETE", "/api/delete",
            host="localhost")
    b.route("host localhost on GET /api/tags", cat, "GET", "/api/tags", host="localhost")

    # Browsers: Origin or any Sec-Fetch-* header → 403 browser_request (none allowed here)
    cat = "browser"
    for name, hdrs in [("origin https", [("Origin", "https://evil.example")]),
                       ("origin http", [("Origin", "http://evil.example")]),
                       ("origin null", [("Origin", "null")]),
                       ("origin empty", [("Origin", "")]),
                       ("origin of the gateway itself", [("Origin", "http://gateway")]),
                       ("origin lower-case name", [("origin", "https://evil.example")]),
                       ("sec-fetch-site", [("Sec-Fetch-Site", "cross-site")]),
                       ("sec-fetch-mode", [("Sec-Fetch-Mode", "cors")]),
                       ("sec-fetch-dest", [("Sec-Fetch-Dest", "empty")]),
                       ("sec-fetch-user", [("Sec-Fetch-User", "?1")]),
                       ("sec-fetch lower-case", [("sec-fetch-site", "same-origin")]),
                       ("sec-fetch unknown", [("Sec-Fetch-Storage-Access", "active")]),
                       ("full browser set", [("Origin", "https://evil.example"),
                                             ("Sec-Fetch-Site", "cross-site"),
                                             ("Sec-Fetch-Mode", "cors"),
                                             ("Sec-Fetch-Dest", "empty")])]:
        for method, path in [("GET", "/api/tags"), ("POST", "/v1/chat/completions"),
                             ("POST", "/v1/messages"), ("POST", "/api/pull"),
                             ("OPTIONS", "/v1/chat/completions")]:
            raw = h1(f"browser {name} {method} {path}", method, path, headers=hdrs,
                     body=body_for(method, path))
            b.add(f"browser {name} on {method} {path}", cat, raw, {403},
                  code="browser_request")
    # headers that merely look alike are not browser markers
    b.route("not a browser: x-origin", cat, "GET", "/api/tags",
            headers=[("X-Origin", "https://evil.example")])
    b.route("not a browser: sec-fetch without dash", cat, "GET", "/api/tags",
            headers=[("Sec-Fetchsite", "x")])


def _framing(b: _Builder) -> None:
    cat = "framing"
    chat = "/v1/chat/completions"
    ok_body = json.dumps(probe_body(chat)).encode()

    def post(name: str, headers: str, body: bytes, path: str = chat) -> bytes:
        return (f"POST {path} HTTP/1.1\r\nHost: gateway\r\n{CASE_HEADER}: {name}\r\n"
                ).encode() + headers.encode("latin-1") + b"Connection: close\r\n\r\n" + body

    chunked = b"2\r\n{}\r\n0\r\n\r\n"
    smuggled = (b"0\r\n\r\nPOST /api/pull HTTP/1.1\r\nHost: gateway\r\nContent-Length: 2\r\n\r\n{}")
    # Transfer-Encoding that passes the parser: 411 on allowlisted routes, 403 on others
    for name, hdrs, body in [
            ("te chunked", "Transfer-Encoding: chunked\r\n", chunked),
            ("te CHUNKED", "Transfer-Encoding: CHUNKED\r\n", chunked),
            ("te tab", "Transfer-Encoding:\tchunked\r\n", chunked),
            ("te + cl", "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\nG"),
            ("cl + te", "Transfer-Encoding: chunked\r\nContent-Length: 100\r\n", chunked),
            ("te smuggling a request", "Transfer-Encoding: chunked\r\n", smuggled),
            ("te + cl smuggling", f"Content-Length: {len(smuggled)}\r\n"
                                  "Transfer-Encoding: chunked\r\n", smuggled),
            ("te chunked with extension", "Transfer-Encoding: chunked\r\n",
             b"2;ext=1\r\n{}\r\n0\r\n\r\n")]:
        b.add(f"framing {name}", cat, post(name, hdrs, body), {411}, code="length_required")
    b.add("framing te on GET /api/tags", cat,
          b"GET /api/tags HTTP/1.1\r\nHost: gateway\r\nTransfer-Encoding: chunked\r\n"
          b"Connection: close\r\n\r\n0\r\n\r\n", {400}, code="body_not_allowed")
    b.add("framing te on HTTP/1.0", cat,
          f"POST {chat} HTTP/1.0\r\nHost: gateway\r\nTransfer-Encoding: chunked\r\n"
          "Connection: close\r\n\r\n"
          .encode() + chunked, {411}, code="length_required")
    for path in ("/api/pull", "/api/create", "/api/push"):
        b.add(f"framing te on {path}", cat, post(f"te {path}", "Transfer-Encoding: chunked\r\n",
                                                 chunked, path), {403}, code="not_exposed")
    # the parser's smuggling defences
    for name, hdrs, body in [
            ("te chunked, gzip", "Transfer-Encoding: chunked, gzip\r\n", chunked),
            ("te xchunked", "Transfer-Encoding: xchunked\r\n", chunked),
            ("te identity", "Transfer-Encoding: identity\r\n", b""),
            ("te empty", "Transfer-Encoding:\r\n", b""),
            ("te twice", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", chunked),
            ("te chunked, identity", "Transfer-Encoding: chunked, identity\r\n", chunked),
            ("te vertical tab", "Transfer-Encoding:\x0bchunked\r\n", chunked),
            ("te space before colon", "Transfer-Encoding : chunked\r\n", chunked),
            ("te quoted", 'Transfer-Encoding: "chunked"\r\n', chunked),
            ("cl conflicting", "Content-Length: 2\r\nContent-Length: 3\r\n", b"{} "),
            ("cl conflicting list", "Content-Length: 2, 3\r\n", b"{} "),
            ("cl plus", "Content-Length: +2\r\n", b"{}"),
            ("cl negative", "Content-Length: -1\r\n", b"{}"),
            ("cl empty", "Content-Length:\r\n", b"{}"),
            ("cl hex", "Content-Length: 0x2\r\n", b"{}"),
            ("cl spaces inside", "Content-Length: 1 2\r\n", b"{}"),
            ("cl overflow", "Content-Length: 99999999999999999999999\r\n", b"{}"),
            ("cl space before colon", "Content-Length : 2\r\n", b"{}")]:
        b.add(f"framing {name}", cat, post(name, hdrs, body), {400})
    # obs-fold: HAProxy unfolds the line into the X-A value, so there is no Transfer-Encoding
    # and no Content-Length: a POST without a length is refused with 411 at the gateway
    b.add("framing te hidden in an obs-fold", cat,
          post("te obs-fold", "X-A: b\r\n Transfer-Encoding: chunked\r\n", chunked), {411},
          code="length_required")
    b.add("framing te gzip, chunked", cat,
          post("te gzip chunked", "Transfer-Encoding: gzip, chunked\r\n", chunked), {422})
    # accepted framings on an allowlisted route: the simulator sees one well-formed body
    same = f"Content-Length: {len(ok_body)}\r\nContent-Length: {len(ok_body)}\r\n"
    b.add("framing cl duplicate same value", cat, post("cl dup same", same, ok_body), {200},
          forwarded_as=("POST", chat))
    b.add("framing cl list same value", cat,
          post("cl list same", f"Content-Length: {len(ok_body)}, {len(ok_body)}\r\n", ok_body),
          {200}, forwarded_as=("POST", chat))
    b.add("framing cl 0 then a smuggled request", cat,
          post("cl0 smuggle", "Content-Length: 0\r\n",
               b"POST /api/pull HTTP/1.1\r\nHost: gateway\r\nContent-Length: 2\r\n\r\n{}",
               "/api/show"),
          {400}, forwarded_as=("POST", "/api/show"))  # the simulator: "missing request body"
    b.add("framing expect 100-continue", cat,
          post("expect", f"Expect: 100-continue\r\nContent-Length: {len(ok_body)}\r\n", ok_body),
          {200}, forwarded_as=("POST", chat))
    b.add("framing expect 100-continue on /api/pull", cat,
          post("expect pull", "Expect: 100-continue\r\nContent-Length: 2\r\n", b"{}",
               "/api/pull"), {403}, code="not_exposed")


def _padded_chat_body(size: int) -> bytes:
    body = dict(probe_body("/v1/chat/completions") or {})
    body["user"] = ""
    base = len(json.dumps(body).encode())
    body["user"] = "x" * (size - base)
    data = json.dumps(body).encode()
    assert len(data) == size
    return data


def _oversize(b: _Builder, limit: int) -> None:
    cat = "oversize"
    chat = "/v1/chat/completions"
    b.route("body exactly at the limit", cat, "POST", chat, body=_padded_chat_body(limit))
    b.add("body one byte over the limit", cat,
          h1("over by one", "POST", chat, body=_padded_chat_body(limit + 1)), {413},
          code="payload_too_large")
    for n in (limit * 4, 10**6, 10**9, 2**31 - 1):
        raw = h1(f"cl {n}", "POST", chat, headers=[("Content-Length", str(n))], body=b"{}",
                 content_length=False)
        b.add(f"content-length {n} on {chat}", cat, raw, {413}, code="payload_too_large")
    b.add("content-length with leading zeros", cat,
          h1("cl zeros", "POST", chat, headers=[("Content-Length", f"{limit + 1:016d}")],
             body=b"{}", content_length=False), {413}, code="payload_too_large")
    b.add("content-length 10**12 on /api/pull", cat,
          h1("cl 1e12 pull", "POST", "/api/pull", headers=[("Content-Length", str(10**12))],
             body=b"{}", content_length=False), {403}, code="not_exposed")
    b.route("big body on /api/pull", cat, "POST", "/api/pull", body=b"x" * (limit * 2))
    b.route("big body on DELETE /api/delete", cat, "DELETE", "/api/delete",
            body=b"x" * (limit * 2))
    # header block: HAProxy 2.6 holds ~15 KB of headers (bufsize 16384 - maxrewrite); beyond
    # that, and beyond 101 header lines, its parser answers 400 (3.4: 431 for the size)
    for n in (1000, 8000, 14000):
        b.route(f"header value {n} bytes", cat, "GET", "/api/tags", headers=[("X-Big", "a" * n)])
    for n in (16500, 20000, 70000):
        b.add(f"header value {n} bytes", cat,
              h1(f"hdr {n}", "GET", "/api/tags", headers=[("X-Big", "a" * n)]), {400, 431})
        b.add(f"header value {n} bytes on /api/pull", cat,
              h1(f"hdr {n} pull", "POST", "/api/pull", headers=[("X-Big", "a" * n)],
                 body=ADMIN_BODY), {400, 431})
    b.add("header name 2000 bytes", cat,
          h1("hdr name", "GET", "/api/tags", headers=[("X" * 2000, "v")]), {400})
    b.route("60 headers", cat, "GET", "/api/tags",
            headers=[(f"X-H{i}", "v") for i in range(60)])
    for n in (101, 150, 1000):
        b.add(f"{n} headers", cat, h1(f"{n} headers", "GET", "/api/tags",
                                      headers=[(f"X-H{i}", "v") for i in range(n)]), {400})
    # very long paths
    for n in (1000, 8000, 15000):
        b.route(f"path {n} bytes", cat, "GET", "/api/" + "a" * n)
        b.route(f"admin path {n} bytes", cat, "POST", "/api/pull/" + "a" * n)
        b.route(f"suspicious path {n} bytes", cat, "GET", "/api/" + "%2e" * (n // 3))
    for n in (1000, 8000):  # one long model segment is allowlisted: Ollama answers 404
        b.route(f"model segment {n} bytes", cat, "GET", "/v1/models/" + "m" * n, ok={404})
    for n in (17000, 70000):  # 3.4: 414
        b.add(f"path {n} bytes", cat, h1(f"path {n}", "GET", "/api/" + "a" * n), {400, 414})
        b.add(f"model segment {n} bytes", cat, h1(f"model {n}", "GET", "/v1/models/" + "m" * n),
              {400, 414})
    b.route("query 12000 bytes", cat, "GET", "/api/tags?" + "q" * 12000)


def _nul_and_control(b: _Builder) -> None:
    cat = "nul_control"
    mark = f"{CASE_HEADER}: ".encode()

    def raw(name: str, line: bytes, extra: bytes = b"", body: bytes = b"") -> bytes:
        return (line + b"\r\nHost: gateway\r\n" + mark + name.encode() + b"\r\n" + extra
                + b"Connection: close\r\n\r\n" + body)

    refused_400 = [
        ("nul in path", b"GET /api/tags\x00 HTTP/1.1"),
        ("nul in admin path", b"POST /api/pull\x00/api/tags HTTP/1.1"),
        ("nul in method", b"G\x00ET /api/tags HTTP/1.1"),
        ("nul in version", b"GET /api/tags HTTP/1.1\x00"),
        ("nul before the request line", b"\x00GET /api/tags HTTP/1.1"),
        ("control char in path", b"GET /api/t\x01ags HTTP/1.1"),
        ("tab in path", b"GET /api/t\tags/x HTTP/1.1"),
        ("space in path", b"GET /api/ tags HTTP/1.1"),
        ("CR in path", b"GET /api/tags\r HTTP/1.1"),
        ("latin-1 byte in path", b"GET /api/t\xffags HTTP/1.1"),
        ("utf-8 in path", "GET /api/tägs HTTP/1.1".encode()),
        ("utf-8 lookalike slash", "POST /api\u2215pull HTTP/1.1".encode()),
        ("fullwidth dots", "POST /api/\uff0e\uff0e/pull HTTP/1.1".encode()),
    ]
    for name, line in refused_400:
        b.add(f"ctl {name}", cat, raw(name, line), {400})
    header_400 = [
        ("nul in header name", b"X-\x00A: b\r\n"),
        ("CR in header value", b"X-A: a\rb\r\n"),
        ("header without colon", b"X-A b\r\n"),
        ("header with empty name", b": b\r\n"),
        ("space before colon", b"X-A : b\r\n"),
        ("header name with a slash", b"X/A: b\r\n"),
        ("header name with utf-8", "X-\u00c4: b\r\n".encode()),
    ]
    for name, extra in header_400:
        b.add(f"ctl {name}", cat, raw(name, b"GET /api/tags HTTP/1.1", extra), {400})
    b.add("ctl bare CR line endings", cat,
          b"GET /api/tags HTTP/1.1\rHost: gateway\rConnection: close\r\r", {400})
    b.add("ctl DEL in path", cat, raw("del in path", b"GET /api/t\x7fags HTTP/1.1"), {400, 403},
          code="not_exposed")  # 3.4's parser refuses DEL
    b.add("ctl quote in path", cat, raw("quote in path", b'GET /api/"tags HTTP/1.1'), {403},
          code="not_exposed")
    b.add("ctl brackets in path", cat, raw("brackets", b"POST /api/<pull>{x}|y HTTP/1.1",
                                           b"Content-Length: 0\r\n"), {403}, code="not_exposed")
    # HAProxy 2.6 forwards a NUL in a header value (3.3 refuses it): harmless on an allowlisted
    # route, refused with 403 elsewhere
    b.add("ctl nul in header value", cat,
          raw("nul in header value", b"GET /api/tags HTTP/1.1", b"X-A: a\x00b\r\n"), {200, 400},
          forwarded_as=("GET", "/api/tags"), gateway_may_refuse={400})
    b.add("ctl nul in header value on /api/pull", cat,
          raw("nul hdr pull", b"POST /api/pull HTTP/1.1", b"X-A: a\x00b\r\nContent-Length: 0\r\n"),
          {400, 403}, code="not_exposed")
    b.add("ctl nul in Host", cat, b"GET /api/tags HTTP/1.1\r\nHost: gate\x00way\r\n" + mark
          + b"nul in host\r\nConnection: close\r\n\r\n", {400, 421})
    # tolerated by the parser, forwarded in canonical form
    accepted = [
        ("bare LF line endings", b"GET /api/tags HTTP/1.1\nHost: gateway\n" + mark + b"bare lf\n"
         b"Connection: close\n\n"),
        ("leading empty lines", b"\r\n\r\nGET /api/tags HTTP/1.1\r\nHost: gateway\r\n" + mark
         + b"leading crlf\r\nConnection: close\r\n\r\n"),
        ("obs-fold header", raw("obs fold", b"GET /api/tags HTTP/1.1", b"X-A: b\r\n c\r\n")),
        ("double spaces in the request line", raw("double space", b"GET  /api/tags  HTTP/1.1")),
        ("tabs in the request line", raw("tabs", b"GET\t/api/tags\tHTTP/1.1")),
        ("spaces around a header value", raw("spaces", b"GET /api/tags HTTP/1.1",
                                             b"X-A:      b     \r\n")),
        ("Upgrade h2c", raw("upgrade h2c", b"GET /api/tags HTTP/1.1",
                            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n")),
        ("Upgrade websocket", raw("upgrade ws", b"GET /api/tags HTTP/1.1",
                                  b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")),
    ]
    for name, data in accepted:
        b.add(f"ctl {name}", cat, data, {200}, forwarded_as=("GET", "/api/tags"))


def _garbage_and_pipelining(b: _Builder) -> None:
    cat = "garbage"
    for name, data in [
            ("tls client hello", bytes.fromhex("16030100a5010000a10303") + bytes(40)),
            ("binary noise", b"\xff\xfe\xfd\x00hello\r\n\r\n"),
            ("ssh banner", b"SSH-2.0-OpenSSH_9.6\r\n\r\n"),
            ("proxy protocol line", b"PROXY TCP4 10.0.0.1 127.0.0.1 1234 11434\r\n"
                                    b"POST /api/pull HTTP/1.1\r\nHost: gateway\r\n\r\n"),
            ("request line only, no version", b"DELETE /api/delete\r\n\r\n"),
            ("smtp", b"EHLO gateway\r\n\r\n"),
            ("json instead of http", b'{"model":"x"}\r\n\r\n'),
            ("h2 preface as HTTP/1.1", b"PRI * HTTP/1.1\r\nHost: gateway\r\n"
                                       b"Connection: close\r\n\r\n")]:
        b.add(f"garbage {name}", cat, data, {400})
    cat = "pipelined"
    keep = b"GET /api/tags HTTP/1.1\r\nHost: gateway\r\n" + f"{CASE_HEADER}: pipe\r\n\r\n".encode()
    for name, second, status in [
            ("then POST /api/pull", b"POST /api/pull HTTP/1.1\r\nHost: gateway\r\n"
                                    b"Content-Length: 2\r\nConnection: close\r\n\r\n{}", 403),
            ("then DELETE /api/delete", b"DELETE /api/delete HTTP/1.1\r\nHost: gateway\r\n"
                                        b"Connection: close\r\n\r\n", 403),
            ("then GET /api/%73tatus", b"GET /api/%73tatus HTTP/1.1\r\nHost: gateway\r\n"
                                       b"Connection: close\r\n\r\n", 403),
            ("then chunked POST /v1/messages", b"POST /v1/messages HTTP/1.1\r\nHost: gateway\r\n"
             b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n", 411),
            ("then garbage", b"GET /api/tags\x00 HTTP/1.1\r\nHost: gateway\r\n\r\n", 400)]:
        b.add(f"pipelined GET /api/tags {name}", cat, keep.replace(b"pipe", name.encode())
              + second, {200}, forwarded_as=("GET", "/api/tags"), then=(status,))


def _h2c(b: _Builder) -> None:
    """HTTP/2 with prior knowledge on the plain port: HAProxy speaks it, so it is attack surface.
    Malformed streams are reset (status 0): the h2 form of the parser's 400."""
    cat = "h2c"

    def req(name: str, method: bytes, path: bytes, extra: Sequence[tuple[bytes, bytes]] = (),
            body: bytes = b"") -> bytes:
        return h2_request([(b":method", method), (b":scheme", b"http"),
                           (b":authority", b"gateway"), (b":path", path),
                           (CASE_HEADER.lower().encode(), marker(name).encode()), *extra],
                          body)

    routed = [("GET", "/api/tags"), ("HEAD", "/api/version"), ("POST", "/api/pull"),
              ("DELETE", "/api/delete"), ("GET", "/api/status"), ("POST", "/api/%70ull"),
              ("GET", "//api/tags"), ("GET", "/x/../api/tags"), ("GET", "/api\\tags"),
              ("get", "/api/tags"), ("OPTIONS", "*"), ("POST", "/api/chat"),
              ("GET", "/api/tags/"), ("GET", "/v1/models/qwen3-coder:30b")]
    for method, path in routed:
        name = f"h2 {method} {path}"
        body = body_for(method, path)
        extra = [(b"content-length", str(len(body)).encode())] if body else []
        raw = req(name, method.encode(), path.encode(), extra, body)
        if b.allowed(method, path):
            b.add(name, cat, raw, {200}, forwarded_as=(method, path), h2=True)
        else:
            b.add(name, cat, raw, {403}, code=refusal_code(path), h2=True)
    for name, extra in [
            ("h2 override header on GET /api/tags", [(b"x-http-method-override", b"DELETE")]),
            ("h2 host header differs from :authority", [(b"host", b"evil.example")])]:
        b.add(name, cat, req(name, b"GET", b"/api/tags", extra), {200},
              forwarded_as=("GET", "/api/tags"), h2=True)
    b.add("h2 CONNECT", cat, h2_request([(b":method", b"CONNECT"),
                                         (b":authority", b"127.0.0.1:11434")]),
          {421}, code="misdirected_request", h2=True)
    # :authority is HTTP/2's Host: the same check applies
    for authority in (b"evil.example", b"evil.example:11434", b"127.0.0.1:11434", b"gateway.evil"):
        for method, path in (("GET", "/api/tags"), ("POST", "/v1/messages")):
            name = f"h2 :authority {authority.decode()} {method} {path}"
            body = body_for(method, path)
            extra = [(b"content-length", str(len(body)).encode())] if body else []
            b.add(name, cat, h2_request([(b":method", method.encode()), (b":scheme", b"http"),
                                         (b":authority", authority), (b":path", path.encode()),
                                         *extra], body), {421},
                  code="misdirected_request", h2=True)
    for name, extra in [("h2 origin", [(b"origin", b"https://evil.example")]),
                        ("h2 sec-fetch-mode", [(b"sec-fetch-mode", b"cors")])]:
        b.add(name, cat, req(name, b"GET", b"/api/tags", extra), {403}, code="browser_request",
              h2=True)
    name = "h2 :authority GATEWAY upper-case"
    b.add(name, cat, h2_request([(b":method", b"GET"), (b":scheme", b"http"),
                                 (b":authority", b"GATEWAY"), (b":path", b"/api/tags"),
                                 (CASE_HEADER.lower().encode(), marker(name).encode())]),
          {200}, forwarded_as=("GET", "/api/tags"), h2=True)
    chat = b"/v1/chat/completions"
    big = b"x" * 5000
    name = "h2 content-length over the limit"
    b.add(name, cat, req(name, b"POST", chat, [(b"content-length", str(len(big)).encode())], big),
          {413}, code="payload_too_large", h2=True)
    for name, bmethod, bpath, extra in [
            ("path without slash", b"GET", b"api/tags", []),
            ("absolute :path", b"GET", b"http://gateway/api/pull", []),
            ("space in :path", b"GET", b"/api/ta gs", []),
            ("fragment in :path", b"GET", b"/api/tags#x", []),
            ("two :path", b"GET", b"/api/tags", [(b":path", b"/api/pull")]),
            ("upper-case header name", b"GET", b"/api/tags", [(b"X-A", b"b")]),
            ("nul in a header value", b"GET", b"/api/tags", [(b"x-a", b"a\x00b")]),
            ("connection header", b"GET", b"/api/tags", [(b"connection", b"close")]),
            ("transfer-encoding", b"POST", chat, [(b"transfer-encoding", b"chunked")])]:
        body = b"{}" if bmethod == b"POST" else b""
        b.add(f"h2 {name}", cat, req(f"h2 {name}", bmethod, bpath, extra, body), {0}, h2=True)


def _h2_headers(name: str, method: bytes, path: bytes, authority: bytes = b"gateway",
                extra: Sequence[tuple[bytes, bytes]] = ()) -> list[tuple[bytes, bytes]]:
    return [(b":method", method), (b":scheme", b"http"), (b":authority", authority),
            (b":path", path), (CASE_HEADER.lower().encode(), marker(name).encode()), *extra]


def _bodies_on_get_and_head(b: _Builder) -> None:
    """A GET or HEAD never carries a body to Ollama: 400 on HTTP/1 and on HTTP/2, where DATA
    frames may come without content-length (HAProxy would forward them chunked)."""
    cat = "get_head_body"
    code = "body_not_allowed"
    for method, path in [("GET", "/api/tags"), ("HEAD", "/api/version"), ("GET", "/v1/models"),
                         ("GET", "/api/ps"), ("GET", "/")]:
        name = f"h1 {method} {path} with a body"
        b.add(name, cat, h1(name, method, path, body=b"hello"), {400}, code=code,
              head=method == "HEAD")
        name = f"h1 {method} {path} with a chunked body"
        b.add(name, cat, h1(name, method, path, headers=[("Transfer-Encoding", "chunked")])
              + b"5\r\nhello\r\n0\r\n\r\n", {400}, code=code, head=method == "HEAD")
        for size in (1, 20000):
            name = f"h2 {method} {path} with {size} DATA bytes, no content-length"
            b.add(name, cat, h2_request(_h2_headers(name, method.encode(), path.encode()),
                                        b"x" * size), {400}, code=code, h2=True,
                  head=method == "HEAD")
        name = f"h2 {method} {path} with DATA and content-length"
        b.add(name, cat, h2_request(_h2_headers(name, method.encode(), path.encode(), extra=[
            (b"content-length", b"5")]), b"hello"), {400}, code=code, h2=True,
              head=method == "HEAD")
    # an empty body is no body
    b.route("h1 GET /api/tags with Content-Length: 0", cat, "GET", "/api/tags",
            headers=[("Content-Length", "0")])


def _odd_authorities(b: _Builder) -> None:
    """Absolute-form targets whose authority is empty or carries user info: 400, never 500
    (2.6 answered 500 failing to rewrite Host; the JSON check is in test_gateway_bodies)."""
    cat = "odd_authority"
    for target in ("http://gateway@/api/tags", "http:///api/tags", "http://@/api/tags",
                   "http://gateway@/api/pull", "https:///v1/models", "http://a:b@/api/tags"):
        b.add(f"odd authority GET {target}", cat, h1(f"odd {target}", "GET", target), {400})
    for auth in (b"", b"@", b"user@"):  # 2.6 resets the stream for the last two (0)
        name = f"h2 :authority {auth!r}"
        b.add(name, cat, h2_request(_h2_headers(name, b"GET", b"/api/tags", auth)),
              {400} if not auth else {0, 400}, code="bad_target", h2=True)


def _trickling(b: _Builder, limit: int) -> None:
    """Bodies that never finish arriving: read under timeout http-request, never forwarded
    (the corpus gateway runs with a short http-request timeout; the slow-client proof with
    clients that keep trickling is in test_gateway_bodies)."""
    cat = "trickling"
    chat = "/v1/chat/completions"
    for sent, declared in [(0, 1000), (1, 1000), (500, 1000), (1, limit), (limit - 1, limit)]:
        name = f"trickle {sent} of {declared} body bytes"
        raw = h1(name, "POST", chat, headers=[("Content-Length", str(declared))],
                 body=b"{" * sent, content_length=False)
        b.add(name, cat, raw, {408}, code="request_timeout")
    # HTTP/1.0 over the limit: JSON 413 like every refusal
    for n in (limit + 1, 10 * limit):
        name = f"http/1.0 body of {n} bytes"
        b.add(name, cat, h1(name, "POST", chat, version="HTTP/1.0", body=b"x" * n), {413},
              code="payload_too_large")
