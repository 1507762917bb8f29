"""`compare --html` rendered by a real browser (headless Chromium, Debian's package) at a
1280 px wide window: the page is not blank, shows both series' colours, and every chart lays
out inside the viewport using (nearly) all of the page width (issue 16 §4)."""

from __future__ import annotations

from pathlib import Path

from aiclient.analytics.compare import compare
from aiclient.analytics.report import SERIES_COLORS, render_html
from tests.support.browser import layout, read_png, screenshot
from tests.support.realclients import loopback_only
from tests.unit.test_analytics_compare import ollama_run

WIDTH = 1280


def _page(tmp_path: Path) -> Path:
    a = ollama_run()
    b = ollama_run(walls=[90.0, 240.0, 130.0], turns=14,
                   tools=[("Read", False), ("Bash", False), ("Agent", False), ("Edit", True)])
    a["run"]["label"], b["run"]["label"] = "Claude Code 2.1.153", "Claude Code 2.1.332"
    page = tmp_path / "compare.html"
    page.write_text(render_html(a, b, compare(a, b)), encoding="utf-8")
    return page


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def test_compare_page_in_headless_chromium(tmp_path: Path) -> None:
    page = _page(tmp_path)
    with loopback_only():
        boxes = layout(page, tmp_path, WIDTH)
        shot = screenshot(page, tmp_path / "compare.png", WIDTH, 2200)
    assert boxes["innerWidth"] == WIDTH
    assert boxes["scrollWidth"] <= WIDTH  # nothing sticks out sideways
    assert len(boxes["svgs"]) == 5
    for svg in boxes["svgs"]:
        box = svg["box"]
        assert box["left"] >= 0 and box["right"] <= WIDTH, svg
        assert box["width"] >= 0.9 * WIDTH, svg  # the page width, not ~60 % of it
        assert box["height"] >= 150, svg
        assert svg["overflow"] == 0, svg  # no label or bar outside its chart
    image = read_png(shot)
    assert (image.width, image.height) == (WIDTH, 2200)
    white = sum(1 for p in image.pixels if p == (255, 255, 255))
    assert white < 0.97 * len(image.pixels)  # not blank
    colours = set(image.pixels)
    for colour in SERIES_COLORS:
        assert _rgb(colour) in colours, colour  # both runs' bars are drawn
