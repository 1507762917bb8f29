"""The CLI edge: envelope contract, clean errors, exit codes, import hygiene."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aicommon import __version__
from tests.support.signals import default_sigint

TOOLS = ["ai-server", "ai-client"]
PATHS_KEYS = {"config_file", "config_dir", "state_dir", "log_dir", "source", "share_dir",
              "share_files"}


def run_tool(tool: str, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    module = {"ai-server": "aiserver.cli", "ai-client": "aiclient.cli"}[tool]
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                          text=True, timeout=60, check=False, **kw)  # type: ignore[call-overload]


@pytest.mark.parametrize("tool", TOOLS)
def test_version(tool: str) -> None:
    res = run_tool(tool, "--version")
    assert res.returncode == 0
    assert res.stdout == f"{tool} {__version__}\n"


@pytest.mark.parametrize("tool", TOOLS)
def test_paths_json_contract(tool: str, isolated_home: Path) -> None:
    res = run_tool(tool, "paths", "--json")
    assert res.returncode == 0, res.stderr
    env = json.loads(res.stdout)  # stdout is exactly one JSON document
    assert set(env) == {"schema", "command", "ok", "data", "errors"}
    assert env["schema"] == 1 and env["command"] == "paths" and env["ok"] is True
    assert env["errors"] == []
    assert set(env["data"]) == PATHS_KEYS
    root = isolated_home / tool
    assert env["data"]["config_file"] == str(root / "config" / "config.toml")
    assert env["data"]["share_files"] >= 1


@pytest.mark.parametrize("tool", TOOLS)
def test_config_option_is_reported(tool: str, tmp_path: Path) -> None:
    res = run_tool(tool, "--config", str(tmp_path / "x.toml"), "paths", "--json")
    assert json.loads(res.stdout)["data"]["config_file"] == str(tmp_path / "x.toml")


@pytest.mark.parametrize("tool", TOOLS)
@pytest.mark.parametrize("args", [["--bogus"], ["no-such-command"], ["paths", "--nope"]])
def test_usage_errors_exit_2(tool: str, args: list[str]) -> None:
    res = run_tool(tool, *args)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and res.stdout == ""


@pytest.mark.parametrize("tool", TOOLS)
def test_help_on_every_command(tool: str) -> None:
    import click

    module = __import__({"ai-server": "aiserver.cli", "ai-client": "aiclient.cli"}[tool],
                        fromlist=["cli"])
    group: click.Group = module.cli

    def walk(cmd: click.Command, path: list[str]) -> list[list[str]]:
        found = [path]
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                found += walk(sub, [*path, name])
        return found

    for path in walk(group, []):
        res = run_tool(tool, *path, "--help")
        assert res.returncode == 0, (path, res.stderr)
        assert "Usage:" in res.stdout


def test_domain_error_is_one_line_with_its_exit_code(tmp_path: Path) -> None:
    # A paths resolver pointed at a regular file where a directory must be: the share
    # listing still works, so provoke a domain error through the runner instead.
    code = (
        "import sys; from aicommon.clikit import run_main; import click\n"
        "from aicommon.errors import AiError, ExitCode\n"
        "@click.group()\n"
        "def g(): pass\n"
        "@g.command()\n"
        "def boom():\n"
        "    raise AiError('gateway has no address', 'start Tailscale', "
        "exit_code=ExitCode.UNAVAILABLE)\n"
        "run_main(g, 'ai-server', ['boom'])\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, check=False)
    assert res.returncode == 5
    assert res.stderr == "ai-server: error: gateway has no address (hint: start Tailscale)\n"
    assert res.stdout == ""


def test_ctrl_c_exits_130_without_traceback() -> None:
    code = (
        "import sys, time; from aicommon.clikit import run_main; import click\n"
        "@click.group()\n"
        "def g(): pass\n"
        "@g.command()\n"
        "def wait():\n"
        "    print('ready', flush=True); time.sleep(30)\n"
        "run_main(g, 'ai-client', ['wait'])\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    time.sleep(0.1)
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 130
    assert "Traceback" not in err and "interrupted" in err


@pytest.mark.parametrize("module", ["aiserver.cli", "aiclient.cli"])
def test_importing_cli_does_not_import_heavy_modules(module: str) -> None:
    code = (f"import sys, {module}\n"
            "heavy = [m for m in ('requests', 'sqlite3', 'urllib3', 'platformdirs', 'tomllib',"
            " 'packaging') if m in sys.modules]\n"
            "print(','.join(heavy))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, check=True)
    assert res.stdout.strip() == ""
