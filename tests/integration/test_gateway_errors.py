"""Errors HAProxy answers itself while a request is under way (Ollama's answer is garbage, it
is too slow, the queue wait ran out) come in the caller's dialect, like the gateway's own
refusals: Ollama's native {"error": "<message>"} on /api/*, the Anthropic/OpenAI shape
elsewhere. Before, every such page had the Anthropic shape, so a native client read a dict
where it expects a message."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.conftest import GatewayFactory
from tests.integration.test_gateway import call
from tests.support.ollama_sim import OllamaSimulator

NATIVE = {"profiles": ["default", "native"]}
CHAT = {"model": "qwen3-coder:30b", "messages": [{"role": "user", "content": "hi"}],
        "stream": False}


def assert_native(data: bytes, code: str) -> dict[str, Any]:
    body = json.loads(data)
    assert isinstance(body["error"], str) and body["code"] == code, body
    return body


def assert_other(data: bytes, code: str) -> dict[str, Any]:
    body = json.loads(data)
    assert body["type"] == "error" and body["error"]["code"] == code, body
    return body


def test_upstream_timeout_is_504_in_each_dialect(sim: OllamaSimulator,
                                                 gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(sim.port, gateway=NATIVE, timeouts={"server": "1s"})
    slow = {"x-sim-first-byte-delay": "4"}
    status, headers, data = call(gw.host, gw.port, "POST", "/api/chat", CHAT, slow)
    assert status == 504 and headers["content-type"] == "application/json"
    native = assert_native(data, "upstream_timeout")
    assert "server timeout" in native["error"]
    status, _, data = call(gw.host, gw.port, "POST", "/v1/chat/completions", CHAT, slow)
    assert status == 504
    assert_other(data, "upstream_timeout")


def test_queue_wait_timeout_is_503_in_each_dialect(sim: OllamaSimulator,
                                                   gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(sim.port, gateway=NATIVE, limits={"upstream_concurrency": 1},
                         timeouts={"queue": "1s"})
    holder = threading.Thread(target=call, args=(
        gw.host, gw.port, "POST", "/v1/chat/completions", CHAT,
        {"x-sim-first-byte-delay": "5"}))
    holder.start()
    try:
        time.sleep(0.5)  # the one slot is taken
        status, headers, data = call(gw.host, gw.port, "POST", "/api/chat", CHAT)
        assert status == 503 and headers["retry-after"] == "10"
        assert_native(data, "queue_full")
        status, headers, data = call(gw.host, gw.port, "POST", "/v1/messages", {
            "model": "qwen3-coder:30b", "max_tokens": 8,
            "messages": [{"role": "user", "content": "hi"}]})
        assert status == 503 and headers["retry-after"] == "10"
        assert_other(data, "queue_full")
    finally:
        holder.join(15)


@pytest.fixture()
def garbage_upstream() -> Iterator[int]:
    """An upstream that passes HAProxy's health check and answers everything else with bytes
    that are not HTTP."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            head = conn.recv(65536)
            if head.startswith(b"GET /api/version ") and b"\nhost:" not in head.lower():
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                             b"Connection: close\r\n\r\n{}")
            else:
                conn.sendall(b"\x00\x01 not http at all\r\n\r\n")

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        listener.close()


def test_invalid_upstream_answer_is_502_in_each_dialect(garbage_upstream: int,
                                                        gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(garbage_upstream)
    status, headers, data = call(gw.host, gw.port, "GET", "/api/tags")
    assert status == 502 and headers["content-type"] == "application/json"
    native = assert_native(data, "bad_gateway")
    assert native["source"] == "ai-server gateway"
    status, _, data = call(gw.host, gw.port, "GET", "/v1/models")
    assert status == 502
    assert_other(data, "bad_gateway")
