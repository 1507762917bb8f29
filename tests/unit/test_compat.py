"""Compatibility rules: version parsing, rule evaluation tables, fixes, the verified-pairs store,
and the settings.json merge that pin relies on (aiclient.compat, aiclient.pinning)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from packaging.version import Version

from aiclient import compat, pinning
from aiclient.compat import Facts, Verdict
from aicommon.errors import AiError, ExitCode

RULES = compat.load_rules()
QWEN35 = ("qwen3.5:35b", ("qwen35moe",))
QWEN3_CODER = ("qwen3-coder:30b", ("qwen3moe",))


def facts(claude: str, ollama: str, model: tuple[str, tuple[str, ...]] | None = None,
          capabilities: tuple[str, ...] | None = ("completion", "tools"),
          base_url: str = "http://studio.tail1234.ts.net:11434") -> Facts:
    return Facts(compat.parse_version(claude), compat.parse_version(ollama),
                 model[0] if model else None, model[1] if model else (), capabilities,
                 (base_url,))


# -- version parsing ---------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("2.1.211 (Claude Code)", "2.1.211", id="claude-version-output"),
    pytest.param("0.32.15", "0.32.15", id="ollama-stable"),
    pytest.param("0.33.0-rc2", "0.33.0rc2", id="ollama-rc-dash"),
    pytest.param("0.33.0rc2", "0.33.0rc2", id="ollama-rc-pep440"),
    pytest.param("v0.32.15", "0.32.15", id="leading-v"),
    pytest.param("aider 0.86.1", "0.86.1", id="aider-version-output"),
    pytest.param("0.32.15-3-gabc1234", "0.32.15", id="git-describe-suffix"),
    pytest.param("1.0.0-beta.1", "1.0.0b1", id="beta"),
    pytest.param("ollama version is 0.12.0\n", "0.12.0", id="ollama-cli-output"),
])
def test_parse_version(text: str, expected: str) -> None:
    assert str(compat.parse_version(text)) == expected


@pytest.mark.parametrize("text", ["", "Claude Code", "version x.y", "2"])
def test_parse_version_refuses_garbage(text: str) -> None:
    with pytest.raises(AiError, match="cannot read"):
        compat.parse_version(text)


@pytest.mark.parametrize(("newer", "older"), [
    pytest.param("0.10.0", "0.9.0", id="0.10-after-0.9"),
    pytest.param("2.1.100", "2.1.99", id="three-digit-patch"),
    pytest.param("0.33.0", "0.33.0-rc2", id="final-after-rc"),
    pytest.param("0.33.0-rc2", "0.33.0-rc1", id="rc2-after-rc1"),
    pytest.param("0.33.0-rc1", "0.32.15", id="rc-after-previous-stable"),
])
def test_versions_order_numerically(newer: str, older: str) -> None:
    assert compat.parse_version(newer) > compat.parse_version(older)


def test_string_comparison_would_get_it_wrong() -> None:  # the old scripts' defect (§8)
    assert "0.10.0" < "0.9.0" and "2.1.100" < "2.1.99"


# -- the rules file ----------------------------------------------------------------------------


def test_bundled_rules_cover_every_reference_row() -> None:
    ids = {r.id for r in RULES.rules}
    assert ids == {
        "ollama-without-messages-api", "base-url-ends-in-v1", "claude-hard-request-timeout",
        "claude-attribution-defeats-kv-cache", "ollama-zero-input-tokens",
        "ollama-thinking-not-closed-before-tool-use", "ollama-spurious-input-and-tool-arg-order",
        "ollama-text-not-closed-before-thinking", "mid-conversation-system-message",
        "claude-tool-reference-blocks", "claude-false-stream-idle-watchdog",
        "model-without-tools", "claude-needs-context"}
    assert RULES.reviewed_claude == Version("2.1.240")
    assert RULES.reviewed_ollama == Version("0.33.0rc2")
    for rule in RULES.rules:  # an upgrade target is the bound of its own specifier
        if rule.upgrade_ollama:
            assert str(rule.ollama) == f"<{rule.upgrade_ollama}", rule.id
        if rule.upgrade_claude:
            assert str(rule.claude) == f"<{rule.upgrade_claude}", rule.id


MINIMAL = 'schema = 1\n[reviewed]\nclaude = "2.1.240"\nollama = "0.32.15"\n'


@pytest.mark.parametrize(("rule", "message"), [
    pytest.param('id = "x"\nstatus = "bad"\nsymptom = "s"\nfix = "f"', "status must be",
                 id="status"),
    pytest.param('id = "x"\nstatus = "ok"\nollama = "<<1"\nsymptom = "s"\nfix = "f"',
                 "not a version specifier", id="specifier"),
    pytest.param('id = "x"\nstatus = "ok"\nmodel = "qwen("\nsymptom = "s"\nfix = "f"',
                 "model pattern", id="regex"),
    pytest.param('id = "x"\nstatus = "ok"\ncolour = "red"\nsymptom = "s"\nfix = "f"',
                 "unknown key", id="unknown-key"),
    pytest.param('id = "x"\nstatus = "ok"\nsymptom = "s"', "fix is required", id="no-fix"),
    pytest.param('id = "X Y"\nstatus = "ok"\nsymptom = "s"\nfix = "f"', "id must be",
                 id="bad-id"),
    pytest.param('id = "x"\nstatus = "ok"\ncondition = "moon"\nsymptom = "s"\nfix = "f"',
                 "unknown condition", id="condition"),
    pytest.param('id = "x"\nstatus = "ok"\nsymptom = "s"\nfix = "f"\npin_claude = "two"',
                 "not a PEP 440 version", id="version"),
])
def test_bad_rules_are_refused_with_the_entry_named(rule: str, message: str) -> None:
    with pytest.raises(AiError, match=message) as info:
        compat.parse_rules(MINIMAL + "[[rules]]\n" + rule + "\n", "test.toml")
    assert "test.toml" in info.value.message


def test_rules_file_without_reviewed_or_schema_is_refused() -> None:
    with pytest.raises(AiError, match="schema"):
        compat.parse_rules('[reviewed]\nclaude = "1"\nollama = "1"\n')
    with pytest.raises(AiError, match="reviewed"):
        compat.parse_rules("schema = 1\n")
    with pytest.raises(AiError, match="not valid TOML"):
        compat.parse_rules("schema = \n")


# -- evaluation tables -------------------------------------------------------------------------


@pytest.mark.parametrize(("f", "verdict", "rules"), [
    pytest.param(facts("2.1.154", "0.32.13", QWEN35), Verdict.BROKEN,
                 {"mid-conversation-system-message"}, id="qwen35-cc2.1.154-ollama0.32.13-broken"),
    pytest.param(facts("2.1.154", "0.32.14", QWEN35), Verdict.COMPATIBLE, set(),
                 id="qwen35-cc2.1.154-ollama0.32.14-compatible"),
    pytest.param(facts("2.1.153", "0.32.13", QWEN35), Verdict.COMPATIBLE, set(),
                 id="qwen35-cc2.1.153-pinned-compatible"),
    pytest.param(facts("2.1.240", "0.32.13", ("my-coder:latest", ("qwen35",))),
                 Verdict.BROKEN, {"mid-conversation-system-message"},
                 id="custom-name-qwen35-architecture-broken"),
    pytest.param(facts("2.1.240", "0.32.13", QWEN3_CODER), Verdict.COMPATIBLE, set(),
                 id="qwen3-coder-not-affected"),
    pytest.param(facts("2.1.240", "0.32.13"), Verdict.COMPATIBLE, set(),
                 id="no-model-model-rules-skipped"),
    pytest.param(facts("2.1.240", "0.32.14-rc1", QWEN35), Verdict.COMPATIBLE, set(),
                 id="pre-release-of-the-fix-counts-as-fixed"),
    pytest.param(facts("2.1.240", "0.32.13-rc2", QWEN35), Verdict.BROKEN,
                 {"mid-conversation-system-message"}, id="pre-release-before-the-fix-broken"),
    pytest.param(facts("2.1.240", "0.33.0-rc2", QWEN35), Verdict.COMPATIBLE, set(),
                 id="reviewed-pre-release-compatible"),
    pytest.param(facts("2.1.240", "0.33.0"), Verdict.UNTESTED, set(),
                 id="ollama-newer-than-reviewed-untested"),
    pytest.param(facts("2.1.241", "0.32.15"), Verdict.UNTESTED, set(),
                 id="claude-newer-than-reviewed-untested"),
    pytest.param(facts("2.1.100", "0.32.15"), Verdict.DEGRADED,
                 {"claude-hard-request-timeout"}, id="claude-5-minute-timeout-degraded"),
    pytest.param(facts("2.1.69", "0.32.15"), Verdict.BROKEN,
                 {"claude-tool-reference-blocks", "claude-hard-request-timeout"},
                 id="claude-tool-reference-broken"),
    pytest.param(facts("2.1.240", "0.15.4"), Verdict.BROKEN,
                 {"ollama-zero-input-tokens", "ollama-thinking-not-closed-before-tool-use",
                  "ollama-spurious-input-and-tool-arg-order",
                  "ollama-text-not-closed-before-thinking"}, id="old-ollama-several"),
    pytest.param(facts("2.1.240", "0.18.5"), Verdict.BROKEN,
                 {"ollama-spurious-input-and-tool-arg-order",
                  "ollama-text-not-closed-before-thinking"}, id="ollama-0.18"),
    pytest.param(facts("2.1.240", "0.32.2"), Verdict.COMPATIBLE, set(), id="ollama-0.32.2"),
    pytest.param(facts("2.1.240", "0.32.15", ("gemma3:1b", ("gemma3",)), ("completion",)),
                 Verdict.BROKEN, {"model-without-tools"}, id="model-without-tools"),
    pytest.param(facts("2.1.240", "0.32.15", base_url="http://box:11434/v1/"), Verdict.BROKEN,
                 {"base-url-ends-in-v1"}, id="base-url-ends-in-v1"),
])
def test_evaluation(f: Facts, verdict: Verdict, rules: set[str]) -> None:
    ev = compat.evaluate(RULES, f)
    assert ev.verdict == verdict
    assert {r.id for r in ev.problems} == rules


@pytest.mark.parametrize("claude", ["1.0.0", "2.1.100", "2.1.154", "2.1.240", "9.0.0"])
def test_ollama_0_13_is_broken_for_any_claude_code(claude: str) -> None:
    ev = compat.evaluate(RULES, facts(claude, "0.13.0", QWEN3_CODER))
    assert ev.verdict == Verdict.BROKEN
    assert "ollama-without-messages-api" in {r.id for r in ev.problems}
    fixes = compat.suggest_fixes(RULES, facts(claude, "0.13.0", QWEN3_CODER), ev)
    assert fixes[0]["action"] in ("upgrade_ollama", "upgrade_both")


def test_notes_never_change_the_verdict() -> None:
    ev = compat.evaluate(RULES, facts("2.1.154", "0.32.15"))
    assert ev.verdict == Verdict.COMPATIBLE
    assert {r.id for r in ev.findings} == {"claude-attribution-defeats-kv-cache",
                                           "claude-false-stream-idle-watchdog"}


@pytest.mark.parametrize(("name", "matches"), [
    pytest.param("qwen3.5:35b", True, id="qwen3.5"),
    pytest.param("qwen3.6-coder:30b", True, id="qwen3.6-coder"),
    pytest.param("qwen3.8:72b", True, id="qwen3.8"),
    pytest.param("qwen35moe", True, id="arch-qwen35moe"),
    pytest.param("hf.co/unsloth/Qwen3.5-35B-A3B-GGUF:Q4_K_M", True, id="hf-name"),
    pytest.param("qwen3-coder:30b", False, id="qwen3-coder"),
    pytest.param("qwen3:8b", False, id="qwen3-8b"),
    pytest.param("qwen3moe", False, id="arch-qwen3moe"),
    pytest.param("qwen3.7:14b", False, id="qwen3.7-not-listed"),
    pytest.param("qwen2.5-coder:7b", False, id="qwen2.5"),
])
def test_qwen_family_pattern(name: str, matches: bool) -> None:
    rule = RULES.by_id("mid-conversation-system-message")
    assert rule is not None and rule.model is not None
    assert bool(rule.model.search(name)) is matches


def test_broken_qwen_pair_gets_both_fixes_each_checked() -> None:
    f = facts("2.1.154", "0.32.13", QWEN35)
    fixes = compat.suggest_fixes(RULES, f, compat.evaluate(RULES, f))
    assert [(x["action"], x["version"]) for x in fixes] == [("upgrade_ollama", "0.32.14"),
                                                             ("pin_claude", "2.1.153")]
    assert "ai-client pin --claude 2.1.153" in fixes[1]["text"]


def test_fixes_name_the_highest_needed_upgrade() -> None:
    f = facts("2.1.240", "0.17.0")
    fixes = compat.suggest_fixes(RULES, f, compat.evaluate(RULES, f))
    assert fixes == [{"action": "upgrade_ollama", "version": "0.32.2",
                      "text": "upgrade Ollama on the server to 0.32.2 or newer"}]
    f = facts("2.1.60", "0.32.15")
    fixes = compat.suggest_fixes(RULES, f, compat.evaluate(RULES, f))
    assert [(x["action"], x["version"]) for x in fixes] == [("upgrade_claude", "2.1.101")]
    f = facts("2.1.60", "0.17.0")
    fixes = compat.suggest_fixes(RULES, f, compat.evaluate(RULES, f))
    assert fixes[0]["action"] == "upgrade_both"


def test_a_synthetic_rule_compares_versions_numerically() -> None:
    rules = compat.parse_rules(MINIMAL + '[[rules]]\nid = "old"\nollama = "<0.10.0"\n'
                                         'status = "broken"\nsymptom = "s"\nfix = "f"\n')
    assert compat.evaluate(rules, facts("2.1.240", "0.9.0")).verdict == Verdict.BROKEN
    assert compat.evaluate(rules, facts("2.1.240", "0.10.0")).verdict == Verdict.COMPATIBLE


def test_newest_working_claude() -> None:
    cands = compat.candidate_versions(RULES) | {Version("2.1.200")}
    f = facts("2.1.240", "0.32.13", QWEN35)
    assert compat.newest_working_claude(RULES, f, cands) == Version("2.1.153")
    f = facts("2.1.240", "0.32.15", QWEN35)
    assert compat.newest_working_claude(RULES, f, cands) == Version("2.1.240")
    # a verified version beyond the rules counts; a failed one never does
    assert compat.newest_working_claude(RULES, f, cands, verified=[Version("2.1.250")]) \
        == Version("2.1.250")
    assert compat.newest_working_claude(RULES, f, cands, failed=[Version("2.1.240")]) \
        == Version("2.1.200")
    assert compat.newest_working_claude(RULES, facts("2.1.240", "0.13.0"), cands) is None


def test_exit_codes_are_the_documented_ones() -> None:
    assert [int(compat.EXIT_FOR_VERDICT[v]) for v in Verdict] == [0, 4, 4, 3]
    assert compat.CompatExit.CANNOT_CHECK == ExitCode.FAILURE == 1


# -- the verified-pairs store ------------------------------------------------------------------


def test_store_records_replace_by_pair_and_survive_corruption(tmp_path: Path) -> None:
    store = tmp_path / "pairs.json"
    rec = compat.PairRecord("2.1.240", "0.32.15", "m", "2026-10-01T00:00:00Z", "failed", "500")
    compat.record_pair(rec, store)
    compat.record_pair(compat.PairRecord("2.1.153", "0.32.15", "m", "2026-10-01T00:00:00Z",
                                         "verified"), store)
    compat.record_pair(compat.PairRecord("2.1.240", "0.32.15", "m", "2026-10-02T00:00:00Z",
                                         "verified"), store)
    records = compat.read_store(store)
    assert len(records) == 2
    found = compat.find_record(records, "2.1.240", "0.32.15", "m")
    assert found is not None and found.outcome == "verified" and found.date.startswith("2026-10-02")
    assert compat.find_record(records, "2.1.240", "0.32.15", "other") is None
    store.write_text("{not json")
    assert compat.read_store(store) == []


# -- settings.json merge (what pin writes) ------------------------------------------------------


def test_settings_merge_keeps_every_other_key_and_value(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    original = {"model": "opus", "permissions": {"allow": ["Bash(ls:*)"], "deny": []},
                "env": {"FOO": "bar", "NUM": "1"}, "autoUpdatesChannel": "stable",
                "cleanupPeriodDays": 30, "ratio": 1.5, "nested": {"a": [1, {"b": None}]},
                "text": "héllo ✓", "includeCoAuthoredBy": False}
    path.write_text(json.dumps(original, indent=4))
    plan = pinning.plan_autoupdater_off(path)
    assert plan.changes and plan.previous is None and plan.had_env
    new = json.loads(plan.after)
    assert new.pop("env") == {"FOO": "bar", "NUM": "1", "DISABLE_AUTOUPDATER": "1"}
    assert new == {k: v for k, v in original.items() if k != "env"}
    assert list(json.loads(plan.after)) == list(original)  # key order kept


def test_settings_merge_without_env_and_when_already_set(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text('{"model": "sonnet"}')
    assert json.loads(pinning.plan_autoupdater_off(path).after) == {
        "model": "sonnet", "env": {"DISABLE_AUTOUPDATER": "1"}}
    path.write_text('{"env": {"DISABLE_AUTOUPDATER": "1"}}')
    assert not pinning.plan_autoupdater_off(path).changes
    path.write_text('{"env": {"DISABLE_AUTOUPDATER": "0"}}')
    plan = pinning.plan_autoupdater_off(path)
    assert plan.changes and plan.previous == "0"
    missing = pinning.plan_autoupdater_off(tmp_path / "none.json")
    assert missing.before is None and json.loads(missing.after) == {
        "env": {"DISABLE_AUTOUPDATER": "1"}}


@pytest.mark.parametrize("text", ['{"model": "opus",}', "[1, 2]", '{"env": "x"}', "{"])
def test_unparseable_settings_are_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "settings.json"
    path.write_text(text)
    with pytest.raises(AiError, match="not touching it") as info:
        pinning.plan_autoupdater_off(path)
    assert info.value.exit_code == ExitCode.CONFIG
    assert path.read_text() == text


def test_restore_settings_semantically_after_the_user_edited(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text('{"model": "opus"}\n')
    rec = pinning.apply_settings(pinning.plan_autoupdater_off(path))
    doc = json.loads(path.read_text())
    doc["theme"] = "dark"  # edited after pin: only our key goes
    path.write_text(json.dumps(doc))
    assert "removed env.DISABLE_AUTOUPDATER" in pinning.restore_settings(rec)
    assert json.loads(path.read_text()) == {"model": "opus", "theme": "dark"}


def test_importing_the_version_commands_stays_light() -> None:
    import subprocess
    import sys

    code = ("import sys, aiclient.cli_versions\n"
            "heavy = [m for m in ('requests', 'packaging', 'tomllib', 'tomli_w', 'platformdirs',"
            " 'aiclient.compat', 'aiclient.pinning') if m in sys.modules]\n"
            "print(','.join(heavy))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, check=True)
    assert res.stdout.strip() == ""
