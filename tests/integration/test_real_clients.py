"""The real clients through the real gateway: Claude Code (2.1.332 and 2.1.153), Aider and the
openai/anthropic/ollama SDKs, set up by `ai-client setup` in a temp HOME, against the Ollama
simulator behind `ai-server run` — all inside a network namespace that has only `lo`.

One stack per module (a token gateway with the default allowlist, a second gateway with the
native profile, one simulator behind both); each test asserts what the user sees AND what
reached the simulator, route by route. Pins: tests/support/clients.env.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import HAPROXY_BINARIES
from tests.support import realclients
from tests.support.gatewayproc import GatewayProcess, free_port, start_gateway
from tests.support.ollama_sim import RecordedRequest
from tests.support.realstack import Stack, start_stack, stream_events

TOKEN = "laptop-token-0123456789abcdef"
MODEL = "qwen3-coder:30b"
EMBED = "nomic-embed-text:latest"
SDK_CALLS = Path(__file__).resolve().parents[1] / "support" / "sdk_calls.py"
VERSIONS = realclients.CLAUDE_CODE_VERSIONS


class RealStack:
    def __init__(self, stack: Stack, native: GatewayProcess) -> None:
        self.stack = stack
        self.native = native

    @property
    def sim(self) -> Any:
        return self.stack.sim

    def seen(self) -> list[RecordedRequest]:
        """Requests that reached the simulator from clients (HAProxy's health checks, sent
        without a Host header, left out)."""
        return [r for r in self.stack.sim.requests if r.header("host") is not None]

    def routes(self) -> Counter[tuple[str, str]]:
        return Counter((r.method, r.path) for r in self.seen())

    def log(self, gateway: GatewayProcess | None = None) -> list[dict[str, Any]]:
        gw = gateway or self.stack.gateway
        return [json.loads(line) for line in gw.log_lines() if line.startswith("{")]


@pytest.fixture(scope="module", params=sorted(HAPROXY_BINARIES))
def real(tmp_path_factory: pytest.TempPathFactory,
         request: pytest.FixtureRequest) -> Iterator[RealStack]:
    """The real clients go through the gateway on Debian's HAProxy and on 3.4.0 (Homebrew's)."""
    haproxy = HAPROXY_BINARIES[request.param]
    tmp = tmp_path_factory.mktemp("real")
    tokens = tmp / "tokens.map"
    tokens.write_text(f"{TOKEN} laptop\n")
    tokens.chmod(0o600)
    with realclients.loopback_only():
        assert realclients.interfaces() == ["lo"] and realclients.routes() == ""
        stack = start_stack(tmp, gateway={"tokens": True, "tokens_file": str(tokens)},
                            token=TOKEN, haproxy=haproxy)
        native_dir = tmp / "native"
        native_dir.mkdir()
        try:
            native = start_gateway(native_dir, stack.sim.port,
                                   gateway={"profiles": ["default", "native"]}, haproxy=haproxy)
        except Exception:
            stack.stop()
            raise
        try:
            res = stack.setup()
            assert res.returncode == 0, res.stderr
            yield RealStack(stack, native)
        finally:
            native.stop()
            stack.stop()


@pytest.fixture()
def fresh(real: RealStack) -> RealStack:
    real.sim.clear()
    return real


def claude_json(real: RealStack, version: str, *args: str, cwd: Path | None = None,
                env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str],
                                                            list[dict[str, Any]]]:
    res = real.stack.claude_ollama(version, *args, "--output-format", "stream-json", "--verbose",
                                   cwd=cwd, env=env)
    return res, stream_events(res.stdout)


def test_the_namespace_has_nothing_but_lo(real: RealStack) -> None:
    assert realclients.interfaces() == ["lo"]
    assert realclients.routes() == ""


@pytest.mark.parametrize("version", VERSIONS)
def test_claude_code_read_tool_round_trip(fresh: RealStack, version: str) -> None:
    proj = fresh.stack.home / f"proj-{version}"
    proj.mkdir()
    notes = proj / "notes.txt"
    notes.write_text("hello from notes\n")
    res, events = claude_json(fresh, version, "-p",
                              f'Use the Read tool: Read {{"file_path": "{notes}"}}', cwd=proj)
    assert res.returncode == 0, res.stderr
    init, result = events[0], events[-1]
    assert init["subtype"] == "init" and init["claude_code_version"] == version
    assert init["model"] == MODEL and init["apiKeySource"] == "none"
    assert result["type"] == "result" and result["subtype"] == "success"
    uses = [b for e in events if e["type"] == "assistant" for b in e["message"]["content"]
            if b["type"] == "tool_use"]
    assert [(u["name"], u["input"]) for u in uses] == [("Read", {"file_path": str(notes)})]
    results = [b for e in events if e["type"] == "user" for b in e["message"]["content"]
               if isinstance(b, dict) and b.get("type") == "tool_result"]
    assert len(results) == 1 and "hello from notes" in json.dumps(results[0]["content"])
    # on the wire: only the Messages API, twice (tool_use, then the tool_result back)
    assert fresh.routes() == Counter({("GET", "/api/version"): 1,  # the wrapper's check
                                      ("POST", "/v1/messages"): 2})
    calls = [r for r in fresh.seen() if r.path == "/v1/messages"]
    assert all(r.target == "/v1/messages?beta=true" for r in calls)
    first, second = (r.json() for r in calls)
    assert first["model"] == MODEL and first["tools"]
    if version == realclients.CLAUDE_CODE_CURRENT:  # REFERENCE 2.6: a trailing system message
        assert first["messages"][-1]["role"] == "system"
    assert "hello from notes" in json.dumps(second["messages"])
    for r in calls:  # no browser markers; the gateway took the credential off
        assert r.header("origin") is None and r.header("sec-fetch-mode") is None
        assert r.header("authorization") is None and r.header("x-api-key") is None
    devices = {e["device"] for e in fresh.log() if e["path"] == "/v1/messages"}
    assert devices == {"laptop"}  # the device token, logged per device


@pytest.mark.parametrize("alias", ["opus", "sonnet", "haiku"])
def test_claude_code_model_aliases_resolve_to_the_server_model(fresh: RealStack,
                                                               alias: str) -> None:
    res, events = claude_json(fresh, realclients.CLAUDE_CODE_CURRENT, "-p", "hi", "--model",
                              alias)
    assert res.returncode == 0 and events[-1]["subtype"] == "success", res.stderr
    models = {r.json()["model"] for r in fresh.seen() if r.path == "/v1/messages"}
    assert models == {MODEL}


def test_claude_code_context_command_survives_refused_count_tokens(fresh: RealStack) -> None:
    res = fresh.stack.claude_ollama(realclients.CLAUDE_CODE_CURRENT, "-p", "/context")
    assert res.returncode == 0, res.stderr
    assert "Context Usage" in res.stdout and MODEL in res.stdout
    refused = [e for e in fresh.log() if e["path"] == "/v1/messages/count_tokens"]
    assert refused and {e["status"] for e in refused} == {403}
    assert ("POST", "/v1/messages/count_tokens") not in fresh.routes()  # never reached Ollama


def _wrapper_copy(real: RealStack, name: str, old: str, new: str) -> Path:
    text = real.stack.wrapper.read_text()
    assert old in text
    path = real.stack.wrapper.with_name(name)
    path.write_text(text.replace(old, new))
    path.chmod(0o700)
    return path


@pytest.mark.parametrize(("version", "context", "sends"), [
    (realclients.CLAUDE_CODE_CURRENT, 24576, False),
    (realclients.CLAUDE_CODE_CURRENT, 32768, True),
    ("2.1.153", 8192, True),
])
def test_claude_code_minimum_context_is_what_the_rule_says(
        fresh: RealStack, version: str, context: int, sends: bool) -> None:
    """The data behind share/compat/rules.toml `claude-needs-context` (min 32768, >2.1.153):
    what real Claude Code does, with the wrapper's own refusal bypassed."""
    from aiclient import compat

    env = fresh.stack.claude_path_env(version)
    settings = fresh.stack.wrapper.with_name("claude-ollama.settings.json")
    env.update(json.loads(settings.read_text())["env"])
    env["CLAUDE_CODE_MAX_CONTEXT_TOKENS"] = str(context)
    res = subprocess.run([str(realclients.claude_bin(version)), "-p", "hi"], env=env,
                         cwd=fresh.stack.home, capture_output=True, text=True, timeout=120,
                         check=False)
    reached = fresh.routes()[("POST", "/v1/messages")]
    if sends:
        assert res.returncode == 0 and reached == 1, res.stdout
    else:
        assert res.returncode == 1 and "Prompt is too long" in res.stdout and reached == 0
    minimum = compat.min_context(compat.load_rules(), compat.parse_version(version))
    assert sends == (minimum is None or context >= minimum)


def test_wrong_token_is_named_at_start(fresh: RealStack) -> None:
    wrapper = _wrapper_copy(fresh, "claude-wrong-token", TOKEN, "wrong-token-000000000000")
    env = fresh.stack.claude_path_env(realclients.CLAUDE_CODE_CURRENT)
    res = subprocess.run([str(wrapper), "-p", "hi"], env=env, cwd=fresh.stack.home,
                         capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 5
    assert "the server rejected this device token; run `ai-client setup --token" in res.stderr
    assert fresh.routes() == Counter()  # refused by the gateway, nothing reached Ollama
    # what Claude Code itself shows for the 401 the wrapper now intercepts: REFERENCE 2.6 saw
    # "Not logged in"; with the gateway's Anthropic-shaped 401 (code token_rejected) Claude
    # Code 2.1.332 prints the gateway's own message
    settings = fresh.stack.wrapper.with_name("claude-ollama.settings.json")
    env.update(json.loads(settings.read_text())["env"])  # the wrapper's values, bad token
    env["ANTHROPIC_AUTH_TOKEN"] = "wrong-token-000000000000"
    bare = subprocess.run([str(realclients.claude_bin()), "-p", "hi"], env=env,
                          cwd=fresh.stack.home, capture_output=True, text=True, timeout=120,
                          check=False)
    shown = bare.stdout + bare.stderr
    assert bare.returncode == 1, shown
    assert "API Error: 401 the device token was not accepted" in shown, shown


def test_dead_server_is_named_at_start_and_retries_are_bounded(fresh: RealStack,
                                                               tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    wrapper = _wrapper_copy(fresh, "claude-dead", fresh.stack.gateway.url, dead)
    env = fresh.stack.claude_path_env(realclients.CLAUDE_CODE_CURRENT)
    res = subprocess.run([str(wrapper), "-p", "hi"], env=env, cwd=fresh.stack.home,
                         capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 5
    assert f"cannot reach the server at {dead}" in res.stderr
    # the server dies after the check: Claude Code gives up after the wrapper's retry bound
    settings = fresh.stack.wrapper.with_name("claude-ollama.settings.json")
    dead_settings = tmp_path / "dead.settings.json"
    dead_settings.write_text(settings.read_text().replace(fresh.stack.gateway.url, dead))
    wrapper.write_text(wrapper.read_text().replace(str(settings), str(dead_settings)))
    fake_curl = tmp_path / "bin" / "curl"  # the check passes (the server was up then)
    fake_curl.parent.mkdir()
    fake_curl.write_text("#!/bin/sh\nprintf 200\n")
    fake_curl.chmod(0o755)
    env["PATH"] = f"{fake_curl.parent}:{env['PATH']}"
    started = time.monotonic()
    res = subprocess.run([str(wrapper), "-p", "hi", "--output-format", "stream-json",
                          "--verbose"], env=env, cwd=fresh.stack.home, capture_output=True,
                         text=True, timeout=170, check=False)
    elapsed = time.monotonic() - started
    retries = [e for e in stream_events(res.stdout) if e.get("subtype") == "api_retry"]
    assert res.returncode == 1 and stream_events(res.stdout)[-1]["is_error"] is True
    assert [e["attempt"] for e in retries] == [1, 2, 3, 4]
    assert {e["max_retries"] for e in retries} == {4}
    print(f"dead server reported by Claude Code after {elapsed:.1f} s (4 retries)")


def test_settings_files_cannot_send_prompts_elsewhere(fresh: RealStack) -> None:
    proj = fresh.stack.home / "proj-settings"
    (proj / ".claude").mkdir(parents=True)
    cloud = {"env": {"ANTHROPIC_BASE_URL": "http://127.0.0.1:9", "ANTHROPIC_MODEL": "x"}}
    user = fresh.stack.home / ".claude" / "settings.json"
    user.parent.mkdir(exist_ok=True)
    saved = user.read_text() if user.exists() else None
    user.write_text(json.dumps(cloud))
    (proj / ".claude" / "settings.local.json").write_text(json.dumps(cloud))
    try:
        for version in VERSIONS:
            fresh.sim.clear()
            res, events = claude_json(fresh, version, "-p", "hi", cwd=proj)
            assert res.returncode == 0 and events[-1]["subtype"] == "success", res.stdout
            assert fresh.routes()[("POST", "/v1/messages")] >= 1  # still our server
            assert {r.json()["model"] for r in fresh.seen() if r.path == "/v1/messages"} \
                == {MODEL}
            for where in (str(user), ".claude/settings.local.json"):
                assert f"note: {where} sets ANTHROPIC_BASE_URL" in res.stderr
    finally:
        if saved is None:
            user.unlink()
        else:
            user.write_text(saved)


def test_aider_chats_without_a_metadata_warning(fresh: RealStack) -> None:
    proj = fresh.stack.home / "aider-proj"
    proj.mkdir()
    env = fresh.stack.shell_env()
    res = subprocess.run([str(realclients.aider_bin()), "--message", "say hi", "--yes-always",
                          "--no-git", "--no-check-update", "--no-show-release-notes"],
                         env=env, cwd=proj, capture_output=True, text=True, timeout=300,
                         check=False, stdin=subprocess.DEVNULL)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert f"Model: openai/{MODEL}" in out and "quick brown fox" in out
    assert "Unknown context window" not in out and "model metadata" not in out.lower()
    assert fresh.routes() == Counter({("POST", "/v1/chat/completions"): 1})
    body = next(r for r in fresh.seen() if r.path == "/v1/chat/completions").json()
    assert body["model"] == MODEL


def sdk(kind: str, base: str, key: str) -> dict[str, Any]:
    res = subprocess.run([str(realclients.sdk_python()), str(SDK_CALLS), kind, base, key, MODEL,
                          EMBED], capture_output=True, text=True, timeout=300, check=False,
                         env={k: v for k, v in os.environ.items()
                              if not k.startswith(("OPENAI_", "ANTHROPIC_", "OLLAMA_"))})
    assert res.returncode == 0, res.stderr
    return dict(json.loads(res.stdout))


def test_openai_sdk(fresh: RealStack) -> None:
    out = sdk("openai", fresh.stack.gateway.url, TOKEN)
    assert out["models"]["value"] == sorted(m.name for m in fresh.sim.models)
    assert "quick brown fox" in out["chat"]["value"].lower()
    stream = out["stream"]["value"]
    assert stream[-1] == "usage" and "".join(s for s in stream[:-1] if s)
    assert out["tool"]["value"] == ["tool_calls", "get_weather", {"city": "sim"}]
    assert out["embeddings"]["value"] == 2
    assert "quick brown fox" in out["responses"]["value"].lower()
    missing = out["missing_model"]
    assert (missing["error"], missing["status"]) == ("NotFoundError", 404)
    assert "model 'no-such-model:1b' not found" in missing["message"]
    assert fresh.routes() == Counter({
        ("GET", "/v1/models"): 1, ("POST", "/v1/chat/completions"): 4,
        ("POST", "/v1/embeddings"): 1, ("POST", "/v1/responses"): 1})


def test_anthropic_sdk(fresh: RealStack) -> None:
    out = sdk("anthropic", fresh.stack.gateway.url, TOKEN)
    assert out["message"]["value"] == ["text"]
    text, stop = out["stream"]["value"]
    assert "quick brown fox" in text.lower() and stop == "end_turn"
    assert out["tool"]["value"] == ["tool_use", [["tool_use", "get_weather"]]]
    missing = out["missing_model"]
    assert (missing["error"], missing["status"]) == ("NotFoundError", 404)
    refused = out["count_tokens"]
    assert (refused["error"], refused["status"]) == ("PermissionDeniedError", 403)
    assert fresh.routes() == Counter({("POST", "/v1/messages"): 4})


def test_sdks_with_a_wrong_token_see_401(fresh: RealStack) -> None:
    out = sdk("openai", fresh.stack.gateway.url, "wrong-token-000000000000")
    assert (out["models"]["error"], out["models"]["status"]) == ("AuthenticationError", 401)
    assert fresh.routes() == Counter()


def test_ollama_sdk_on_the_native_profile(fresh: RealStack) -> None:
    out = sdk("ollama", fresh.native.url, "ollama")
    assert out["list"]["value"] == sorted(m.name for m in fresh.sim.models)
    assert "tools" in out["show"]["value"]
    assert "quick brown fox" in out["chat"]["value"].lower()
    assert out["chat_stream"]["value"] > 1
    assert "quick brown fox" in out["generate"]["value"].lower()
    assert out["embed"]["value"] == 2 and MODEL in out["ps"]["value"]
    for admin in ("pull", "delete", "copy"):  # admin routes: refused by the gateway
        assert (out[admin]["error"], out[admin]["status"]) == ("ResponseError", 403), admin
    assert fresh.routes() == Counter({
        ("GET", "/api/tags"): 1, ("POST", "/api/show"): 1, ("POST", "/api/chat"): 2,
        ("POST", "/api/generate"): 1, ("POST", "/api/embed"): 1, ("GET", "/api/ps"): 1})


def test_native_routes_are_refused_on_the_default_profile(fresh: RealStack) -> None:
    out = sdk("ollama", fresh.stack.gateway.url, TOKEN)
    assert (out["chat"]["error"], out["chat"]["status"]) == ("ResponseError", 403)
    assert (out["pull"]["error"], out["pull"]["status"]) == ("ResponseError", 403)
    # list/show/ps are read-only and on the default allowlist
    assert out["list"]["ok"] and out["show"]["ok"] and out["ps"]["ok"]
    assert set(fresh.routes()) <= {("GET", "/api/tags"), ("POST", "/api/show"),
                                   ("GET", "/api/ps")}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
