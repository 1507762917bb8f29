"""`ai-server install` / `uninstall`: plan → apply (atomic, rolled back on failure) → verify.

The plan is the files to write (with diffs) and the service commands to run; re-running with
the same settings gives an empty plan. Every step that can fail is undone as a whole.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aicommon.errors import AiError, ExitCode
from aicommon.fsutil import atomic_write, make_dirs, remove_created_dirs, restore_file
from aicommon.paths import AppPaths, server_paths
from aiserver import linger, preflight, services, system
from aiserver.services import Manager, ServiceSpec
from aiserver.settings import Settings, load, parse, split_hostport, to_toml

MANIFEST = "install.json"
SERVICE_PATH = "/usr/bin:/bin:/usr/sbin:/sbin"


@dataclass(frozen=True)
class Options:
    context_length: int | None = None
    keep_alive: str | None = None
    models: tuple[str, ...] | None = None
    tokens: bool = False
    profiles: tuple[str, ...] = ()


@dataclass
class FileChange:
    path: Path
    old: str | None
    new: str
    mode: int
    purpose: str

    def diff(self) -> str:
        old = [] if self.old is None else self.old.splitlines(keepends=True)
        lines = difflib.unified_diff(old, self.new.splitlines(keepends=True),
                                     fromfile=str(self.path) if self.old is not None
                                     else "/dev/null", tofile=str(self.path))
        return "".join(lines)


@dataclass
class Action:
    spec: ServiceSpec
    manager: Manager
    verb: str  # start | restart | reload
    was_running: bool

    def describe(self) -> str:
        if self.verb == "reload":
            return "ai-server reload (graceful: live streams finish)"
        if isinstance(self.manager, services.Brew):
            return f"brew services {self.verb} {self.spec.formula}"
        if isinstance(self.manager, services.Launchd):
            return (f"launchctl bootstrap gui/{system.uid()} "
                    f"{self.manager.definition_path(self.spec)}")
        unit = self.manager.definition_path(self.spec).name
        return (f"systemctl --user {'restart' if self.verb == 'restart' else 'enable --now'} "
                f"{unit}")


@dataclass
class Plan:
    settings: Settings
    config_file: Path
    files: list[FileChange]
    actions: list[Action]
    notes: list[str]
    checks: list[preflight.Check]
    specs: dict[str, tuple[ServiceSpec, Manager]] = field(default_factory=dict)
    linger: str | None = None  # Linux: the user to enable lingering for (it is off)

    @property
    def empty(self) -> bool:
        return not self.files and not self.actions and self.linger is None

    def as_dict(self, with_diffs: bool = False) -> dict[str, Any]:
        return {
            "changes": not self.empty,
            "files": [{"path": str(f.path), "purpose": f.purpose, "new": f.old is None,
                       **({"diff": f.diff()} if with_diffs else {})} for f in self.files],
            "commands": [*([linger.describe(self.linger)] if self.linger else []),
                         *(a.describe() for a in self.actions)],
            "notes": self.notes,
            "checks": [c.as_dict() for c in self.checks],
            "services": {k: m.name for k, (_, m) in self.specs.items()},
        }


def _failpoint(step: str) -> None:
    """Testing aid: AI_SERVER_FAILPOINT=<step> makes that step fail (proves the rollback)."""
    if os.environ.get("AI_SERVER_FAILPOINT") == step:
        raise AiError(f"injected failure at {step}", code="install.failpoint")


def ai_server_bin() -> str:
    override = os.environ.get("AI_SERVER_BIN")
    if override:
        return override
    found = shutil.which("ai-server")
    return found or str(Path(sys.argv[0]).absolute())


def desired_settings(config_file: Path, opts: Options) -> tuple[Settings, list[str]]:
    notes: list[str] = []
    current = load(config_file) if config_file.exists() else None
    base = current or parse("", str(config_file))
    o = base.ollama
    if opts.context_length is not None:
        o = replace(o, context_length=opts.context_length)
    elif current is None:
        lowered, note = preflight.context_for_memory(o.context_length, system.memory_bytes())
        o = replace(o, context_length=lowered)
        if note:
            notes.append(note)
    claude_note = preflight.claude_context_note(o.context_length)
    if claude_note:
        notes.append(claude_note)
    if opts.keep_alive is not None:
        o = replace(o, keep_alive=opts.keep_alive)
    if opts.models is not None:
        o = replace(o, warm=opts.models)
    g = base.gateway
    userspace_note = _userspace_upstream_note(g.upstream)
    if userspace_note:
        g = replace(g, upstream=preflight.userspace_upstream(g.upstream))
        notes.append(userspace_note)
    if opts.tokens:
        g = replace(g, tokens=True)
    if opts.profiles:
        g = replace(g, profiles=tuple(dict.fromkeys((*g.profiles, *opts.profiles))))
    new = replace(base, gateway=g, ollama=o, source=str(config_file))
    # round-trip through TOML so whatever is written is exactly what validates
    return parse(to_toml(new), str(config_file)), notes


def settings_text(old_text: str | None, settings: Settings, config_file: Path) -> str:
    """The new settings file: the user's own file edited in place (comments, order and
    layout kept, only changed values touched), or a complete file when there is none."""
    if old_text is None:
        return to_toml(settings)
    from aicommon.tomledit import edit

    text = edit(old_text, parse(old_text, str(config_file)).as_dict(), settings.as_dict())
    if parse(text, str(config_file)) != settings:  # never write what does not read back
        raise AiError(f"could not edit {config_file} in place", "edit it by hand and re-run",
                      code="install.settings_edit")
    return text


def _userspace_upstream_note(upstream: str) -> str | None:
    """In Tailscale userspace mode Ollama must leave 127.0.0.1 (tailscaled delivers there)."""
    from aicommon import tailscale

    try:
        tun = tailscale.status().tun
    except AiError:
        return None  # the preflight reports Tailscale itself
    if tun or not preflight.reached_by_userspace_tailscaled(upstream):
        return None
    moved = preflight.userspace_upstream(upstream)
    return (f"Tailscale runs in userspace networking: it delivers tailnet connections for every "
            f"allowed port to 127.0.0.1, so Ollama moves from {upstream} to {moved} (never "
            f"targeted); the gateway alone listens on 127.0.0.1. Local `ollama` commands need "
            f"OLLAMA_HOST={moved}")


def service_specs(settings: Settings, paths: AppPaths, config_file: Path,
                  ollama_bin: str) -> dict[str, ServiceSpec]:
    o, g = settings.ollama, settings.gateway
    brew = system.find_brew()
    search = [SERVICE_PATH]
    for prog in (ollama_bin, shutil.which("haproxy"), shutil.which("tailscale"), brew):
        if prog:
            d = str(Path(prog).parent)
            if d not in search:
                search.insert(0, d)
    path_env = ":".join(search)
    ollama_env = [("OLLAMA_HOST", g.upstream), ("OLLAMA_CONTEXT_LENGTH", str(o.context_length)),
                  ("OLLAMA_KEEP_ALIVE", o.keep_alive)]
    if o.no_cloud:
        ollama_env.append(("OLLAMA_NO_CLOUD", "1"))
    if o.flash_attention:
        ollama_env.append(("OLLAMA_FLASH_ATTENTION", "1"))
    ollama_env += [("OLLAMA_KV_CACHE_TYPE", o.kv_cache_type), ("PATH", path_env)]
    gateway_env = [("PATH", path_env)]
    for var in ("AI_SERVER_HOME", "AI_TAILSCALE", "AI_SERVER_HAPROXY", "SHIV_ROOT"):
        if os.environ.get(var):  # keep the install's own overrides for the service
            gateway_env.append((var, os.environ[var]))
    logs = paths.log_dir
    return {
        "ollama": ServiceSpec("ollama", "Ollama bound to loopback for ai-server",
                              (ollama_bin, "serve"), tuple(ollama_env), logs / "ollama.log",
                              logs / "ollama.log", paths.state_dir, formula="ollama"),
        "gateway": ServiceSpec("gateway", "ai-server gateway (HAProxy on Tailscale addresses)",
                               (ai_server_bin(), "--config", str(config_file), "run"),
                               tuple(gateway_env), logs / "gateway.log",
                               logs / "gateway.err.log", paths.state_dir, formula="ai-server"),
    }


def brew_spec(spec: ServiceSpec, paths: AppPaths) -> ServiceSpec:
    """The spec of a service Homebrew runs from the formula's own `service do` block: what we
    want differs from the formula only by environment variables, which go into Homebrew's
    per-user env file. Ollama: our OLLAMA_* settings (the formula sets FLASH_ATTENTION and
    KV_CACHE_TYPE; ours win). ai-server: the formula runs `ai-server run` with the default
    settings path, so a different one goes in as AI_SERVER_CONFIG."""
    env = [(k, v) for k, v in spec.env if k != "PATH"]
    argv = spec.argv
    if spec.key == "ollama":
        env = [(k, v) for k, v in env if k != "OLLAMA_FLASH_ATTENTION"]
        flash = dict(spec.env).get("OLLAMA_FLASH_ATTENTION") == "1"
        env.append(("OLLAMA_FLASH_ATTENTION", "1" if flash else "0"))
    elif spec.key == "gateway" and "--config" in argv:
        config = argv[argv.index("--config") + 1]
        argv = (argv[0], "run")
        if Path(config) != paths.config_file:
            env.append(("AI_SERVER_CONFIG", config))
    return replace(spec, argv=argv, env=tuple(env), stdout=Path(), stderr=Path())


def choose_managers(specs: dict[str, ServiceSpec], paths: AppPaths
                    ) -> dict[str, tuple[ServiceSpec, Manager]]:
    platform = system.platform_name()
    services.require_manager(platform)
    home = Path.home()
    brew = system.find_brew()
    chosen: dict[str, tuple[ServiceSpec, Manager]] = {}
    for key, spec in specs.items():
        manager: Manager
        if brew and spec.formula and services.brew_has(brew, spec.formula):
            manager = services.Brew(brew, platform)
            spec = brew_spec(spec, paths)
        else:
            manager = services.direct_manager(platform, home)
        chosen[key] = (spec, manager)
    return chosen


def check_brew_env_files(chosen: dict[str, tuple[ServiceSpec, Manager]]) -> None:
    """Homebrew older than 6.0.15 ignores the env file: a `brew services restart` would then
    silently drop our settings, so refuse rather than pretend."""
    needs = [s.formula for s, m in chosen.values() if isinstance(m, services.Brew) and s.env]
    brew = system.find_brew()
    if not needs or brew is None:
        return
    version = services.brew_version(brew)
    if version is not None and version < services.BREW_ENV_FILES_SINCE:
        have = ".".join(map(str, version))
        raise AiError(f"Homebrew {have} cannot keep ai-server's settings for "
                      f"{', '.join(map(str, needs))} across `brew services restart` "
                      "(per-service env files need Homebrew 6.0.15 or newer)",
                      "run `brew update`, then `ai-server install` again",
                      code="brew.too_old", exit_code=ExitCode.UNAVAILABLE)


def service_report(settings: Settings, cfg: Path) -> dict[str, dict[str, Any]]:
    """Each service as it is loaded and running, and how that differs from what install
    wants (for status, doctor and audit)."""
    paths = server_paths()
    ollama_bin = preflight.ollama_binary(settings) or "ollama"
    chosen = choose_managers(service_specs(settings, paths, cfg, ollama_bin), paths)
    out: dict[str, dict[str, Any]] = {}
    for key, (spec, manager) in chosen.items():
        st = manager.state(spec)
        loaded = (manager.installed_path(spec) if isinstance(manager, services.Brew)
                  else manager.definition_path(spec))
        definition = manager.loaded(spec)
        out[key] = {"manager": st.manager, "running": st.running, "pid": st.pid,
                    "state": st.detail, "definition": str(loaded),
                    "error_log": definition.stderr if definition else None,
                    "settings_file": str(manager.definition_path(spec)),
                    "differences": services.differences(spec, manager, st)}
    return out


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def preflight_error(bad: list[preflight.Check]) -> AiError:
    """Every failed check with its fix, in one line (exit 5, or 4 when only settings can fix
    it: the userspace-networking port clash)."""
    listed = "; ".join(f"{c.name}: {c.detail}" + (f" (fix: {c.fix})" if c.fix else "")
                       for c in bad)
    only_settings = all(c.name == "tailscale-tun" for c in bad)
    return AiError(f"preflight failed: {listed}",
                   "fix these and run `ai-server install` again (`--dry-run` shows the plan)",
                   code=f"preflight.{bad[0].name}",
                   exit_code=ExitCode.CONFIG if only_settings else ExitCode.UNAVAILABLE,
                   details=[{"code": f"preflight.{c.name}", "message": f"{c.name}: {c.detail}",
                             "hint": c.fix or None} for c in bad])


def build_plan(config_file: Path | None, opts: Options, *, dry_run: bool = False) -> Plan:
    """The plan; failed preflight checks raise, except in a dry run (they are in plan.checks
    and the caller reports them after the plan)."""
    paths = server_paths()
    cfg = config_file or paths.config_file
    settings, notes = desired_settings(cfg, opts)
    checks = preflight.preflight(settings)
    bad = preflight.failures(checks)
    if bad and not dry_run:
        raise preflight_error(bad)
    ollama_bin = preflight.ollama_binary(settings) or "ollama"  # dry run without Ollama
    chosen = choose_managers(service_specs(settings, paths, cfg, ollama_bin), paths)
    check_brew_env_files(chosen)
    files: list[FileChange] = []
    old_settings = _read(cfg)
    settings_changed = old_settings is None or parse(old_settings, str(cfg)) != settings
    if settings_changed:
        files.append(FileChange(cfg, old_settings, settings_text(old_settings, settings, cfg),
                                0o644, "settings"))
    if settings.gateway.tokens:
        from aiserver.gateway.paths import token_file

        tokens = token_file(settings)
        if not tokens.exists():
            files.append(FileChange(tokens, None, "# ai-server device tokens: <token> <device>\n"
                                    "# add one with `ai-server tokens add <device>`\n", 0o600,
                                    "token map"))
            notes.append("tokens are on: add a device token with `ai-server tokens add DEVICE`")
    actions: list[Action] = []
    for key in ("ollama", "gateway"):
        spec, manager = chosen[key]
        target = manager.definition_path(spec)
        text = manager.render(spec)
        old = _read(target)
        changed = old != text and not (old is None and text == "")
        if changed:  # 0644: Homebrew skips a group- or world-writable env file
            files.append(FileChange(target, old, text, 0o644, f"{key} service ({manager.name})"))
        state = manager.state(spec)
        # what is loaded, not our copy: a `brew services restart` may have replaced it
        drift = services.differences(spec, manager, state) if state.running else []
        if not state.running:
            actions.append(Action(spec, manager, "start", False))
        elif changed or drift:
            actions.append(Action(spec, manager, "restart", True))
        elif key == "gateway" and settings_changed:
            actions.append(Action(spec, manager, "reload", True))
    plan = Plan(settings, cfg, files, actions, notes, checks, chosen)
    if system.platform_name() == "linux":  # user units run only while the user lingers
        user = linger.user_name()
        if linger.enabled(user) is not True:
            plan.linger = user
    return plan


@dataclass
class Applied:
    written: list[tuple[FileChange, int | None]] = field(default_factory=list)  # old mode
    created_dirs: list[Path] = field(default_factory=list)
    done: list[Action] = field(default_factory=list)
    linger: str | None = None  # lingering this run enabled


def _side_dirs(plan: Plan) -> list[Path]:
    seen: dict[Path, None] = {}
    for _, manager in plan.specs.values():
        for d in manager.side_dirs():
            seen[d] = None
    return list(seen)


def _note_side_dirs(plan: Plan, existed: set[Path], applied: Applied) -> None:
    """Directories the service managers created during this run are ours to remove later."""
    for d in _side_dirs(plan):
        if d not in existed and d.is_dir() and d not in applied.created_dirs:
            applied.created_dirs.append(d)


def _rollback(plan: Plan, applied: Applied, remove_trees: tuple[Path, ...] = ()) -> list[str]:
    """Undo a partial apply, in an order that never leaves a service stopped and
    unregistered: stop what we started (while its definition is still there), restore the
    files, then restart what was running -- but only from a definition that exists again
    (a restart first stops the service and only then looks for its file: restart.rb:29-40,
    cli.rb:122-128). Brew-managed services restart from the formula's own definition, which
    Homebrew regenerates with the restored env file."""
    problems = []
    started = [a for a in reversed(applied.done) if a.verb != "reload"]
    for action in started:
        if not action.was_running:
            try:
                action.manager.stop(action.spec)
            except AiError as exc:
                problems.append(f"stop {action.spec.key}: {exc.message}")
    for change, old_mode in reversed(applied.written):
        try:
            restore_file(change.path, change.old, old_mode)
        except (OSError, AiError) as exc:
            problems.append(f"restore {change.path}: {exc}")
    for action in started:
        if not action.was_running:
            continue
        if (not isinstance(action.manager, services.Brew)
                and not action.manager.definition_path(action.spec).exists()):
            problems.append(f"restart {action.spec.key}: no previous definition to restart "
                            "from (left running as it is)")
            continue
        try:
            action.manager.start(action.spec, restart=True)
        except AiError as exc:
            problems.append(f"restart {action.spec.key}: {exc.message}")
    for tree in remove_trees:  # written by services we started (not by this process)
        shutil.rmtree(tree, ignore_errors=True)
    remove_created_dirs(applied.created_dirs)
    if applied.linger:
        try:
            linger.disable(applied.linger)
        except AiError as exc:
            problems.append(f"disable lingering: {exc.message}")
    return problems


def log_tail(path: Path, lines: int = 3) -> str:
    """The last non-empty lines of a service's error log, joined for a one-line message."""
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, path.stat().st_size - 16384))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    tail = [line.strip()[:300] for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(tail)


def exited(spec: ServiceSpec, manager: Manager) -> Callable[[], str | None]:
    """A check for wait_http: why the service is gone (None while it runs). Two readings in a
    row say "not running" before we believe it (a service manager may report a start late)."""
    misses: list[str] = []

    def check() -> str | None:
        state = manager.state(spec)
        if state.running:
            misses.clear()
            return None
        misses.append(state.detail)
        if len(misses) < 2:
            return None
        tail = log_tail(spec.stderr)
        return (f"the {spec.key} service exited (state {state.detail}) before it answered"
                + (f"; {spec.stderr} ends with: {tail}" if tail
                   else f"; {spec.stderr} is empty"))

    return check


def wait_http(url: str, ok: Callable[[int], bool], timeout: float, what: str,
              gone: Callable[[], str | None] | None = None) -> None:
    from aicommon.httpclient import request

    deadline = time.monotonic() + timeout
    last = ""
    while True:
        try:
            status = request("GET", url, timeout=(1.0, 5.0), what=what).status
            if ok(status):
                return
            last = f"HTTP {status}"
        except AiError as err:
            last = err.message
        why = gone() if gone is not None else None
        if why is not None:
            raise AiError(why, "fix what the log says, then run `ai-server install` again",
                          code="install.service_exited", exit_code=ExitCode.UNAVAILABLE)
        if time.monotonic() >= deadline:
            raise AiError(f"{what} did not become healthy within {timeout:g} s ({last})",
                          "look at the service log in the log directory (`ai-server paths`)",
                          code="install.unhealthy", exit_code=ExitCode.UNAVAILABLE)
        time.sleep(0.25)


def gateway_urls(settings: Settings) -> list[str]:
    from aiserver.gateway.control import resolve_listen

    urls = []
    for addr in resolve_listen(settings, 0).addresses:
        host = f"[{addr}]" if ":" in addr else addr
        urls.append(f"http://{host}:{settings.gateway.port}/api/version")
    return urls


def verify(settings: Settings, timeout: float,
           specs: dict[str, tuple[ServiceSpec, Manager]] | None = None) -> None:
    """Wait for Ollama and the gateway to answer; stop early when a service has exited."""
    def gone(key: str) -> Callable[[], str | None] | None:
        return exited(*specs[key]) if specs and key in specs else None

    host, port = split_hostport(settings.gateway.upstream)
    h = f"[{host}]" if ":" in host else host
    wait_http(f"http://{h}:{port}/api/version", lambda s: s == 200, timeout, "Ollama",
              gone("ollama"))
    for url in gateway_urls(settings):  # 401 proves the gateway answers when tokens are on
        wait_http(url, lambda s: s in (200, 401), timeout, f"the gateway at {url}",
                  gone("gateway"))


def apply(plan: Plan, verify_timeout: float = 60.0) -> None:
    paths = server_paths()
    applied = Applied()
    existed = {d for d in _side_dirs(plan) if d.is_dir()}
    gateway_state = paths.state_dir / "gateway"  # what `ai-server run` renders
    gateway_state_existed = gateway_state.exists()
    step = "start"
    try:
        for change in plan.files:
            step = f"write {change.purpose}"
            _failpoint(step)
            make_dirs(change.path.parent, applied.created_dirs)
            try:
                old_mode = stat.S_IMODE(change.path.stat().st_mode)
            except FileNotFoundError:
                old_mode = None
            atomic_write(change.path, change.new, mode=change.mode)
            applied.written.append((change, old_mode))
        for d in (paths.log_dir, paths.state_dir):
            make_dirs(d, applied.created_dirs)
        if plan.linger:
            step = "enable lingering"
            _failpoint(step)
            linger.enable(plan.linger)
            applied.linger = plan.linger
        for action in plan.actions:
            step = f"{action.verb} {action.spec.key}"
            _failpoint(step)
            applied.done.append(action)
            if action.verb == "reload":
                from aiserver.gateway.control import reload

                reload(plan.settings, 30)
            else:
                action.manager.start(action.spec, restart=action.verb == "restart")
        step = "verify"
        _failpoint(step)
        verify(plan.settings, verify_timeout, plan.specs)
    except (AiError, OSError) as exc:
        message = exc.message if isinstance(exc, AiError) else str(exc)
        _note_side_dirs(plan, existed, applied)
        problems = _rollback(plan, applied,
                             () if gateway_state_existed else (gateway_state,))
        tail = ("previous state restored" if not problems
                else "restoring failed for: " + "; ".join(problems))
        raise AiError(f"install failed at step '{step}': {message}; {tail}",
                      "fix the cause and run `ai-server install` again",
                      code="install.failed", exit_code=ExitCode.FAILURE) from None
    _note_side_dirs(plan, existed, applied)
    _write_manifest(plan, applied, paths)


def _write_manifest(plan: Plan, applied: Applied, paths: AppPaths) -> None:
    manifest_path = paths.state_dir / MANIFEST
    old = json.loads(_read(manifest_path) or "{}")
    files = set(old.get("files", []))
    brew_env = {str(m.definition_path(s)) for s, m in plan.specs.values()
                if isinstance(m, services.Brew)}  # shared with the user: edited, not owned
    files.update(str(c.path) for c, _ in applied.written if c.purpose != "settings"
                 and c.purpose != "token map" and str(c.path) not in brew_env)
    dirs = list(dict.fromkeys([*old.get("created_dirs", []),
                               *(str(d) for d in applied.created_dirs)]))
    data = {
        "files": sorted(files),
        "created_dirs": dirs,
        "settings": str(plan.config_file),
        "services": {k: {"manager": m.name, "definition": str(m.definition_path(s))}
                     for k, (s, m) in plan.specs.items()},
    }
    if applied.linger or old.get("linger"):  # uninstall disables only what install enabled
        data["linger"] = applied.linger or old["linger"]
    atomic_write(manifest_path, json.dumps(data, indent=2) + "\n")


def uninstall(config_file: Path | None, purge: bool) -> dict[str, Any]:
    """Stop and unregister both services; remove what install wrote. Models are kept."""
    paths = server_paths()
    cfg = config_file or paths.config_file
    manifest_path = paths.state_dir / MANIFEST
    manifest = json.loads(_read(manifest_path) or "{}")
    settings = load(cfg) if cfg.exists() else parse("", str(cfg))
    ollama_bin = preflight.ollama_binary(settings) or "ollama"
    chosen = choose_managers(service_specs(settings, paths, cfg, ollama_bin), paths)
    stopped = []
    if manifest.get("warm_job"):
        warm = warm_spec(cfg, (), None, "-1")
        direct = services.direct_manager(system.platform_name(), Path.home())
        if direct.definition_path(warm).exists():
            direct.stop(warm)
            stopped.append("warm")
    for key in ("gateway", "ollama"):
        spec, manager = chosen[key]
        if manager.state(spec).running or manager.definition_path(spec).exists():
            manager.stop(spec)
            stopped.append(key)
    lingering: dict[str, Any] | None = None
    if manifest.get("linger"):  # install enabled it: switch it off again
        lingering = {"user": manifest["linger"], "disabled": True}
        try:
            linger.disable(manifest["linger"])
        except AiError as exc:
            lingering.update(disabled=False, error=exc.message,
                             hint=f"sudo loginctl disable-linger {manifest['linger']}")
    # A gateway still running from this state (`ai-server run` outside the services) is
    # stopped first and named: its state is never deleted under it.
    from aiserver.gateway import control

    kept_state = False
    pid = control.running_master(settings)
    if pid is not None:
        if control.is_haproxy(pid) and control.stop_master(pid):
            stopped.append(f"gateway started by `ai-server run` (HAProxy master pid {pid})")
        else:
            kept_state = True
    removed = []
    for spec, manager in chosen.values():  # our block out of Homebrew's env file
        if isinstance(manager, services.Brew):
            env_file = manager.definition_path(spec)
            text = _read(env_file)
            if text is not None and services.strip_env_block(text) != text:
                rest = services.strip_env_block(text)
                if rest.strip():
                    atomic_write(env_file, rest, mode=0o644)
                else:
                    env_file.unlink()
                removed.append(f"{env_file} (ai-server's block)")
    for f in [*manifest.get("files", []),
              *(str(m.definition_path(s)) for s, m in chosen.values()
                if not isinstance(m, services.Brew))]:
        p = Path(f)
        if p.exists() or p.is_symlink():
            p.unlink()
            removed.append(str(p))
    gw_dir = paths.state_dir / "gateway"
    if kept_state:
        raise AiError(f"a process (pid {pid}) still runs from the gateway state in {gw_dir} and "
                      "could not be stopped as HAProxy; its state was kept",
                      f"stop it (kill {pid}), then run `ai-server uninstall` again",
                      code="uninstall.gateway_running", exit_code=ExitCode.FAILURE)
    if gw_dir.exists():
        shutil.rmtree(gw_dir)
        removed.append(str(gw_dir))
    if manifest_path.exists():
        manifest_path.unlink()
    kept = [str(cfg), str(paths.log_dir)]
    if purge:
        from aiserver.gateway.paths import token_file

        for p in (cfg, token_file(settings)):
            if p.exists():
                p.unlink()
                removed.append(str(p))
        for d in (paths.log_dir, paths.state_dir / "services", paths.state_dir):
            if d.exists():
                shutil.rmtree(d)
                removed.append(str(d))
        kept = []
    remove_created_dirs(manifest.get("created_dirs", []))
    if purge:  # our own directories, once empty, go too (whoever made them)
        remove_created_dirs([paths.config_dir])
    return {"stopped": stopped, "removed": removed, "kept": kept, "models": "kept",
            "linger": lingering}


def client_command(settings: Settings) -> str:
    """What to run on each laptop: `ai-client setup --server <MagicDNS name>`."""
    from aicommon import tailscale

    try:
        name = tailscale.status().dns_name
    except AiError:
        name = ""
    port = "" if settings.gateway.port == 11434 else f" --port {settings.gateway.port}"
    return f"ai-client setup --server {name or '<this machine MagicDNS name>'}{port}"


def brew_pin(pin: bool) -> None:
    from aicommon.runner import run

    brew = system.find_brew()
    if brew is None:
        raise AiError("Homebrew is not installed, so there is nothing to pin",
                      "pinning applies to Ollama installed with `brew install ollama`",
                      code="brew.missing", exit_code=ExitCode.UNAVAILABLE)
    run([brew, "pin" if pin else "unpin", "ollama"], timeout=60)


def warm_spec(config_file: Path, names: tuple[str, ...], context_length: int | None,
              keep_alive: str) -> ServiceSpec:
    paths = server_paths()
    argv = [ai_server_bin(), "--config", str(config_file), "models", "warm", "--wait", "600",
            "--keep-alive", keep_alive]
    if context_length:
        argv += ["--context-length", str(context_length)]
    env = [("PATH", SERVICE_PATH)]
    if os.environ.get("AI_SERVER_HOME"):
        env.append(("AI_SERVER_HOME", os.environ["AI_SERVER_HOME"]))
    return ServiceSpec("warm", "ai-server: warm models once Ollama answers", (*argv, *names),
                       tuple(env), paths.log_dir / "warm.log", paths.log_dir / "warm.log",
                       paths.state_dir, daemon=False)


def install_warm_job(config_file: Path | None, names: tuple[str, ...],
                     context_length: int | None, keep_alive: str) -> dict[str, Any]:
    """A launchd agent / systemd user unit that runs `models warm` at every start."""
    paths = server_paths()
    cfg = config_file or paths.config_file
    platform = system.platform_name()
    services.require_manager(platform)
    manager = services.direct_manager(platform, Path.home())
    spec = warm_spec(cfg, names, context_length, keep_alive)
    target = manager.definition_path(spec)
    old = _read(target)
    applied = Applied()
    change = FileChange(target, old, manager.render(spec), 0o644, "warm job")
    try:
        make_dirs(target.parent, applied.created_dirs)
        make_dirs(paths.log_dir, applied.created_dirs)
        atomic_write(target, change.new, mode=0o644)
        applied.written.append((change, None if old is None else 0o644))
        applied.done.append(Action(spec, manager, "start", False))
        manager.start(spec, restart=False)
    except AiError as err:
        problems = _rollback(Plan(parse("", str(cfg)), cfg, [], [], [], []), applied)
        raise AiError(f"could not install the warm-up job: {err.message}"
                      + (f"; restoring failed for: {'; '.join(problems)}" if problems else ""),
                      err.hint, code="install.warm_job", exit_code=err.exit_code) from None
    manifest_path = paths.state_dir / MANIFEST
    data = json.loads(_read(manifest_path) or "{}")
    data.setdefault("files", [])
    if str(target) not in data["files"]:
        data["files"] = sorted([*data["files"], str(target)])
    data.setdefault("created_dirs", [])
    data["created_dirs"] += [str(d) for d in applied.created_dirs]
    data["warm_job"] = True
    atomic_write(manifest_path, json.dumps(data, indent=2) + "\n")
    return {"definition": str(target), "manager": manager.name,
            "command": services.shell_line(spec.argv)}
