"""Commands that say what is true (issue 17 §3): missing or undecodable settings files, exit
codes of bad option values, type errors written for people, -q and colour."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aicommon.errors import AiError, ExitCode
from aicommon.output import Output

TOOLS = ["ai-server", "ai-client"]
MODULES = {"ai-server": "aiserver.cli", "ai-client": "aiclient.cli"}
ENV_VARS = {"ai-server": "AI_SERVER_CONFIG", "ai-client": "AI_CLIENT_CONFIG"}
# commands that read the settings, per tool (each must refuse a missing explicit file)
READERS = {"ai-server": [["doctor"], ["status"], ["audit"], ["config", "validate"],
                         ["config", "render"], ["pool", "refresh"], ["models", "list"],
                         ["allowlist"]],
           "ai-client": [["test"], ["status"], ["doctor"], ["env"]]}


def run_tool(tool: str, *args: str, env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", MODULES[tool], *args], capture_output=True,
                          text=True, timeout=60, check=False,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("tool, args", [(t, a) for t in TOOLS for a in READERS[t]])
def test_an_explicit_config_that_does_not_exist_is_exit_4(tool: str, args: list[str],
                                                          tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent.toml"
    res = run_tool(tool, "--config", str(missing), *args)
    assert res.returncode == ExitCode.CONFIG, res.stdout + res.stderr
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert f"settings file {missing} does not exist" in res.stderr
    assert "defaults apply" not in res.stdout + res.stderr
    assert "not set up" not in res.stderr


@pytest.mark.parametrize("tool", TOOLS)
def test_the_config_env_var_naming_a_missing_file_is_exit_4_too(tool: str,
                                                                tmp_path: Path) -> None:
    missing = tmp_path / "gone.toml"
    res = run_tool(tool, "doctor", "--json", env={ENV_VARS[tool]: str(missing)})
    assert res.returncode == ExitCode.CONFIG, res.stderr
    envelope = json.loads(res.stdout)
    assert envelope["ok"] is False and envelope["errors"][0]["code"] == "config.missing"
    assert ENV_VARS[tool] in envelope["errors"][0]["hint"]


@pytest.mark.parametrize("tool", TOOLS)
def test_paths_still_reports_a_config_that_does_not_exist_yet(tool: str, tmp_path: Path) -> None:
    res = run_tool(tool, "--config", str(tmp_path / "new.toml"), "paths")
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("tool, args", [("ai-server", ["doctor"]), ("ai-server", ["status"]),
                                        ("ai-client", ["status"]), ("ai-client", ["env"])])
def test_a_settings_file_that_is_not_utf8_is_one_line_exit_4(tool: str, args: list[str],
                                                             tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    section = "[gateway]\n" if tool == "ai-server" else "[server]\n"
    cfg.write_bytes(section.encode() + b"# caf\xe9 in Latin-1\n")
    res = run_tool(tool, "--config", str(cfg), *args)
    assert res.returncode == ExitCode.CONFIG, res.stdout + res.stderr
    assert "Traceback" not in res.stderr and res.stderr.count("\n") == 1
    offset = len(section) + len("# caf")
    assert f"settings file {cfg} is not UTF-8 text: byte 0xe9 at offset {offset} (line 2)" \
        in res.stderr


def test_default_settings_file_not_utf8_is_refused_by_both_loaders(tmp_path: Path) -> None:
    from aiclient.settings import load as client_load
    from aiserver.settings import load as server_load

    bad = tmp_path / "c.toml"
    bad.write_bytes(b"\xff\xfe[\x00")  # UTF-16 with a BOM, as some editors save
    for loader in (server_load, client_load):
        with pytest.raises(AiError) as info:
            loader(bad)
        assert info.value.exit_code == ExitCode.CONFIG and "at offset 0" in info.value.message


def test_client_settings_that_cannot_be_read_are_exit_4(tmp_path: Path) -> None:
    from aiclient.settings import load

    with pytest.raises(AiError) as info:
        load(tmp_path)  # a directory
    assert info.value.exit_code == ExitCode.CONFIG


@pytest.mark.parametrize("text, message", [
    ('[gateway]\nlisten = "127.0.0.2"\n',
     'gateway.listen must be a list of strings, not a string: write listen = ["127.0.0.2"]'),
    ('[gateway]\nport = "11434"\n',
     "gateway.port must be a whole number, not a string: write port = 11434"),
    ("[gateway]\nport = true\n",
     "gateway.port must be a whole number, not true/false (true): e.g. port = 11434"),
    ('[gateway]\ntokens = "yes"\n',
     'gateway.tokens must be true or false, not a string ("yes"): e.g. tokens = false'),
    ("[gateway]\nprofiles = [1]\n",
     'gateway.profiles must be a list of strings, not a list with a number in it ([1]): '
     'e.g. profiles = ["default"]'),
    ("[ollama]\nkeep_alive = 30\n",
     'ollama.keep_alive must be a string, not a number (30): e.g. keep_alive = "30m"'),
])
def test_server_type_errors_read_for_people(text: str, message: str) -> None:
    from aiserver.settings import parse

    with pytest.raises(AiError) as info:
        parse(text)
    assert info.value.message == message
    assert "('1'" not in info.value.message and "a int" not in info.value.message


@pytest.mark.parametrize("text, message", [
    ('[server]\nport = "11434"\n',
     "server.port must be a whole number, not a string: write port = 11434"),
    ('[client]\nshells = "zsh"\n',
     'client.shells must be a list of strings, not a string: write shells = ["zsh"]'),
    ("[client]\nclaude = 1\n", "client.claude must be true or false, not a number (1): "
                               "e.g. claude = true"),
])
def test_client_type_errors_read_for_people(text: str, message: str) -> None:
    from aiclient.settings import parse

    with pytest.raises(AiError) as info:
        parse(text)
    assert info.value.message == message


@pytest.mark.parametrize("tool, args", [
    ("ai-server", ["install", "--dry-run", "--keep-alive", "forever"]),
    ("ai-server", ["install", "--dry-run", "--context-length", "10"]),
    ("ai-server", ["allowlist", "--profile", "bogus"]),
    ("ai-client", ["setup", "--dry-run", "--server", "bad host!"]),
    ("ai-client", ["setup", "--dry-run", "--server", "ftp://host:1"]),
    ("ai-client", ["setup", "--dry-run", "--server", "https://host:11434"]),
    ("ai-client", ["setup", "--dry-run", "--server", "http://host:11434/prefix"]),
    ("ai-client", ["setup", "--dry-run", "--server", "host:99999"]),
    ("ai-client", ["setup", "--dry-run", "--server", "host:1234", "--port", "4321"]),
    ("ai-client", ["setup", "--dry-run", "--server", "host", "--token", "a b"]),
    ("ai-client", ["setup", "--dry-run", "--port", "70000"]),
    ("ai-client", ["test", "--server", "ftp://x"]),
])
def test_a_bad_command_line_value_is_exit_2_everywhere(tool: str, args: list[str]) -> None:
    res = run_tool(tool, *args)
    assert res.returncode == ExitCode.USAGE, res.stdout + res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""


@pytest.mark.parametrize("value, host, port", [
    ("studio.tail1234.ts.net", "studio.tail1234.ts.net", None),
    ("studio.tail1234.ts.net:11500", "studio.tail1234.ts.net", 11500),
    ("http://studio.tail1234.ts.net:11500", "studio.tail1234.ts.net", 11500),
    ("http://studio.tail1234.ts.net:11500/", "studio.tail1234.ts.net", 11500),
    ("http://100.64.0.1", "100.64.0.1", None),
    ("100.64.0.1:8080", "100.64.0.1", 8080),
    ("[fd7a:115c:a1e0::1]:11434", "fd7a:115c:a1e0::1", 11434),
    ("fd7a:115c:a1e0::1", "fd7a:115c:a1e0::1", None),
    ("http://[fd7a:115c:a1e0::1]:11434/v1", "fd7a:115c:a1e0::1", 11434),
])
def test_setup_server_accepts_the_forms_test_accepts(value: str, host: str,
                                                     port: int | None) -> None:
    from aiclient.settings import parse_server

    assert parse_server(value) == (host, port)


def test_quiet_suppresses_warnings_but_not_errors() -> None:
    err = io.StringIO()
    out = Output(verbosity=-1, stderr=err, stdout=io.StringIO(), color=False)
    out.warn("listen = auto found no addresses")
    out.error("ai-server", AiError("broken"))
    assert err.getvalue() == "ai-server: error: broken\n"


def test_config_render_quiet_prints_no_warning(tmp_path: Path) -> None:
    """A real warning path: allow_other_listen = true is always warned about."""
    cfg = tmp_path / "c.toml"
    cfg.write_text('[gateway]\nlisten = ["127.0.0.1"]\nallow_other_listen = true\n')
    loud = run_tool("ai-server", "--config", str(cfg), "config", "render", "--output",
                    str(tmp_path / "out"))
    quiet = run_tool("ai-server", "-q", "--config", str(cfg), "config", "render", "--output",
                     str(tmp_path / "out2"))
    assert loud.returncode == quiet.returncode == 0, loud.stderr + quiet.stderr
    assert "warning: allow_other_listen = true" in loud.stderr
    assert quiet.stderr == ""


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_checks_are_coloured_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from aicommon.clikit import checks_text

    checks = [{"name": "a", "status": "PASS", "detail": "fine", "fix": ""},
              {"name": "b", "status": "FAIL", "detail": "broken", "fix": "repair"},
              {"name": "c", "status": "WARN", "detail": "hmm", "fix": ""}]
    plain = checks_text(checks)
    assert "\033[" not in plain
    coloured = checks_text(checks, color=True)
    assert "\033[32mPASS\033[0m  a" in coloured and "\033[31mFAIL\033[0m  b" in coloured
    assert "\033[33mWARN\033[0m  c" in coloured
    # the colour decision: a terminal on stdout, NO_COLOR unset, not --json
    assert Output(stdout=_Tty(), stderr=io.StringIO()).color_stdout is True
    assert Output(stdout=io.StringIO(), stderr=_Tty()).color_stdout is False
    assert Output(stdout=_Tty(), stderr=io.StringIO(), json_mode=True).color_stdout is False
    monkeypatch.setenv("NO_COLOR", "1")
    assert Output(stdout=_Tty(), stderr=_Tty()).color_stdout is False


def test_doctor_output_through_a_pipe_has_no_colour(tmp_path: Path) -> None:
    res = run_tool("ai-client", "doctor")  # not set up: a FAIL line
    assert res.returncode == ExitCode.FINDINGS
    assert res.stdout.startswith("FAIL  settings") and "\033[" not in res.stdout


def test_config_render_output_reports_what_it_wrote(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[gateway]\nlisten = ["127.0.0.1"]\n')
    out = tmp_path / "out"
    argv = ["--config", str(cfg), "config", "render", "--output", str(out)]
    first = run_tool("ai-server", *argv)
    total = sum(1 for p in out.rglob("*") if p.is_file())
    assert first.returncode == 0 and first.stderr == f"{out}: wrote {total} of {total} files\n"
    again = run_tool("ai-server", *argv)
    assert again.stderr == f"{out}: nothing written, all {total} files were already up to date\n"
    (out / "haproxy.cfg").write_text("# edited\n")
    third = run_tool("ai-server", *argv)
    assert third.stderr == f"{out}: wrote 1 of {total} files ({total - 1} already up to date)\n"


def test_allowlist_accepts_each_known_profile() -> None:
    res = run_tool("ai-server", "allowlist", "--profile", "native", "--json")
    assert res.returncode == 0, res.stderr
    assert {e["profile"] for e in json.loads(res.stdout)["data"]["entries"]} == {"default",
                                                                                 "native"}


def test_client_status_with_a_fail_line_is_not_ok() -> None:
    res = run_tool("ai-client", "status", "--json")  # not set up: the settings check fails
    assert res.returncode == ExitCode.FINDINGS, res.stderr
    env = json.loads(res.stdout)
    assert env["ok"] is False
    assert env["errors"][0]["code"] == "check.settings"
    assert "is not set up" in env["errors"][0]["message"]
    assert env["errors"][0]["hint"].startswith("run `ai-client setup")
    text = run_tool("ai-client", "status")
    assert text.returncode == ExitCode.FINDINGS and text.stdout.startswith("FAIL  settings")


@pytest.mark.parametrize("state, ips, words", [
    ("Running", (), "Tailscale is running but has no Tailscale address yet"),
    ("NeedsLogin", (), "Tailscale is logged out on this device"),
    ("Stopped", (), "Tailscale is stopped (disconnected)"),
])
def test_tailscale_wait_says_what_is_true(state: str, ips: tuple[str, ...], words: str,
                                         tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from aicommon import tailscale
    from tests.support import tsfake

    env: dict[str, str] = {}
    tsfake.install(env, tmp_path, tsfake.status_doc(state=state, ips=ips))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(AiError) as info:
        tailscale.wait_running(0)
    message = info.value.one_line()
    assert message.startswith(words)
    assert "state Running" not in message and "address(es)" not in message
    assert ("tailscale up" in message) == (state != "Running")
