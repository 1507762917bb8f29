"""`ai-client setup` / `uninstall`: plan every file (with diffs), apply atomically, roll back
as a whole on failure; uninstall removes exactly what setup wrote."""

from __future__ import annotations

import difflib
import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aiclient import discovery, envfile, shellrc
from aiclient.settings import (
    Client,
    ClientSettings,
    Server,
    check_host,
    check_token,
    parse,
    to_toml,
)
from aiclient.settings import load as load_settings
from aiclient.tools import aider, claude
from aicommon import tailscale
from aicommon.errors import AiError, ExitCode
from aicommon.fsutil import atomic_write, make_dirs, remove_created_dirs, restore_file
from aicommon.paths import client_paths

MANIFEST = "setup.json"


@dataclass(frozen=True)
class Options:
    server: str | None = None
    port: int | None = None
    model: str | None = None
    token: str | None = None
    shell: str = "auto"
    scope: str | None = None
    claude: bool | None = None
    skip_permissions: bool = False


@dataclass
class FileChange:
    path: Path
    before: str | None
    after: str | None  # None = delete
    mode: int
    purpose: str

    def diff(self) -> str:
        return "".join(difflib.unified_diff(
            (self.before or "").splitlines(keepends=True),
            (self.after or "").splitlines(keepends=True),
            fromfile=str(self.path) if self.before is not None else "/dev/null",
            tofile=str(self.path) if self.after is not None else "/dev/null"))


@dataclass
class Plan:
    settings: ClientSettings
    config_file: Path
    files: list[FileChange]
    rc: list[shellrc.RcChange]
    notes: list[str]
    aider_keys: list[str]
    probe: discovery.Probe | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()  # device tokens (old and new): masked in every diff

    @property
    def empty(self) -> bool:
        return not self.files and not any(c.changed for c in self.rc)

    def as_dict(self, with_diffs: bool = False) -> dict[str, Any]:
        from aicommon.redact import redact

        files = [{"path": str(f.path), "purpose": f.purpose,
                  "action": "delete" if f.after is None else
                  "create" if f.before is None else "update",
                  **({"diff": redact(f.diff(), self.secrets)} if with_diffs else {})}
                 for f in self.files]
        files += [{"path": str(c.target.path), "purpose": f"{c.target.shell} ({c.target.reason})",
                   "action": "update" if c.before is not None else "create",
                   **({"diff": redact(c.diff(), self.secrets)} if with_diffs else {})}
                  for c in self.rc if c.changed]
        s = self.settings
        return {"changes": not self.empty, "server": s.base_url, "model": s.model,
                "context_length": s.server.context_length, "scope": s.client.scope,
                "shells": list(s.client.shells), "files": files, "notes": self.notes}


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def bin_dir() -> Path:
    return client_paths().state_dir / "bin"


def manifest_path() -> Path:
    return client_paths().state_dir / MANIFEST


def read_manifest() -> dict[str, Any]:
    text = _read(manifest_path())
    return json.loads(text) if text else {}


def _choose_host(opts: Options, current: ClientSettings | None,
                 ask_server: Callable[[list[tailscale.Peer]], tailscale.Peer] | None) -> str:
    if opts.server:
        return check_host(opts.server)
    if current is not None and current.server.host:
        return current.server.host
    found = discovery.tagged_servers()
    chosen = discovery.choose_server(found)
    if chosen is None:
        names = ", ".join(p.address for p in found)
        if ask_server is None:
            raise AiError(f"several servers are tagged tag:ai-server: {names}",
                          "pick one with --server NAME", code="discovery.several",
                          exit_code=ExitCode.USAGE)
        chosen = ask_server(found)
    if not chosen.online:
        raise AiError(f"the server {chosen.address} is offline on the tailnet",
                      "wake or start it, or pass --server", code="discovery.offline",
                      exit_code=ExitCode.UNAVAILABLE)
    return check_host(chosen.address)


def _choose_model(opts: Options, current: ClientSettings | None, probe: discovery.Probe,
                  ask_model: Callable[[list[str]], str] | None, notes: list[str]) -> str:
    if not probe.models:
        raise AiError(f"the server at {probe.base_url} has no models",
                      "on the server: `ollama pull qwen3-coder:30b` (or `ai-server models pull`)",
                      code="setup.no_models", exit_code=ExitCode.UNAVAILABLE)
    chat = discovery.chat_models(probe)
    if opts.model:
        if opts.model not in probe.models:
            raise AiError(f"the server has no model {opts.model!r}",
                          "available: " + ", ".join(probe.models), code="setup.model",
                          exit_code=ExitCode.USAGE)
        if opts.model not in chat:
            caps = ", ".join(probe.capabilities.get(opts.model, [])) or "none"
            raise AiError(f"{opts.model} cannot be the chat model: it lacks the 'completion' "
                          f"capability (it has: {caps})",
                          "usable: " + (", ".join(chat) or "none on this server (pull one: "
                                        "`ai-server models pull qwen3-coder:30b`)"),
                          code="setup.model_cannot_chat", exit_code=ExitCode.USAGE)
        return opts.model
    if current is not None and current.model in chat:
        return current.model
    if not chat:
        raise AiError(f"the server at {probe.base_url} has no chat model (only "
                      f"{', '.join(probe.models)})",
                      "on the server: `ai-server models pull qwen3-coder:30b`",
                      code="setup.no_chat_model", exit_code=ExitCode.UNAVAILABLE)
    capable = discovery.tools_models(probe)
    if not capable:
        notes.append("no model on the server has the tools capability: Claude Code needs it "
                     f"(using {chat[0]})")
        return chat[0]
    if len(capable) > 1 and ask_model is not None:
        return ask_model(capable)
    return capable[0]


def claude_context_problem(context: int) -> str | None:
    """"Claude Code cannot work with context N (needs >= M)" for the installed Claude Code
    (any version the rules cover when it is not installed), or None."""
    from aiclient import compat
    from aiclient.health import tool_version

    text = tool_version("claude")
    try:
        version = compat.parse_version(text) if text and text != "unknown" else None
    except AiError:
        version = None
    return compat.context_problem(context, compat.min_context(compat.load_rules(), version))


def build_plan(config_file: Path | None, opts: Options, *,
               ask_server: Callable[[list[tailscale.Peer]], tailscale.Peer] | None = None,
               ask_model: Callable[[list[str]], str] | None = None) -> Plan:
    cfg = config_file or client_paths().config_file
    current = load_settings(cfg) if cfg.exists() else None
    notes: list[str] = []
    host = _choose_host(opts, current, ask_server)
    port = opts.port or (current.server.port if current else 11434)
    blocked = discovery.local_tailscale_problem(host)  # e.g. userspace networking here
    if blocked is not None:
        raise blocked
    host, moved = discovery.usable_host(host, port)
    if moved:
        notes.append(moved)
    token = check_token(opts.token if opts.token is not None
                        else (current.server.token if current else ""))
    probe = discovery.probe(host, port, token)
    model = _choose_model(opts, current, probe, ask_model, notes)
    ctx, how = discovery.context_for(probe, model)
    notes.append(f"context length {ctx} ({how})")
    prev_client = current.client if current else Client()
    targets = shellrc.targets_from_environ(opts.shell)
    settings = parse(to_toml(ClientSettings(
        Server(host, port, token, ctx, probe.version, probe.native_api),
        replace(prev_client, model=model, scope=opts.scope or prev_client.scope,
                shells=tuple(dict.fromkeys(t.shell for t in targets)),
                claude=opts.claude if opts.claude is not None else prev_client.claude,
                skip_permissions=opts.skip_permissions))), str(cfg))
    files: list[FileChange] = []

    def want(path: Path, text: str | None, mode: int, purpose: str) -> None:
        before = _read(path)
        mode_ok = before is None or stat.S_IMODE(path.stat().st_mode) == mode
        differs = before != text or (text is not None and not mode_ok)
        if differs and not (before is None and text is None):
            files.append(FileChange(path, before, text, mode, purpose))

    old_text = _read(cfg)
    want(cfg, settings_text(old_text, settings, cfg), 0o600, "settings (holds the token)")
    env = envfile.ClientEnv(settings.base_url, settings.api_key, model, settings.client.scope,
                            bin_dir(), settings.server.native_api)
    for path, text in envfile.env_files(env):
        want(path, text, 0o600, "environment file")
    wrapper = bin_dir() / claude.WRAPPER_NAME
    claude_settings = bin_dir() / claude.SETTINGS_NAME
    refusal = claude_context_problem(ctx) if settings.client.claude else None
    if refusal:
        from aiclient.compat import CONTEXT_FIX

        notes.append(f"{refusal}; claude-ollama will refuse to start. Fix: {CONTEXT_FIX}")
    want(wrapper, claude.render_wrapper(settings.base_url, token, model, ctx,
                                        settings.client.skip_permissions,
                                        settings_file=claude_settings,
                                        context_refusal=refusal)
         if settings.client.claude else None, 0o700, "claude-ollama wrapper")
    want(claude_settings, claude.render_settings(settings.base_url, token, model, ctx)
         if settings.client.claude else None, 0o600, "claude-ollama settings (--settings)")
    meta_path = aider.metadata_path(Path.home())
    manifest = read_manifest()
    # chat entries only for models that can chat (not embedding-only ones)
    contexts = {m: discovery.context_for(probe, m)[0] for m in discovery.chat_models(probe)}
    doc, owned = aider.merge(aider.read(meta_path), contexts, manifest.get("aider_keys", []))
    skipped = [m for m in contexts if f"openai/{m}" not in owned]
    if skipped:
        notes.append("kept your own Aider metadata for " + ", ".join(skipped))
    current_meta = _read(meta_path)
    new_meta = aider.dumps(doc)
    if current_meta is None or json.loads(current_meta or "{}") != doc:
        files.append(FileChange(meta_path, current_meta, new_meta,
                                stat.S_IMODE(meta_path.stat().st_mode) if current_meta
                                is not None else 0o644, "Aider model metadata"))
    rc = shellrc.plan_install(targets, *envfile.env_file_paths(), Path.home())
    return Plan(settings, cfg, files, rc, notes, owned, probe, manifest,
                (token, current.server.token if current else ""))


def settings_text(old_text: str | None, settings: ClientSettings, config_file: Path) -> str:
    """The user's settings file edited in place (comments and order kept, only changed values
    touched), or a complete new file."""
    if old_text is None:
        return to_toml(settings)
    from aicommon.tomledit import edit

    text = edit(old_text, parse(old_text, str(config_file)).as_dict(), settings.as_dict())
    if parse(text, str(config_file)) != settings:  # never write what does not read back
        raise AiError(f"could not edit {config_file} in place", "edit it by hand and re-run",
                      code="setup.settings_edit", exit_code=ExitCode.CONFIG)
    return text


@dataclass
class _Done:
    files: list[tuple[FileChange, int | None]] = field(default_factory=list)
    rc: list[shellrc.RcChange] = field(default_factory=list)
    created_dirs: list[Path] = field(default_factory=list)


def _restore(done: _Done) -> list[str]:
    problems = []
    for change in reversed(done.rc):
        try:
            restore_file(change.target.path, None if change.before is None
                         else change.before.encode("utf-8", "surrogateescape"))
        except (OSError, AiError) as exc:
            problems.append(f"{change.target.path}: {exc}")
    for f, mode in reversed(done.files):
        try:
            restore_file(f.path, f.before, mode)
        except (OSError, AiError) as exc:
            problems.append(f"{f.path}: {exc}")
    remove_created_dirs(done.created_dirs)
    return problems


def _failpoint(step: str) -> None:
    """Testing aid: AI_CLIENT_FAILPOINT=<step> makes that step fail (proves the rollback)."""
    if os.environ.get("AI_CLIENT_FAILPOINT") == step:
        raise AiError(f"injected failure at {step}", code="setup.failpoint")


def apply(plan: Plan) -> None:
    done = _Done()
    step = "start"
    try:
        for f in plan.files:
            step = f"write {f.path.name}"
            _failpoint(step)
            try:
                old_mode: int | None = stat.S_IMODE(f.path.stat().st_mode)
            except FileNotFoundError:
                old_mode = None
            if f.after is None:
                f.path.unlink(missing_ok=True)
            else:
                make_dirs(f.path.parent, done.created_dirs)
                atomic_write(f.path, f.after, mode=f.mode)
            done.files.append((f, old_mode))
        for change in plan.rc:
            if not change.changed:
                continue
            step = f"edit {change.target.path.name}"
            _failpoint(step)
            make_dirs(change.target.path.parent, done.created_dirs)
            shellrc.apply_change(change)
            done.rc.append(change)
        step = "record"
        _failpoint(step)
        _write_manifest(plan, done)
    except (AiError, OSError) as exc:
        message = exc.message if isinstance(exc, AiError) else str(exc)
        problems = _restore(done)
        tail = "nothing changed" if not problems else "restoring failed for: " + "; ".join(
            problems)
        raise AiError(f"setup failed at step '{step}': {message}; {tail}",
                      getattr(exc, "hint", None) or "fix the cause and run setup again",
                      code="setup.failed", exit_code=ExitCode.FAILURE) from None


def _write_manifest(plan: Plan, done: _Done) -> None:
    old = plan.manifest
    path = manifest_path()
    make_dirs(path.parent, done.created_dirs)  # recorded: uninstall removes it if it made it
    env_sh, env_fish = envfile.env_file_paths()
    files = set(old.get("files", []))
    files.update(str(p) for p in (env_sh, env_fish))
    wrapper = bin_dir() / claude.WRAPPER_NAME
    if plan.settings.client.claude:
        files.update((str(wrapper), str(bin_dir() / claude.SETTINGS_NAME)))
    rc = {r["path"]: r for r in old.get("rc", [])}
    for change in plan.rc:
        prev = rc.get(str(change.target.path), {})
        rc[str(change.target.path)] = {"shell": change.target.shell,
                                       "path": str(change.target.path),
                                       "kind": change.target.kind,
                                       "reason": change.target.reason,
                                       # a file setup created is deleted again if it ends
                                       # up empty on uninstall
                                       "created": prev.get("created", change.before is None)}
    meta_change = next((f for f, _ in done.files
                        if f.path == aider.metadata_path(Path.home())), None)
    meta = aider.metadata_path(Path.home())
    data = {
        "files": sorted(files),
        "rc": list(rc.values()),
        "aider_keys": plan.aider_keys,
        "aider_file_created": old.get("aider_file_created",
                                      any(f.path == meta and f.before is None
                                          for f, _ in done.files)),
        # the user's file as it was, so uninstall can give back the very same bytes
        "aider_original": old.get("aider_original", meta_change.before
                                  if meta_change is not None else None),
        "created_dirs": list(dict.fromkeys([*old.get("created_dirs", []),
                                            *(str(d) for d in done.created_dirs)])),
        "settings": str(plan.config_file),
    }
    atomic_write(path, json.dumps(data, indent=2) + "\n")


def uninstall(config_file: Path | None, purge: bool) -> dict[str, Any]:
    """Remove exactly what setup wrote: blocks, env files, wrapper, our Aider entries."""
    manifest = read_manifest()
    cfg = config_file or client_paths().config_file
    removed: list[str] = []
    targets = [shellrc.RcTarget(r["shell"], Path(r["path"]), r["kind"], r["reason"])
               for r in manifest.get("rc", [])]
    created = {r["path"] for r in manifest.get("rc", []) if r.get("created")}
    for change in shellrc.plan_uninstall(targets):
        if change.changed:
            if change.after == "" and str(change.target.path) in created:
                change = shellrc.RcChange(change.target, change.before, None)
            shellrc.apply_change(change)
            what = "block" if change.after is not None else "file"
            removed.append(f"{change.target.path} ({what})")
    for f in manifest.get("files", []):
        p = Path(f)
        if p.exists() or p.is_symlink():
            p.unlink()
            removed.append(str(p))
    meta = aider.metadata_path(Path.home())
    keys = manifest.get("aider_keys", [])
    if keys and meta.exists():
        doc = aider.remove(aider.read(meta), keys)
        original = manifest.get("aider_original")
        if not doc and manifest.get("aider_file_created"):
            meta.unlink()
        elif original is not None and json.loads(original or "{}") == doc:
            atomic_write(meta, original)  # unchanged apart from ours: the user's exact bytes
        else:
            atomic_write(meta, aider.dumps(doc))
        removed.append(f"{meta} ({len(keys)} entries)")
    mpath = manifest_path()
    if mpath.exists():
        mpath.unlink()
    kept = [str(cfg)] if cfg.exists() else []
    if purge and cfg.exists():
        cfg.unlink()
        removed.append(str(cfg))
        kept = []
    remove_created_dirs(manifest.get("created_dirs", []))
    if purge:  # our own directories, once empty, go too (whoever made them)
        paths = client_paths()
        remove_created_dirs([paths.config_dir, paths.state_dir, paths.log_dir])
    return {"removed": removed, "kept": kept, "was_set_up": bool(manifest)}
