"""The wire contracts of REFERENCE §1.3/§1.4 as pure validators: streams (event order,
deltas, finish) and non-streamed shapes. They accept every shape Ollama legally sends (thinking
first, text before tool_use, several tool calls, an empty answer) and name what is illegal."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiclient.conformance.sse import SseEvent

STOP_REASONS = ("end_turn", "max_tokens", "tool_use", "stop_sequence")
FINISH_REASONS = ("stop", "length", "tool_calls")


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: Any  # parsed JSON (None when it did not parse)
    raw: str = ""


@dataclass
class StreamReport:
    problems: list[str] = field(default_factory=list)
    text: str = ""
    deltas: int = 0  # generated pieces (text, reasoning/thinking, tool input)
    first_delta_at: float | None = None
    last_delta_at: float | None = None
    finish: str | None = None  # OpenAI finish_reason / Anthropic stop_reason
    usage_tokens: int | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    blocks: list[dict[str, Any]] = field(default_factory=list)  # Anthropic content, rebuilt
    events: int = 0

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def saw_delta(self, at: float) -> None:
        self.deltas += 1
        if self.first_delta_at is None:
            self.first_delta_at = at
        self.last_delta_at = at


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _parse_arguments(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def check_openai_stream(events: list[SseEvent], *, include_usage: bool,
                        truncated: bool = False) -> StreamReport:
    """Validate a `/v1/chat/completions` stream (REFERENCE §1.3)."""
    rep = StreamReport(events=len(events))
    done = False
    role_checked = False
    usage_chunks = 0
    usage_early = False
    calls: dict[int, dict[str, str]] = {}
    for number, ev in enumerate(events, 1):
        if done:
            rep.problem(f"data after data: [DONE] (event {number})")
            break
        if ev.data.strip() == "[DONE]":
            if ev.lines != ("data: [DONE]",):
                rep.problem(f"the end marker is {' | '.join(ev.lines)!r}, not data: [DONE]")
            done = True
            continue
        obj = _json_object(ev.data)
        if obj is None:
            rep.problem(f"chunk {number} is not a JSON object: {ev.data[:60]!r}")
            continue
        if "error" in obj:
            rep.problem(f"error in the stream: {_error_message(obj)}")
            continue
        if obj.get("object") != "chat.completion.chunk":
            rep.problem(f"chunk {number} has object {obj.get('object')!r}, "
                        "not chat.completion.chunk")
        choices = obj.get("choices")
        if not isinstance(choices, list):
            rep.problem(f"chunk {number} has no choices list")
            continue
        if not choices:
            usage = obj.get("usage")
            if not isinstance(usage, dict):
                rep.problem(f"chunk {number} has empty choices and no usage")
                continue
            usage_chunks += 1
            usage_early = usage_early or rep.finish is None
            tokens = usage.get("completion_tokens")
            rep.usage_tokens = tokens if isinstance(tokens, int) else None
            continue
        choice = choices[0] if isinstance(choices[0], dict) else {}
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            rep.problem(f"chunk {number} has no delta")
            continue
        if not role_checked:
            role_checked = True
            if delta.get("role") != "assistant":
                rep.problem("the first delta has no role assistant")
        content = delta.get("content")
        if isinstance(content, str) and content:
            rep.text += content
            rep.saw_delta(ev.at)
        reasoning = delta.get("reasoning", delta.get("reasoning_content"))
        if isinstance(reasoning, str) and reasoning:
            rep.saw_delta(ev.at)
        for call in delta.get("tool_calls") or []:
            if not isinstance(call, dict):
                continue
            index = call.get("index", 0)
            slot = calls.setdefault(index if isinstance(index, int) else 0,
                                    {"id": "", "name": "", "arguments": ""})
            fn = _dict(call.get("function"))
            slot["id"] = slot["id"] or str(call.get("id") or "")
            slot["name"] = slot["name"] or str(fn.get("name") or "")
            slot["arguments"] += str(fn.get("arguments") or "")
            rep.saw_delta(ev.at)
        finish = choice.get("finish_reason")
        if finish is not None:
            if rep.finish is not None:
                rep.problem("more than one chunk carried a finish_reason")
            rep.finish = str(finish)
    if rep.finish is None:
        rep.problem("no chunk carried a finish_reason")
    elif usage_early:
        rep.problem("the usage chunk came before the finish_reason chunk")
    if include_usage and usage_chunks == 0:
        rep.problem("no usage chunk (choices: []) although stream_options.include_usage was set")
    if usage_chunks > 1:
        rep.problem(f"{usage_chunks} usage chunks, expected one")
    if truncated:
        rep.problem("the stream ended in the middle of an event")
    if not done:
        rep.problem("stream ended without data: [DONE]")
    rep.tool_calls = [ToolCall(c["id"], c["name"], _parse_arguments(c["arguments"]),
                               c["arguments"]) for _, c in sorted(calls.items())]
    return rep


_DELTA_FOR_BLOCK = {"text": ("text_delta",), "thinking": ("thinking_delta", "signature_delta"),
                    "tool_use": ("input_json_delta",)}


def check_anthropic_stream(events: list[SseEvent], *, truncated: bool = False) -> StreamReport:
    """Validate a `/v1/messages` stream: event order and names (REFERENCE §1.4).

    message_start -> (content_block_start -> content_block_delta+ -> content_block_stop)+
    -> message_delta -> message_stop, each `event:` name equal to its data's `type`.
    """
    rep = StreamReport(events=len(events))
    started = stopped = message_delta = False
    open_index: int | None = None
    deltas_in_block = 0
    partial_json = ""
    for ev in events:
        obj = _json_object(ev.data)
        if obj is None:
            rep.problem(f"event {ev.event} data is not a JSON object: {ev.data[:60]!r}")
            continue
        kind = obj.get("type")
        if ev.event is None:
            rep.problem(f"data of type {kind!r} without an event: line")
        elif ev.event != kind:
            rep.problem(f"event {ev.event} carries data of type {kind!r}")
        kind = str(kind or ev.event)
        if stopped:
            rep.problem(f"event {kind} after message_stop")
            continue
        if kind == "ping":
            continue
        if kind == "error":
            rep.problem(f"error event in the stream: {_error_message(obj)}")
            continue
        if kind == "message_start":
            if started:
                rep.problem("a second message_start")
            started = True
            msg = _dict(obj.get("message"))
            if not str(msg.get("id", "")).startswith("msg_"):
                rep.problem(f"message_start id {msg.get('id')!r} does not start with msg_")
            if msg.get("role") != "assistant":
                rep.problem(f"message_start role {msg.get('role')!r}, not assistant")
            continue
        if not started:
            rep.problem(f"event {kind} before message_start")
            started = True
        index = obj.get("index")
        if kind == "content_block_start":
            if message_delta:
                rep.problem("event content_block_start after message_delta")
            if open_index is not None:
                rep.problem(f"event content_block_start before content_block_stop "
                            f"of block {open_index}")
            if index != len(rep.blocks):
                rep.problem(f"content_block_start has index {index!r}, "
                            f"expected {len(rep.blocks)}")
            block = obj.get("content_block")
            if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                rep.problem("content_block_start without a content_block type")
                block = {"type": "?"}
            rep.blocks.append(dict(block))
            open_index = index if isinstance(index, int) else len(rep.blocks) - 1
            deltas_in_block = 0
            partial_json = ""
        elif kind == "content_block_delta":
            if open_index is None or index != open_index:
                where = ("after content_block_stop"
                         if isinstance(index, int) and index < len(rep.blocks) and
                         open_index != index else "before content_block_start")
                rep.problem(f"event content_block_delta {where}")
                continue
            deltas_in_block += 1
            block = rep.blocks[-1]
            delta = _dict(obj.get("delta"))
            dtype = delta.get("type")
            allowed = _DELTA_FOR_BLOCK.get(str(block.get("type")), ())
            if dtype not in allowed:
                rep.problem(f"{dtype} in a {block.get('type')} block")
            if dtype == "text_delta":
                piece = str(delta.get("text", ""))
                block["text"] = str(block.get("text", "")) + piece
                rep.text += piece
                rep.saw_delta(ev.at)
            elif dtype == "thinking_delta":
                block["thinking"] = str(block.get("thinking", "")) + str(delta.get("thinking", ""))
                rep.saw_delta(ev.at)
            elif dtype == "signature_delta":
                block["signature"] = str(delta.get("signature", ""))
            elif dtype == "input_json_delta":
                partial_json += str(delta.get("partial_json", ""))
                rep.saw_delta(ev.at)
        elif kind == "content_block_stop":
            if open_index is None or index != open_index:
                rep.problem("event content_block_stop before content_block_start")
                continue
            block = rep.blocks[-1]
            if deltas_in_block == 0:
                rep.problem(f"content block {open_index} ({block.get('type')}) had no "
                            "content_block_delta")
            if block.get("type") == "tool_use":
                _finish_tool_block(rep, block, partial_json)
            open_index = None
        elif kind == "message_delta":
            if open_index is not None:
                rep.problem("event message_delta before content_block_stop")
            # No block at all is legal: Ollama opens none for an empty generation.
            message_delta = True
            delta = _dict(obj.get("delta"))
            rep.finish = delta.get("stop_reason")
            if rep.finish not in STOP_REASONS:
                rep.problem(f"message_delta stop_reason {rep.finish!r}")
            usage = _dict(obj.get("usage"))
            tokens = usage.get("output_tokens")
            if isinstance(tokens, int):
                rep.usage_tokens = tokens
            else:
                rep.problem("message_delta has no usage.output_tokens")
        elif kind == "message_stop":
            if not message_delta:
                rep.problem("event message_stop before message_delta")
            stopped = True
        else:
            rep.problem(f"unknown event {kind}")
    if not started:
        rep.problem("no message_start event")
    if truncated:
        rep.problem("the stream ended in the middle of an event")
    if not stopped:
        rep.problem("stream ended before message_stop")
    elif (rep.finish == "tool_use") != bool(rep.tool_calls):
        rep.problem(f"stop_reason {rep.finish!r} with {len(rep.tool_calls)} tool_use block(s)")
    return rep


def _finish_tool_block(rep: StreamReport, block: dict[str, Any], partial_json: str) -> None:
    if partial_json:
        parsed = _parse_arguments(partial_json)
        if not isinstance(parsed, dict):
            rep.problem(f"tool_use input is not a JSON object: {partial_json[:60]!r}")
        block["input"] = parsed if isinstance(parsed, dict) else {}
    elif not isinstance(block.get("input"), dict):
        block["input"] = {}
    rep.tool_calls.append(ToolCall(str(block.get("id") or ""), str(block.get("name") or ""),
                                   block["input"], partial_json))


# ---------------------------------------------------------------------------------------------
# Shape validators (non-streamed answers)
# ---------------------------------------------------------------------------------------------


def _int_fields(obj: Any, names: tuple[str, ...]) -> list[str]:
    if not isinstance(obj, dict):
        return list(names)
    return [n for n in names if not isinstance(obj.get(n), int) or isinstance(obj.get(n), bool)]


def openai_completion_problems(obj: Any) -> list[str]:
    """What is wrong with a non-streamed chat.completion (empty: nothing)."""
    if not isinstance(obj, dict):
        return ["the body is not a JSON object"]
    problems: list[str] = []
    if not isinstance(obj.get("id"), str) or not obj["id"]:
        problems.append("no id")
    if obj.get("object") != "chat.completion":
        problems.append(f"object is {obj.get('object')!r}, not chat.completion")
    choices = obj.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        problems.append("no choices[0]")
    else:
        message = choices[0].get("message")
        if not isinstance(message, dict):
            problems.append("no choices[0].message")
        else:
            if message.get("role") != "assistant":
                problems.append(f"message role is {message.get('role')!r}, not assistant")
            content = message.get("content")
            if not isinstance(content, str) and not (content is None
                                                     and message.get("tool_calls")):
                problems.append("choices[0].message.content is not a string")
        if choices[0].get("finish_reason") not in FINISH_REASONS:
            problems.append(f"finish_reason is {choices[0].get('finish_reason')!r}")
    missing = _int_fields(obj.get("usage"), ("prompt_tokens", "completion_tokens",
                                             "total_tokens"))
    if missing:
        problems.append(f"usage lacks {', '.join(missing)}")
    return problems


def anthropic_message_problems(obj: Any) -> list[str]:
    """What is wrong with a non-streamed Anthropic message (empty: nothing)."""
    if not isinstance(obj, dict):
        return ["the body is not a JSON object"]
    problems: list[str] = []
    if not isinstance(obj.get("id"), str) or not obj["id"].startswith("msg_"):
        problems.append(f"id {obj.get('id')!r} does not start with msg_")
    if obj.get("type") != "message":
        problems.append(f"type is {obj.get('type')!r}, not message")
    if obj.get("role") != "assistant":
        problems.append(f"role is {obj.get('role')!r}, not assistant")
    content = obj.get("content")
    # null (Go's nil slice) or [] is an empty answer: legal. Blocks come in any legal mix:
    # thinking first, text before tool_use, several tool_use blocks.
    blocks = content if isinstance(content, list) else []
    if content is not None and not isinstance(content, list):
        problems.append(f"content is {type(content).__name__}, not a list of blocks")
    elif not all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in blocks):
        problems.append("a content block without a type")
    if obj.get("stop_reason") not in STOP_REASONS:
        problems.append(f"stop_reason is {obj.get('stop_reason')!r}")
    tool_uses = sum(1 for b in blocks if isinstance(b, dict) and b.get("type") == "tool_use")
    if (obj.get("stop_reason") == "tool_use") != bool(tool_uses):
        problems.append(f"stop_reason {obj.get('stop_reason')!r} with {tool_uses} tool_use "
                        "block(s)")
    missing = _int_fields(obj.get("usage"), ("input_tokens", "output_tokens"))
    if missing:
        problems.append(f"usage lacks {', '.join(missing)}")
    return problems


def anthropic_error_problems(status: int, obj: Any, *, want_status: int = 404,
                             want_type: str = "not_found_error") -> list[str]:
    """What is wrong with an Anthropic error answer (empty: nothing)."""
    problems: list[str] = []
    if status != want_status:
        problems.append(f"HTTP {status}, expected {want_status}")
    if not isinstance(obj, dict):
        return [*problems, "the body is not a JSON object"]
    if obj.get("type") != "error":
        problems.append(f"type is {obj.get('type')!r}, not error")
    err = obj.get("error")
    if not isinstance(err, dict):
        problems.append("no error object")
    else:
        if err.get("type") != want_type:
            problems.append(f"error.type is {err.get('type')!r}, not {want_type}")
        if not isinstance(err.get("message"), str):
            problems.append("error.message is not a string")
    return problems


def _error_message(obj: Any) -> str:
    """The message of an error body in any dialect (OpenAI, Anthropic, native, gateway)."""
    if isinstance(obj, dict):
        err = obj.get("error")
        if isinstance(err, dict):
            text = err.get("message") or err.get("type") or json.dumps(err)[:120]
            code = err.get("code")
            return f"{text} ({code})" if isinstance(code, str) and code else str(text)
        if isinstance(err, str):
            return err
    return json.dumps(obj)[:120] if obj is not None else "no body"


