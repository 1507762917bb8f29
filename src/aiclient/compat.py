"""Claude Code × Ollama compatibility: the rules (share/compat/rules.toml), their evaluation,
live verification (`--probe`) and the local store of verified pairs.

Versions are parsed with `packaging` (PEP 440) after reading them robustly from what the
tools print (`2.1.211 (Claude Code)`, `{"version": "0.33.0-rc2"}`); they are never compared as
strings. Everything here returns data; `aiclient.cli_versions` renders it.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aicommon.errors import AiError, ExitCode

if TYPE_CHECKING:
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

RULES_FILE = "compat/rules.toml"
STORE_NAME = "compat-verified.json"
CONDITIONS = ("base_url_ends_in_v1", "model_lacks_tools", "context_below_min")
MESSAGES_PATH = "/v1/messages?beta=true"  # what Claude Code sends (REFERENCE §2.1)
PROBE_TIMEOUT = (3.05, 300.0)  # a cold model loads and pre-fills before the first byte


class Status(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    BROKEN = "broken"


class Verdict(StrEnum):
    COMPATIBLE = "compatible"
    DEGRADED = "degraded"
    BROKEN = "broken"
    UNTESTED = "untested"


class CompatExit(IntEnum):
    """check-compatibility's exit codes (issue 6); the numbers coincide with ExitCode's."""

    COMPATIBLE = ExitCode.OK  # 0: compatible, or verified by a probe
    CANNOT_CHECK = ExitCode.FAILURE  # 1: Claude Code missing, server unreachable, not set up
    UNTESTED = ExitCode.FINDINGS  # 3: no rule applies, versions newer than the rules know
    INCOMPATIBLE = ExitCode.CONFIG  # 4: degraded or broken


EXIT_FOR_VERDICT = {Verdict.COMPATIBLE: CompatExit.COMPATIBLE,
                    Verdict.UNTESTED: CompatExit.UNTESTED,
                    Verdict.DEGRADED: CompatExit.INCOMPATIBLE,
                    Verdict.BROKEN: CompatExit.INCOMPATIBLE}


# ---------------------------------------------------------------------------------------------
# Versions
# ---------------------------------------------------------------------------------------------

_VERSION_RE = re.compile(
    r"(?<![\w.])v?(\d+(?:\.\d+)+)"  # release: 2.1.211, 0.32.15
    r"(?:[-_.]?(alpha|beta|preview|pre|rc|a|b|c)[-_.]?(\d*)(?![a-z]))?",  # -rc2, rc2, b1
    re.IGNORECASE)


def parse_version(text: str, what: str = "version") -> Version:
    """The first version in `text`: `2.1.211 (Claude Code)`, `0.33.0-rc2` (→ 0.33.0rc2),
    `v0.32.15`, `aider 0.86.1`. Git-describe suffixes (`0.32.15-3-gabc`) are ignored."""
    from packaging.version import InvalidVersion, Version

    match = _VERSION_RE.search(text or "")
    if match is None:
        raise AiError(f"cannot read a {what} from {text.strip()[:60]!r}",
                      "check the program's --version output", code="compat.bad_version")
    release, pre, number = match.groups()
    candidate = release + (f"{pre.lower()}{number or '0'}" if pre else "")
    try:
        return Version(candidate)
    except InvalidVersion:  # pragma: no cover - the regex only admits PEP 440 shapes
        raise AiError(f"cannot read a {what} from {text.strip()[:60]!r}",
                      code="compat.bad_version") from None


def version_text(version: Version | None) -> str:
    return "" if version is None else str(version)


# ---------------------------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    id: str
    status: Status
    symptom: str
    fix: str
    claude: SpecifierSet
    ollama: SpecifierSet
    model: re.Pattern[str] | None = None
    condition: str | None = None
    upgrade_ollama: Version | None = None
    upgrade_claude: Version | None = None
    pin_claude: Version | None = None
    source: str = ""
    min_context: int | None = None  # condition context_below_min: the smallest that works

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.id, "status": str(self.status), "symptom": self.symptom,
                "fix": self.fix, "claude": str(self.claude), "ollama": str(self.ollama),
                "model": self.model.pattern if self.model else None,
                "condition": self.condition,
                "upgrade_ollama": version_text(self.upgrade_ollama) or None,
                "upgrade_claude": version_text(self.upgrade_claude) or None,
                "pin_claude": version_text(self.pin_claude) or None}


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    reviewed_claude: Version
    reviewed_ollama: Version

    def by_id(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)


_RULE_KEYS = {"id", "claude", "ollama", "model", "condition", "status", "symptom", "fix",
              "upgrade_ollama", "upgrade_claude", "pin_claude", "source", "min_context"}


def _bad_rules(source: str, message: str) -> AiError:
    return AiError(f"compatibility rules {source}: {message}",
                   "fix the rules file (or reinstall ai-client)", code="compat.bad_rules")


def parse_rules(text: str, source: str = RULES_FILE) -> RuleSet:
    """Parse and validate the rules document (TOML). Raises AiError naming the bad entry."""
    import tomllib

    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion, Version

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _bad_rules(source, f"not valid TOML ({exc})") from None
    if doc.get("schema") != 1:
        raise _bad_rules(source, f"unknown schema {doc.get('schema')!r} (expected 1)")

    def version(value: Any, where: str) -> Version | None:
        if value in (None, ""):
            return None
        try:
            return Version(str(value))
        except InvalidVersion:
            raise _bad_rules(source, f"{where}: {value!r} is not a PEP 440 version") from None

    def spec(value: Any, where: str) -> SpecifierSet:
        try:
            return SpecifierSet(str(value or ""))
        except InvalidSpecifier:
            raise _bad_rules(source, f"{where}: {value!r} is not a version specifier") from None

    reviewed = doc.get("reviewed")
    if not isinstance(reviewed, dict):
        raise _bad_rules(source, "missing the [reviewed] table")
    rev_claude = version(reviewed.get("claude"), "reviewed.claude")
    rev_ollama = version(reviewed.get("ollama"), "reviewed.ollama")
    if rev_claude is None or rev_ollama is None:
        raise _bad_rules(source, "[reviewed] needs claude and ollama versions")
    raw_rules = doc.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise _bad_rules(source, "no [[rules]]")
    rules: list[Rule] = []
    for index, raw in enumerate(raw_rules):
        where = f"rule {index + 1}"
        if not isinstance(raw, dict):
            raise _bad_rules(source, f"{where} is not a table")
        rule_id = raw.get("id")
        if not isinstance(rule_id, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]*", rule_id):
            raise _bad_rules(source, f"{where}: id must be lower-case words joined by -")
        where = f"rule {rule_id!r}"
        unknown = set(raw) - _RULE_KEYS
        if unknown:
            raise _bad_rules(source, f"{where}: unknown key {sorted(unknown)[0]!r}")
        if any(r.id == rule_id for r in rules):
            raise _bad_rules(source, f"{where} appears twice")
        try:
            status = Status(str(raw.get("status")))
        except ValueError:
            raise _bad_rules(source, f"{where}: status must be broken, degraded or ok") from None
        for key in ("symptom", "fix"):
            if not isinstance(raw.get(key), str) or not raw[key].strip():
                raise _bad_rules(source, f"{where}: {key} is required")
        condition = raw.get("condition")
        if condition is not None and condition not in CONDITIONS:
            raise _bad_rules(source, f"{where}: unknown condition {condition!r}")
        min_context = raw.get("min_context")
        if (condition == "context_below_min") != (min_context is not None) or (
                min_context is not None and (not isinstance(min_context, int)
                                             or isinstance(min_context, bool)
                                             or min_context <= 0)):
            raise _bad_rules(source, f"{where}: condition context_below_min goes with a "
                                     "positive integer min_context, and only with it")
        pattern = None
        if raw.get("model"):
            try:
                pattern = re.compile(str(raw["model"]), re.IGNORECASE)
            except re.error as exc:
                raise _bad_rules(source, f"{where}: model pattern: {exc}") from None
        rules.append(Rule(
            id=rule_id, status=status, symptom=raw["symptom"].strip(), fix=raw["fix"].strip(),
            claude=spec(raw.get("claude"), f"{where}.claude"),
            ollama=spec(raw.get("ollama"), f"{where}.ollama"),
            model=pattern, condition=condition,
            upgrade_ollama=version(raw.get("upgrade_ollama"), f"{where}.upgrade_ollama"),
            upgrade_claude=version(raw.get("upgrade_claude"), f"{where}.upgrade_claude"),
            pin_claude=version(raw.get("pin_claude"), f"{where}.pin_claude"),
            source=str(raw.get("source") or ""), min_context=min_context))
    return RuleSet(tuple(rules), rev_claude, rev_ollama)


def load_rules() -> RuleSet:
    """The rules bundled with ai-client (share/compat/rules.toml)."""
    from aicommon import resources

    return parse_rules(resources.read_text(RULES_FILE))


# ---------------------------------------------------------------------------------------------
# Evaluation (pure)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Facts:
    """What the rules are evaluated against."""

    claude: Version
    ollama: Version
    model: str | None = None
    families: tuple[str, ...] = ()  # details.family(ies), general.architecture
    capabilities: tuple[str, ...] | None = None  # None: unknown
    base_urls: tuple[str, ...] = ()  # the Anthropic base URLs in use
    context: int | None = None  # the server's context length for the model (None: unknown)


def rule_applies(rule: Rule, facts: Facts) -> bool:
    if rule.claude and not rule.claude.contains(facts.claude, prereleases=True):
        return False
    if rule.ollama and not rule.ollama.contains(facts.ollama, prereleases=True):
        return False
    if rule.model is not None:
        names = [n for n in (facts.model, *facts.families) if n]
        if not any(rule.model.search(n) for n in names):
            return False
    if rule.condition == "base_url_ends_in_v1":
        return any(u.rstrip("/").endswith("/v1") for u in facts.base_urls)
    if rule.condition == "model_lacks_tools":
        return facts.capabilities is not None and "tools" not in facts.capabilities
    if rule.condition == "context_below_min":
        return (facts.context is not None and rule.min_context is not None
                and facts.context < rule.min_context)
    return True


def min_context(rules: RuleSet, claude: Version | None) -> int | None:
    """The smallest server context Claude Code `claude` can work with (None: no rule says);
    with the version unknown, the largest minimum any rule asks for."""
    found = [r.min_context for r in rules.rules
             if r.condition == "context_below_min" and r.min_context is not None
             and (claude is None or not r.claude
                  or r.claude.contains(claude, prereleases=True))]
    return max(found) if found else None


def context_problem(context: int, minimum: int | None) -> str | None:
    """The one line every command shows when Claude Code cannot work with the context."""
    if minimum is None or context <= 0 or context >= minimum:
        return None
    return (f"Claude Code cannot work with context {context} (needs >= {minimum}): it answers "
            "\"Prompt is too long\" and sends nothing")


CONTEXT_FIX = ("on the server: `ai-server install --context-length 131072` (or `ai-server models "
               "warm <model> --context-length 131072`), then `ai-client setup` here")


@dataclass(frozen=True)
class Evaluation:
    verdict: Verdict
    findings: tuple[Rule, ...]  # every rule that applies, worst first
    untested: tuple[str, ...] = ()  # why the verdict is untested

    @property
    def problems(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.findings if r.status != Status.OK)


_ORDER = {Status.BROKEN: 0, Status.DEGRADED: 1, Status.OK: 2}


def evaluate(rules: RuleSet, facts: Facts) -> Evaluation:
    found = sorted((r for r in rules.rules if rule_applies(r, facts)),
                   key=lambda r: _ORDER[r.status])
    statuses = {r.status for r in found}
    if Status.BROKEN in statuses:
        return Evaluation(Verdict.BROKEN, tuple(found))
    if Status.DEGRADED in statuses:
        return Evaluation(Verdict.DEGRADED, tuple(found))
    newer = []
    if facts.claude > rules.reviewed_claude:
        newer.append(f"Claude Code {facts.claude} is newer than the rules know "
                     f"({rules.reviewed_claude})")
    if facts.ollama > rules.reviewed_ollama:
        newer.append(f"Ollama {facts.ollama} is newer than the rules know "
                     f"({rules.reviewed_ollama})")
    return Evaluation(Verdict.UNTESTED if newer else Verdict.COMPATIBLE, tuple(found),
                      tuple(newer))


def suggest_fixes(rules: RuleSet, facts: Facts, ev: Evaluation) -> list[dict[str, str]]:
    """Concrete ways out of a broken/degraded verdict, each checked against the rules: the
    Ollama version to upgrade the server to, the Claude Code version to pin or upgrade to."""
    problems = ev.problems
    if not problems:
        return []

    def clears(changed: Facts) -> bool:
        return not evaluate(rules, changed).problems

    fixes: list[dict[str, str]] = []
    ollama_targets = [r.upgrade_ollama for r in problems if r.upgrade_ollama]
    claude_targets = [r.upgrade_claude for r in problems if r.upgrade_claude]
    if ollama_targets:
        target = max(ollama_targets)
        if clears(replace(facts, ollama=target)):
            fixes.append({"action": "upgrade_ollama", "version": str(target),
                          "text": f"upgrade Ollama on the server to {target} or newer"})
    for pin in sorted({r.pin_claude for r in problems if r.pin_claude}, reverse=True):
        if clears(replace(facts, claude=pin)):
            fixes.append({"action": "pin_claude", "version": str(pin),
                          "text": f"pin Claude Code at {pin}: `ai-client pin --claude {pin}`"})
    if claude_targets:
        target = max(claude_targets)
        if clears(replace(facts, claude=max(target, facts.claude))):
            fixes.append({"action": "upgrade_claude", "version": str(target),
                          "text": f"upgrade Claude Code to {target} or newer: `claude update`"})
    if not fixes and ollama_targets and claude_targets:
        both = replace(facts, ollama=max(ollama_targets), claude=max(claude_targets))
        if clears(both):
            fixes.append({"action": "upgrade_both", "version": "",
                          "text": f"upgrade Ollama on the server to {max(ollama_targets)} or "
                                  f"newer and Claude Code to {max(claude_targets)} or newer"})
    if not fixes:
        fixes += [{"action": "other", "version": "", "text": r.fix} for r in problems]
    return fixes


def newest_working_claude(rules: RuleSet, facts: Facts, candidates: Iterable[Version],
                          verified: Iterable[Version] = (),
                          failed: Iterable[Version] = ()) -> Version | None:
    """The newest candidate Claude Code version the rules call compatible with these facts
    (or a probe verified), skipping versions a probe saw fail."""
    good = set(verified)
    bad = set(failed)
    for version in sorted(set(candidates) | good, reverse=True):
        if version in bad:
            continue
        verdict = evaluate(rules, replace(facts, claude=version)).verdict
        if verdict == Verdict.COMPATIBLE or (verdict == Verdict.UNTESTED and version in good):
            return version
    return None


def candidate_versions(rules: RuleSet) -> set[Version]:
    """Claude Code versions the rules speak of: the reviewed one and every pin target."""
    found = {rules.reviewed_claude}
    found |= {r.pin_claude for r in rules.rules if r.pin_claude}
    return found


# ---------------------------------------------------------------------------------------------
# The store of verified pairs
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairRecord:
    claude: str
    ollama: str
    model: str
    date: str  # ISO 8601, UTC
    outcome: str  # "verified" | "failed"
    detail: str = ""
    checks: tuple[dict[str, Any], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"claude": self.claude, "ollama": self.ollama, "model": self.model,
                "date": self.date, "outcome": self.outcome, "detail": self.detail,
                "checks": list(self.checks)}


def store_path() -> Path:
    from aicommon.paths import client_paths

    return client_paths().state_dir / STORE_NAME


def read_store(path: Path | None = None) -> list[PairRecord]:
    """Recorded pairs; an unreadable store counts as empty (it is rewritten on the next
    record, the old file kept as a backup)."""
    target = path or store_path()
    try:
        doc = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    records = []
    for raw in doc.get("pairs", []) if isinstance(doc, dict) else []:
        if not isinstance(raw, dict):
            continue
        try:
            records.append(PairRecord(str(raw["claude"]), str(raw["ollama"]), str(raw["model"]),
                                      str(raw["date"]), str(raw["outcome"]),
                                      str(raw.get("detail", "")),
                                      tuple(c for c in raw.get("checks", [])
                                            if isinstance(c, dict))))
        except KeyError:
            continue
    return records


def find_record(records: Sequence[PairRecord], claude: str, ollama: str, model: str
                ) -> PairRecord | None:
    return next((r for r in reversed(records)
                 if (r.claude, r.ollama, r.model) == (claude, ollama, model)), None)


def record_pair(record: PairRecord, path: Path | None = None) -> Path:
    """Add (or replace) the record for its (Claude Code, Ollama, model) triple."""
    from aicommon.fsutil import atomic_write

    target = path or store_path()
    kept = [r for r in read_store(target)
            if (r.claude, r.ollama, r.model) != (record.claude, record.ollama, record.model)]
    doc = {"schema": 1, "pairs": [r.as_dict() for r in [*kept, record]]}
    atomic_write(target, json.dumps(doc, indent=2) + "\n", backup=False)
    return target


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ---------------------------------------------------------------------------------------------
# Facts from this machine and the server
# ---------------------------------------------------------------------------------------------


def claude_version(program: str | None = None) -> Version:
    """The installed Claude Code's version (`claude --version`)."""
    from aicommon.runner import run

    path = program or shutil.which("claude")
    if path is None:
        raise AiError("Claude Code is not installed (no `claude` on PATH)",
                      "install it: `curl -fsSL https://claude.ai/install.sh | bash`",
                      code="compat.claude_missing", exit_code=ExitCode.FAILURE)
    done = run([path, "--version"], timeout=60, hint="reinstall Claude Code")
    return parse_version(done.stdout or done.stderr, "Claude Code version")


@dataclass(frozen=True)
class ModelInfo:
    name: str
    families: tuple[str, ...]
    capabilities: tuple[str, ...] | None


def _auth_headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


def server_version(base_url: str, api_key: str) -> Version:
    from aicommon.httpclient import request

    resp = request("GET", base_url + "/api/version", headers=_auth_headers(api_key),
                   timeout=(3.05, 15.0), what=base_url)
    doc = resp.json() if resp.status == 200 else None
    if not isinstance(doc, dict) or not isinstance(doc.get("version"), str):
        raise AiError(f"{base_url}/api/version answered HTTP {resp.status} without a version",
                      "check the server with `ai-client status`", code="compat.no_version",
                      exit_code=ExitCode.FAILURE)
    return parse_version(doc["version"], "Ollama version")


def model_info(base_url: str, api_key: str, model: str) -> ModelInfo:
    """Family names and capabilities from `POST /api/show`."""
    from aicommon.httpclient import request

    resp = request("POST", base_url + "/api/show", json_body={"model": model},
                   headers=_auth_headers(api_key), timeout=(3.05, 30.0), what=base_url)
    if resp.status == 404:
        raise AiError(f"model {model!r} is not on the server",
                      "pass --model with a name `ai-client status` lists", code="compat.model",
                      exit_code=ExitCode.FAILURE)
    doc = resp.json() if resp.status == 200 else None
    if not isinstance(doc, dict):
        raise AiError(f"{base_url}/api/show answered HTTP {resp.status} for {model}",
                      "check the server with `ai-client status`", code="compat.show",
                      exit_code=ExitCode.FAILURE)
    details: dict[str, Any] = doc["details"] if isinstance(doc.get("details"), dict) else {}
    info: dict[str, Any] = doc["model_info"] if isinstance(doc.get("model_info"), dict) else {}
    names: list[str] = []
    for value in (details.get("family"), *(details.get("families") or []),
                  info.get("general.architecture")):
        if isinstance(value, str) and value and value not in names:
            names.append(value)
    caps = doc.get("capabilities")
    capabilities = tuple(str(c) for c in caps) if isinstance(caps, list) else None
    return ModelInfo(model, tuple(names), capabilities)


# ---------------------------------------------------------------------------------------------
# --probe: the request shapes Claude Code sends
# ---------------------------------------------------------------------------------------------

PROBE_TOOLS: list[dict[str, Any]] = [
    {"name": "Read", "description": "Read a file from the local filesystem.",
     "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}},
                      "required": ["file_path"]}},
    {"name": "Bash", "description": "Run a shell command.",
     "input_schema": {"type": "object", "properties": {"command": {"type": "string"}},
                      "required": ["command"]}},
]
PROBE_SYSTEM = [{"type": "text", "text": "You are Claude Code, a coding agent. Be brief.",
                 "cache_control": {"type": "ephemeral"}}]


@dataclass(frozen=True)
class ProbeCheck:
    name: str
    title: str
    outcome: str  # "pass" | "fail" | "skip"
    detail: str
    rule: str | None = None  # the rule whose fix applies when this fails

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "outcome": self.outcome,
                "detail": self.detail, "rule": self.rule}


@dataclass(frozen=True)
class ProbeRequest:
    name: str
    title: str
    body: dict[str, Any]
    rule: str | None
    needs: str | None = None  # a model capability


def probe_requests(model: str) -> list[ProbeRequest]:
    def body(messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {"model": model, "max_tokens": 1024, "stream": True, "system": PROBE_SYSTEM,
                "tools": PROBE_TOOLS, "messages": messages, **extra}

    first = [{"role": "user", "content": "Use the Read tool to read README.md."}]
    history = [{"role": "user", "content": "What does this repository do?"},
               {"role": "assistant", "content": "It is a proxy for a remote Ollama server."},
               {"role": "system", "content": "The user switched to plan mode: do not edit files."},
               {"role": "user", "content": "Summarise it in one sentence."}]
    return [
        ProbeRequest("stream_tools", "streamed /v1/messages?beta=true with tools",
                     body(first), "model-without-tools"),
        ProbeRequest("mid_conversation_system", "a system message mid-conversation",
                     body(history), "mid-conversation-system-message"),
        ProbeRequest("thinking", "extended thinking with tools",
                     body(first, max_tokens=4096,
                          thinking={"type": "enabled", "budget_tokens": 2048}),
                     "ollama-text-not-closed-before-thinking", needs="thinking"),
    ]


def _error_text(body: bytes) -> str:
    try:
        doc = json.loads(body)
    except ValueError:
        return body[:120].decode("utf-8", "replace").strip()
    err = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        return str(err["message"])
    if isinstance(err, str):
        return err
    return json.dumps(doc)[:120]


def run_probe(base_url: str, api_key: str, model: str, capabilities: Sequence[str] | None,
              claude: Version, progress: Callable[[str], None] | None = None
              ) -> list[ProbeCheck]:
    """Send Claude Code's request shapes; each answer must be a well-formed stream. A
    transport failure (no HTTP answer) raises AiError: the pair could not be checked."""
    import requests

    from aiclient.conformance import SseParser, check_anthropic_stream

    headers = {"Authorization": f"Bearer {api_key}", "x-api-key": api_key,
               "anthropic-version": "2023-06-01",
               "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
               "x-claude-code-session-id": str(uuid.uuid4()),
               "User-Agent": f"claude-cli/{claude} (external, cli)"}
    checks: list[ProbeCheck] = []
    with requests.Session() as session:
        for req in probe_requests(model):
            if req.needs and capabilities is not None and req.needs not in capabilities:
                checks.append(ProbeCheck(req.name, req.title, "skip",
                                         f"{model} lacks the {req.needs!r} capability"))
                continue
            try:
                with session.post(base_url + MESSAGES_PATH, json=req.body, headers=headers,
                                  stream=True, timeout=PROBE_TIMEOUT) as resp:
                    if resp.status_code != 200:
                        checks.append(ProbeCheck(
                            req.name, req.title, "fail",
                            f"HTTP {resp.status_code}: {_error_text(resp.content)}", req.rule))
                        continue
                    parser = SseParser()
                    events = []
                    for piece in resp.iter_content(chunk_size=None):
                        events += parser.feed(piece)
                    report = check_anthropic_stream(events, truncated=parser.pending)
            except requests.RequestException as exc:
                raise AiError(f"probe of {base_url} failed: no answer to {req.title} "
                              f"({type(exc).__name__})",
                              "check the server with `ai-client test`", code="compat.probe",
                              exit_code=ExitCode.FAILURE) from None
            if report.problems:
                more = f" (+{len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
                checks.append(ProbeCheck(req.name, req.title, "fail",
                                         f"malformed stream: {report.problems[0]}{more}",
                                         req.rule))
            else:
                kinds = ",".join(str(b.get("type")) for b in report.blocks)
                checks.append(ProbeCheck(req.name, req.title, "pass",
                                         f"{report.events} events, blocks [{kinds}], "
                                         f"stop_reason {report.finish}"))
            if progress is not None:
                last = checks[-1]
                progress(f"{last.outcome:<4} {last.title}: {last.detail}")
    return checks


# ---------------------------------------------------------------------------------------------
# check-compatibility
# ---------------------------------------------------------------------------------------------


@dataclass
class Target:
    """Where the server is and which model to judge (from the client settings)."""

    base_url: str
    api_key: str
    model: str | None


def target_from_settings(config: Path | None, model: str | None) -> Target:
    from aiclient.settings import load

    s = load(config)
    return Target(s.base_url, s.api_key, model or s.model or None)


def extra_base_urls() -> tuple[str, ...]:
    """Anthropic base URLs set outside our settings (a stray export can end in /v1)."""
    import os

    value = os.environ.get("ANTHROPIC_BASE_URL", "").strip()
    return (value,) if value else ()


def _settings_context(config: Path | None) -> int | None:
    """The context length setup recorded for the server (0 or missing: unknown)."""
    from aiclient.settings import load

    value = load(config).server.context_length
    return value if value > 0 else None


def _with_facts(rule: Rule, facts: Facts) -> dict[str, Any]:
    found = rule.as_dict()
    if rule.condition == "context_below_min" and facts.context is not None:
        found["symptom"] = context_problem(facts.context, rule.min_context) or rule.symptom
    return found


@dataclass
class CheckResult:
    verdict: Verdict
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> CompatExit:
        return EXIT_FOR_VERDICT[self.verdict]


def _probe_fixes(rules: RuleSet, facts: Facts, failed: Sequence[ProbeCheck]
                 ) -> list[dict[str, str]]:
    """Ways out of a failed probe: the fix of the rule behind each failed check, when it
    points somewhere else than where we are, else a Claude Code version verified here."""
    fixes: list[dict[str, str]] = []

    def add(action: str, version: str, text: str) -> None:
        fix = {"action": action, "version": version, "text": text}
        if fix not in fixes:
            fixes.append(fix)

    for check in failed:
        rule = rules.by_id(check.rule) if check.rule else None
        if rule is None:
            continue
        if rule.upgrade_ollama and facts.ollama < rule.upgrade_ollama:
            add("upgrade_ollama", str(rule.upgrade_ollama),
                f"upgrade Ollama on the server to {rule.upgrade_ollama} or newer")
        if rule.pin_claude and facts.claude > rule.pin_claude:
            add("pin_claude", str(rule.pin_claude),
                f"pin Claude Code at {rule.pin_claude}: `ai-client pin --claude "
                f"{rule.pin_claude}`")
    good = sorted({parse_version(r.claude) for r in read_store()
                   if r.outcome == "verified" and r.ollama == str(facts.ollama)
                   and r.model == (facts.model or "")}, reverse=True)
    if good and good[0] != facts.claude:
        add("pin_claude", str(good[0]), f"pin Claude Code at {good[0]} (verified with this "
                                        f"server and model): `ai-client pin --claude {good[0]}`")
    if not fixes:
        add("other", "", "the rules do not explain this failure: see the failed checks; "
                         "`ai-client test` shows more")
    return fixes


def _probe_fix(model: str | None) -> dict[str, str]:
    how = "ai-client check-compatibility --probe" + ("" if model else " --model M")
    return {"action": "probe", "version": "",
            "text": f"verify this pair on the server (takes seconds): `{how}`"}


def check(config: Path | None, model: str | None, probe: bool, *,
          progress: Callable[[str], None] | None = None,
          auto_probe: bool = True) -> CheckResult:
    """Installed Claude Code × the server's Ollama (× the model): the verdict and its fix.
    An untested pair is probed (and recorded) right away unless `auto_probe` is off.

    Raises AiError when the pair cannot be checked (the CLI maps that to exit 1)."""
    from aiclient import installs

    target = target_from_settings(config, model)
    context = _settings_context(config)
    claude = claude_version()
    inst = installs.detect_claude()
    ollama = server_version(target.base_url, target.api_key)
    info = model_info(target.base_url, target.api_key, target.model) if target.model else None
    facts = Facts(claude, ollama, target.model, info.families if info else (),
                  info.capabilities if info else None,
                  (target.base_url, *extra_base_urls()), context)
    rules = load_rules()
    ev = evaluate(rules, facts)
    verdict = ev.verdict
    fixes = suggest_fixes(rules, facts, ev)
    notes = [f"{r.id}: {r.symptom} ({r.fix})" for r in ev.findings if r.status == Status.OK]
    notes += list(ev.untested)
    if target.model is None:
        notes.append("no model given (--model, or `ai-client setup --model`): model-specific "
                     "rules were not evaluated")
    key = (str(claude), str(ollama), target.model or "")
    record = find_record(read_store(), *key)
    probe_data: dict[str, Any] | None = None
    auto = (not probe and auto_probe and verdict == Verdict.UNTESTED and record is None
            and target.model is not None and info is not None)
    if verdict == Verdict.UNTESTED and record is None and not (probe or auto):
        fixes.append(_probe_fix(target.model))
        notes.append("not probed" + (" (--no-probe)" if not auto_probe else
                                     " (no model to probe with)")
                     + ": run the probe to turn `untested` into verified or broken")
    checks: list[ProbeCheck] | None = None
    if auto:
        assert target.model is not None and info is not None
        try:
            checks = run_probe(target.base_url, target.api_key, target.model,
                               info.capabilities, claude, progress)
            notes.append("untested pair: probed it now (--no-probe skips this)")
        except AiError as err:  # an automatic probe never turns a verdict into "cannot check"
            notes.append(f"the probe could not run: {err.message}")
            fixes.append(_probe_fix(target.model))
    if probe:
        if target.model is None or info is None:
            raise AiError("--probe needs a model", "pass --model M", code="compat.no_model",
                          exit_code=ExitCode.FAILURE)
        checks = run_probe(target.base_url, target.api_key, target.model, info.capabilities,
                           claude, progress)
    if checks is not None:
        failed = [c for c in checks if c.outcome == "fail"]
        record = PairRecord(*key, date=now_iso(), outcome="failed" if failed else "verified",
                            detail="; ".join(f"{c.title}: {c.detail}" for c in failed),
                            checks=tuple(c.as_dict() for c in checks))
        stored = record_pair(record)
        probe_data = {"outcome": record.outcome, "checks": [c.as_dict() for c in checks],
                      "recorded_in": str(stored), "automatic": auto}
        if failed:
            fixes = fixes or _probe_fixes(rules, facts, failed)
    if record is not None:
        if record.outcome == "failed":
            verdict = Verdict.BROKEN
            if probe_data is None:  # an earlier probe's failure
                notes.append(f"a probe failed on {record.date[:10]}: {record.detail}")
                fixes = fixes or _probe_fixes(rules, facts, [
                    ProbeCheck(str(c.get("name")), str(c.get("title")), "fail",
                               str(c.get("detail")), c.get("rule"))
                    for c in record.checks if c.get("outcome") == "fail"])
        elif verdict in (Verdict.COMPATIBLE, Verdict.UNTESTED):
            verdict = Verdict.COMPATIBLE
    data = {
        "verdict": str(verdict),
        "claude_version": str(claude),
        "ollama_version": str(ollama),
        "model": target.model,
        "model_families": list(facts.families),
        "capabilities": list(facts.capabilities) if facts.capabilities is not None else None,
        "server": target.base_url,
        "claude_install": ({"method": str(inst.method), "path": str(inst.path),
                            "real": str(inst.real)} if inst is not None else None),
        "rules_reviewed": {"claude": str(rules.reviewed_claude),
                           "ollama": str(rules.reviewed_ollama)},
        "findings": [_with_facts(r, facts) for r in ev.findings if r.status != Status.OK],
        "fixes": fixes,
        "notes": notes,
        "verified": record.as_dict() if record is not None else None,
        "probe": probe_data,
    }
    return CheckResult(verdict, data)
