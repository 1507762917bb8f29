"""The static environment files the shell blocks source: one for sh/bash/zsh, one for fish.

They are plain assignments (no command runs at shell start) with every value single-quoted,
so tokens and paths containing spaces, quotes, `$` or backticks arrive byte for byte. PATH gets
`bin_dir` prepended only when it is missing, so nested shells do not grow it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aicommon.errors import AiError

Scope = Literal["global", "aider"]
SCOPES: tuple[Scope, ...] = ("global", "aider")

_HEADER = (
    "# ai-client environment (scope: {scope}); managed by ai-client: 'ai-client setup' rewrites\n"
    "# it, 'ai-client uninstall' removes it. It holds your device token: keep it private.\n"
)


@dataclass(frozen=True)
class ClientEnv:
    base_url: str  # "http://studio.tail1234.ts.net:11434" (no trailing slash, no /v1)
    api_key: str  # the device token, or "ollama" when the gateway has no tokens
    model: str  # e.g. "qwen3-coder:30b"
    scope: str  # "global" | "aider"
    bin_dir: Path  # where `claude-ollama` lives; prepended to PATH once
    native_api: bool = False  # the server forwards Ollama's native API (/api/chat …)

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise AiError(f"unknown scope {self.scope!r}", "use 'global' or 'aider'",
                          code="env.bad_scope")
        for name in ("base_url", "api_key", "model"):
            value: str = getattr(self, name)
            if not value or "\0" in value:
                raise AiError(f"{name} is empty or contains a NUL byte", code="env.bad_value")
        if self.base_url.endswith("/") or self.base_url.endswith("/v1"):
            raise AiError(f"base_url {self.base_url!r} must have no trailing slash and no /v1",
                          code="env.bad_value")
        text = str(self.bin_dir)
        if not self.bin_dir.is_absolute() or ":" in text or "\0" in text or "\n" in text:
            raise AiError(f"bin_dir {text!r} must be an absolute path without ':' or newlines",
                          code="env.bad_value")


def variables(env: ClientEnv) -> list[tuple[str, str]]:
    """The exported variables, in file order, for the env's scope."""
    v1 = f"{env.base_url}/v1"
    if env.scope == "aider":
        return [
            ("AIDER_MODEL", f"openai/{env.model}"),
            ("AIDER_OPENAI_API_BASE", v1),
            ("AIDER_OPENAI_API_KEY", env.api_key),
        ]
    # OLLAMA_API_BASE only when the gateway forwards the native API: otherwise
    # `aider --model ollama_chat/…` would retry the gateway's 403s for a minute.
    native = [("OLLAMA_API_BASE", env.base_url)] if env.native_api else []
    return [
        *native,
        ("OPENAI_API_BASE", v1),
        ("OPENAI_API_KEY", env.api_key),
        ("AIDER_MODEL", f"openai/{env.model}"),
    ]


def sh_quote(value: str) -> str:
    """Single-quote for POSIX shells: nothing inside is special except `'` itself."""
    return "'" + value.replace("'", "'\\''") + "'"


def fish_quote(value: str) -> str:
    """Single-quote for fish, where `\\` and `'` are the only escapes inside quotes."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _native_note(env: ClientEnv) -> str:
    if env.scope != "global" or env.native_api:
        return ""
    return ("# No OLLAMA_API_BASE: this server does not forward Ollama's native API (allowlist\n"
            "# profile \"native\"), so `aider --model ollama_chat/…` would only get 403s.\n")


def render_posix(env: ClientEnv) -> str:
    """The file `. `-sourced by sh, bash and zsh."""
    lines = [_HEADER.format(scope=env.scope), _native_note(env)]
    lines += [f"export {name}={sh_quote(value)}\n" for name, value in variables(env)]
    quoted = sh_quote(str(env.bin_dir))
    # `${PATH-}` keeps `set -u` users working; quoted case patterns match literally.
    lines.append(
        f'case ":${{PATH-}}:" in\n'
        f"  *:{quoted}:*) ;;\n"
        f'  *) PATH={quoted}"${{PATH:+:$PATH}}"; export PATH ;;\n'
        "esac\n"
    )
    return "".join(lines)


def render_fish(env: ClientEnv) -> str:
    """The file `source`d by fish."""
    lines = [_HEADER.format(scope=env.scope), _native_note(env)]
    lines += [f"set -gx {name} {fish_quote(value)}\n" for name, value in variables(env)]
    quoted = fish_quote(str(env.bin_dir))
    lines.append(
        f"if not contains -- {quoted} $PATH\n"
        f"    set -gx PATH {quoted} $PATH\n"
        "end\n"
    )
    return "".join(lines)


def env_file_paths() -> tuple[Path, Path]:
    """(POSIX file, fish file), both in ai-client's config directory."""
    from aicommon.paths import client_paths

    config_dir = client_paths().config_dir
    return config_dir / "env.sh", config_dir / "env.fish"


def env_files(env: ClientEnv) -> list[tuple[Path, str]]:
    """Each env file with its text; write them with atomic_write(path, text, mode=0o600)."""
    posix, fish = env_file_paths()
    return [(posix, render_posix(env)), (fish, render_fish(env))]
