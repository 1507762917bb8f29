"""pin, unpin and downgrade-claude: the core (returns data, never prints).

pin changes at most four things, records each in the lock, and `unpin` reverses exactly those:
1. the tool's version, when one is asked for (installed the way the tool is installed now);
2. `"env": {"DISABLE_AUTOUPDATER": "1"}` merged into Claude Code's settings.json (atomic,
   backup, every other key kept; an unparseable file is refused and nothing changes);
3. `brew pin` for Homebrew installs;
4. Aider's package-manager requirement (`aider-chat==X` for uv, pipx, pip).

The lock (TOML in the state dir) is data: read with tomllib, never executed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from aiclient import installs
from aiclient.installs import Install, Method, SwitchResult
from aicommon.errors import AiError, ExitCode

LOCK_NAME = "versions.lock"
SETTING = "DISABLE_AUTOUPDATER"
LOCK_HEADER = ("# ai-client version lock: written by `ai-client pin` and `ai-client "
               "downgrade-claude`,\n# read as data (never executed). `ai-client unpin` reverses "
               "what pin changed.\n")


def _sha(text: str | None) -> str:
    return "" if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------------------
# Claude Code's settings.json
# ---------------------------------------------------------------------------------------------


def claude_settings_path() -> Path:
    """`$CLAUDE_CONFIG_DIR/settings.json`, else `~/.claude/settings.json` (REFERENCE §2.3)."""
    base = os.environ.get("CLAUDE_CONFIG_DIR", "").strip()
    folder = Path(base).expanduser() if base else Path.home() / ".claude"
    return folder / "settings.json"


def _refuse(path: Path, why: str) -> AiError:
    return AiError(f"{path} {why}; not touching it",
                   "fix or move the file, then run the command again",
                   code="claude.settings_invalid", exit_code=ExitCode.CONFIG)


def read_settings(path: Path) -> tuple[str | None, dict[str, Any]]:
    """The file's text (None: no file) and its JSON object; refuses anything unparseable."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, {}
    except (OSError, UnicodeDecodeError) as exc:
        raise _refuse(path, f"cannot be read ({exc})") from None
    if not text.strip():
        return text, {}
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise _refuse(path, f"is not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise _refuse(path, "is not a JSON object")
    env = doc.get("env")
    if env is not None and not isinstance(env, dict):
        raise _refuse(path, 'has an "env" that is not an object')
    return text, doc


def render_settings(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def with_env(doc: dict[str, Any], name: str, value: str | None) -> dict[str, Any]:
    """A copy of `doc` with env[name] set (None: removed); other keys keep their order."""
    new = dict(doc)
    env = dict(doc.get("env") or {})
    if value is None:
        env.pop(name, None)
    else:
        env[name] = value
    if env or "env" in doc:
        new["env"] = env
    return new


@dataclass(frozen=True)
class SettingsPlan:
    path: Path
    before: str | None  # None: the file does not exist
    after: str
    previous: str | None  # the setting's value before (None: absent)
    had_env: bool

    @property
    def changes(self) -> bool:
        return self.before != self.after


def plan_autoupdater_off(path: Path) -> SettingsPlan:
    before, doc = read_settings(path)
    env = doc.get("env") or {}
    previous = env.get(SETTING)
    if previous == "1":
        return SettingsPlan(path, before, before or "", "1", "env" in doc)
    after = render_settings(with_env(doc, SETTING, "1"))
    return SettingsPlan(path, before, after,
                        None if previous is None else str(previous), "env" in doc)


def apply_settings(plan: SettingsPlan) -> dict[str, Any]:
    """Write the plan; what unpin needs to undo it exactly."""
    from aicommon.fsutil import atomic_write

    folder = plan.path.parent
    created_dir = not folder.exists()
    written = atomic_write(plan.path, plan.after, backup=True)
    return {"path": str(plan.path), "changed": True, "existed": plan.before is not None,
            "created_dir": created_dir, "previous_present": plan.previous is not None,
            "previous": plan.previous or "", "had_env": plan.had_env,
            "before_sha256": _sha(plan.before), "written_sha256": _sha(plan.after),
            "backup": str(written.backup) if written.backup else ""}


def restore_settings(rec: dict[str, Any]) -> str:
    """Undo apply_settings: byte for byte when nobody edited the file since, else by putting
    back just the one setting. Returns what was done."""
    from aicommon.fsutil import atomic_write

    path = Path(rec["path"])
    current, doc = read_settings(path)
    backup = Path(rec["backup"]) if rec.get("backup") else None
    if current is not None and _sha(current) == rec.get("written_sha256"):
        if not rec.get("existed"):
            path.unlink()
            if rec.get("created_dir"):
                with contextlib.suppress(OSError):
                    path.parent.rmdir()
            return f"removed {path} (pin created it)"
        if backup is not None and backup.is_file():
            original = backup.read_text(encoding="utf-8")
            if _sha(original) == rec.get("before_sha256"):
                atomic_write(path, original)
                backup.unlink()
                return f"restored {path} exactly"
    if current is None:
        return f"{path} is gone; nothing to restore"
    previous = rec.get("previous") if rec.get("previous_present") else None
    env = doc.get("env") or {}
    if env.get(SETTING) == previous:
        return f"{path} already has no pin setting"
    new = with_env(doc, SETTING, previous)
    if previous is None and not rec.get("had_env") and not new.get("env"):
        new.pop("env", None)
    atomic_write(path, render_settings(new), backup=True)
    return (f"removed env.{SETTING} from {path}" if previous is None
            else f"set env.{SETTING} back to {previous!r} in {path}")


# ---------------------------------------------------------------------------------------------
# The lock file
# ---------------------------------------------------------------------------------------------


def lock_path() -> Path:
    from aicommon.paths import client_paths

    return client_paths().state_dir / LOCK_NAME


def read_lock_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def parse_lock(text: str | None, path: Path) -> dict[str, Any]:
    import tomllib

    if text is None:
        return {}
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AiError(f"{path} is not valid TOML ({exc})",
                      "move it aside (it is only a record) and run the command again",
                      code="versions.lock_invalid", exit_code=ExitCode.CONFIG) from None


def render_lock(doc: dict[str, Any]) -> str:
    import tomli_w

    return LOCK_HEADER + "\n" + tomli_w.dumps(doc, multiline_strings=True)


def write_lock(path: Path, doc: dict[str, Any]) -> None:
    from aicommon.fsutil import atomic_write

    atomic_write(path, render_lock(doc))


# ---------------------------------------------------------------------------------------------
# Facts about the server (best effort for pin; required for choosing a downgrade target)
# ---------------------------------------------------------------------------------------------


@dataclass
class ServerFacts:
    ollama: str = ""
    model: str = ""
    families: tuple[str, ...] = ()
    capabilities: tuple[str, ...] | None = None
    error: str = ""


def server_facts(config: Path | None, required: bool = False) -> ServerFacts:
    from aiclient import compat

    try:
        target = compat.target_from_settings(config, None)
        version = compat.server_version(target.base_url, target.api_key)
        facts = ServerFacts(str(version), target.model or "")
        if target.model:
            info = compat.model_info(target.base_url, target.api_key, target.model)
            facts.families, facts.capabilities = info.families, info.capabilities
        return facts
    except AiError as err:
        if required:
            raise
        return ServerFacts(error=err.one_line())


def pair_verified(claude: str, facts: ServerFacts) -> bool:
    from aiclient import compat

    record = compat.find_record(compat.read_store(), claude, facts.ollama, facts.model)
    return record is not None and record.outcome == "verified"


# ---------------------------------------------------------------------------------------------
# Homebrew pins
# ---------------------------------------------------------------------------------------------


def _brew_pinned(name: str) -> bool:
    from aicommon.runner import run

    done = run(["brew", "list", "--pinned"], timeout=120, check=False)
    return name in done.stdout.split()


def _brew(verb: str, name: str, cask: bool) -> str:
    from aicommon.runner import command_line, run

    argv = ["brew", verb, *(["--cask"] if cask else []), name]
    run(argv, timeout=300)
    return command_line(argv)


# ---------------------------------------------------------------------------------------------
# pin
# ---------------------------------------------------------------------------------------------

CURRENT = "current"  # `--claude` without a version: keep the installed one


@dataclass
class PinReport:
    actions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tools: dict[str, dict[str, Any]] = field(default_factory=dict)


class _Undo:
    """Steps that undo what was done so far, run newest first when a later step fails."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, Callable[[], object]]] = []

    def push(self, label: str, step: Callable[[], object]) -> None:
        self.steps.append((label, step))

    def run(self) -> list[str]:
        problems = []
        for label, step in reversed(self.steps):
            try:
                step()
            except AiError as err:
                problems.append(f"{label}: {err.message}")
        return problems


def _switch_failed(result: SwitchResult) -> AiError:
    state = (f"restored {result.from_version} (`{result.tool} --version` prints it)"
             if result.restored else
             f"could NOT restore {result.from_version}; `{result.tool} --version` prints "
             f"{result.now_version or 'nothing'}")
    if not result.restored:
        hint = "reinstall it by hand, then run the command again"
    elif result.steps:  # say exactly what was done, not "nothing else was changed"
        hint = "what was done: " + "; ".join(result.steps)
    else:
        hint = "nothing was changed"
    return AiError(f"installing {result.tool} {result.to_version} failed: {result.error}; "
                   f"{state}", hint, code="versions.switch_failed")


def _detect(tool: str, asked: bool) -> Install | None:
    inst = installs.detect_claude() if tool == "claude" else installs.detect_aider()
    if inst is None and asked:
        name = "Claude Code" if tool == "claude" else "Aider"
        raise AiError(f"{name} is not installed (no `{tool}` on PATH)",
                      "install it first, or leave out its option", code="versions.missing",
                      exit_code=ExitCode.UNAVAILABLE)
    return inst


def pin(config: Path | None, claude: str | None, aider: str | None) -> dict[str, Any]:
    """Pin the tools. `claude`/`aider`: None = not asked, CURRENT = the installed version,
    else a version to install first. Both None = every installed tool at its version."""
    both = claude is None and aider is None
    want = {"claude": CURRENT if both else claude, "aider": CURRENT if both else aider}
    path = lock_path()
    lock_text = read_lock_text(path)
    lock = parse_lock(lock_text, path)
    already = lock.get("pinned") is True
    prior_pin: dict[str, Any] = lock.get("pin", {}) if already else {}
    report = PinReport()

    # 1. Look, plan and refuse before changing anything.
    found: dict[str, Install] = {}
    targets: dict[str, str] = {}
    for tool, asked in want.items():
        if asked is None:
            continue
        inst = _detect(tool, not both)
        if inst is None:
            report.notes.append(f"{tool} is not installed: not pinned")
            continue
        if inst.method == Method.UNKNOWN:
            raise AiError(f"cannot tell how {tool} at {inst.path} was installed "
                          f"(it is {inst.real}); not pinning anything",
                          "reinstall it with a supported method (see the README)",
                          code="versions.unknown_method")
        target = inst.version if asked == CURRENT else installs.normalize(asked)
        if not target:
            raise AiError(f"`{tool} --version` does not answer; cannot tell what to pin",
                          f"pass the version: --{tool} VERSION", code="versions.unknown_version")
        if target != inst.version and inst.method == Method.BREW_CASK:
            raise installs.cask_cannot_pin(inst, target)
        if target != inst.version and inst.method == Method.BREW:
            raise AiError(f"Homebrew's {inst.formula} formula cannot install Aider {target}",
                          "`brew uninstall aider`, then `uv tool install aider-chat`, then pin",
                          code="versions.brew")
        found[tool], targets[tool] = inst, target
    if not found:
        raise AiError("neither Claude Code nor Aider is installed: nothing to pin",
                      code="versions.missing", exit_code=ExitCode.UNAVAILABLE)
    settings_plan = plan_autoupdater_off(claude_settings_path()) if "claude" in found else None
    for inst in found.values():
        if inst.method in (Method.BREW, Method.BREW_CASK):
            installs.need_program("brew", f"{inst.tool} was installed with Homebrew")

    # 2. Apply, undoing everything on a failure.
    undo = _Undo()
    pin_rec: dict[str, Any] = {k: v for k, v in prior_pin.items()}
    pin_rec["date"] = pin_rec.get("date") or _now()
    if lock_text is not None and "previous_lock" not in pin_rec and not already:
        pin_rec["previous_lock"] = lock_text
    try:
        for tool, inst in found.items():
            target = targets[tool]
            pin_rec.setdefault(f"{tool}_previous_version", inst.version)
            switch = tool == "claude" and target != inst.version
            if tool == "aider":
                # uv and pipx record the requirement (uv's `tool upgrade` honours it); pip
                # has nothing to record, so it only installs a different version.
                switch = inst.method in (Method.UV, Method.PIPX) or (
                    inst.method == Method.PIP and target != inst.version)
            if not switch:
                continue
            result = (installs.switch_claude(inst, target) if tool == "claude"
                      else installs.switch_aider(inst, target))
            report.actions += result.steps
            if not result.ok:
                raise _switch_failed(result)
            if tool == "aider" and inst.method == Method.UV:
                pin_rec["aider_constrained"] = True
            lift = (tool == "aider" and inst.method == Method.UV
                    and not prior_pin.get("aider_constrained"))  # a re-pin keeps it
            undo.push(f"{tool} version", partial(_restore_version, tool, inst.version, lift))
        if settings_plan is not None:
            if settings_plan.changes:
                rec = apply_settings(settings_plan)
                pin_rec.setdefault("settings", rec)  # a re-pin keeps the first record
                report.actions.append(f"set env.{SETTING}=1 in {settings_plan.path}")
                undo.push("settings.json", partial(restore_settings, rec))
            else:
                report.notes.append(f"{settings_plan.path} already has env.{SETTING}=1")
        for tool, inst in found.items():
            name = inst.cask if inst.method == Method.BREW_CASK else inst.formula
            if name is None or pin_rec.get(f"{tool}_brew_pinned"):
                continue
            if _brew_pinned(name):
                report.notes.append(f"Homebrew already pins {name}")
                continue
            cask = inst.method == Method.BREW_CASK
            try:
                report.actions.append(_brew("pin", name, cask))
            except AiError as err:
                if not cask:
                    raise
                report.notes.append(f"this Homebrew cannot pin the {name} cask ({err.message});"
                                    f" avoid `brew upgrade --cask {name}`")
                continue
            pin_rec[f"{tool}_brew_pinned"] = True
            pin_rec[f"{tool}_brew_name"] = name
            undo.push(f"brew pin {name}", partial(_brew, "unpin", name, cask))
        facts = server_facts(config)
        if facts.error:
            report.notes.append(f"the server's Ollama version is not recorded: {facts.error}")
        doc = _lock_doc(lock, found, targets, facts)
        doc["pinned"] = True
        doc["pin"] = pin_rec
        write_lock(path, doc)
    except BaseException as exc:
        problems = undo.run()
        if isinstance(exc, AiError):
            tail = ("; undone: nothing changed" if not problems
                    else "; undoing failed for " + ", ".join(problems))
            raise AiError(exc.message + tail, exc.hint, code=exc.code,
                          exit_code=exc.exit_code) from None
        raise
    for tool, inst in found.items():
        report.tools[tool] = {"version": targets[tool], "method": str(inst.method),
                              "path": str(inst.path), "previous": inst.version}
    return {"pinned": report.tools, "actions": report.actions, "notes": report.notes,
            "lock": str(path), "ollama_version": doc.get("ollama_version", ""),
            "verified": doc.get("verified", False)}


def _now() -> str:
    from aiclient.compat import now_iso

    return now_iso()


def _lock_doc(lock: dict[str, Any], found: dict[str, Install], targets: dict[str, str],
              facts: ServerFacts) -> dict[str, Any]:
    kept = {k: v for k, v in lock.items() if k not in ("schema", "pinned", "updated", "pin")}
    doc = {"schema": 1, "pinned": bool(lock.get("pinned")), "updated": _now(), **kept}
    for tool, inst in found.items():
        doc[tool] = {"version": targets[tool], "method": str(inst.method),
                     "path": str(inst.path)}
    if facts.ollama:
        doc["ollama_version"] = facts.ollama
        doc["model"] = facts.model
    claude = doc.get("claude", {}).get("version", "") if isinstance(doc.get("claude"),
                                                                  dict) else ""
    doc["verified"] = bool(claude and facts.ollama and pair_verified(claude, facts))
    return doc


# ---------------------------------------------------------------------------------------------
# unpin
# ---------------------------------------------------------------------------------------------


def unpin() -> dict[str, Any]:
    """Reverse exactly what pin recorded; the lock goes back to what it was before pin."""
    path = lock_path()
    lock = parse_lock(read_lock_text(path), path)
    if lock.get("pinned") is not True:
        return {"unpinned": False, "actions": [], "notes": ["nothing is pinned"],
                "lock": str(path)}
    rec: dict[str, Any] = lock.get("pin", {})
    actions: list[str] = []
    problems: list[str] = []
    for tool in ("claude", "aider"):
        if rec.get(f"{tool}_brew_pinned"):
            name = str(rec.get(f"{tool}_brew_name"))
            try:
                actions.append(_brew("unpin", name, tool == "claude"))
            except AiError as err:
                problems.append(err.message)
    if isinstance(rec.get("settings"), dict):
        try:
            actions.append(restore_settings(rec["settings"]))
        except AiError as err:
            problems.append(err.message)
    for tool in ("aider", "claude"):
        previous = str(rec.get(f"{tool}_previous_version") or "")
        try:
            actions += _restore_version(tool, previous, bool(rec.get("aider_constrained")))
        except AiError as err:
            problems.append(err.message)
    if problems:
        raise AiError("unpin could not undo everything: " + "; ".join(problems),
                      "fix that and run `ai-client unpin` again (the lock is kept)",
                      code="versions.unpin_failed")
    from aicommon.fsutil import atomic_write

    previous_lock = rec.get("previous_lock")
    if isinstance(previous_lock, str):
        atomic_write(path, previous_lock)
        actions.append(f"restored {path} as it was before pin")
    else:
        path.unlink()
        actions.append(f"removed {path}")
    return {"unpinned": True, "actions": actions, "notes": [], "lock": str(path)}


def _restore_version(tool: str, previous: str, constrained: bool) -> list[str]:
    inst = installs.detect_claude() if tool == "claude" else installs.detect_aider()
    if inst is None or not previous:
        return []
    steps: list[str] = []
    if inst.version != previous and inst.method not in (Method.BREW, Method.BREW_CASK):
        result = (installs.switch_claude(inst, previous) if tool == "claude"
                  else installs.switch_aider(inst, previous))
        steps += result.steps
        if not result.ok:
            raise _switch_failed(result)
    if tool == "aider" and constrained and inst.method == Method.UV:
        steps += installs.release_uv_constraint(inst)
    return steps


# ---------------------------------------------------------------------------------------------
# downgrade-claude
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DowngradePlan:
    install: Install
    target: str
    source: str  # "argument" | "lock" | "rules"
    action: str  # "repoint" | "claude install" | "npm install" | "native-instead" | "none"
    summary: str
    explanation: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"from": self.install.version, "to": self.target, "source": self.source,
                "action": self.action, "method": str(self.install.method),
                "summary": self.summary, "explanation": self.explanation}


def _rules_target(config: Path | None, inst: Install) -> str:
    from packaging.version import Version

    from aiclient import compat

    facts = server_facts(config, required=True)
    rules = compat.load_rules()
    current = Version(inst.version) if inst.version else rules.reviewed_claude
    store = compat.read_store()
    same = [r for r in store if r.ollama == facts.ollama and r.model == facts.model
            and _pep440(r.claude)]
    candidates = compat.candidate_versions(rules)
    if inst.method == Method.NATIVE:  # every version still on disk (kept since 2.1.207)
        candidates |= {Version(v) for v in map(_pep440, os.listdir(inst.real.parent)) if v}
    target = compat.newest_working_claude(
        rules, compat.Facts(current, compat.parse_version(facts.ollama), facts.model or None,
                            facts.families, facts.capabilities),
        candidates, verified=[Version(r.claude) for r in same if r.outcome == "verified"],
        failed=[Version(r.claude) for r in same if r.outcome == "failed"])
    if target is None:
        raise AiError(f"the rules know no Claude Code version that works with Ollama "
                      f"{facts.ollama}", "upgrade Ollama on the server, or pass a VERSION",
                      code="versions.no_target")
    return str(target)


def _pep440(text: str) -> str:
    try:
        return installs.normalize(text)
    except AiError:
        return ""


def plan_downgrade(config: Path | None, version: str | None) -> DowngradePlan:
    inst = _detect("claude", True)
    assert inst is not None
    lock = parse_lock(read_lock_text(lock_path()), lock_path())
    locked = lock.get("claude", {}).get("version") if isinstance(lock.get("claude"),
                                                                 dict) else None
    if version:
        target, source = installs.normalize(version), "argument"
    elif locked:
        target, source = installs.normalize(str(locked)), "lock"
    else:
        target, source = _rules_target(config, inst), "rules"
    if target == inst.version:
        return DowngradePlan(inst, target, source, "none",
                             f"Claude Code is already at {target}")
    if inst.method == Method.NATIVE:
        assert inst.launcher is not None
        on_disk = inst.real.parent / target
        if on_disk.is_file():
            return DowngradePlan(inst, target, source, "repoint",
                                 f"repoint {inst.launcher} from {inst.real.name} to {on_disk}")
        return DowngradePlan(inst, target, source, "claude install",
                             f"run `claude install {target}` (native installer)")
    if inst.method == Method.NPM:
        from aicommon.runner import command_line

        return DowngradePlan(inst, target, source, "npm install",
                             f"run `{command_line(installs.npm_install_argv(inst, target))}`")
    if inst.method == Method.BREW_CASK:
        err = installs.cask_cannot_pin(inst, target)
        return DowngradePlan(inst, target, source, "native-instead",
                             f"install the native build {target} at "
                             f"{installs.native_launcher()} with `claude install {target}`",
                             err.message)
    raise AiError(f"cannot tell how Claude Code at {inst.path} was installed "
                  f"(it is {inst.real})",
                  "reinstall it with the native installer, then run this again",
                  code="versions.unknown_method")


def apply_downgrade(config: Path | None, plan: DowngradePlan) -> dict[str, Any]:
    """Switch, verify, restore on failure; the result goes into the lock either way."""
    inst = plan.install
    if plan.action == "none":
        return {**plan.as_dict(), "ok": True, "changed": False, "steps": [], "notes": []}
    if plan.action == "native-instead":
        result = installs.install_native_instead(inst, plan.target)
    else:
        result = installs.switch_claude(inst, plan.target)
    path = lock_path()
    lock = parse_lock(read_lock_text(path), path)
    facts = server_facts(config)
    method = Method.NATIVE if plan.action == "native-instead" and result.ok else inst.method
    version = plan.target if result.ok else inst.version
    where = installs.native_launcher() if method != inst.method else inst.path
    doc = _lock_doc(lock, {}, {}, facts)
    doc["claude"] = {"version": version, "method": str(method), "path": str(where)}
    doc["downgrade"] = {"date": _now(), "from": inst.version, "to": plan.target,
                        "method": str(method), "ok": result.ok, "restored": result.restored,
                        "detail": result.error or "verified with `claude --version`"}
    doc["verified"] = bool(facts.ollama) and pair_verified(version, facts)
    if lock.get("pin"):
        doc["pin"] = lock["pin"]
    write_lock(path, doc)
    if not result.ok:
        raise _switch_failed(result)
    notes = []
    if not lock.get("pinned"):
        notes.append("Claude Code's updater can move it forward again: run "
                     "`ai-client pin --claude` to keep it")
    if method != inst.method and shutil.which("claude") != str(where):
        notes.append(f"`claude` on PATH is still {shutil.which('claude')}: put "
                     f"{where.parent} first on PATH, or `brew uninstall --cask {inst.cask}`")
    return {**plan.as_dict(), "method": str(method), "ok": True, "changed": True,
            "steps": result.steps,
            "now": result.now_version, "lock": str(path), "notes": notes}
