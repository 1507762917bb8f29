"""`ai-server status` and `ai-server doctor`: what is running, and what would need fixing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from aicommon import tailscale
from aicommon.errors import AiError
from aicommon.paths import server_paths
from aicommon.runner import run
from aiserver import install, listeners, preflight, system
from aiserver.settings import Settings, load, parse, split_hostport

ERROR_LINE = re.compile(r"\b(error|ALERT|fatal|panic)\b", re.I)


def _settings(config: Path | None) -> tuple[Settings, Path]:
    cfg = config or server_paths().config_file
    return (load(cfg) if cfg.exists() else parse("", str(cfg))), cfg


def _ollama_url(settings: Settings) -> str:
    host, port = split_hostport(settings.gateway.upstream)
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def recent_errors(path: Path, limit: int = 5, scan: int = 400) -> list[str]:
    try:
        with path.open("rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - 256 * 1024))
            lines = fh.read().decode("utf-8", "replace").splitlines()[-scan:]
    except OSError:
        return []
    return [line.strip()[:300] for line in lines if ERROR_LINE.search(line)][-limit:]


def brew_pinned(formula: str = "ollama") -> bool | None:
    brew = system.find_brew()
    if not brew:
        return None
    done = run([brew, "list", "--pinned"], timeout=60, check=False)
    return formula in done.stdout.split()


def status(config: Path | None) -> dict[str, Any]:
    from aicommon.httpclient import request
    from aiserver.gateway.control import resolve_listen

    settings, cfg = _settings(config)
    paths = server_paths()
    data: dict[str, Any] = {"settings": str(cfg), "installed": (paths.state_dir
                                                                / install.MANIFEST).exists()}
    data["services"] = install.service_report(settings, cfg)
    _, socks = listeners.listening()
    _, up_port = split_hostport(settings.gateway.upstream)
    data["listening"] = [{"address": s.address, "port": s.port, "process": s.process}
                         for s in socks if s.port in (up_port, settings.gateway.port,
                                                       settings.gateway.metrics_port)]
    base = _ollama_url(settings)
    try:
        resp = request("GET", base + "/api/version", timeout=(1.0, 3.0), what="Ollama")
        data["ollama"] = {"version": resp.json().get("version"), "url": base}
        ps = request("GET", base + "/api/ps", timeout=(1.0, 3.0), what="Ollama").json()
        data["loaded_models"] = [{"name": m.get("name"), "expires_at": m.get("expires_at"),
                                  "context_length": m.get("context_length")}
                                 for m in ps.get("models") or []]
    except AiError as err:
        data["ollama"] = {"error": err.message, "url": base}
        data["loaded_models"] = []
    try:
        ts = tailscale.status()
        data["tailscale"] = {"state": ts.backend_state, "addresses": list(ts.addresses),
                             "tun": ts.tun, "name": ts.dns_name}
        if not ts.tun:
            data["tailscale"]["note"] = tailscale.USERSPACE_CLIENTS_NOTE
    except AiError as err:
        data["tailscale"] = {"error": err.message}
    try:
        data["gateway"] = {"addresses": list(resolve_listen(settings, 0).addresses),
                           "port": settings.gateway.port, "tokens": settings.gateway.tokens,
                           "profiles": list(settings.gateway.profiles)}
    except AiError as err:
        data["gateway"] = {"error": err.message}
    if settings.gateway.allow_other_listen:
        data["gateway"]["warning"] = "allow_other_listen = true"
    data["ollama_pinned"] = brew_pinned()
    data["linger"] = linger_state()
    # the error logs the loaded definitions name (Homebrew's var/log for brew services)
    logs = {key: Path(s["error_log"]) if s.get("error_log") else paths.log_dir / default
            for (key, default) in (("ollama", "ollama.log"), ("gateway", "gateway.err.log"))
            for s in [data["services"].get(key, {})]}
    data["recent_errors"] = {log.name: recent_errors(log) for log in logs.values()}
    return data


def linger_state() -> dict[str, Any] | None:
    """Linux: whether the user's services outlive their sessions (and start at boot)."""
    if system.platform_name() != "linux":
        return None
    from aiserver import linger

    user = linger.user_name()
    return {"user": user, "enabled": linger.enabled(user)}


def linger_text(state: dict[str, Any]) -> str:
    if state["enabled"]:
        return f"on for {state['user']}: the services start at boot and survive logout"
    if state["enabled"] is None:
        return f"unknown for {state['user']} (loginctl could not tell)"
    return (f"off for {state['user']}: the services stop at logout and do not start at boot "
            f"(`ai-server install` enables it)")


def linger_check() -> preflight.Check | None:
    state = linger_state()
    if state is None:
        return None
    status = (preflight.PASS if state["enabled"] else
              preflight.WARN if state["enabled"] is None else preflight.FAIL)
    return preflight.Check("linger", status, linger_text(state),
                           "" if state["enabled"] else
                           f"ai-server install  (or: sudo loginctl enable-linger {state['user']})")


def human_status(d: dict[str, Any]) -> str:
    lines = [f"settings   {d['settings']}" + ("" if d["installed"] else "  (not installed)")]
    for key, s in d["services"].items():
        mark = "running" if s["running"] else "stopped"
        lines.append(f"{key:<10} {mark} ({s['manager']}, pid {s['pid'] or '-'})")
        for diff in s["differences"]:
            lines.append(f"  differs  {diff}  (`ai-server install` restores it)")
    o = d["ollama"]
    lines.append("ollama     " + (f"{o['version']} at {o['url']}" if "version" in o
                                  else o["error"]))
    for m in d["loaded_models"]:
        lines.append(f"  loaded   {m['name']} (ctx {m['context_length']}, until "
                     f"{m['expires_at']})")
    g = d["gateway"]
    lines.append("gateway    " + (f"{', '.join(g['addresses'])} port {g['port']}"
                                  f"{' (tokens)' if g['tokens'] else ''}"
                                  if "addresses" in g else g["error"]))
    if g.get("warning"):
        lines.append(f"  WARNING  {g['warning']}")
    t = d["tailscale"]
    lines.append("tailscale  " + (f"{t['state']} {', '.join(t['addresses'])}"
                                  f"{'' if t['tun'] else ' (userspace)'}"
                                  if "state" in t else t["error"]))
    if t.get("note"):
        lines.append(f"  NOTE     {t['note']}")
    for s in d["listening"]:
        lines.append(f"listening  {s['address']}:{s['port']} {s['process']}")
    if d["linger"] is not None:
        lines.append(f"linger     {linger_text(d['linger'])}")
    if d["ollama_pinned"] is not None:
        lines.append(f"ollama pin {'pinned' if d['ollama_pinned'] else 'not pinned'}")
    for name, errs in d["recent_errors"].items():
        for e in errs:
            lines.append(f"error      {name}: {e}")
    return "\n".join(lines)


def doctor(config: Path | None) -> list[preflight.Check]:
    settings, cfg = _settings(config)
    paths = server_paths()
    checks = preflight.preflight(settings)
    checks.append(preflight.Check("settings", preflight.PASS, f"{cfg} is valid"
                                  if cfg.exists() else "no settings file: defaults apply",
                                  "" if cfg.exists() else "ai-server install"))
    ollama_bin = preflight.ollama_binary(settings) or "ollama"
    chosen = install.choose_managers(install.service_specs(settings, paths, cfg, ollama_bin),
                                     paths)
    try:
        install.check_brew_env_files(chosen)
    except AiError as err:
        checks.append(preflight.Check("homebrew-env-file", preflight.FAIL, err.message,
                                      err.hint or ""))
    report = install.service_report(settings, cfg)
    for key, (spec, manager) in chosen.items():
        target = manager.definition_path(spec)
        s = report[key]
        if not s["running"]:
            checks.append(preflight.Check(f"{key}-running", preflight.FAIL,
                                          f"{s['state']} ({manager.name})", "ai-server install"))
            continue
        if s["differences"]:
            checks.append(preflight.Check(
                f"{key}-service", preflight.WARN,
                f"the loaded service differs from the settings: {'; '.join(s['differences'])}",
                "ai-server install  (restores it)"))
        else:
            checks.append(preflight.Check(f"{key}-service", preflight.PASS,
                                          f"{s['definition']} (loaded) matches the settings"
                                          + (f" ({target})" if str(target) != s["definition"]
                                             else "")))
        checks.append(preflight.Check(f"{key}-running", preflight.PASS,
                                      f"{s['state']} ({manager.name})"))
    lingering = linger_check()
    if lingering is not None:
        checks.append(lingering)
    return checks
