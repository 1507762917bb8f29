"""What Homebrew generates from a formula's `service do` block (Library/Homebrew/service.rb),
for the `brew` fake and for fakeenv.ServiceDef (which writes the block's description next to
the keg as ``.fake-brew-service.json``).

- plist: service.rb:566-628 (to_plist), LimitLoadToSessionType with all five session types
- systemd unit: service.rb:632-673 (to_systemd_unit); keep_alive → Restart=on-failure
  (service.rb:641-648: `always` and `crashed` both give on-failure)
- user overrides: service.rb:443-488 (effective_environment_variables) merges
  $HOMEBREW_USER_CONFIG_HOME/services/<formula>.env (Homebrew 6.0.15 and newer), skipping a
  group- or world-writable file and invalid lines; later lines win.
"""

from __future__ import annotations

import json
import os
import plistlib
import stat
import sys
from pathlib import Path
from typing import Any

DESCRIPTION = ".fake-brew-service.json"
SESSION_TYPES = ["Aqua", "Background", "LoginWindow", "StandardIO", "System"]
ENV_FILE_SINCE = (6, 0, 15)  # Homebrew commit 9a239b2 (2026-07-31), first tag 6.0.15


def version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def user_config_home(env: dict[str, str] | os._Environ[str]) -> Path:
    """bin/brew:163-170: $XDG_CONFIG_HOME/homebrew, else $HOMEBREW_XDG_CONFIG_HOME/homebrew,
    else ~/.homebrew (exported to Ruby as HOMEBREW_USER_CONFIG_HOME)."""
    if env.get("HOMEBREW_USER_CONFIG_HOME"):
        return Path(env["HOMEBREW_USER_CONFIG_HOME"])
    if env.get("XDG_CONFIG_HOME"):
        return Path(env["XDG_CONFIG_HOME"]) / "homebrew"
    if env.get("HOMEBREW_XDG_CONFIG_HOME"):
        return Path(env["HOMEBREW_XDG_CONFIG_HOME"]) / "homebrew"
    return Path(env.get("HOME", str(Path.home()))) / ".homebrew"


def env_overrides(formula: str, env: dict[str, str] | os._Environ[str]) -> dict[str, str]:
    path = user_config_home(env) / "services" / f"{formula}.env"
    if not path.is_file():
        return {}
    mode = path.stat().st_mode
    if mode & stat.S_IWOTH:
        print(f"Warning: Skipping {path}: file is world-writable.", file=sys.stderr)
        return {}
    if mode & stat.S_IWGRP:
        print(f"Warning: Skipping {path}: file is group-writable.", file=sys.stderr)
        return {}
    out: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not key.strip() or not sep:
            print(f"Warning: Skipping invalid line in {path}: {line}", file=sys.stderr)
            continue
        out[key.strip()] = value.strip()
    return out


def plist_bytes(desc: dict[str, Any], label: str, env: dict[str, str]) -> bytes:
    data: dict[str, Any] = {"Label": label, "ProgramArguments": list(desc["run"]),
                            "RunAtLoad": desc.get("run_at_load", True)}
    if desc.get("working_dir"):
        data["WorkingDirectory"] = desc["working_dir"]
    if desc.get("log_path"):
        data["StandardOutPath"] = desc["log_path"]
    if desc.get("error_log_path"):
        data["StandardErrorPath"] = desc["error_log_path"]
    if env:
        data["EnvironmentVariables"] = dict(env)
    if desc.get("keep_alive", True):
        data["KeepAlive"] = True
    data["LimitLoadToSessionType"] = list(SESSION_TYPES)
    return plistlib.dumps(data, sort_keys=False)


def systemd_quote(arg: str) -> str:
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unit_text(desc: dict[str, Any], formula: str, env: dict[str, str]) -> str:
    lines = ["[Unit]", f"Description=Homebrew generated unit for {formula}", "",
             "[Install]", "WantedBy=default.target", "", "[Service]", "Type=simple",
             "ExecStart=" + " ".join(systemd_quote(a) for a in desc["run"])]
    if desc.get("keep_alive", True):
        lines.append("Restart=on-failure")
    if desc.get("working_dir"):
        lines.append(f"WorkingDirectory={desc['working_dir']}")
    if desc.get("log_path"):
        lines.append(f"StandardOutput=append:{desc['log_path']}")
    if desc.get("error_log_path"):
        lines.append(f"StandardError=append:{desc['error_log_path']}")
    lines += [f'Environment="{k}={v}"' for k, v in env.items()]
    return "\n".join(lines) + "\n"


def generate(keg_or_opt: Path, formula: str, darwin: bool, brew_version: str,
             env: dict[str, str] | os._Environ[str]) -> bytes | None:
    """The service file `brew services start <formula>` writes (None: no description)."""
    try:
        desc = json.loads((keg_or_opt / DESCRIPTION).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    variables = dict(desc.get("environment") or {})
    if version_tuple(brew_version) >= ENV_FILE_SINCE:
        variables.update(env_overrides(formula, env))
    if darwin:
        return plist_bytes(desc, f"homebrew.mxcl.{formula}", variables)
    return unit_text(desc, formula, variables).encode()
