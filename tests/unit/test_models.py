"""aiserver.models (pull progress, warm, listing) and aiserver.ollama's pure parts."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from aicommon.errors import AiError, ExitCode
from aiserver import models as core
from aiserver.ollama import (
    base_url_for,
    client_for,
    error_message,
    http_error,
    trained_context_length,
)
from aiserver.settings import Settings

CLEAR = "\x1b[K"
GB = 1_000_000_000
MB = 1_000_000
LAYER = "pulling aaaaaaaaaaaa"

# A recorded pull (shapes as REFERENCE.md §1.5) with the times they were seen, in seconds.
EVENTS: list[tuple[float, dict[str, Any]]] = [
    (0.0, {"status": "pulling manifest"}),
    (1.0, {"status": LAYER, "digest": "sha256:aaaa", "total": GB}),  # completed omitted: 0
    (3.0, {"status": LAYER, "digest": "sha256:aaaa", "total": GB, "completed": 150 * MB}),
    (3.05, {"status": LAYER, "digest": "sha256:aaaa", "total": GB, "completed": 160 * MB}),
    (5.0, {"status": LAYER, "digest": "sha256:aaaa", "total": GB, "completed": 400 * MB}),
    (13.0, {"status": LAYER, "digest": "sha256:aaaa", "total": GB, "completed": 800 * MB}),
    (14.0, {"status": LAYER, "digest": "sha256:aaaa", "total": GB, "completed": GB}),
    (14.01, {"status": "verifying sha256 digest"}),
    (14.5, {"status": "success"}),
]


def feed_all(progress: core.PullProgress) -> list[str]:
    return [progress.feed(event, now) for now, event in EVENTS]


# -- units ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "text"), [
    (0, "0 B"), (999, "999 B"), (1000, "1.0 kB"), (11_338, "11 kB"), (150 * MB, "150 MB"),
    (2_019_393_189, "2.0 GB"), (18_556_701_140, "19 GB"), (75 * MB, "75 MB"),
    (3 * 10**15, "3.0 PB"),
])
def test_human_bytes(n: int, text: str) -> None:
    assert core.human_bytes(n) == text


@pytest.mark.parametrize(("s", "text"), [
    (0, "0s"), (9.4, "9s"), (11.33, "11s"), (59.6, "1m00s"), (185, "3m05s"), (3720, "1h02m"),
])
def test_human_duration(s: float, text: str) -> None:
    assert core.human_duration(s) == text


def test_normalize_name() -> None:
    assert core.normalize_name("llama3.2") == "llama3.2:latest"
    assert core.normalize_name("qwen3-coder:30b") == "qwen3-coder:30b"
    assert core.normalize_name("hf.co/org/model") == "hf.co/org/model:latest"
    assert core.normalize_name("localhost:5000/model") == "localhost:5000/model:latest"


# -- pull progress ------------------------------------------------------------------------------


def test_tty_progress_redraws_one_line_per_layer_with_rate_and_eta() -> None:
    progress = core.PullProgress(tty=True, width=100, bar_width=10)
    out = feed_all(progress)
    assert out == [
        "\rpulling manifest" + CLEAR,
        # new status: keep the previous line, start a new one
        "\n\r" + LAYER + "  [..........]   0%  0 B/1.0 GB" + CLEAR,
        # 150 MB in 2 s = 75 MB/s; 850 MB left / 75 MB/s = 11.3 s
        "\r" + LAYER + "  [#.........]  15%  150 MB/1.0 GB  75 MB/s  ETA 11s" + CLEAR,
        "",  # 50 ms after the last draw: throttled
        # 400 MB in 4 s = 100 MB/s; 600 MB left → 6 s
        "\r" + LAYER + "  [####......]  40%  400 MB/1.0 GB  100 MB/s  ETA 6s" + CLEAR,
        # 10 s window: from (3 s, 150 MB) to (13 s, 800 MB) = 65 MB/s; 200 MB left → 3.1 s
        "\r" + LAYER + "  [########..]  80%  800 MB/1.0 GB  65 MB/s  ETA 3s" + CLEAR,
        # done: no rate, no ETA
        "\r" + LAYER + "  [##########] 100%  1.0 GB/1.0 GB" + CLEAR,
        "\n\rverifying sha256 digest" + CLEAR,
        "\n\rsuccess" + CLEAR,
    ]
    assert progress.close() == "\n"
    assert progress.close() == ""  # idempotent
    assert progress.summary() == {"status": "success", "bytes": GB, "seconds": 14.5}


def test_plain_progress_prints_one_line_per_status_change() -> None:
    progress = core.PullProgress(tty=False)
    out = feed_all(progress)
    assert "".join(out) == ("pulling manifest\n"
                            "pulling aaaaaaaaaaaa (1.0 GB)\n"
                            "verifying sha256 digest\n"
                            "success\n")
    assert [bool(o) for o in out] == [True, True, False, False, False, False, False, True, True]
    assert all("\r" not in o and CLEAR not in o for o in out)
    assert progress.close() == ""
    assert progress.bytes_total == GB and progress.bytes_completed == GB


def test_throttled_state_is_drawn_before_the_line_is_kept() -> None:
    progress = core.PullProgress(tty=True, bar_width=10)
    progress.feed({"status": LAYER, "total": GB}, 0.0)
    assert progress.feed({"status": LAYER, "total": GB, "completed": 500 * MB}, 0.05) == ""
    # the status changes before the next redraw: the last figures are shown, then kept
    text = progress.feed({"status": "writing manifest"}, 0.06)
    assert text == ("\r" + LAYER + "  [#####.....]  50%  500 MB/1.0 GB  10 GB/s  ETA 0s"
                    + CLEAR + "\n\rwriting manifest" + CLEAR)


def test_interrupted_progress_line_is_ended_by_close() -> None:
    progress = core.PullProgress(tty=True, bar_width=10)
    progress.feed({"status": LAYER, "total": GB}, 0.0)
    progress.feed({"status": LAYER, "total": GB, "completed": 100 * MB}, 0.01)  # throttled
    assert progress.close() == ("\r" + LAYER + "  [#.........]  10%  100 MB/1.0 GB  10 GB/s"
                                "  ETA 0s" + CLEAR + "\n")


def test_progress_line_fits_the_terminal() -> None:
    progress = core.PullProgress(tty=True, width=30)
    text = progress.feed({"status": LAYER, "total": GB, "completed": 10}, 0.0)
    assert text == "\r" + (LAYER + "  [....................]")[:29] + CLEAR


def test_rate_unknown_until_two_samples() -> None:
    progress = core.PullProgress(tty=True)
    progress.feed({"status": LAYER, "total": GB, "completed": 5 * MB}, 2.0)
    assert progress.rate is None and progress.eta is None
    assert "/s" not in progress.line() and "ETA" not in progress.line()


def test_new_layer_restarts_the_rate() -> None:
    progress = core.PullProgress(tty=False)
    progress.feed({"status": "pulling a", "digest": "a", "total": 100, "completed": 100}, 0.0)
    progress.feed({"status": "pulling b", "digest": "b", "total": 50}, 1.0)
    progress.feed({"status": "pulling b", "digest": "b", "total": 50, "completed": 10}, 3.0)
    assert progress.rate == 5.0 and progress.eta == 8.0
    assert progress.bytes_total == 150 and progress.bytes_completed == 110


# -- warm ---------------------------------------------------------------------------------------


class FakeClient:
    def __init__(self, failures: dict[str, AiError], ps: list[dict[str, Any]] | None = None
                 ) -> None:
        self.failures = failures
        self.calls: list[tuple[str, int | str, int | None]] = []
        self._ps = ps or []

    def preload(self, model: str, *, keep_alive: int | str = -1,
                num_ctx: int | None = None) -> dict[str, Any]:
        self.calls.append((model, keep_alive, num_ctx))
        if model in self.failures:
            raise self.failures[model]
        return {"model": model, "done": True, "done_reason": "load"}

    def ps(self) -> list[dict[str, Any]]:
        return self._ps


def ticking_clock(step: float = 1.5) -> Any:
    now = [100.0]

    def clock() -> float:
        now[0] += step
        return now[0]

    return clock


def test_warm_continues_past_a_failing_model() -> None:
    missing = AiError("model 'nope' is not on this machine", "run `ai-server models pull nope`",
                      code="ollama.model_not_found")
    broken = AiError("Ollama answered HTTP 500: out of memory", code="ollama.http_error")
    client = FakeClient({"nope": missing, "big:70b": broken}, ps=[
        {"name": "qwen3-coder:30b", "context_length": 65536, "expires_at": "2318-01-01T00:00:00Z"},
        {"name": "llama3.2:latest", "context_length": 65536, "expires_at": "2318-01-01T00:00:00Z"},
    ])
    results = core.warm(client, ["qwen3-coder:30b", "nope", "big:70b", "llama3.2"], 65536,
                        clock=ticking_clock())
    assert client.calls == [(m, -1, 65536) for m in ("qwen3-coder:30b", "nope", "big:70b",
                                                      "llama3.2")]
    assert [(r.model, r.ok, r.seconds) for r in results] == [
        ("qwen3-coder:30b", True, 1.5), ("nope", False, 1.5), ("big:70b", False, 1.5),
        ("llama3.2", True, 1.5)]
    assert results[0].context_length == 65536 and results[3].context_length == 65536
    assert results[1].hint == "run `ai-server models pull nope`"
    assert results[2].code == "ollama.http_error" and results[2].hint is None

    data = core.summary(results, 65536, -1)
    assert (data["warmed"], data["failed"], data["seconds"]) == (2, 2, 6.0)
    text = core.human_summary(data)
    assert text.splitlines()[0] == ("ok    qwen3-coder:30b  loaded in 1.5s, context 65536, "
                                    "kept loaded until unloaded")
    assert ("FAIL  nope  model 'nope' is not on this machine "
            "(hint: run `ai-server models pull nope`)") in text
    assert text.splitlines()[-1] == "warmed 2 of 4 models"


def test_warm_stops_when_ollama_is_unreachable() -> None:
    down = AiError("cannot reach Ollama", code="ollama.unreachable",
                   exit_code=ExitCode.UNAVAILABLE)
    client = FakeClient({"a": down})
    with pytest.raises(AiError) as info:
        core.warm(client, ["a", "b"], 4096)
    assert info.value.exit_code == ExitCode.UNAVAILABLE
    assert [c[0] for c in client.calls] == ["a"]


def test_warm_passes_keep_alive_and_context() -> None:
    client = FakeClient({})
    core.warm(client, ["m"], 8192, "30m")
    assert client.calls == [("m", "30m", 8192)]


def test_warm_targets() -> None:
    assert core.warm_targets(["a", "a:latest", "b"], ["x"], ["y"]) == ["a", "b"]
    assert core.warm_targets([], ["x:latest", "y:1b"], ["x", "z"]) == ["x:latest", "y:1b", "z"]
    assert core.warm_targets([], [], []) == []


# -- listing ------------------------------------------------------------------------------------


NOW = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)


def test_expires_in() -> None:
    assert core.expires_in("2026-11-01T12:04:30Z", NOW) == 270.0
    assert core.expires_in("2026-11-01T05:04:30.123456789-07:00", NOW) == pytest.approx(270.123,
                                                                                        abs=1e-3)
    assert core.expires_in("2318-06-04T14:38:31.83753+02:00", NOW) == float("inf")
    assert core.expires_in("2026-11-01T11:00:00Z", NOW) == 0.0
    assert core.expires_in("garbage", NOW) is None
    assert core.expires_in(None, NOW) is None


def test_model_rows_join_tags_with_ps() -> None:
    tags = [
        {"name": "qwen3-coder:30b", "size": 18_556_701_140, "capabilities": ["completion"],
         "details": {"parameter_size": "30.5B", "quantization_level": "Q4_K_M"}},
        {"name": "llama3.2:latest", "size": 2_019_393_189, "details": {}},
        {"name": "gemma3:1b", "size": 815_319_791},
    ]
    ps = [{"name": "qwen3-coder:30b", "context_length": 65536,
           "expires_at": "2318-06-04T14:38:31Z"},
          {"name": "llama3.2:latest", "context_length": 4096,
           "expires_at": (NOW + timedelta(seconds=185)).isoformat()}]
    rows = core.model_rows(tags, ps, {"qwen3-coder:30b": 262144}, NOW)
    assert rows[0] | {} == {
        "name": "qwen3-coder:30b", "size": 18_556_701_140, "parameter_size": "30.5B",
        "quantization": "Q4_K_M", "context_length": 262144, "capabilities": ["completion"],
        "loaded": True, "loaded_context_length": 65536, "expires_at": "2318-06-04T14:38:31Z",
        "kept_loaded": True, "expires_in_seconds": None}
    assert rows[1]["expires_in_seconds"] == 185 and not rows[1]["kept_loaded"]
    assert rows[2]["loaded"] is False and rows[2]["context_length"] is None
    lines = core.human_list(rows).splitlines()
    assert lines[0].split() == ["NAME", "SIZE", "PARAMS", "QUANT", "MAX", "CONTEXT", "LOADED"]
    assert lines[1].split() == ["qwen3-coder:30b", "19", "GB", "30.5B", "Q4_K_M", "262144",
                                "ctx", "65536,", "until", "unloaded"]
    assert lines[2].endswith("ctx 4096, 3m05s left")
    assert lines[3].split() == ["gemma3:1b", "815", "MB", "?", "?", "?", "-"]
    assert "ai-server models pull" in core.human_list([])


# -- ollama client: pure parts ----------------------------------------------------------------


def test_trained_context_length() -> None:
    show = {"model_info": {"general.architecture": "qwen3moe", "qwen3moe.context_length": 262144,
                           "llama.context_length": 1}}
    assert trained_context_length(show) == 262144
    assert trained_context_length({"model_info": {"general.architecture": "x"}}) is None
    assert trained_context_length({}) is None


def test_http_errors_map_to_one_line_errors_with_hints() -> None:
    err = http_error(404, b'{"error":"model \'foo\' not found"}', model="foo")
    assert err.code == "ollama.model_not_found"
    assert err.one_line() == ("model 'foo' is not on this machine "
                              "(hint: run `ai-server models pull foo`)")
    busy = http_error(503, b'{"error":"server busy, please try again."}')
    assert busy.exit_code == ExitCode.UNAVAILABLE and "busy" in busy.message
    assert http_error(400, b'{"error":"\\"x\\" does not support generate"}').code == \
        "ollama.unsupported"
    other = http_error(500, b"<html>oops</html>", label="Ollama at 127.0.0.1:11434")
    assert other.message == "Ollama at 127.0.0.1:11434 answered HTTP 500: <html>oops</html>"
    assert error_message(b'{"error":{"message":"m","type":"t"}}') == "m"
    assert error_message(b"") == "(empty body)"


def test_client_for_uses_the_upstream() -> None:
    from dataclasses import replace

    s = Settings()
    assert client_for(s).base_url == "http://127.0.0.1:11434"
    s6 = replace(s, gateway=replace(s.gateway, upstream="[::1]:11500"))
    assert client_for(s6).base_url == "http://[::1]:11500"
    assert base_url_for("127.0.0.1:1") == "http://127.0.0.1:1"


def test_importing_the_models_cli_stays_light() -> None:
    code = ("import sys, aiserver.cli_models\n"
            "heavy = [m for m in ('requests', 'urllib3', 'tomllib', 'tomli_w', 'platformdirs',"
            " 'aiserver.ollama', 'aiserver.models') if m in sys.modules]\n"
            "print(','.join(heavy))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, check=True)
    assert res.stdout.strip() == ""
