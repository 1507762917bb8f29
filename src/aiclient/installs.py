"""How Claude Code and Aider are installed here, and switching their versions.

Detection looks at what the program on PATH really is (REFERENCE §2.3, §3), never at which
package managers happen to exist:

- Claude Code: the native launcher (`~/.local/bin/claude` → `~/.local/share/claude/versions/
  <v>`), a global npm package (`…/node_modules/@anthropic-ai/claude-code/…`), a Homebrew cask
  (`…/Caskroom/claude-code[@latest]/<v>/…`).
- Aider: a uv tool (`…/aider-chat/uv-receipt.toml`), pipx (`…/aider-chat/pipx_metadata.json`),
  a Homebrew formula (`…/Cellar/aider/<v>/…`), pip (a `pip` beside the `aider` script).

A switch installs, verifies with `<tool> --version`, and on any failure puts the previous
version back exactly (the same launcher link, or a reinstall) and checks that too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from aicommon.errors import AiError, ExitCode

CLAUDE_NPM_PACKAGE = "@anthropic-ai/claude-code"
AIDER_PACKAGE = "aider-chat"
INSTALL_TIMEOUT = 900.0


class Method(StrEnum):
    NATIVE = "native"
    NPM = "npm"
    BREW_CASK = "brew-cask"
    UV = "uv"
    PIPX = "pipx"
    BREW = "brew"
    PIP = "pip"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Install:
    tool: str  # "claude" | "aider"
    method: Method
    path: Path  # the program found on PATH
    real: Path  # the file it really is
    version: str  # PEP 440 text ("" when --version did not answer)
    launcher: Path | None = None  # native: the symlink to repoint
    cask: str | None = None  # brew-cask: claude-code or claude-code@latest
    formula: str | None = None  # brew: the formula name
    pip: tuple[str, ...] = ()  # pip: how to run pip for this environment

    def as_dict(self) -> dict[str, Any]:
        return {"tool": self.tool, "method": str(self.method), "path": str(self.path),
                "real": str(self.real), "version": self.version,
                "launcher": str(self.launcher) if self.launcher else None,
                "cask": self.cask, "formula": self.formula}


def normalize(version: str, what: str = "version") -> str:
    """A user-given version as PEP 440 text; anything else is refused."""
    from packaging.version import InvalidVersion, Version

    try:
        return str(Version(version.strip()))
    except InvalidVersion:
        raise AiError(f"{version!r} is not a {what} number",
                      "give a version such as 2.1.153", code="versions.bad_version",
                      exit_code=ExitCode.USAGE) from None


def program_version(path: Path | str, what: str) -> str:
    """`<program> --version`, parsed (raises AiError when it does not answer)."""
    from aiclient.compat import parse_version
    from aicommon.runner import run

    done = run([str(path), "--version"], timeout=60)
    return str(parse_version(done.stdout or done.stderr, what))


def _version_or_empty(path: Path, what: str) -> str:
    try:
        return program_version(path, what)
    except AiError:
        return ""


def last_link(path: Path) -> Path | None:
    """The last symlink on the way from `path` to the real file (the one to repoint)."""
    current, found = path, None
    for _ in range(40):
        if not current.is_symlink():
            return found
        found = current
        link = Path(os.readlink(current))
        current = link if link.is_absolute() else current.parent / link
    return found


def _after(parts: Sequence[str], name: str) -> str | None:
    return parts[parts.index(name) + 1] if name in parts[:-1] else None


def detect_claude() -> Install | None:
    """Claude Code as found on PATH, or None when there is no `claude`."""
    found = shutil.which("claude")
    if found is None:
        return None
    path = Path(found)
    real = path.resolve()
    version = _version_or_empty(path, "Claude Code version")
    link = last_link(path)
    parts = real.parts
    if link is not None and real.parent.name == "versions":
        return Install("claude", Method.NATIVE, path, real, version or _pep440(real.name),
                       launcher=link)
    if "node_modules" in parts and f"/{CLAUDE_NPM_PACKAGE}/" in real.as_posix():
        # a claude that cannot run (npm's placeholder) still has its package.json
        return Install("claude", Method.NPM, path, real, version or _npm_version(real))
    cask = _after(parts, "Caskroom")
    if cask is not None and cask.startswith("claude-code"):
        return Install("claude", Method.BREW_CASK, path, real, version, cask=cask)
    return Install("claude", Method.UNKNOWN, path, real, version)


def _npm_version(real: Path) -> str:
    import json

    for folder in real.parents:
        if folder.as_posix().endswith(f"/node_modules/{CLAUDE_NPM_PACKAGE}"):
            try:
                return _pep440(str(json.loads((folder / "package.json").read_text())["version"]))
            except (OSError, ValueError, KeyError, TypeError):
                return ""
    return ""


def _pep440(text: str) -> str:
    try:
        return normalize(text)
    except AiError:
        return ""


def _shebang_python(script: Path) -> str | None:
    try:
        with open(script, "rb") as fh:
            first = fh.readline(512).decode("utf-8", "replace").strip()
    except OSError:
        return None
    if not first.startswith("#!"):
        return None
    words = first[2:].split()
    if words and words[0].endswith("/env") and len(words) > 1:
        words = words[1:]
    return words[0] if words and "python" in Path(words[0]).name else None


def detect_aider() -> Install | None:
    """Aider as found on PATH, or None when there is no `aider`."""
    found = shutil.which("aider")
    if found is None:
        return None
    path = Path(found)
    real = path.resolve()
    version = _version_or_empty(path, "Aider version")
    for folder in real.parents:
        if folder.name == AIDER_PACKAGE:
            if (folder / "uv-receipt.toml").is_file():
                return Install("aider", Method.UV, path, real, version)
            if (folder / "pipx_metadata.json").is_file():
                return Install("aider", Method.PIPX, path, real, version)
    text = real.as_posix()
    if f"/uv/tools/{AIDER_PACKAGE}/" in text:
        return Install("aider", Method.UV, path, real, version)
    if f"/pipx/venvs/{AIDER_PACKAGE}/" in text:
        return Install("aider", Method.PIPX, path, real, version)
    formula = _after(real.parts, "Cellar")
    if formula is not None and formula.startswith("aider"):
        return Install("aider", Method.BREW, path, real, version, formula=formula)
    for folder in dict.fromkeys((path.parent, real.parent)):
        for name in ("pip", "pip3"):
            pip = folder / name
            if os.access(pip, os.X_OK) and pip.is_file():
                return Install("aider", Method.PIP, path, real, version, pip=(str(pip),))
    python = _shebang_python(real)
    if python:
        return Install("aider", Method.PIP, path, real, version, pip=(python, "-m", "pip"))
    return Install("aider", Method.UNKNOWN, path, real, version)


# ---------------------------------------------------------------------------------------------
# Switching versions
# ---------------------------------------------------------------------------------------------


@dataclass
class SwitchResult:
    tool: str
    method: str
    from_version: str
    to_version: str
    ok: bool = False
    restored: bool = False  # a failure was undone and the old version answers again
    now_version: str = ""  # what `--version` prints at the end
    error: str = ""
    steps: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"tool": self.tool, "method": self.method, "from": self.from_version,
                "to": self.to_version, "ok": self.ok, "restored": self.restored,
                "now": self.now_version, "error": self.error, "steps": list(self.steps)}


def _switch(result: SwitchResult, apply: Callable[[], list[str]],
            undo: Callable[[], list[str]], read: Callable[[], str],
            read_back: Callable[[], str] | None = None) -> SwitchResult:
    """apply → verify with `read`; on failure undo → verify with `read_back` (default
    `read`) that the old version answers again."""
    try:
        result.steps += apply()
        now = read()
        if now != result.to_version:
            raise AiError(f"after the install `{result.tool} --version` prints "
                          f"{now or 'no version'}, not {result.to_version}")
        result.ok, result.now_version = True, now
        return result
    except AiError as err:
        result.error = err.message
    try:
        result.steps += undo()
        back = (read_back or read)()
        result.now_version = back
        result.restored = back == result.from_version
        if not result.restored:
            result.error += (f"; after restoring, `{result.tool} --version` prints "
                             f"{back or 'no version'}")
    except AiError as err:
        result.error += f"; restoring {result.from_version} failed too: {err.message}"
        result.now_version = ""
    return result


def _unless_answers(read: Callable[[], str], version: str,
                    reinstall: Callable[[str], list[str]]) -> Callable[[], list[str]]:
    """An undo that reinstalls `version` only when the program does not answer with it
    (a failed install usually changed nothing)."""
    def undo() -> list[str]:
        try:
            if read() == version:
                return []
        except AiError:
            pass
        return reinstall(version)

    return undo


def _run(argv: Sequence[str], hint: str | None = None,
         env: dict[str, str] | None = None) -> str:
    from aicommon.runner import command_line, run

    run(list(argv), timeout=INSTALL_TIMEOUT, hint=hint,
        env={**os.environ, **env} if env else None)
    return command_line([*(f"{k}={v}" for k, v in (env or {}).items()), *argv])


def need_program(program: str, why: str) -> None:
    if shutil.which(program) is None:
        raise AiError(f"`{program}` is not on PATH ({why})", f"install {program} or fix PATH",
                      code="versions.program_missing", exit_code=ExitCode.UNAVAILABLE)


def repoint(link: Path, target: str) -> None:
    """Point the symlink `link` at `target` atomically (a new link renamed over the old)."""
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.symlink(target, tmp)
        os.replace(tmp, link)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise AiError(f"cannot repoint {link}: {exc.strerror or exc}",
                      "check the directory is writable", code="versions.link") from exc


def _link_text(link: Path, dest: Path, like: str) -> str:
    """`dest` written the way the existing link text `like` is (absolute or relative)."""
    return str(dest) if os.path.isabs(like) else os.path.relpath(dest, link.parent)


def switch_claude(inst: Install, target: str) -> SwitchResult:
    """Install Claude Code `target` the way it is installed now (native or npm), verified,
    with the previous version restored exactly on failure."""
    result = SwitchResult("claude", str(inst.method), inst.version, target)

    def read() -> str:
        return program_version(inst.path, "Claude Code version")

    if inst.method == Method.NATIVE:
        assert inst.launcher is not None
        launcher = inst.launcher
        original = os.readlink(launcher)
        versions = inst.real.parent

        def apply() -> list[str]:
            if (versions / target).is_file():
                repoint(launcher, _link_text(launcher, versions / target, original))
                return [f"repointed {launcher} → {versions / target}"]
            steps = [_run([str(launcher), "install", target])]
            # The native installer writes ~/.local/share/claude/versions and repoints
            # ~/.local/bin/claude: make the launcher on PATH follow when it lives elsewhere.
            default = native_launcher()
            if launcher != default and (default.is_symlink() or default.exists()):
                steps.append(f"`claude install` pointed {default} at "
                             f"{os.path.realpath(default)}")
            for folder in dict.fromkeys((versions, native_versions())):
                if (folder / target).is_file() and last_link(launcher) == launcher:
                    if os.path.realpath(launcher) != str((folder / target).resolve()):
                        repoint(launcher, _link_text(launcher, folder / target, original))
                        steps.append(f"repointed {launcher} → {folder / target}")
                    break
            return steps

        def undo() -> list[str]:
            current = os.readlink(launcher) if launcher.is_symlink() else None
            if current == original:
                return []
            repoint(launcher, original)
            return [f"repointed {launcher} → {original} (restored)"]

        return _switch(result, apply, undo, read)
    if inst.method == Method.NPM:
        need_program("npm", f"Claude Code was installed with npm ({inst.real})")

        def npm(version: str) -> list[str]:
            return [_run(npm_install_argv(inst, version))]

        if not inst.version:
            raise AiError("cannot tell which Claude Code version npm has installed",
                          "check `claude --version`", code="versions.unknown_version")
        return _switch(result, lambda: npm(target), _unless_answers(read, inst.version, npm),
                       read)
    if inst.method == Method.BREW_CASK:
        raise cask_cannot_pin(inst, target)
    raise AiError(f"cannot tell how Claude Code at {inst.path} was installed "
                  f"(it is {inst.real})",
                  "use the native installer: `claude install <version>`",
                  code="versions.unknown_method")


def npm_prefix(inst: Install) -> Path:
    """The npm prefix that owns this `claude` (`<prefix>/lib/node_modules/…`; Windows:
    `<prefix>/node_modules/…`), which need not be `npm prefix -g` (REFERENCE §2.6)."""
    parts = inst.real.parts
    at = len(parts) - 1 - parts[::-1].index("node_modules")
    folder = Path(*parts[:at])
    return folder.parent if folder.name == "lib" else folder


def npm_install_argv(inst: Install, version: str) -> list[str]:
    """Install into the prefix of the running `claude`, with the package's install script
    forced on (with `ignore-scripts=true` npm leaves a placeholder that cannot run)."""
    return ["npm", "install", "--global", "--prefix", str(npm_prefix(inst)),
            "--ignore-scripts=false", "--no-audit", "--no-fund",
            f"{CLAUDE_NPM_PACKAGE}@{version}"]


def cask_cannot_pin(inst: Install, target: str) -> AiError:
    return AiError(f"Homebrew's {inst.cask} cask installs only its channel's current release "
                   f"({inst.version or 'installed'}); it cannot install Claude Code {target}",
                   f"install the native build beside it: `claude install {target}` (puts "
                   "~/.local/bin/claude first on PATH), or `ai-client downgrade-claude "
                   f"{target}` and accept its offer", code="versions.cask")


def native_launcher() -> Path:
    return Path.home() / ".local" / "bin" / "claude"


def native_versions() -> Path:
    return Path.home() / ".local" / "share" / "claude" / "versions"


def install_native_instead(inst: Install, target: str) -> SwitchResult:
    """From a cask install: `claude install <target>` puts the native build at
    ~/.local/bin/claude. Verified there; on failure that path is put back as it was."""
    launcher = native_launcher()
    result = SwitchResult("claude", str(Method.NATIVE), inst.version, target)
    before = os.readlink(launcher) if launcher.is_symlink() else None
    existed = launcher.exists() or launcher.is_symlink()
    if existed and before is None:
        raise AiError(f"{launcher} exists and is not the native launcher's symlink",
                      "move it aside and retry", code="versions.launcher")

    def apply() -> list[str]:
        return [_run([str(inst.path), "install", target])]

    def undo() -> list[str]:
        if before is not None:
            if not launcher.is_symlink() or os.readlink(launcher) != before:
                repoint(launcher, before)
            return [f"repointed {launcher} → {before} (restored)"]
        if launcher.is_symlink() or launcher.exists():
            launcher.unlink()
            return [f"removed {launcher} (restored)"]
        return []

    def read_native() -> str:
        return program_version(launcher, "Claude Code version")

    def read_cask() -> str:
        return program_version(inst.path, "Claude Code version")

    outcome = _switch(result, apply, undo, read_native, read_cask)
    if not outcome.ok:  # undone means the launcher path is as it was, too
        now = os.readlink(launcher) if launcher.is_symlink() else None
        outcome.restored = outcome.restored and now == before
    return outcome


def aider_install_argv(inst: Install, requirement: str) -> list[str]:
    if inst.method == Method.UV:
        return ["uv", "tool", "install", requirement]
    if inst.method == Method.PIPX:
        return ["pipx", "install", "--force", requirement]
    if inst.method == Method.PIP:
        return [*inst.pip, "install", requirement]
    raise AiError(f"cannot install Aider versions for a {inst.method} install",
                  code="versions.unknown_method")


def aider_install_env(inst: Install) -> dict[str, str]:
    """uv's and pipx's directories of the `aider` on PATH, which need not be the ones their
    environment names today: the install must replace that one, not add another."""
    package = next((f for f in inst.real.parents if f.name == AIDER_PACKAGE), None)
    if package is None:
        return {}
    if inst.method == Method.UV:
        return {"UV_TOOL_DIR": str(package.parent), "UV_TOOL_BIN_DIR": str(inst.path.parent)}
    if inst.method == Method.PIPX and package.parent.name == "venvs":
        return {"PIPX_HOME": str(package.parent.parent), "PIPX_BIN_DIR": str(inst.path.parent)}
    return {}


def switch_aider(inst: Install, target: str) -> SwitchResult:
    """Install `aider-chat==target` with the method Aider came with, verified, the previous
    version reinstalled on failure."""
    result = SwitchResult("aider", str(inst.method), inst.version, target)
    if inst.method == Method.BREW:
        if target != inst.version:
            raise AiError(f"Homebrew's {inst.formula} formula installs only its current release "
                          f"({inst.version}); it cannot install Aider {target}",
                          "`brew uninstall aider` and `uv tool install aider-chat==<version>`",
                          code="versions.brew")
        result.ok, result.now_version = True, inst.version
        return result
    if inst.method == Method.UNKNOWN:
        raise AiError(f"cannot tell how Aider at {inst.path} was installed (it is {inst.real})",
                      "reinstall it with `uv tool install aider-chat`",
                      code="versions.unknown_method")
    if inst.method in (Method.UV, Method.PIPX):
        need_program(str(inst.method), f"Aider was installed with {inst.method}")
    if not inst.version:
        raise AiError("cannot tell which Aider version is installed", "check `aider --version`",
                      code="versions.unknown_version")

    def install(version: str) -> list[str]:
        return [_run(aider_install_argv(inst, f"{AIDER_PACKAGE}=={version}"),
                     env=aider_install_env(inst))]

    def read() -> str:
        return program_version(inst.path, "Aider version")

    return _switch(result, lambda: install(target),
                   _unless_answers(read, inst.version, install), read)


def release_uv_constraint(inst: Install) -> list[str]:
    """uv keeps the requirement a tool was installed with (`uv tool upgrade` honours it):
    reinstall it unconstrained; uv keeps the installed version while it satisfies that."""
    return [_run(aider_install_argv(inst, AIDER_PACKAGE), env=aider_install_env(inst))]
