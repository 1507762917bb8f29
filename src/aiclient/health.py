"""`ai-client status` and `doctor`: is everything setup wrote present and effective?"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from aiclient import envfile, setup, shellrc
from aiclient.settings import ClientSettings, load
from aiclient.tools import claude
from aicommon.errors import AiError
from aicommon.runner import run

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"


def _check(name: str, status: str, detail: str, fix: str = "") -> dict[str, str]:
    return {"name": name, "status": status, "detail": detail, "fix": fix}


def tool_version(program: str) -> str | None:
    path = shutil.which(program)
    if path is None:
        return None
    try:
        done = run([path, "--version"], timeout=20, check=False)
    except AiError:
        return None
    m = re.search(r"(\d+\.\d+\.\d+)", done.stdout + done.stderr)
    return m.group(1) if m else "unknown"


def shell_sees(shell: str, settings: ClientSettings) -> tuple[bool, str]:
    """Start the user's shell interactively and read back what the integration provides."""
    var = "OPENAI_API_BASE" if settings.client.scope == "global" else "AIDER_OPENAI_API_BASE"
    if shutil.which(shell) is None:
        return False, f"{shell} is not installed"
    if shell == "fish":
        argv = ["fish", "-i", "-c", f"echo ${var}; command -v {claude.WRAPPER_NAME}; true"]
    else:
        argv = [shell, "-i", "-c",
                f'printf "%s\\n" "${var}"; command -v {claude.WRAPPER_NAME}; true']
    try:
        done = run(argv, timeout=20, check=False)
    except AiError as err:
        return False, err.message
    lines = done.stdout.splitlines()
    want = f"{settings.base_url}/v1"
    seen_var = want in lines
    seen_wrapper = not settings.client.claude or any(
        line.endswith("/" + claude.WRAPPER_NAME) for line in lines)
    if seen_var and seen_wrapper:
        return True, f"{var} and {claude.WRAPPER_NAME} visible"
    missing = ([var] if not seen_var else []) + ([claude.WRAPPER_NAME] if not seen_wrapper
                                                  else [])
    return False, "not visible in a new shell: " + ", ".join(missing)


def doctor(config: Path | None, check_shells: bool = True) -> list[dict[str, str]]:
    checks: list[dict[str, str]] = []
    try:
        settings = load(config)
    except AiError as err:
        if err.code != "config.missing":  # a broken settings file is exit 4, as everywhere
            raise
        return [_check("settings", FAIL, err.message, err.hint or "")]
    checks.append(_check("settings", PASS, f"{settings.base_url}, model {settings.model}"))
    for path in envfile.env_file_paths():
        checks.append(_check(f"env-file {path.name}", PASS if path.exists() else FAIL,
                             str(path), "" if path.exists() else "ai-client setup"))
    manifest = setup.read_manifest()
    for r in manifest.get("rc", []):
        path = Path(r["path"])
        text = shellrc.read_rc(path)
        ok = text is not None and (shellrc.has_block(text, name=str(path))
                                   if r["kind"] == "block" else True)
        checks.append(_check(f"{r['shell']} {path.name}", PASS if ok else FAIL,
                             f"{path}: {'block present' if ok else 'block missing'}",
                             "" if ok else "ai-client setup"))
    wrapper = setup.bin_dir() / claude.WRAPPER_NAME
    if settings.client.claude:
        checks.append(_check("claude-ollama", PASS if wrapper.exists() else FAIL, str(wrapper),
                             "" if wrapper.exists() else "ai-client setup"))
        checks += claude_checks(settings)
    if check_shells:
        for sh in settings.client.shells:
            ok, detail = shell_sees(sh, settings)
            checks.append(_check(f"{sh} effective", PASS if ok else FAIL, detail,
                                 "" if ok else f"open a new terminal; check your {sh} rc file "
                                 "sources the ai-client block (ai-client setup)"))
    from aiclient.discovery import probe

    try:
        p = probe(settings.server.host, settings.server.port, settings.server.token,
                  with_details=False)
        checks.append(_check("server", PASS, f"Ollama {p.version} at {p.base_url}"))
        if settings.model not in p.models:
            checks.append(_check("model", FAIL, f"{settings.model} is gone from the server",
                                 "ai-client setup --model <one of: " + ", ".join(p.models[:5])
                                 + ">"))
    except AiError as err:
        checks.append(_check("server", FAIL, err.message, err.hint or ""))
    found = tool_installs()
    for program, fix in (("aider", "uv tool install aider-chat (or brew install aider)"),
                         ("claude", "curl -fsSL https://claude.ai/install.sh | bash")):
        inst = found[program]
        if inst is None:
            checks.append(_check(program, WARN, f"{program} not installed", fix))
        elif not inst["version"]:
            checks.append(_check(program, WARN, f"{program} at {inst['path']} does not answer "
                                 f"`--version` ({inst['method']} install)",
                                 f"reinstall it ({fix})"))
        else:
            checks.append(_check(program, PASS, f"{program} {inst['version']} ({inst['method']}:"
                                 f" {inst['path']})"))
    return checks


def claude_checks(settings: ClientSettings) -> list[dict[str, str]]:
    """Can Claude Code work with the server's context, and does a settings file override
    claude-ollama's values (which file, which key)?"""
    from aiclient import setup as client_setup
    from aiclient.compat import CONTEXT_FIX

    checks = []
    ctx = settings.server.context_length
    problem = client_setup.claude_context_problem(ctx)
    checks.append(_check("claude context", FAIL if problem else PASS,
                         problem or (f"context {ctx} is enough for Claude Code" if ctx > 0
                                     else "context unknown (run ai-client setup)"),
                         CONTEXT_FIX if problem else ""))
    found = claude.overrides(Path.home(), Path.cwd())
    effective = [o for o in found if o.managed and o.key in claude.ROUTING_KEYS]
    status = FAIL if effective else WARN if found else PASS
    checks.append(_check("claude settings", status,
                         "; ".join(o.as_text() for o in found)
                         or "no settings file overrides claude-ollama's values",
                         "remove the key from that file (managed settings: ask whoever "
                         "manages this machine)" if found else ""))
    return checks


def tool_installs() -> dict[str, dict[str, Any] | None]:
    """How Claude Code and Aider are installed (method, path, version), None when absent."""
    from aiclient import installs

    found = {"claude": installs.detect_claude(), "aider": installs.detect_aider()}
    return {tool: (None if inst is None else
                   {"method": str(inst.method), "path": str(inst.path), "real": str(inst.real),
                    "version": inst.version})
            for tool, inst in found.items()}


def status(config: Path | None) -> dict[str, Any]:
    checks = doctor(config, check_shells=False)
    found = tool_installs()
    return {"checks": checks, "aider": tool_version("aider"), "claude": tool_version("claude"),
            "installs": found}
