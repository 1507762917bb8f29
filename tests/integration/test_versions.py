"""Version management end to end: check-compatibility (rules, --probe, the verified store),
pin / unpin and downgrade-claude, as processes in a locked-down PATH of recording fakes
(claude with a real versions directory, npm, brew, uv, pipx, pip) against the Ollama
simulator (directly, and through the real HAProxy gateway)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import GatewayFactory
from tests.support.fakeenv import FAKES_DIR, FakeEnv, make_fake_env
from tests.support.ollama_sim import DEFAULT_MODELS, OllamaSimulator, SimModel

ENTRY = ("from aiclient.cli import cli; from aiclient.cli_versions import check_compatibility, "
         "pin, unpin, downgrade_claude; [cli.add_command(c) for c in (check_compatibility, pin, "
         "unpin, downgrade_claude)]; from aicommon.clikit import run_main; "
         "run_main(cli, 'ai-client')")
QWEN35 = SimModel("qwen3.5:35b", arch="qwen35moe", context_length=262144,
                  capabilities=("completion", "tools", "thinking"), parameter_size="35B")
MODELS = (*DEFAULT_MODELS, QWEN35)
AIDER_SCRIPT = ('#!/bin/sh\n[ "$1" = "--version" ] && echo "aider {v}"\nexit 0\n')


class Box:
    """A laptop: fake PATH, HOME, and the ai-client CLI as a process."""

    def __init__(self, fe: FakeEnv) -> None:
        self.fe = fe
        self.home = fe.home
        self.local_bin = self.home / ".local" / "bin"
        self.versions = self.home / ".local" / "share" / "claude" / "versions"
        self.lock = self.home / "ai-client" / "state" / "versions.lock"
        self.settings = self.home / ".claude" / "settings.json"
        self.store = self.home / "ai-client" / "state" / "compat-verified.json"

    def path_first(self, folder: Path) -> None:
        self.fe.env["PATH"] = f"{folder}:{self.fe.env['PATH']}"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.fe.run([sys.executable, "-c", ENTRY, *args], timeout=120)

    def json(self, *args: str, code: int | None = 0) -> dict[str, Any]:
        res = self.cli(*args, "--json")
        if code is not None:
            assert res.returncode == code, (res.stdout, res.stderr)
        env: dict[str, Any] = json.loads(res.stdout)
        return env

    def version(self, program: str = "claude") -> str:
        return self.fe.run([program, "--version"]).stdout.strip()

    def calls(self, tool: str) -> list[list[str]]:
        return [c for c in self.fe.calls(tool) if c != ["--version"]]

    def lock_doc(self) -> dict[str, Any]:
        return tomllib.loads(self.lock.read_text())

    def configure(self, port: int, model: str | None = "qwen3-coder:30b") -> None:
        cfg = self.home / "ai-client" / "config" / "config.toml"
        cfg.parent.mkdir(parents=True, exist_ok=True)
        text = f'[server]\nhost = "127.0.0.1"\nport = {port}\n'
        cfg.write_text(text + (f'[client]\nmodel = "{model}"\n' if model else ""))

    # -- Claude Code layouts ----------------------------------------------------------------

    def claude_native(self, current: str = "2.1.240",
                      on_disk: tuple[str, ...] = ("2.1.240", "2.1.153")) -> Path:
        """~/.local/bin/claude → ~/.local/share/claude/versions/<current>; each version a copy
        of the fake (which answers with its own file name)."""
        self.versions.mkdir(parents=True, exist_ok=True)
        for v in on_disk:
            shutil.copyfile(FAKES_DIR / "claude", self.versions / v)
            (self.versions / v).chmod(0o755)
        self.local_bin.mkdir(parents=True, exist_ok=True)
        launcher = self.local_bin / "claude"
        launcher.symlink_to(self.versions / current)
        self.path_first(self.local_bin)
        return launcher

    def claude_npm(self, version: str = "2.1.240") -> None:
        assert self.fe.run(["npm", "install", "-g",
                            f"@anthropic-ai/claude-code@{version}"]).returncode == 0
        self.path_first(self.fe.state_dir / "npm-global" / "bin")

    def claude_cask(self, version: str = "2.1.240", cask: str = "claude-code") -> None:
        room = self.fe.brew_prefix / "Caskroom" / cask / version
        room.mkdir(parents=True)
        shutil.copyfile(FAKES_DIR / "claude", room / "claude")
        (room / "claude").chmod(0o755)
        # The brew fake pins installed kegs only; register one so `brew pin` accepts the name.
        self.fe.brew_install(cask, version)
        (self.fe.brew_prefix / "bin" / "claude").symlink_to(room / "claude")
        self.path_first(self.fe.brew_prefix / "bin")

    def claude_plain(self, version: str = "2.1.240") -> None:
        """The fake itself on PATH (an unknown install method), answering `version`."""
        (self.fe.bin_dir / "claude").symlink_to(FAKES_DIR / "claude")
        self.fe.env["FAKE_CLAUDE_VERSION"] = version

    # -- Aider layouts ----------------------------------------------------------------------

    def aider_with(self, method: str, version: str = "0.86.1") -> None:
        if method in ("uv", "pipx"):
            argv = (["uv", "tool", "install"] if method == "uv"
                    else ["pipx", "install"]) + [f"aider-chat=={version}"]
            assert self.fe.run(argv).returncode == 0
            self.path_first(self.local_bin)
        elif method == "brew":
            keg = self.fe.brew_install("aider", version)
            (keg / "bin" / "aider").write_text(AIDER_SCRIPT.format(v=version))
            (keg / "bin" / "aider").chmod(0o755)
            (self.fe.brew_prefix / "bin" / "aider").symlink_to(keg / "bin" / "aider")
            self.path_first(self.fe.brew_prefix / "bin")
        elif method == "pip":
            venv = self.fe.root / "venv" / "bin"
            venv.mkdir(parents=True)
            (venv / "pip").symlink_to(FAKES_DIR / "pip")
            assert self.fe.run([venv / "pip", "install",
                                f"aider-chat=={version}"]).returncode == 0
            self.path_first(venv)
        else:
            raise ValueError(method)
        assert self.version("aider") == f"aider {version}"


@pytest.fixture()
def box(tmp_path: Path) -> Iterator[Box]:
    with make_fake_env(tmp_path, extra_fakes=("npm", "uv", "pipx")) as fe:
        yield Box(fe)


@pytest.fixture()
def qsim() -> Iterator[OllamaSimulator]:
    with OllamaSimulator(models=MODELS) as s:
        yield s


def snapshot(root: Path) -> dict[str, str]:
    """Every file and link under root (contents / link targets)."""
    found = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            found[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            found[rel] = p.read_text(errors="replace")
    return found


# -- check-compatibility ---------------------------------------------------------------------


def test_check_through_the_gateway_qwen35_broken_then_fixed_then_untested(
        box: Box, qsim: OllamaSimulator, gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(qsim.port)
    box.claude_plain("2.1.154")
    box.configure(gw.port, "qwen3.5:35b")
    qsim.version = "0.32.13"
    env = box.json("check-compatibility", code=4)
    data = env["data"]
    assert env["ok"] is False and data["verdict"] == "broken"
    assert (data["claude_version"], data["ollama_version"]) == ("2.1.154", "0.32.13")
    assert data["model_families"] == ["qwen35moe"]
    assert [f["rule"] for f in data["findings"]] == ["mid-conversation-system-message"]
    assert [(f["action"], f["version"]) for f in data["fixes"]] == [
        ("upgrade_ollama", "0.32.14"), ("pin_claude", "2.1.153")]
    text = box.cli("check-compatibility")
    assert text.returncode == 4
    assert "BROKEN" in text.stdout and "upgrade Ollama on the server to 0.32.14" in text.stdout
    assert "ai-client pin --claude 2.1.153" in text.stdout

    qsim.version = "0.32.14"
    data = box.json("check-compatibility", code=0)["data"]
    assert data["verdict"] == "compatible" and data["findings"] == [] and data["fixes"] == []

    qsim.version = "0.34.0-rc1"
    data = box.json("check-compatibility", "--no-probe", code=3)["data"]
    assert data["verdict"] == "untested" and data["ollama_version"] == "0.34.0rc1"
    assert any("newer than the rules know" in n for n in data["notes"])


def test_check_model_option_and_degraded(box: Box, qsim: OllamaSimulator) -> None:
    box.claude_plain("2.1.100")
    box.configure(qsim.port, None)
    data = box.json("check-compatibility", code=4)["data"]
    assert data["verdict"] == "degraded" and data["model"] is None
    assert any("model-specific rules were not evaluated" in n for n in data["notes"])
    assert data["fixes"][0]["action"] == "upgrade_claude"
    data = box.json("check-compatibility", "--model", "gemma3:1b", code=4)["data"]
    assert data["verdict"] == "broken"
    assert "model-without-tools" in [f["rule"] for f in data["findings"]]


def test_check_cannot_check_exits_1(box: Box, qsim: OllamaSimulator) -> None:
    res = box.cli("check-compatibility")  # not set up
    assert res.returncode == 1 and "not set up" in res.stderr
    box.configure(qsim.port)
    env = box.json("check-compatibility", code=1)  # no claude on PATH
    assert env["ok"] is False and "Claude Code is not installed" in env["errors"][0]["message"]
    box.claude_plain()
    box.configure(1)  # nothing listens there
    res = box.cli("check-compatibility")
    assert res.returncode == 1 and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    box.configure(qsim.port, "no-such-model:1b")
    res = box.cli("check-compatibility")
    assert res.returncode == 1 and "not on the server" in res.stderr


def test_probe_mid_conversation_500_is_broken_and_recorded_then_verified(
        box: Box, qsim: OllamaSimulator) -> None:
    box.claude_plain("2.1.240")
    box.configure(qsim.port, "qwen3.5:35b")
    qsim.system_mid_conversation_500 = True
    data = box.json("check-compatibility", "--probe", code=4)["data"]
    assert data["verdict"] == "broken"
    checks = {c["name"]: c for c in data["probe"]["checks"]}
    assert checks["stream_tools"]["outcome"] == "pass"
    assert checks["thinking"]["outcome"] == "pass"
    mid = checks["mid_conversation_system"]
    assert mid["outcome"] == "fail"
    assert mid["detail"] == "HTTP 500: system message must be at the beginning"
    assert [(f["action"], f["version"]) for f in data["fixes"]] == [("pin_claude", "2.1.153")]
    # what was sent: Claude Code's shapes
    sent = [r for r in qsim.requests if r.path == "/v1/messages"]
    assert {r.target for r in sent} == {"/v1/messages?beta=true"}
    bodies = [r.json() for r in sent]
    assert all(b["stream"] is True and b["tools"] for b in bodies)
    assert any(m["role"] == "system" for b in bodies for m in b["messages"])
    assert any("thinking" in b for b in bodies)
    assert sent[0].header("anthropic-version") == "2023-06-01"
    # recorded: a later check without --probe reports the failure
    store = json.loads(box.store.read_text())["pairs"]
    assert [(p["claude"], p["ollama"], p["model"], p["outcome"]) for p in store] == [
        ("2.1.240", "0.32.15", "qwen3.5:35b", "failed")]
    later = box.cli("check-compatibility")
    assert later.returncode == 4 and "a probe failed on" in later.stdout

    qsim.system_mid_conversation_500 = False
    data = box.json("check-compatibility", "--probe", code=0)["data"]
    assert data["verdict"] == "compatible" and data["probe"]["outcome"] == "verified"
    later = box.cli("check-compatibility")
    assert later.returncode == 0 and "verified on 20" in later.stdout
    assert len(json.loads(box.store.read_text())["pairs"]) == 1


def test_probe_verifies_an_untested_pair_and_skips_thinking(box: Box,
                                                            qsim: OllamaSimulator) -> None:
    box.claude_plain("2.1.300")
    box.configure(qsim.port, "qwen3-coder:30b")
    assert box.json("check-compatibility", "--no-probe", code=3)["data"]["verdict"] == "untested"
    data = box.json("check-compatibility", "--probe", code=0)["data"]
    assert {c["name"]: c["outcome"] for c in data["probe"]["checks"]}["thinking"] == "skip"
    assert box.json("check-compatibility", code=0)["data"]["verified"]["outcome"] == "verified"


# -- issue 16 §2: untested pairs are probed; the way to probe is always said ------------------


def test_untested_pair_is_probed_and_recorded_unless_no_probe(box: Box,
                                                             qsim: OllamaSimulator) -> None:
    box.claude_plain("2.1.332")  # newer than the rules know
    box.configure(qsim.port, "qwen3-coder:30b")
    env = box.json("check-compatibility", "--no-probe", code=3)
    data = env["data"]
    assert data["verdict"] == "untested" and data["probe"] is None
    assert [f["action"] for f in data["fixes"]] == ["probe"]
    assert "ai-client check-compatibility --probe" in data["fixes"][0]["text"]
    text = box.cli("check-compatibility", "--no-probe")
    assert text.returncode == 3 and "check-compatibility --probe`" in text.stdout
    assert not [r for r in qsim.requests if r.path == "/v1/messages"]

    data = box.json("check-compatibility", code=0)["data"]  # no option: probed now
    assert data["verdict"] == "compatible" and data["probe"]["automatic"] is True
    assert data["probe"]["outcome"] == "verified"
    assert [r for r in qsim.requests if r.path == "/v1/messages"]
    store = json.loads(box.store.read_text())["pairs"]
    assert [(p["claude"], p["outcome"]) for p in store] == [("2.1.332", "verified")]
    sent = len(qsim.requests)
    assert box.json("check-compatibility", code=0)["data"]["probe"] is None  # recorded: once
    assert len(qsim.requests) < sent + 5


def test_an_automatic_probe_that_cannot_run_leaves_the_verdict_untested(
        box: Box, qsim: OllamaSimulator) -> None:
    box.claude_plain("2.1.332")
    box.configure(qsim.port, "qwen3-coder:30b")
    qsim.close_after_chunks = 1  # every stream dies: the probe gets no answer
    env = box.json("check-compatibility", code=3)
    data = env["data"]
    assert data["verdict"] == "untested" and data["probe"] is None
    assert any("the probe could not run" in n for n in data["notes"])
    assert data["fixes"][-1]["action"] == "probe"
    assert not box.store.exists() or json.loads(box.store.read_text())["pairs"] == []


def test_untested_without_a_model_says_how_to_probe(box: Box, qsim: OllamaSimulator) -> None:
    box.claude_plain("2.1.332")
    box.configure(qsim.port, None)
    data = box.json("check-compatibility", code=3)["data"]
    assert data["verdict"] == "untested"
    assert data["fixes"][-1]["action"] == "probe"
    assert "--probe --model M" in data["fixes"][-1]["text"]


def test_check_and_status_show_the_install_method_and_path(box: Box,
                                                          qsim: OllamaSimulator) -> None:
    box.claude_npm("2.1.240")
    box.configure(qsim.port)
    path = box.fe.state_dir / "npm-global" / "bin" / "claude"
    data = box.json("check-compatibility")["data"]
    assert data["claude_install"]["method"] == "npm" and data["claude_install"]["path"] == str(
        path)
    text = box.cli("check-compatibility").stdout
    assert f"Claude Code: npm install, {path}" in text
    status = box.json("status", code=None)["data"]
    assert status["installs"]["claude"] | {"real": ""} == {
        "method": "npm", "path": str(path), "version": "2.1.240", "real": ""}
    assert f"claude 2.1.240 (npm: {path})" in box.cli("status").stdout


# -- downgrade-claude: native launcher --------------------------------------------------------


def test_native_downgrade_repoints_the_launcher(box: Box) -> None:
    launcher = box.claude_native()
    data = box.json("downgrade-claude", "2.1.153", "--yes")["data"]
    assert data["ok"] and data["action"] == "repoint" and data["now"] == "2.1.153"
    assert os.readlink(launcher) == str(box.versions / "2.1.153")
    assert box.version() == "2.1.153 (Claude Code)"
    assert ["install", "2.1.153"] not in box.calls("claude")
    lock = box.lock_doc()
    assert lock["claude"] == {"version": "2.1.153", "method": "native", "path": str(launcher)}
    assert lock["downgrade"]["ok"] is True and lock["pinned"] is False
    again = box.json("downgrade-claude", "2.1.153", "--yes")["data"]
    assert again["changed"] is False


def test_native_downgrade_installs_a_missing_version(box: Box) -> None:
    launcher = box.claude_native(on_disk=("2.1.240",))
    data = box.json("downgrade-claude", "2.1.150", "--yes")["data"]
    assert data["action"] == "claude install" and data["ok"]
    assert ["install", "2.1.150"] in box.calls("claude")
    assert os.readlink(launcher) == str(box.versions / "2.1.150")
    assert box.version() == "2.1.150 (Claude Code)"


@pytest.mark.parametrize("failure", ["install-fails", "new-version-broken", "on-disk-broken"])
def test_native_downgrade_failure_restores_the_original(box: Box, failure: str) -> None:
    launcher = box.claude_native()
    original = os.readlink(launcher)
    target = "2.1.153" if failure == "on-disk-broken" else "2.1.150"
    if failure == "install-fails":
        box.fe.fail("claude install 2.1.150")
    else:
        box.fe.env["FAKE_CLAUDE_BROKEN"] = target
    res = box.cli("downgrade-claude", target, "--yes")
    assert res.returncode == 1, res.stderr
    assert "restored 2.1.240" in res.stderr and "Traceback" not in res.stderr
    assert os.readlink(launcher) == original
    assert box.version() == "2.1.240 (Claude Code)"
    lock = box.lock_doc()
    assert lock["downgrade"]["ok"] is False and lock["downgrade"]["restored"] is True
    assert lock["claude"]["version"] == "2.1.240"


def test_downgrade_asks_first(box: Box) -> None:
    launcher = box.claude_native()
    res = box.cli("downgrade-claude", "2.1.153")  # no terminal, no --yes
    assert res.returncode == 1 and "--yes" in res.stderr
    assert os.readlink(launcher) == str(box.versions / "2.1.240") and not box.lock.exists()


def test_downgrade_target_from_rules_then_from_the_lock(box: Box,
                                                        qsim: OllamaSimulator) -> None:
    launcher = box.claude_native(on_disk=("2.1.240", "2.1.200", "2.1.153", "2.1.100"))
    box.configure(qsim.port, "qwen3.5:35b")
    qsim.version = "0.32.13"
    data = box.json("downgrade-claude", "--yes")["data"]
    assert (data["source"], data["to"]) == ("rules", "2.1.153")
    assert os.readlink(launcher) == str(box.versions / "2.1.153")
    # Claude Code's own updater moves it forward; the lock brings it back.
    launcher.unlink()
    launcher.symlink_to(box.versions / "2.1.240")
    data = box.json("downgrade-claude", "--yes")["data"]
    assert (data["source"], data["to"]) == ("lock", "2.1.153")


def test_downgrade_target_unknown_when_ollama_is_too_old(box: Box,
                                                         qsim: OllamaSimulator) -> None:
    box.claude_native()
    box.configure(qsim.port)
    qsim.version = "0.13.0"
    res = box.cli("downgrade-claude", "--yes")
    assert res.returncode == 1 and "works with Ollama 0.13.0" in res.stderr


# -- downgrade-claude: npm, Homebrew cask, unknown --------------------------------------------


def npm_install(box: Box, version: str, prefix: Path | None = None) -> list[str]:
    """The argv downgrade-claude gives npm: the running claude's prefix, scripts on."""
    return ["install", "--global", "--prefix", str(prefix or box.fe.state_dir / "npm-global"),
            "--ignore-scripts=false", "--no-audit", "--no-fund",
            f"@anthropic-ai/claude-code@{version}"]


def test_npm_downgrade_and_its_failures(box: Box) -> None:
    box.claude_npm("2.1.240")
    data = box.json("downgrade-claude", "2.1.153", "--yes")["data"]
    assert data["ok"] and data["method"] == "npm" and box.version() == "2.1.153 (Claude Code)"
    assert npm_install(box, "2.1.153") in box.calls("npm")

    box.fe.fail(" ".join(["npm", *npm_install(box, "2.1.100")]))
    res = box.cli("downgrade-claude", "2.1.100", "--yes")
    assert res.returncode == 1 and "restored 2.1.153" in res.stderr
    assert box.version() == "2.1.153 (Claude Code)"
    assert box.calls("npm")[-1] == npm_install(box, "2.1.100")
    # npm's cause, not its last line; and the hint does not claim more than is true
    assert ("npm error code ETARGET: No matching version found for "
            "@anthropic-ai/claude-code@2.1.100") in res.stderr
    assert "nothing was changed" in res.stderr

    box.fe.clear_failures()
    box.fe.env["FAKE_CLAUDE_BROKEN"] = "2.1.99"
    res = box.cli("downgrade-claude", "2.1.99", "--yes")
    assert res.returncode == 1 and "restored 2.1.153" in res.stderr
    assert box.version() == "2.1.153 (Claude Code)"
    assert box.calls("npm")[-1] == npm_install(box, "2.1.153")
    # both installs really happened: the message says so instead of "nothing … changed"
    assert "nothing" not in res.stderr and "what was done: npm install" in res.stderr
    assert box.lock_doc()["downgrade"] | {"date": ""} == {
        "date": "", "from": "2.1.153", "to": "2.1.99", "method": "npm", "ok": False,
        "restored": True, "detail": box.lock_doc()["downgrade"]["detail"]}


def test_cask_downgrade_explains_and_installs_the_native_build(box: Box) -> None:
    box.claude_cask("2.1.240")
    plan = box.cli("downgrade-claude", "2.1.153")
    assert plan.returncode == 1 and "--yes" in plan.stderr
    data = box.json("downgrade-claude", "2.1.153", "--yes")["data"]
    assert data["action"] == "native-instead" and "cannot install" in data["explanation"]
    assert data["ok"] and data["method"] == "native"
    launcher = box.local_bin / "claude"
    assert os.readlink(launcher) == str(box.versions / "2.1.153")
    assert box.fe.run([launcher, "--version"]).stdout == "2.1.153 (Claude Code)\n"
    assert any("still" in n for n in data["notes"])  # ~/.local/bin is not first on PATH
    assert box.lock_doc()["claude"]["method"] == "native"


def test_cask_native_install_failure_leaves_everything_as_it_was(box: Box) -> None:
    box.claude_cask("2.1.240")
    box.fe.fail("claude install 2.1.153")
    res = box.cli("downgrade-claude", "2.1.153", "--yes")
    assert res.returncode == 1 and "restored 2.1.240" in res.stderr
    assert not (box.local_bin / "claude").exists()
    assert box.version() == "2.1.240 (Claude Code)"


def test_unknown_install_method_is_refused(box: Box) -> None:
    box.claude_plain()
    res = box.cli("downgrade-claude", "2.1.153", "--yes")
    assert res.returncode == 1 and "cannot tell how Claude Code" in res.stderr
    assert box.cli("pin", "--claude").returncode == 1
    assert not box.lock.exists()


# -- pin / unpin: Claude Code ------------------------------------------------------------------


SETTINGS = ('{\n    "model": "opus",\n    "env": {"FOO": "bar"},\n    "permissions": '
            '{"allow": ["Bash(ls:*)"]},\n    "cleanupPeriodDays": 30\n}')


@pytest.mark.parametrize("prior_lock", [False, True], ids=["no-lock-before", "lock-before"])
def test_pin_then_unpin_restores_settings_and_lock_exactly(box: Box, prior_lock: bool) -> None:
    box.claude_native()
    box.settings.parent.mkdir(parents=True)
    box.settings.write_text(SETTINGS)
    box.settings.chmod(0o600)
    if prior_lock:
        for version in ("2.1.153", "2.1.240"):
            assert box.cli("downgrade-claude", version, "--yes").returncode == 0
        box.lock.write_text(box.lock.read_text() + "# my note\n")
    before = snapshot(box.home)

    data = box.json("pin", "--claude")["data"]
    assert data["pinned"]["claude"] == {"version": "2.1.240", "method": "native",
                                        "path": str(box.local_bin / "claude"),
                                        "previous": "2.1.240"}
    doc = json.loads(box.settings.read_text())
    assert doc["env"] == {"FOO": "bar", "DISABLE_AUTOUPDATER": "1"}
    assert {k: v for k, v in doc.items() if k != "env"} == {
        "model": "opus", "permissions": {"allow": ["Bash(ls:*)"]}, "cleanupPeriodDays": 30}
    assert oct(box.settings.stat().st_mode & 0o777) == "0o600"
    lock = box.lock_doc()
    assert lock["pinned"] is True and lock["claude"]["version"] == "2.1.240"
    assert lock["pin"]["settings"]["previous_present"] is False
    assert box.json("pin", "--claude")["data"]["notes"]  # pinning again: no change

    data = box.json("unpin")["data"]
    assert data["unpinned"] is True
    assert snapshot(box.home) == before
    assert box.json("unpin")["data"]["unpinned"] is False


def test_pin_refuses_an_unparseable_settings_file_and_changes_nothing(box: Box) -> None:
    box.claude_native()
    box.settings.parent.mkdir(parents=True)
    box.settings.write_text('{"model": "opus",}')
    before = snapshot(box.home)
    env = box.json("pin", "--claude", "2.1.153", code=4)
    assert "not valid JSON" in env["errors"][0]["message"]
    assert snapshot(box.home) == before
    assert box.version() == "2.1.240 (Claude Code)"


def test_pin_with_a_version_switches_and_unpin_switches_back(box: Box) -> None:
    launcher = box.claude_native()
    data = box.json("pin", "--claude", "2.1.153")["data"]
    assert data["pinned"]["claude"]["version"] == "2.1.153"
    assert box.version() == "2.1.153 (Claude Code)"
    assert json.loads(box.settings.read_text()) == {"env": {"DISABLE_AUTOUPDATER": "1"}}
    box.json("unpin")
    assert os.readlink(launcher) == str(box.versions / "2.1.240")
    assert not box.settings.exists() and not box.settings.parent.exists()
    assert not box.lock.exists()


@pytest.mark.parametrize("where", ["npmrc", "env"])
def test_npm_downgrade_with_ignore_scripts_works_and_never_crashes(box: Box, where: str) -> None:
    """npm's ignore-scripts=true leaves the placeholder bin: it must not happen to a downgrade,
    and a claude that cannot be executed is an error line, never a traceback (issue 16 §1)."""
    box.claude_npm("2.1.240")
    if where == "npmrc":
        (box.home / ".npmrc").write_text("ignore-scripts=true\n")
    else:
        box.fe.env["npm_config_ignore_scripts"] = "true"
    data = box.json("downgrade-claude", "2.1.153", "--yes")["data"]
    assert data["ok"] and box.version() == "2.1.153 (Claude Code)"
    # A placeholder installed behind our back (plain `npm i -g` with ignore-scripts):
    assert box.fe.run(["npm", "install", "-g", "@anthropic-ai/claude-code@2.1.150"]).returncode == 0
    for args in (("status",), ("pin", "--claude"), ("downgrade-claude", "2.1.153", "--yes"),
                 ("check-compatibility",)):
        res = box.cli(*args)
        assert "Traceback" not in res.stderr, (args, res.stderr)
    res = box.cli("downgrade-claude", "2.1.153", "--yes")
    assert res.returncode == 0 and box.version() == "2.1.153 (Claude Code)", res.stderr


def test_npm_exec_failure_after_install_restores_with_one_line(box: Box) -> None:
    box.claude_npm("2.1.240")
    cli_js = box.fe.state_dir / "npm-global" / "lib" / "node_modules" / "@anthropic-ai" / \
        "claude-code" / "cli.js"
    # every install of 2.1.100 yields a file that cannot be executed (a broken postinstall)
    box.fe.env["FAKE_CLAUDE_BROKEN"] = ""
    (box.home / ".npmrc").write_text("ignore-scripts=true\n")
    fake_npm = box.fe.bin_dir / "npm"
    wrapper = box.fe.root / "npm-wrap"
    wrapper.write_text(f"#!/bin/sh\n{FAKES_DIR / 'npm'} \"$@\"; rc=$?\n"
                       f'case "$*" in *@2.1.100*) printf \'echo x\\n\' > {cli_js};; esac\n'
                       "exit $rc\n")
    wrapper.chmod(0o755)
    fake_npm.unlink()
    fake_npm.symlink_to(wrapper)
    res = box.cli("downgrade-claude", "2.1.100", "--yes")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "Exec format error" in res.stderr and "restored 2.1.240" in res.stderr
    assert res.stderr.count("\n") <= 2  # error + hint
    assert box.version() == "2.1.240 (Claude Code)"
    assert box.lock_doc()["downgrade"]["restored"] is True


def test_npm_downgrade_goes_into_the_prefix_of_the_running_claude(box: Box) -> None:
    box.claude_npm("2.1.240")
    elsewhere = box.fe.root / "other-prefix"
    box.fe.env["NPM_CONFIG_PREFIX"] = str(elsewhere)
    data = box.json("downgrade-claude", "2.1.153", "--yes")["data"]
    assert data["ok"] and box.version() == "2.1.153 (Claude Code)"
    assert not elsewhere.exists()  # no second copy
    assert str(box.fe.state_dir / "npm-global") in data["summary"]


def test_pin_npm_with_a_version_and_failure(box: Box) -> None:
    box.claude_npm("2.1.240")
    box.fe.fail(" ".join(["npm", *npm_install(box, "2.1.100")]))
    before = snapshot(box.home)
    assert box.cli("pin", "--claude", "2.1.100").returncode == 1
    assert snapshot(box.home) == before and box.version() == "2.1.240 (Claude Code)"
    box.fe.clear_failures()
    assert box.json("pin", "--claude", "2.1.153")["data"]["pinned"]["claude"]["method"] == "npm"
    assert box.version() == "2.1.153 (Claude Code)"
    box.json("unpin")
    assert box.version() == "2.1.240 (Claude Code)"


def test_pin_cask_uses_brew_pin_and_unpin_reverses_it(box: Box) -> None:
    box.claude_cask("2.1.240")
    data = box.json("pin", "--claude")["data"]
    assert data["pinned"]["claude"]["method"] == "brew-cask"
    assert ["pin", "--cask", "claude-code"] in box.calls("brew")
    assert box.fe.run(["brew", "list", "--pinned"]).stdout.split() == ["claude-code"]
    assert json.loads(box.settings.read_text())["env"]["DISABLE_AUTOUPDATER"] == "1"
    box.json("unpin")
    assert ["unpin", "--cask", "claude-code"] in box.calls("brew")
    assert box.fe.run(["brew", "list", "--pinned"]).stdout == ""
    env = box.json("pin", "--claude", "2.1.153", code=1)  # a cask cannot install that
    assert "cask" in env["errors"][0]["message"] and not box.lock.exists()


def test_pin_cask_on_a_homebrew_without_cask_pins_is_a_note(box: Box) -> None:
    box.claude_cask("2.1.240")
    box.fe.fail("brew pin --cask")
    data = box.json("pin", "--claude")["data"]
    assert any("cannot pin the claude-code cask" in n for n in data["notes"])
    assert box.lock_doc()["pin"].get("claude_brew_pinned") is None


# -- pin / unpin: Aider ------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["uv", "pipx", "pip"])
def test_pin_aider_with_a_version_and_unpin(box: Box, method: str) -> None:
    box.aider_with(method, "0.86.1")
    data = box.json("pin", "--aider", "0.85.0")["data"]
    assert data["pinned"]["aider"] == {"version": "0.85.0", "method": method,
                                       "path": data["pinned"]["aider"]["path"],
                                       "previous": "0.86.1"}
    assert box.version("aider") == "aider 0.85.0"
    assert not box.settings.exists()  # Claude Code's settings are not Aider's business
    box.json("unpin")
    assert box.version("aider") == "aider 0.86.1"
    assert not box.lock.exists()
    if method == "uv":
        assert box.calls("uv")[-3:] == [["tool", "install", "aider-chat==0.85.0"],
                                        ["tool", "install", "aider-chat==0.86.1"],
                                        ["tool", "install", "aider-chat"]]
        assert box.version("aider") == "aider 0.86.1"
    if method == "pipx":
        assert box.calls("pipx")[-1] == ["install", "--force", "aider-chat==0.86.1"]


@pytest.mark.parametrize("method", ["uv", "pipx", "pip"])
@pytest.mark.parametrize("failure", ["install-fails", "new-version-broken"])
def test_pin_aider_failure_restores_the_original(box: Box, method: str, failure: str) -> None:
    box.aider_with(method, "0.86.1")
    if failure == "install-fails":
        prefix = {"uv": "uv tool install aider-chat==0.85.0",
                  "pipx": "pipx install --force aider-chat==0.85.0",
                  "pip": "pip install aider-chat==0.85.0"}[method]
        box.fe.fail(prefix)
    else:
        box.fe.env["FAKE_AIDER_BROKEN"] = "0.85.0"
    res = box.cli("pin", "--aider", "0.85.0")
    assert res.returncode == 1 and "restored 0.86.1" in res.stderr, res.stderr
    assert box.version("aider") == "aider 0.86.1"
    assert not box.lock.exists()


def test_pin_aider_current_version_records_the_requirement(box: Box) -> None:
    box.aider_with("uv", "0.86.1")
    box.json("pin", "--aider")
    assert box.calls("uv")[-1] == ["tool", "install", "aider-chat==0.86.1"]
    receipt = next(box.home.rglob("uv-receipt.toml")).read_text()
    assert 'specifier = "==0.86.1"' in receipt
    box.json("unpin")
    receipt = next(box.home.rglob("uv-receipt.toml")).read_text()
    assert "specifier" not in receipt and box.version("aider") == "aider 0.86.1"


def test_pin_aider_homebrew(box: Box) -> None:
    box.aider_with("brew", "0.86.1")
    data = box.json("pin", "--aider")["data"]
    assert data["pinned"]["aider"]["method"] == "brew"
    assert ["pin", "aider"] in box.calls("brew")
    box.json("unpin")
    assert ["unpin", "aider"] in box.calls("brew")
    env = box.json("pin", "--aider", "0.80.0", code=1)
    assert "cannot install Aider 0.80.0" in env["errors"][0]["message"]


def test_pin_everything_and_roll_back_as_a_whole(box: Box, qsim: OllamaSimulator) -> None:
    launcher = box.claude_native()
    box.aider_with("uv", "0.86.1")
    box.configure(qsim.port)
    data = box.json("pin")["data"]  # no option: every installed tool at its version
    assert set(data["pinned"]) == {"claude", "aider"}
    assert data["ollama_version"] == "0.32.15" and data["verified"] is False
    box.json("unpin")
    assert not box.lock.exists() and not box.settings.exists()

    before = snapshot(box.home)
    box.fe.fail("uv tool install aider-chat==9.9.9")
    res = box.cli("pin", "--claude", "2.1.153", "--aider", "9.9.9")
    assert res.returncode == 1 and "nothing changed" in res.stderr, res.stderr
    assert os.readlink(launcher) == str(box.versions / "2.1.240")
    assert {k: v for k, v in snapshot(box.home).items()
            if "versions/" not in k} == {k: v for k, v in before.items() if "versions/" not in k}


def test_pin_records_a_verified_pair(box: Box, qsim: OllamaSimulator) -> None:
    box.claude_native()
    box.configure(qsim.port)
    assert box.cli("check-compatibility", "--probe").returncode == 0
    data = box.json("pin", "--claude")["data"]
    assert data["verified"] is True
    lock = box.lock_doc()
    assert (lock["ollama_version"], lock["model"], lock["verified"]) == (
        "0.32.15", "qwen3-coder:30b", True)


def test_pin_again_then_downgrade_then_unpin_goes_back_to_before_the_first_pin(
        box: Box) -> None:
    launcher = box.claude_native()
    box.settings.parent.mkdir(parents=True)
    box.settings.write_text(SETTINGS)
    before = snapshot(box.home)
    box.json("pin", "--claude", "2.1.153")
    box.json("pin", "--claude", "2.1.150")  # not on disk: `claude install 2.1.150`
    assert box.version() == "2.1.150 (Claude Code)"
    box.json("downgrade-claude", "2.1.153", "--yes")
    lock = box.lock_doc()
    assert lock["pinned"] is True and lock["claude"]["version"] == "2.1.153"
    assert lock["pin"]["claude_previous_version"] == "2.1.240"
    box.json("unpin")
    assert os.readlink(launcher) == str(box.versions / "2.1.240")
    after = snapshot(box.home)
    assert after.pop(".local/share/claude/versions/2.1.150").startswith("#!")  # kept on disk
    assert after == before


# -- issue 16 §1: every install method survives an exec failure, a wrong prefix and a cryptic
#    tool error --------------------------------------------------------------------------------

NOT_EXECUTABLE = 'echo "Error: claude native binary not installed." >&2\nexit 1\n'  # no `#!`


def break_after_install(box: Box, tool: str, marker: str, victim: Path) -> None:
    """Wrap the fake `tool`: after a call whose arguments mention `marker`, `victim` becomes
    a file exec() refuses (ENOEXEC), like npm's placeholder."""
    link = box.fe.root / "venv" / "bin" / "pip" if tool == "pip" else box.fe.bin_dir / tool
    wrapper = box.fe.root / f"{tool}-wrapper"
    real = link.with_name(f"{tool}-real")  # the pip fake writes beside the name it runs as
    real.symlink_to(FAKES_DIR / tool)
    wrapper.write_text(f'#!/bin/sh\n{real} "$@"; rc=$?\n'
                       f'case "$*" in *{marker}*) rm -f {victim}; '
                       f"printf '%s' '{NOT_EXECUTABLE}' > {victim}; "
                       f"chmod 755 {victim};; esac\nexit $rc\n")
    wrapper.chmod(0o755)
    link.unlink()
    link.symlink_to(wrapper)


def assert_one_line_restored(res: subprocess.CompletedProcess[str], version: str) -> None:
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert "Exec format error" in res.stderr and f"restored {version}" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_native_exec_failure_restores_the_launcher(box: Box) -> None:
    launcher = box.claude_native()
    (box.versions / "2.1.153").write_text(NOT_EXECUTABLE)
    assert_one_line_restored(box.cli("downgrade-claude", "2.1.153", "--yes"), "2.1.240")
    assert os.readlink(launcher) == str(box.versions / "2.1.240")
    assert box.version() == "2.1.240 (Claude Code)"


def test_cask_exec_failure_of_the_native_build_leaves_the_cask(box: Box) -> None:
    box.claude_cask("2.1.240")
    box.versions.mkdir(parents=True)
    (box.versions / "2.1.153").write_text(NOT_EXECUTABLE)  # what `claude install` left
    (box.versions / "2.1.153").chmod(0o755)
    assert_one_line_restored(box.cli("downgrade-claude", "2.1.153", "--yes"), "2.1.240")
    assert not (box.local_bin / "claude").exists() and box.version() == "2.1.240 (Claude Code)"


def test_a_claude_that_cannot_run_never_crashes_status_or_check(box: Box) -> None:
    launcher = box.claude_native()
    (box.versions / "2.1.240").write_text(NOT_EXECUTABLE)
    for args in (("status",), ("check-compatibility",), ("pin", "--claude")):
        res = box.cli(*args)
        assert "Traceback" not in res.stderr and "Errno" not in res.stderr, (args, res.stderr)
    data = box.json("downgrade-claude", "2.1.153", "--yes")["data"]  # and it can be repaired
    assert data["ok"] and os.readlink(launcher) == str(box.versions / "2.1.153")


@pytest.mark.parametrize("method", ["uv", "pipx", "pip"])
def test_aider_exec_failure_restores(box: Box, method: str) -> None:
    box.aider_with(method, "0.86.1")
    script = Path(box.fe.run(["sh", "-c", "command -v aider"]).stdout.strip()).resolve()
    break_after_install(box, method, "0.85.0", script)
    assert_one_line_restored(box.cli("pin", "--aider", "0.85.0"), "0.86.1")
    assert box.version("aider") == "aider 0.86.1" and not box.lock.exists()


def test_aider_homebrew_that_cannot_run_is_an_error_line(box: Box) -> None:
    box.aider_with("brew", "0.86.1")
    script = Path(box.fe.run(["sh", "-c", "command -v aider"]).stdout.strip()).resolve()
    script.write_text(NOT_EXECUTABLE)
    res = box.cli("pin", "--aider")
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "--version` does not answer" in res.stderr


def test_native_launcher_elsewhere_follows_claude_install(box: Box) -> None:
    """`claude install` repoints ~/.local/bin/claude; the launcher on PATH is another link."""
    box.claude_native(on_disk=("2.1.240",))
    own = box.home / "bin"
    own.mkdir()
    (own / "claude").symlink_to(box.versions / "2.1.240")
    box.path_first(own)
    res = box.cli("downgrade-claude", "2.1.150", "--yes")
    assert res.returncode == 0, res.stderr
    assert os.readlink(own / "claude") == str(box.versions / "2.1.150")
    assert box.version() == "2.1.150 (Claude Code)"
    assert f"repointed {own / 'claude'}" in res.stdout  # says exactly what changed


@pytest.mark.parametrize("method", ["uv", "pipx"])
def test_aider_install_goes_where_the_running_aider_lives(box: Box, method: str) -> None:
    box.aider_with(method, "0.86.1")
    elsewhere = box.fe.root / "elsewhere"
    for name in (("UV_TOOL_DIR", "UV_TOOL_BIN_DIR") if method == "uv"
                 else ("PIPX_HOME", "PIPX_BIN_DIR")):
        box.fe.env[name] = str(elsewhere / name)
    box.json("pin", "--aider", "0.85.0")
    assert box.version("aider") == "aider 0.85.0" and not elsewhere.exists()
    box.json("unpin")
    assert box.version("aider") == "aider 0.86.1" and not elsewhere.exists()


def test_aider_pip_install_uses_the_pip_of_the_running_aider(box: Box) -> None:
    box.aider_with("pip", "0.86.1")
    other = box.fe.root / "other-env" / "bin"
    other.mkdir(parents=True)
    (other / "pip").symlink_to(FAKES_DIR / "pip")
    box.fe.env["PATH"] = f"{box.fe.root / 'venv' / 'bin'}:{other}:{box.fe.env['PATH']}"
    box.json("pin", "--aider", "0.85.0")
    assert box.version("aider") == "aider 0.85.0" and not (other / "aider").exists()


@pytest.mark.parametrize(("method", "cause"), [
    ("uv", "× No solution found when resolving dependencies: ╰─▶ Because there is no version "
           "of aider-chat 0.85.0"),
    ("pipx", "ERROR: Could not find a version that satisfies the requirement "
             "aider-chat==0.85.0"),
    ("pip", "ERROR: Could not find a version that satisfies the requirement aider-chat==0.85.0"),
])
def test_aider_install_failure_names_the_cause(box: Box, method: str, cause: str) -> None:
    box.aider_with(method, "0.86.1")
    box.fe.fail({"uv": "uv tool install", "pipx": "pipx install",
                 "pip": "pip install"}[method])
    res = box.cli("pin", "--aider", "0.85.0")
    assert res.returncode == 1 and cause in res.stderr, res.stderr
    assert "Cannot determine package name" not in res.stderr


@pytest.mark.parametrize("method", ["native", "cask"])
def test_claude_install_failure_names_the_cause(box: Box, method: str) -> None:
    if method == "native":
        box.claude_native(on_disk=("2.1.240",))
    else:
        box.claude_cask("2.1.240")  # the cask cannot: `claude install` of the native build
    box.fe.fail("claude install 2.1.150")
    res = box.cli("downgrade-claude", "2.1.150", "--yes")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "Error: Failed to install Claude Code 2.1.150: version not found" in res.stderr
    assert "nothing was changed" in res.stderr
    assert box.version() == "2.1.240 (Claude Code)"


def test_homebrew_pin_failure_names_brews_error(box: Box) -> None:
    box.aider_with("brew", "0.86.1")
    box.fe.fail("brew pin aider")
    res = box.cli("pin", "--aider")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "Error: Failure while executing; `brew pin aider` exited with 1." in res.stderr
    assert not box.lock.exists()
