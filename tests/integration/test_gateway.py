"""The gateway as users get it: `ai-server run` → real HAProxy → the Ollama simulator."""

from __future__ import annotations

import http.client
import json
import os
import socket
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from aiserver.allowlist import ENTRIES, STREAMING_PATHS, probe_body
from tests.integration.conftest import GatewayFactory
from tests.support.gatewayproc import GatewayProcess, wait_port
from tests.support.ollama_sim import OllamaSimulator
from tests.support.rawhttp import error_code, error_message, exchange, request_bytes


def call(host: str, port: int, method: str, path: str, body: Any = None,
         headers: dict[str, str] | None = None, timeout: float = 30
         ) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json"} if payload is not None else {}
        hdrs.update(headers or {})
        conn.request(method, path, body=payload, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def forwarded(sim: OllamaSimulator) -> list[Any]:
    """What reached the simulator, minus HAProxy's own health checks (no Host header)."""
    return sim.forwarded()


def shape(value: Any) -> Any:
    """The structure of a JSON value (keys and types), for comparisons that ignore ids."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value[:3]]
    return type(value).__name__


def test_every_allowlisted_route_is_forwarded(sim: OllamaSimulator,
                                              gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(sim.port, gateway={"profiles": ["default", "native"]})
    for e in ENTRIES:
        path = e.example_path
        body = probe_body(path)
        sim.clear()
        status, headers, data = call(gw.host, gw.port, e.method, path, body)
        assert [(r.method, r.path) for r in forwarded(sim)] == [(e.method, path)]
        d_status, d_headers, d_data = call("127.0.0.1", sim.port, e.method, path, body)
        assert status == d_status == 200, (e, data[:300])
        assert headers.get("content-type") == d_headers.get("content-type")
        if e.method == "HEAD":
            assert data == b""
        elif path == "/":
            assert data == d_data == b"Ollama is running"
        else:
            assert shape(json.loads(data)) == shape(json.loads(d_data)), path


def test_default_profile_refuses_native_inference(gateway: GatewayProcess,
                                                  sim: OllamaSimulator) -> None:
    for path in ("/api/chat", "/api/generate", "/api/embed", "/api/embeddings"):
        status, headers, data = call(gateway.host, gateway.port, "POST", path, probe_body(path))
        assert status == 403 and headers["content-type"] == "application/json"
        err = json.loads(data)  # Ollama's native shape on /api/*: {"error": "<message>", …}
        assert err["code"] == "not_exposed" and err["path"] == path and err["method"] == "POST"
        assert "not exposed by the ai-server gateway" in err["error"]
    assert forwarded(sim) == []


def stream_via(host: str, port: int, path: str, extra: dict[str, str] | None = None
               ) -> tuple[int, str, bytes]:
    status, headers, data = call(host, port, "POST", path, probe_body(path, stream=True),
                                 headers=extra)
    return status, headers.get("content-type", ""), data


@pytest.mark.parametrize("path", STREAMING_PATHS)
def test_streams_arrive_byte_identical_to_direct(sim: OllamaSimulator,
                                                 gateway_factory: GatewayFactory,
                                                 path: str) -> None:
    gw = gateway_factory(sim.port, gateway={"profiles": ["native"]})
    sim.fixed_ids = True  # ids and timestamps repeat, so two answers can be compared as bytes
    via = stream_via(gw.host, gw.port, path)
    direct = stream_via("127.0.0.1", sim.port, path)
    assert via[0] == direct[0] == 200
    assert via[1] == direct[1]
    assert via[1].startswith("text/event-stream" if path.startswith("/v1/")
                             else "application/x-ndjson")
    assert via[2] == direct[2]
    assert len(via[2]) > 200


def test_query_string_is_allowed_and_forwarded_verbatim(gateway: GatewayProcess,
                                                        sim: OllamaSimulator) -> None:
    status, _, _ = call(gateway.host, gateway.port, "POST", "/v1/messages?beta=true",
                        probe_body("/v1/messages"))
    assert status == 200
    assert [r.target for r in forwarded(sim)] == ["/v1/messages?beta=true"]


def test_host_rewritten_and_credentials_and_origin_removed(
    sim: OllamaSimulator, gateway_factory: GatewayFactory
) -> None:
    gateway = gateway_factory(sim.port, gateway={
        "hosts": ["studio.tail1234.ts.net"], "allow_origins": ["https://evil.example"]})
    sim.clear()
    status, _, _ = call(gateway.host, gateway.port, "POST", "/v1/messages?beta=true",
                        probe_body("/v1/messages"), headers={
                            "Host": f"studio.tail1234.ts.net:{gateway.port}",
                            "Authorization": "Bearer sk-secret",
                            "x-api-key": "sk-ant-secret",
                            "Proxy-Authorization": "Basic Zm9vOmJhcg==",
                            "Origin": "https://evil.example",
                            "anthropic-version": "2023-06-01",
                            "x-claude-code-session-id": "sess-123",
                        })
    assert status == 200  # the simulator's Host check would answer 403 to the MagicDNS name
    rec = next(r for r in sim.requests if r.path == "/v1/messages")
    assert rec.header("host") == f"127.0.0.1:{sim.port}"
    for gone in ("authorization", "x-api-key", "proxy-authorization", "origin"):
        assert rec.header(gone) is None, gone
    assert rec.header("anthropic-version") == "2023-06-01"
    assert rec.header("x-claude-code-session-id") == "sess-123"


def test_refusals_are_json_and_never_reach_ollama(gateway: GatewayProcess,
                                                  sim: OllamaSimulator) -> None:
    sim.clear()
    cases = [("POST", "/api/pull"), ("DELETE", "/api/delete"), ("GET", "/api/status"),
             ("POST", "/v1/messages/count_tokens"), ("HEAD", "/api/hello"),
             ("GET", "/v1/messages"), ("POST", "/api/%70ull"), ("GET", "//api/tags"),
             ("GET", "/api/../api/tags"), ("GET", "/v1/models/a/b")]
    for method, path in cases:
        status, headers, data = call(gateway.host, gateway.port, method, path)
        assert status == 403, (method, path)
        assert headers["content-type"] == "application/json"
        if method != "HEAD":
            doc = json.loads(data)  # native shape on /api/*, error object elsewhere
            err = doc if path.startswith("/api/") else doc["error"]
            assert isinstance(doc["error"], str) == path.startswith("/api/")
            assert err["method"] == method and err["path"] == path
            assert err["code"] in ("not_exposed", "suspicious_path")
    time.sleep(0.2)
    assert forwarded(sim) == []


TOKENS = {"laptop-token-0123456789": "alice-laptop", "phone-token-abcdefghij": "alice-phone"}


@pytest.fixture()
def token_gateway(sim: OllamaSimulator, gateway_factory: GatewayFactory,
                  tmp_path: Path) -> GatewayProcess:
    tokens = tmp_path / "tokens.map"
    tokens.write_text("# token device\n" + "".join(f"{t} {d}\n" for t, d in TOKENS.items()))
    tokens.chmod(0o600)
    return gateway_factory(sim.port, gateway={"tokens": True, "tokens_file": str(tokens)})


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer wrong-token-000000000"}, {"x-api-key": "nope"},
    {"Authorization": "Basic bGFwdG9wLXRva2VuLTAxMjM0NTY3ODk="},
    {"Authorization": "Bearer "}, {"Authorization": "laptop-token-0123456789"},
])
def test_tokens_missing_or_wrong_get_401(token_gateway: GatewayProcess, sim: OllamaSimulator,
                                         headers: dict[str, str]) -> None:
    sim.clear()
    status, h, data = call(token_gateway.host, token_gateway.port, "GET", "/api/tags",
                           headers=headers)
    assert status == 401
    assert h["www-authenticate"] == "Bearer"
    doc = json.loads(data)  # /api/tags: Ollama's native shape
    assert doc["code"] == ("token_required" if not headers else "token_rejected")
    status, h, data = call(token_gateway.host, token_gateway.port, "GET", "/v1/models",
                           headers=headers)
    assert status == 401
    assert json.loads(data)["error"]["type"] == "authentication_error"
    assert not [r for r in sim.requests if r.path == "/api/tags"]


def test_two_authorization_headers_are_refused(token_gateway: GatewayProcess) -> None:
    raw = request_bytes("GET", "/api/tags", headers=[
        ("Authorization", "Bearer laptop-token-0123456789"), ("Authorization", "Bearer x")])
    assert exchange(token_gateway.host, token_gateway.port, raw).status == 401


@pytest.mark.parametrize("header", ["bearer", "x-api-key"])
def test_right_token_is_forwarded_without_it_and_logged(token_gateway: GatewayProcess,
                                                         sim: OllamaSimulator,
                                                         header: str) -> None:
    sim.clear()
    token = "phone-token-abcdefghij"
    headers = ({"Authorization": f"Bearer {token}"} if header == "bearer"
               else {"x-api-key": token})
    status, _, _ = call(token_gateway.host, token_gateway.port, "POST", "/v1/messages",
                        probe_body("/v1/messages"), headers=headers)
    assert status == 200
    rec = next(r for r in sim.requests if r.path == "/v1/messages")
    assert rec.header("authorization") is None and rec.header("x-api-key") is None
    assert token.encode() not in rec.body
    line = wait_log(token_gateway, lambda e: e["path"] == "/v1/messages")
    assert line["device"] == "alice-phone"


def test_token_map_file_is_private(token_gateway: GatewayProcess) -> None:
    home = Path(token_gateway.env["AI_SERVER_HOME"])
    maps = list((home / "state" / "gateway").glob("gen-*/tokens.map"))
    assert maps and all(stat.S_IMODE(m.stat().st_mode) == 0o600 for m in maps)


def wait_log(gw: GatewayProcess, pred: Any, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in gw.log_lines():
            entry = json.loads(line)
            if pred(entry):
                return dict(entry)
        time.sleep(0.05)
    raise AssertionError(f"no matching access-log line in {gw.log_lines()[-5:]}")


def test_access_log_lines_are_json_with_every_field(gateway: GatewayProcess) -> None:
    call(gateway.host, gateway.port, "POST", "/v1/messages?beta=true",
         probe_body("/v1/messages"), headers={"x-claude-code-session-id": 'sess "quoted" \\'})
    call(gateway.host, gateway.port, "GET", '/api/"weird\\path')
    ok = wait_log(gateway, lambda e: e["path"] == "/v1/messages")
    assert set(ok) == {"time", "client", "device", "method", "path", "status", "bytes_in",
                       "bytes_out", "queue_ms", "ttfb_ms", "total_ms", "termination",
                       "session", "agent", "node", "auth"}
    assert ok["client"] == "127.0.0.1" and ok["method"] == "POST" and ok["status"] == 200
    assert ok["session"] == 'sess "quoted" \\'
    assert ok["device"] == "-" and ok["node"] == "ollama"
    assert ok["bytes_in"] > 100 and ok["bytes_out"] > 100
    assert ok["ttfb_ms"] >= 0 and ok["total_ms"] >= ok["ttfb_ms"]
    assert len(ok["termination"]) == 4
    assert time.strptime(ok["time"], "%Y-%m-%dT%H:%M:%SZ")
    weird = wait_log(gateway, lambda e: e["status"] == 403)
    assert weird["path"] == '/api/"weird\\path'
    for line in gateway.log_lines():  # every line on stdout is one JSON object
        assert isinstance(json.loads(line), dict)


def test_body_limits(sim: OllamaSimulator, gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(sim.port, limits={"max_body_bytes": 1000})
    sim.clear()
    big = request_bytes("POST", "/v1/chat/completions", body=b"x" * 1001)
    r = exchange(gw.host, gw.port, big)
    assert r.status == 413 and error_code(r.body) == "payload_too_large"
    chunked = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\n"
               b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    r = exchange(gw.host, gw.port, chunked)
    assert r.status == 411 and error_code(r.body) == "length_required"
    ok = request_bytes("POST", "/v1/chat/completions",
                       body=json.dumps(probe_body("/v1/chat/completions")).encode())
    assert exchange(gw.host, gw.port, ok).status == 200
    assert [r.path for r in forwarded(sim)] == ["/v1/chat/completions"]


def test_request_rate_limit_answers_429_with_retry_after(sim: OllamaSimulator,
                                                         gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(sim.port, limits={"per_source_requests_per_10s": 5})
    statuses = []
    for _ in range(8):
        status, headers, data = call(gw.host, gw.port, "GET", "/api/version")
        statuses.append(status)
        if status == 429:
            assert headers["retry-after"] == "10"
            doc = json.loads(data)  # Ollama's native shape on /api/*
            assert doc["code"] == "too_many_requests" and "too many requests" in doc["error"]
    assert statuses[:5] == [200] * 5 and statuses[5:] == [429] * 3


def test_per_source_connection_cap(sim: OllamaSimulator, gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(sim.port, limits={"per_source_connections": 3})
    held = [socket.create_connection((gw.host, gw.port)) for _ in range(3)]
    try:
        time.sleep(0.2)
        r = exchange(gw.host, gw.port, request_bytes("GET", "/api/version"))
        assert r.status == 429 and r.header("Retry-After") == "10"
        assert "open connections" in error_message(r.body)
        # far above the cap, new connections are refused outright
        more = [socket.create_connection((gw.host, gw.port)) for _ in range(4)]
        time.sleep(0.2)
        r = exchange(gw.host, gw.port, request_bytes("GET", "/api/version"), timeout=3)
        assert r.status == 0
        for s in more:
            s.close()
    finally:
        for s in held:
            s.close()
    time.sleep(0.3)
    assert exchange(gw.host, gw.port, request_bytes("GET", "/api/version")).status == 200


def timed_stream(gw: GatewayProcess, path: str, headers: dict[str, str]
                 ) -> dict[str, Any]:
    """Stream one answer; note when the first byte and each chunk arrived, and how it ended."""
    sock = socket.create_connection((gw.host, gw.port))
    body = json.dumps(probe_body(path, stream=True)).encode()
    extra = [(k, v) for k, v in headers.items()]
    t0 = time.monotonic()
    sock.sendall(request_bytes("POST", path, body=body, headers=extra))
    arrivals, data = [], b""
    sock.settimeout(60)
    while True:
        try:
            chunk = sock.recv(65536)
        except OSError:
            break
        if not chunk:
            break
        arrivals.append(time.monotonic() - t0)
        data += chunk
    sock.close()
    return {"arrivals": arrivals, "data": data, "ended": time.monotonic() - t0}


def test_slow_model_passes_and_a_stalled_stream_is_cut(sim: OllamaSimulator,
                                                       gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(sim.port, timeouts={"server": "10s"})
    results: dict[str, dict[str, Any]] = {}

    def run(name: str, headers: dict[str, str]) -> None:
        results[name] = timed_stream(gw, "/v1/messages", headers)

    slow = threading.Thread(target=run, args=("slow", {
        "x-sim-first-byte-delay": "3", "x-sim-chunk-gap": "3", "x-sim-chunks": "3"}))
    stalled = threading.Thread(target=run, args=("stalled", {
        "x-sim-chunk-gap": "12", "x-sim-chunks": "3"}))
    slow.start()
    stalled.start()
    time.sleep(1)
    # meanwhile the gateway serves others
    assert call(gw.host, gw.port, "GET", "/api/tags")[0] == 200
    slow.join(40)
    stalled.join(40)
    s = results["slow"]
    assert s["arrivals"][0] >= 2.9  # nothing before the first token
    assert b"event: message_stop" in s["data"] and s["data"].endswith(b"0\r\n\r\n")
    st = results["stalled"]
    assert b"HTTP/1.1 200" in st["data"] and b"event: message_stop" not in st["data"]
    assert 9 <= st["ended"] <= 13  # cut by the 10 s server timeout, not by the sim
    entry = wait_log(gw, lambda e: e["status"] == 200 and e["termination"].startswith("sD"))
    assert entry["path"] == "/v1/messages"
    assert call(gw.host, gw.port, "GET", "/api/version")[0] == 200


def test_client_hanging_up_mid_stream_closes_the_upstream(gateway: GatewayProcess,
                                                          sim: OllamaSimulator) -> None:
    sock = socket.create_connection((gateway.host, gateway.port))
    body = json.dumps(probe_body("/v1/chat/completions", stream=True)).encode()
    sock.sendall(request_bytes("POST", "/v1/chat/completions", body=body,
                               headers=[("x-sim-chunk-gap", "0.5"), ("x-sim-chunks", "40")]))
    assert b"data: " in sock.recv(65536)
    sock.close()
    assert sim.wait_for_disconnect(timeout=5)


def test_upstream_down_is_502_json_then_served_again_without_restart(
    gateway_factory: GatewayFactory,
) -> None:
    """Ollama down on the server is a 502 that says so (clients retry 503s for minutes); it
    is told apart from a full queue (503 + Retry-After) once the health check has seen it."""
    first = OllamaSimulator()
    first.start()
    port = first.port
    gw = gateway_factory(port)
    assert call(gw.host, gw.port, "GET", "/api/tags")[0] == 200
    first.stop()
    deadline = time.monotonic() + 10
    while True:
        status, headers, data = call(gw.host, gw.port, "GET", "/api/tags")
        # Until the health check marks Ollama down (≤ 2.5 s) a refused connect is a 503, and a
        # connection the exiting Ollama had accepted a 502 from HAProxy itself: JSON all.
        assert status in (502, 503), status
        assert headers["content-type"] == "application/json"
        native = json.loads(data)
        if status == 502 and native.get("code") == "upstream_down":
            break
        assert time.monotonic() < deadline, "Ollama never reported down"
        time.sleep(0.2)
    assert "Ollama is down on the server" in native["error"]
    assert "ai-server status" in native["hint"]
    status, _, data = call(gw.host, gw.port, "GET", "/v1/models")
    assert status == 502 and json.loads(data)["error"]["code"] == "upstream_down"
    again = OllamaSimulator(port=port)
    again.start()
    try:
        deadline = time.monotonic() + 10
        while call(gw.host, gw.port, "GET", "/api/tags")[0] != 200:
            assert time.monotonic() < deadline, "gateway never recovered"
            time.sleep(0.25)
        assert gw.proc.poll() is None
    finally:
        again.stop()


def test_reload_keeps_live_streams_and_applies_new_config(sim: OllamaSimulator,
                                                          gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(sim.port)
    assert call(gw.host, gw.port, "POST", "/api/chat", probe_body("/api/chat"))[0] == 403
    result: dict[str, Any] = {}
    t = threading.Thread(target=lambda: result.update(timed_stream(
        gw, "/v1/messages", {"x-sim-chunk-gap": "0.4", "x-sim-chunks": "10"})))
    t.start()
    time.sleep(0.8)  # the stream is flowing
    text = gw.config.read_text().replace('profiles = ["default"]', "")
    gw.config.write_text(text.replace("[gateway]\n", '[gateway]\nprofiles = ["native"]\n'))
    res = gw.cli("reload", "--json")
    assert res.returncode == 0, res.stderr
    env = json.loads(res.stdout)
    assert env["ok"] and env["data"]["changed"] is True
    t.join(20)
    assert b"event: message_stop" in result["data"] and result["data"].endswith(b"0\r\n\r\n")
    deadline = time.monotonic() + 5
    while call(gw.host, gw.port, "POST", "/api/chat", probe_body("/api/chat"))[0] != 200:
        assert time.monotonic() < deadline, "new config never took effect"
        time.sleep(0.1)
    assert gw.proc.poll() is None


def test_reload_with_a_config_haproxy_rejects_changes_nothing(
    sim: OllamaSimulator, gateway_factory: GatewayFactory
) -> None:
    gw = gateway_factory(sim.port)
    home = Path(gw.env["AI_SERVER_HOME"])
    current = home / "state" / "gateway" / "current"
    before = os.readlink(current)
    gw.config.write_text(gw.config.read_text().replace("[timeouts]\n",
                                                       '[timeouts]\nserver = "99999h"\n'))
    res = gw.cli("reload")
    assert res.returncode == 4
    assert "timer overflow" in res.stderr and res.stderr.count("\n") == 1
    assert os.readlink(current) == before
    assert len(list(current.parent.glob("gen-*"))) == 1
    assert call(gw.host, gw.port, "GET", "/api/tags")[0] == 200


def test_reload_without_a_running_gateway_fails_cleanly(sim: OllamaSimulator,
                                                        gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(sim.port)
    gw.stop()
    res = gw.cli("reload")
    assert res.returncode == 5 and "not running" in res.stderr


def test_metrics_and_stats_socket_are_local_only(gateway: GatewayProcess) -> None:
    status, _, data = call("127.0.0.1", gateway.metrics_port, "GET", "/metrics")
    assert status == 200 and b"haproxy_frontend_http_requests_total" in data
    cfg = gateway.config.read_text()
    sock_path = next(line.split('"')[1] for line in cfg.splitlines()
                     if line.startswith("stats_socket"))
    assert stat.S_IMODE(os.stat(sock_path).st_mode) == 0o600
    rendered = (Path(gateway.env["AI_SERVER_HOME"]) / "state/gateway/current/haproxy.cfg"
                ).read_text()
    assert f"bind 127.0.0.1:{gateway.metrics_port}\n" in rendered
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(sock_path)
        s.sendall(b"show info\n")
        assert b"Name: HAProxy" in s.recv(65536)


def test_gateway_listens_on_v4_and_v6_loopback(sim: OllamaSimulator,
                                               gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(sim.port, listen=["127.0.0.1", "::1"])
    assert wait_port("::1", gw.port)
    assert call("::1", gw.port, "GET", "/api/version")[0] == 200
    assert call("127.0.0.1", gw.port, "GET", "/api/version")[0] == 200


def test_post_without_content_length_is_411_even_over_http2(
    sim: OllamaSimulator, gateway_factory: GatewayFactory
) -> None:
    """HTTP/2 needs no Content-Length: such a body's size is unknown up front, so it is refused
    like a chunked upload (found by review: it bypassed max_body_bytes)."""
    from tests.support.hostile_corpus import Case, h2_request, send

    gw = gateway_factory(sim.port, limits={"max_body_bytes": 1000})
    sim.clear()
    body = b'{"model":"qwen3-coder:30b","messages":[{"role":"user","content":"' + \
        b"x" * 5000 + b'"}]}'
    raw = h2_request([(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"gateway"),
                      (b":path", b"/v1/chat/completions"),
                      (b"content-type", b"application/json")], body)
    out = send(gw.host, gw.port, Case("h2 no length", "h2", raw, frozenset({411}), h2=True))
    assert out.status == 411
    r = exchange(gw.host, gw.port, b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\n"
                 b"Connection: close\r\n\r\n")
    assert r.status == 411 and error_code(r.body) == "length_required"
    assert forwarded(sim) == []
