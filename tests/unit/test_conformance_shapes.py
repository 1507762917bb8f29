"""`ai-client test` accepts every shape Ollama legally sends and still fails the illegal ones.

Legal shapes come from the simulator, which follows anthropic.go / openai.go (thinking first,
text before tool_use, several tool calls, an empty answer); illegal ones are edited from them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from aiclient.conformance import (
    Status,
    anthropic_message_problems,
    check_anthropic_stream,
    check_openai_stream,
    parse_sse,
    run_suite,
)
from tests.support.ollama_sim import DEFAULT_MODELS, OllamaSimulator, SimModel
from tests.unit.test_ollama_sim import ANTHROPIC, CHAT, call

THINKER = SimModel("qwen3:8b", arch="qwen3", context_length=40960,
                   capabilities=("completion", "tools", "thinking"))
TOOLS = [{"name": "get_weather", "input_schema": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
TWO_CALLS = 'get_weather {"city": "Paris"} then get_weather {"city": "Rome"}'


@pytest.fixture()
def sim() -> Iterator[OllamaSimulator]:
    with OllamaSimulator(models=[*DEFAULT_MODELS, THINKER]) as s:
        yield s


def anthropic_stream(sim: OllamaSimulator, body: dict[str, Any], **headers: str) -> bytes:
    status, _, payload = call(sim, "POST", "/v1/messages", {**body, "stream": True},
                              {k.replace("_", "-"): v for k, v in headers.items()})
    assert status == 200
    return payload


@pytest.mark.parametrize(("body", "headers", "blocks", "finish"), [
    ({**ANTHROPIC, "model": THINKER.name}, {}, ["thinking", "text"], "end_turn"),
    ({**ANTHROPIC, "model": THINKER.name, "tools": TOOLS,
      "messages": [{"role": "user", "content": TWO_CALLS}]},
     {"x_sim_text_before_tools": "1"}, ["thinking", "text", "tool_use", "tool_use"], "tool_use"),
    ({**ANTHROPIC, "tools": TOOLS, "messages": [{"role": "user", "content": TWO_CALLS}]},
     {}, ["tool_use", "tool_use"], "tool_use"),
    (ANTHROPIC, {"x_sim_chunks": "0"}, [], "end_turn"),
])
def test_legal_anthropic_streams_pass(sim: OllamaSimulator, body: dict[str, Any],
                                      headers: dict[str, str], blocks: list[str],
                                      finish: str) -> None:
    events, truncated = parse_sse(anthropic_stream(sim, body, **headers))
    rep = check_anthropic_stream(events, truncated=truncated)
    assert rep.problems == []
    assert [b["type"] for b in rep.blocks] == blocks and rep.finish == finish
    if finish == "tool_use":
        assert [c.arguments for c in rep.tool_calls][-2:] == [{"city": "Paris"},
                                                              {"city": "Rome"}]


@pytest.mark.parametrize(("body", "headers"), [
    ({**ANTHROPIC, "model": THINKER.name}, {}),
    ({**ANTHROPIC, "model": THINKER.name, "tools": TOOLS,
      "messages": [{"role": "user", "content": TWO_CALLS}]}, {"x_sim_text_before_tools": "1"}),
    (ANTHROPIC, {"x_sim_chunks": "0"}),
])
def test_legal_anthropic_messages_pass(sim: OllamaSimulator, body: dict[str, Any],
                                       headers: dict[str, str]) -> None:
    status, _, payload = call(sim, "POST", "/v1/messages", body,
                              {k.replace("_", "-"): v for k, v in headers.items()})
    assert status == 200 and anthropic_message_problems(json.loads(payload)) == []


def _edit_events(payload: bytes, edit: Any) -> bytes:
    out = []
    for block in payload.decode().split("\n\n"):
        if not block.strip():
            continue
        _, data = block.split("\n", 1)
        obj = json.loads(data.removeprefix("data: "))
        obj = edit(obj)
        if obj is not None:
            out.append(f"event: {obj['type']}\ndata: {json.dumps(obj)}\n\n")
    return "".join(out).encode()


def test_illegal_anthropic_shapes_fail(sim: OllamaSimulator) -> None:
    tool_body = {**ANTHROPIC, "tools": TOOLS,
                 "messages": [{"role": "user", "content": TWO_CALLS}]}

    def end_turn(obj: dict[str, Any]) -> dict[str, Any]:
        if obj["type"] == "message_delta":
            obj["delta"]["stop_reason"] = "end_turn"
        return obj

    events, _ = parse_sse(_edit_events(anthropic_stream(sim, tool_body), end_turn))
    assert check_anthropic_stream(events).problems == [
        "stop_reason 'end_turn' with 2 tool_use block(s)"]

    def unclosed(obj: dict[str, Any]) -> dict[str, Any] | None:
        # Ollama < 0.18.0: thinking block not closed before tool_use
        return None if obj["type"] == "content_block_stop" and obj["index"] == 0 else obj

    events, _ = parse_sse(_edit_events(anthropic_stream(
        sim, {**tool_body, "model": THINKER.name}), unclosed))
    assert any("before content_block_stop" in p for p in check_anthropic_stream(events).problems)

    _, _, payload = call(sim, "POST", "/v1/messages", tool_body)
    good = json.loads(payload)
    assert anthropic_message_problems({**good, "stop_reason": "end_turn"}) == [
        "stop_reason 'end_turn' with 2 tool_use block(s)"]
    assert anthropic_message_problems({**good, "content": "text"}) == [
        "content is str, not a list of blocks", "stop_reason 'tool_use' with 0 tool_use block(s)"]
    assert anthropic_message_problems({**good, "content": [{"text": "x"}]})[0] == \
        "a content block without a type"


def test_openai_stream_with_reasoning_and_role_once_passes(sim: OllamaSimulator) -> None:
    status, _, payload = call(sim, "POST", "/v1/chat/completions",
                              {**CHAT, "model": THINKER.name, "stream": True,
                               "stream_options": {"include_usage": True}})
    events, truncated = parse_sse(payload)
    rep = check_openai_stream(events, include_usage=True, truncated=truncated)
    assert status == 200 and rep.problems == [] and rep.text


def test_whole_suite_passes_a_thinking_model_that_talks_before_its_tool_calls(
        sim: OllamaSimulator) -> None:
    sim.text_before_tools = True
    result = run_suite(sim.url, "ollama", THINKER.name, False)
    got = {c.name: (c.status, c.detail) for c in result.checks}
    got.pop("gateway.admin_refused")  # the simulator is Ollama itself, not a gateway
    assert {s for s, _ in got.values()} == {Status.PASS}, got
