"""The stream-json parser against golden logs built from REFERENCE §2.4 shapes, with the
expected totals worked out by hand. The event builders here are shared by the other
analytics tests."""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as strat

from aiclient.analytics import parser as parser_mod
from aiclient.analytics.parser import LineSplitter, StreamParser, parse_file, parse_stream
from aiclient.analytics.stats import IterationStats, TokenCounts

Event = dict[str, Any]
SONNET = "claude-sonnet-4-5"
HAIKU = "claude-haiku-4-5"


# -- builders (REFERENCE §2.4) -----------------------------------------------------------------

def init(version: str = "2.1.240", model: str = SONNET, session: str = "sess-1") -> Event:
    return {"type": "system", "subtype": "init", "session_id": session, "cwd": "/work",
            "model": model, "tools": ["Read", "Edit", "Task"], "mcp_servers": [],
            "permissionMode": "default", "apiKeySource": "none",
            "claude_code_version": version, "agents": ["general-purpose"]}


def usage(inp: int, cache_creation: int, cache_read: int, out: int) -> dict[str, int]:
    return {"input_tokens": inp, "cache_creation_input_tokens": cache_creation,
            "cache_read_input_tokens": cache_read, "output_tokens": out}


def text_block(text: str = "thinking out loud") -> Event:
    return {"type": "text", "text": text}


def tool_use(tool_id: str, name: str, **tool_input: Any) -> Event:
    return {"type": "tool_use", "id": tool_id, "name": name, "input": tool_input}


def assistant(message_id: str, block: Event, use: dict[str, int], parent: str | None = None,
              model: str = SONNET) -> Event:
    return {"type": "assistant", "parent_tool_use_id": parent, "session_id": "sess-1",
            "uuid": f"u-{message_id}-{block.get('id', block['type'])}",
            "message": {"id": message_id, "type": "message", "role": "assistant",
                        "model": model, "content": [block], "stop_reason": None,
                        "usage": use}}


def tool_result(tool_id: str, is_error: bool = False, parent: str | None = None,
                content: str = "ok") -> Event:
    return {"type": "user", "parent_tool_use_id": parent, "session_id": "sess-1",
            "message": {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": tool_id, "is_error": is_error,
                 "content": content}]}}


def retry(status: int = 529, attempt: int = 1) -> Event:
    return {"type": "system", "subtype": "api_retry", "attempt": attempt, "max_retries": 10,
            "retry_delay_ms": 500, "error_status": status, "error": "overloaded_error"}


def model_usage(inp: int, out: int, cache_read: int, cache_creation: int,
                cost: float = 0.0) -> dict[str, Any]:
    return {"inputTokens": inp, "outputTokens": out, "cacheReadInputTokens": cache_read,
            "cacheCreationInputTokens": cache_creation, "costUSD": cost,
            "contextWindow": 200000}


def result(**overrides: Any) -> Event:
    event: Event = {"type": "result", "subtype": "success", "is_error": False,
                    "duration_ms": 10000, "duration_api_ms": 8000, "num_turns": 2,
                    "result": "done", "stop_reason": "end_turn", "session_id": "sess-1",
                    "total_cost_usd": 0.01, "usage": usage(10, 0, 0, 20),
                    "modelUsage": {SONNET: model_usage(10, 20, 0, 0, 0.01)},
                    "permission_denials": [], "errors": []}
    event.update(overrides)
    return event


def ndjson(items: Sequence[Event | str], final_newline: bool = True) -> bytes:
    text = "\n".join(i if isinstance(i, str) else json.dumps(i) for i in items)
    return (text + ("\n" if final_newline else "")).encode()


def parse_bytes(data: bytes) -> IterationStats:
    return parse_stream(io.BytesIO(data))


# -- the golden log ------------------------------------------------------------------------------

TRUNCATED = '{"type":"assistant","message":{"id":"msg_4","content":[{"type":"te'


def golden_events() -> list[Event | str]:
    u1 = usage(100, 1000, 5000, 1)  # repeated on every line of msg_1; output is a placeholder
    u2a, u2b = usage(50, 0, 200, 1), usage(50, 0, 200, 7)  # a later line of msg_2 grows
    u3 = usage(20, 300, 6000, 1)
    return [
        init(),
        assistant("msg_1", text_block(), u1),
        assistant("msg_1", tool_use("toolu_1", "Read", file_path="/a.py"), u1),
        assistant("msg_1", tool_use("toolu_2", "Task", prompt="look around"), u1),
        tool_result("toolu_1"),
        retry(529),
        assistant("msg_2", tool_use("toolu_3", "Grep", pattern="x"), u2a, parent="toolu_2",
                  model=HAIKU),
        assistant("msg_2", tool_use("toolu_4", "Glob", pattern="*.py"), u2b, parent="toolu_2",
                  model=HAIKU),
        tool_result("toolu_3", is_error=True, parent="toolu_2"),
        tool_result("toolu_4", parent="toolu_2"),
        tool_result("toolu_2"),
        assistant("msg_3", tool_use("toolu_5", "Edit", file_path="/a.py"), u3),
        tool_result("toolu_5", is_error=True),
        {"type": "brand_new_event", "payload": 1},
        {"type": "system", "subtype": "mystery"},
        {"type": "system", "subtype": "hook_started"},  # hook_* subtypes are known
        {"type": "rate_limit_event", "rate_limit_info": {}},
        "this line is not JSON",
        result(subtype="error_during_execution", is_error=True, duration_ms=42000,
               duration_api_ms=30000, num_turns=4, total_cost_usd=0.25,
               usage=usage(120, 1300, 11000, 380),
               modelUsage={SONNET: model_usage(120, 400, 11000, 1300, 0.2),
                           HAIKU: model_usage(50, 30, 200, 0, 0.05)},
               permission_denials=[{"tool_name": "Bash"}], errors=["boom"]),
        TRUNCATED,
    ]


def test_golden_log_totals_computed_by_hand() -> None:
    st = parse_bytes(ndjson(golden_events(), final_newline=False))
    # tool calls by name, main thread vs subagent (parent_tool_use_id)
    assert st.tool_calls_main == {"Read": 1, "Task": 1, "Edit": 1}
    assert st.tool_calls_sub == {"Grep": 1, "Glob": 1}
    assert st.tool_calls == 5
    assert (st.subagent_spawns, st.subagent_threads) == (1, 1)
    assert st.tool_results == 5
    assert st.tool_errors == {"Grep": 1, "Edit": 1}
    assert (st.api_retries, st.retry_statuses) == (1, {"529": 1})
    # de-duplicated by message.id: msg_1 once (not 3×), msg_2 once with its largest usage
    assert (st.api_calls, st.api_calls_sub) == (3, 1)
    assert st.message_tokens_main == TokenCounts(100 + 20, 1000 + 300, 5000 + 6000, 1 + 1)
    assert st.message_tokens_sub == TokenCounts(50, 0, 200, 7)
    # totals from the result event: modelUsage covers main loop + subagents
    tokens, source = st.tokens()
    assert source == "modelUsage"
    assert tokens == TokenCounts(120 + 50, 1300 + 0, 11000 + 200, 400 + 30)
    assert tokens.cache_hit_rate == pytest.approx(11200 / (170 + 1300 + 11200))
    assert st.result_usage == TokenCounts(120, 1300, 11000, 380)
    assert st.model_usage[HAIKU].cost_usd == pytest.approx(0.05)
    # result fields
    assert st.has_result and st.result_is_error
    assert st.result_subtype == "error_during_execution"
    assert (st.duration_ms, st.duration_api_ms, st.num_turns) == (42000, 30000, 4)
    assert st.total_cost_usd == pytest.approx(0.25)
    assert st.permission_denials == 1 and st.result_errors == ["boom"]
    # identity
    assert st.claude_code_version == "2.1.240" and st.session_id == "sess-1"
    assert st.models == [SONNET, HAIKU]
    # shallow vs deep
    assert (st.shallow_ops, st.deep_ops) == (3, 1)
    # never fatal: unknown types/subtypes, a malformed line, a truncated last line
    assert st.unknown_events == {"brand_new_event": 1, "system/mystery": 1}
    assert st.malformed_lines == 2
    assert st.truncated_last_line
    assert st.lines == 20
    assert st.events == {"system": 4, "assistant": 6, "user": 5, "rate_limit_event": 1,
                         "result": 1}


def test_naive_summing_would_double_count() -> None:
    """The old scripts summed every *_tokens field in the stream (REFERENCE §8)."""
    data = ndjson(golden_events())
    naive = sum(int(x) for x in __import__("re").findall(rb'"input_tokens": (\d+)', data))
    st = parse_bytes(data)
    assert naive > st.message_tokens_main.input + st.message_tokens_sub.input


def test_any_chunking_gives_the_same_result() -> None:
    data = ndjson(golden_events(), final_newline=False)
    whole = parse_bytes(data).as_dict()
    for size in (1, 7, 64, 1000):
        sp = StreamParser()
        splitter = LineSplitter()
        for i in range(0, len(data), size):
            for line in splitter.feed(data[i:i + size]):
                sp.feed_line(line)
        rest = splitter.close()
        if rest is not None:
            sp.feed_line(rest, last=True)
        assert sp.finish().as_dict() == whole, size


def test_complete_last_line_without_newline_is_not_truncated() -> None:
    st = parse_bytes(ndjson([init(), result()], final_newline=False))
    assert not st.truncated_last_line and st.malformed_lines == 0 and st.has_result
    assert st.bytes == len(ndjson([init(), result()], final_newline=False))


def test_agent_is_the_newer_name_of_task() -> None:
    events: list[Event | str] = [
        assistant("m1", tool_use("t1", "Agent", prompt="p"), usage(1, 0, 0, 1)),
        assistant("m2", tool_use("t2", "Read"), usage(1, 0, 0, 1), parent="t1"),
        assistant("m3", tool_use("t3", "Task", prompt="p"), usage(1, 0, 0, 1)),
    ]
    st = parse_bytes(ndjson(events))
    assert st.subagent_spawns == 2 and st.subagent_threads == 1
    assert st.tool_calls_sub == {"Read": 1}


def test_a_repeated_tool_use_block_counts_once() -> None:
    block = tool_use("t1", "Write", file_path="/x")
    st = parse_bytes(ndjson([assistant("m1", block, usage(1, 0, 0, 1))] * 3))
    assert st.tool_calls_main == {"Write": 1} and st.api_calls == 1


def test_shapes_that_are_wrong_are_counted_not_fatal() -> None:
    lines: list[Event | str] = [
        "[1, 2, 3]", "42", "", "   ",
        {"type": "assistant", "message": "not an object"},
        {"type": "assistant"},
        {"type": "result", "errors": 5, "modelUsage": {"m": []}, "result": 7},
        "[" * 200000 + "]" * 200000,
        {"type": "user", "message": {"content": "plain text prompt"}},
        {"no_type": True},
        {"type": 7},
    ]
    data = ndjson(lines) + b"\xff\xfe{not utf-8}\n"
    st = parse_bytes(data)
    # array, number, 2 bad assistant shapes, too deep, invalid UTF-8
    assert st.malformed_lines == 6
    assert st.unknown_events == {"<no type>": 2}
    assert st.events == {"assistant": 2, "user": 1, "result": 1}
    assert st.has_result and st.model_usage["m"].tokens == TokenCounts()


def test_oversized_lines_are_skipped_in_bounded_memory() -> None:
    big = json.dumps(tool_result("t", content="x" * 5000))
    data = ndjson([init(), big, result(), big], final_newline=False)
    st = parse_stream(io.BytesIO(data), max_line=2000)
    assert st.oversized_lines == 2
    assert st.has_result and st.claude_code_version == "2.1.240" and st.malformed_lines == 0


def test_message_window_bounds_memory_and_keeps_totals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parser_mod, "MESSAGE_WINDOW", 8)
    monkeypatch.setattr(parser_mod, "TOOL_WINDOW", 8)
    sp = StreamParser()
    for i in range(500):
        # two interleaved messages at a time (a subagent running beside the main thread)
        for mid in (f"a{i}", f"b{i}", f"a{i}", f"b{i}"):
            event = assistant(mid, tool_use(f"t{mid}{len(mid)}", "Read"), usage(2, 0, 3, 1))
            sp.feed_line(json.dumps(event).encode())
            assert len(sp._messages) <= 8 and len(sp._tools) <= 9
    st = sp.finish()
    assert st.api_calls == 1000
    assert st.message_tokens_main == TokenCounts(2000, 0, 3000, 1000)


def test_fallbacks_without_model_usage_or_result() -> None:
    no_model_usage = result()
    del no_model_usage["modelUsage"]
    events: list[Event | str] = [
        assistant("m1", text_block(), usage(5, 6, 7, 1)),
        assistant("m2", text_block(), usage(1, 0, 0, 1), parent="t9"),
        no_model_usage,
    ]
    tokens, source = parse_bytes(ndjson(events)).tokens()
    assert source == "result.usage"
    assert tokens == TokenCounts(10 + 1, 0, 0, 20 + 1)  # main loop from result + subagent msgs
    tokens, source = parse_bytes(ndjson(events[:2])).tokens()
    assert source == "messages" and tokens == TokenCounts(6, 6, 7, 2)
    assert TokenCounts().cache_hit_rate is None


def test_stats_round_trip_through_json() -> None:
    st = parse_bytes(ndjson(golden_events(), final_newline=False))
    again = IterationStats.from_dict(json.loads(json.dumps(st.as_dict())))
    assert again == st


def test_legacy_whole_document_logs(tmp_path: Path) -> None:
    array = tmp_path / "iteration-1.json"
    array.write_text(json.dumps([init(), assistant("m", tool_use("t", "Read"),
                                                   usage(1, 2, 3, 4)), result()], indent=2))
    st = parse_file(array)
    assert st.tool_calls_main == {"Read": 1} and st.has_result and st.malformed_lines == 0
    single = tmp_path / "iteration-2.json"
    single.write_text(json.dumps(result(num_turns=9), indent=2))
    assert parse_file(single).num_turns == 9
    garbage = tmp_path / "iteration-3.json"
    garbage.write_text("not\njson\n")
    st = parse_file(garbage)
    assert st.malformed_lines == 2 and not st.has_result


def test_a_bom_and_crlf_line_ends_are_tolerated() -> None:
    data = b"\xef\xbb\xbf" + ndjson([init(), result()]).replace(b"\n", b"\r\n")
    st = parse_bytes(data)
    assert st.malformed_lines == 0 and st.has_result and st.claude_code_version == "2.1.240"


@settings(max_examples=300, deadline=None)
@given(data=strat.binary(max_size=200).map(lambda b: b.replace(b"\r", b"\n")),
       max_line=strat.integers(min_value=1, max_value=40),
       cuts=strat.lists(strat.integers(min_value=0, max_value=200), max_size=12))
def test_line_splitter_matches_a_plain_split(data: bytes, max_line: int,
                                             cuts: list[int]) -> None:
    *complete, last = data.split(b"\n")
    want = [line for line in complete if len(line) <= max_line]
    want_oversized = len(complete) - len(want) + (len(last) > max_line)
    splitter = LineSplitter(max_line)
    got: list[bytes] = []
    bounds = sorted({0, len(data), *[c for c in cuts if c <= len(data)]})
    for lo, hi in itertools.pairwise(bounds):
        got += list(splitter.feed(data[lo:hi]))
    rest = splitter.close()
    assert got == want
    assert rest == (last if last and len(last) <= max_line else None)
    assert splitter.oversized == want_oversized


# -- real Claude Code logs (issue 16 §3): recorded with tests/support/streamrec.py --------------

REAL_LOGS = Path(__file__).resolve().parents[1] / "fixtures" / "stream-json"


def parse(events: Sequence[Event | str]) -> IterationStats:
    return parse_bytes(ndjson(events))


def _model_usage_input(st: IterationStats) -> int:
    return sum(u.tokens.prompt_total for u in st.model_usage.values())


def test_real_2_1_332_subagent_log_has_no_unknown_events() -> None:
    st = parse_file(REAL_LOGS / "versions-subagent-2.1.332.jsonl")
    assert st.claude_code_version == "2.1.332"
    assert st.unknown_events == {}
    assert st.events["system"] >= 7  # init ×2, task_started/updated/notification, bg changes
    assert st.subagent_spawns == 1 and st.subagent_threads == 1
    # the subagent's request has its own assistant line here: nothing taken twice
    assert (st.api_calls, st.api_calls_sub) == (4, 1)
    assert st.message_tokens_main.prompt_total + st.message_tokens_sub.prompt_total == \
        _model_usage_input(st)


def test_real_2_1_153_subagent_usage_comes_from_task_notification() -> None:
    st = parse_file(REAL_LOGS / "versions-subagent-2.1.153.jsonl")
    assert st.claude_code_version == "2.1.153"
    assert st.unknown_events == {}
    # 2.1.153 writes no assistant line for the subagent's (only) request: its usage is in
    # task_notification (total_tokens 1627), and the call count is not one short.
    assert (st.api_calls, st.api_calls_sub) == (3, 1)
    assert st.subagent_threads == 1
    assert st.message_tokens_sub.prompt_total + st.message_tokens_sub.output == 1627
    assert st.message_tokens_main.prompt_total + st.message_tokens_sub.prompt_total == \
        _model_usage_input(st)


def test_task_notification_does_not_double_count_a_finished_subagent() -> None:
    events = [init(), assistant("m1", tool_use("t1", "Agent"), usage(100, 0, 0, 5)),
              assistant("s1", text_block("hi"), usage(40, 0, 0, 3), parent="t1"),
              {"type": "system", "subtype": "task_notification", "tool_use_id": "t1",
               "status": "completed", "usage": {"total_tokens": 43, "tool_uses": 0}},
              result()]
    st = parse(events)
    assert (st.api_calls, st.api_calls_sub) == (2, 1) and st.unknown_events == {}


def test_task_notification_adds_the_missing_last_request_after_tool_calls() -> None:
    events = [init(), assistant("m1", tool_use("t1", "Task"), usage(100, 0, 0, 5)),
              assistant("s1", tool_use("r1", "Read"), usage(40, 0, 0, 3), parent="t1"),
              {"type": "system", "subtype": "task_notification", "tool_use_id": "t1",
               "status": "completed", "usage": {"total_tokens": 90, "tool_uses": 1}},
              result()]
    st = parse(events)
    assert (st.api_calls, st.api_calls_sub) == (3, 1 + 1)
    assert st.message_tokens_sub.input == 40 + 90


@pytest.mark.parametrize("subtype", ["task_started", "task_progress", "task_updated",
                                     "task_notification", "background_tasks_changed"])
def test_todays_system_subtypes_are_known_and_odd_ones_still_counted(subtype: str) -> None:
    st = parse([init(), {"type": "system", "subtype": subtype},
                {"type": "system", "subtype": "task_teleported"}, result()])
    assert st.unknown_events == {"system/task_teleported": 1}


def test_real_2_1_332_background_agent_second_result_adds_up() -> None:
    """With a background subagent, 2.1.332 ends the first turn with a result, then runs a
    follow-up turn when the agent finishes and writes a second result: its duration_ms,
    num_turns and usage cover that turn only (modelUsage, cost, duration_api_ms are running
    totals)."""
    st = parse_file(REAL_LOGS / "versions-subagent-2.1.332.jsonl")
    assert st.events["result"] == 2
    assert st.num_turns == 2 + 1 and st.duration_ms == 279 + 52
    assert st.duration_api_ms == 201 and st.total_cost_usd == pytest.approx(0.066252)
    assert st.result_usage is not None and st.result_usage.input == 8666 + 4802
    assert sum(u.tokens.input for u in st.model_usage.values()) == 16313
