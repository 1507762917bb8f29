"""Issue 14 §3–§4 on the client side, against the real gateway and the simulator (fake claude;
the real Claude Code shows the same in test_real_clients.py): Claude Code's minimum context,
settings files that override the wrapper, OLLAMA_API_BASE only with the native profile, and
no embedding model as the chat model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from aiclient.tools import claude
from aiserver import install, system
from tests.integration.conftest import GatewayFactory
from tests.integration.test_client_setup import Laptop
from tests.support.ollama_sim import OllamaSimulator


@pytest.fixture()
def laptop(tmp_path: Path, isolated_home: Path) -> Laptop:
    return Laptop(tmp_path, isolated_home)


def setup(laptop: Laptop, port: int, *extra: str) -> subprocess.CompletedProcess[str]:
    return laptop.cli("setup", "--server", "127.0.0.1", "--port", str(port), "--shell", "bash",
                      "--yes", *extra)


def wrapper(laptop: Laptop) -> Path:
    return laptop.home / "ai-client" / "state" / "bin" / "claude-ollama"


def run_wrapper(laptop: Laptop, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(wrapper(laptop)), "-p", "hi"], env=laptop.env,
                          cwd=cwd or laptop.home, capture_output=True, text=True, timeout=30,
                          check=False)


def claude_calls(laptop: Laptop) -> list[dict[str, object]]:
    if not laptop.claude_log.exists():
        return []
    return [json.loads(line) for line in laptop.claude_log.read_text().splitlines()]


NEEDS = "Claude Code cannot work with context 8192 (needs >= 32768)"


def test_small_context_is_reported_everywhere_and_the_wrapper_refuses(
        laptop: Laptop, sim: OllamaSimulator, gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(sim.port)
    # the server runs the model at 8192 (what `ai-server install` picked under 16 GiB)
    status = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-d",
                             json.dumps({"model": "qwen3-coder:30b", "keep_alive": -1,
                                         "options": {"num_ctx": 8192}}),
                             f"{sim.url}/api/generate"], capture_output=True, text=True,
                            check=True).stdout
    assert status == "200" and sim.loaded_models()["qwen3-coder:30b"] == 8192
    res = setup(laptop, gw.port)
    assert res.returncode == 0, res.stderr
    assert "ai-server install --context-length" in res.stderr
    assert f"claude-ollama         # will refuse to start: {NEEDS}" in res.stdout
    # claude-ollama refuses with that message instead of Claude Code's "Prompt is too long"
    done = run_wrapper(laptop)
    assert done.returncode == 4 and NEEDS in done.stderr
    assert "--context-length 131072" in done.stderr and claude_calls(laptop) == []
    doctor = laptop.cli("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["data"]["checks"]}
    assert doctor.returncode == 3 and checks["claude context"]["status"] == "FAIL"
    assert NEEDS in checks["claude context"]["detail"]
    assert "--context-length" in checks["claude context"]["fix"]
    test = laptop.cli("test", "--quick", "--json")
    got = {c["name"]: c for c in json.loads(test.stdout)["data"]["checks"]}
    assert test.returncode == 3 and got["claude.context"]["status"] == "FAIL"
    compat = laptop.cli("check-compatibility", "--json")
    data = json.loads(compat.stdout)["data"]
    assert compat.returncode == 4 and data["verdict"] == "broken"
    finding = next(f for f in data["findings"] if f["rule"] == "claude-needs-context")
    assert finding["symptom"].startswith(NEEDS)
    # Aider keeps working: its metadata describes the 8192 context
    meta = json.loads((laptop.home / ".aider.model.metadata.json").read_text())
    assert meta["openai/qwen3-coder:30b"]["max_input_tokens"] == 8192


def test_enough_context_passes(laptop: Laptop, gateway_factory: GatewayFactory,
                               sim: OllamaSimulator) -> None:
    gw = gateway_factory(sim.port)
    assert setup(laptop, gw.port).returncode == 0  # 65536: ai-server's default
    doctor = laptop.cli("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["data"]["checks"]}
    assert checks["claude context"]["status"] == "PASS"
    assert checks["claude settings"]["status"] == "PASS"
    done = run_wrapper(laptop)
    assert done.returncode == 0, done.stderr
    assert claude_calls(laptop)[-1]["argv"] == [
        "--settings", str(wrapper(laptop).with_name(claude.SETTINGS_NAME)), "-p", "hi"]


def test_settings_overrides_are_named_by_doctor_and_the_wrapper(
        laptop: Laptop, gateway_factory: GatewayFactory, sim: OllamaSimulator) -> None:
    gw = gateway_factory(sim.port)
    assert setup(laptop, gw.port).returncode == 0
    user = laptop.home / ".claude" / "settings.json"
    user.parent.mkdir()
    user.write_text(json.dumps({"env": {"ANTHROPIC_BASE_URL": "https://api.anthropic.com"},
                                "model": "opus"}))
    proj = laptop.home / "proj"
    (proj / ".claude").mkdir(parents=True)
    (proj / ".claude" / "settings.json").write_text(json.dumps(
        {"env": {"CLAUDE_CODE_MAX_RETRIES": "10"}}))
    done = run_wrapper(laptop, cwd=proj)
    assert done.returncode == 0
    assert (f"note: {user} sets ANTHROPIC_BASE_URL; claude-ollama's value wins (passed with "
            "--settings)") in done.stderr
    assert "note: .claude/settings.json sets CLAUDE_CODE_MAX_RETRIES" in done.stderr
    doctor = subprocess.run([sys.executable, "-m", "aiclient.cli", "doctor", "--json"],
                            env=laptop.env, cwd=proj,
                            capture_output=True, text=True, timeout=120, check=False)
    check = {c["name"]: c for c in json.loads(doctor.stdout)["data"]["checks"]}["claude settings"]
    assert check["status"] == "WARN"
    assert f"{user} sets ANTHROPIC_BASE_URL" in check["detail"]
    assert f"{proj / '.claude' / 'settings.json'} sets CLAUDE_CODE_MAX_RETRIES" in check["detail"]


def test_managed_settings_that_reroute_stop_the_wrapper(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    managed = tmp_path / "managed settings.json"  # a space, like macOS's path
    monkeypatch.setattr(claude, "MANAGED_SETTINGS", (managed,))
    script = tmp_path / "claude-ollama"
    script.write_text(claude.render_wrapper("http://127.0.0.1:9", "tok", "m", 65536, False,
                                            settings_file=tmp_path / "s.json"))
    script.chmod(0o700)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "claude").write_text("#!/bin/sh\necho started\n")
    (bin_dir / "curl").write_text("#!/bin/sh\nprintf 200\n")  # the server check passes
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(script)], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=30, check=False)

    managed.write_text(json.dumps({"env": {"DISABLE_TELEMETRY": "1"}}))
    done = run()
    assert done.returncode == 0 and done.stdout == "started\n"
    assert f"note: managed settings {managed} set DISABLE_TELEMETRY" in done.stderr
    managed.write_text(json.dumps({"env": {"ANTHROPIC_BASE_URL": "https://api.anthropic.com"}}))
    done = run()
    assert done.returncode == 4 and done.stdout == ""
    assert f"managed settings {managed} set ANTHROPIC_BASE_URL, which overrides" in done.stderr
    found = claude.overrides(tmp_path, tmp_path)
    assert [(o.file, o.key, o.managed) for o in found] == [(managed, "ANTHROPIC_BASE_URL",
                                                             True)]


def test_ollama_api_base_only_with_the_native_profile(
        laptop: Laptop, sim: OllamaSimulator, gateway_factory: GatewayFactory) -> None:
    default = gateway_factory(sim.port)
    native = gateway_factory(sim.port, gateway={"profiles": ["default", "native"]})
    envsh = laptop.home / "ai-client" / "config" / "env.sh"
    assert setup(laptop, default.port).returncode == 0
    text = envsh.read_text()
    assert "OLLAMA_API_BASE" not in text.replace("# No OLLAMA_API_BASE", "")
    assert "does not forward Ollama's native API" in text
    assert setup(laptop, native.port).returncode == 0
    text = envsh.read_text()
    assert f"export OLLAMA_API_BASE='http://127.0.0.1:{native.port}'" in text
    seen = subprocess.run(["bash", "-c", f'. "{envsh}"; printf %s "$OLLAMA_API_BASE"'],
                          env=laptop.env, capture_output=True, text=True, check=True).stdout
    assert seen == f"http://127.0.0.1:{native.port}"
    env = laptop.cli("env")
    assert "OLLAMA_API_BASE" in env.stdout


def test_an_embedding_model_is_refused_as_the_chat_model(
        laptop: Laptop, sim: OllamaSimulator, gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(sim.port)
    before = laptop.snapshot()
    res = setup(laptop, gw.port, "--model", "nomic-embed-text:latest")
    assert res.returncode == 2
    assert ("nomic-embed-text:latest cannot be the chat model: it lacks the 'completion' "
            "capability (it has: embedding)") in res.stderr
    assert "usable: qwen3-coder:30b, llama3.2:3b, gemma3:1b" in res.stderr
    assert laptop.snapshot() == before
    assert setup(laptop, gw.port).returncode == 0
    meta = json.loads((laptop.home / ".aider.model.metadata.json").read_text())
    assert "openai/nomic-embed-text:latest" not in meta  # no chat entry for it
    assert "openai/llama3.2:3b" in meta


def test_install_warns_when_the_context_is_too_small_for_claude_code(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(system, "memory_bytes", lambda: 8 * 2**30)
    _, notes = install.desired_settings(tmp_path / "server.toml", install.Options())
    assert any("lowered from 65536 to 8192" in n for n in notes)
    assert any(n.startswith("Claude Code cannot work with context 8192 (needs >= 32768)")
               and "Aider works" in n for n in notes)
    monkeypatch.setattr(system, "memory_bytes", lambda: 64 * 2**30)
    _, notes = install.desired_settings(tmp_path / "server.toml", install.Options())
    assert not any("Claude Code" in n for n in notes)
    _, notes = install.desired_settings(tmp_path / "server.toml",
                                        install.Options(context_length=16384))
    assert any("Claude Code cannot work with context 16384" in n for n in notes)
