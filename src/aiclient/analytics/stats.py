"""What one stream-json log says, as plain data: token counts, per-model usage and the
IterationStats the parser fills in (JSON round trip through as_dict / from_dict)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SHALLOW_TOOLS = frozenset({"Read", "Grep", "Glob"})
DEEP_TOOLS = frozenset({"Edit", "MultiEdit", "Write", "NotebookEdit"})


def as_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return int(value)


def as_num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


@dataclass
class TokenCounts:
    """Anthropic usage fields; `input` excludes the two cache fields (as the API reports it)."""

    input: int = 0
    cache_creation: int = 0
    cache_read: int = 0
    output: int = 0

    @classmethod
    def from_usage(cls, usage: Any) -> TokenCounts:
        if not isinstance(usage, dict):
            return cls()
        return cls(as_int(usage.get("input_tokens")),
                   as_int(usage.get("cache_creation_input_tokens")),
                   as_int(usage.get("cache_read_input_tokens")),
                   as_int(usage.get("output_tokens")))

    @classmethod
    def from_dict(cls, data: Any) -> TokenCounts:
        if not isinstance(data, dict):
            return cls()
        return cls(as_int(data.get("input")), as_int(data.get("cache_creation")),
                   as_int(data.get("cache_read")), as_int(data.get("output")))

    def add(self, other: TokenCounts) -> None:
        self.input += other.input
        self.cache_creation += other.cache_creation
        self.cache_read += other.cache_read
        self.output += other.output

    def maxed(self, other: TokenCounts) -> TokenCounts:
        return TokenCounts(max(self.input, other.input),
                           max(self.cache_creation, other.cache_creation),
                           max(self.cache_read, other.cache_read),
                           max(self.output, other.output))

    @property
    def prompt_total(self) -> int:
        """Every input token the model saw: fresh + written to cache + read from cache."""
        return self.input + self.cache_creation + self.cache_read

    @property
    def cache_hit_rate(self) -> float | None:
        """cache_read / (input + cache_creation + cache_read); None when nothing was sent."""
        total = self.prompt_total
        return self.cache_read / total if total else None

    def as_dict(self) -> dict[str, int]:
        return {"input": self.input, "cache_creation": self.cache_creation,
                "cache_read": self.cache_read, "output": self.output}


@dataclass
class ModelUsage:
    """One entry of the result event's `modelUsage` (main loop + subagents + compaction)."""

    tokens: TokenCounts = field(default_factory=TokenCounts)
    cost_usd: float = 0.0
    context_window: int = 0

    @classmethod
    def from_event(cls, data: Any) -> ModelUsage:
        if not isinstance(data, dict):
            return cls()
        tokens = TokenCounts(as_int(data.get("inputTokens")),
                             as_int(data.get("cacheCreationInputTokens")),
                             as_int(data.get("cacheReadInputTokens")),
                             as_int(data.get("outputTokens")))
        return cls(tokens, as_num(data.get("costUSD")) or 0.0, as_int(data.get("contextWindow")))

    @classmethod
    def from_dict(cls, data: Any) -> ModelUsage:
        if not isinstance(data, dict):
            return cls()
        return cls(TokenCounts.from_dict(data.get("tokens")), as_num(data.get("cost_usd")) or 0.0,
                   as_int(data.get("context_window")))

    def as_dict(self) -> dict[str, Any]:
        return {"tokens": self.tokens.as_dict(), "cost_usd": self.cost_usd,
                "context_window": self.context_window}


@dataclass
class IterationStats:
    """What one stream-json log says. Plain data: JSON round-trips through as_dict/from_dict."""

    # stream accounting
    lines: int = 0
    bytes: int = 0
    events: dict[str, int] = field(default_factory=dict)
    unknown_events: dict[str, int] = field(default_factory=dict)  # "type" or "system/subtype"
    malformed_lines: int = 0  # not JSON, not an object, or a known event of the wrong shape
    oversized_lines: int = 0
    truncated_last_line: bool = False
    # identity
    session_id: str | None = None
    claude_code_version: str | None = None
    init_model: str | None = None
    models: list[str] = field(default_factory=list)
    # tools
    tool_calls_main: dict[str, int] = field(default_factory=dict)
    tool_calls_sub: dict[str, int] = field(default_factory=dict)
    subagent_spawns: int = 0
    subagent_threads: int = 0  # distinct parent_tool_use_id values seen
    tool_results: int = 0
    tool_errors: dict[str, int] = field(default_factory=dict)  # by tool name
    # API
    api_calls: int = 0  # distinct assistant message ids
    api_calls_sub: int = 0
    api_retries: int = 0
    retry_statuses: dict[str, int] = field(default_factory=dict)
    compactions: int = 0
    # tokens (de-duplicated by message.id; output there is a placeholder per step)
    message_tokens_main: TokenCounts = field(default_factory=TokenCounts)
    message_tokens_sub: TokenCounts = field(default_factory=TokenCounts)
    # the result event
    has_result: bool = False
    result_subtype: str | None = None
    result_is_error: bool = False
    stop_reason: str | None = None
    duration_ms: int | None = None
    duration_api_ms: int | None = None
    num_turns: int | None = None
    total_cost_usd: float | None = None
    result_usage: TokenCounts | None = None  # main loop only
    model_usage: dict[str, ModelUsage] = field(default_factory=dict)
    permission_denials: int = 0
    result_errors: list[str] = field(default_factory=list)

    # -- derived -------------------------------------------------------------------------------
    @property
    def tool_calls(self) -> int:
        return sum(self.tool_calls_main.values()) + sum(self.tool_calls_sub.values())

    @property
    def tool_error_count(self) -> int:
        return sum(self.tool_errors.values())

    def tools_by_name(self) -> dict[str, int]:
        merged = dict(self.tool_calls_main)
        for name, count in self.tool_calls_sub.items():
            merged[name] = merged.get(name, 0) + count
        return merged

    @property
    def shallow_ops(self) -> int:
        return sum(n for name, n in self.tools_by_name().items() if name in SHALLOW_TOOLS)

    @property
    def deep_ops(self) -> int:
        return sum(n for name, n in self.tools_by_name().items() if name in DEEP_TOOLS)

    def tokens(self) -> tuple[TokenCounts, str]:
        """The best totals this log has, and where they came from.

        modelUsage (every model: main loop, subagents, compaction) when the result event has
        it; else the result's main-loop usage plus the subagents' de-duplicated messages; else
        (no result: a killed or truncated run) the de-duplicated messages alone, whose output
        counts are per-step placeholders and so undercount.
        """
        if self.model_usage:
            total = TokenCounts()
            for usage in self.model_usage.values():
                total.add(usage.tokens)
            return total, "modelUsage"
        if self.result_usage is not None:
            total = TokenCounts()
            total.add(self.result_usage)
            total.add(self.message_tokens_sub)
            return total, "result.usage"
        total = TokenCounts()
        total.add(self.message_tokens_main)
        total.add(self.message_tokens_sub)
        return total, "messages"

    # -- serialisation -------------------------------------------------------------------------
    def as_dict(self) -> dict[str, Any]:
        tokens, source = self.tokens()
        return {
            "lines": self.lines, "bytes": self.bytes, "events": dict(self.events),
            "unknown_events": dict(self.unknown_events), "malformed_lines": self.malformed_lines,
            "oversized_lines": self.oversized_lines,
            "truncated_last_line": self.truncated_last_line,
            "session_id": self.session_id, "claude_code_version": self.claude_code_version,
            "init_model": self.init_model, "models": list(self.models),
            "tool_calls_main": dict(self.tool_calls_main),
            "tool_calls_sub": dict(self.tool_calls_sub),
            "subagent_spawns": self.subagent_spawns, "subagent_threads": self.subagent_threads,
            "tool_results": self.tool_results, "tool_errors": dict(self.tool_errors),
            "api_calls": self.api_calls, "api_calls_sub": self.api_calls_sub,
            "api_retries": self.api_retries, "retry_statuses": dict(self.retry_statuses),
            "compactions": self.compactions,
            "message_tokens_main": self.message_tokens_main.as_dict(),
            "message_tokens_sub": self.message_tokens_sub.as_dict(),
            "has_result": self.has_result, "result_subtype": self.result_subtype,
            "result_is_error": self.result_is_error, "stop_reason": self.stop_reason,
            "duration_ms": self.duration_ms, "duration_api_ms": self.duration_api_ms,
            "num_turns": self.num_turns, "total_cost_usd": self.total_cost_usd,
            "result_usage": self.result_usage.as_dict() if self.result_usage else None,
            "model_usage": {m: u.as_dict() for m, u in self.model_usage.items()},
            "permission_denials": self.permission_denials,
            "result_errors": list(self.result_errors),
            # derived, for readers of the JSON (ignored by from_dict)
            "tokens": tokens.as_dict(), "tokens_source": source,
            "cache_hit_rate": tokens.cache_hit_rate,
            "shallow_ops": self.shallow_ops, "deep_ops": self.deep_ops,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IterationStats:
        def counts(key: str) -> dict[str, int]:
            raw = data.get(key)
            return {str(k): as_int(v) for k, v in raw.items()} if isinstance(raw, dict) else {}

        def opt_int(key: str) -> int | None:
            value = data.get(key)
            return None if value is None else as_int(value)

        def opt_str(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) else None

        raw_models = data.get("model_usage")
        return cls(
            lines=as_int(data.get("lines")), bytes=as_int(data.get("bytes")),
            events=counts("events"),
            unknown_events=counts("unknown_events"),
            malformed_lines=as_int(data.get("malformed_lines")),
            oversized_lines=as_int(data.get("oversized_lines")),
            truncated_last_line=bool(data.get("truncated_last_line")),
            session_id=opt_str("session_id"), claude_code_version=opt_str("claude_code_version"),
            init_model=opt_str("init_model"),
            models=[m for m in data.get("models") or [] if isinstance(m, str)],
            tool_calls_main=counts("tool_calls_main"), tool_calls_sub=counts("tool_calls_sub"),
            subagent_spawns=as_int(data.get("subagent_spawns")),
            subagent_threads=as_int(data.get("subagent_threads")),
            tool_results=as_int(data.get("tool_results")), tool_errors=counts("tool_errors"),
            api_calls=as_int(data.get("api_calls")),
            api_calls_sub=as_int(data.get("api_calls_sub")),
            api_retries=as_int(data.get("api_retries")), retry_statuses=counts("retry_statuses"),
            compactions=as_int(data.get("compactions")),
            message_tokens_main=TokenCounts.from_dict(data.get("message_tokens_main")),
            message_tokens_sub=TokenCounts.from_dict(data.get("message_tokens_sub")),
            has_result=bool(data.get("has_result")), result_subtype=opt_str("result_subtype"),
            result_is_error=bool(data.get("result_is_error")), stop_reason=opt_str("stop_reason"),
            duration_ms=opt_int("duration_ms"), duration_api_ms=opt_int("duration_api_ms"),
            num_turns=opt_int("num_turns"), total_cost_usd=as_num(data.get("total_cost_usd")),
            result_usage=(TokenCounts.from_dict(data["result_usage"])
                          if isinstance(data.get("result_usage"), dict) else None),
            model_usage=({str(m): ModelUsage.from_dict(u) for m, u in raw_models.items()}
                         if isinstance(raw_models, dict) else {}),
            permission_denials=as_int(data.get("permission_denials")),
            result_errors=[str(e) for e in data.get("result_errors") or []],
        )
