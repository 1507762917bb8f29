"""Human renderings of analytics data: strings out, never printed here."""

from __future__ import annotations

from typing import Any

from aiclient.analytics.records import IterationRecord
from aiclient.analytics.summary import iteration_row
from aicommon.output import table


def figure(value: Any, unit: str = "", *, signed: bool = False) -> str:
    """One number as the tables show it; None is "-" ("n/a" for a cost)."""
    if value is None:
        return "n/a" if unit == "usd" else "-"
    sign = "+" if signed and value > 0 else ""
    if unit == "%":
        return f"{sign}{value * 100:.1f}" + (" pp" if signed else "%")
    if unit == "s":
        return f"{sign}{value:.1f} s"
    if unit == "usd":
        return f"{sign}${value:.4f}" if value >= 0 else f"-${-value:.4f}"
    if unit == "x" or (isinstance(value, float) and not value.is_integer()):
        return f"{sign}{value:,.0f}" if abs(value) >= 1000 else f"{sign}{value:.2f}"
    return f"{sign}{int(value):,}"


def short(n: float) -> str:
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= size:
            return f"{n / size:.1f}{suffix}"
    return f"{n:.0f}"


def iteration_line(rec: IterationRecord, total: int, backend: str) -> str:
    """The live one-line summary printed after each iteration."""
    row = iteration_row(rec, backend)
    tok = row["tokens"]
    prompt = tok["input"] + tok["cache_creation"] + tok["cache_read"]
    parts = [f"iteration {rec.n}/{total} {rec.status}",
             figure(row["wall_s"], "s"),
             f"{row['turns'] if row['turns'] is not None else '?'} turns",
             f"{row['tool_calls']} tool calls"
             + (f" ({row['tool_calls_sub']} in subagents)" if row["tool_calls_sub"] else ""),
             f"{row['tool_errors']} tool errors", f"{row['api_retries']} retries",
             f"tokens {short(prompt)} in"
             + (f" ({row['cache_hit_rate'] * 100:.0f}% cache)"
                if row["cache_hit_rate"] is not None and backend != "ollama" else "")
             + f", {short(tok['output'])} out",
             "cost " + figure(row["cost_usd"], "usd")]
    line = "  ".join(parts)
    if rec.error:
        line += f"  — {rec.error}"
    return line


def _cache_text(t: dict[str, Any], backend: str) -> str:
    rate = figure(t["cache_hit_rate"], "%")
    if not t["cache_reported"] and backend == "ollama":
        return f"{rate} (Ollama reports no cache tokens)"
    return rate


def run_report(s: dict[str, Any]) -> str:
    run, t, r = s["run"], s["totals"], s["rates"]
    tok = t["tokens"]
    lines = [
        f"run {run['id']}" + (f"  [{run['label']}]" if run.get("label") else ""),
        f"  backend      {run['backend']}  {run.get('base_url') or ''}".rstrip(),
        f"  model        {run.get('model') or 'default'}"
        + (f"  (seen: {', '.join(t['models'])})" if t["models"] else ""),
        f"  claude code  {run.get('claude_version') or 'unknown'}",
        f"  started      {run['created_at']}   finished {run.get('finished_at') or '-'}",
        f"  status       {run['status']}: {t['iterations']}/{run['iterations_planned']} "
        f"iterations, {t['iterations_ok']} ok",
        f"  directory    {run['directory']}",
        "",
        f"  wall time    {figure(t['wall_s'], 's')} (mean {figure(r['wall_s_mean'], 's')} per "
        f"iteration); API {figure(t['api_s'], 's')}",
        f"  turns        {t['turns']}",
        f"  tool calls   {t['tool_calls']} ({t['tool_calls_main']} main thread, "
        f"{t['tool_calls_sub']} in subagents); {t['subagent_spawns']} subagent spawns",
        f"  tool errors  {t['tool_errors']} of {t['tool_results']} results "
        f"({figure(r['tool_error_rate'], '%')})",
        f"  API          {t['api_calls']} calls, {t['api_retries']} retries, "
        f"{t['compactions']} compactions",
        f"  tokens       {tok['input']:,} input + {tok['cache_creation']:,} cache write + "
        f"{tok['cache_read']:,} cache read; {tok['output']:,} output "
        f"(from {t['tokens_source'] or '-'})",
        f"  cache hits   {_cache_text(t, run['backend'])}",
        "  cost         " + (t["cost_note"] if t["cost_usd"] is None and t["cost_note"] else
                             figure(t["cost_usd"], "usd")
                             + (f" ({t['cost_note']})" if t["cost_note"] else "")),
        f"  ops          {t['shallow_ops']} shallow (Read/Grep/Glob), {t['deep_ops']} deep "
        f"(Edit/MultiEdit/Write/NotebookEdit)",
    ]
    stream = t["stream"]
    unknown = sum(stream["unknown_events"].values())
    if unknown or stream["malformed_lines"] or stream["oversized_lines"] or \
            stream["truncated_last_lines"]:
        lines.append(f"  log quality  {unknown} unknown events "
                     f"({', '.join(f'{k}×{v}' for k, v in stream['unknown_events'].items())}), "
                     f"{stream['malformed_lines']} malformed, {stream['oversized_lines']} "
                     f"oversized lines, {stream['truncated_last_lines']} truncated last lines")
    if t["tools"]:
        lines += ["", "  tools        " + ", ".join(f"{k} {v}" for k, v in t["tools"].items())]
    if s["iterations"]:
        rows = [[str(it["n"]), it["status"], figure(it["wall_s"], "s"),
                 figure(it["turns"]), str(it["tool_calls"]), str(it["tool_errors"]),
                 str(it["api_retries"]),
                 short(it["tokens"]["input"] + it["tokens"]["cache_creation"]
                       + it["tokens"]["cache_read"]),
                 short(it["tokens"]["output"]), figure(it["cost_usd"], "usd"),
                 it["error"] or ""] for it in s["iterations"]]
        lines += ["", table(rows, ["#", "STATUS", "WALL", "TURNS", "TOOLS", "ERRORS",
                                   "RETRIES", "IN", "OUT", "COST", "NOTE"])]
    return "\n".join(lines)


def list_table(runs: list[dict[str, Any]]) -> str:
    if not runs:
        return "no runs yet: start one with `ai-client analytics run`"
    rows = [[r["id"], r["created_at"], r["backend"], r.get("model") or "default",
             f"{r['iterations']}/{r['iterations_planned']}", r["status"],
             figure(r["wall_s"], "s"), short(r["tokens"]), r.get("label") or ""]
            for r in runs]
    return table(rows, ["RUN", "DATE", "BACKEND", "MODEL", "ITER", "STATUS", "WALL", "TOKENS",
                        "LABEL"])


def compare_report(result: dict[str, Any]) -> str:
    a, b = result["a"], result["b"]
    lines = [f"{tag}  " + (f"{r['name']}  " if r.get("name") not in (None, r["id"]) else "")
             + f"{r['id']}  {r['backend']}  {r['model']}  {r['date']}"
             + (f"  [{r['label']}]" if r["label"] and r["label"] != r.get("name") else "")
             for tag, r in (("A", a), ("B", b))] + [""]
    rows = [[m["label"], figure(m["a"], m["unit"]), figure(m["b"], m["unit"]),
             figure(m["diff"], m["unit"], signed=True),
             f"{m['rel'] * 100:+.1f}%" if m["rel"] is not None else "-"]
            for m in result["metrics"]]
    lines.append(table(rows, ["FIGURE", "A", "B", "B - A", "RELATIVE"]))
    if result["findings"]:
        lines += ["", "findings:"] + [f"  - {f['text']}" for f in result["findings"]]
    return "\n".join(lines)
