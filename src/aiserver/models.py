"""Model chores on the Ollama machine: pull progress, warming (preload), listing.

Pure logic: nothing here prints or reads the clock on its own; the CLI passes timestamps in
and writes what comes back, so every figure (bytes, rate, ETA) is testable.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from aicommon.errors import AiError

FOREVER_AFTER = 10 * 365 * 86400  # an expiry further out than this is Ollama's "never"
CLEAR_EOL = "\x1b[K"


# -- units ------------------------------------------------------------------------------------


def human_bytes(n: float) -> str:
    """Decimal units like Ollama's CLI: 999 B, 1.5 kB, 75 MB, 18 GB."""
    if n < 1000:
        return f"{int(n)} B"
    value = float(n)
    for unit in ("kB", "MB", "GB", "TB", "PB"):
        value /= 1000
        if value < 1000 or unit == "PB":
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    raise AssertionError("unreachable")


def human_duration(seconds: float) -> str:
    """9s, 3m05s, 1h02m."""
    s = int(seconds + 0.5)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def normalize_name(name: str) -> str:
    """`llama3.2` → `llama3.2:latest`, as Ollama names it in /api/tags and /api/ps."""
    n = name.strip()
    return n if ":" in n.rsplit("/", 1)[-1] else n + ":latest"


# -- pull progress ----------------------------------------------------------------------------


class PullProgress:
    """Turns /api/pull events into terminal text.

    `tty=True`: one line per layer, redrawn in place (bar, bytes, rate, ETA), at most every
    `min_interval` seconds; the line is kept when the status changes. `tty=False`: one plain
    line per status change (logs, pipes), never one per byte update.
    """

    def __init__(self, *, tty: bool, width: int = 100, bar_width: int = 20,
                 min_interval: float = 0.1, window: float = 10.0) -> None:
        self.tty = tty
        self.width = max(width, 20)
        self.bar_width = bar_width
        self.min_interval = min_interval
        self.window = window  # seconds of samples the rate is averaged over
        self.status: str | None = None
        self.total: int | None = None
        self.completed = 0
        self.started: float | None = None
        self.last_time: float | None = None
        self.layers: dict[str, tuple[int, int]] = {}  # digest -> (total, completed)
        self._samples: deque[tuple[float, int]] = deque()
        self._line_open = False
        self._dirty = False
        self._last_draw = float("-inf")

    # -- figures ---------------------------------------------------------------------------------

    @property
    def rate(self) -> float | None:
        """Bytes per second over the last `window` seconds of this layer, if measurable."""
        if len(self._samples) < 2:
            return None
        (t0, c0), (t1, c1) = self._samples[0], self._samples[-1]
        return (c1 - c0) / (t1 - t0) if t1 > t0 else None

    @property
    def eta(self) -> float | None:
        rate = self.rate
        if self.total is None or not rate or rate <= 0:
            return None
        return max(self.total - self.completed, 0) / rate

    @property
    def bytes_total(self) -> int:
        return sum(total for total, _ in self.layers.values())

    @property
    def bytes_completed(self) -> int:
        return sum(done for _, done in self.layers.values())

    @property
    def seconds(self) -> float:
        if self.started is None or self.last_time is None:
            return 0.0
        return self.last_time - self.started

    def line(self) -> str:
        """The current progress line (no control characters)."""
        status = self.status or ""
        if not self.total:
            return status
        done = min(self.completed, self.total)
        filled = self.bar_width * done // self.total
        bar = "#" * filled + "." * (self.bar_width - filled)
        text = (f"{status}  [{bar}] {100 * done // self.total:3d}%  "
                f"{human_bytes(done)}/{human_bytes(self.total)}")
        rate, eta = self.rate, self.eta
        if rate is not None and done < self.total:
            text += f"  {human_bytes(rate)}/s"
            if eta is not None:
                text += f"  ETA {human_duration(eta)}"
        return text[: self.width - 1]

    # -- events ---------------------------------------------------------------------------------

    def feed(self, event: dict[str, Any], now: float) -> str:
        """Take one event seen at `now` (seconds, any monotonic origin); return text to write."""
        status = str(event.get("status", ""))
        if self.started is None:
            self.started = now
        self.last_time = now
        total = event.get("total")
        completed = event.get("completed") or 0  # omitted while 0
        changed = status != self.status
        prefix = self._end_line() if changed else ""
        if changed:
            self.status = status
            self._samples.clear()
        if isinstance(total, int) and total > 0:
            self.total = total
            self.completed = int(completed)
            digest = event.get("digest")
            if isinstance(digest, str):
                self.layers[digest] = (total, self.completed)
            self._sample(now, self.completed)
        elif changed:
            self.total = None
            self.completed = 0
        if not self.tty:
            return prefix + (self._plain_line() + "\n" if changed else "")
        finished = self.total is not None and self.completed >= self.total
        if not changed and not finished and now - self._last_draw < self.min_interval:
            self._dirty = True
            return prefix
        self._last_draw = now
        return prefix + self._draw()

    def close(self) -> str:
        """Text that ends an open progress line (call when the stream stops, for any reason)."""
        return self._end_line()

    def summary(self) -> dict[str, Any]:
        return {"status": self.status, "bytes": self.bytes_total,
                "seconds": round(self.seconds, 3)}

    # -- helpers --------------------------------------------------------------------------------

    def _sample(self, now: float, completed: int) -> None:
        if self._samples and self._samples[-1][0] == now:
            self._samples.pop()
        self._samples.append((now, completed))
        # keep the newest sample at or before the window's start, so the rate spans the window
        while len(self._samples) > 2 and self._samples[1][0] <= now - self.window:
            self._samples.popleft()

    def _plain_line(self) -> str:
        if self.total:
            return f"{self.status} ({human_bytes(self.total)})"
        return self.status or ""

    def _draw(self) -> str:
        self._line_open = True
        self._dirty = False
        return "\r" + self.line() + CLEAR_EOL

    def _end_line(self) -> str:
        if not self.tty or not self._line_open:
            return ""
        text = self._draw() if self._dirty else ""
        self._line_open = False
        return text + "\n"


# -- warming ----------------------------------------------------------------------------------


class ModelClient(Protocol):
    def preload(self, model: str, *, keep_alive: int | str = -1,
                num_ctx: int | None = None) -> dict[str, Any]: ...

    def ps(self) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class WarmResult:
    model: str
    ok: bool
    seconds: float
    error: str | None = None
    hint: str | None = None
    code: str | None = None
    context_length: int | None = None  # what /api/ps reports after the load
    expires_at: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "ok": self.ok, "seconds": round(self.seconds, 3),
                "context_length": self.context_length, "expires_at": self.expires_at,
                "error": self.error, "hint": self.hint}


def warm(client: ModelClient, models: Sequence[str], num_ctx: int | None,
         keep_alive: int | str = -1, *,
         clock: Callable[[], float] = time.monotonic) -> list[WarmResult]:
    """Preload each model with `num_ctx`; a model that fails does not stop the others.

    Only an unreachable Ollama stops the run (nothing else could succeed).
    """
    results: list[WarmResult] = []
    for model in models:
        start = clock()
        try:
            client.preload(model, keep_alive=keep_alive, num_ctx=num_ctx)
        except AiError as err:
            if err.code == "ollama.unreachable":
                raise
            results.append(WarmResult(model, False, clock() - start, err.message, err.hint,
                                      err.code))
            continue
        results.append(WarmResult(model, True, clock() - start))
    if not any(r.ok for r in results):
        return results
    try:
        loaded = {normalize_name(str(m.get("name", ""))): m for m in client.ps()}
    except AiError:
        return results  # the loads happened; only the details are missing
    out = []
    for r in results:
        entry = loaded.get(normalize_name(r.model)) if r.ok else None
        if entry is None:
            out.append(r)
            continue
        ctx = entry.get("context_length")
        out.append(WarmResult(r.model, r.ok, r.seconds,
                              context_length=ctx if isinstance(ctx, int) else None,
                              expires_at=str(entry.get("expires_at") or "") or None))
    return out


def warm_targets(names: Iterable[str], loaded: Iterable[str], configured: Iterable[str]
                 ) -> list[str]:
    """NAMEs if given; else what is loaded now plus `[ollama] warm`, each once."""
    chosen = list(names)
    pool = chosen if chosen else [*loaded, *configured]
    seen: set[str] = set()
    out = []
    for name in pool:
        key = normalize_name(name)
        if key not in seen:
            seen.add(key)
            out.append(name)
    return out


def summary(results: Sequence[WarmResult], num_ctx: int | None,
            keep_alive: int | str) -> dict[str, Any]:
    """What `models warm` reports (the --json data)."""
    return {
        "context_length": num_ctx,
        "keep_alive": keep_alive,
        "warmed": sum(1 for r in results if r.ok),
        "failed": sum(1 for r in results if not r.ok),
        "seconds": round(sum(r.seconds for r in results), 3),
        "models": [r.as_dict() for r in results],
    }


def human_summary(data: dict[str, Any]) -> str:
    lines = []
    for m in data["models"]:
        if m["ok"]:
            ctx = m["context_length"] or data["context_length"]
            lines.append(f"ok    {m['model']}  loaded in {m['seconds']:.1f}s, context {ctx}, "
                         f"{_expiry_words(m['expires_at'])}")
        else:
            hint = f" (hint: {m['hint']})" if m["hint"] else ""
            lines.append(f"FAIL  {m['model']}  {m['error']}{hint}")
    total = data["warmed"] + data["failed"]
    lines.append(f"warmed {data['warmed']} of {total} model{'s' if total != 1 else ''}")
    return "\n".join(lines)


# -- listing --------------------------------------------------------------------------------


def expires_in(expires_at: str | None, now: datetime) -> float | None:
    """Seconds until an /api/ps expiry; None when unknown; inf for Ollama's "never"."""
    if not expires_at:
        return None
    try:
        when = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None or now.tzinfo is None:
        return None
    left = (when - now).total_seconds()
    return float("inf") if left > FOREVER_AFTER else max(left, 0.0)


def _expiry_words(expires_at: str | None, now: datetime | None = None) -> str:
    left = expires_in(expires_at, now or datetime.now().astimezone())
    if left is None:
        return "expiry unknown"
    if left == float("inf"):
        return "kept loaded until unloaded"
    return f"unloads in {human_duration(left)}"


def model_rows(tags: Sequence[dict[str, Any]], ps: Sequence[dict[str, Any]],
               context_lengths: dict[str, int | None], now: datetime) -> list[dict[str, Any]]:
    """One row per local model, joined with what is loaded (for `models list`)."""
    loaded = {normalize_name(str(m.get("name", ""))): m for m in ps}
    rows = []
    for tag in tags:
        name = str(tag.get("name") or tag.get("model") or "")
        raw_details = tag.get("details")
        details: dict[str, Any] = raw_details if isinstance(raw_details, dict) else {}
        run = loaded.get(normalize_name(name))
        left = expires_in(run.get("expires_at"), now) if run else None
        rows.append({
            "name": name,
            "size": tag.get("size"),
            "parameter_size": details.get("parameter_size"),
            "quantization": details.get("quantization_level"),
            "context_length": context_lengths.get(name),
            "capabilities": tag.get("capabilities") or [],
            "loaded": run is not None,
            "loaded_context_length": run.get("context_length") if run else None,
            "expires_at": run.get("expires_at") if run else None,
            "kept_loaded": left == float("inf"),
            "expires_in_seconds": (None if left is None or left == float("inf")
                                   else round(left)),
        })
    return rows


def human_list(rows: Sequence[dict[str, Any]]) -> str:
    from aicommon.output import table

    if not rows:
        return "no models yet (run `ai-server models pull NAME`)"

    def loaded(r: dict[str, Any]) -> str:
        if not r["loaded"]:
            return "-"
        when = ("until unloaded" if r["kept_loaded"] else
                f"{human_duration(r['expires_in_seconds'])} left"
                if r["expires_in_seconds"] is not None else "expiry unknown")
        return f"ctx {r['loaded_context_length']}, {when}"

    body = [[r["name"], human_bytes(r["size"]) if isinstance(r["size"], int) else "?",
             r["parameter_size"] or "?", r["quantization"] or "?",
             str(r["context_length"] or "?"), loaded(r)] for r in rows]
    return table(body, ["NAME", "SIZE", "PARAMS", "QUANT", "MAX CONTEXT", "LOADED"])
