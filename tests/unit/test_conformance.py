"""`ai-client test` core: the SSE parser and the stream/shape validators against recorded byte
sequences (good ones in Ollama v0.32's shapes, bad ones derived from them), then the suite
against the in-process Ollama simulator (directly, no gateway) with its contract switches."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest

from aiclient import cli_test
from aiclient.conformance import (
    CHECKS,
    SseParser,
    Status,
    SuiteResult,
    anthropic_error_problems,
    anthropic_message_problems,
    check_anthropic_stream,
    check_openai_stream,
    normalize_base_url,
    openai_completion_problems,
    parse_sse,
    run_suite,
)
from aicommon.errors import AiError, ExitCode
from tests.support.ollama_sim import DEFAULT_MODELS, OllamaSimulator

# --- recordings -------------------------------------------------------------------------------

OPENAI_GOOD = (
    b'data: {"id":"chatcmpl-391","object":"chat.completion.chunk","created":1790000000,'
    b'"model":"qwen3-coder:30b","system_fingerprint":"fp_ollama","choices":[{"index":0,'
    b'"delta":{"role":"assistant","content":"One"},"finish_reason":null}]}\n\n'
    b'data: {"id":"chatcmpl-391","object":"chat.completion.chunk","created":1790000000,'
    b'"model":"qwen3-coder:30b","system_fingerprint":"fp_ollama","choices":[{"index":0,'
    b'"delta":{"role":"assistant","content":", two"},"finish_reason":null}]}\n\n'
    b'data: {"id":"chatcmpl-391","object":"chat.completion.chunk","created":1790000000,'
    b'"model":"qwen3-coder:30b","system_fingerprint":"fp_ollama","choices":[{"index":0,'
    b'"delta":{},"finish_reason":"stop"}]}\n\n'
    b'data: {"id":"chatcmpl-391","object":"chat.completion.chunk","created":1790000000,'
    b'"model":"qwen3-coder:30b","system_fingerprint":"fp_ollama","choices":[],'
    b'"usage":{"prompt_tokens":14,"completion_tokens":2,"total_tokens":16}}\n\n'
    b"data: [DONE]\n\n"
)

OPENAI_TOOL = (
    b'data: {"id":"chatcmpl-7","object":"chat.completion.chunk","choices":[{"index":0,'
    b'"delta":{"role":"assistant","content":"","tool_calls":[{"id":"call_ab12cd34","index":0,'
    b'"type":"function","function":{"name":"get_weather","arguments":"{\\"city\\":"}}]},'
    b'"finish_reason":null}]}\n\n'
    b'data: {"id":"chatcmpl-7","object":"chat.completion.chunk","choices":[{"index":0,'
    b'"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\\"Paris\\"}"}}]},'
    b'"finish_reason":null}]}\n\n'
    b'data: {"id":"chatcmpl-7","object":"chat.completion.chunk","choices":[{"index":0,'
    b'"delta":{},"finish_reason":"tool_calls"}]}\n\n'
    b"data: [DONE]\n\n"
)

ANTHROPIC_GOOD = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":'
    b'"msg_0123456789abcdef01234567","type":"message","role":"assistant","model":'
    b'"qwen3-coder:30b","content":[],"stop_reason":null,"stop_sequence":null,"usage":'
    b'{"input_tokens":12,"output_tokens":0}}}\n\n'
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
    b'"content_block":{"type":"thinking","thinking":""}}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":'
    b'{"type":"thinking_delta","thinking":"Counting."}}\n\n'
    b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
    b'event: content_block_start\ndata: {"type":"content_block_start","index":1,'
    b'"content_block":{"type":"text","text":""}}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":1,"delta":'
    b'{"type":"text_delta","text":"One"}}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":1,"delta":'
    b'{"type":"text_delta","text":", two"}}\n\n'
    b'event: content_block_stop\ndata: {"type":"content_block_stop","index":1}\n\n'
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn",'
    b'"stop_sequence":null},"usage":{"input_tokens":12,"output_tokens":3}}\n\n'
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
)

ANTHROPIC_TOOL = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":'
    b'"msg_00000000000000000000aaaa","type":"message","role":"assistant","model":"m",'
    b'"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":30,'
    b'"output_tokens":0}}}\n\n'
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
    b'"content_block":{"type":"tool_use","id":"call_x1y2z3w4","name":"get_weather",'
    b'"input":{}}}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":'
    b'{"type":"input_json_delta","partial_json":"{\\"city\\":\\"Paris\\"}"}}\n\n'
    b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"tool_use",'
    b'"stop_sequence":null},"usage":{"input_tokens":30,"output_tokens":9}}\n\n'
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
)


def blocks(body: bytes) -> list[bytes]:
    return [b + b"\n\n" for b in body.split(b"\n\n") if b]


def swap(body: bytes, first: bytes, second: bytes) -> bytes:
    """Swap the first block starting with `first` and the next one starting with `second`."""
    parts = blocks(body)
    i = next(n for n, p in enumerate(parts) if p.startswith(first))
    j = next(n for n, p in enumerate(parts) if n > i and p.startswith(second))
    parts[i], parts[j] = parts[j], parts[i]
    return b"".join(parts)


def openai(body: bytes, include_usage: bool = True) -> list[str]:
    events, pending = parse_sse(body)
    return check_openai_stream(events, include_usage=include_usage, truncated=pending).problems


def anthropic(body: bytes) -> list[str]:
    events, pending = parse_sse(body)
    return check_anthropic_stream(events, truncated=pending).problems


# --- SSE parser -------------------------------------------------------------------------------


def test_parser_same_events_whatever_the_chunking() -> None:
    whole, pending = parse_sse(ANTHROPIC_GOOD)
    assert not pending and len(whole) == 10
    assert [e.event for e in whole][:2] == ["message_start", "content_block_start"]
    parser = SseParser()
    one_by_one = [ev for i in range(len(ANTHROPIC_GOOD))
                  for ev in parser.feed(ANTHROPIC_GOOD[i:i + 1], at=float(i))]
    assert [(e.event, e.data) for e in one_by_one] == [(e.event, e.data) for e in whole]
    assert one_by_one[0].at < one_by_one[-1].at  # arrival times are kept
    assert not parser.pending


def test_parser_crlf_comments_multiline_and_partial_utf8() -> None:
    body = ": keep-alive comment\r\nevent: x\r\ndata: line one\r\ndata:line two\r\n\r\n" \
           "data: caf\u00e9\n\n".encode()
    parser = SseParser()
    split = body.index(b"\xa9")  # inside the two-byte é
    events = parser.feed(body[:split]) + parser.feed(body[split:])
    assert [(e.event, e.data) for e in events] == [("x", "line one\nline two"), (None, "café")]
    assert events[0].lines == ("event: x", "data: line one", "data:line two")


def test_parser_reports_an_unfinished_event() -> None:
    events, pending = parse_sse(OPENAI_GOOD[:-1])  # the last blank line is missing
    assert pending and events[-1].data != "[DONE]"
    assert "the stream ended in the middle of an event" in openai(OPENAI_GOOD[:-1])


# --- OpenAI stream ----------------------------------------------------------------------------


def test_openai_good_stream() -> None:
    events, _ = parse_sse(OPENAI_GOOD)
    rep = check_openai_stream(events, include_usage=True)
    assert rep.problems == []
    assert (rep.text, rep.finish, rep.usage_tokens, rep.deltas) == ("One, two", "stop", 2, 2)


def test_openai_tool_call_stream_is_accumulated() -> None:
    events, _ = parse_sse(OPENAI_TOOL)
    rep = check_openai_stream(events, include_usage=False)
    assert rep.problems == [] and rep.finish == "tool_calls"
    call = rep.tool_calls[0]
    assert (call.id, call.name, call.arguments) == ("call_ab12cd34", "get_weather",
                                                    {"city": "Paris"})


@pytest.mark.parametrize(("body", "first_problem"), [
    (OPENAI_GOOD.replace(b"data: [DONE]\n\n", b""), "stream ended without data: [DONE]"),
    (OPENAI_GOOD.replace(b"data: [DONE]", b"data:[DONE]"), "the end marker is 'data:[DONE]'"),
    (OPENAI_GOOD + b'data: {"x":1}\n\n', "data after data: [DONE] (event 6)"),
    (OPENAI_GOOD.replace(b'"object":"chat.completion.chunk"', b'"object":"chat.completion"', 1),
     "chunk 1 has object 'chat.completion', not chat.completion.chunk"),
    (OPENAI_GOOD.replace(b'"role":"assistant",', b"", 1), "the first delta has no role assistant"),
    (OPENAI_GOOD.replace(b'"finish_reason":"stop"', b'"finish_reason":null'),
     "no chunk carried a finish_reason"),
    (b"".join(b for b in blocks(OPENAI_GOOD) if b'"usage"' not in b),
     "no usage chunk (choices: []) although stream_options.include_usage was set"),
    (swap(OPENAI_GOOD, b'data: {"id":"chatcmpl-391","object":"chat.completion.chunk",'
                       b'"created":1790000000,"model":"qwen3-coder:30b","system_fingerprint":'
                       b'"fp_ollama","choices":[{"index":0,"delta":{},',
          b'data: {"id":"chatcmpl-391","object":"chat.completion.chunk","created":1790000000,'
          b'"model":"qwen3-coder:30b","system_fingerprint":"fp_ollama","choices":[],'),
     "the usage chunk came before the finish_reason chunk"),
    (b'data: {"error":{"message":"server busy","type":"api_error"}}\n\n',
     "error in the stream: server busy"),
    (b"data: not json\n\n", "chunk 1 is not a JSON object: 'not json'"),
])
def test_openai_bad_streams(body: bytes, first_problem: str) -> None:
    problems = openai(body)
    assert problems and problems[0].startswith(first_problem), problems


def test_openai_usage_chunk_only_required_when_asked() -> None:
    no_usage = b"".join(b for b in blocks(OPENAI_GOOD) if b'"usage"' not in b)
    assert openai(no_usage, include_usage=False) == []


# --- Anthropic stream -------------------------------------------------------------------------


def test_anthropic_good_stream() -> None:
    events, _ = parse_sse(ANTHROPIC_GOOD)
    rep = check_anthropic_stream(events)
    assert rep.problems == []
    assert (rep.text, rep.finish, rep.usage_tokens) == ("One, two", "end_turn", 3)
    assert [b["type"] for b in rep.blocks] == ["thinking", "text"]
    assert rep.blocks[1]["text"] == "One, two" and rep.deltas == 3


def test_anthropic_tool_stream_rebuilds_the_tool_use_block() -> None:
    events, _ = parse_sse(ANTHROPIC_TOOL)
    rep = check_anthropic_stream(events)
    assert rep.problems == [] and rep.finish == "tool_use"
    assert rep.blocks == [{"type": "tool_use", "id": "call_x1y2z3w4", "name": "get_weather",
                           "input": {"city": "Paris"}}]
    assert rep.tool_calls[0].arguments == {"city": "Paris"}


def test_pings_are_allowed() -> None:
    ping = b'event: ping\ndata: {"type":"ping"}\n\n'
    parts = blocks(ANTHROPIC_GOOD)
    assert anthropic(parts[0] + ping + b"".join(parts[1:])) == []


@pytest.mark.parametrize(("body", "first_problem"), [
    (swap(ANTHROPIC_GOOD, b"event: content_block_start", b"event: content_block_delta"),
     "event content_block_delta before content_block_start"),
    (swap(ANTHROPIC_GOOD, b"event: message_delta", b"event: message_stop"),
     "event message_stop before message_delta"),
    (swap(ANTHROPIC_GOOD, b"event: message_start", b"event: content_block_start"),
     "event content_block_start before message_start"),
    (swap(ANTHROPIC_GOOD, b"event: content_block_stop", b"event: content_block_start"),
     "event content_block_start before content_block_stop of block 0"),
    (swap(ANTHROPIC_GOOD, b'event: content_block_stop\ndata: {"type":"content_block_stop",'
                          b'"index":1}', b"event: message_delta"),
     "event message_delta before content_block_stop"),
    (ANTHROPIC_GOOD.replace(b"event: message_stop", b"event: message_end"),
     "event message_end carries data of type 'message_stop'"),
    (b"".join(blocks(ANTHROPIC_GOOD)[:-1]), "stream ended before message_stop"),
    (ANTHROPIC_GOOD.replace(b'"type":"text_delta"', b'"type":"input_json_delta"', 1),
     "input_json_delta in a text block"),
    (b"".join(p for p in blocks(ANTHROPIC_GOOD) if b"thinking_delta" not in p),
     "content block 0 (thinking) had no content_block_delta"),
    (ANTHROPIC_GOOD.replace(b'"index":1,"content_block"', b'"index":5,"content_block"'),
     "content_block_start has index 5, expected 1"),
    (ANTHROPIC_GOOD + b'event: ping\ndata: {"type":"ping"}\n\n', "event ping after message_stop"),
    (blocks(ANTHROPIC_GOOD)[0] + b'event: error\ndata: {"type":"error","error":{"type":'
                                 b'"overloaded_error","message":"Overloaded"}}\n\n',
     "error event in the stream: Overloaded"),
    (ANTHROPIC_TOOL.replace(b'"partial_json":"{', b'"partial_json":"{{'),
     "tool_use input is not a JSON object"),
    (ANTHROPIC_GOOD.replace(b'"stop_reason":"end_turn"', b'"stop_reason":null'),
     "message_delta stop_reason None"),
    (ANTHROPIC_GOOD.replace(b'"id":"msg_', b'"id":"chatcmpl_'),
     "message_start id 'chatcmpl_"),
    (b"data: {}\n\n", "data of type None without an event: line"),
])
def test_anthropic_bad_streams(body: bytes, first_problem: str) -> None:
    problems = anthropic(body)
    assert problems and problems[0].startswith(first_problem), problems


# --- non-streamed shapes ----------------------------------------------------------------------

COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-123", "object": "chat.completion", "created": 1, "model": "m",
    "system_fingerprint": "fp_ollama",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
}
MESSAGE: dict[str, Any] = {
    "id": "msg_0123456789abcdef01234567", "type": "message", "role": "assistant", "model": "m",
    "content": [{"type": "text", "text": "Hi"}], "stop_reason": "end_turn",
    "usage": {"input_tokens": 1234, "output_tokens": 56},
}


def test_good_shapes_have_no_problems() -> None:
    assert openai_completion_problems(COMPLETION) == []
    tool = json.loads(json.dumps(COMPLETION))
    tool["choices"][0]["message"] = {"role": "assistant", "content": None, "tool_calls": [{}]}
    tool["choices"][0]["finish_reason"] = "tool_calls"
    assert openai_completion_problems(tool) == []
    assert anthropic_message_problems(MESSAGE) == []
    err = {"type": "error", "error": {"type": "not_found_error", "message": "model 'x' not found"},
           "request_id": "req_0"}
    assert anthropic_error_problems(404, err) == []


def test_bad_shapes_are_named() -> None:
    assert openai_completion_problems([]) == ["the body is not a JSON object"]
    bad = {**COMPLETION, "object": "text_completion", "usage": {"prompt_tokens": 1}}
    assert openai_completion_problems(bad) == [
        "object is 'text_completion', not chat.completion",
        "usage lacks completion_tokens, total_tokens"]
    # an empty content list is an empty answer, legal (test_conformance_shapes)
    assert anthropic_message_problems({**MESSAGE, "id": "chatcmpl-1", "content": []}) == [
        "id 'chatcmpl-1' does not start with msg_"]
    assert anthropic_message_problems({**MESSAGE, "stop_reason": "stop"}) == [
        "stop_reason is 'stop'"]
    openai_style = {"error": {"message": "model 'x' not found", "type": "not_found_error"}}
    assert anthropic_error_problems(404, openai_style) == ["type is None, not error"]
    gateway = {"type": "error", "error": {"type": "permission_error", "code": "not_exposed"}}
    assert anthropic_error_problems(403, gateway) == [
        "HTTP 403, expected 404", "error.type is 'permission_error', not not_found_error",
        "error.message is not a string"]
    assert anthropic_error_problems(400, None)[0] == "HTTP 400, expected 404"


# --- addresses, target, rendering -------------------------------------------------------------


@pytest.mark.parametrize(("given", "base"), [
    ("studio.tail1234.ts.net", "http://studio.tail1234.ts.net:11434"),
    ("100.64.0.7:8080", "http://100.64.0.7:8080"),
    ("http://127.0.0.1:9/", "http://127.0.0.1:9"),
    ("http://box:11434/v1", "http://box:11434"),
    ("https://gw.example/ollama/v1/", "https://gw.example/ollama"),
    ("[fd7a:115c::1]:11434", "http://[fd7a:115c::1]:11434"),
])
def test_normalize_base_url(given: str, base: str) -> None:
    assert normalize_base_url(given) == base


@pytest.mark.parametrize("bad", ["", "ftp://x", "http://", "http://x:notaport", "http://x/?q=1"])
def test_normalize_base_url_refuses(bad: str) -> None:
    with pytest.raises(AiError) as err:
        normalize_base_url(bad)
    assert err.value.code == "test.bad_server"


def test_target_from_options_ignores_settings(tmp_path: Path) -> None:
    target = cli_test.resolve_target(tmp_path / "missing.toml", "127.0.0.1:9", None, None)
    assert (target.base_url, target.api_key, target.model) == ("127.0.0.1:9", "ollama", None)
    target = cli_test.resolve_target(None, "h", "tok", "m:1")
    assert (target.api_key, target.model) == ("tok", "m:1")


def test_target_without_server_needs_settings(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AiError) as err:  # the settings module exists, the file does not
        cli_test.resolve_target(tmp_path / "missing.toml", None, None, None)
    assert err.value.exit_code == ExitCode.CONFIG
    monkeypatch.setitem(__import__("sys").modules, "aiclient.settings", None)  # not built yet
    with pytest.raises(click.UsageError, match="--server is required"):
        cli_test.resolve_target(None, None, None, None)


def test_render_lists_checks_figures_and_verdict() -> None:
    from aiclient.conformance import CheckResult, Performance

    result = SuiteResult("http://gw:11434", "m:1", ("completion",), False, [
        CheckResult("openai.chat", "t", Status.PASS, "fine", 0.1),
        CheckResult("openai.tool_call", "t", Status.SKIP, "m:1 lacks the 'tools' capability", 0),
        CheckResult("anthropic.stream", "t", Status.FAIL, "event x before y", 0.2),
    ], [Performance("openai", 0.25, 64, 41.57, 1.8), Performance("anthropic", None, 0, None, 0,
                                                                "HTTP 500")])
    text = cli_test.render(result.as_dict())
    assert "openai.tool_call" in text and "SKIP" in text and "event x before y" in text
    assert "0.25 s" in text and "41.6" in text and "HTTP 500" in text
    assert text.splitlines()[-1] == "FAILED: 1 passed, 1 failed, 1 skipped"
    assert not result.ok and result.counts() == {"pass": 1, "fail": 1, "skip": 1}


# --- the suite against the simulator (no gateway: the admin route is open, so it FAILs) -------


@pytest.fixture
def sim() -> Any:
    with OllamaSimulator() as s:
        yield s


def statuses(result: SuiteResult) -> dict[str, tuple[Status, str]]:
    return {c.name: (c.status, c.detail) for c in result.checks}


def test_suite_against_ollama_itself(sim: OllamaSimulator) -> None:
    lines: list[str] = []
    result = run_suite(sim.url, "ollama", None, False, progress=lines.append)
    got = statuses(result)
    assert list(got) == [c.name for c in CHECKS]
    assert result.model == "qwen3-coder:30b" and result.capabilities == ("completion", "tools")
    assert got.pop("gateway.admin_refused") == (
        Status.FAIL, "POST /api/pull answered HTTP 400: the admin route reaches Ollama")
    assert {s for s, _ in got.values()} == {Status.PASS}, got
    assert len(lines) == len(CHECKS) and lines[0].startswith("PASS  openai.models")
    assert [p.api for p in result.performance] == ["openai", "anthropic"]
    assert all(p.ttft_s is not None and p.tokens == 8 for p in result.performance)
    # what went over the wire looks like Claude Code
    msgs = [r for r in sim.requests if r.path == "/v1/messages"]
    assert msgs and all(r.target == "/v1/messages?beta=true" for r in msgs)
    assert all(r.header("anthropic-version") == "2023-06-01" and r.header("x-api-key") == "ollama"
               and r.header("authorization") == "Bearer ollama" for r in msgs)
    assert any(r.json().get("stream") is True for r in msgs)


def test_quick_is_a_subset(sim: OllamaSimulator) -> None:
    quick = run_suite(sim.url, "k", None, True)
    names = [c.name for c in quick.checks]
    assert names == ["openai.models", "openai.model", "openai.chat", "openai.stream",
                     "anthropic.message", "anthropic.stream", "gateway.admin_refused"]
    assert quick.quick and len(quick.performance) == 2


def test_model_without_tools_skips_tool_checks(sim: OllamaSimulator) -> None:
    got = statuses(run_suite(sim.url, "k", "gemma3:1b", False))
    for name in ("openai.tool_call", "anthropic.tool_use"):
        status, detail = got[name]
        assert status == Status.SKIP
        assert detail == "gemma3:1b lacks the 'tools' capability (POST /api/show lists: completion)"
    assert got["openai.chat"][0] == Status.PASS


def test_embedding_model_skips_chat_checks(sim: OllamaSimulator) -> None:
    got = statuses(run_suite(sim.url, "k", "nomic-embed-text", True))
    assert got["openai.chat"] == (Status.SKIP, "nomic-embed-text lacks the 'completion' "
                                               "capability (POST /api/show lists: embedding)")


def test_first_tools_model_is_chosen() -> None:
    by_name = {m.name: m for m in DEFAULT_MODELS}
    models = [by_name["nomic-embed-text:latest"], by_name["gemma3:1b"], by_name["llama3.2:3b"]]
    with OllamaSimulator(models=models) as s:
        assert run_suite(s.url, "k", None, True).model == "llama3.2:3b"  # first with tools
    with OllamaSimulator(models=models[:2]) as s:
        assert run_suite(s.url, "k", None, True).model == "gemma3:1b"  # no tools model: chat
    with OllamaSimulator(models=[]) as s, pytest.raises(AiError, match="no chat model"):
        run_suite(s.url, "k", None, True)


def test_unknown_model_is_one_error(sim: OllamaSimulator) -> None:
    with pytest.raises(AiError) as err:
        run_suite(sim.url, "k", "ghost:1b", True)
    assert err.value.message == "model 'ghost:1b' is not on the server"
    assert "qwen3-coder:30b" in str(err.value.hint)


@pytest.mark.parametrize(("switch", "value", "check", "detail"), [
    ("break_event_order", True, "anthropic.stream",
     "event content_block_delta before content_block_start"),
    ("break_event_order", "stop-first", "anthropic.stream",
     "event message_stop before message_delta"),
    ("omit_done", True, "openai.stream", "stream ended without data: [DONE]"),
    ("tools_error_500", True, "openai.tool_call", "HTTP 500 with tools: simulated failure"),
    ("tools_error_500", True, "anthropic.tool_use", "HTTP 500 with tools: simulated failure"),
])
def test_switches_fail_the_named_check(sim: OllamaSimulator, switch: str, value: object,
                                       check: str, detail: str) -> None:
    setattr(sim, switch, value)
    got = statuses(run_suite(sim.url, "k", None, False))
    status, text = got[check]
    assert status == Status.FAIL and text.startswith(detail), text
    assert got["openai.chat"][0] == Status.PASS  # the rest still passes


def test_broken_streams_and_json_mode(sim: OllamaSimulator) -> None:
    sim.close_after_chunks = 3
    got = statuses(run_suite(sim.url, "k", None, False))
    assert got["openai.stream"][0] == Status.FAIL
    assert got["openai.stream"][1].startswith("the connection broke mid-stream")
    assert got["anthropic.stream"][1].startswith("the connection broke mid-stream")
    assert got["openai.json_mode"] == (Status.PASS, "content parses as a JSON object")


def test_unreachable_is_one_line() -> None:
    from tests.support.gatewayproc import free_port

    with pytest.raises(AiError) as err:
        run_suite(f"127.0.0.1:{free_port()}", "k", None, True)
    assert err.value.exit_code == ExitCode.UNAVAILABLE
    assert err.value.message.startswith("cannot reach http://127.0.0.1:")
    assert "\n" not in err.value.one_line()


def test_status_details_name_the_likely_cause() -> None:
    from aiclient.conformance import _status_detail

    assert _status_detail(404, b"404 page not found") == (
        "HTTP 404: 404 page not found; the route is missing: Ollama too old? "
        "(/v1/messages needs 0.14.0+)")
    gateway_403 = json.dumps({"type": "error", "error": {
        "type": "permission_error", "code": "not_exposed", "message": "not exposed"}}).encode()
    assert _status_detail(403, gateway_403, " with tools") == (
        "HTTP 403 with tools on a route the gateway allows: not this gateway, or its profile "
        "does not expose the route (not exposed (not_exposed))")
    assert _status_detail(401, b"").startswith("HTTP 401: the token was refused")
    assert _status_detail(503, b'{"error":"server busy"}') == "HTTP 503: server busy"
