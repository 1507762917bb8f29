"""Bodies, slow clients and cheap routes at the real gateway (issue 12 §3, §4, §10).

Every test runs on Debian's HAProxy and on 3.4.0 (the `gateway_factory` fixture).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from typing import Any

import pytest

from aiserver.allowlist import probe_body
from aiserver.gateway.render import BUFFERED_BODY_BYTES, TUNE_BUFSIZE
from tests.integration.conftest import GatewayFactory
from tests.integration.test_gateway import call, forwarded
from tests.support.gatewayproc import GatewayProcess
from tests.support.hostile_corpus import Case, h2_request, send
from tests.support.ollama_sim import OllamaSimulator
from tests.support.rawhttp import error_code, exchange, parse_response, read_until, request_bytes

CHAT = "/v1/chat/completions"


def authority(gw: GatewayProcess) -> str:
    return f"{gw.host}:{gw.port}"


def h2(gw: GatewayProcess, method: str, path: str, body: bytes = b"",
       extra: list[tuple[bytes, bytes]] | None = None, auth: str | None = None
       ) -> tuple[int, bytes]:
    """One HTTP/2 (prior knowledge) request from raw frames: (status, body); 0 = reset."""
    headers = [(b":method", method.encode()), (b":scheme", b"http"),
               (b":authority", (authority(gw) if auth is None else auth).encode()),
               (b":path", path.encode()), *(extra or [])]
    out = send(gw.host, gw.port, Case("h2", "h2c", h2_request(headers, body), frozenset(),
                                      h2=True))
    return out.status, out.body


def chat_body(size: int) -> bytes:
    """A valid chat request of exactly `size` bytes."""
    body: dict[str, Any] = dict(probe_body(CHAT) or {})
    body["user"] = ""
    body["user"] = "u" * (size - len(json.dumps(body).encode()))
    data = json.dumps(body).encode()
    assert len(data) == size
    return data


# -- §3: every body obeys the body rules, on every method and protocol -------------------------

def test_get_and_head_bodies_are_refused_on_every_protocol(sim: OllamaSimulator,
                                                           gateway_factory: GatewayFactory
                                                           ) -> None:
    gw = gateway_factory(sim.port, limits={"max_body_bytes": 16384})
    sim.clear()
    host = authority(gw)
    h1_cases = {
        "GET with Content-Length": request_bytes("GET", "/api/tags", host=host, body=b"hello"),
        "HEAD with Content-Length": request_bytes("HEAD", "/api/version", host=host,
                                                  body=b"hello"),
        "GET chunked": request_bytes("GET", "/api/tags", host=host, headers=[
            ("Transfer-Encoding", "chunked")]) + b"5\r\nhello\r\n0\r\n\r\n",
    }
    for name, raw in h1_cases.items():
        resp = exchange(gw.host, gw.port, raw, head_only=name.startswith("HEAD"))
        assert resp.status == 400, (name, resp.raw[:200])
        assert resp.header("content-type") == "application/json", name
        if not name.startswith("HEAD"):
            assert error_code(resp.body) == "body_not_allowed", name
    # HTTP/2 DATA frames on a GET/HEAD without content-length (the review's 20,000 bytes
    # reached the upstream as a chunked body under max_body_bytes = 16384), and with it
    for method, path, body, extra in [
            ("GET", "/api/tags", b"x" * 20000, []),
            ("GET", "/api/tags", b"x", []),
            ("HEAD", "/api/version", b"x" * 100, []),
            ("GET", "/v1/models", b"x" * 10, [(b"content-length", b"10")])]:
        status, resp_body = h2(gw, method, path, body, extra)
        assert status == 400, (method, path, len(body))
        if method == "GET":
            assert error_code(resp_body) == "body_not_allowed"
    time.sleep(0.2)
    assert forwarded(sim) == [], [(r.method, r.target, r.body_size) for r in forwarded(sim)]
    # no body, or an empty one, still passes
    assert exchange(gw.host, gw.port, request_bytes("GET", "/api/tags", host=host, headers=[
        ("Content-Length", "0")])).status == 200
    assert h2(gw, "GET", "/api/tags")[0] == 200


def test_bodies_without_content_length_are_411_on_http2(sim: OllamaSimulator,
                                                        gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(sim.port, limits={"max_body_bytes": 16384})
    sim.clear()
    for size in (2, 20000):
        status, body = h2(gw, "POST", CHAT, chat_body(max(size, 200)))
        assert (status, error_code(body)) == (411, "length_required")
    assert forwarded(sim) == []


@pytest.mark.parametrize("target", ["http://gateway@/api/tags", "http:///api/tags",
                                    "http://@/api/tags", "http://gateway@/v1/models"])
def test_odd_absolute_form_targets_are_400_json(sim: OllamaSimulator,
                                                gateway_factory: GatewayFactory,
                                                target: str) -> None:
    """Not 500: 2.6 failed rewriting Host on these (3.4's parser refuses them itself)."""
    gw = gateway_factory(sim.port)
    sim.clear()
    resp = exchange(gw.host, gw.port, request_bytes("GET", target, host=authority(gw)))
    assert resp.status == 400, resp.raw[:300]
    assert resp.header("content-type") == "application/json"
    assert error_code(resp.body) in ("bad_target", "bad_request")
    assert forwarded(sim) == []


def test_http2_empty_authority_is_400_json(sim: OllamaSimulator,
                                           gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(sim.port)
    sim.clear()
    status, body = h2(gw, "GET", "/api/tags", auth="")
    assert (status, error_code(body)) == (400, "bad_target")
    assert forwarded(sim) == []


@pytest.mark.parametrize("content_length", ["4097", "100000", "1000000000000"])
def test_http10_body_over_the_limit_is_json_413(sim: OllamaSimulator,
                                                gateway_factory: GatewayFactory,
                                                content_length: str) -> None:
    gw = gateway_factory(sim.port, limits={"max_body_bytes": 4096})
    raw = (f"POST {CHAT} HTTP/1.0\r\nHost: {authority(gw)}\r\n"
           f"Content-Length: {content_length}\r\n\r\n").encode()
    raw += b"x" * min(int(content_length), 100000)
    resp = exchange(gw.host, gw.port, raw)
    assert resp.status == 413, resp.raw[:300]
    assert resp.header("content-type") == "application/json"
    assert error_code(resp.body) == "payload_too_large"


def test_request_head_keeps_its_limit_with_the_larger_buffer(sim: OllamaSimulator,
                                                             gateway_factory: GatewayFactory
                                                             ) -> None:
    gw = gateway_factory(sim.port)
    host = authority(gw)
    big_header = exchange(gw.host, gw.port, request_bytes(
        "GET", "/api/tags", host=host, headers=[("X-Big", "a" * 16000)]))
    long_target = exchange(gw.host, gw.port, request_bytes(
        "GET", "/v1/models/" + "m" * 16000, host=host))
    assert (big_header.status, error_code(big_header.body)) == (431, "headers_too_large")
    assert (long_target.status, error_code(long_target.body)) == (414, "uri_too_long")
    assert exchange(gw.host, gw.port, request_bytes(
        "GET", "/api/tags", host=host, headers=[("X-Big", "a" * 14000)])).status == 200


# -- §4: a slow client cannot hold Ollama's slots ------------------------------------------------

class Trickler:
    """Sends a POST's headers and `first` body bytes at once, then one byte every 0.5 s."""

    def __init__(self, gw: GatewayProcess, size: int, first: int) -> None:
        self.sock = socket.create_connection((gw.host, gw.port))
        self.sock.settimeout(60)
        body = chat_body(size)
        head = request_bytes("POST", CHAT, host=authority(gw), body=body)[:-len(body)]
        self.rest = body[first:-1]  # never the last byte
        self.sock.sendall(head + body[:first])
        self.response = b""
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        pos = 0
        while not self.stop.wait(0.5) and pos < len(self.rest):
            try:
                self.sock.sendall(self.rest[pos:pos + 1])
            except OSError:
                break
            pos += 1
        # closed by close() while a queued trickler's send still blocked: no response
        with contextlib.suppress(OSError):
            self.response = read_until(self.sock, 5, lambda d: all(parse_response(d)))

    def close(self) -> int:
        self.stop.set()
        self.thread.join(15)
        self.sock.close()
        resp, _ = parse_response(self.response)
        return resp.status if resp is not None else 0


SLOW = {"http_request": "2s", "client": "30s", "queue": "30s"}
HTTP_REQUEST_S = 2.0


@pytest.mark.parametrize("size", [1024, 200 * 1024, 2 * 1024 * 1024],
                         ids=["1KB", "200KB", "2MB-beyond-the-buffer"])
def test_trickling_clients_never_delay_a_well_behaved_one(sim: OllamaSimulator,
                                                         gateway_factory: GatewayFactory,
                                                         size: int) -> None:
    """N = upstream_concurrency clients trickle their bodies; another client's request is
    answered within timeouts.http_request + 1 s (before: only after `timeout client`)."""
    n = 2
    gw = gateway_factory(sim.port, limits={"upstream_concurrency": n}, timeouts=SLOW)
    # bodies beyond the buffer: more than it holds at once (HAProxy then connects to the bulk
    # backend and relays the rest as it trickles in)
    first = TUNE_BUFSIZE + 65536 if size > BUFFERED_BODY_BYTES else 1
    sim.clear()
    tricklers = [Trickler(gw, size, first) for _ in range(n)]
    try:
        time.sleep(0.5)  # let HAProxy take them in (it reads the headers at once)
        start = time.monotonic()
        status, _, body = call(gw.host, gw.port, "POST", CHAT, probe_body(CHAT),
                               headers={"Host": authority(gw)}, timeout=30)
        elapsed = time.monotonic() - start
        assert status == 200, body[:200]
        assert elapsed < HTTP_REQUEST_S + 1.0, f"well-behaved client waited {elapsed:.1f} s"
    finally:
        statuses = [t.close() for t in tricklers]
    if size <= BUFFERED_BODY_BYTES:
        # read under timeout http-request, never connected: 408, nothing reached Ollama
        assert statuses == [408] * n
        posts = [(r.body_size, r.error) for r in forwarded(sim) if r.method == "POST"]
        assert len(posts) == 1 and posts[0][1] is None, posts  # the well-behaved one


# -- §10: cheap requests never wait behind inference ---------------------------------------------

def test_model_list_answers_while_every_inference_slot_is_busy(sim: OllamaSimulator,
                                                               gateway_factory: GatewayFactory
                                                               ) -> None:
    """With upstream_concurrency streams held open at Ollama, the cheap read-only routes are
    answered before any of those streams has sent a byte (ordering, not a stopwatch)."""
    n = 2
    gw = gateway_factory(sim.port, limits={"upstream_concurrency": n})
    sim.clear()
    held: list[socket.socket] = []
    body = json.dumps(probe_body(CHAT, stream=True)).encode()
    for _ in range(n):
        sock = socket.create_connection((gw.host, gw.port))
        sock.sendall(request_bytes("POST", CHAT, host=authority(gw), body=body,
                                   headers=[("x-sim-first-byte-delay", "20")]))
        held.append(sock)
    try:
        assert sim.wait_for_requests(n, timeout=10)  # every inference slot is taken
        # a further inference request queues in HAProxy ...
        queued = socket.create_connection((gw.host, gw.port))
        queued.sendall(request_bytes("POST", CHAT, host=authority(gw), body=body))
        held.append(queued)
        # ... while the cheap routes are answered at once
        for method, path, payload in [("GET", "/v1/models", None), ("GET", "/api/tags", None),
                                      ("GET", "/api/version", None), ("GET", "/api/ps", None),
                                      ("GET", "/v1/models/qwen3-coder:30b", None),
                                      ("POST", "/api/show", {"model": "qwen3-coder:30b"})]:
            status, _, _ = call(gw.host, gw.port, method, path, payload,
                                headers={"Host": authority(gw)}, timeout=15)
            assert status == 200, (method, path)
        for sock in held:  # no held stream has answered yet, the queued one never started
            sock.setblocking(False)
            with pytest.raises(BlockingIOError):
                sock.recv(1)
        inference = [r for r in forwarded(sim) if r.path == CHAT]
        assert len(inference) == n
    finally:
        for sock in held:
            sock.close()
