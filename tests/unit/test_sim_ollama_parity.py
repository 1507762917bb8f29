"""The simulator answers as Ollama's Go source does (v0.33.0-rc2; file:line in each test).

Each test names one behaviour found by comparing the simulator with server/routes.go,
anthropic/anthropic.go, openai/openai.go and middleware/ line by line (issue 14 §2).
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import realclients
from tests.support.ollama_sim import OllamaSimulator, SimModel
from tests.unit.test_ollama_sim import ANTHROPIC, CHAT, call, sse

THINKER = SimModel("qwen3:8b", arch="qwen3", context_length=40960,
                   capabilities=("completion", "tools", "thinking"))
TOOLS = [{"name": "Read", "description": "read a file",
          "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}},
                           "required": ["file_path"]}},
         {"name": "Bash", "input_schema": {"type": "object",
                                           "properties": {"command": {"type": "string"}}}}]
OAI_TOOLS = [{"type": "function", "function": {"name": t["name"],
                                                "parameters": t["input_schema"]}}
             for t in TOOLS]


@pytest.fixture()
def sim() -> Iterator[OllamaSimulator]:
    with OllamaSimulator(models=[SimModel("qwen3-coder:30b", arch="qwen3moe",
                                          context_length=262144),
                                 SimModel("llama3.2:3b", context_length=131072),
                                 THINKER]) as s:
        yield s


def events(body: bytes) -> list[tuple[str, dict[str, Any]]]:
    return [(name or "", json.loads(data)) for name, data in sse(body)]


def anthropic(sim: OllamaSimulator, body: dict[str, Any], **headers: str
              ) -> tuple[int, Any]:
    status, _, payload = call(sim, "POST", "/v1/messages?beta=true", body,
                              {k.replace("_", "-"): v for k, v in headers.items()})
    if body.get("stream") and status == 200:
        return status, events(payload)
    return status, json.loads(payload)


# --- tool decisions ---------------------------------------------------------------------------

def test_tool_decision_skips_a_trailing_system_message(sim: OllamaSimulator) -> None:
    # Claude Code >= 2.1.3xx ends messages[] with a role:"system" reminder (REFERENCE 2.6).
    body = {**ANTHROPIC, "tools": TOOLS, "messages": [
        {"role": "user", "content": "please use Read now"},
        {"role": "system", "content": "<system-reminder>be brief</system-reminder>"}]}
    status, out = anthropic(sim, body)
    assert status == 200 and out["stop_reason"] == "tool_use"
    assert [b["type"] for b in out["content"]] == ["tool_use"]
    assert out["content"][0]["name"] == "Read"


def test_tool_names_in_reminder_blocks_do_not_trigger_calls(sim: OllamaSimulator) -> None:
    body = {**ANTHROPIC, "tools": TOOLS, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "<system-reminder>Bash and Read exist</system-reminder>"},
        {"type": "text", "text": "hello"}]}]}
    status, out = anthropic(sim, body)
    assert status == 200 and out["stop_reason"] == "end_turn"
    assert [b["type"] for b in out["content"]] == ["text"]


# --- Anthropic shapes -------------------------------------------------------------------------

def test_thinking_model_thinks_by_default(sim: OllamaSimulator) -> None:
    # routes.go ChatHandler: a thinking-capable model with Think unset gets Think=true;
    # anthropic.go ToMessagesResponse puts the thinking block first.
    status, out = anthropic(sim, {**ANTHROPIC, "model": THINKER.name})
    assert status == 200 and [b["type"] for b in out["content"]] == ["thinking", "text"]
    assert out["content"][0]["thinking"]
    status, evs = anthropic(sim, {**ANTHROPIC, "model": THINKER.name, "stream": True})
    starts = [e["content_block"]["type"] for n, e in evs if n == "content_block_start"]
    assert starts == ["thinking", "text"]
    kinds = {e["index"]: e["delta"]["type"] for n, e in evs if n == "content_block_delta"}
    assert kinds == {0: "thinking_delta", 1: "text_delta"}
    # thinking: disabled turns it off; a model without the capability never thinks
    status, out = anthropic(sim, {**ANTHROPIC, "model": THINKER.name,
                                  "thinking": {"type": "disabled"}})
    assert [b["type"] for b in out["content"]] == ["text"]
    status, out = anthropic(sim, {**ANTHROPIC, "thinking": {"type": "enabled",
                                                            "budget_tokens": 1024}})
    assert status == 200 and [b["type"] for b in out["content"]] == ["text"]


def test_native_chat_thinks_by_default_on_thinking_models(sim: OllamaSimulator) -> None:
    body = {**CHAT, "model": THINKER.name, "stream": False}
    out = json.loads(call(sim, "POST", "/api/chat", body)[2])
    assert out["message"]["thinking"] and out["message"]["content"]
    out = json.loads(call(sim, "POST", "/api/chat", {**body, "think": False})[2])
    assert "thinking" not in out["message"]
    lines = [json.loads(x) for x in call(sim, "POST", "/api/chat",
                                         {**body, "stream": True})[2].splitlines()]
    assert lines[0]["message"]["thinking"] and lines[0]["message"]["content"] == ""


def test_text_may_precede_tool_use_and_calls_may_be_parallel(sim: OllamaSimulator) -> None:
    ask = ('Read {"file_path": "/a"} and Bash {"command": "ls"} and '
           'Read {"file_path": "/b"}')
    body = {**ANTHROPIC, "model": THINKER.name, "tools": TOOLS,
            "messages": [{"role": "user", "content": ask}]}
    status, out = anthropic(sim, body, x_sim_text_before_tools="1")
    assert status == 200 and out["stop_reason"] == "tool_use"
    assert [b["type"] for b in out["content"]] == ["thinking", "text", "tool_use", "tool_use",
                                                    "tool_use"]
    assert [(b["name"], b["input"]) for b in out["content"][2:]] == [
        ("Read", {"file_path": "/a"}), ("Bash", {"command": "ls"}), ("Read", {"file_path": "/b"})]
    status, evs = anthropic(sim, {**body, "stream": True}, x_sim_text_before_tools="1")
    names = [n for n, _ in evs]
    starts = [(e["index"], e["content_block"]["type"]) for n, e in evs
              if n == "content_block_start"]
    assert starts == [(0, "thinking"), (1, "text"), (2, "tool_use"), (3, "tool_use"),
                      (4, "tool_use")]
    # every block is closed before the next one starts (anthropic.go StreamConverter)
    open_index = None
    for name, e in evs:
        if name == "content_block_start":
            assert open_index is None
            open_index = e["index"]
        elif name == "content_block_stop":
            assert e["index"] == open_index
            open_index = None
    json_deltas = [e for n, e in evs if n == "content_block_delta"
                   and e["delta"]["type"] == "input_json_delta"]
    assert [json.loads(e["delta"]["partial_json"]) for e in json_deltas] == [
        {"file_path": "/a"}, {"command": "ls"}, {"file_path": "/b"}]
    assert names[-2:] == ["message_delta", "message_stop"]


def test_empty_generation_has_no_content_block(sim: OllamaSimulator) -> None:
    # anthropic.go ToMessagesResponse: a nil content slice marshals as null;
    # StreamConverter opens no block when nothing was generated.
    status, out = anthropic(sim, ANTHROPIC, x_sim_chunks="0")
    assert status == 200 and out["content"] is None and out["stop_reason"] == "end_turn"
    status, evs = anthropic(sim, {**ANTHROPIC, "stream": True}, x_sim_chunks="0")
    assert [n for n, _ in evs] == ["message_start", "message_delta", "message_stop"]


def test_stop_reason_and_stop_sequence_omitted_when_empty(sim: OllamaSimulator) -> None:
    # anthropic.go MessagesResponse/MessageDelta: `json:"stop_reason,omitempty"`.
    status, out = anthropic(sim, ANTHROPIC)
    assert status == 200
    assert "stop_sequence" not in out and out["stop_reason"] == "end_turn"
    _, evs = anthropic(sim, {**ANTHROPIC, "stream": True})
    start = evs[0][1]["message"]
    assert "stop_reason" not in start and "stop_sequence" not in start
    delta = next(e for n, e in evs if n == "message_delta")["delta"]
    assert delta == {"stop_reason": "end_turn"}


def test_empty_messages_is_a_400(sim: OllamaSimulator) -> None:
    # middleware/anthropic.go and middleware/openai.go check before the model lookup.
    status, out = anthropic(sim, {**ANTHROPIC, "model": "nope", "messages": []})
    assert status == 400 and out["error"]["message"] == "messages is required"
    status, _, payload = call(sim, "POST", "/v1/chat/completions",
                              {"model": "nope", "messages": []})
    assert status == 400
    assert json.loads(payload)["error"]["message"] == "[] is too short - 'messages'"


# --- OpenAI shapes ----------------------------------------------------------------------------

def test_openai_stream_sends_role_only_in_the_first_delta(sim: OllamaSimulator) -> None:
    # openai.go ToStreamChunks(includeRole) / middleware firstChunkSent.
    status, _, payload = call(sim, "POST", "/v1/chat/completions",
                              {**CHAT, "model": THINKER.name, "stream": True})
    chunks = [json.loads(d) for _, d in sse(payload) if d != "[DONE]"]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert status == 200 and deltas[0]["role"] == "assistant"
    assert all("role" not in d for d in deltas[1:])
    assert deltas[0].get("reasoning") and deltas[-1] == {}
    assert any(d.get("content") for d in deltas)


def test_openai_parallel_tool_calls(sim: OllamaSimulator) -> None:
    body = {**CHAT, "tools": OAI_TOOLS, "messages": [
        {"role": "user", "content": 'Read {"file_path": "/a"} Bash {"command": "ls"}'}]}
    status, _, payload = call(sim, "POST", "/v1/chat/completions", body)
    choice = json.loads(payload)["choices"][0]
    assert status == 200 and choice["finish_reason"] == "tool_calls"
    calls = choice["message"]["tool_calls"]
    assert [(c["index"], c["function"]["name"]) for c in calls] == [(0, "Read"), (1, "Bash")]


# --- routing, Host, cloud ---------------------------------------------------------------------

@pytest.mark.parametrize(("method", "target", "location"), [
    ("POST", "//api/chat", "/api/chat"),
    ("GET", "/api/./tags", "/api/tags"),
    ("GET", "/api/../api/tags?x=1", "/api/tags?x=1"),
    ("POST", "/v1/../api/chat", "/api/chat"),
])
def test_unclean_paths_redirect_to_the_cleaned_path(sim: OllamaSimulator, method: str,
                                                    target: str, location: str) -> None:
    # routes.go Serve: http.Handle("/", h) — Go's ServeMux redirects (301) before gin.
    status, headers, body = call(sim, method, target, CHAT if method == "POST" else None)
    assert (status, headers["location"]) == (301, location)
    assert (body != b"") == (method == "GET")


def test_keep_alive_countdown_restarts_after_every_request(sim: OllamaSimulator) -> None:
    # sched.go: the session duration sticks to the runner; the expire timer restarts when
    # the last request using it finishes.
    call(sim, "POST", "/api/generate", {"model": "llama3.2:3b", "keep_alive": "10m"})

    def expires() -> float:
        ps = json.loads(call(sim, "GET", "/api/ps")[2])["models"]
        return dt.datetime.fromisoformat(ps[0]["expires_at"]).timestamp()

    first = expires()
    time.sleep(1.1)
    call(sim, "POST", "/v1/chat/completions", CHAT)  # no keep_alive on this route
    second = expires()
    assert second >= first + 1  # restarted, and still 10 minutes (not the 5m default)
    assert abs(second - (time.time() + 600)) < 5


@pytest.mark.parametrize(("vram", "context"), [(16, 4096), (24, 32768), (64, 131072),
                                               (512, 131072)])
def test_default_context_follows_vram_capped_at_trained(vram: float, context: int) -> None:
    # routes.go Serve: >= 47 GiB 262144, >= 23 GiB 32768, else 4096; capped by the model.
    with OllamaSimulator() as s:
        s.total_vram_gib = vram
        call(s, "POST", "/api/generate", {"model": "llama3.2:3b"})
        assert s.loaded_models()["llama3.2:3b"] == context


def test_default_context_respects_ollama_context_length() -> None:
    with OllamaSimulator() as s:
        s.total_vram_gib = 512
        s.default_context_length = 8192
        call(s, "POST", "/api/generate", {"model": "qwen3-coder:30b"})
        assert s.loaded_models()["qwen3-coder:30b"] == 8192


def test_model_recommendations_route_exists(sim: OllamaSimulator) -> None:
    status, _, body = call(sim, "GET", "/api/experimental/model-recommendations")
    recs = json.loads(body)["recommendations"]
    assert status == 200 and recs and all(r["model"].endswith(":cloud") for r in recs)
    assert call(sim, "POST", "/api/experimental/model-recommendations")[0] == 405


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/v1/chat/completions", {**CHAT, "model": "gpt-oss:20b:cloud"}),
    ("POST", "/v1/messages", {**ANTHROPIC, "model": "kimi-k2.6:cloud"}),
    ("POST", "/v1/embeddings", {"model": "qwen3:480b-cloud", "input": "x"}),
    ("POST", "/v1/responses", {"model": "glm-5.1:cloud", "input": "x"}),
    ("GET", "/v1/models/glm-5.1:cloud", None),
])
def test_cloud_names_refused_when_cloud_is_disabled(sim: OllamaSimulator, method: str,
                                                    path: str, body: Any) -> None:
    # server/cloud_proxy.go proxyCloudRequestWithPath: 403 {"error": DisabledError(op)}.
    status, _, payload = call(sim, method, path, body)
    assert status == 403
    message = json.loads(payload)["error"]
    assert isinstance(message, str) and message.startswith("ollama cloud is disabled: ")


def test_machine_interface_ips_pass_the_host_check() -> None:
    # routes.go allowedHostsMiddleware: IsLoopback || IsPrivate || IsUnspecified || isLocalIP.
    with realclients.loopback_only():
        # the namespace's own interface gets the machine's tailnet address
        subprocess.run(["ip", "addr", "add", "100.101.102.103/32", "dev", "lo"], check=True)
        with OllamaSimulator() as s:
            own = call(s, "GET", "/api/version", headers={"Host": "100.101.102.103:11434"})
            other = call(s, "GET", "/api/version", headers={"Host": "100.101.102.104:11434"})
    assert own[0] == 200 and other[0] == 403
