"""downgrade-claude with REAL Claude Code and REAL npm (issue 16 §1, REFERENCE §2.6).

Claude Code 2.1.332 is installed into a private npm prefix from a local registry on 127.0.0.1
(tests/support/npmregistry.py: tarballs rebuilt from the cached real packages, placeholder
included), inside a network namespace with only `lo`; `ai-client downgrade-claude` then moves
it to 2.1.153 and back, with the hardening settings that broke it before.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_versions import ENTRY, MODELS, Box
from tests.support.fakeenv import DEFAULT_REAL_TOOLS, make_fake_env
from tests.support.npmregistry import NpmRegistry, Packed, pack_claude
from tests.support.ollama_sim import OllamaSimulator
from tests.support.realclients import CLAUDE_CODE_VERSIONS, claude_prefix, loopback_only

CURRENT, OLDER = CLAUDE_CODE_VERSIONS[0], CLAUDE_CODE_VERSIONS[1]


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Packed:
    return pack_claude(tmp_path_factory.mktemp("npm-packages"), [CURRENT, OLDER])


class RealNpmBox(Box):
    prefix: Path
    registry: NpmRegistry

    def npm(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.fe.run(["npm", *args], timeout=600)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        import sys

        return self.fe.run([sys.executable, "-c", ENTRY, *args], timeout=900)


@pytest.fixture()
def rbox(tmp_path: Path, packed: Packed) -> Iterator[RealNpmBox]:
    with loopback_only(), NpmRegistry(packed) as registry, \
            make_fake_env(tmp_path, real_tools=(*DEFAULT_REAL_TOOLS, "npm", "node")) as fe:
        box = RealNpmBox(fe)
        box.registry = registry
        box.prefix = tmp_path / "claude-prefix"
        # the user's hardening: npm never runs install scripts
        (box.home / ".npmrc").write_text(f"registry={registry.url}/\nignore-scripts=true\n")
        done = box.npm("install", "--global", "--prefix", str(box.prefix),
                       "--ignore-scripts=false", f"@anthropic-ai/claude-code@{CURRENT}")
        assert done.returncode == 0, done.stderr
        box.path_first(box.prefix / "bin")
        assert box.version() == f"{CURRENT} (Claude Code)"
        yield box


def _binary(box: RealNpmBox) -> Path:
    return (box.prefix / "lib" / "node_modules" / "@anthropic-ai" / "claude-code" / "bin" /
            "claude.exe")


def test_real_npm_downgrade_with_ignore_scripts_and_another_default_prefix(
        rbox: RealNpmBox) -> None:
    elsewhere = rbox.fe.root / "npm-default-prefix"
    rbox.fe.env["NPM_CONFIG_PREFIX"] = str(elsewhere)  # npm's own idea of "global"
    res = rbox.cli("downgrade-claude", OLDER, "--yes")
    assert res.returncode == 0, res.stderr
    assert rbox.version() == f"{OLDER} (Claude Code)"
    assert _binary(rbox).stat().st_size > 10_000_000  # the native binary, not the placeholder
    assert not elsewhere.exists()  # no second 300 MB copy
    assert f"--prefix {rbox.prefix}" in res.stdout and "--ignore-scripts=false" in res.stdout
    # and back (the same properties on the way up)
    res = rbox.cli("downgrade-claude", CURRENT, "--yes")
    assert res.returncode == 0, res.stderr
    assert rbox.version() == f"{CURRENT} (Claude Code)" and not elsewhere.exists()


def test_real_npm_unknown_version_shows_the_cause_and_changes_nothing(rbox: RealNpmBox) -> None:
    before = os.stat(_binary(rbox)).st_ino
    res = rbox.cli("downgrade-claude", "2.1.9999", "--yes")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert ("npm error code ETARGET: No matching version found for "
            "@anthropic-ai/claude-code@2.1.9999.") in res.stderr
    assert "(log: " + str(rbox.home / ".npm" / "_logs") in res.stderr
    assert "A complete log" not in res.stderr
    assert f"restored {CURRENT}" in res.stderr and "nothing was changed" in res.stderr
    assert rbox.version() == f"{CURRENT} (Claude Code)"
    assert os.stat(_binary(rbox)).st_ino == before


def test_real_npm_registry_down_is_a_network_cause(rbox: RealNpmBox) -> None:
    (rbox.home / ".npmrc").write_text("registry=http://127.0.0.1:9/\nfetch-retries=0\n")
    res = rbox.cli("downgrade-claude", OLDER, "--yes")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "npm error code ECONNREFUSED" in res.stderr and "127.0.0.1:9" in res.stderr
    assert rbox.version() == f"{CURRENT} (Claude Code)"


def test_real_placeholder_claude_is_an_error_line_and_repairable(rbox: RealNpmBox) -> None:
    """What a plain `npm i -g` with ignore-scripts=true leaves behind: status/pin/check never
    crash on it, and downgrade-claude repairs it."""
    done = rbox.npm("install", "--global", "--prefix", str(rbox.prefix),
                    f"@anthropic-ai/claude-code@{OLDER}")
    assert done.returncode == 0, done.stderr
    assert _binary(rbox).stat().st_size == 500
    for args in (("status",), ("pin", "--claude"), ("check-compatibility",)):
        out = rbox.cli(*args)
        assert "Traceback" not in out.stderr and "Errno" not in out.stderr, (args, out.stderr)
    res = rbox.cli("downgrade-claude", CURRENT, "--yes")
    assert res.returncode == 0, res.stderr
    assert rbox.version() == f"{CURRENT} (Claude Code)"


# -- issue 16 §2 with the real Claude Code (cached npm prefixes, read only) --------------------


@pytest.fixture()
def real(tmp_path: Path) -> Iterator[tuple[Box, OllamaSimulator]]:
    with loopback_only(), OllamaSimulator(models=MODELS) as sim, \
            make_fake_env(tmp_path) as fe:
        yield Box(fe), sim


@pytest.mark.parametrize("version", CLAUDE_CODE_VERSIONS)
def test_real_claude_trailing_system_message_rule(real: tuple[Box, OllamaSimulator],
                                                  version: str) -> None:
    box, sim = real
    box.path_first(claude_prefix(version) / "bin")
    box.configure(sim.port, "qwen3.5:35b")
    sim.version = "0.32.13"
    env = box.json("check-compatibility", "--no-probe", code=None)
    data = env["data"]
    assert data["claude_version"] == version
    assert data["claude_install"]["method"] == "npm"
    assert data["claude_install"]["path"] == str(claude_prefix(version) / "bin" / "claude")
    rules = [f["rule"] for f in data["findings"]]
    if version == CURRENT:  # 2.1.332 sends the trailing system message
        assert data["verdict"] == "broken" and "mid-conversation-system-message" in rules
        assert ("pin_claude", "2.1.153") in [(f["action"], f["version"]) for f in data["fixes"]]
    else:
        assert "mid-conversation-system-message" not in rules


def test_real_claude_untested_pair_is_probed(real: tuple[Box, OllamaSimulator]) -> None:
    box, sim = real
    box.path_first(claude_prefix(CURRENT) / "bin")
    box.configure(sim.port, "qwen3.5:35b")
    sim.system_mid_conversation_500 = True  # Ollama 0.32.15 here: no rule applies; the probe
    env = box.json("check-compatibility", code=4)  # finds what the rules cannot know
    data = env["data"]
    assert data["probe"]["automatic"] is True and data["probe"]["outcome"] == "failed"
    assert data["verdict"] == "broken"
    text = box.cli("check-compatibility")  # recorded: no second probe, the failure is reported
    assert text.returncode == 4 and "a probe failed on" in text.stdout
    assert f"Claude Code: npm install, {claude_prefix(CURRENT) / 'bin' / 'claude'}" in text.stdout
