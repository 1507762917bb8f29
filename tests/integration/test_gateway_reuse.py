"""Upstream connection reuse (issue 12 §10): a new client connection's first request goes over
an idle connection to Ollama instead of opening one, and a dead idle connection is never
handed out: after Ollama restarts, a request gets an answer (served, or a JSON 502/503),
never a connection closed without a response. (Going away is test_gateway.py's
test_upstream_down_is_502_json_then_served_again_without_restart.)"""

from __future__ import annotations

import json
import os
import socket

from tests.integration.conftest import GatewayFactory
from tests.support.ollama_sim import OllamaSimulator


def fresh_request(host: str, port: int, path: str = "/api/tags") -> tuple[int, bytes]:
    """One request on a new connection, read to the end of the response, then closed at once.
    (0, b"") when the gateway closed the connection without answering."""
    with socket.create_connection((host, port), timeout=15) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                     "Connection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    if not data:
        return 0, b""
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def upstream_connections(sim: OllamaSimulator, path: str) -> set[tuple[str, int]]:
    """The distinct gateway-side sockets the client requests to `path` arrived on."""
    return {r.client for r in sim.forwarded() if r.path == path}


def test_fresh_client_connections_reuse_idle_upstream_connections(
        sim: OllamaSimulator, gateway_factory: GatewayFactory) -> None:
    """Each HAProxy thread keeps its own idle connections and new client connections go to
    the threads in turn, so a first batch leaves every thread one; a second batch of fresh
    client connections then opens none (HAProxy's default opens one per client connection)."""
    gw = gateway_factory(sim.port)
    batch = 2 * len(os.sched_getaffinity(0)) + 2  # HAProxy starts a thread per usable CPU
    for _ in range(batch):
        status, body = fresh_request(gw.host, gw.port)
        assert status == 200 and json.loads(body)["models"]
    warm = upstream_connections(sim, "/api/tags")
    for _ in range(batch):
        assert fresh_request(gw.host, gw.port)[0] == 200
    new = upstream_connections(sim, "/api/tags") - warm
    # (HAProxy closes half of the idle connections every 5 s: a few may be reopened)
    assert len(new) < batch // 2, f"{len(new)} of {batch} fresh connections opened their own"


def test_ollama_restart_never_hands_a_dead_idle_connection_to_a_request(
        gateway_factory: GatewayFactory) -> None:
    """Ollama restarting (brew services restart, an upgrade) closes every idle connection the
    gateway holds. The first requests after it must be served by the new Ollama or refused
    with JSON, never dropped: a fresh connection closed without a response is an error that
    no client retries safely."""
    first = OllamaSimulator()
    first.start()
    port = first.port
    gw = gateway_factory(port)
    for _ in range(6):  # several idle upstream connections, on every thread
        assert fresh_request(gw.host, gw.port)[0] == 200
    first.stop()
    again = OllamaSimulator(port=port)
    again.start()
    try:
        outcomes = [fresh_request(gw.host, gw.port) for _ in range(8)]
        for status, body in outcomes:
            assert status != 0, f"a request was dropped without an answer: {outcomes}"
            if status != 200:
                assert status in (502, 503), (status, body)
                assert json.loads(body)  # the gateway's JSON, not an empty or HTML page
        assert outcomes[-1][0] == 200, outcomes
    finally:
        again.stop()
