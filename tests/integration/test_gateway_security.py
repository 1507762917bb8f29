"""Issue 12 against the real HAProxy: Host and browser checks (§1), errors a client can read
(§7), tokens that are enforced as reported (§6)."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from aiserver.allowlist import probe_body
from tests.integration.conftest import GatewayFactory
from tests.support.gatewayproc import GatewayProcess
from tests.support.ollama_sim import OllamaSimulator
from tests.support.rawhttp import exchange, request_bytes


def call(gw: GatewayProcess, method: str, path: str, headers: dict[str, str] | None = None,
         body: Any = None, conn: http.client.HTTPConnection | None = None
         ) -> tuple[int, dict[str, str], bytes]:
    own = conn is None
    c = conn or http.client.HTTPConnection(gw.host, gw.port, timeout=30)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json"} if payload is not None else {}
        c.request(method, path, body=payload, headers={**hdrs, **(headers or {})})
        resp = c.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        if own:
            c.close()


def reached(sim: OllamaSimulator, path: str) -> int:
    return sum(1 for r in sim.requests if r.path == path)


# -- §1 Host ----------------------------------------------------------------------------------

def test_foreign_host_is_421_in_the_callers_dialect_and_never_forwarded(
    gateway: GatewayProcess, sim: OllamaSimulator
) -> None:
    sim.clear()
    for path, body in (("/v1/chat/completions", probe_body("/v1/chat/completions")),
                       ("/api/tags", None)):
        status, headers, data = call(gateway, "POST" if body else "GET", path,
                                     {"Host": "rebound.example:11434"}, body)
        assert status == 421 and headers["content-type"] == "application/json"
        doc = json.loads(data)
        err = doc if path.startswith("/api/") else doc["error"]
        assert err["code"] == "misdirected_request" and err["host"] == "rebound.example:11434"
        assert f"127.0.0.1:{gateway.port}" in err["accepted"]
        assert "gateway:" in err["accepted"]  # the [gateway] hosts setting of the fixture
        if path.startswith("/api/"):
            assert isinstance(doc["error"], str) and "rebound.example" in doc["error"]
    time.sleep(0.2)
    assert reached(sim, "/v1/chat/completions") == reached(sim, "/api/tags") == 0


def test_own_names_pass_in_every_spelling(gateway: GatewayProcess) -> None:
    port = gateway.port
    for host in (f"127.0.0.1:{port}", "127.0.0.1", f"localhost:{port}", "LOCALHOST",
                 f"[::1]:{port}", f"gateway:{port}", "gateway.", f"GATEWAY.:{port}"):
        assert call(gateway, "GET", "/api/version", {"Host": host})[0] == 200, host
    for host in (f"127.0.0.1:{port + 1}", f"127.0.0.2:{port}", f"gateway:{port}0",
                 f"localhost.localdomain:{port}", f"[::1]:{port + 1}"):
        assert call(gateway, "GET", "/api/version", {"Host": host})[0] == 421, host


def test_ipv6_listen_address_passes_in_brackets(sim: OllamaSimulator,
                                                gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(sim.port, host="::1", listen=["::1"])
    conn = http.client.HTTPConnection("::1", gw.port, timeout=10)
    try:
        conn.request("GET", "/api/version")  # http.client sends Host: [::1]:<port>
        assert conn.getresponse().status == 200
    finally:
        conn.close()
    raw = request_bytes("GET", "/api/version", host="::1")  # unbracketed: not a Host
    assert exchange("::1", gw.port, raw).status == 421


def test_http2_authority_is_checked_like_host(gateway: GatewayProcess,
                                              sim: OllamaSimulator) -> None:
    from tests.support.hostile_corpus import Case, h2_request, send

    for authority, want in ((b"rebound.example", 421), (f"127.0.0.1:{gateway.port}".encode(),
                                                         200)):
        raw = h2_request([(b":method", b"GET"), (b":scheme", b"http"),
                          (b":authority", authority), (b":path", b"/api/version")])
        out = send(gateway.host, gateway.port, Case("h2 authority", "h2", raw,
                                                    frozenset({want}), h2=True))
        assert out.status == want, (authority, out.status)


# -- §1 browsers --------------------------------------------------------------------------------

@pytest.mark.parametrize("header", [("Origin", "https://evil.example"),
                                    ("Sec-Fetch-Site", "cross-site"),
                                    ("Sec-Fetch-Mode", "no-cors")])
def test_browser_requests_are_403(gateway: GatewayProcess, sim: OllamaSimulator,
                                  header: tuple[str, str]) -> None:
    sim.clear()
    status, _, data = call(gateway, "POST", "/v1/chat/completions", dict([header]),
                           probe_body("/v1/chat/completions"))
    assert status == 403 and json.loads(data)["error"]["code"] == "browser_request"
    assert reached(sim, "/v1/chat/completions") == 0


def test_allowed_origin_gets_cors_and_others_do_not(sim: OllamaSimulator,
                                                    gateway_factory: GatewayFactory) -> None:
    ui = "https://ui.example:8443"
    gw = gateway_factory(sim.port, gateway={"allow_origins": [ui]})
    preflight = {"Origin": ui, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type,authorization",
                 "Sec-Fetch-Mode": "cors"}
    status, headers, _ = call(gw, "OPTIONS", "/v1/chat/completions", preflight)
    assert status == 204
    assert headers["access-control-allow-origin"] == ui
    assert "POST" in headers["access-control-allow-methods"]
    assert headers["access-control-allow-headers"] == "content-type,authorization"
    sim.clear()
    status, headers, _ = call(gw, "POST", "/v1/chat/completions",
                              {"Origin": ui, "Sec-Fetch-Mode": "cors"},
                              probe_body("/v1/chat/completions"))
    assert status == 200 and headers["access-control-allow-origin"] == ui
    assert "Origin" in headers.get("vary", "")
    rec = next(r for r in sim.requests if r.path == "/v1/chat/completions")
    assert rec.header("origin") is None  # Ollama's own CORS check never sees it
    # another origin, a different port or scheme, and a browser without Origin: refused
    for hdrs in ({"Origin": "https://ui.example"}, {"Origin": "http://ui.example:8443"},
                 {**preflight, "Origin": "https://evil.example"}, {"Sec-Fetch-Site": "none"}):
        method = "OPTIONS" if "Access-Control-Request-Method" in hdrs else "GET"
        status, headers, data = call(gw, method, "/v1/models", hdrs)
        assert status == 403 and "access-control-allow-origin" not in headers, hdrs
        assert json.loads(data)["error"]["code"] == "browser_request"


# -- §7 errors a client can read ----------------------------------------------------------------

def test_queue_full_is_503_with_retry_after_not_ollama_down(sim: OllamaSimulator,
                                                            gateway_factory: GatewayFactory
                                                            ) -> None:
    from aiserver.gateway.nodes import show_stat

    gw = gateway_factory(sim.port, limits={"upstream_concurrency": 1, "queue_size": 1},
                         gateway={"profiles": ["default", "native"]})
    hold = [("x-sim-chunk-gap", "0.25"), ("x-sim-chunks", "400")]  # ~100 s each
    body = json.dumps(probe_body("/v1/chat/completions", stream=True)).encode()
    sock = Path(gw.sock_dir) / "admin.sock"

    def backend(field: str) -> int:
        row = next(r for r in show_stat(sock) if r["pxname"] == "ollama"
                   and r["svname"] == "BACKEND")
        return int(row[field] or 0)

    socks = []
    try:
        # the backend counts its queued requests among its sessions: (1, 0), then (2, 1)
        for want_in_slot, want_queued in ((1, 0), (2, 1)):  # one in the slot, one queued
            s = socket.create_connection((gw.host, gw.port))
            s.sendall(request_bytes("POST", "/v1/chat/completions", body=body, headers=hold))
            socks.append(s)
            deadline = time.monotonic() + 20
            while (backend("scur"), backend("qcur")) != (want_in_slot, want_queued):
                assert time.monotonic() < deadline, (backend("scur"), backend("qcur"))
                time.sleep(0.05)
        status, headers, data = call(gw, "POST", "/v1/chat/completions",
                                     body=probe_body("/v1/chat/completions"))
        assert status == 503 and headers["retry-after"] == "10"
        err = json.loads(data)["error"]
        assert err["code"] == "queue_full" and "queue" in err["message"]
        status, _, data = call(gw, "POST", "/api/chat",  # native shape on /api/*
                               body=probe_body("/api/chat"))
        assert status == 503 and json.loads(data)["code"] == "queue_full"
        # cheap read-only routes have their own backend: they answer while inference queues
        for path in ("/v1/models", "/api/tags", "/api/version"):
            status, _, data = call(gw, "GET", path)
            assert status == 200, (path, data[:200])
    finally:
        for s in socks:
            s.close()


def test_native_paths_refuse_in_ollamas_shape_which_the_ollama_client_prints(
    gateway: GatewayProcess
) -> None:
    """The `ollama` Python client shows `error` of the body: it must be a string there."""
    status, _, data = call(gateway, "POST", "/api/pull", body={"model": "x"})
    doc = json.loads(data)
    assert status == 403 and isinstance(doc["error"], str)
    assert doc["error"] == "this endpoint is not exposed by the ai-server gateway"
    assert doc["code"] == "not_exposed" and doc["path"] == "/api/pull"


# -- §6 tokens ----------------------------------------------------------------------------------

TOKEN = "alice-token-0123456789"


@pytest.fixture()
def token_gw(sim: OllamaSimulator, gateway_factory: GatewayFactory,
             tmp_path: Path) -> GatewayProcess:
    tokens = tmp_path / "tokens.map"
    tokens.write_text(f"{TOKEN} alice-laptop\n")
    tokens.chmod(0o600)
    return gateway_factory(sim.port, gateway={"tokens": True, "tokens_file": str(tokens)})


def test_revoked_token_is_refused_when_revoke_returns_even_on_an_open_connection(
    token_gw: GatewayProcess
) -> None:
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    keep = http.client.HTTPConnection(token_gw.host, token_gw.port, timeout=10)
    try:
        assert call(token_gw, "GET", "/api/tags", bearer, conn=keep)[0] == 200
        res = token_gw.cli("tokens", "revoke", "alice-laptop")
        assert res.returncode == 0, res.stderr
        assert "refuses the revoked token (checked)" in res.stderr
        # at once, on a new connection; the connection open before the revoke is closed by
        # the reload (idle keep-alive) or refused, never served
        assert call(token_gw, "GET", "/api/tags", bearer)[0] == 401
        try:
            status = call(token_gw, "GET", "/api/tags", bearer, conn=keep)[0]
        except (http.client.HTTPException, OSError):
            status = 0
        assert status in (0, 401)
    finally:
        keep.close()
    added = token_gw.cli("tokens", "add", "bob-phone")
    assert added.returncode == 0, added.stderr
    bob = {"Authorization": f"Bearer {added.stdout.strip()}"}
    assert call(token_gw, "GET", "/api/tags", bob)[0] == 200


def test_token_change_fails_when_the_serving_gateway_has_no_state_here(
    token_gw: GatewayProcess, tmp_path: Path
) -> None:
    """E.g. `ai-server run` started with another AI_SERVER_HOME, or its state was removed:
    it cannot be reloaded, so a revoke must not report success while it still accepts."""
    env = dict(token_gw.env, AI_SERVER_HOME=str(tmp_path / "other-home"))
    res = subprocess.run([sys.executable, "-m", "aiserver.cli", "--config",
                          str(token_gw.config), "tokens", "revoke", "alice-laptop"],
                         capture_output=True, text=True, env=env, timeout=60, check=False)
    assert res.returncode == 1, res.stderr
    assert "still accepts the token" in res.stderr
    assert "revoked the token" in res.stdout  # the file change itself is kept and said


def test_missing_and_rejected_tokens_differ_and_usage_names_the_source(
    token_gw: GatewayProcess
) -> None:
    status, _, data = call(token_gw, "GET", "/v1/models")
    assert status == 401 and json.loads(data)["error"]["code"] == "token_required"
    for _ in range(3):
        status, _, data = call(token_gw, "GET", "/v1/models",
                               {"Authorization": "Bearer wrong-token-0000000000"})
        assert status == 401 and json.loads(data)["error"]["code"] == "token_rejected"
    assert "not accepted" in json.loads(data)["error"]["message"]
    deadline = time.monotonic() + 5
    while sum('"auth":"rejected"' in ln for ln in token_gw.log_lines()) < 3:
        assert time.monotonic() < deadline, token_gw.log_lines()[-3:]
        time.sleep(0.05)
    assert any('"auth":"missing"' in ln for ln in token_gw.log_lines())
    res = token_gw.cli("usage", "--file", str(token_gw.log_path), "--json")
    assert res.returncode == 0, res.stderr
    rejected = json.loads(res.stdout)["data"]["rejected_tokens"]
    assert [(r["client"], r["attempts"]) for r in rejected] == [("127.0.0.1", 3)]
    human = token_gw.cli("usage", "--file", str(token_gw.log_path))
    assert "rejected token: 127.0.0.1 sent a token the gateway does not accept 3 time(s)" \
        in human.stdout


# -- audit probes (issue 12 §1, §2) ----------------------------------------------------------

def test_audit_host_and_browser_probes_pass_on_the_gateway_and_fail_on_bare_ollama(
    gateway: GatewayProcess, sim: OllamaSimulator
) -> None:
    from aiserver.audit import audit_browser_and_host

    assert all(f.ok for f in audit_browser_and_host(gateway.host, gateway.port))
    bare = audit_browser_and_host("127.0.0.1", sim.port)  # what the gateway used to let by
    assert [f.ok for f in bare] == [False, False]


def test_audit_admin_socket_must_be_a_private_unix_socket(gateway: GatewayProcess,
                                                           tmp_path: Path) -> None:
    from aiserver.audit import audit_admin_socket
    from aiserver.settings import load

    settings = load(gateway.config)
    assert audit_admin_socket(settings).ok
    sock = Path(settings.gateway.stats_socket)
    sock.chmod(0o666)
    bad = audit_admin_socket(settings)
    assert not bad.ok and "mode 666" in bad.detail
    plain = tmp_path / "admin.sock"
    plain.write_text("")
    plain.chmod(0o600)
    from dataclasses import replace

    other = replace(settings, gateway=replace(settings.gateway, stats_socket=str(plain)))
    assert "not a socket" in audit_admin_socket(other).detail


def test_a_state_dir_with_a_space_works(sim: OllamaSimulator,
                                        gateway_factory: GatewayFactory) -> None:
    """macOS's default state dir is ~/Library/Application Support/ai-server: every path in
    haproxy.cfg is quoted (unquoted, `errorfile … /Users/…/Application Support/…` is fatal)."""
    import os
    import shutil
    import tempfile

    home = tempfile.mkdtemp(prefix="ai gw ", dir="/tmp")  # short: the socket lives in it
    try:
        env = dict(os.environ, AI_SERVER_HOME=home)
        tokens = Path(home) / "tokens.map"
        tokens.write_text(f"{TOKEN} alice-laptop\n")
        tokens.chmod(0o600)
        gw = gateway_factory(sim.port, env=env, gateway={
            "stats_socket": "", "tokens": True, "tokens_file": str(tokens)})
        assert call(gw, "GET", "/api/tags", {"Authorization": f"Bearer {TOKEN}"})[0] == 200
        assert call(gw, "GET", "/api/tags")[0] == 401
        sock = Path(home) / "state" / "gateway" / "admin.sock"
        assert sock.is_socket()
        gw.stop()
    finally:
        shutil.rmtree(home, ignore_errors=True)
