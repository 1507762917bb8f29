"""`scripts/demo`, the README's first command, end to end: its report is the contract.

It builds the zipapps, runs Ollama (the simulator: `--simulator`, so a real Ollama on this
machine never makes the test slow), the gateway on 127.0.0.2, `ai-client setup`, `test`,
`ai-server audit` and `usage`, and tears everything down.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
STEPS = ["zipapps", "ollama", "tailscale", "gateway", "ai-client setup", "layers",
         "ai-client test", "ai-server audit", "ai-server usage"]


def demo_env() -> dict[str, str]:
    # the autouse fixture's HOME/AI_*/SHIV_ROOT must not leak into the demo's own HOME
    return {k: v for k, v in os.environ.items() if not k.startswith(("AI_", "SHIV_"))}


def refused(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex((host, port)) != 0


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str],
                                                                 dict[str, Any]]:
    report_file = tmp_path_factory.mktemp("demo") / "report.json"
    done = subprocess.run([str(REPO / "scripts/demo"), "--simulator", "--json-report",
                           str(report_file)], capture_output=True, text=True, env=demo_env(),
                          timeout=600, check=False)
    report = json.loads(report_file.read_text()) if report_file.exists() else {}
    return done, report


def test_demo_runs_the_whole_stack_and_reports_it(
        demo_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]]) -> None:
    done, report = demo_run
    out = done.stdout
    assert done.returncode == 0, out[-4000:] + done.stderr[-2000:]
    assert report["ok"] is True and report["failed_step"] is None
    assert [s["name"] for s in report["steps"]] == STEPS
    assert all(s["ok"] for s in report["steps"])
    summary = {s["name"]: s["summary"] for s in report["steps"]}
    assert report["ollama"] == "simulator"
    assert "Ollama API simulator on 127.0.0.1:" in summary["ollama"]
    assert re.search(r"became HAProxy \S+ on 127\.0\.0\.2:\d+", summary["gateway"])
    assert re.search(r"OPENAI_API_BASE=http://127\.0\.0\.2:\d+/v1", summary["ai-client setup"])
    assert "claude-ollama on PATH" in summary["ai-client setup"]
    assert "403 not_exposed" in summary["layers"] and "refuses connections" in summary["layers"]
    test = re.match(r"(\d+) passed, 0 failed, (\d+) skipped", summary["ai-client test"])
    assert test and int(test.group(1)) >= 5
    assert summary["ai-server audit"].startswith("clean: ")
    assert "ollama-loopback" in summary["ai-server audit"]
    assert "gateway-refusals" in summary["ai-server audit"]
    usage = re.match(r"(\d+) requests in the access log, (\d+) refused", summary["ai-server usage"])
    assert usage and int(usage.group(1)) > int(usage.group(2)) > 0
    # the printed report says the same, one line per step, and the verdict
    assert "== Report" in out
    for name in STEPS:
        assert re.search(rf"^  ok   {re.escape(name)} +\S", out, re.MULTILINE), name
    assert re.search(r"^demo: OK: 9 steps passed in [\d.]+ s; everything torn down$", out,
                     re.MULTILINE)


def test_demo_tears_everything_down(
        demo_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]]) -> None:
    _, report = demo_run
    assert report["kept"] is False
    assert not Path(report["home"]).exists()
    host, port = report["gateway"].rsplit(":", 1)
    assert refused(host, int(port))


def test_demo_names_the_failing_step(
        demo_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]], tmp_path: Path
) -> None:
    # No haproxy on PATH: the gateway step must fail, be named, and leave nothing behind.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for program in ("python3", "bash", "sh", "env", "ss"):
        found = next((p for p in (f"/usr/bin/{program}", f"/bin/{program}")
                      if os.path.exists(p)), None) or shutil.which(program)
        if found:
            (bin_dir / program).symlink_to(found)
    env = dict(demo_env(), PATH=str(bin_dir))
    report_file = tmp_path / "report.json"
    done = subprocess.run([str(REPO / ".venv/bin/python"), str(REPO / "scripts/demo.py"),
                           "--simulator", "--json-report", str(report_file)],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    report = json.loads(report_file.read_text())
    assert done.returncode == 1, done.stdout[-3000:]
    assert report["failed_step"] == "gateway"
    assert re.search(r"^demo: FAILED at step 'gateway': ", done.stdout, re.MULTILINE)
    assert not Path(report["home"]).exists()


def test_demo_rejects_a_bad_option_before_building_anything() -> None:
    done = subprocess.run([str(REPO / "scripts/demo"), "--bogus"], capture_output=True,
                          text=True, env=demo_env(), timeout=60, check=False)
    assert done.returncode == 2
    assert "unrecognized arguments: --bogus" in done.stderr
    assert "setup-venv" not in done.stderr and "build-zipapps" not in done.stderr
    assert done.stdout == ""


def test_an_interrupted_demo_says_so(
        demo_run: tuple[subprocess.CompletedProcess[str], dict[str, Any]], tmp_path: Path
) -> None:
    # demo_run built the zipapps; interrupt a second run once its gateway step has started
    import signal

    from tests.support.signals import default_sigint

    report_file = tmp_path / "report.json"
    proc = subprocess.Popen([str(REPO / ".venv/bin/python"), str(REPO / "scripts/demo.py"),
                             "--simulator", "--json-report", str(report_file)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=demo_env(), start_new_session=True, preexec_fn=default_sigint)
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("== gateway"):
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
            break
    rest, _ = proc.communicate(timeout=120)
    out = "".join(seen) + rest
    assert proc.returncode == 130, out[-3000:]
    assert re.search(r"^demo: INTERRUPTED during step '[a-z -]+' \(Ctrl-C\) after \d step\(s\) "
                     r"passed; everything torn down$", out, re.MULTILINE), out[-3000:]
    assert "demo: OK" not in out
    report = json.loads(report_file.read_text())
    assert report["interrupted"] is True and report["ok"] is False
    assert not Path(report["home"]).exists()
