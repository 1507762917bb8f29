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
    assert any("ollama reports no cache tokens (Ollama never reports them)" in t
               for t in caching)
    (fan,) = texts(res, "subagents")
    assert "cloud 1.0 spawns per iteration" in fan
    assert "ollama 0.0 spawns" in fan
    (errs,) = texts(res, "errors")
    assert "2 of 12 tool results (16.7%)" in errs and "4 of 8 tool results (50.0%)" in errs
    (retries,) = texts(res, "retries")
    assert "4 in" in retries and "529×4" in retries
    (cost,) = texts(res, "cost")
    assert cost.startswith("only cloud") and "$1.0000" in cost and "n/a: Ollama" in cost
    assert texts(res, "fairness") == []  # same prompt, version, iteration count


def test_findings_change_with_the_data() -> None:
    same = compare(cloud_run(), cloud_run())
    assert texts(same, "wall_time") == [] and texts(same, "errors") == []  # equal: no finding
    assert texts(same, "retries") == [] and texts(same, "cost") == []
    pricier = compare(cloud_run(), cloud_run(cost=0.8))
    (cost,) = texts(pricier, "cost")
    assert "$0.5000" in cost and cost.startswith("estimated cost per iteration")
    quiet = compare(ollama_run(spawn=False), ollama_run(spawn=False, walls=[50.0]))
    assert texts(quiet, "subagents") == []
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
    assert doc.tags.count("svg") == 5
    assert {"rect", "title", "table", "style"} <= set(doc.tags)
    for tag in ("script", "link", "img", "iframe", "object", "embed", "base", "image", "use"):
        assert tag not in doc.tags, tag
    for name, value in doc.attrs:
        assert name not in ("src", "href", "xlink:href", "srcset", "action"), name
        assert "http:" not in (value or "") and "https:" not in (value or ""), (name, value)
    assert "url(" not in doc.style and "@import" not in doc.style
    text = " ".join(doc.text)
    assert "Wall time per iteration" in text and "Prompt tokens per iteration" in text
    assert "Tool mix per iteration" in text and "Tool mix, all iterations" in text
    assert '<script>alert("x")</script>' in text  # shown as text, escaped in the markup
    for finding in compare(a, b)["findings"]:
        assert finding["text"] in text
    # one bar per run per iteration in the wall chart: 2 + 3 iterations
    assert page.count(": wall ") == 5


# -- issue 16 §4: the report says what was compared ---------------------------------------------


def _versions(a_label: str = "", b_label: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
    a, b = ollama_run(), ollama_run(walls=[90.0, 160.0])
    a["run"]["claude_version"], b["run"]["claude_version"] = "2.1.153", "2.1.332"
    a["run"]["label"], b["run"]["label"] = a_label, b_label
    return a, b


def test_findings_use_the_run_labels() -> None:
    res = compare(*_versions("before upgrade", "after upgrade"))
    assert (res["a"]["name"], res["b"]["name"]) == ("before upgrade", "after upgrade")
    joined = " ".join(f["text"] for f in res["findings"])
    assert "before upgrade" in joined and "(ollama, qwen3-coder:30b)" not in joined


@pytest.mark.parametrize(("field", "a_value", "b_value", "names"), [
    ("claude_version", "2.1.153", "2.1.332", ("Claude Code 2.1.153", "Claude Code 2.1.332")),
    ("backend", "cloud", "ollama", ("cloud", "ollama")),
    ("model", "qwen3-coder:30b", "qwen3.5:35b", ("qwen3-coder:30b", "qwen3.5:35b")),
])
def test_without_labels_the_names_are_what_differs(field: str, a_value: str, b_value: str,
                                                   names: tuple[str, str]) -> None:
    a, b = ollama_run(), ollama_run()
    for s in (a, b):
        s["run"]["label"] = "same label"  # equal labels tell nothing apart either
    a["run"][field], b["run"][field] = a_value, b_value
    res = compare(a, b)
    assert (res["a"]["name"], res["b"]["name"]) == names


def test_identical_runs_say_no_difference_once() -> None:
    res = compare(ollama_run(), ollama_run())
    texts_all = [f["text"] for f in res["findings"]]
    assert [f["topic"] for f in res["findings"]] == ["no_difference"], texts_all
    assert "no difference" in texts_all[0]
    for bad in ("1.00×", "0.0% vs 0.0%", "about the same", "neither run"):
        assert not any(bad in t for t in texts_all), bad


def test_only_differences_beyond_noise_are_findings() -> None:
    a, _ = _versions()
    b2 = ollama_run(walls=[102.0, 151.0])  # 1.2 % slower: noise
    res = compare(a, b2)
    assert texts(res, "wall_time") == []
    res = compare(*_versions())  # 250 s vs 250 s total, 125 vs 125 mean: same
    topics = [f["topic"] for f in res["findings"]]
    assert "turns" not in topics and "work_mix" not in topics and "errors" not in topics
    assert topics.count("no_difference") <= 1
    far = compare(ollama_run(), ollama_run(walls=[300.0, 300.0], turns=20))
    assert any("2.40× the wall time" in t for t in texts(far, "wall_time"))
    assert any("2.22× the turns" in t for t in texts(far, "turns"))
    assert "no_difference" not in [f["topic"] for f in far["findings"]]


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def _distance(c1: str, c2: str) -> float:
    return sum((x - y) ** 2 for x, y in zip(_rgb(c1), _rgb(c2), strict=True)) ** 0.5


def test_tool_colours_are_far_from_the_series_colours() -> None:
    from aiclient.analytics import report

    for tool in (*report.TOOL_COLORS, report.OTHER_COLOR):
        for series in report.SERIES_COLORS:
            assert _distance(tool, series) > 90, (tool, series)
    for i, c1 in enumerate(report.TOOL_COLORS):
        for c2 in report.TOOL_COLORS[i + 1:]:
            assert _distance(c1, c2) > 60, (c1, c2)


def test_html_output_tokens_have_their_own_chart_and_no_zero_labels() -> None:
    a, b = _versions("2.1.153 run", "2.1.332 run")
    b = ollama_run(tools=[("Read", False), ("Bash", False)])  # no Write, A no Bash: 0 bars
    b["run"]["claude_version"], b["run"]["label"] = "2.1.332", "2.1.332 run"
    page = render_html(a, b, compare(a, b))
    doc = Collector()
    doc.feed(page)
    text = " ".join(doc.text)
    assert "Output tokens per iteration" in text and "Prompt tokens per iteration" in text
    prompt_chart = page.split("Prompt tokens per iteration", 1)[1].split("</svg>", 1)[0]
    assert ": output " not in prompt_chart
    assert "uncached input" in prompt_chart and "cache read" not in prompt_chart  # none here
    assert "<h1>Claude Code runs compared: <span class=a>2.1.153 run</span> vs " \
           "<span class=b>2.1.332 run</span></h1>" in page
    tool_chart = page.split("Tool mix, all iterations", 1)[1].split("</svg>", 1)[0]
    assert "Bash" in tool_chart and "Write" in tool_chart
    assert ">0</text>" not in tool_chart  # no "0" over an empty bar
    assert 'width="100%"' in page


def test_a_finding_does_not_carry_a_non_difference_along() -> None:
    res = compare(ollama_run(), ollama_run(turns=20))  # same tool calls, more turns
    (turns,) = texts(res, "turns")
    assert "2.22× the turns" in turns and "tool calls" not in turns


def test_text_report_names_the_runs() -> None:
    text = compare_report(compare(*_versions()))
    assert text.splitlines()[0].startswith("A  Claude Code 2.1.153  run-ollama")
    assert text.splitlines()[1].startswith("B  Claude Code 2.1.332  run-ollama")
