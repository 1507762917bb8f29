"""`ai-client analytics …` as a user runs it: real processes, the recording fake `claude`,
exit codes, --json envelopes, Ctrl-C/SIGTERM finalisation, import and compare --html."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests.support.signals import default_sigint

REPO = Path(__file__).resolve().parents[2]
FAKE = REPO / "tests" / "support" / "fakes" / "claude-stream"
ENTRY = ("from aiclient.cli import cli; from aiclient.cli_analytics import analytics; "
         "cli.add_command(analytics); from aicommon.clikit import run_main; "
         "run_main(cli, 'ai-client')")
SONNET = "claude-sonnet-4-5"
GOAL = r"tidy $HOME & * in C:\src\ \1 'q' \"q\" `id`"
QWEN = "qwen3-coder:30b"


def session(model: str, *, cache_read: int, spawn: bool) -> list[Any]:
    u = {"input_tokens": 50, "cache_creation_input_tokens": 0,
         "cache_read_input_tokens": cache_read, "output_tokens": 1}
    lines: list[Any] = [
        {"type": "system", "subtype": "init", "session_id": "s{{iteration}}", "model": model,
         "claude_code_version": "2.1.240", "tools": []},
        {"type": "assistant", "parent_tool_use_id": None, "message": {
            "id": "m{{iteration}}", "model": model, "usage": u,
            "content": [{"type": "tool_use", "id": "t{{iteration}}", "name": "Read",
                         "input": {}}]}},
        {"type": "user", "message": {"content": [
            {"type": "tool_result", "tool_use_id": "t{{iteration}}", "is_error": False}]}},
    ]
    if spawn:
        lines += [
            {"type": "assistant", "parent_tool_use_id": None, "message": {
                "id": "mt{{iteration}}", "model": model, "usage": u,
                "content": [{"type": "tool_use", "id": "task{{iteration}}", "name": "Agent",
                             "input": {}}]}},
            {"type": "assistant", "parent_tool_use_id": "task{{iteration}}", "message": {
                "id": "ms{{iteration}}", "model": model, "usage": u,
                "content": [{"type": "tool_use", "id": "e{{iteration}}", "name": "Edit",
                             "input": {}}]}},
        ]
    lines.append({"type": "result", "subtype": "success", "is_error": False,
                  "duration_ms": 2000, "duration_api_ms": 1500, "num_turns": 2,
                  "total_cost_usd": 0.03,
                  "modelUsage": {model: {"inputTokens": 100, "outputTokens": 40,
                                         "cacheReadInputTokens": cache_read,
                                         "cacheCreationInputTokens": 0, "costUSD": 0.03}}})
    return lines


class Laptop:
    def __init__(self, tmp: Path, home: Path) -> None:
        self.tmp = tmp
        self.home = home
        self.bin = tmp / "bin"
        self.bin.mkdir()
        (self.bin / "claude").symlink_to(FAKE)
        (self.bin / "python3").symlink_to(Path(sys.executable).resolve())
        self.log = tmp / "claude.jsonl"
        self.scenario_file = tmp / "scenario.json"
        self.pidfile = tmp / "claude.pid"
        self.env = dict(os.environ, PATH=f"{self.bin}:{os.environ['PATH']}",
                        FAKE_CLAUDE_LOG=str(self.log),
                        FAKE_CLAUDE_SCENARIO=str(self.scenario_file),
                        FAKE_CLAUDE_PIDFILE=str(self.pidfile))
        self.scenario(lines=session(SONNET, cache_read=900, spawn=True))

    def scenario(self, **kw: Any) -> None:
        self.scenario_file.write_text(json.dumps(kw))

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-c", ENTRY, "analytics", *args]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), env=self.env, capture_output=True, text=True,
                              timeout=60, check=False, stdin=subprocess.DEVNULL)

    def json(self, *args: str) -> dict[str, Any]:
        res = self.cli(*args, "--json")
        assert res.returncode == 0, res.stderr
        doc: dict[str, Any] = json.loads(res.stdout)
        assert doc["schema"] == 1 and doc["ok"] is True and doc["errors"] == []
        return doc

    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def settings(self) -> None:
        cfg = self.home / "ai-client" / "config" / "config.toml"
        cfg.parent.mkdir(parents=True, exist_ok=True)
        cfg.write_text('[server]\nhost = "studio.tail1234.ts.net"\ntoken = "tok-1"\n'
                       'context_length = 32768\n\n[client]\nmodel = "qwen3-coder:30b"\n')

    def db(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.home / "ai-client" / "state" / "analytics" / "analytics.db")
        conn.row_factory = sqlite3.Row
        return conn


@pytest.fixture
def laptop(tmp_path: Path, isolated_home: Path) -> Laptop:
    return Laptop(tmp_path, isolated_home)


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.refs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.refs += [(k, v) for k, v in attrs if k in ("src", "href", "xlink:href")
                      or "http" in (v or "")]


def test_run_list_show_compare_import(laptop: Laptop, tmp_path: Path) -> None:
    res = laptop.cli("run", "-n", "2", "--label", "cloud baseline", "--goal", GOAL,
                     "--", "--permission-mode", "acceptEdits")
    assert res.returncode == 0, res.stderr
    assert "iteration 1/2 ok" in res.stderr and "iteration 2/2 ok" in res.stderr
    assert "status       complete: 2/2 iterations, 2 ok" in res.stdout
    assert laptop.calls()[0]["argv"][-4:] == ["--permission-mode", "acceptEdits", "--",
                                              GOAL]
    laptop.settings()
    laptop.scenario(lines=session(QWEN, cache_read=0, spawn=False), delay=0.05)
    ollama = laptop.json("run", "--backend", "ollama", "-n", "2", "--goal", GOAL)
    data = ollama["data"]
    assert ollama["command"] == "analytics run"
    assert data["run"]["backend"] == "ollama" and data["run"]["model"] == QWEN
    assert data["totals"]["cost_usd"] is None and data["totals"]["cost_note"].startswith("n/a")
    assert laptop.calls()[2]["env"]["ANTHROPIC_BASE_URL"] == "http://studio.tail1234.ts.net:11434"

    runs = laptop.json("list")["data"]["runs"]
    assert [r["backend"] for r in runs] == ["ollama", "cloud"]
    assert runs[1]["label"] == "cloud baseline" and runs[1]["iterations"] == 2
    cloud_id, ollama_id = runs[1]["id"], runs[0]["id"]
    listed = laptop.cli("list")
    assert cloud_id in listed.stdout and "cloud baseline" in listed.stdout

    shown = laptop.json("show", cloud_id)["data"]
    assert shown["totals"]["subagent_spawns"] == 2 and shown["totals"]["tool_calls_sub"] == 2
    assert shown["totals"]["cache_hit_rate"] == pytest.approx(1800 / 2000)
    assert laptop.json("show", "last")["data"]["run"]["id"] == ollama_id
    human = laptop.cli("show", cloud_id[:15] if cloud_id[:15] != ollama_id[:15] else cloud_id)
    assert human.returncode == 0 and "tool calls   6 (4 main thread, 2 in subagents)" in \
        human.stdout

    page = tmp_path / "report" / "compare.html"
    cmp = laptop.json("compare", cloud_id, ollama_id, "--html", str(page))["data"]
    assert cmp["a"]["id"] == cloud_id and cmp["b"]["backend"] == "ollama"
    topics = {f["topic"] for f in cmp["findings"]}
    assert {"caching", "subagents", "wall_time", "cost"} <= topics
    doc = Page()
    doc.feed(page.read_text())
    assert doc.tags.count("svg") == 5 and "script" not in doc.tags and doc.refs == []
    text = laptop.cli("compare", cloud_id, ollama_id)
    assert "findings:" in text.stdout and "cache hit rate" in text.stdout

    # import: the raw logs of the cloud run, as the old scripts named them, plus a legacy
    # whole-document file
    run_dir = Path(shown["run"]["directory"])
    old = tmp_path / "old"
    old.mkdir()
    for n in (1, 2):
        (old / f"iteration-{n + 8}.json").write_bytes(
            (run_dir / f"iteration-{n}.ndjson").read_bytes())
    imported = laptop.json("import", str(old / "iteration-10.json"),
                           str(old / "iteration-9.json"), "--label", "old scripts")["data"]
    assert imported["run"]["source"] == "import" and imported["run"]["backend"] == "cloud"
    assert imported["run"]["status"] == "imported" and imported["run"]["label"] == "old scripts"
    assert imported["totals"]["tool_calls"] == shown["totals"]["tool_calls"]
    assert imported["totals"]["tokens"] == shown["totals"]["tokens"]
    assert imported["totals"]["wall_s"] == pytest.approx(4.0)  # result duration_ms
    assert imported["run"]["argv"][0].endswith("iteration-9.json")  # iteration-N order


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_ctrl_c_sigterm_or_sighup_finalises_the_run(laptop: Laptop, sig: signal.Signals) -> None:
    laptop.scenario(lines=session(SONNET, cache_read=10, spawn=False), hang_on=2,
                    hang_after=2)
    proc = subprocess.Popen(laptop.argv("run", "-n", "3", "--prompt", "go"), env=laptop.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)
    runs = laptop.home / "ai-client" / "state" / "analytics" / "runs"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # until the hanging iteration has printed its lines
        raw = list(runs.glob("*/iteration-2.ndjson"))
        if raw and raw[0].read_bytes().count(b"\n") == 2:
            break
        time.sleep(0.025)
    hung = laptop.calls()[1]["pid"]
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted: run" in err and "finalised (2 iterations recorded)" in err
    assert "status       interrupted: 2/3 iterations, 1 ok" in out
    with laptop.db() as conn:
        row = conn.execute("SELECT * FROM runs").fetchone()
        statuses = [r[0] for r in conn.execute("SELECT status FROM iterations ORDER BY n")]
    assert row["status"] == "interrupted" and row["finished_at"]
    assert statuses == ["ok", "interrupted"]
    summary = json.loads((Path(row["directory"]) / "summary.json").read_text())
    assert summary["totals"]["iterations"] == 2 and summary["totals"]["tool_calls"] == 2
    assert summary["run"]["status"] == "interrupted"
    with pytest.raises(ProcessLookupError):
        for _ in range(50):  # the whole claude process group was stopped
            os.kill(hung, 0)
            if " Z " in Path(f"/proc/{hung}/stat").read_text():
                raise ProcessLookupError
            time.sleep(0.05)


def test_a_failing_iteration_exits_1_with_the_run_recorded(laptop: Laptop) -> None:
    laptop.scenario(lines=session(SONNET, cache_read=0, spawn=False), fail_on=1,
                    fail_stderr="API Error: 401 invalid x-api-key")
    res = laptop.cli("run", "-n", "2", "--prompt", "go", "--json")
    assert res.returncode == 1
    doc = json.loads(res.stdout)
    assert doc["ok"] is False and doc["data"]["run"]["status"] == "failed"
    (error,) = doc["errors"]
    assert error["code"] == "analytics.iteration_failed"
    assert error["message"] == ("iteration 1: error (claude exited with 1: API Error: 401 "
                                "invalid x-api-key)")
    assert doc["data"]["totals"]["iterations"] == 1


def test_usage_and_environment_errors_have_named_exit_codes(laptop: Laptop) -> None:
    res = laptop.cli("run", "--prompt", "plain", "--goal", "g")
    assert res.returncode == 2
    assert res.stderr.strip() == ("ai-client: error: --goal given but the prompt has no "
                                  "{{goal}} placeholder (hint: put {{goal}} where the goal "
                                  "belongs in the prompt)")
    assert laptop.cli("run", "--prompt", "x", "--bogus").returncode == 2
    assert laptop.cli("run").returncode == 2
    res = laptop.cli("run", "--backend", "ollama", "--prompt", "x")
    assert res.returncode == 4 and "ai-client setup" in res.stderr
    res = laptop.cli("show", "nope", "--json")
    assert res.returncode == 1 and json.loads(res.stdout)["errors"][0]["code"] == \
        "analytics.no_such_run"
    laptop.env["PATH"] = "/nonexistent"
    res = subprocess.run(laptop.argv("run", "--prompt", "x"), env=laptop.env,
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 5 and res.stderr.count("\n") == 1
    assert "`claude` (Claude Code) is not on PATH" in res.stderr
    assert laptop.calls() == []


def test_empty_list_and_help(laptop: Laptop) -> None:
    res = laptop.cli("list")
    assert res.returncode == 0 and "no runs yet" in res.stdout
    res = laptop.cli("run", "--help")
    assert res.returncode == 0
    for option in ("--backend", "--iterations", "--prompt-file", "--goal", "--stop-file",
                   "--push", "--iteration-timeout", "--keep-going", "--json"):
        assert option in res.stdout


def test_importing_the_commands_loads_no_sqlite() -> None:
    code = ("import sys; from aiclient.cli import cli; from aiclient.cli_analytics import "
            "analytics; cli.add_command(analytics); "
            "print(','.join(m for m in ('sqlite3', '_sqlite3', 'aiclient.analytics.store') "
            "if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, check=True)
    assert res.stdout.strip() == ""
