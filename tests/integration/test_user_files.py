"""What the user wrote is never lost: settings edited in place (comments and order kept),
secrets masked in every diff, nothing left behind by --purge."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_client_setup import Laptop
from tests.integration.test_install import Stack
from tests.integration.test_zipapps import zipapps  # noqa: F401  (the built zipapps)
from tests.support import tsfake
from tests.support.fakeenv import make_fake_env
from tests.support.gatewayproc import GatewayProcess

TOKEN = "laptop-token-0123456789"


@pytest.fixture()
def laptop(tmp_path: Path, isolated_home: Path) -> Laptop:
    lp = Laptop(tmp_path, isolated_home)
    lp.tailscale(tsfake.status_doc())
    return lp


@pytest.fixture()
def stack(tmp_path: Path) -> Iterator[Stack]:
    fe = make_fake_env(tmp_path, platform="linux", with_brew=False,
                       tailscale=tsfake.status_doc())
    s = Stack(fe)
    try:
        yield s
    finally:
        fe.stop_all()


def dirs_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("claude", ["--claude", "--no-claude"])
def test_client_purge_leaves_no_empty_directories(laptop: Laptop, gateway: GatewayProcess,
                                                  claude: str) -> None:
    for var in ("AI_CLIENT_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        laptop.env.pop(var, None)  # the platform's own directories, as users have them
    before = dirs_under(laptop.home)
    res = laptop.cli("setup", "--server", "127.0.0.1", "--port", str(gateway.port),
                     "--shell", "bash", "--yes", claude)
    assert res.returncode == 0, res.stderr
    assert (laptop.home / ".local" / "state" / "ai-client").is_dir()
    for command in (["status"], ["test"]):  # day-two commands write nothing of their own
        laptop.cli(*command)
    res = laptop.cli("uninstall", "--purge")
    assert res.returncode == 0, res.stderr
    assert [d for d in dirs_under(laptop.home) if d.startswith((".config", ".local"))] == \
        [d for d in before if d.startswith((".config", ".local"))] == []


def test_server_purge_leaves_no_empty_directories(stack: Stack) -> None:
    stack.fe.env.pop("AI_SERVER_HOME")  # the platform's own directories, as users have them
    stack.config = stack.fe.home / ".config" / "ai-server" / "config.toml"
    stack.write_settings()  # the user wrote the settings first (README: edit, then install)
    res = stack.cli("install", "--yes")
    assert res.returncode == 0, res.stderr
    assert (stack.fe.home / ".local" / "state" / "ai-server").is_dir()
    res = stack.cli("uninstall", "--purge")
    assert res.returncode == 0, res.stderr
    assert not (stack.fe.home / ".config" / "ai-server").exists()
    assert not (stack.fe.home / ".local" / "state" / "ai-server").exists()



def hand_written(stack: Stack) -> str:
    """A settings file as a person writes it: comments, blank lines, their own order."""
    stack.write_settings()
    ours = stack.config.read_text()
    return ("# GPU box in the attic -- ask Sam before changing\n\n"
            + ours.replace("[gateway]\n", "[gateway]\n# only the tailnet\n", 1)
            + "\n# memory is tight: models leave quickly\n[ollama]\n"
            "keep_alive = \"30m\"   # do not raise above 1h\n"
            "context_length = 32768\n\n# end of file\n")


def test_install_edits_the_users_settings_in_place(stack: Stack) -> None:
    original = hand_written(stack)
    stack.config.write_text(original)
    dry = stack.cli("install", "--dry-run", "--keep-alive", "2h")
    assert dry.returncode == 0, dry.stderr
    settings_diff = dry.stdout.split(f"would write {stack.config} (settings)\n")[1]
    settings_diff = settings_diff.split("would write ")[0]
    changed = [line for line in settings_diff.splitlines()
               if line and line[0] in "+-" and not line.startswith(("+++", "---"))]
    assert changed == ['-keep_alive = "30m"   # do not raise above 1h',
                       '+keep_alive = "2h"   # do not raise above 1h']
    assert stack.config.read_text() == original  # a dry run

    res = stack.cli("install", "--yes", "--keep-alive", "2h")
    assert res.returncode == 0, res.stderr
    assert stack.config.read_text() == original.replace('"30m"   #', '"2h"   #')
    assert stack.fe.ollama_serve_env()["OLLAMA_KEEP_ALIVE"] == "2h"  # type: ignore[index]

    # a value the file did not have goes at the end of its table, the rest stays put
    res = stack.cli("install", "--yes", "--profile", "native")
    assert res.returncode == 0, res.stderr
    text = stack.config.read_text()
    assert text.replace('profiles = ["default", "native"]\n', "", 1) == \
        original.replace('"30m"   #', '"2h"   #')
    gateway_table = text.split("[gateway]\n", 1)[1].split("\n\n", 1)[0]
    assert gateway_table.splitlines()[-1] == 'profiles = ["default", "native"]'


def test_client_setup_edits_its_settings_in_place(laptop: Laptop,
                                                  gateway: GatewayProcess) -> None:
    args = ("setup", "--server", "127.0.0.1", "--port", str(gateway.port), "--shell", "bash",
            "--yes")
    assert laptop.cli(*args).returncode == 0
    cfg = laptop.home / "ai-client" / "config" / "config.toml"
    mine = "# the studio, via the gateway\n" + cfg.read_text().replace(
        "[client]\n", "[client]\n# aider only on this laptop? not yet\n")
    cfg.write_text(mine)
    res = laptop.cli(*args, "--scope", "aider")
    assert res.returncode == 0, res.stderr
    assert cfg.read_text() == mine.replace('scope = "global"', 'scope = "aider"')


def test_setup_dry_run_never_shows_the_token(laptop: Laptop, sim: object,
                                             gateway_factory: object, tmp_path: Path) -> None:
    from tests.integration.conftest import GatewayFactory
    from tests.support.ollama_sim import OllamaSimulator

    assert isinstance(sim, OllamaSimulator)
    tokens = tmp_path / "tokens.map"
    tokens.write_text(f"{TOKEN} laptop\nsecond-token-9876543210 laptop2\n")
    tokens.chmod(0o600)
    factory: GatewayFactory = gateway_factory  # type: ignore[assignment]
    gw = factory(sim.port, gateway={"tokens": True, "tokens_file": str(tokens)})
    base = ("setup", "--server", "127.0.0.1", "--port", str(gw.port), "--shell", "bash")
    for extra in ((), ("--json",)):
        dry = laptop.cli(*base, "--token", TOKEN, "--dry-run", *extra)
        assert dry.returncode == 0, dry.stderr
        assert TOKEN not in dry.stdout + dry.stderr
        assert "<token hidden>" in dry.stdout  # settings, env files and wrapper all hold it
    assert laptop.cli(*base, "--token", TOKEN, "--yes").returncode == 0
    # changing the token: neither the old nor the new one is shown
    dry = laptop.cli(*base, "--token", "second-token-9876543210", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    out = dry.stdout + dry.stderr
    assert TOKEN not in out and "second-token-9876543210" not in out
    assert "-token = \"<token hidden>\"" in out and "+token = \"<token hidden>\"" in out


@pytest.mark.parametrize("tool", ["ai-server", "ai-client"])
def test_the_zipapps_carry_the_toml_editor(zipapps: dict[str, Path], tool: str,  # noqa: F811
                                           tmp_path: Path) -> None:
    code = ("from aicommon.tomledit import edit\n"
            "print(edit('[a]\\nb = 1  # mine\\n', {'a': {'b': 1}}, {'a': {'b': 2}}), end='')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AI_", "SHIV_"))}
    env.update(HOME=str(tmp_path), SHIV_ENTRY_POINT="", SHIV_INTERPRETER="1")
    res = subprocess.run([str(zipapps[tool]), "-c", code], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=120, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout == "[a]\nb = 2  # mine\n"
