"""`ai-client test` as a process, against the real gateway (HAProxy) in front of the simulator."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import GatewayFactory
from tests.support.gatewayproc import GatewayProcess, free_port
from tests.support.ollama_sim import OllamaSimulator

REPO = Path(__file__).resolve().parents[2]
# cli.py gets `cli.add_command(test)` from its owner; until then the tests add it themselves.
RUNNER = (
    "from aicommon.clikit import run_main\n"
    "from aiclient.cli import cli\n"
    "from aiclient.cli_test import test\n"
    "if 'test' not in cli.commands:\n"
    "    cli.add_command(test)\n"
    "run_main(cli, 'ai-client')\n"
)
ALL_CHECKS = ["openai.models", "openai.model", "openai.chat", "openai.stream",
              "openai.json_mode", "openai.tool_call", "anthropic.message", "anthropic.stream",
              "anthropic.system", "anthropic.tool_use", "anthropic.error",
              "gateway.admin_refused"]
QUICK_CHECKS = ["openai.models", "openai.model", "openai.chat", "openai.stream",
                "anthropic.message", "anthropic.stream", "gateway.admin_refused"]


def ai_client_test(*args: str, config: Path | None = None,
                   timeout: float = 120) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-c", RUNNER]
    if config is not None:
        argv += ["--config", str(config)]
    return subprocess.run([*argv, "test", *args], capture_output=True, text=True,
                          timeout=timeout, check=False, cwd=REPO)


def envelope(res: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    env: dict[str, Any] = json.loads(res.stdout)  # stdout is exactly one JSON document
    assert set(env) == {"schema", "command", "ok", "data", "errors"}
    assert env["schema"] == 1 and env["command"] == "test"
    return env


def checks(env: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in env["data"]["checks"]}


def one_line_error(res: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    return lines[0]


def test_everything_passes_through_the_gateway(sim: OllamaSimulator,
                                               gateway: GatewayProcess) -> None:
    sim.chunk_gap = 0.01  # tokens arrive over time, so the rate is measurable
    res = ai_client_test("--server", gateway.url, "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    env = envelope(res)
    assert env["ok"] is True and env["errors"] == []
    data = env["data"]
    assert data["model"] == "qwen3-coder:30b" and data["base_url"] == gateway.url
    got = checks(env)
    assert list(got) == ALL_CHECKS
    assert {c["status"] for c in got.values()} == {"PASS"}, got
    assert data["summary"] == {"pass": 12, "fail": 0, "skip": 0}
    assert got["gateway.admin_refused"]["detail"].startswith("403 ")
    perf = {p["api"]: p for p in data["performance"]}
    assert set(perf) == {"openai", "anthropic"}
    for p in perf.values():
        assert p["ttft_s"] > 0 and p["tokens"] == 8
        assert p["tokens_per_second"] > 0 and p["total_s"] >= p["ttft_s"]
    # Claude Code's path, headers as it sends them; the gateway strips the credentials
    msgs = [r for r in sim.requests if r.path == "/v1/messages"]
    assert msgs and {r.target for r in msgs} == {"/v1/messages?beta=true"}
    assert all(r.header("anthropic-version") == "2023-06-01" for r in msgs)
    assert all(r.header("x-api-key") is None and r.header("authorization") is None
               for r in msgs)
    assert not [r for r in sim.requests if r.path == "/api/pull"]


def test_human_report_and_quick_runs_fewer_checks(sim: OllamaSimulator,
                                                  gateway: GatewayProcess) -> None:
    res = ai_client_test("--server", gateway.url, "--quick")
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    assert out.startswith(f"server {gateway.url}  model qwen3-coder:30b")
    assert "CHECK" in out and "RESULT" in out and "FIRST TOKEN" in out and "TOKENS/S" in out
    rows = [line.split()[0] for line in out.splitlines()
            if line.split() and line.split()[0] in ALL_CHECKS]
    assert rows == QUICK_CHECKS and len(rows) < len(ALL_CHECKS)
    assert out.rstrip().endswith("passed: 7 passed, 0 failed, 0 skipped (--quick)")


@pytest.mark.parametrize(("switch", "value", "failing", "detail"), [
    ("break_event_order", True, ["anthropic.stream", "anthropic.tool_use"],
     "event content_block_delta before content_block_start"),
    ("break_event_order", "stop-first", ["anthropic.stream", "anthropic.tool_use"],
     "event message_stop before message_delta"),
    ("omit_done", True, ["openai.stream"], "stream ended without data: [DONE]"),
    ("tools_error_500", True, ["openai.tool_call", "anthropic.tool_use"],
     "HTTP 500 with tools"),
])
def test_each_defect_fails_its_check(sim: OllamaSimulator, gateway: GatewayProcess,
                                     switch: str, value: object, failing: list[str],
                                     detail: str) -> None:
    setattr(sim, switch, value)
    res = ai_client_test("--server", gateway.url, "--json")
    assert res.returncode == 3, res.stdout + res.stderr
    env = envelope(res)
    assert env["ok"] is False
    got = checks(env)
    failed = [name for name, c in got.items() if c["status"] == "FAIL"]
    assert failed == failing
    for name in failing:
        assert got[name]["detail"].startswith(detail), got[name]
    # the human report carries the same words
    human = ai_client_test("--server", gateway.url)
    assert human.returncode == 3 and detail in human.stdout
    assert "FAILED:" in human.stdout


def test_model_without_tools_skips_the_tool_checks(sim: OllamaSimulator,
                                                   gateway: GatewayProcess) -> None:
    res = ai_client_test("--server", gateway.url, "--model", "gemma3:1b", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    got = checks(envelope(res))
    for name in ("openai.tool_call", "anthropic.tool_use"):
        assert got[name]["status"] == "SKIP"
        assert "lacks the 'tools' capability" in got[name]["detail"]
    assert [n for n, c in got.items() if c["status"] == "SKIP"] == ["openai.tool_call",
                                                                   "anthropic.tool_use"]


TOKEN = "laptop-token-0123456789"


@pytest.fixture()
def token_gateway(sim: OllamaSimulator, gateway_factory: GatewayFactory,
                  tmp_path: Path) -> GatewayProcess:
    tokens = tmp_path / "tokens.map"
    tokens.write_text(f"# token device\n{TOKEN} alice-laptop\n")
    tokens.chmod(0o600)
    return gateway_factory(sim.port, gateway={"tokens": True, "tokens_file": str(tokens)})


def test_token_gateway(token_gateway: GatewayProcess) -> None:
    good = ai_client_test("--server", token_gateway.url, "--token", TOKEN, "--quick", "--json")
    assert good.returncode == 0, good.stdout + good.stderr
    assert envelope(good)["ok"] is True

    for token_args in (["--token", "wrong-token-000000000"], []):
        bad = ai_client_test("--server", token_gateway.url, *token_args)
        assert bad.returncode == 4 and bad.stdout == ""
        line = one_line_error(bad)
        assert line.startswith(f"ai-client: error: {token_gateway.url} refused the token "
                               "(HTTP 401 on GET /api/tags)")
        assert "--token" in line
    env = envelope(ai_client_test("--server", token_gateway.url, "--json"))
    assert env["ok"] is False and env["errors"][0]["code"] == "test.unauthorized"


def test_unreachable_server_is_one_line() -> None:
    res = ai_client_test("--server", f"127.0.0.1:{free_port()}")
    assert res.returncode == 5
    assert "cannot reach http://127.0.0.1:" in one_line_error(res)


class _Forbidden(http.server.BaseHTTPRequestHandler):
    """Something else on the port: refuses every route (like Ollama's Host check)."""

    def answer(self) -> None:
        body = b'{"error":"forbidden"}'
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture()
def forbidding_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Forbidden)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_403_on_an_allowed_route_is_diagnosed(forbidding_server: str) -> None:
    res = ai_client_test("--server", forbidding_server)
    assert res.returncode == 5
    line = one_line_error(res)
    assert "HTTP 403 on GET /api/tags" in line and "not this gateway" in line


def test_settings_are_used_without_server(sim: OllamaSimulator, gateway: GatewayProcess,
                                          tmp_path: Path) -> None:
    config = tmp_path / "client.toml"
    config.write_text(f'[server]\nhost = "127.0.0.1"\nport = {gateway.port}\n\n'
                      '[client]\nmodel = "llama3.2:3b"\n')
    config.chmod(0o600)
    res = ai_client_test("--quick", "--json", config=config)
    assert res.returncode == 0, res.stdout + res.stderr
    data = envelope(res)["data"]
    assert (data["base_url"], data["model"]) == (gateway.url, "llama3.2:3b")
    # --model wins over the settings
    res = ai_client_test("--quick", "--json", "--model", "gemma3:1b", config=config)
    assert envelope(res)["data"]["model"] == "gemma3:1b"


def test_no_settings_and_no_server(tmp_path: Path) -> None:
    res = ai_client_test(config=tmp_path / "missing.toml")  # an explicit file that is not there
    assert res.returncode == 4
    assert f"settings file {tmp_path / 'missing.toml'} does not exist" in one_line_error(res)
    res = ai_client_test()  # the default file (in the test's own HOME) is not there
    assert res.returncode == 4
    assert "ai-client is not set up" in one_line_error(res)
