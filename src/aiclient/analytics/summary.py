"""A run's iterations → one summary: totals, per-iteration rows, rates. Pure functions."""

from __future__ import annotations

import statistics
from typing import Any

from aiclient.analytics.records import OK, IterationRecord, RunInfo
from aiclient.analytics.stats import DEEP_TOOLS, SHALLOW_TOOLS, IterationStats, TokenCounts

COST_NA_OLLAMA = "n/a: Ollama models (Claude Code's price table does not apply)"
COST_NA_MODEL = "n/a: not an Anthropic model (Claude Code's price table does not apply)"


def cost_meaningful(backend: str, models: list[str]) -> tuple[bool, str | None]:
    """Claude Code's cost figures are client-side price-table estimates: only Anthropic's own
    models on the cloud have a price. Returns (meaningful, why not)."""
    if backend == "ollama":
        return False, COST_NA_OLLAMA
    if any(not m.startswith("claude") for m in models):
        return False, COST_NA_MODEL
    return True, None


def ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def _sorted_counts(counts: dict[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _merge(into: dict[str, int], counts: dict[str, int]) -> None:
    for key, value in counts.items():
        into[key] = into.get(key, 0) + value


def iteration_wall_s(rec: IterationRecord) -> float | None:
    """The runner's own clock, else (imported logs) the result event's duration."""
    if rec.wall_s is not None:
        return rec.wall_s
    if rec.stats.duration_ms is not None:
        return rec.stats.duration_ms / 1000
    return None


def iteration_row(rec: IterationRecord, backend: str) -> dict[str, Any]:
    st = rec.stats
    tokens, source = st.tokens()
    meaningful, _ = cost_meaningful(backend, st.models)
    return {
        "n": rec.n, "status": rec.status, "exit_code": rec.exit_code,
        "started_at": rec.started_at, "finished_at": rec.finished_at,
        "wall_s": iteration_wall_s(rec),
        "duration_s": st.duration_ms / 1000 if st.duration_ms is not None else None,
        "api_s": st.duration_api_ms / 1000 if st.duration_api_ms is not None else None,
        "turns": st.num_turns, "result_subtype": st.result_subtype,
        "tool_calls": st.tool_calls, "tool_calls_sub": sum(st.tool_calls_sub.values()),
        "tools": _sorted_counts(st.tools_by_name()),
        "subagent_spawns": st.subagent_spawns, "tool_errors": st.tool_error_count,
        "api_calls": st.api_calls, "api_retries": st.api_retries,
        "tokens": tokens.as_dict(), "tokens_source": source,
        "cache_hit_rate": tokens.cache_hit_rate,
        "cost_usd": st.total_cost_usd if meaningful else None,
        "shallow_ops": st.shallow_ops, "deep_ops": st.deep_ops,
        "models": list(st.models), "claude_code_version": st.claude_code_version,
        "unknown_events": sum(st.unknown_events.values()),
        "malformed_lines": st.malformed_lines, "truncated_last_line": st.truncated_last_line,
        "error": rec.error, "push": rec.push, "raw_file": rec.raw_file,
    }


def summarize(info: RunInfo, records: list[IterationRecord]) -> dict[str, Any]:
    """Everything `show`, `list` and `compare` report about one run."""
    tools_main: dict[str, int] = {}
    tools_sub: dict[str, int] = {}
    errors_by_tool: dict[str, int] = {}
    retry_statuses: dict[str, int] = {}
    unknown: dict[str, int] = {}
    tokens = TokenCounts()
    models: dict[str, None] = {}
    versions: dict[str, None] = {}
    sources: dict[str, None] = {}
    walls: list[float] = []
    api_s = duration_s = 0.0
    turns = spawns = threads = results = retries = api_calls = api_calls_sub = 0
    compactions = denials = lines = size = malformed = oversized = truncated = 0
    costs: list[float] = []
    for rec in records:
        st: IterationStats = rec.stats
        _merge(tools_main, st.tool_calls_main)
        _merge(tools_sub, st.tool_calls_sub)
        _merge(errors_by_tool, st.tool_errors)
        _merge(retry_statuses, st.retry_statuses)
        _merge(unknown, st.unknown_events)
        it_tokens, source = st.tokens()
        tokens.add(it_tokens)
        sources[source] = None
        for m in st.models:
            models[m] = None
        if st.claude_code_version:
            versions[st.claude_code_version] = None
        wall = iteration_wall_s(rec)
        if wall is not None:
            walls.append(wall)
        api_s += (st.duration_api_ms or 0) / 1000
        duration_s += (st.duration_ms or 0) / 1000
        turns += st.num_turns or 0
        spawns += st.subagent_spawns
        threads += st.subagent_threads
        results += st.tool_results
        retries += st.api_retries
        api_calls += st.api_calls
        api_calls_sub += st.api_calls_sub
        compactions += st.compactions
        denials += st.permission_denials
        lines += st.lines
        size += st.bytes
        malformed += st.malformed_lines
        oversized += st.oversized_lines
        truncated += st.truncated_last_line
        if st.total_cost_usd is not None:
            costs.append(st.total_cost_usd)
    model_list = list(models) or ([info.model] if info.model else [])
    meaningful, cost_note = cost_meaningful(info.backend, model_list)
    done = len(records)
    ok = sum(1 for r in records if r.status == OK)
    if meaningful and len(costs) < done:
        cost_note = f"partial: {done - len(costs)} iteration(s) ended without a cost figure"
    all_tools: dict[str, int] = dict(tools_main)
    _merge(all_tools, tools_sub)
    calls_main = sum(tools_main.values())
    calls_sub = sum(tools_sub.values())
    calls = calls_main + calls_sub
    errors = sum(errors_by_tool.values())
    shallow = sum(n for t, n in all_tools.items() if t in SHALLOW_TOOLS)
    deep = sum(n for t, n in all_tools.items() if t in DEEP_TOOLS)
    cache_reported = tokens.cache_read + tokens.cache_creation > 0
    totals = {
        "iterations": done, "iterations_ok": ok, "iterations_failed": done - ok,
        "wall_s": sum(walls), "duration_s": duration_s, "api_s": api_s, "turns": turns,
        "tool_calls": calls, "tool_calls_main": calls_main, "tool_calls_sub": calls_sub,
        "tools": _sorted_counts(all_tools), "tools_main": _sorted_counts(tools_main),
        "tools_sub": _sorted_counts(tools_sub),
        "subagent_spawns": spawns, "subagent_threads": threads,
        "tool_results": results, "tool_errors": errors,
        "tool_errors_by_tool": _sorted_counts(errors_by_tool),
        "api_calls": api_calls, "api_calls_sub": api_calls_sub, "api_retries": retries,
        "retry_statuses": _sorted_counts(retry_statuses), "compactions": compactions,
        "permission_denials": denials,
        "tokens": tokens.as_dict(), "tokens_source": "+".join(sources) or None,
        "prompt_tokens": tokens.prompt_total, "cache_hit_rate": tokens.cache_hit_rate,
        "cache_reported": cache_reported,
        "cost_usd": sum(costs) if meaningful and costs else None, "cost_note": cost_note,
        "shallow_ops": shallow, "deep_ops": deep,
        "models": model_list, "claude_code_versions": list(versions),
        "stream": {"lines": lines, "bytes": size, "unknown_events": _sorted_counts(unknown),
                   "malformed_lines": malformed, "oversized_lines": oversized,
                   "truncated_last_lines": truncated},
    }
    rates = {
        "success_rate": ratio(ok, done),
        "wall_s_mean": statistics.fmean(walls) if walls else None,
        "wall_s_median": statistics.median(walls) if walls else None,
        "turns_per_iteration": ratio(turns, done),
        "tool_calls_per_iteration": ratio(calls, done),
        "spawns_per_iteration": ratio(spawns, done),
        "subagent_tool_share": ratio(calls_sub, calls),
        "tool_error_rate": ratio(errors, results),
        "retry_rate": ratio(retries, api_calls),
        "deep_share": ratio(deep, shallow + deep),
        "prompt_tokens_per_iteration": ratio(tokens.prompt_total, done),
        "output_tokens_per_iteration": ratio(tokens.output, done),
        "output_tokens_per_api_s": ratio(tokens.output, api_s),
    }
    run = info.as_dict()
    run["models"] = model_list
    if not run["claude_version"] and versions:
        run["claude_version"] = next(iter(versions))
    return {"run": run, "totals": totals, "rates": rates,
            "iterations": [iteration_row(r, info.backend) for r in records]}
