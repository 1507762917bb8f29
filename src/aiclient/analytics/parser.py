"""Streaming parser for `claude -p --output-format stream-json --verbose` (REFERENCE §2.4).

One line at a time, memory bounded by the longest line we accept plus small fixed-size
windows: message ids are de-duplicated inside a sliding window (lines of one message arrive
together, or interleaved only with the few subagents running at the same time), pending tool
calls are capped. Unknown event types, unknown system subtypes, lines that are not JSON objects
and a truncated last line are counted and reported, never fatal.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from aiclient.analytics.stats import (
    IterationStats,
    ModelUsage,
    TokenCounts,
    as_int,
    as_num,
)

SUBAGENT_TOOLS = frozenset({"Task", "Agent"})  # older Claude Code says Task, newer Agent
KNOWN_TYPES = frozenset({"system", "assistant", "user", "result", "stream_event",
                         "rate_limit_event"})
KNOWN_SYSTEM_SUBTYPES = frozenset({"init", "api_retry", "compact_boundary", "status",
                                   # background tasks and subagents (REFERENCE §2.6)
                                   "task_started", "task_progress", "task_updated",
                                   "task_notification", "background_tasks_changed"})
SYNTHETIC_MODEL = "<synthetic>"  # Claude Code's model name for messages it made up itself

MAX_LINE_BYTES = 64 * 1024 * 1024  # a longer line is skipped (counted), never held in memory
MESSAGE_WINDOW = 1024  # message ids kept for de-duplication
TOOL_WINDOW = 4096  # tool_use ids kept (pending results, duplicate blocks)
CHUNK_BYTES = 1024 * 1024
MAX_RESULT_ERRORS = 10


_decode = json.JSONDecoder().decode  # json.loads minus its per-call encoding sniffing


def _bump(counter: dict[str, int], key: str, n: int = 1) -> None:
    counter[key] = counter.get(key, 0) + n


class LineSplitter:
    """Bytes in, complete lines out; a line longer than `max_line` is dropped and counted."""

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        self.max_line = max_line
        self._pending: list[bytes] = []
        self._pending_len = 0
        self._skipping = False  # inside an oversized line: drop bytes until the next newline
        self.oversized = 0

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        start = 0
        while True:
            nl = chunk.find(b"\n", start)
            if nl < 0:
                break
            piece = chunk[start:nl]
            start = nl + 1
            if self._skipping:
                self._skipping = False
                continue
            if self._pending:
                if self._pending_len + len(piece) > self.max_line:
                    self._drop()
                    continue
                self._pending.append(piece)
                piece = b"".join(self._pending)
                self._pending = []
                self._pending_len = 0
            elif len(piece) > self.max_line:
                self.oversized += 1
                continue
            yield piece
        rest = chunk[start:]
        if rest and not self._skipping:
            if self._pending_len + len(rest) > self.max_line:
                self._drop()
                self._skipping = True
            else:
                self._pending.append(rest)
                self._pending_len += len(rest)

    def _drop(self) -> None:
        self.oversized += 1
        self._pending = []
        self._pending_len = 0

    def close(self) -> bytes | None:
        """The last line when the input did not end with a newline."""
        self._skipping = False
        if not self._pending:
            return None
        rest = b"".join(self._pending)
        self._pending = []
        self._pending_len = 0
        return rest


ToolCallback = Callable[[str, bool], None]


class StreamParser:
    """Feed it lines (bytes, without the newline); `finish()` returns the IterationStats."""

    def __init__(self, on_tool: ToolCallback | None = None) -> None:
        self.stats = IterationStats()
        self._on_tool = on_tool
        # message id -> (largest usage so far, subagent?, the last raw usage seen)
        self._messages: OrderedDict[str, tuple[TokenCounts, bool, dict[str, Any]]] = \
            OrderedDict()
        self._tools: OrderedDict[str, str] = OrderedDict()  # tool_use id -> name
        self._parents: set[str] = set()
        # subagent (parent tool_use id) -> its last assistant message asked for a tool
        self._sub_pending: dict[str, bool] = {}
        self._tasks: set[str] = set()  # tool_use ids named by task_started/notification
        self._models: dict[str, None] = {}
        self._finished = False
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            "system": self._system, "assistant": self._assistant, "user": self._user,
            "result": self._result,
        }

    # -- input ---------------------------------------------------------------------------------
    def feed_line(self, line: bytes, *, last: bool = False) -> None:
        stats = self.stats
        stats.lines += 1
        stats.bytes += len(line) + (0 if last else 1)
        if not line or line.isspace():
            return
        if stats.lines == 1 and line.startswith(b"\xef\xbb\xbf"):  # a BOM from some editor
            line = line[3:]
        try:
            event = _decode(line.decode("utf-8"))
        except (ValueError, RecursionError):  # invalid UTF-8 too; absurdly deep nesting
            stats.malformed_lines += 1
            if last:
                stats.truncated_last_line = True
            return
        if not isinstance(event, dict):
            stats.malformed_lines += 1
            return
        self.feed_event(event)

    def feed_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if not isinstance(kind, str) or kind not in KNOWN_TYPES:
            _bump(self.stats.unknown_events, kind if isinstance(kind, str) else "<no type>")
            return
        _bump(self.stats.events, kind)
        handler = self._handlers.get(kind)
        if handler is not None:
            try:
                handler(event)
            except (LookupError, AttributeError, TypeError, ValueError):  # wrong shape
                self.stats.malformed_lines += 1

    # -- events --------------------------------------------------------------------------------
    def _system(self, event: dict[str, Any]) -> None:
        subtype = event.get("subtype")
        stats = self.stats
        if subtype == "init":
            if stats.session_id is None and isinstance(event.get("session_id"), str):
                stats.session_id = event["session_id"]
            version = event.get("claude_code_version")
            if stats.claude_code_version is None and isinstance(version, str):
                stats.claude_code_version = version
            model = event.get("model")
            if stats.init_model is None and isinstance(model, str):
                stats.init_model = model
                self._model(model)
        elif subtype == "api_retry":
            stats.api_retries += 1
            status = event.get("error_status")
            _bump(stats.retry_statuses, str(status) if status is not None else "unknown")
        elif subtype == "compact_boundary":
            stats.compactions += 1
        elif subtype in ("task_started", "task_notification"):
            tool_id = event.get("tool_use_id")
            if isinstance(tool_id, str) and tool_id:
                self._tasks.add(tool_id)
                if subtype == "task_notification":
                    self._task_notification(tool_id, event.get("usage"))
        elif not (subtype in KNOWN_SYSTEM_SUBTYPES
                  or (isinstance(subtype, str) and subtype.startswith("hook_"))):
            _bump(stats.unknown_events, f"system/{subtype}")

    def _task_notification(self, tool_id: str, usage: Any) -> None:
        """A finished subagent. When its last request has no assistant line (2.1.153 writes
        none for a subagent's final answer), that request is counted from the notification's
        `total_tokens` (its whole usage; the input/output split is not given, so it counts as
        input)."""
        if tool_id in self._parents and not self._sub_pending.get(tool_id):
            return
        total = as_int(usage.get("total_tokens")) if isinstance(usage, dict) else 0
        if total <= 0:
            return
        self._sub_pending[tool_id] = False
        self._flush_message("", (TokenCounts(input=total), True, {}))

    def _model(self, model: str) -> None:
        if model and model != SYNTHETIC_MODEL and model not in self._models:
            self._models[model] = None

    def _assistant(self, event: dict[str, Any]) -> None:
        message = event["message"]
        if not isinstance(message, dict):
            raise TypeError("message is not an object")
        parent = event.get("parent_tool_use_id")
        sub = isinstance(parent, str) and bool(parent)
        if sub:
            self._parents.add(str(parent))
        model = message.get("model")
        if isinstance(model, str):
            self._model(model)
        usage = message.get("usage")
        message_id = message.get("id")
        if isinstance(usage, dict):
            if isinstance(message_id, str) and message_id:
                seen = self._messages.get(message_id)
                if seen is None:
                    self._messages[message_id] = (TokenCounts.from_usage(usage), sub, usage)
                    if len(self._messages) > MESSAGE_WINDOW:
                        self._flush_message(*self._messages.popitem(last=False))
                elif usage != seen[2]:  # a later line of the same message grows its usage
                    self._messages[message_id] = (
                        seen[0].maxed(TokenCounts.from_usage(usage)), seen[1], usage)
            else:  # no id to de-duplicate by: count the line as its own call
                self._flush_message("", (TokenCounts.from_usage(usage), sub, usage))
        content = message.get("content")
        if isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and block.get("type") == "tool_use":
                    self._tool_use(block, sub)
            if sub and content:
                self._sub_pending[str(parent)] = any(
                    isinstance(b, dict) and b.get("type") == "tool_use" for b in content)

    def _flush_message(self, _message_id: str,
                       entry: tuple[TokenCounts, bool, dict[str, Any]]) -> None:
        tokens, sub, _ = entry
        stats = self.stats
        stats.api_calls += 1
        if sub:
            stats.api_calls_sub += 1
            stats.message_tokens_sub.add(tokens)
        else:
            stats.message_tokens_main.add(tokens)

    def _tool_use(self, block: dict[str, Any], sub: bool) -> None:
        tool_id = block.get("id")
        name = block.get("name")
        name = name if isinstance(name, str) and name else "<unnamed>"
        if isinstance(tool_id, str) and tool_id:
            if tool_id in self._tools:
                return  # the same block repeated on a later line
            self._tools[tool_id] = name
            if len(self._tools) > TOOL_WINDOW:
                self._tools.popitem(last=False)
        _bump(self.stats.tool_calls_sub if sub else self.stats.tool_calls_main, name)
        if name in SUBAGENT_TOOLS:
            self.stats.subagent_spawns += 1
        if self._on_tool is not None:
            self._on_tool(name, sub)

    def _user(self, event: dict[str, Any]) -> None:
        message = event.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            return
        for block in content:
            if not isinstance(block, dict) or block.get("type") != "tool_result":
                continue
            self.stats.tool_results += 1
            tool_id = block.get("tool_use_id")
            name = self._tools.get(tool_id, "<unknown>") if isinstance(tool_id, str) else \
                "<unknown>"
            if block.get("is_error") is True:
                _bump(self.stats.tool_errors, name)

    def _result(self, event: dict[str, Any]) -> None:
        stats = self.stats
        # A second result follows a turn Claude Code runs by itself when a background subagent
        # finishes (2.1.332): its duration_ms, num_turns and usage cover that turn only, so
        # they add up; modelUsage, cost and duration_api_ms are running totals (the last wins).
        earlier = ((stats.duration_ms, stats.num_turns, stats.result_usage)
                   if stats.has_result else None)
        stats.has_result = True
        subtype = event.get("subtype")
        stats.result_subtype = subtype if isinstance(subtype, str) else None
        stats.result_is_error = event.get("is_error") is True or (
            isinstance(subtype, str) and subtype.startswith("error"))
        stop = event.get("stop_reason")
        stats.stop_reason = stop if isinstance(stop, str) else None
        for key in ("duration_ms", "duration_api_ms", "num_turns"):
            value = event.get(key)
            setattr(stats, key, as_int(value) if as_num(value) is not None else None)
        stats.total_cost_usd = as_num(event.get("total_cost_usd"))
        if isinstance(event.get("usage"), dict):
            stats.result_usage = TokenCounts.from_usage(event["usage"])
        if earlier is not None:
            duration, turns, usage = earlier
            if duration is not None and stats.duration_ms is not None:
                stats.duration_ms += duration
            if turns is not None and stats.num_turns is not None:
                stats.num_turns += turns
            if usage is not None and stats.result_usage is not None:
                stats.result_usage.add(usage)
        model_usage = event.get("modelUsage")
        if isinstance(model_usage, dict):
            stats.model_usage = {str(m): ModelUsage.from_event(u) for m, u in model_usage.items()}
            for model in model_usage:
                self._model(str(model))
        denials = event.get("permission_denials")
        stats.permission_denials = len(denials) if isinstance(denials, list) else 0
        errors = event.get("errors")
        if isinstance(errors, list):
            stats.result_errors = [e if isinstance(e, str) else json.dumps(e)
                                   for e in errors[:MAX_RESULT_ERRORS]]
        if stats.result_is_error and not stats.result_errors and isinstance(
                event.get("result"), str):
            stats.result_errors = [event["result"][:500]]

    # -- output --------------------------------------------------------------------------------
    def finish(self) -> IterationStats:
        if not self._finished:
            self._finished = True
            while self._messages:
                self._flush_message(*self._messages.popitem(last=False))
            self.stats.subagent_threads = len(self._parents | self._tasks)
            self.stats.models = list(self._models)
        return self.stats


def parse_stream(stream: IO[bytes], on_tool: ToolCallback | None = None,
                 max_line: int = MAX_LINE_BYTES) -> IterationStats:
    """Parse a binary stream of NDJSON to the end."""
    parser = StreamParser(on_tool)
    splitter = LineSplitter(max_line)
    while True:
        chunk = stream.read(CHUNK_BYTES)
        if not chunk:
            break
        for line in splitter.feed(chunk):
            parser.feed_line(line)
    rest = splitter.close()
    if rest is not None:
        parser.feed_line(rest, last=True)
    parser.stats.oversized_lines += splitter.oversized
    return parser.finish()


LEGACY_DOCUMENT_LIMIT = 256 * 1024 * 1024


def parse_file(path: Path, on_tool: ToolCallback | None = None) -> IterationStats:
    """Parse a stream-json log. A whole-file JSON document (`--output-format json`: one result
    object, or with --verbose an array of events) is accepted too, as old scripts saved those."""
    with open(path, "rb") as fh:
        stats = parse_stream(fh, on_tool)
    if stats.events or stats.unknown_events or not stats.malformed_lines:
        return stats
    try:
        if path.stat().st_size > LEGACY_DOCUMENT_LIMIT:
            return stats
        document = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return stats
    events = document if isinstance(document, list) else [document]
    if not all(isinstance(e, dict) for e in events):
        return stats
    parser = StreamParser(on_tool)
    for event in events:
        parser.feed_event(event)
    parser.stats.lines = stats.lines
    parser.stats.bytes = stats.bytes
    return parser.finish()
