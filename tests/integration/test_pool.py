"""One gateway in front of several Ollama nodes: real HAProxy, several simulators."""

from __future__ import annotations

import http.client
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aiserver.allowlist import is_allowed, probe_body
from tests.integration.conftest import GatewayFactory
from tests.support.gatewayproc import GatewayProcess
from tests.support.hostile_corpus import build_corpus
from tests.support.ollama_sim import OllamaSimulator
from tests.support.rawhttp import exchange

A_MODELS = ["qwen3-coder:30b", "llama3.2:3b"]
B_MODELS = ["qwen3-coder:30b", "gemma3:1b"]


def call(gw: GatewayProcess, method: str, path: str, body: Any = None,
         headers: dict[str, str] | None = None, raw: bytes | None = None
         ) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(gw.host, gw.port, timeout=30)
    try:
        payload = raw if raw is not None else (json.dumps(body).encode()
                                               if body is not None else None)
        conn.request(method, path, body=payload, headers={"Content-Type": "application/json",
                                                           **(headers or {})})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def hits(sim: OllamaSimulator, path: str) -> int:
    return sum(1 for r in sim.requests if r.path == path)


class Pool:
    def __init__(self, a: OllamaSimulator, b: OllamaSimulator, gw: GatewayProcess) -> None:
        self.a, self.b, self.gw = a, b, gw

    def clear(self) -> None:
        self.a.clear()
        self.b.clear()


@pytest.fixture()
def sims() -> Iterator[tuple[OllamaSimulator, OllamaSimulator]]:
    with OllamaSimulator(models=A_MODELS) as a, OllamaSimulator("127.0.0.2",
                                                                models=B_MODELS) as b:
        yield a, b


def start_pool(sims: tuple[OllamaSimulator, OllamaSimulator], factory: GatewayFactory,
               **pool: Any) -> Pool:
    a, b = sims
    nodes = [f"127.0.0.1:{a.port}", f"127.0.0.2:{b.port}"]
    gw = factory(a.port, pool={"nodes": nodes, **pool},
                 limits={"per_source_requests_per_10s": 100000,
                         "per_source_connections": 1000})
    deadline = time.monotonic() + 10  # both nodes' first health checks
    while call(gw, "GET", "/v1/models")[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    return Pool(a, b, gw)


@pytest.fixture()
def pool(sims: tuple[OllamaSimulator, OllamaSimulator], gateway_factory: GatewayFactory) -> Pool:
    return start_pool(sims, gateway_factory)


def big_body(model: str, path: str, size: int) -> bytes:
    body = probe_body(path, model=model)
    assert body is not None
    body = dict(body)  # the model first, as clients send it, then a large prompt
    msg = {"role": "user", "content": "x" * size}
    if "messages" in body:
        body["messages"] = [msg]
    else:
        body["prompt"] = msg["content"]
    return json.dumps(body).encode()


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("size", [1, 200_000, 3_000_000])
def test_routing_by_model(pool: Pool, path: str, stream: bool, size: int) -> None:
    for model, only in (("llama3.2:3b", pool.a), ("gemma3:1b", pool.b)):
        pool.clear()
        body = json.loads(big_body(model, path, size))
        body["stream"] = stream
        status, headers, data = call(pool.gw, "POST", path, raw=json.dumps(body).encode())
        assert status == 200, data[:300]
        other = pool.b if only is pool.a else pool.a
        # a health check (GET /api/version, no Host) can land after the call at any moment;
        # send one now so the assertions below are proven not to read "the last request"
        assert exchange(only.host, only.port, b"GET /api/version HTTP/1.0\r\n\r\n").status == 200
        assert hits(only, path) == 1 and hits(other, path) == 0, model
        assert only.last(path).body_size == len(json.dumps(body).encode())
        if stream:
            assert headers["content-type"].startswith("text/event-stream")


@pytest.mark.parametrize(("name", "raw", "model"), [
    # pretty-printed: the old regex took the caller's whole body as the model name
    ("pretty", b'{\n  "model": "gemma3:1b",\n  "max_tokens": 16,\n  "messages": [\n    '
               b'{"role": "user", "content": "hi"}\n  ]\n}', "gemma3:1b"),
    ("escaped", b'{"model":"gemma3:1b","max_tokens":16,'
                b'"messages":[{"role":"user","content":"hi"}]}'.replace(b"3:1b", b"3\\u003a1b"),
     "gemma3:1b"),
    # a "model" inside a message that comes first must not win over the top-level one
    ("nested first", b'{"messages":[{"role":"user","content":"hi","model":"llama3.2:3b"}],'
                     b'"metadata":{"model":"llama3.2:3b"},"max_tokens":16,'
                     b'"model":"gemma3:1b"}', "gemma3:1b"),
    ("large prompt", b'{"model":"gemma3:1b","max_tokens":16,"messages":[{"role":"user",'
                     b'"content":"' + b"y" * 300_000 + b'"}]}', "gemma3:1b"),
])
def test_pool_reads_the_top_level_model_as_json(pool: Pool, name: str, raw: bytes,
                                                model: str) -> None:
    pool.clear()
    status, _, data = call(pool.gw, "POST", "/v1/messages", raw=raw)
    assert status == 200, (name, data[:300])
    only, other = (pool.b, pool.a) if model == "gemma3:1b" else (pool.a, pool.b)
    assert hits(only, "/v1/messages") == 1 and hits(other, "/v1/messages") == 0, name


def test_pool_duplicate_model_keys_route_on_the_first_and_the_node_decides(pool: Pool) -> None:
    """Duplicate top-level keys: HAProxy's json_query takes the first, Go (Ollama) the last.
    The gateway cannot see the last without Lua (Homebrew's HAProxy has none), and refusing
    every body with two "model" keys would refuse Claude Code (its Task tool inputs carry one),
    so it routes on the first; the node then answers for the last. Routing only picks a node,
    so the worst case is that node's own "model not found" — never another route."""
    pool.clear()
    raw = (b'{"model":"gemma3:1b","model":"llama3.2:3b","max_tokens":16,'
           b'"messages":[{"role":"user","content":"hi"}]}')
    status, _, data = call(pool.gw, "POST", "/v1/messages", raw=raw)
    assert hits(pool.b, "/v1/messages") == 1 and hits(pool.a, "/v1/messages") == 0
    assert status == 404 and "llama3.2:3b" in json.loads(data)["error"]["message"]


def test_pool_unknown_model_in_a_pretty_body_is_named_not_the_body(pool: Pool) -> None:
    status, _, data = call(pool.gw, "POST", "/v1/messages",
                           raw=b'{\n  "model": "nope:1b",\n  "max_tokens": 16\n}')
    assert status == 404
    message = json.loads(data)["error"]["message"]
    assert message == "model nope:1b not found on any node of the pool", message


def test_unknown_model_is_404_in_the_callers_shape(pool: Pool) -> None:
    pool.clear()
    status, _, data = call(pool.gw, "POST", "/v1/messages",
                           probe_body("/v1/messages", model="nope:1b"))
    assert status == 404
    doc = json.loads(data)
    assert doc["type"] == "error" and doc["error"]["type"] == "not_found_error"
    assert "nope:1b" in doc["error"]["message"]
    status, _, data = call(pool.gw, "POST", "/v1/chat/completions",
                           probe_body("/v1/chat/completions", model="nope:1b"))
    assert status == 404 and json.loads(data)["error"]["type"] == "not_found_error"
    assert json.loads(data)["error"]["param"] is None
    status, _, data = call(pool.gw, "POST", "/api/show", {"model": "nope:1b"})
    assert status == 404 and "nope:1b" in json.loads(data)["error"]
    status, _, data = call(pool.gw, "GET", "/v1/models/nope:1b")
    assert status == 404 and "error" in json.loads(data)
    assert hits(pool.a, "/v1/messages") == hits(pool.b, "/v1/messages") == 0


def test_union_of_the_nodes_models(pool: Pool) -> None:
    status, headers, data = call(pool.gw, "GET", "/v1/models")
    assert status == 200 and headers["content-type"] == "application/json"
    ids = [m["id"] for m in json.loads(data)["data"]]
    assert ids == sorted({*A_MODELS, *B_MODELS})
    status, _, data = call(pool.gw, "GET", "/api/tags")
    assert status == 200
    assert sorted(m["name"] for m in json.loads(data)["models"]) == ids
    status, _, data = call(pool.gw, "GET", "/v1/models/gemma3:1b")
    assert status == 200 and json.loads(data)["id"] == "gemma3:1b"


def test_session_affinity_and_spread(pool: Pool) -> None:
    pool.clear()
    for _ in range(50):
        assert call(pool.gw, "POST", "/v1/messages", probe_body("/v1/messages"),
                    headers={"x-claude-code-session-id": "one-session"})[0] == 200
    counts = sorted([hits(pool.a, "/v1/messages"), hits(pool.b, "/v1/messages")])
    assert counts == [0, 50]
    pool.clear()
    for i in range(50):
        call(pool.gw, "POST", "/v1/messages", probe_body("/v1/messages"),
             headers={"x-claude-code-session-id": f"session-{i}"})
    a, b = hits(pool.a, "/v1/messages"), hits(pool.b, "/v1/messages")
    assert a + b == 50 and a >= 10 and b >= 10


def test_node_down_fails_over_and_rejoins(sims: tuple[OllamaSimulator, OllamaSimulator],
                                          gateway_factory: GatewayFactory) -> None:
    pool = start_pool(sims, gateway_factory)
    port = pool.a.port
    pool.a.stop()
    t0 = time.monotonic()
    for _ in range(10):  # shared model: every request lands on b, at once
        assert call(pool.gw, "POST", "/v1/messages", probe_body("/v1/messages"))[0] == 200
    assert time.monotonic() - t0 < 10
    status, _, _ = call(pool.gw, "POST", "/v1/messages",
                        probe_body("/v1/messages", model="llama3.2:3b"))
    assert status == 503  # only a had it: an answer, not a hang
    back = OllamaSimulator(port=port, models=A_MODELS)
    back.start()
    try:
        deadline = time.monotonic() + 10
        while call(pool.gw, "POST", "/v1/messages",
                   probe_body("/v1/messages", model="llama3.2:3b"))[0] != 200:
            assert time.monotonic() < deadline, "node never rejoined"
            time.sleep(0.25)
        assert hits(back, "/v1/messages") >= 1
    finally:
        back.stop()
    pool.b.stop()
    deadline = time.monotonic() + 10
    while True:
        status, _, data = call(pool.gw, "POST", "/v1/messages", probe_body("/v1/messages"))
        if status == 502 and b"pool_down" in data:
            break
        assert time.monotonic() < deadline, (status, data[:200])
        time.sleep(0.25)
    assert "no Ollama node of the pool is up" in json.loads(data)["error"]["message"]


def test_pool_status_and_usage_by_node(pool: Pool) -> None:
    for model in ("llama3.2:3b", "gemma3:1b", "gemma3:1b"):
        call(pool.gw, "POST", "/v1/chat/completions", probe_body("/v1/chat/completions",
                                                                 model=model))
    res = pool.gw.cli("pool", "status", "--json")
    assert res.returncode == 0, res.stderr
    nodes = json.loads(res.stdout)["data"]["nodes"]
    assert [n["health"].split()[0] for n in nodes] == ["UP", "UP"], (
        nodes, pool.gw.stderr_text()[-2000:])
    assert nodes[0]["models"] == sorted(A_MODELS) and nodes[1]["models"] == sorted(B_MODELS)
    time.sleep(0.3)
    res = pool.gw.cli("usage", "--by", "node", "--since", "all", "--file",
                      str(pool.gw.log_path), "--json")
    assert res.returncode == 0, res.stderr
    groups = {g["key"]: g["requests"] for g in json.loads(res.stdout)["data"]["groups"]}
    assert groups[f"127.0.0.1:{pool.a.port}"] == 1
    assert groups[f"127.0.0.2:{pool.b.port}"] == 2


def test_remote_gateway_node_gets_its_token(tmp_path: Path, gateway_factory: GatewayFactory,
                                            sims: tuple[OllamaSimulator, OllamaSimulator]
                                            ) -> None:
    a, _ = sims
    with OllamaSimulator(models=["nomic-embed-text:latest"]) as c:
        tokens = tmp_path / "remote.map"
        tokens.write_text("pool-token-0123456789abc studio\n")
        tokens.chmod(0o600)
        remote = gateway_factory(c.port, gateway={"tokens": True, "tokens_file": str(tokens)})
        node_c = f"127.0.0.1:{remote.port}"
        pool_tokens = tmp_path / "pool-tokens.map"
        pool_tokens.write_text(f"{node_c} pool-token-0123456789abc\n")
        pool_tokens.chmod(0o600)
        gw = gateway_factory(a.port, pool={"nodes": [f"127.0.0.1:{a.port}", node_c],
                                           "tokens_file": str(pool_tokens)})
        deadline = time.monotonic() + 10
        while True:
            status, _, data = call(gw, "POST", "/v1/embeddings",
                                   probe_body("/v1/embeddings"))
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert status == 200, data[:200]
        rec = [r for r in c.requests if r.path == "/v1/embeddings"]
        assert len(rec) == 1 and rec[0].header("authorization") is None  # stripped by remote
        line = [json.loads(x) for x in remote.log_lines() if '"/v1\\/embeddings"' in x
                or "embeddings" in x][-1]
        assert line["device"] == "studio"


def test_hostile_corpus_leaks_nothing_through_the_pool(pool: Pool) -> None:
    from tests.integration.test_hostile import run_corpus

    corpus = build_corpus(("default",), 32 * 1024 * 1024)
    pool.clear()
    run_corpus(pool.gw, corpus)
    time.sleep(0.3)
    reached = [r for s in (pool.a, pool.b) for r in s.forwarded()]
    assert reached, "nothing reached the nodes: the corpus controls should have"
    for r in reached:
        path = r.path if r.path.startswith("/") else "/" + r.path.split("/", 3)[-1]
        assert is_allowed(r.method, path, ("default",)), (r.method, r.target)
    methods = Counter(r.method for r in reached)
    assert set(methods) <= {"GET", "HEAD", "POST"}
    assert exchange(pool.gw.host, pool.gw.port,
                    b"POST /api/pull HTTP/1.1\r\nHost: gateway\r\nContent-Length: 2\r\n"
                    b"Connection: close\r\n\r\n{}").status == 403


def test_audit_probes_every_remote_node(tmp_path: Path, gateway_factory: GatewayFactory,
                                        sims: tuple[OllamaSimulator, OllamaSimulator]) -> None:
    from aiserver.audit import audit_pool_nodes
    from aiserver.settings import parse

    a, b = sims
    tokens = tmp_path / "remote.map"
    tokens.write_text("pool-token-0123456789abc studio\n")
    tokens.chmod(0o600)
    remote = gateway_factory(a.port, gateway={"tokens": True, "tokens_file": str(tokens)})
    bare = f"127.0.0.2:{b.port}"  # a bare Ollama listed as if it were another gateway
    pool_tokens = tmp_path / "pool-tokens.map"
    pool_tokens.write_text(f"127.0.0.1:{remote.port} pool-token-0123456789abc\n"
                           f"{bare} pool-token-0123456789abc\n")
    pool_tokens.chmod(0o600)
    settings = parse(f'[pool]\nnodes = ["127.0.0.1:{remote.port}", "{bare}"]\n'
                     f'tokens_file = "{pool_tokens}"\n')
    found = {f.detail.split()[2]: f for f in audit_pool_nodes(settings)}
    assert found[f"127.0.0.1:{remote.port}"].ok
    bad = found[bare]
    assert not bad.ok and "POST /api/pull" in bad.detail
    # the probe sends an empty body: a real Ollama rejects it (400) and pulls nothing
    assert [r.body for r in b.requests if r.path == "/api/pull"] == [b"{}"]
