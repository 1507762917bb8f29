"""The analytics loop against the recording fake `claude` (tests/support/fakes/claude-stream):
every way an iteration can end still finalises the run with a correct summary."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aiclient.analytics import runner
from aiclient.analytics.records import (
    COMPLETE,
    ERROR,
    FAILED,
    KILLED,
    NO_RESULT,
    OK,
    STOPPED,
    TIMEOUT,
    IterationRecord,
)
from aiclient.analytics.store import Store, analytics_dir
from aiclient.settings import Client, ClientSettings, Server, to_toml
from aiclient.tools.claude import wrapper_env
from aicommon.errors import AiError, ExitCode
from aicommon.paths import client_paths
from tests.unit.test_analytics_parser import assistant as assistant_event
from tests.unit.test_analytics_parser import (
    init,
    model_usage,
    result,
    retry,
    tool_result,
    tool_use,
    usage,
)

REPO = Path(__file__).resolve().parents[2]
FAKE = REPO / "tests" / "support" / "fakes" / "claude-stream"
FAKE_GIT = """#!/bin/sh
echo "$*" >> "$FAKE_GIT_LOG"
[ -z "$FAKE_GIT_FAIL" ] || { echo "fatal: no upstream" >&2; exit 128; }
"""

SESSION: list[Any] = [
    init(),
    assistant_event("msg_{{iteration}}a", tool_use("tu_{{iteration}}_1", "Read"),
                    usage(10, 100, 1000, 1)),
    assistant_event("msg_{{iteration}}a", tool_use("tu_{{iteration}}_2", "Edit"),
                    usage(10, 100, 1000, 1)),
    tool_result("tu_{{iteration}}_1"),
    retry(503),
    tool_result("tu_{{iteration}}_2", is_error=True),
    result(num_turns=3, duration_ms=5000, duration_api_ms=4000, total_cost_usd=0.02,
           modelUsage={"claude-sonnet-4-5": model_usage(12, 300, 1000, 100, 0.02)}),
]


class Fake:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.bin = tmp / "bin"
        self.bin.mkdir()
        (self.bin / "claude").symlink_to(FAKE)
        # the real interpreter for the fake's `#!/usr/bin/env python3`: a pyenv shim would
        # change the environment the fake records
        (self.bin / "python3").symlink_to(Path(sys.executable).resolve())
        git = self.bin / "git"
        git.write_text(FAKE_GIT)
        git.chmod(0o755)
        self.log = tmp / "claude.jsonl"
        self.git_log = tmp / "git.log"
        self.scenario_file = tmp / "scenario.json"
        self.pidfile = tmp / "claude.pid"
        self.env = dict(os.environ, PATH=f"{self.bin}:{os.environ['PATH']}",
                        FAKE_CLAUDE_LOG=str(self.log), FAKE_GIT_LOG=str(self.git_log),
                        FAKE_CLAUDE_SCENARIO=str(self.scenario_file),
                        FAKE_CLAUDE_PIDFILE=str(self.pidfile))
        self.scenario()

    def scenario(self, **kw: Any) -> None:
        kw.setdefault("lines", SESSION)
        self.scenario_file.write_text(json.dumps(kw))

    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def git_calls(self) -> list[str]:
        return self.git_log.read_text().splitlines() if self.git_log.exists() else []

    def spec(self, backend: str = "cloud", model: str | None = None, **kw: Any
             ) -> runner.RunSpec:
        kw.setdefault("template", "do the thing")
        return runner.RunSpec(runner.resolve_backend(backend, model, None, self.env), **kw)


@pytest.fixture
def fake(tmp_path: Path) -> Fake:
    return Fake(tmp_path)


class Recorder(runner.Progress):
    def __init__(self) -> None:
        self.events: list[str] = []

    def iteration_finished(self, rec: IterationRecord, total: int, backend: str) -> None:
        self.events.append(f"done {rec.n}/{total} {rec.status}")

    def tool(self, n: int, name: str, sub: bool) -> None:
        self.events.append(f"tool {n} {name}")

    def note(self, text: str) -> None:
        self.events.append(f"note {text}")


def db_row(run_id: str) -> dict[str, Any]:
    conn = sqlite3.connect(analytics_dir() / "analytics.db")
    conn.row_factory = sqlite3.Row
    row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
    count = conn.execute("SELECT count(*) FROM iterations WHERE run_id = ?",
                         (run_id,)).fetchone()[0]
    conn.close()
    return {**dict(row), "iteration_rows": count}


def assert_finalised(res: runner.RunResult, status: str, iterations: int) -> dict[str, Any]:
    row = db_row(res.info.id)
    assert row["status"] == status and row["finished_at"]
    assert row["iteration_rows"] == iterations
    on_disk: dict[str, Any] = json.loads((Path(res.info.directory) / "summary.json").read_text())
    assert on_disk == res.summary == json.loads(row["summary_json"])
    assert on_disk["run"]["status"] == status
    assert on_disk["totals"]["iterations"] == iterations
    return on_disk


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        return " Z " not in Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1][:4]
    except OSError:
        return False


def test_iterations_are_recorded_and_summed(fake: Fake) -> None:
    progress = Recorder()
    res = runner.run(fake.spec(iterations=3, label="baseline"), progress)
    assert not res.interrupted and res.problems == []
    s = assert_finalised(res, COMPLETE, 3)
    t = s["totals"]
    assert t["iterations_ok"] == 3 and t["tool_calls"] == 6
    assert t["tools"] == {"Edit": 3, "Read": 3}
    assert t["tool_errors"] == 3 and t["tool_errors_by_tool"] == {"Edit": 3}
    assert t["api_retries"] == 3 and t["retry_statuses"] == {"503": 3}
    assert t["api_calls"] == 3  # two lines per message, de-duplicated
    assert t["tokens"] == {"input": 36, "cache_creation": 300, "cache_read": 3000,
                           "output": 900}
    assert t["cache_hit_rate"] == pytest.approx(3000 / 3336)
    assert t["cost_usd"] == pytest.approx(0.06) and t["turns"] == 9
    assert s["run"]["label"] == "baseline" and s["run"]["claude_version"] == "2.1.240"
    assert s["run"]["backend"] == "cloud" and s["run"]["base_url"] == runner.CLOUD_BASE_URL
    assert progress.events[:3] == ["tool 1 Read", "tool 1 Edit", "done 1/3 ok"]
    run_dir = Path(res.info.directory)
    assert run_dir.parent == client_paths().state_dir / "analytics" / "runs"
    for n in (1, 2, 3):
        raw = (run_dir / f"iteration-{n}.ndjson").read_text().splitlines()
        assert len(raw) == len(SESSION) and json.loads(raw[1])["message"]["id"] == f"msg_{n}a"
    assert (run_dir / "prompt.txt").read_text() == "do the thing"
    argvs = [c["argv"] for c in fake.calls()]
    assert argvs == [["-p", "--output-format", "stream-json", "--verbose", "--",
                      "do the thing"]] * 3
    assert fake.git_calls() == []  # never git without --push


def test_a_failing_iteration_still_finalises(fake: Fake) -> None:
    fake.scenario(fail_on=2, fail_after=3, fail_stderr="API Error: 500 boom")
    progress = Recorder()
    res = runner.run(fake.spec(iterations=3), progress)
    s = assert_finalised(res, FAILED, 2)
    first, second = s["iterations"]
    assert first["status"] == OK
    assert second["status"] == ERROR and second["exit_code"] == 1
    assert second["error"] == "claude exited with 1: API Error: 500 boom"
    # iteration 2 got as far as its first message (two tool calls, no result)
    assert second["tool_calls"] == 2 and second["tokens_source"] == "messages"
    assert s["totals"]["tool_calls"] == 4
    assert s["totals"]["tokens"] == {"input": 12 + 10, "cache_creation": 100 + 100,
                                     "cache_read": 1000 + 1000, "output": 300 + 1}
    assert res.problems == ["iteration 2: error (claude exited with 1: API Error: 500 boom)"]
    assert any("--keep-going" in e for e in progress.events)
    assert len(fake.calls()) == 2


def test_keep_going_runs_the_rest(fake: Fake) -> None:
    fake.scenario(fail_on=1, fail_after=0)
    res = runner.run(fake.spec(iterations=3, keep_going=True))
    s = assert_finalised(res, COMPLETE, 3)
    assert [it["status"] for it in s["iterations"]] == [ERROR, OK, OK]
    assert s["totals"]["iterations_failed"] == 1 and len(res.problems) == 1


def test_a_result_error_and_a_missing_result_are_failures(fake: Fake) -> None:
    fake.scenario(lines=[init(), result(is_error=True, subtype="error_max_turns",
                                        errors=["max turns reached"])])
    res = runner.run(fake.spec(iterations=1))
    assert res.records[0].status == ERROR
    assert res.records[0].error == "result error_max_turns: max turns reached"
    fake.scenario(lines=[init(), '{"type":"assistant","mess'], no_newline=True)
    res = runner.run(fake.spec(iterations=1))
    rec = res.records[0]
    assert rec.status == NO_RESULT and rec.stats.truncated_last_line
    assert_finalised(res, COMPLETE, 1)


def test_a_hanging_claude_is_stopped_at_the_timeout(fake: Fake) -> None:
    fake.scenario(hang_on=2, hang_after=2)
    t0 = time.monotonic()
    res = runner.run(fake.spec(iterations=3, iteration_timeout=1.0))
    assert time.monotonic() - t0 < 8
    s = assert_finalised(res, FAILED, 2)
    second = s["iterations"][1]
    assert second["status"] == TIMEOUT and "no end after 1 s" in second["error"]
    assert second["tool_calls"] == 1  # it printed init + one assistant line before hanging
    assert not pid_alive(fake.calls()[1]["pid"])


def test_a_killed_claude_is_recorded(fake: Fake) -> None:
    fake.scenario(hang_on=1, hang_after=3)

    def killer() -> None:
        for _ in range(400):  # once it has printed its three lines
            raw = list((analytics_dir() / "runs").glob("*/iteration-1.ndjson"))
            if raw and raw[0].read_bytes().count(b"\n") == 3 and fake.pidfile.exists():
                os.kill(int(fake.pidfile.read_text()), signal.SIGKILL)
                return
            time.sleep(0.025)

    thread = threading.Thread(target=killer)
    thread.start()
    res = runner.run(fake.spec(iterations=2))
    thread.join()
    s = assert_finalised(res, FAILED, 1)
    only = s["iterations"][0]
    assert only["status"] == KILLED and only["error"] == "claude was killed by SIGKILL"
    assert only["exit_code"] == -signal.SIGKILL and only["tool_calls"] == 2


def test_the_stop_file_ends_the_run_and_is_removed(fake: Fake) -> None:
    stop = fake.tmp / "STOP"
    fake.scenario(touch={"on": 2, "path": str(stop)})
    progress = Recorder()
    res = runner.run(fake.spec(iterations=5, stop_file=stop), progress)
    assert_finalised(res, STOPPED, 2)
    assert not stop.exists()
    assert any("stop file" in e for e in progress.events)


def test_a_stale_stop_file_is_refused_before_anything_runs(fake: Fake) -> None:
    stop = fake.tmp / "STOP"
    stop.write_text("")
    with pytest.raises(AiError) as exc:
        runner.run(fake.spec(stop_file=stop))
    assert "already exists" in exc.value.message and fake.calls() == []


def test_push_runs_git_push_after_each_iteration(fake: Fake) -> None:
    res = runner.run(fake.spec(iterations=2, push=True, cwd=fake.tmp))
    assert fake.git_calls() == ["push", "push"]
    assert [r.push for r in res.records] == ["ok", "ok"]
    fake.env["FAKE_GIT_FAIL"] = "1"
    progress = Recorder()
    res = runner.run(fake.spec(iterations=1, push=True), progress)
    assert res.records[0].push == "failed (exit 128): fatal: no upstream"
    assert any("git push after iteration 1 failed" in e for e in progress.events)
    with Store.open() as store:
        _, records = store.load(res.info.id)
    assert records[0].push == "failed (exit 128): fatal: no upstream"


TRICKY_GOAL = ("fix `a & b` in $HOME/*.py; rm -rf * \\ C:\\temp\\new \\1 \\g<0> %s {0} "
               "{{iteration}} \"q\" 'q' $(id) ~ ?")


def test_the_goal_arrives_verbatim(fake: Fake) -> None:
    template = "Goal: {{goal}}\nIteration {{iteration}}. {{goal}}"
    runner.run(fake.spec(iterations=2, template=template, goal=TRICKY_GOAL))
    prompts = [c["argv"][-1] for c in fake.calls()]
    assert prompts == [f"Goal: {TRICKY_GOAL}\nIteration {n}. {TRICKY_GOAL}" for n in (1, 2)]
    assert all(c["argv"][-2] == "--" for c in fake.calls())


def write_settings(**server: Any) -> ClientSettings:
    settings = ClientSettings(Server(**{"host": "studio.tail1234.ts.net", "port": 11434,
                                        "token": "tok-123", "context_length": 65536,
                                        **server}),
                              Client(model="qwen3-coder:30b"))
    path = client_paths().config_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_toml(settings))
    return settings


def test_ollama_backend_passes_exactly_the_claude_ollama_environment(fake: Fake) -> None:
    settings = write_settings()
    fake.env.update(ANTHROPIC_API_KEY="sk-ant-cloud-key", ANTHROPIC_MODEL="claude-opus-4-1",
                    OTHER_SETTING="kept")
    res = runner.run(fake.spec("ollama", iterations=1))
    (call,) = fake.calls()
    expected = dict(fake.env)
    expected.update(wrapper_env(settings.base_url, "tok-123", "qwen3-coder:30b", 65536))
    assert call["env"] == expected
    assert call["env"]["ANTHROPIC_API_KEY"] == "" and call["env"]["OTHER_SETTING"] == "kept"
    assert "--model" not in call["argv"]  # claude-ollama sets the model by environment only
    assert res.info.base_url == "http://studio.tail1234.ts.net:11434"
    assert res.info.model == "qwen3-coder:30b"
    assert res.summary["totals"]["cost_usd"] is None
    assert res.summary["totals"]["cost_note"].startswith("n/a")
    runner.run(fake.spec("ollama", model="llama3.3:70b", iterations=1))
    assert fake.calls()[1]["env"]["ANTHROPIC_MODEL"] == "llama3.3:70b"
    assert fake.calls()[1]["env"]["CLAUDE_CODE_SUBAGENT_MODEL"] == "llama3.3:70b"


def test_cloud_backend_leaves_the_environment_untouched(fake: Fake) -> None:
    fake.env.update(ANTHROPIC_API_KEY="sk-ant-cloud-key", ANTHROPIC_BASE_URL="https://gw.example")
    res = runner.run(fake.spec("cloud", model="claude-opus-4-1"))
    (call,) = fake.calls()
    assert call["env"] == fake.env
    assert call["argv"][:7] == ["-p", "--output-format", "stream-json", "--verbose",
                                "--model", "claude-opus-4-1", "--"]
    assert res.info.base_url == "https://gw.example"


def test_extra_claude_args_go_before_the_prompt(fake: Fake) -> None:
    runner.run(fake.spec(claude_args=("--permission-mode", "acceptEdits", "--allowedTools",
                                      "Read", "Edit")))
    assert fake.calls()[0]["argv"][3:] == ["--verbose", "--permission-mode", "acceptEdits",
                                           "--allowedTools", "Read", "Edit", "--",
                                           "do the thing"]


@pytest.mark.parametrize("arg", ["--model", "--output-format=json", "-p", "--verbose"])
def test_options_the_loop_owns_are_refused_as_claude_args(fake: Fake, arg: str) -> None:
    with pytest.raises(AiError) as exc:
        runner.run(fake.spec(claude_args=(arg, "x")))
    assert exc.value.exit_code == ExitCode.USAGE and fake.calls() == []


def test_ollama_needs_settings_and_a_model(fake: Fake) -> None:
    with pytest.raises(AiError) as exc:
        fake.spec("ollama")
    assert exc.value.exit_code == ExitCode.CONFIG and "ai-client setup" in exc.value.one_line()
    path = client_paths().config_file
    path.parent.mkdir(parents=True)
    path.write_text('[server]\nhost = "studio"\n')
    with pytest.raises(AiError) as exc:
        fake.spec("ollama")
    assert exc.value.exit_code == ExitCode.CONFIG and "--model" in exc.value.one_line()


def test_missing_claude_is_unavailable(fake: Fake) -> None:
    (fake.bin / "claude").unlink()
    fake.env["PATH"] = str(fake.bin)
    with pytest.raises(AiError) as exc:
        runner.run(fake.spec())
    assert exc.value.exit_code == ExitCode.UNAVAILABLE


Check = Callable[[], str]


@pytest.mark.parametrize(("prompt", "goal", "message"), [
    (None, None, "no prompt"),
    ("plain prompt", "a goal", "no {{goal}} placeholder"),
    ("needs {{goal}}", None, "no --goal was given"),
    ("  \n", None, "the prompt is empty"),
])
def test_prompt_mistakes_are_usage_errors(prompt: str | None, goal: str | None,
                                          message: str) -> None:
    with pytest.raises(AiError) as exc:
        runner.resolve_prompt(prompt, None, goal)
    assert message in exc.value.message and exc.value.exit_code == ExitCode.USAGE


def test_prompt_sources(tmp_path: Path) -> None:
    f = tmp_path / "p.md"
    f.write_text("Work on {{goal}}")
    assert runner.resolve_prompt(None, f, "x") == "Work on {{goal}}"
    assert runner.resolve_prompt(None, None, "just the goal") == "{{goal}}"
    with pytest.raises(AiError, match="exclusive"):
        runner.resolve_prompt("a", f, None)
    assert runner.render_prompt("{{goal}}/{{iteration}}/{{other}}", r"\g<0>", 7) == \
        r"\g<0>/7/{{other}}"
