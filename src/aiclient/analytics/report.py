"""`compare --html`: one self-contained page — inline CSS and inline SVG charts, no scripts,
no external references of any kind (it must open offline, years later, as it was)."""

from __future__ import annotations

import math
from html import escape
from typing import Any

from aiclient.analytics.compare import NOISE_PP, NOISE_REL, Summary
from aiclient.analytics.text import figure

SERIES_COLORS = ("#3867d6", "#e67e22")  # A, B
# Prompt tokens (the three kinds of input) on one chart; output tokens, often a hundredth of
# them, get a chart of their own so they stay visible.
PROMPT_SEGMENTS = (("input", "uncached input", "#4b6584"),
                   ("cache_creation", "cache write", "#a55eea"),
                   ("cache_read", "cache read", "#26de81"))
OUTPUT_SEGMENT = ("output", "output", "#2d3436")
MAX_TOOLS = 14
# The most used tools in order (the rest are "other"): hues far from both series colours
# (blue, orange), so a tool never reads as a run.
TOOL_COLORS = ("#20bf6b", "#e84393", "#a29bfe", "#0fb9b1", "#6d214f", "#2d3436", "#95a30b",
               "#badc58")
OTHER_COLOR = "#c8c8c8"
CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1600px;
color:#222;padding:0 1.5em}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}
td,th{border-bottom:1px solid #ddd;padding:.25em .7em;text-align:right}
td:first-child,th:first-child{text-align:left}
.a{color:#3867d6}.b{color:#e67e22}.muted{color:#777}
svg{display:block;margin:.5em 0 1.5em;width:100%;max-width:100%;height:auto}
svg text{font:11px system-ui,sans-serif;fill:#333}
li{margin:.2em 0}
"""


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exp = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exp:
            return step * exp
    return 10 * exp


def _short(value: float) -> str:
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


Segment = tuple[str, float, str]  # name, value, colour
CHART_WIDTH = 1200  # viewBox units; the SVG itself is as wide as the page


def bar_chart(title: str, categories: list[str], series: list[tuple[str, list[list[Segment]]]],
              unit: str, legend: list[tuple[str, str]]) -> str:
    """Vertical grouped bars (one group per category, one bar per series); each bar is a stack
    of segments. Returns an <svg> element."""
    width, height, left, top, bottom = CHART_WIDTH, 300, 64, 34, 48
    plot_w, plot_h = width - left - 16, height - top - bottom
    totals = [sum(v for _, v, _ in bar) for _, bars in series for bar in bars]
    vmax = _nice_max(max(totals, default=0.0))
    parts = [f'<svg role="img" aria-label="{_e(title)}" viewBox="0 0 {width} {height}" '
             'width="100%">',
             f'<text x="{left}" y="16" font-weight="bold">{_e(title)}</text>']
    for i in range(5):
        value = vmax * i / 4
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
                     'stroke="#e5e5e5"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f'{_e(_short(value))}{_e(unit)}</text>')
    n_cat = max(len(categories), 1)
    group_w = plot_w / n_cat
    bar_w = min(40.0, group_w * 0.8 / max(len(series), 1))
    for ci, cat in enumerate(categories):
        gx = left + ci * group_w + (group_w - bar_w * len(series)) / 2
        for si, (sname, bars) in enumerate(series):
            bar = bars[ci] if ci < len(bars) else []
            x = gx + si * bar_w
            y = top + plot_h
            for seg_name, value, colour in bar:
                h = plot_h * value / vmax
                y -= h
                parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w - 2:.1f}" '
                             f'height="{h:.1f}" fill="{colour}"><title>{_e(sname)} '
                             f'{_e(cat)}: {_e(seg_name)} {_e(_short(value))}{_e(unit)}'
                             '</title></rect>')
            if len(series) > 1 and bar:
                parts.append(f'<text x="{x + bar_w / 2 - 1:.1f}" y="{top + plot_h + 12}" '
                             f'text-anchor="middle">{_e(sname)}</text>')
        parts.append(f'<text x="{left + ci * group_w + group_w / 2:.1f}" '
                     f'y="{top + plot_h + 26}" text-anchor="middle">{_e(cat)}</text>')
    lx = left
    for name, colour in legend:
        parts.append(f'<rect x="{lx}" y="{height - 14}" width="10" height="10" '
                     f'fill="{colour}"/><text x="{lx + 14}" y="{height - 5}">{_e(name)}</text>')
        lx += 24 + 7 * len(name)
    parts.append("</svg>")
    return "".join(parts)


def tool_chart(title: str, mixes: list[tuple[str, dict[str, int], str]]) -> str:
    """Horizontal bars: calls per tool name, one bar per run."""
    names: dict[str, int] = {}
    for _, mix, _ in mixes:
        for tool, n in mix.items():
            names[tool] = names.get(tool, 0) + n
    tools = [t for t, _ in sorted(names.items(), key=lambda kv: (-kv[1], kv[0]))]
    shown, rest = tools[:MAX_TOOLS], tools[MAX_TOOLS:]
    rows: list[tuple[str, list[int]]] = [(t, [mix.get(t, 0) for _, mix, _ in mixes])
                                         for t in shown]
    if rest:
        rows.append(("other", [sum(mix.get(t, 0) for t in rest) for _, mix, _ in mixes]))
    label_w, bar_h, top = 130, 12, 30
    row_h = bar_h * len(mixes) + 8
    width = CHART_WIDTH
    height = top + row_h * max(len(rows), 1) + 24
    vmax = _nice_max(max((v for _, vals in rows for v in vals), default=0))
    plot_w = width - label_w - 60
    parts = [f'<svg role="img" aria-label="{_e(title)}" viewBox="0 0 {width} {height}" '
             'width="100%">',
             f'<text x="0" y="16" font-weight="bold">{_e(title)}</text>']
    for ri, (tool, vals) in enumerate(rows):
        y0 = top + ri * row_h
        parts.append(f'<text x="{label_w - 8}" y="{y0 + bar_h * len(mixes) / 2 + 4:.1f}" '
                     f'text-anchor="end">{_e(tool)}</text>')
        for si, ((run_name, _, colour), value) in enumerate(zip(mixes, vals, strict=True)):
            w = plot_w * value / vmax
            y = y0 + si * bar_h
            if not value:  # no bar, and no "0" floating where a bar would be
                continue
            parts.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h - 2}" '
                         f'fill="{colour}"><title>{_e(run_name)} {_e(tool)}: {value}</title>'
                         f'</rect><text x="{label_w + w + 4:.1f}" y="{y + bar_h - 3}">'
                         f'{value}</text>')
    lx = label_w
    for run_name, _, colour in mixes:
        parts.append(f'<rect x="{lx}" y="{height - 14}" width="10" height="10" '
                     f'fill="{colour}"/><text x="{lx + 14}" y="{height - 5}">'
                     f'{_e(run_name)}</text>')
        lx += 24 + 7 * len(run_name)
    parts.append("</svg>")
    return "".join(parts)


def _per_iteration(a: Summary, b: Summary) -> list[str]:
    count = max(len(a["iterations"]), len(b["iterations"]))
    return [str(i + 1) for i in range(count)]


def _wall_bars(s: Summary, colour: str, n: int) -> list[list[Segment]]:
    bars: list[list[Segment]] = []
    its = s["iterations"]
    for i in range(n):
        wall = its[i]["wall_s"] if i < len(its) else None
        bars.append([("wall", float(wall), colour)] if wall is not None else [])
    return bars


def _token_bars(s: Summary, n: int,
                segments: tuple[tuple[str, str, str], ...]) -> list[list[Segment]]:
    bars: list[list[Segment]] = []
    its = s["iterations"]
    for i in range(n):
        if i >= len(its):
            bars.append([])
            continue
        tokens = its[i]["tokens"]
        bars.append([(label, float(tokens.get(key, 0)), colour)
                     for key, label, colour in segments if tokens.get(key)])
    return bars


def _tool_palette(a: Summary, b: Summary) -> dict[str, str]:
    totals: dict[str, int] = {}
    for s in (a, b):
        for tool, n in s["totals"]["tools"].items():
            totals[tool] = totals.get(tool, 0) + n
    ranked = [t for t, _ in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))]
    return dict(zip(ranked, TOOL_COLORS, strict=False))


def _tool_bars(s: Summary, n: int, palette: dict[str, str]) -> list[list[Segment]]:
    bars: list[list[Segment]] = []
    its = s["iterations"]
    for i in range(n):
        tools: dict[str, int] = its[i]["tools"] if i < len(its) else {}
        bar: list[Segment] = [(t, float(tools[t]), c) for t, c in palette.items() if t in tools]
        other = sum(v for t, v in tools.items() if t not in palette)
        if other:
            bar.append(("other", float(other), OTHER_COLOR))
        bars.append(bar)
    return bars


def _metric_rows(result: dict[str, Any]) -> str:
    rows = []
    for m in result["metrics"]:
        rel = m["rel"]
        rows.append(f"<tr><td>{_e(m['label'])}</td><td>{_e(figure(m['a'], m['unit']))}</td>"
                    f"<td>{_e(figure(m['b'], m['unit']))}</td>"
                    f"<td>{_e(figure(m['diff'], m['unit'], signed=True))}</td>"
                    f"<td>{_e(f'{rel * 100:+.1f}%' if rel is not None else '-')}</td></tr>")
    return "".join(rows)


def render_html(a: Summary, b: Summary, result: dict[str, Any]) -> str:
    la, lb = result["a"], result["b"]
    name_a, name_b = la.get("name") or "A", lb.get("name") or "B"
    n = _per_iteration(a, b)
    wall = bar_chart("Wall time per iteration", n,
                     [("A", _wall_bars(a, SERIES_COLORS[0], len(n))),
                      ("B", _wall_bars(b, SERIES_COLORS[1], len(n)))], " s",
                     [(f"A: {name_a}", SERIES_COLORS[0]), (f"B: {name_b}", SERIES_COLORS[1])])
    tokens = bar_chart(f"Prompt tokens per iteration (left bar A: {name_a}, right bar B: "
                       f"{name_b})", n,
                       [("A", _token_bars(a, len(n), PROMPT_SEGMENTS)),
                        ("B", _token_bars(b, len(n), PROMPT_SEGMENTS))], "",
                       [(label, colour) for key, label, colour in PROMPT_SEGMENTS
                        if any(it["tokens"].get(key) for s in (a, b)
                               for it in s["iterations"])])
    output = bar_chart("Output tokens per iteration", n,
                       [("A", _token_bars(a, len(n), ((*OUTPUT_SEGMENT[:2],
                                                        SERIES_COLORS[0]),))),
                        ("B", _token_bars(b, len(n), ((*OUTPUT_SEGMENT[:2],
                                                        SERIES_COLORS[1]),)))], "",
                       [(f"A: {name_a}", SERIES_COLORS[0]), (f"B: {name_b}", SERIES_COLORS[1])])
    palette = _tool_palette(a, b)
    mix_legend = [*palette.items()]
    if any(t not in palette for s in (a, b) for t in s["totals"]["tools"]):
        mix_legend.append(("other", OTHER_COLOR))
    tool_mix = bar_chart("Tool mix per iteration (tool calls; left bar A, right bar B)", n,
                         [("A", _tool_bars(a, len(n), palette)),
                          ("B", _tool_bars(b, len(n), palette))], "", mix_legend)
    tools = tool_chart("Tool mix, all iterations (calls per tool)",
                       [(f"A: {name_a}", a["totals"]["tools"], SERIES_COLORS[0]),
                        (f"B: {name_b}", b["totals"]["tools"], SERIES_COLORS[1])])
    label_rows = "".join(
        f"<tr><td>{_e(key)}</td><td class=a>{_e(la.get(key) or '-')}</td>"
        f"<td class=b>{_e(lb.get(key) or '-')}</td></tr>"
        for key in ("id", "label", "backend", "model", "date", "status", "claude_version",
                    "base_url"))
    findings = "".join(f"<li>{_e(f['text'])}</li>" for f in result["findings"])
    notes = result["cost_notes"]
    cost_notes = "".join(f"<li>{tag}: {_e(note)}</li>" for tag, note in
                         (("A", notes["a"]), ("B", notes["b"])) if note)
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>Claude Code runs: {_e(la['id'])} vs {_e(lb['id'])}</title>"
        f"<style>{CSS}</style></head><body>"
        f"<h1>Claude Code runs compared: <span class=a>{_e(name_a)}</span> vs "
        f"<span class=b>{_e(name_b)}</span></h1>"
        f"<table><tr><th></th><th class=a>A</th><th class=b>B</th></tr>{label_rows}</table>"
        f"<h2>Findings</h2><ul>{findings or '<li>none</li>'}</ul>"
        "<h2>Charts</h2>" + wall + tokens + output + tool_mix + tools +
        "<h2>Figures</h2><table><tr><th>figure</th><th class=a>A</th><th class=b>B</th>"
        f"<th>B − A</th><th>relative</th></tr>{_metric_rows(result)}</table>"
        + (f"<ul class=muted>{cost_notes}</ul>" if cost_notes else "") +
        "<p class=muted>Cache hit rate = cache read / (uncached input + cache write + cache "
        "read). Shallow ops: Read, Grep, Glob; deep ops: Edit, MultiEdit, Write, NotebookEdit. "
        "Costs are Claude Code's own estimates and only shown for Anthropic models. "
        f"Findings leave out differences under {NOISE_REL:.0%} (under "
        f"{NOISE_PP * 100:.0f} points for shares): single agent runs vary that much.</p>"
        "</body></html>\n")
