"""Two run summaries → a side-by-side table and findings computed from the numbers.

Every finding is built from the figures of these two runs (ratios, shares, counts); the only
fixed knowledge is what the stream format guarantees (e.g. Ollama reports no cache tokens).
Findings name the runs by their labels (else by what differs) and report only differences
beyond noise; when there are none, one finding says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Summary = dict[str, Any]


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str  # "s", "%", "usd", "" (count), "x" (plain number)
    get: Callable[[Summary], float | None]


def _t(key: str) -> Callable[[Summary], float | None]:
    return lambda s: s["totals"].get(key)


def _r(key: str) -> Callable[[Summary], float | None]:
    return lambda s: s["rates"].get(key)


def _tok(key: str) -> Callable[[Summary], float | None]:
    return lambda s: s["totals"]["tokens"].get(key)


METRICS: tuple[Metric, ...] = (
    Metric("iterations", "iterations", "", _t("iterations")),
    Metric("iterations_ok", "iterations ok", "", _t("iterations_ok")),
    Metric("success_rate", "success rate", "%", _r("success_rate")),
    Metric("wall_s_mean", "wall time / iteration", "s", _r("wall_s_mean")),
    Metric("wall_s", "wall time, total", "s", _t("wall_s")),
    Metric("api_s", "API time, total", "s", _t("api_s")),
    Metric("turns_per_iteration", "turns / iteration", "x", _r("turns_per_iteration")),
    Metric("tool_calls_per_iteration", "tool calls / iteration", "x",
           _r("tool_calls_per_iteration")),
    Metric("tool_calls", "tool calls, total", "", _t("tool_calls")),
    Metric("tool_calls_sub", "tool calls in subagents", "", _t("tool_calls_sub")),
    Metric("subagent_spawns", "subagent spawns", "", _t("subagent_spawns")),
    Metric("subagent_tool_share", "subagent share of tool calls", "%",
           _r("subagent_tool_share")),
    Metric("tool_errors", "tool errors", "", _t("tool_errors")),
    Metric("tool_error_rate", "tool error rate", "%", _r("tool_error_rate")),
    Metric("api_calls", "API calls (messages)", "", _t("api_calls")),
    Metric("api_retries", "API retries", "", _t("api_retries")),
    Metric("retry_rate", "retries / API call", "%", _r("retry_rate")),
    Metric("input", "input tokens (uncached)", "", _tok("input")),
    Metric("cache_creation", "cache-write tokens", "", _tok("cache_creation")),
    Metric("cache_read", "cache-read tokens", "", _tok("cache_read")),
    Metric("output", "output tokens", "", _tok("output")),
    Metric("prompt_tokens_per_iteration", "prompt tokens / iteration", "x",
           _r("prompt_tokens_per_iteration")),
    Metric("cache_hit_rate", "cache hit rate", "%", _t("cache_hit_rate")),
    Metric("output_tokens_per_api_s", "output tokens / API second", "x",
           _r("output_tokens_per_api_s")),
    Metric("shallow_ops", "shallow ops (Read/Grep/Glob)", "", _t("shallow_ops")),
    Metric("deep_ops", "deep ops (Edit/MultiEdit/Write/NotebookEdit)", "", _t("deep_ops")),
    Metric("deep_share", "deep share of ops", "%", _r("deep_share")),
    Metric("compactions", "context compactions", "", _t("compactions")),
    Metric("cost_usd", "cost", "usd", _t("cost_usd")),
)


def _diff(a: float | None, b: float | None) -> tuple[float | None, float | None]:
    if a is None or b is None:
        return None, None
    return b - a, ((b - a) / a if a else None)


# Differences smaller than these are noise: not findings (agent runs vary run to run).
NOISE_REL = 0.10  # relative, for amounts and ratios
NOISE_PP = 0.05  # absolute, for shares (5 percentage points)


def labels(summary: Summary) -> dict[str, Any]:
    run = summary["run"]
    return {"id": run["id"], "label": run.get("label") or "", "backend": run["backend"],
            "model": run.get("model") or ", ".join(run.get("models") or []) or "default",
            "date": run["created_at"], "status": run["status"],
            "claude_version": run.get("claude_version"), "base_url": run.get("base_url")}


def run_names(a: Summary, b: Summary) -> tuple[str, str]:
    """What to call the two runs: their labels; else what differs between them (Claude Code
    version, backend, model); else their ids."""
    la, lb = labels(a), labels(b)
    fa, fb = la["id"], lb["id"]
    for key, form in (("claude_version", "Claude Code {}"), ("backend", "{}"), ("model", "{}")):
        va, vb = la.get(key), lb.get(key)
        if va and vb and va != vb:
            fa, fb = form.format(va), form.format(vb)
            break
    na, nb = la["label"] or fa, lb["label"] or fb
    if na == nb:
        na, nb = fa, fb
    if na == nb:
        na, nb = f"A {na}", f"B {nb}"
    return na, nb


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def _times(r: float) -> str:
    return f"{r:.2f}×"


def _finding(topic: str, text: str, **values: Any) -> dict[str, Any]:
    return {"topic": topic, "text": text, "values": values}


def beyond_noise(a: float | None, b: float | None) -> bool:
    """Amounts that differ by more than NOISE_REL (one missing counts as a difference)."""
    if a is None or b is None:
        return (a is None) != (b is None)
    top = max(abs(a), abs(b))
    return bool(top) and abs(a - b) / top > NOISE_REL


def shares_differ(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return (a is None) != (b is None)
    return abs(a - b) > NOISE_PP


def _comparability(a: Summary, b: Summary, na: str, nb: str) -> list[dict[str, Any]]:
    out = []
    ra, rb = a["run"], b["run"]
    if ra.get("prompt_sha256") and rb.get("prompt_sha256") and \
            ra["prompt_sha256"] != rb["prompt_sha256"]:
        out.append(_finding("fairness", "the runs used different prompts or goals: the "
                            "differences below may come from the task, not the backend",
                            a=ra["prompt_sha256"][:12], b=rb["prompt_sha256"][:12]))
    va, vb = ra.get("claude_version"), rb.get("claude_version")
    if va and vb and va != vb and (na, nb) != (f"Claude Code {va}", f"Claude Code {vb}"):
        out.append(_finding("fairness", f"different Claude Code versions ({va} vs {vb})",
                            a=va, b=vb))
    ia, ib = a["totals"]["iterations"], b["totals"]["iterations"]
    if ia != ib:
        out.append(_finding("fairness", f"different numbers of iterations ({ia} vs {ib}): "
                            "compare the per-iteration figures, not the totals", a=ia, b=ib))
    for name, s in ((na, a), (nb, b)):
        failed = s["totals"]["iterations_failed"]
        if failed:
            kinds: dict[str, int] = {}
            for it in s["iterations"]:
                if it["status"] != "ok":
                    kinds[it["status"]] = kinds.get(it["status"], 0) + 1
            detail = ", ".join(f"{k} {v}" for k, v in kinds.items())
            out.append(_finding("reliability", f"{name}: {failed} of "
                                f"{s['totals']['iterations']} iterations did not succeed "
                                f"({detail})", failed=failed, kinds=kinds))
    return out


def _wall(a: Summary, b: Summary, na: str, nb: str) -> list[dict[str, Any]]:
    wa, wb = a["rates"]["wall_s_mean"], b["rates"]["wall_s_mean"]
    out = []
    if wa and wb and beyond_noise(wa, wb):
        r = wb / wa
        out.append(_finding("wall_time", f"{nb} took {_times(r)} the wall time of {na} per "
                            f"iteration ({wb:.1f} s vs {wa:.1f} s)", a=wa, b=wb, ratio=r))
    shares = []
    for name, s in ((na, a), (nb, b)):
        wall, api = s["totals"]["wall_s"], s["totals"]["api_s"]
        shares.append((name, min(api / wall, 1.0) if wall and api else None))
    if all(v is not None for _, v in shares) and shares_differ(shares[0][1], shares[1][1]):
        out.append(_finding("wall_time", "share of wall time spent waiting on the model API: "
                            + ", ".join(f"{n} {_pct(v or 0.0)}" for n, v in shares),
                            shares={n: v for n, v in shares}))
    return out


def _caching(a: Summary, b: Summary, na: str, nb: str) -> list[dict[str, Any]]:
    out = []
    ta, tb = a["totals"], b["totals"]
    rates = (ta["cache_hit_rate"] if ta["cache_reported"] else None,
             tb["cache_hit_rate"] if tb["cache_reported"] else None)
    if ta["cache_reported"] != tb["cache_reported"] or shares_differ(*rates):
        for name, s in ((na, a), (nb, b)):
            t = s["totals"]
            prompt = t["prompt_tokens"]
            if not prompt:
                continue
            if not t["cache_reported"]:
                why = " (Ollama never reports them)" if s["run"]["backend"] == "ollama" else ""
                out.append(_finding("caching", f"{name} reports no cache tokens{why}: all "
                                    f"{prompt} prompt tokens count as fresh input; any KV-cache "
                                    "reuse shows only in wall time", prompt_tokens=prompt))
                continue
            rate = t["cache_hit_rate"] or 0.0
            fresh = t["tokens"]["input"] + t["tokens"]["cache_creation"]
            text = (f"{name} read {_pct(rate)} of its prompt tokens from the prompt cache "
                    f"({t['tokens']['cache_read']} of {prompt})")
            if fresh:
                text += (f"; without the cache it would have processed {prompt / fresh:.1f}× "
                         f"the {fresh} prompt tokens it did")
            out.append(_finding("caching", text, cache_hit_rate=rate, prompt_tokens=prompt,
                                cache_read=t["tokens"]["cache_read"]))
    pa, pb = a["rates"]["prompt_tokens_per_iteration"], b["rates"]["prompt_tokens_per_iteration"]
    if pa and pb and beyond_noise(pa, pb):
        out.append(_finding("tokens", f"{nb} sent {_times(pb / pa)} the prompt tokens per "
                            f"iteration of {na} ({pb:.0f} vs {pa:.0f})", a=pa, b=pb,
                            ratio=pb / pa))
    return out


def _fan_out(a: Summary, b: Summary, na: str, nb: str) -> list[dict[str, Any]]:
    sa, sb = a["rates"]["spawns_per_iteration"] or 0.0, b["rates"]["spawns_per_iteration"] or 0.0
    share_a, share_b = a["rates"]["subagent_tool_share"], b["rates"]["subagent_tool_share"]
    if not beyond_noise(sa, sb) and not shares_differ(share_a, share_b):
        return []
    parts = []
    for name, s, spawns in ((na, a, sa), (nb, b, sb)):
        share = s["rates"]["subagent_tool_share"]
        parts.append(f"{name} {spawns:.1f} spawns per iteration"
                     + (f", {_pct(share)} of its tool calls inside subagents"
                        if share is not None else ""))
    return [_finding("subagents", "subagent fan-out: " + "; ".join(parts), a=sa, b=sb)]


def _errors(a: Summary, b: Summary, na: str, nb: str) -> list[dict[str, Any]]:
    out = []
    parts = []
    for name, s in ((na, a), (nb, b)):
        t = s["totals"]
        rate = s["rates"]["tool_error_rate"]
        parts.append(f"{name} {t['tool_errors']} of {t['tool_results']} tool results"
                     + (f" ({_pct(rate)})" if rate is not None else ""))
    ra, rb = a["rates"]["tool_error_rate"] or 0.0, b["rates"]["tool_error_rate"] or 0.0
    if (a["totals"]["tool_errors"] or b["totals"]["tool_errors"]) and shares_differ(ra, rb):
        out.append(_finding("errors", "tool errors: " + "; ".join(parts),
                            a=a["rates"]["tool_error_rate"], b=b["rates"]["tool_error_rate"]))
    qa, qb = a["rates"]["retry_rate"] or 0.0, b["rates"]["retry_rate"] or 0.0
    if (a["totals"]["api_retries"] or b["totals"]["api_retries"]) and shares_differ(qa, qb):
        parts = []
        for name, s in ((na, a), (nb, b)):
            t = s["totals"]
            statuses = ", ".join(f"{k}×{v}" for k, v in t["retry_statuses"].items())
            parts.append(f"{name} {t['api_retries']} in {t['api_calls']} API calls"
                         + (f" ({statuses})" if statuses else ""))
        out.append(_finding("retries", "API retries: " + "; ".join(parts),
                            a=a["rates"]["retry_rate"], b=b["rates"]["retry_rate"]))
    return out


def _work(a: Summary, b: Summary, na: str, nb: str) -> list[dict[str, Any]]:
    out = []
    ta, tb = a["rates"]["turns_per_iteration"], b["rates"]["turns_per_iteration"]
    ca, cb = a["rates"]["tool_calls_per_iteration"], b["rates"]["tool_calls_per_iteration"]
    calls = (f"{cb or 0:.1f} vs {ca or 0:.1f} tool calls per iteration"
             if beyond_noise(ca or 0.0, cb or 0.0) else "")
    if ta and tb and beyond_noise(ta, tb):
        out.append(_finding("turns", f"{nb} needed {_times(tb / ta)} the turns per iteration "
                            f"of {na} ({tb:.1f} vs {ta:.1f})"
                            + (f" and made {calls}" if calls else ""), a=ta, b=tb))
    elif calls:
        out.append(_finding("turns", f"{nb} made {calls} of {na}", a=ca, b=cb))
    da, db = a["rates"]["deep_share"], b["rates"]["deep_share"]
    if da is not None and db is not None and shares_differ(da, db):
        out.append(_finding("work_mix", f"deep operations (edits/writes) were {_pct(db)} of "
                            f"{nb}'s file operations vs {_pct(da)} for {na} "
                            f"({b['totals']['deep_ops']} vs {a['totals']['deep_ops']} deep, "
                            f"{b['totals']['shallow_ops']} vs {a['totals']['shallow_ops']} "
                            "shallow)", a=da, b=db))
    oa, ob = a["rates"]["output_tokens_per_api_s"], b["rates"]["output_tokens_per_api_s"]
    if oa and ob and beyond_noise(oa, ob):
        out.append(_finding("throughput", f"output tokens per API second: {nb} {ob:.1f}, "
                            f"{na} {oa:.1f} ({_times(ob / oa)})", a=oa, b=ob))
    return out


def _cost(a: Summary, b: Summary, na: str, nb: str) -> list[dict[str, Any]]:
    ca, cb = a["totals"]["cost_usd"], b["totals"]["cost_usd"]
    if ca is not None and cb is not None:
        ia, ib = a["totals"]["iterations"] or 1, b["totals"]["iterations"] or 1
        if not beyond_noise(ca / ia, cb / ib):
            return []
        return [_finding("cost", f"estimated cost per iteration: {na} ${ca / ia:.4f}, "
                         f"{nb} ${cb / ib:.4f}", a=ca, b=cb)]
    known = [(n, c) for n, c in ((na, ca), (nb, cb)) if c is not None]
    if known:
        other = nb if known[0][0] == na else na
        s = b if other == nb else a
        return [_finding("cost", f"only {known[0][0]} has a meaningful cost "
                         f"(${known[0][1]:.4f}); {other}: {s['totals']['cost_note']}")]
    return []


def _quality(a: Summary, b: Summary, na: str, nb: str) -> list[dict[str, Any]]:
    out = []
    for name, s in ((na, a), (nb, b)):
        st = s["totals"]["stream"]
        unknown = sum(st["unknown_events"].values())
        bad = st["malformed_lines"] + st["oversized_lines"]
        if unknown or bad or st["truncated_last_lines"]:
            out.append(_finding("data", f"{name}'s logs had {unknown} unknown events, {bad} "
                                f"malformed or oversized lines and {st['truncated_last_lines']} "
                                "truncated last lines (counted, not fatal)",
                                unknown=unknown, malformed=bad))
    return out


CONTEXT_TOPICS = frozenset({"fairness", "reliability", "data"})  # about the runs, not results


def compare(a: Summary, b: Summary) -> dict[str, Any]:
    rows = []
    for m in METRICS:
        va, vb = m.get(a), m.get(b)
        diff, rel = _diff(va, vb)
        rows.append({"key": m.key, "label": m.label, "unit": m.unit, "a": va, "b": vb,
                     "diff": diff, "rel": rel})
    na, nb = run_names(a, b)
    findings: list[dict[str, Any]] = []
    for rule in (_comparability, _wall, _caching, _fan_out, _errors, _work, _cost, _quality):
        findings += rule(a, b, na, nb)
    if not any(f["topic"] not in CONTEXT_TOPICS for f in findings):
        findings.append(_finding(
            "no_difference", f"no difference between {na} and {nb} beyond noise (under "
            f"{NOISE_REL:.0%} in time, turns, tool calls, tokens and cost, under "
            f"{NOISE_PP * 100:.0f} points in shares)"))
    return {"a": {**labels(a), "name": na}, "b": {**labels(b), "name": nb}, "metrics": rows,
            "findings": findings,
            "cost_notes": {"a": a["totals"]["cost_note"], "b": b["totals"]["cost_note"]}}
