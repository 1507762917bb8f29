"""Tests for the Ollama simulator used by the integration tests, the demo and the benchmarks."""

from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.support.ollama_sim import SERVER_BUSY, SIM_TEXT, OllamaSimulator

REPO = Path(__file__).resolve().parents[2]
WORDS = SIM_TEXT.split()


def expected_text(n: int) -> str:
    return " ".join(WORDS[i % len(WORDS)] for i in range(n))


@pytest.fixture
def sim() -> Iterator[OllamaSimulator]:
    with OllamaSimulator() as s:
        yield s


def call(
    sim: OllamaSimulator,
    method: str,
    target: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(sim.host, sim.port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if isinstance(body, dict | list) else body
        conn.request(method, target, body=data, headers=headers or {})
        resp = conn.getresponse()
        payload = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, payload
    finally:
        conn.close()


def raw(sim: OllamaSimulator, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes, read until the server closes."""
    with socket.create_connection((sim.host, sim.port), timeout=timeout) as s:
        s.sendall(data)
        out = bytearray()
        while True:
            piece = s.recv(65536)
            if not piece:
                return bytes(out)
            out += piece


def dechunk(body: bytes) -> tuple[list[bytes], bool]:
    """Chunked transfer coding -> (chunks, saw the terminating zero chunk)."""
    chunks: list[bytes] = []
    pos = 0
    while pos < len(body):
        end = body.find(b"\r\n", pos)
        if end < 0:
            break
        size = int(body[pos:end], 16)
        if size == 0:
            return chunks, True
        chunks.append(body[end + 2:end + 2 + size])
        pos = end + 2 + size + 2
    return chunks, False


def sse(body: bytes) -> list[tuple[str | None, str]]:
    events: list[tuple[str | None, str]] = []
    for block in body.decode().split("\n\n"):
        if not block.strip():
            continue
        name = None
        data = []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[len("event: "):]
            elif line.startswith("data: "):
                data.append(line[len("data: "):])
        events.append((name, "\n".join(data)))
    return events


def ndjson(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.decode().splitlines() if line.strip()]


CHAT = {"model": "llama3.2:3b", "messages": [{"role": "user", "content": "hi"}]}
ANTHROPIC = {"model": "qwen3-coder:30b", "max_tokens": 64,
             "messages": [{"role": "user", "content": "hi"}]}


# --- basic native routes ----------------------------------------------------------------------


def test_root_version_and_head(sim: OllamaSimulator) -> None:
    assert call(sim, "GET", "/")[::2] == (200, b"Ollama is running")
    status, headers, body = call(sim, "HEAD", "/")
    assert (status, body) == (200, b"")
    assert headers["content-type"].startswith("text/plain")
    status, headers, body = call(sim, "GET", "/api/version")
    assert status == 200 and json.loads(body) == {"version": "0.32.15"}
    assert headers["content-type"].startswith("application/json")
    assert call(sim, "HEAD", "/api/version")[0] == 200
    assert call(sim, "HEAD", "/api/tags")[0] == 200
    assert sim.url == f"http://127.0.0.1:{sim.port}"


def test_tags_show_and_unknown_model(sim: OllamaSimulator) -> None:
    status, _, body = call(sim, "GET", "/api/tags")
    tags = json.loads(body)["models"]
    names = [m["name"] for m in tags]
    assert names == ["qwen3-coder:30b", "llama3.2:3b", "nomic-embed-text:latest", "gemma3:1b"]
    first = tags[0]
    assert {"name", "model", "modified_at", "size", "digest", "details"} <= first.keys()
    assert first["details"]["format"] == "gguf"
    assert first["details"]["parameter_size"] == "30.5B"
    assert first["capabilities"] == ["completion", "tools"]

    status, _, body = call(sim, "POST", "/api/show", {"model": "qwen3-coder:30b"})
    show = json.loads(body)
    assert status == 200
    assert show["model_info"]["general.architecture"] == "qwen3moe"
    assert show["model_info"]["qwen3moe.context_length"] == 262144
    assert show["capabilities"] == ["completion", "tools"]
    assert {"modelfile", "parameters", "template", "details"} <= show.keys()
    legacy = json.loads(call(sim, "POST", "/api/show", {"name": "gemma3:1b"})[2])
    assert legacy["capabilities"] == ["completion"]
    assert legacy["model_info"]["gemma3.context_length"] == 32768
    nomic = json.loads(call(sim, "POST", "/api/show", {"model": "nomic-embed-text"})[2])
    assert nomic["capabilities"] == ["embedding"]

    status, _, body = call(sim, "POST", "/api/show", {"model": "nope:1b"})
    assert (status, json.loads(body)) == (404, {"error": "model 'nope:1b' not found"})
    status, _, body = call(sim, "POST", "/api/show", b"")
    assert status == 400 and "error" in json.loads(body)


def test_custom_models_and_version() -> None:
    with OllamaSimulator(models=["mini:1b"], version="0.99.0") as s:
        assert json.loads(call(s, "GET", "/api/version")[2]) == {"version": "0.99.0"}
        names = [m["name"] for m in json.loads(call(s, "GET", "/api/tags")[2])["models"]]
        assert names == ["mini:1b"]
    with OllamaSimulator(models=[]) as s:
        assert json.loads(call(s, "GET", "/v1/models")[2]) == {"object": "list", "data": None}


def test_keep_alive_load_unload_and_ps(sim: OllamaSimulator) -> None:
    assert json.loads(call(sim, "GET", "/api/ps")[2]) == {"models": []}
    status, _, body = call(sim, "POST", "/api/generate",
                           {"model": "llama3.2:3b", "keep_alive": -1})
    answer = json.loads(body)
    assert status == 200 and answer["done"] is True and answer["done_reason"] == "load"

    call(sim, "POST", "/api/generate", {"model": "qwen3-coder:30b", "keep_alive": "10m",
                                        "options": {"num_ctx": 65536}})
    ps = {m["name"]: m for m in json.loads(call(sim, "GET", "/api/ps")[2])["models"]}
    assert set(ps) == {"llama3.2:3b", "qwen3-coder:30b"}
    forever = dt.datetime.fromisoformat(ps["llama3.2:3b"]["expires_at"])
    assert forever.year > 2200
    assert ps["llama3.2:3b"]["context_length"] == 4096
    ten = dt.datetime.fromisoformat(ps["qwen3-coder:30b"]["expires_at"]).timestamp()
    assert abs(ten - (time.time() + 600)) < 30
    assert ps["qwen3-coder:30b"]["context_length"] == 65536
    assert ps["qwen3-coder:30b"]["size_vram"] > 0

    # a later /v1 request with the default context reloads the runner, keeping it loaded
    call(sim, "POST", "/v1/chat/completions", {**CHAT, "model": "qwen3-coder:30b"})
    assert sim.model_loads[-1] == ("qwen3-coder:30b", 4096)

    status, _, body = call(sim, "POST", "/api/chat",
                           {"model": "llama3.2:3b", "messages": [], "keep_alive": 0})
    assert json.loads(body)["done_reason"] == "unload"
    ps_names = [m["name"] for m in json.loads(call(sim, "GET", "/api/ps")[2])["models"]]
    assert ps_names == ["qwen3-coder:30b"]
    call(sim, "POST", "/api/generate", {"model": "qwen3-coder:30b", "keep_alive": 0})
    assert json.loads(call(sim, "GET", "/api/ps")[2]) == {"models": []}

    status, _, body = call(sim, "POST", "/api/generate",
                           {"model": "llama3.2:3b", "keep_alive": "300"})
    assert status == 400 and "missing unit" in json.loads(body)["error"]


# --- OpenAI dialect ---------------------------------------------------------------------------


def test_openai_models(sim: OllamaSimulator) -> None:
    listing = json.loads(call(sim, "GET", "/v1/models?limit=1")[2])
    assert listing["object"] == "list"
    assert listing["data"][0] == {"id": "qwen3-coder:30b", "object": "model",
                                  "created": listing["data"][0]["created"], "owned_by": "library"}
    assert json.loads(call(sim, "GET", "/v1/models/llama3.2:3b")[2])["id"] == "llama3.2:3b"
    assert json.loads(call(sim, "GET", "/v1/models/llama3.2%3A3b")[2])["id"] == "llama3.2:3b"
    status, _, body = call(sim, "GET", "/v1/models/nope")
    assert status == 404
    assert json.loads(body) == {"error": {"message": "model 'nope' not found",
                                          "type": "not_found_error", "param": None,
                                          "code": None}}
    assert call(sim, "GET", "/v1/models/a%2Fb")[::2] == (404, b"404 page not found")


def test_openai_chat_non_stream(sim: OllamaSimulator) -> None:
    status, headers, body = call(sim, "POST", "/v1/chat/completions", CHAT)
    out = json.loads(body)
    assert status == 200 and headers["content-type"].startswith("application/json")
    assert out["object"] == "chat.completion" and out["id"].startswith("chatcmpl-")
    assert out["system_fingerprint"] == "fp_ollama"
    choice = out["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": expected_text(8)}
    assert choice["finish_reason"] == "stop"
    usage = out["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    short = json.loads(call(sim, "POST", "/v1/chat/completions", {**CHAT, "max_tokens": 2})[2])
    assert short["choices"][0]["finish_reason"] == "length"


def test_openai_chat_stream(sim: OllamaSimulator) -> None:
    sim.stream_chunks = 5
    status, headers, body = call(sim, "POST", "/v1/chat/completions", {
        **CHAT, "stream": True, "stream_options": {"include_usage": True}})
    assert status == 200
    assert headers["content-type"] == "text/event-stream"
    assert headers["transfer-encoding"] == "chunked"
    events = sse(body)
    assert all(name is None for name, _ in events)
    assert events[-1][1] == "[DONE]"
    chunks = [json.loads(data) for _, data in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    content, finish, usage = chunks[:5], chunks[5], chunks[6]
    assert content[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"]["content"] for c in content) == expected_text(5)
    assert all(c["choices"][0]["finish_reason"] is None for c in content)
    assert finish["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop"}
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 5
    assert len(chunks) == 7

    body = call(sim, "POST", "/v1/chat/completions", {**CHAT, "stream": True})[2]
    assert len(sse(body)) == 5 + 1 + 1  # no usage chunk without include_usage


def test_openai_completions(sim: OllamaSimulator) -> None:
    sim.stream_chunks = 3
    req = {"model": "llama3.2:3b", "prompt": "Say something"}
    out = json.loads(call(sim, "POST", "/v1/completions", req)[2])
    assert out["object"] == "text_completion"
    assert out["choices"][0]["text"] == expected_text(3)
    events = sse(call(sim, "POST", "/v1/completions", {**req, "stream": True})[2])
    assert events[-1][1] == "[DONE]"
    chunks = [json.loads(d) for _, d in events[:-1]]
    assert len(chunks) == 3  # finish_reason rides on the last content chunk
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, "stop"]
    assert "".join(c["choices"][0]["text"] for c in chunks) == expected_text(3)


def test_embeddings_all_dialects(sim: OllamaSimulator) -> None:
    out = json.loads(call(sim, "POST", "/v1/embeddings", {"model": "nomic-embed-text",
                                                          "input": ["a", "b"]})[2])
    assert out["object"] == "list" and [d["index"] for d in out["data"]] == [0, 1]
    assert len(out["data"][0]["embedding"]) == 768
    assert out["data"][0]["embedding"] != out["data"][1]["embedding"]
    out = json.loads(call(sim, "POST", "/api/embed", {"model": "nomic-embed-text:latest",
                                                      "input": "a"})[2])
    assert len(out["embeddings"]) == 1 and len(out["embeddings"][0]) == 768
    out = json.loads(call(sim, "POST", "/api/embeddings", {"model": "nomic-embed-text",
                                                           "prompt": "a"})[2])
    assert len(out["embedding"]) == 768
    status, _, body = call(sim, "POST", "/v1/embeddings", {"model": "nomic-embed-text"})
    assert status == 400 and json.loads(body)["error"]["type"] == "invalid_request_error"


def test_responses_api(sim: OllamaSimulator) -> None:
    sim.stream_chunks = 4
    req = {"model": "qwen3-coder:30b", "input": "hello"}
    out = json.loads(call(sim, "POST", "/v1/responses", req)[2])
    assert out["object"] == "response" and out["status"] == "completed"
    assert out["output"][0]["content"][0]["text"] == expected_text(4)
    events = sse(call(sim, "POST", "/v1/responses", {**req, "stream": True})[2])
    names = [n for n, _ in events]
    assert names == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.content_part.added", *["response.output_text.delta"] * 4,
        "response.output_text.done", "response.content_part.done",
        "response.output_item.done", "response.completed",
    ]
    assert all(json.loads(d)["type"] == n for n, d in events)
    assert "[DONE]" not in [d for _, d in events]
    assert json.loads(events[-1][1])["response"]["usage"]["output_tokens"] == 4


# --- Anthropic dialect ------------------------------------------------------------------------


def test_anthropic_messages(sim: OllamaSimulator) -> None:
    sim.stream_chunks = 3
    status, _, body = call(sim, "POST", "/v1/messages?beta=true", ANTHROPIC,
                           {"anthropic-version": "2023-06-01", "x-api-key": "k"})
    out = json.loads(body)
    assert status == 200
    assert re.fullmatch(r"msg_[0-9a-f]{24}", out["id"])
    assert out["type"] == "message" and out["role"] == "assistant"
    assert out["content"] == [{"type": "text", "text": expected_text(3)}]
    assert out["stop_reason"] == "end_turn"
    assert set(out["usage"]) == {"input_tokens", "output_tokens"}
    rec = sim.requests[-1]
    assert (rec.target, rec.path) == ("/v1/messages?beta=true", "/v1/messages")

    status, headers, body = call(sim, "POST", "/v1/messages", {**ANTHROPIC, "stream": True})
    assert headers["content-type"] == "text/event-stream"
    events = sse(body)
    names = [n for n, _ in events]
    assert names == ["message_start", "content_block_start", *["content_block_delta"] * 3,
                     "content_block_stop", "message_delta", "message_stop"]
    assert "ping" not in names
    payloads = [json.loads(d) for _, d in events]
    assert all(p["type"] == n for n, p in zip(names, payloads, strict=True))
    assert payloads[0]["message"]["usage"]["output_tokens"] == 0
    assert all(p["delta"]["type"] == "text_delta" for p in payloads[2:5])
    assert "".join(p["delta"]["text"] for p in payloads[2:5]) == expected_text(3)
    assert payloads[6]["delta"]["stop_reason"] == "end_turn"
    assert payloads[6]["usage"]["output_tokens"] == 3

    short = json.loads(call(sim, "POST", "/v1/messages", {**ANTHROPIC, "max_tokens": 1})[2])
    assert short["stop_reason"] == "max_tokens"


@pytest.mark.parametrize(
    ("change", "status", "kind", "message"),
    [
        ({"max_tokens": 0}, 400, "invalid_request_error", "max_tokens"),
        ({"messages": []}, 400, "invalid_request_error", "messages"),
        ({"model": ""}, 400, "invalid_request_error", "model"),
        ({"model": "nope:7b"}, 404, "not_found_error", "model 'nope:7b' not found"),
        ({"model": "gemma3:1b", "tools": [{"name": "Read", "input_schema": {}}]}, 400,
         "invalid_request_error", "does not support tools"),
    ],
)
def test_anthropic_errors(
    sim: OllamaSimulator, change: dict[str, Any], status: int, kind: str, message: str
) -> None:
    got, _, body = call(sim, "POST", "/v1/messages", {**ANTHROPIC, **change})
    out = json.loads(body)
    assert got == status
    assert out["type"] == "error" and out["error"]["type"] == kind
    assert message in out["error"]["message"]
    assert re.fullmatch(r"req_[0-9a-f]{24}", out["request_id"])


def test_tools_capable_model_accepts_tools(sim: OllamaSimulator) -> None:
    req = {**ANTHROPIC, "tools": [{"name": "Read", "input_schema": {"type": "object"}}]}
    assert call(sim, "POST", "/v1/messages", req)[0] == 200


# --- native inference -------------------------------------------------------------------------


def test_native_chat_and_generate(sim: OllamaSimulator) -> None:
    sim.stream_chunks = 4
    status, headers, body = call(sim, "POST", "/api/chat", CHAT)
    assert status == 200 and headers["content-type"] == "application/x-ndjson"
    lines = ndjson(body)
    assert len(lines) == 5
    assert all(line["done"] is False for line in lines[:-1])
    assert "".join(line["message"]["content"] for line in lines) == expected_text(4)
    assert lines[-1]["done"] is True and lines[-1]["done_reason"] == "stop"
    assert lines[-1]["eval_count"] == 4 and "total_duration" in lines[-1]

    out = json.loads(call(sim, "POST", "/api/chat", {**CHAT, "stream": False})[2])
    assert out["message"]["content"] == expected_text(4) and out["done"] is True

    lines = ndjson(call(sim, "POST", "/api/generate",
                        {"model": "gemma3:1b", "prompt": "hi"}, {"x-sim-chunks": "2"})[2])
    assert [line["response"] for line in lines] == ["The", " quick", ""]
    out = json.loads(call(sim, "POST", "/api/generate",
                          {"model": "gemma3:1b", "prompt": "hi", "stream": False})[2])
    assert out["response"] == expected_text(4)

    status, _, body = call(sim, "POST", "/api/chat",
                           {**CHAT, "model": "gemma3:1b", "tools": [{"type": "function"}]})
    assert status == 400
    assert json.loads(body)["error"] == (
        "registry.ollama.ai/library/gemma3:1b does not support tools")
    status, _, body = call(sim, "POST", "/api/chat", {**CHAT, "model": "nomic-embed-text"})
    assert status == 400 and "does not support chat" in json.loads(body)["error"]


def test_unknown_model_in_each_dialect(sim: OllamaSimulator) -> None:
    native = call(sim, "POST", "/api/chat", {**CHAT, "model": "ghost"})
    assert (native[0], json.loads(native[2])) == (404, {"error": "model 'ghost' not found"})
    oai = call(sim, "POST", "/v1/chat/completions", {**CHAT, "model": "ghost"})
    assert oai[0] == 404 and json.loads(oai[2])["error"]["type"] == "not_found_error"
    anth = call(sim, "POST", "/v1/messages", {**ANTHROPIC, "model": "ghost"})
    assert anth[0] == 404 and json.loads(anth[2])["error"]["type"] == "not_found_error"


def test_queue_full_in_each_dialect(sim: OllamaSimulator) -> None:
    sim.queue_full = True
    status, _, body = call(sim, "POST", "/api/chat", CHAT)
    assert (status, json.loads(body)) == (503, {"error": SERVER_BUSY})
    status, _, body = call(sim, "POST", "/api/generate", {"model": "llama3.2:3b", "prompt": "x"})
    assert status == 503
    status, _, body = call(sim, "POST", "/v1/chat/completions", {**CHAT, "stream": True})
    assert status == 503
    assert json.loads(body)["error"] == {"message": SERVER_BUSY, "type": "api_error",
                                         "param": None, "code": None}
    status, _, body = call(sim, "POST", "/v1/messages", ANTHROPIC)
    assert status == 503
    assert json.loads(body)["error"] == {"type": "overloaded_error", "message": SERVER_BUSY}
    assert call(sim, "GET", "/api/tags")[0] == 200
    sim.queue_full = False
    assert call(sim, "POST", "/api/chat", CHAT)[0] == 200


# --- admin routes and raw-target recording ----------------------------------------------------


def test_percent_encoded_target_recorded_raw_and_routed(sim: OllamaSimulator) -> None:
    status, headers, body = call(sim, "POST", "/api/%70ull", {"model": "evil:1b"})
    assert status == 200 and headers["content-type"] == "application/x-ndjson"
    lines = ndjson(body)
    statuses = [line["status"] for line in lines]
    assert statuses[0] == "pulling manifest"
    assert statuses[-4:] == ["verifying sha256 digest", "writing manifest",
                             "removing unused layers", "success"]
    layer = [line for line in lines if line["status"].startswith("pulling ")
             and line["status"] != "pulling manifest"]
    assert layer and all(re.fullmatch(r"pulling [0-9a-f]{12}", x["status"]) for x in layer)
    assert all(x["digest"].startswith("sha256:") and x["total"] > 0 for x in layer)
    assert "completed" not in layer[0] and layer[-1]["completed"] == layer[-1]["total"]
    rec = sim.requests[-1]
    assert (rec.method, rec.target, rec.path, rec.version) == (
        "POST", "/api/%70ull", "/api/%70ull", "HTTP/1.1")
    assert rec.status == 200 and json.loads(rec.body) == {"model": "evil:1b"}
    assert "evil:1b" in [m["name"] for m in json.loads(call(sim, "GET", "/api/tags")[2])["models"]]
    assert json.loads(call(sim, "POST", "/api/pull", {"model": "x", "stream": False})[2]) == {
        "status": "success"}


def test_admin_routes_exist(sim: OllamaSimulator) -> None:
    blob = b"blob-bytes"
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    assert call(sim, "HEAD", f"/api/blobs/{digest}")[0] == 404
    assert call(sim, "POST", f"/api/blobs/{digest}", blob)[0] == 201
    assert call(sim, "HEAD", f"/api/blobs/{digest}")[0] == 200
    assert call(sim, "POST", "/api/blobs/sha256:00", blob)[0] == 400
    cases: list[tuple[str, str, Any, int]] = [
        ("POST", "/api/push", {"model": "llama3.2:3b"}, 200),
        ("POST", "/api/create", {"model": "mine:1b", "from": "llama3.2:3b"}, 200),
        ("POST", "/api/copy", {"source": "mine:1b", "destination": "copy:1b"}, 200),
        ("DELETE", "/api/delete", {"model": "copy:1b"}, 200),
        ("DELETE", "/api/delete", {"model": "copy:1b"}, 404),
        ("POST", "/api/me", {}, 200),
        ("POST", "/api/signout", {}, 200),
        ("DELETE", "/api/user/keys/c3NoLWVkMjU1MTk", None, 200),
        ("POST", "/api/experimental/web_search", {"query": "x"}, 200),
        ("POST", "/api/experimental/web_fetch", {"url": "https://example.com"}, 200),
        ("GET", "/api/status", None, 200),
        ("POST", "/v1/audio/transcriptions", b"--x--", 200),
    ]
    for method, path, body, want in cases:
        assert call(sim, method, path, body)[0] == want, (method, path)
    push = ndjson(call(sim, "POST", "/api/push", {"model": "llama3.2:3b"})[2])
    assert push[-1] == {"status": "success"}
    paths = [r.path for r in sim.requests]
    assert "/api/experimental/web_search" in paths and "/api/me" in paths


def test_recording_headers_and_body_limit(sim: OllamaSimulator) -> None:
    big = json.dumps({"model": "llama3.2:3b", "pad": "x" * 100_000}).encode()
    request = (b"POST /api/show HTTP/1.1\r\nHost: 127.0.0.1:11434\r\n"
               b"X-Claude-Code-Session-Id: abc\r\nx-api-key: secret\r\nConnection: close\r\n"
               b"Content-Length: %d\r\n\r\n" % len(big)) + big
    answer = raw(sim, request)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    rec = sim.requests[-1]
    assert rec.headers[:3] == [("Host", "127.0.0.1:11434"), ("X-Claude-Code-Session-Id", "abc"),
                               ("x-api-key", "secret")]
    assert rec.header("X-API-KEY") == "secret" and rec.header("authorization") is None
    assert rec.body_size == len(big) and rec.body == big[:65536]
    assert rec.client[0] == "127.0.0.1" and rec.time > 0
    sim.clear()
    assert sim.requests == []


# --- HTTP mechanics ---------------------------------------------------------------------------


def test_gin_routing_semantics(sim: OllamaSimulator) -> None:
    # unclean paths: see test_unclean_paths_redirect_to_the_cleaned_path
    assert call(sim, "GET", "/nope")[0] == 404
    assert call(sim, "POST", "/v1/messages/count_tokens", ANTHROPIC)[0] == 404
    status, headers, body = call(sim, "GET", "/api/chat")
    assert (status, body) == (405, b"405 method not allowed")
    assert headers["content-type"] == "text/plain" and headers["allow"] == "POST"
    assert call(sim, "HEAD", "/api/ps")[0] == 405
    status, headers, _ = call(sim, "GET", "/api/tags/?x=1")
    assert (status, headers["location"]) == (301, "/api/tags?x=1")
    status, headers, _ = call(sim, "POST", "/api/chat/", CHAT)
    assert (status, headers["location"]) == (307, "/api/chat")
    assert call(sim, "GET", "/api/%74ags")[0] == 200
    assert call(sim, "GET", "/api/%zz")[0] == 400
    assert call(sim, "GET", "/API/TAGS")[0] == 404


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("ai.tail1234.ts.net", 403),
        ("ai.tail1234.ts.net:11434", 403),
        ("example.com", 403),
        ("100.101.102.103:11434", 403),
        ("127.0.0.1:11434", 200),
        ("localhost", 200),
        ("localhost:11434", 200),
        ("box.local", 200),
        ("ollama.internal:11434", 200),
        ("dev.localhost", 200),
        ("192.168.1.20:11434", 200),
        ("10.1.2.3", 200),
        ("[::1]:11434", 200),
        ("169.254.1.1", 403),  # link-local is not private (Go netip)
        ("", 200),
    ],
)
def test_host_check(sim: OllamaSimulator, host: str, status: int) -> None:
    answer = raw(sim, f"GET /api/tags HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                 .encode())
    assert answer.startswith(f"HTTP/1.1 {status} ".encode())


def test_host_check_hostname_absent_host_and_switch(sim: OllamaSimulator) -> None:
    hostname = socket.gethostname()
    assert call(sim, "GET", "/api/tags", headers={"Host": hostname})[0] == 200
    assert raw(sim, b"GET /api/version HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 200 OK")
    assert raw(sim, b"GET /api/version HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert call(sim, "GET", "/api/tags", headers={"Host": "x.ts.net"})[0] == 403
    sim.host_check = False
    assert call(sim, "GET", "/api/tags", headers={"Host": "x.ts.net"})[0] == 200
    sim.host_check = True
    sim.extra_allowed_hosts.append("x.ts.net")
    assert call(sim, "GET", "/api/tags", headers={"Host": "x.ts.net"})[0] == 200


def test_cors_origin_check(sim: OllamaSimulator) -> None:
    assert call(sim, "GET", "/api/tags", headers={"Origin": "https://evil.example"})[0] == 403
    status, headers, _ = call(sim, "GET", "/api/tags", headers={"Origin": "http://localhost:3000"})
    assert status == 200 and headers["access-control-allow-origin"] == "http://localhost:3000"


def test_parse_errors_answer_400_and_are_recorded(sim: OllamaSimulator) -> None:
    assert raw(sim, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert sim.requests[-1].error is not None and sim.requests[-1].status == 400
    assert raw(sim, b"GET /api/tags HTTP/1.1\r\nHost : x\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert raw(sim, b"GET /api/tags HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").startswith(
        b"HTTP/1.1 403 ")
    assert raw(sim, b"POST /api/show HTTP/1.1\r\nHost: localhost\r\n"
                    b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd").startswith(
        b"HTTP/1.1 400 ")
    assert raw(sim, b"GET / HTTP/2.0\r\nHost: localhost\r\n\r\n").startswith(b"HTTP/1.1 505 ")
    assert raw(sim, b"POST /api/show HTTP/1.1\r\nHost: localhost\r\n"
                    b"Transfer-Encoding: gzip, chunked\r\n\r\n").startswith(b"HTTP/1.1 501 ")


def test_keep_alive_pipelining_and_chunked_request_body(sim: OllamaSimulator) -> None:
    body = json.dumps({"model": "llama3.2:3b"}).encode()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    answer = raw(sim, b"GET /api/version HTTP/1.1\r\nHost: localhost\r\n\r\n"
                      b"POST /api/show HTTP/1.1\r\nHost: localhost\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n" + chunked +
                      b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    assert answer.count(b"HTTP/1.1 200 OK\r\n") == 3
    assert answer.endswith(b"Ollama is running")
    assert b"llama.context_length" in answer
    show = next(r for r in sim.requests if r.path == "/api/show")
    assert show.body == body and show.body_size == len(body)
    # HTTP/1.0 closes after one answer unless keep-alive is asked for
    answer = raw(sim, b"GET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n")
    assert answer.count(b"HTTP/1.0 200 OK") == 1
    answer = raw(sim, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                      b"GET / HTTP/1.0\r\n\r\n")
    assert answer.count(b"HTTP/1.0 200 OK") == 2
    # a stream to an HTTP/1.0 client is close-delimited, not chunked
    answer = raw(sim, b"POST /api/chat HTTP/1.0\r\nContent-Length: %d\r\n\r\n%s"
                 % (len(json.dumps(CHAT)), json.dumps(CHAT).encode()))
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding" not in head and ndjson(payload)[-1]["done"] is True


# --- latency and faults -----------------------------------------------------------------------


def first_byte_time(sim: OllamaSimulator, body: dict[str, Any], extra: str = "") -> float:
    payload = json.dumps(body).encode()
    with socket.create_connection((sim.host, sim.port), timeout=5) as s:
        t0 = time.monotonic()
        s.sendall(b"POST /api/chat HTTP/1.1\r\nHost: localhost\r\n%sContent-Length: %d\r\n\r\n"
                  % (extra.encode(), len(payload)) + payload)
        assert s.recv(1)
        return time.monotonic() - t0


def test_first_byte_delay(sim: OllamaSimulator) -> None:
    assert first_byte_time(sim, CHAT) < 0.2
    sim.first_byte_delay = 0.3
    assert first_byte_time(sim, CHAT) >= 0.25
    sim.first_byte_delay = 0.0
    assert first_byte_time(sim, CHAT, "x-sim-first-byte-delay: 0.3\r\n") >= 0.25
    assert first_byte_time(sim, {**CHAT, "stream": False},
                           "x-sim-first-byte-delay: 0.2\r\n") >= 0.15
    t0 = time.monotonic()
    assert call(sim, "GET", "/api/tags", headers={"x-sim-first-byte-delay": "1"})[0] == 200
    assert time.monotonic() - t0 < 0.5  # only inference answers are delayed


def test_chunk_gap(sim: OllamaSimulator) -> None:
    sim.chunk_gap = 0.1
    sim.stream_chunks = 4
    conn = http.client.HTTPConnection(sim.host, sim.port, timeout=5)
    conn.request("POST", "/api/chat", body=json.dumps(CHAT))
    resp = conn.getresponse()
    stamps = []
    while resp.readline():
        stamps.append(time.monotonic())
    conn.close()
    assert len(stamps) == 5
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert all(g >= 0.07 for g in gaps), gaps
    t0 = time.monotonic()
    call(sim, "POST", "/api/chat", CHAT, {"x-sim-chunk-gap": "0", "x-sim-chunks": "20"})
    assert time.monotonic() - t0 < 0.5


def test_close_after_chunks(sim: OllamaSimulator) -> None:
    sim.close_after_chunks = 3
    payload = json.dumps({**CHAT, "stream": True, "model": "qwen3-coder:30b"}).encode()
    answer = raw(sim, b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(payload) + payload)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"Transfer-Encoding: chunked" in head
    chunks, complete = dechunk(body)
    assert len(chunks) == 3 and not complete
    sim.close_after_chunks = None
    answer = raw(sim, b"POST /api/chat HTTP/1.1\r\nHost: localhost\r\nx-sim-close-after-chunks: 1"
                      b"\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload)
    chunks, complete = dechunk(answer.partition(b"\r\n\r\n")[2])
    assert len(chunks) == 1 and not complete
    with pytest.raises(http.client.IncompleteRead):
        call(sim, "POST", "/api/chat", CHAT, {"x-sim-close-after-chunks": "2"})


def test_disconnect_detection(sim: OllamaSimulator) -> None:
    sim.chunk_gap = 0.2
    payload = json.dumps(CHAT).encode()
    with socket.create_connection((sim.host, sim.port), timeout=5) as s:
        s.sendall(b"POST /api/chat HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n"
                  % len(payload) + payload)
        assert s.recv(65536).startswith(b"HTTP/1.1 200 OK")
    assert sim.wait_for_disconnect(3)
    gone = sim.disconnects[0]
    assert (gone.path, gone.phase) == ("/api/chat", "streaming") and gone.chunks_sent >= 1
    assert sim.streams_completed == 0

    # a client that gives up during pre-fill is noticed before the delay is over
    sim.first_byte_delay = 2.0
    with socket.create_connection((sim.host, sim.port), timeout=5) as s:
        s.sendall(b"POST /api/chat HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n"
                  % len(payload) + payload)
        time.sleep(0.1)
    t0 = time.monotonic()
    assert sim.wait_for_disconnect(1.5, count=2)
    assert time.monotonic() - t0 < 1.0
    assert sim.disconnects[1].phase == "before-first-byte"


def test_concurrent_streams(sim: OllamaSimulator) -> None:
    sim.chunk_gap = 0.01

    def one(i: int) -> str:
        body = {"model": "llama3.2:3b", "messages": [{"role": "user", "content": str(i)}],
                "stream": True}
        status, _, payload = call(sim, "POST", "/v1/chat/completions", body, timeout=20)
        assert status == 200
        events = sse(payload)
        assert events[-1][1] == "[DONE]"
        return "".join(json.loads(d)["choices"][0]["delta"].get("content", "")
                       for _, d in events[:-1])

    with ThreadPoolExecutor(max_workers=64) as pool:
        texts = list(pool.map(one, range(64)))
    assert texts == [expected_text(8)] * 64
    assert sim.wait_for_streams(64, timeout=5)
    assert len(sim.requests) == 64 and not sim.disconnects


# --- lifecycle ----------------------------------------------------------------------------------


def test_stop_closes_open_connections_promptly() -> None:
    sim = OllamaSimulator()
    sim.start()
    sim.chunk_gap = 5.0
    payload = json.dumps(CHAT).encode()
    idle = socket.create_connection((sim.host, sim.port), timeout=5)
    idle.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert idle.recv(65536).startswith(b"HTTP/1.1 200")
    streaming = socket.create_connection((sim.host, sim.port), timeout=5)
    streaming.sendall(b"POST /api/chat HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n"
                      % len(payload) + payload)
    assert streaming.recv(65536).startswith(b"HTTP/1.1 200")
    t0 = time.monotonic()
    sim.stop()
    assert time.monotonic() - t0 < 2.0
    for s in (idle, streaming):
        s.settimeout(2)
        assert s.recv(65536) == b""
        s.close()
    assert not sim.disconnects  # our own shutdown is not a client disconnect
    with pytest.raises(OSError):
        socket.create_connection((sim.host, sim.port), timeout=1).close()
    sim.stop()  # idempotent


def test_ipv6_loopback() -> None:
    try:
        sim = OllamaSimulator("::1")
        sim.start()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        assert sim.url == f"http://[::1]:{sim.port}"
        assert call(sim, "GET", "/api/version")[0] == 200
    finally:
        sim.stop()


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "tests.support.ollama_sim"],
        [sys.executable, str(REPO / "tests" / "support" / "ollama_sim.py")],
    ],
)
def test_standalone_cli(command: list[str]) -> None:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.Popen([*command, "--port", "0", "--chunks", "2", "--quiet"], cwd=REPO,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        m = re.fullmatch(r"ollama-sim listening on http://127\.0\.0\.1:(\d+)\n", line)
        assert m, line
        conn = http.client.HTTPConnection("127.0.0.1", int(m.group(1)), timeout=5)
        conn.request("POST", "/api/generate", body=json.dumps({"model": "llama3.2:3b",
                                                               "prompt": "x"}))
        lines = ndjson(conn.getresponse().read())
        conn.close()
        assert len(lines) == 3
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_threads_do_not_leak() -> None:
    before = threading.active_count()
    with OllamaSimulator() as sim:
        for _ in range(5):
            call(sim, "POST", "/api/chat", CHAT)
    deadline = time.monotonic() + 2
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert threading.active_count() <= before


# --- tool calls, JSON mode and the contract-breaking switches ---------------------------------

WEATHER_SCHEMA = {"type": "object", "required": ["city", "days"],
                  "properties": {"city": {"type": "string"}, "days": {"type": "integer"},
                                 "unit": {"enum": ["c", "f"]}}}
OAI_TOOLS = [{"type": "function", "function": {"name": "other_tool", "parameters": {}}},
             {"type": "function", "function": {"name": "get_weather",
                                               "parameters": WEATHER_SCHEMA}}]
ANT_TOOLS = [{"name": "get_weather", "input_schema": WEATHER_SCHEMA}]
ASK = [{"role": "user", "content": "Use the get_weather tool for Paris."}]


def test_openai_tool_call_when_a_tool_is_named(sim: OllamaSimulator) -> None:
    req = {**CHAT, "messages": ASK, "tools": OAI_TOOLS}
    out = json.loads(call(sim, "POST", "/v1/chat/completions", req)[2])
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (tc,) = choice["message"]["tool_calls"]
    assert re.fullmatch(r"call_[0-9a-f]{8}", tc["id"])
    assert (tc["index"], tc["type"], tc["function"]["name"]) == (0, "function", "get_weather")
    assert json.loads(tc["function"]["arguments"]) == {"city": "sim", "days": 1}

    events = sse(call(sim, "POST", "/v1/chat/completions", {**req, "stream": True,
                                                            "stream_options": {
                                                                "include_usage": True}})[2])
    chunks = [json.loads(d) for _, d in events[:-1]]
    assert events[-1][1] == "[DONE]" and len(chunks) == 3
    assert chunks[0]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert chunks[1]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "tool_calls"}
    assert chunks[2]["choices"] == [] and chunks[2]["usage"]["completion_tokens"] > 0

    # after a tool result, or without the tool named, the answer is text
    after = [*ASK, {"role": "assistant", "content": "", "tool_calls": [tc]},
             {"role": "tool", "content": "sunny", "tool_call_id": tc["id"]}]
    for messages in (after, [{"role": "user", "content": "hi"}]):
        out = json.loads(call(sim, "POST", "/v1/chat/completions",
                              {**req, "messages": messages})[2])
        assert out["choices"][0]["finish_reason"] == "stop"
        assert out["choices"][0]["message"] == {"role": "assistant", "content": expected_text(8)}
    sim.tool_calls = False
    out = json.loads(call(sim, "POST", "/v1/chat/completions", req)[2])
    assert "tool_calls" not in out["choices"][0]["message"]


def test_anthropic_tool_use_round_trip(sim: OllamaSimulator) -> None:
    req = {**ANTHROPIC, "messages": ASK, "tools": ANT_TOOLS}
    out = json.loads(call(sim, "POST", "/v1/messages", req)[2])
    (block,) = out["content"]
    assert out["stop_reason"] == "tool_use"
    assert block["type"] == "tool_use" and re.fullmatch(r"call_[0-9a-f]{8}", block["id"])
    assert (block["name"], block["input"]) == ("get_weather", {"city": "sim", "days": 1})

    events = sse(call(sim, "POST", "/v1/messages", {**req, "stream": True})[2])
    assert [n for n, _ in events] == ["message_start", "content_block_start",
                                      "content_block_delta", "content_block_stop",
                                      "message_delta", "message_stop"]
    payloads = [json.loads(d) for _, d in events]
    start = payloads[1]["content_block"]
    assert start["type"] == "tool_use" and start["input"] == {} and start["name"] == "get_weather"
    assert payloads[2]["delta"]["type"] == "input_json_delta"
    assert json.loads(payloads[2]["delta"]["partial_json"]) == {"city": "sim", "days": 1}
    assert payloads[4]["delta"]["stop_reason"] == "tool_use"

    back = [*ASK, {"role": "assistant", "content": [block]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block["id"],
                                          "content": "Sunny."}]}]
    out = json.loads(call(sim, "POST", "/v1/messages", {**req, "messages": back})[2])
    assert out["stop_reason"] == "end_turn" and out["content"][0]["type"] == "text"


def test_json_mode_answers_json(sim: OllamaSimulator) -> None:
    req = {**CHAT, "response_format": {"type": "json_object"}}
    out = json.loads(call(sim, "POST", "/v1/chat/completions", req)[2])
    assert json.loads(out["choices"][0]["message"]["content"]) == {"text": expected_text(8)}
    short = json.loads(call(sim, "POST", "/v1/chat/completions", {**req, "max_tokens": 1})[2])
    assert json.loads(short["choices"][0]["message"]["content"]) == {"text": "The"}
    events = sse(call(sim, "POST", "/v1/chat/completions", {**req, "stream": True})[2])
    text = "".join(json.loads(d)["choices"][0]["delta"].get("content", "")
                   for _, d in events[:-1])
    assert json.loads(text) == {"text": expected_text(8)} and len(events) == 8 + 2
    plain = json.loads(call(sim, "POST", "/v1/chat/completions",
                            {**CHAT, "response_format": {"type": "text"}})[2])
    assert plain["choices"][0]["message"]["content"] == expected_text(8)


def test_omit_done(sim: OllamaSimulator) -> None:
    chat = {**CHAT, "stream": True}
    comp = {"model": "llama3.2:3b", "prompt": "x", "stream": True}
    assert sse(call(sim, "POST", "/v1/chat/completions", chat)[2])[-1][1] == "[DONE]"
    sim.omit_done = True
    for path, req in (("/v1/chat/completions", chat), ("/v1/completions", comp)):
        events = sse(call(sim, "POST", path, req)[2])
        assert "[DONE]" not in [d for _, d in events]
        assert json.loads(events[-1][1])["choices"][0]["finish_reason"] == "stop"
    # per request, both ways
    on = call(sim, "POST", "/v1/chat/completions", chat, {"x-sim-omit-done": "0"})[2]
    assert sse(on)[-1][1] == "[DONE]"
    sim.omit_done = False
    off = call(sim, "POST", "/v1/chat/completions", chat, {"x-sim-omit-done": "1"})[2]
    assert "[DONE]" not in [d for _, d in sse(off)]


@pytest.mark.parametrize(("value", "header", "names"), [
    (True, None, ["message_start", "content_block_delta", "content_block_start",
                  "content_block_delta", "content_block_stop", "message_delta", "message_stop"]),
    ("stop-first", None, ["message_start", "content_block_start", "content_block_delta",
                          "content_block_delta", "content_block_stop", "message_stop",
                          "message_delta"]),
    (False, "delta-first", ["message_start", "content_block_delta", "content_block_start",
                            "content_block_delta", "content_block_stop", "message_delta",
                            "message_stop"]),
    (True, "0", ["message_start", "content_block_start", "content_block_delta",
                 "content_block_delta", "content_block_stop", "message_delta",
                 "message_stop"]),
])
def test_break_event_order(sim: OllamaSimulator, value: bool | str, header: str | None,
                           names: list[str]) -> None:
    sim.stream_chunks = 2
    sim.break_event_order = value
    headers = {"x-sim-break-event-order": header} if header is not None else None
    events = sse(call(sim, "POST", "/v1/messages", {**ANTHROPIC, "stream": True}, headers)[2])
    assert [n for n, _ in events] == names
    assert all(json.loads(d)["type"] == n for n, d in events)  # names still match the data
    assert json.loads(call(sim, "POST", "/v1/messages", ANTHROPIC)[2])["type"] == "message"


def test_tools_error_500_in_each_dialect(sim: OllamaSimulator) -> None:
    sim.tools_error_500 = True
    status, _, body = call(sim, "POST", "/v1/chat/completions", {**CHAT, "tools": OAI_TOOLS})
    assert status == 500 and json.loads(body)["error"]["type"] == "api_error"
    assert "simulated failure" in json.loads(body)["error"]["message"]
    status, _, body = call(sim, "POST", "/v1/messages", {**ANTHROPIC, "tools": ANT_TOOLS})
    out = json.loads(body)
    assert status == 500 and out["type"] == "error" and out["error"]["type"] == "api_error"
    status, _, body = call(sim, "POST", "/api/chat", {**CHAT, "tools": OAI_TOOLS})
    assert status == 500 and "simulated failure" in json.loads(body)["error"]
    # no tools, no failure; a model without tools still answers 400 first
    assert call(sim, "POST", "/v1/chat/completions", CHAT)[0] == 200
    assert call(sim, "POST", "/v1/messages", {**ANTHROPIC, "model": "gemma3:1b",
                                             "tools": ANT_TOOLS})[0] == 400
    assert call(sim, "POST", "/v1/messages", {**ANTHROPIC, "tools": ANT_TOOLS},
                {"x-sim-tools-error-500": "off"})[0] == 200
    sim.tools_error_500 = False
    assert call(sim, "POST", "/v1/messages", {**ANTHROPIC, "tools": ANT_TOOLS},
                {"x-sim-tools-error-500": "1"})[0] == 500


def test_system_mid_conversation_500(sim: OllamaSimulator) -> None:
    mid = {**ANTHROPIC, "messages": [{"role": "user", "content": "hi"},
                                     {"role": "assistant", "content": "hello"},
                                     {"role": "system", "content": "plan mode"},
                                     {"role": "user", "content": "go on"}]}
    assert call(sim, "POST", "/v1/messages", mid)[0] == 200  # off by default
    sim.system_mid_conversation_500 = True
    status, _, body = call(sim, "POST", "/v1/messages", {**mid, "stream": True})
    out = json.loads(body)
    assert status == 500 and out["type"] == "error" and out["error"]["type"] == "api_error"
    assert out["error"]["message"] == "system message must be at the beginning"
    # only a system message inside messages[] trips it; the top-level system is fine
    assert call(sim, "POST", "/v1/messages", {**ANTHROPIC, "system": "be brief"})[0] == 200
    assert call(sim, "POST", "/v1/messages", {**mid, "model": "nope"})[0] == 404
