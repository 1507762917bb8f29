"""Render a page in real headless Chromium (Debian's `chromium`): a screenshot, and the layout
the browser computed (bounding boxes of every <svg>, the viewport, the scroll width), read back
with --dump-dom from a copy of the page with a small script that writes them into the DOM.

Call inside `realclients.loopback_only()`: the browser gets no network but loopback.
"""

from __future__ import annotations

import html
import json
import shutil
import struct
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LAYOUT_SCRIPT = """<script>
(function () {
  const box = e => { const r = e.getBoundingClientRect();
    return {left: r.left, right: r.right, top: r.top, width: r.width, height: r.height}; };
  const out = {innerWidth: window.innerWidth,
               scrollWidth: document.documentElement.scrollWidth,
               body: box(document.body),
               svgs: Array.from(document.querySelectorAll("svg")).map(s => ({
                 label: s.getAttribute("aria-label"), box: box(s),
                 overflow: Array.from(s.querySelectorAll("text,rect")).filter(t => {
                   const b = t.getBoundingClientRect(), r = s.getBoundingClientRect();
                   return b.width > 0 && (b.left < r.left - 1 || b.right > r.right + 1);
                 }).length}))};
  const pre = document.createElement("pre");
  pre.id = "layout";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>"""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise RuntimeError("chromium is not installed: scripts/test installs Debian's package")
    return found


def _run(args: list[str], profile: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    argv = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-extensions", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--hide-scrollbars",
            f"--user-data-dir={profile}", *args]
    env = {"HOME": str(profile), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                          check=False, stdin=subprocess.DEVNULL)


def layout(page: Path, work: Path, width: int, height: int = 900) -> dict[str, Any]:
    probe = work / f"layout-{page.name}"
    text = page.read_text(encoding="utf-8")
    probe.write_text(text.replace("</body>", LAYOUT_SCRIPT + "</body>"), encoding="utf-8")
    done = _run([f"--window-size={width},{height}", "--dump-dom", probe.as_uri()],
                work / "profile-layout")
    start = done.stdout.find('<pre id="layout">')
    if start < 0:
        raise RuntimeError(f"no layout from chromium (exit {done.returncode}): "
                           f"{done.stderr[-1500:]}")
    body = done.stdout[start + len('<pre id="layout">'):].split("</pre>", 1)[0]
    result: dict[str, Any] = json.loads(html.unescape(body))
    return result


def screenshot(page: Path, out: Path, width: int, height: int) -> Path:
    done = _run([f"--window-size={width},{height}", f"--screenshot={out}", page.as_uri()],
                out.parent / "profile-shot")
    if not out.is_file():
        raise RuntimeError(f"chromium wrote no screenshot (exit {done.returncode}): "
                           f"{done.stderr[-1500:]}")
    return out


@dataclass
class Image:
    width: int
    height: int
    pixels: list[tuple[int, int, int]]  # row-major RGB


def read_png(path: Path) -> Image:
    """A small PNG decoder (8-bit RGB/RGBA, not interlaced: what Chromium writes)."""
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG")
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, chunk = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = chunk
        elif kind == b"IDAT":
            idat += chunk
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    if depth != 8 or colour not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG (depth {depth}, colour type {colour})")
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    pixels: list[tuple[int, int, int]] = []
    for y in range(height):
        line = raw[y * (stride + 1):(y + 1) * (stride + 1)]
        method, row = line[0], bytearray(line[1:])
        for i in range(stride):
            left = row[i - bpp] if i >= bpp else 0
            up = prev[i]
            corner = prev[i - bpp] if i >= bpp else 0
            if method == 1:
                row[i] = (row[i] + left) & 0xFF
            elif method == 2:
                row[i] = (row[i] + up) & 0xFF
            elif method == 3:
                row[i] = (row[i] + (left + up) // 2) & 0xFF
            elif method == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                row[i] = (row[i] + pred) & 0xFF
        pixels += [(row[i], row[i + 1], row[i + 2]) for i in range(0, stride, bpp)]
        prev = row
    return Image(width, height, pixels)
