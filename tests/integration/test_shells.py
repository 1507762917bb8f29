"""Real zsh, bash, fish and sh start with ai-client's files and see exactly its values.

Every shell starts from a minimal environment (HOME = the test's temp home, PATH=/usr/bin:/bin,
TERM=dumb), so only the temp home's rc files (and the system's /etc ones) are read.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from aiclient.envfile import ClientEnv, env_file_paths, render_fish, render_posix
from aiclient.shellrc import (
    apply_change,
    plan_install,
    plan_remove,
    plan_uninstall,
    read_rc,
    targets,
)
from aicommon.fsutil import atomic_write

pytestmark = pytest.mark.integration

for _shell in ("zsh", "bash", "fish", "sh"):  # scripts/test installs them; never skip silently
    if shutil.which(_shell) is None:
        raise RuntimeError(f"{_shell} is not installed: run scripts/test (it installs it)")

# Values chosen to break naive quoting: spaces, both quotes, $, backticks, backslashes, globs.
NASTY_KEY = "t0k'en $HOME `id` \"q\" \\n \\\\ ;|&*?[a] ü \\"
NASTY_DIR = "Library/Application Support/ai-client's $x `y` [z]*/bin"
GLOBAL_VARS = ("OLLAMA_API_BASE", "OPENAI_API_BASE", "OPENAI_API_KEY", "AIDER_MODEL")
AIDER_VARS = ("AIDER_MODEL", "AIDER_OPENAI_API_BASE", "AIDER_OPENAI_API_KEY")

# Login bash reads the first of ~/.bash_profile, ~/.bash_login, ~/.profile. A temp home has
# none of them (Debian puts ~/.profile there from /etc/skel at user creation), so on Linux
# `targets` names ~/.profile and install creates it with the block; with Debian's skel files
# present it edits the existing ~/.profile (see test_debian_skel_files).
INVOCATIONS = [
    ("zsh", "-i", "-c"),
    ("bash", "-i", "-c"),
    ("bash", "-l", "-c"),
    ("bash", "-l", "-i", "-c"),
    ("fish", "-c"),  # fish runs conf.d even when not interactive
    ("sh", "-l", "-c"),  # dash as a login shell reads ~/.profile too
]


def client_env(home: Path, scope: str = "global") -> ClientEnv:
    return ClientEnv("http://studio.tail1234.ts.net:11434", NASTY_KEY, "qwen3-coder:30b", scope,
                     home / NASTY_DIR, native_api=True)


def expected_vars(env: ClientEnv) -> dict[str, str]:
    v1 = env.base_url + "/v1"
    if env.scope == "aider":
        return {"AIDER_MODEL": "openai/" + env.model, "AIDER_OPENAI_API_BASE": v1,
                "AIDER_OPENAI_API_KEY": env.api_key}
    return {"OLLAMA_API_BASE": env.base_url, "OPENAI_API_BASE": v1,
            "OPENAI_API_KEY": env.api_key, "AIDER_MODEL": "openai/" + env.model}


def install(home: Path, env: ClientEnv, *, platform: str = "linux",
            shells: tuple[str, ...] = ("zsh", "bash", "fish"), zdotdir: Path | None = None,
            ) -> None:
    """What `ai-client setup` does: env files (0600), the dummy wrapper, the rc blocks."""
    posix, fish = env_file_paths()
    atomic_write(posix, render_posix(env), mode=0o600)
    atomic_write(fish, render_fish(env), mode=0o600)
    env.bin_dir.mkdir(parents=True, exist_ok=True)
    wrapper = env.bin_dir / "claude-ollama"
    wrapper.write_text("#!/bin/sh\necho claude-ollama\n")
    wrapper.chmod(0o755)
    for change in plan_install(targets(list(shells), platform, home, zdotdir), posix, fish,
                               home):
        apply_change(change)


def run_shell(home: Path, argv: tuple[str, ...], *, extra: dict[str, str] | None = None,
              script: str = 'env -0 > "$OUT"; command -v claude-ollama > "$CMD"',
              ) -> tuple[dict[str, str], str]:
    """Run `argv script` in a minimal environment; return its exported env and `command -v`."""
    out, cmd = home.parent / "env.out", home.parent / "cmd.out"
    for f in (out, cmd):
        f.unlink(missing_ok=True)
    run_env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "TERM": "dumb",
               "OUT": str(out), "CMD": str(cmd), **(extra or {})}
    proc = subprocess.run([*argv, script], env=run_env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60, check=False)
    assert out.exists(), f"{argv} wrote nothing: rc={proc.returncode} stderr={proc.stderr}"
    pairs = [item.split("=", 1) for item in out.read_bytes().decode().split("\0") if item]
    found = cmd.read_text().rstrip("\n") if cmd.exists() else ""
    return {k: v for k, v in pairs}, found


def path_entries(environ: dict[str, str]) -> list[str]:
    return environ.get("PATH", "").split(":")


@pytest.mark.parametrize("scope", ["global", "aider"])
@pytest.mark.parametrize("argv", INVOCATIONS, ids=lambda a: " ".join(a))
def test_shell_sees_exact_values(isolated_home: Path, argv: tuple[str, ...],
                                 scope: str) -> None:
    env = client_env(isolated_home, scope)
    install(isolated_home, env)
    environ, found = run_shell(isolated_home, argv)
    wanted = expected_vars(env)
    assert {k: environ.get(k) for k in wanted} == wanted
    unwanted = set(GLOBAL_VARS + AIDER_VARS) - set(wanted)
    assert not unwanted & set(environ)
    assert found == str(env.bin_dir / "claude-ollama")
    assert path_entries(environ).count(str(env.bin_dir)) == 1


def test_nothing_leaks_without_install(isolated_home: Path) -> None:
    environ, found = run_shell(isolated_home, ("bash", "-i", "-c"))
    assert found == "" and "OPENAI_API_BASE" not in environ


def test_zdotdir_is_honoured(isolated_home: Path) -> None:
    zdot = isolated_home / "zdot"
    zdot.mkdir()
    env = client_env(isolated_home)
    install(isolated_home, env, shells=("zsh",), zdotdir=zdot)
    assert not (isolated_home / ".zshrc").exists()
    environ, found = run_shell(isolated_home, ("zsh", "-i", "-c"), extra={"ZDOTDIR": str(zdot)})
    assert environ.get("OPENAI_API_KEY") == NASTY_KEY and found


# Debian's /etc/skel, reduced to the parts that matter: ~/.profile sources ~/.bashrc, and
# ~/.bashrc returns at once when the shell is not interactive.
SKEL_PROFILE = """\
# if running bash
if [ -n "$BASH_VERSION" ]; then
    # include .bashrc if it exists
    if [ -f "$HOME/.bashrc" ]; then
\t. "$HOME/.bashrc"
    fi
fi
"""
SKEL_BASHRC = """\
# If not running interactively, don't do anything
case $- in
    *i*) ;;
      *) return;;
esac
HISTCONTROL=ignoreboth
"""


def test_debian_skel_files(isolated_home: Path) -> None:
    h = isolated_home
    (h / ".profile").write_text(SKEL_PROFILE)
    (h / ".bashrc").write_text(SKEL_BASHRC)
    env = client_env(h)
    install(h, env, shells=("bash",))
    for argv in (("bash", "-l", "-c"), ("bash", "-i", "-c"), ("bash", "-l", "-i", "-c")):
        environ, found = run_shell(h, argv)
        assert environ.get("OPENAI_API_KEY") == NASTY_KEY and found, argv
        assert path_entries(environ).count(str(env.bin_dir)) == 1, argv
    # Why ~/.profile gets its own block on Linux: with the block only in ~/.bashrc, the
    # non-interactive login shell stops at the `return` above and never sees it.
    profile = h / ".profile"
    profile.write_text(plan_remove(read_rc(profile) or ""))
    environ, _ = run_shell(h, ("bash", "-l", "-c"))
    assert "OPENAI_API_KEY" not in environ


def test_macos_rule_with_real_bash(isolated_home: Path) -> None:
    h = isolated_home
    env = client_env(h)
    install(h, env, shells=("bash",), platform="darwin")
    assert (h / ".bash_profile").exists() and not (h / ".profile").exists()
    for argv in (("bash", "-l", "-c"), ("bash", "-i", "-c")):
        assert run_shell(h, argv)[0].get("OPENAI_API_KEY") == NASTY_KEY


def test_macos_bash_profile_that_sources_bashrc(isolated_home: Path) -> None:
    h = isolated_home
    (h / ".bash_profile").write_text("[ -f ~/.bashrc ] && . ~/.bashrc\n")
    env = client_env(h)
    install(h, env, shells=("bash",), platform="darwin")
    assert (h / ".bash_profile").read_text() == "[ -f ~/.bashrc ] && . ~/.bashrc\n"
    environ, found = run_shell(h, ("bash", "-l", "-c"))
    assert environ.get("OPENAI_API_KEY") == NASTY_KEY and found


NEXT = """\
#!/bin/sh
# Runs the next shell of $CHAIN (comma separated), recording PATH at every level.
printf '%s\\0' "$PATH" >> "$TRACE"
case "$CHAIN" in
  "") env -0 > "$OUT"; command -v claude-ollama > "$CMD"; exit ;;
  *,*) first=${CHAIN%%,*}; CHAIN=${CHAIN#*,} ;;
  *) first=$CHAIN; CHAIN= ;;
esac
export CHAIN
exec $first "$HOME/next"
"""


@pytest.mark.parametrize("chain", [
    "bash -i -c,zsh -i -c,fish -c,bash -i -c,zsh -i -c,fish -c",
    "fish -c,bash -l -c,zsh -i -c,sh -l -c,bash -l -i -c",
])
def test_nested_shells_keep_path_unique(isolated_home: Path, chain: str) -> None:
    h = isolated_home
    env = client_env(h)
    install(h, env)
    (h / "next").write_text(NEXT)
    (h / "next").chmod(0o755)
    trace = h.parent / "trace"
    first, rest = chain.split(",", 1)
    environ, found = run_shell(h, tuple(first.split()), script=f'"{h}/next"',
                               extra={"CHAIN": rest, "TRACE": str(trace)})
    levels = [p for p in trace.read_bytes().decode().split("\0") if p]
    assert len(levels) == chain.count(",") + 1
    for path in levels:
        assert path.split(":").count(str(env.bin_dir)) == 1, path
    if "-l" not in chain:  # login shells reset PATH in /etc/profile; others must not touch it
        assert len(set(levels)) == 1
    assert environ.get("OPENAI_API_KEY") == NASTY_KEY
    assert found == str(env.bin_dir / "claude-ollama")


def test_uninstall_leaves_shells_clean(isolated_home: Path) -> None:
    h = isolated_home
    (h / ".zshrc").write_text("export MINE=1")
    install(h, client_env(h))
    for change in plan_uninstall(targets(["zsh", "bash", "fish"], "linux", h, None)):
        apply_change(change)
    assert (h / ".zshrc").read_text() == "export MINE=1"
    for argv in (("zsh", "-i", "-c"), ("bash", "-l", "-c"), ("fish", "-c")):
        environ, found = run_shell(h, argv)
        assert "OPENAI_API_KEY" not in environ and found == "", argv


def test_env_files_are_private(isolated_home: Path) -> None:
    install(isolated_home, client_env(isolated_home))
    for path in env_file_paths():
        assert os.stat(path).st_mode & 0o777 == 0o600


RC_TEXTS = {  # rc files as users have them: written on Windows, or by a tool without "\n"
    "crlf": b"export MINE=1\r\nalias ll='ls -l'\r\n",
    "crlf-no-final-newline": b"export MINE=1\r\nexport OTHER=2",
    "lf-no-final-newline": b"export MINE=1",
    "crlf-block-of-an-older-setup": b"export MINE=1\r\n\r\n# >>> ai-client >>>\r\n"
                                    b"export OLD=1\r\n# <<< ai-client <<<\r\n",
}


@pytest.mark.parametrize("argv", [("zsh", "-i", "-c"), ("bash", "-i", "-c")],
                         ids=lambda a: a[0])
@pytest.mark.parametrize("name", RC_TEXTS)
def test_block_runs_in_crlf_and_unterminated_rc_files(isolated_home: Path, name: str,
                                                      argv: tuple[str, ...]) -> None:
    h = isolated_home
    rc = h / (".zshrc" if argv[0] == "zsh" else ".bashrc")
    rc.write_bytes(RC_TEXTS[name])
    env = client_env(h)
    install(h, env, shells=(argv[0],))
    environ, found = run_shell(h, argv)
    wanted = expected_vars(env)
    assert {k: environ.get(k) for k in wanted} == wanted, rc.read_bytes()
    assert found == str(env.bin_dir / "claude-ollama")
    for change in plan_uninstall(targets([argv[0]], "linux", h, None)):
        apply_change(change)
    if name == "crlf-block-of-an-older-setup":  # the old block was replaced, now removed
        assert rc.read_bytes() == b"export MINE=1\r\n"
    else:
        assert rc.read_bytes() == RC_TEXTS[name]  # byte for byte
    environ, found = run_shell(h, argv)
    assert "OPENAI_API_KEY" not in environ and found == ""
