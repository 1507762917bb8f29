"""`compare` on two constructed runs: the figures, findings computed from them, the HTML page."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest

from aiclient.analytics.compare import compare
from aiclient.analytics.records import OK, TIMEOUT, IterationRecord, RunInfo
from aiclient.analytics.report import render_html
from aiclient.analytics.stats import IterationStats
from aiclient.analytics.summary import summarize
from aiclient.analytics.text import compare_report, figure
from tests.unit.test_analytics_parser import (
    SONNET,
    assistant,
    model_usage,
    ndjson,
    parse_bytes,
    result,
    retry,
    tool_result,
    tool_use,
    usage,
)

QWEN = "qwen3-coder:30b"


def iteration(model: str, tools: list[tuple[str, bool]], *, spawn: bool, retries: int,
              tokens: tuple[int, int, int, int], cost: float, api_ms: int, turns: int
              ) -> IterationStats:
    """tools: (name, is_error); spawn: one Task with one subagent Read inside it."""
    events: list[Any] = [retry() for _ in range(retries)]
    for i, (name, bad) in enumerate(tools):
        events.append(assistant(f"m{i}", tool_use(f"t{i}", name), usage(1, 0, 0, 1),
                                model=model))
        events.append(tool_result(f"t{i}", is_error=bad))
    if spawn:
        events.append(assistant("ms", tool_use("ts", "Task"), usage(1, 0, 0, 1), model=model))
        events.append(assistant("msub", tool_use("tsub", "Read"), usage(1, 0, 0, 1),
                                parent="ts", model=model))
        events.append(tool_result("tsub", parent="ts"))
        events.append(tool_result("ts"))
    inp, cache_creation, cache_read, out = tokens
    events.append(result(total_cost_usd=cost, duration_api_ms=api_ms, num_turns=turns,
                         modelUsage={model: model_usage(inp, out, cache_read, cache_creation,
                                                        cost)}))
    return parse_bytes(ndjson(events))


def run_summary(backend: str, model: str, walls: list[float], **kw: Any) -> dict[str, Any]:
    prompt = kw.pop("prompt", "p1")
    last_status = kw.pop("status", OK)
    records = [IterationRecord(n=i + 1, started_at="2025-03-01T10:00:00Z",
                               status=last_status if i == len(walls) - 1 else OK,
                               raw_file=f"iteration-{i + 1}.ndjson", wall_s=w,
                               stats=iteration(model, **kw)) for i, w in enumerate(walls)]
    info = RunInfo(id=f"run-{backend}", created_at="2025-03-01T10:00:00Z", backend=backend,
                   directory="/x", model=model, claude_version="2.1.240",
                   iterations_planned=len(walls), prompt_sha256=prompt * 32, label=backend)
    return summarize(info, records)


def cloud_run(**over: Any) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "tools": [("Read", False), ("Grep", False), ("Edit", False), ("Edit", True)],
        "spawn": True, "retries": 0, "tokens": (100, 900, 9000, 400), "cost": 0.5,
        "api_ms": 16000, "turns": 6}
    kw.update(over)
    return run_summary("cloud", SONNET, kw.pop("walls", [20.0, 30.0]), **kw)


def ollama_run(**over: Any) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "tools": [("Read", False), ("Read", True), ("Read", True), ("Write", False)],
        "spawn": False, "retries": 2, "tokens": (12000, 0, 0, 300), "cost": 0.9,
        "api_ms": 60000, "turns": 9}
    kw.update(over)
    return run_summary("ollama", QWEN, kw.pop("walls", [100.0, 150.0]), **kw)


def metric(result: dict[str, Any], key: str) -> dict[str, Any]:
    return next(m for m in result["metrics"] if m["key"] == key)


def texts(result: dict[str, Any], topic: str) -> list[str]:
    return [f["text"] for f in result["findings"] if f["topic"] == topic]


def test_side_by_side_figures_and_differences() -> None:
    res = compare(cloud_run(), ollama_run())
    assert res["a"]["backend"] == "cloud" and res["b"]["model"] == QWEN
    assert res["a"]["date"] == "2025-03-01T10:00:00Z" and res["b"]["label"] == "ollama"
    wall = metric(res, "wall_s_mean")
    assert (wall["a"], wall["b"], wall["diff"]) == (25.0, 125.0, 100.0)
    assert wall["rel"] == pytest.approx(4.0)
    hit = metric(res, "cache_hit_rate")
    assert hit["a"] == pytest.approx(18000 / 20000) and hit["b"] == 0.0
    assert hit["rel"] == pytest.approx(-1.0)
    cost = metric(res, "cost_usd")
    assert cost["a"] == pytest.approx(1.0) and cost["b"] is None and cost["diff"] is None
    errors = metric(res, "tool_error_rate")
    assert errors["a"] == pytest.approx(2 / 12) and errors["b"] == pytest.approx(4 / 8)
    assert metric(res, "subagent_spawns")["a"] == 2 and metric(res, "subagent_spawns")["b"] == 0
    assert metric(res, "api_retries")["b"] == 4
    zero = metric(res, "api_retries")
    assert zero["a"] == 0 and zero["rel"] is None  # no relative change from zero


def test_findings_are_computed_from_the_numbers() -> None:
    res = compare(cloud_run(), ollama_run())
    (wall,) = [t for t in texts(res, "wall_time") if "per iteration" in t]
    assert "5.00× the wall time" in wall and "125.0 s vs 25.0 s" in wall
    caching = texts(res, "caching")
    assert any("read 90.0% of its prompt tokens from the prompt cache (18000 of 20000)" in t
               for t in caching)
    assert any("B (ollama, qwen3-coder:30b) reports no cache tokens (Ollama never reports "
               "them)" in t for t in caching)
    (fan,) = texts(res, "subagents")
    assert "A (cloud, claude-sonnet-4-5) 1.0 spawns per iteration" in fan
    assert "B (ollama, qwen3-coder:30b) 0.0 spawns" in fan
    (errs,) = texts(res, "errors")
    assert "2 of 12 tool results (16.7%)" in errs and "4 of 8 tool results (50.0%)" in errs
    (retries,) = texts(res, "retries")
    assert "4 in" in retries and "529×4" in retries
    (cost,) = texts(res, "cost")
    assert cost.startswith("only A") and "$1.0000" in cost and "n/a: Ollama" in cost
    assert texts(res, "fairness") == []  # same prompt, version, iteration count


def test_findings_change_with_the_data() -> None:
    same = compare(cloud_run(), cloud_run())
    assert any("about the same wall time" in t for t in texts(same, "wall_time"))
    assert texts(same, "errors")  # both have errors
    assert texts(same, "retries") == []
    (cost,) = texts(same, "cost")
    assert "$0.5000" in cost and cost.startswith("estimated cost per iteration")
    quiet = compare(ollama_run(spawn=False), ollama_run(spawn=False, walls=[50.0]))
    assert texts(quiet, "subagents") == ["neither run spawned subagents"]
    assert any("different numbers of iterations (2 vs 1)" in t for t in texts(quiet, "fairness"))
    assert texts(quiet, "cost") == []
    unfair = compare(cloud_run(), ollama_run(prompt="p2", status=TIMEOUT))
    assert any("different prompts" in t for t in texts(unfair, "fairness"))
    assert any("1 of 2 iterations did not succeed (timeout 1)" in t
               for t in texts(unfair, "reliability"))


def test_human_report_has_every_figure() -> None:
    res = compare(cloud_run(), ollama_run())
    text = compare_report(res)
    for m in res["metrics"]:
        assert m["label"] in text
    assert "n/a" in text and "findings:" in text
    assert figure(0.25, "%", signed=True) == "+25.0 pp" and figure(None, "usd") == "n/a"


class Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []
        self.style = ""
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style += data
        self.text.append(data)


def test_html_page_is_self_contained_with_the_charts() -> None:
    a = cloud_run()
    b = ollama_run(walls=[100.0, 150.0, 90.0])
    b["run"]["label"] = '<script>alert("x")</script> & "quotes"'
    page = render_html(a, b, compare(a, b))
    doc = Collector()
    doc.feed(page)
    doc.close()
    assert page.startswith("<!DOCTYPE html>")
    assert doc.tags.count("svg") == 4
    assert {"rect", "title", "table", "style"} <= set(doc.tags)
    for tag in ("script", "link", "img", "iframe", "object", "embed", "base", "image", "use"):
        assert tag not in doc.tags, tag
    for name, value in doc.attrs:
        assert name not in ("src", "href", "xlink:href", "srcset", "action"), name
        assert "http:" not in (value or "") and "https:" not in (value or ""), (name, value)
    assert "url(" not in doc.style and "@import" not in doc.style
    text = " ".join(doc.text)
    assert "Wall time per iteration" in text and "Tokens per iteration" in text
    assert "Tool mix per iteration" in text and "Tool mix, all iterations" in text
    assert '<script>alert("x")</script>' in text  # shown as text, escaped in the markup
    for finding in compare(a, b)["findings"]:
        assert finding["text"] in text
    # one bar per run per iteration in the wall chart: 2 + 3 iterations
    assert page.count(": wall ") == 5
