"""Per-device tokens: add, list and revoke lines of the `<token> <device>` map file.

The file stays parseable by render.parse_token_map: a token line may be preceded by a
`# added <UTC time>` comment (kept with it and removed with it); other comments and hand-made
lines are left alone. Every write is atomic with mode 600. After a change a running gateway
is reloaded gracefully so the change applies without dropping streams, and the change is
checked through the gateway itself (a probe with the token) before the command returns.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aicommon.errors import AiError, ExitCode
from aicommon.fsutil import atomic_write
from aiserver.gateway import control as gatewayctl
from aiserver.gateway import render as gateway
from aiserver.gateway.paths import gateway_dir, stats_socket, token_file
from aiserver.settings import Settings

HEADER = ("# ai-server per-device tokens: one '<token> <device>' per line; keep this file "
          "mode 600.\n"
          "# Managed by `ai-server tokens add|list|revoke`; hand edits are kept.\n")
PREFIX_CHARS = 6
_ADDED = re.compile(r"^#\s*added\s+(\S+)\s*$")


def new_token() -> str:
    token = secrets.token_urlsafe(32)
    assert gateway.TOKEN_RE.match(token)
    return token


@dataclass(frozen=True)
class Device:
    device: str
    token_prefix: str
    added: str | None  # from the `# added` comment above the line; None for hand-made lines

    def as_dict(self) -> dict[str, Any]:
        return {"device": self.device, "token_prefix": self.token_prefix, "added": self.added}


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AiError(f"cannot read the token file {path}: {exc.strerror}",
                      f"check the permissions of {path}", code="tokens.unreadable",
                      exit_code=ExitCode.CONFIG) from None


def devices_in(text: str, source: str) -> list[Device]:
    """The devices of a map file's text (validated like the gateway validates it)."""
    gateway.parse_token_map(text, source)
    found: list[Device] = []
    previous = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            token, device = line.split()
            m = _ADDED.match(previous)
            found.append(Device(device, token[:PREFIX_CHARS], m.group(1) if m else None))
        previous = line
    return found


def _check_device_name(device: str) -> None:
    if not gateway.DEVICE_RE.match(device):
        raise AiError(f"{device!r} is not a valid device name",
                      "use 1-64 letters, digits, '.', '_' or '-', like alice-laptop",
                      code="tokens.bad_device",
                      exit_code=ExitCode.USAGE)


VERIFY_SECONDS = 10.0


def _map_answers(settings: Settings, gen: Path, token: str, accepted: bool) -> bool:
    """Whether the worker answering on the runtime API has `gen`'s token map, with `token`
    present (accepted) or absent (revoked)."""
    try:
        out = gatewayctl.runtime_command(stats_socket(settings),
                                         f"get map {gen / 'tokens.map'} {token}")
    except OSError:
        return False  # the new worker is taking over the socket
    if "found=" not in out:
        return False  # an older worker, which does not know this generation's map
    return ("found=yes" in out) == accepted


def _probe_applied(settings: Settings, token: str, accepted: bool) -> bool | None:
    """A gateway with no state here (started elsewhere): ask it with the token itself."""
    status = gatewayctl.probe(settings, {"Authorization": f"Bearer {token}"})
    return None if status is None else (status != 401) == accepted


def _after_change(settings: Settings, changes: list[tuple[str, str]], accepted: bool
                  ) -> dict[str, Any]:
    """Apply a change of (token, device) pairs to a running gateway before returning: at once
    on the running worker through the runtime API (open connections included), then by a
    graceful reload, checked on the new worker; a gateway without state here is checked with
    a request carrying the token. Reports what happened (the file change is kept)."""
    if not settings.gateway.tokens:
        return {"state": "not_enforced",
                "message": "tokens = false: the gateway does not check tokens",
                "hint": "set tokens = true in [gateway], then run `ai-server reload`"}
    what = "accepts the new token" if accepted else "refuses the revoked token"
    pid = gatewayctl.running_master(settings)
    if pid is None:
        applied = _probe_applied(settings, changes[0][0], accepted)
        if applied is None:
            return {"state": "not_running",
                    "message": "the gateway is not running; the change applies when it starts",
                    "hint": None}
        if applied:
            return {"state": "verified", "message": f"the gateway serving port "
                    f"{settings.gateway.port} {what} (checked)", "hint": None}
        return {"state": "not_applied",
                "message": f"a gateway serving port {settings.gateway.port} still "
                           f"{'refuses' if accepted else 'accepts'} the token, and it was not "
                           "started from this machine's ai-server state (no master pid file: "
                           "e.g. `ai-server run` with another AI_SERVER_HOME, or its state was "
                           "removed), so it cannot be reloaded",
                "hint": "stop that gateway and start it again (`ai-server run` or its service)"}
    old = gatewayctl.current_generation(settings)
    if old is not None:
        for token, device in changes:  # effective now, on the worker that serves
            command = (f"add map {old / 'tokens.map'} {token} {device}" if accepted else
                       f"del map {old / 'tokens.map'} {token}")
            with contextlib.suppress(OSError):
                gatewayctl.runtime_command(stats_socket(settings), command)
    try:
        done = gatewayctl.reload(settings, 0)
    except AiError as err:
        return {"state": "reload_failed", "message": f"reloading the gateway failed: "
                f"{err.message}", "hint": err.hint or "run `ai-server reload`",
                "code": err.code}
    gen = gateway_dir(settings) / str(done["generation"])
    deadline = time.monotonic() + VERIFY_SECONDS
    while not all(_map_answers(settings, gen, tok, accepted) for tok, _ in changes):
        if time.monotonic() >= deadline:
            return {"state": "not_applied",
                    "message": f"reloaded the gateway (master pid {pid}) but its new worker "
                               f"did not show the change within {VERIFY_SECONDS:g} s",
                    "hint": "check `ai-server status`, then `ai-server reload`"}
        time.sleep(0.05)
    return {"state": "reloaded", "message": f"reloaded the gateway (master pid "
            f"{done['master_pid']}); it {what} (checked)", "hint": None,
            "master_pid": done["master_pid"], "generation": done["generation"]}


def add(settings: Settings, device: str) -> dict[str, Any]:
    """Give `device` a new token; the result holds the token (show it once)."""
    _check_device_name(device)
    path = token_file(settings)
    text = _read(path)
    existing = devices_in(text, str(path)) if text is not None else []
    if any(d.device == device for d in existing):
        raise AiError(f"device {device} already has a token",
                      f"run `ai-server tokens revoke {device}` first, or pick another name",
                      code="tokens.exists", exit_code=ExitCode.FAILURE)
    token = new_token()
    added = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    base = HEADER if text is None else (text if text.endswith("\n") or not text else text + "\n")
    new_text = base + f"# added {added}\n{token} {device}\n"
    gateway.parse_token_map(new_text, str(path))  # never write what the gateway would refuse
    atomic_write(path, new_text, mode=0o600)
    return {"device": device, "token": token, "added": added, "file": str(path),
            "enforced": settings.gateway.tokens,
            "gateway": _after_change(settings, [(token, device)], accepted=True)}


def list_devices(settings: Settings) -> dict[str, Any]:
    path = token_file(settings)
    text = _read(path)
    devices = devices_in(text, str(path)) if text is not None else []
    return {"file": str(path), "exists": text is not None, "enforced": settings.gateway.tokens,
            "devices": [d.as_dict() for d in devices]}


def revoke(settings: Settings, device: str) -> dict[str, Any]:
    """Remove every token of `device` (and the `# added` comment above each)."""
    path = token_file(settings)
    text = _read(path)
    known = devices_in(text, str(path)) if text is not None else []
    if not any(d.device == device for d in known):
        names = ", ".join(d.device for d in known) or "none"
        raise AiError(f"no token for device {device!r} in {path}",
                      f"known devices: {names}; see `ai-server tokens list`",
                      code="tokens.unknown_device", exit_code=ExitCode.FAILURE)
    assert text is not None
    kept: list[str] = []
    removed = 0
    revoked: list[str] = []
    for raw in text.splitlines(keepends=True):
        parts = raw.split()
        if len(parts) == 2 and not parts[0].startswith("#") and parts[1] == device:
            removed += 1
            revoked.append(parts[0])
            if kept and _ADDED.match(kept[-1].strip()):
                kept.pop()
            continue
        kept.append(raw)
    atomic_write(path, "".join(kept), mode=0o600)
    return {"device": device, "removed": removed, "file": str(path),
            "enforced": settings.gateway.tokens,
            "gateway": _after_change(settings, [(tok, device) for tok in revoked], accepted=False)}
