"""Claude Code's minimum context as data: the `claude-needs-context` rule (issue 14 §3)."""

from __future__ import annotations

import pytest
from packaging.version import Version

from aiclient import compat
from aiclient.compat import Facts, Verdict
from aicommon.errors import AiError

RULES = compat.load_rules()
HEAD = 'schema = 1\n[reviewed]\nclaude = "2.1.240"\nollama = "0.32.15"\n[[rules]]\n'


@pytest.mark.parametrize(("claude", "minimum"), [("2.1.332", 32768), ("2.1.154", 32768),
                                                  ("2.1.153", None), ("2.0.1", None)])
def test_minimum_per_claude_code_version(claude: str, minimum: int | None) -> None:
    assert compat.min_context(RULES, Version(claude)) == minimum
    assert compat.min_context(RULES, None) == 32768  # unknown version: assume affected


@pytest.mark.parametrize(("context", "verdict"), [(8192, Verdict.BROKEN),
                                                  (32767, Verdict.BROKEN),
                                                  (32768, Verdict.COMPATIBLE),
                                                  (None, Verdict.COMPATIBLE)])
def test_the_rule_judges_the_servers_context(context: int | None, verdict: Verdict) -> None:
    facts = Facts(Version("2.1.240"), Version("0.32.15"), context=context)
    ev = compat.evaluate(RULES, facts)
    assert ev.verdict == verdict
    assert ("claude-needs-context" in {r.id for r in ev.findings}) == (verdict == Verdict.BROKEN)


def test_context_problem_line() -> None:
    assert compat.context_problem(8192, 32768) == (
        'Claude Code cannot work with context 8192 (needs >= 32768): it answers "Prompt is '
        'too long" and sends nothing')
    assert compat.context_problem(32768, 32768) is None
    assert compat.context_problem(0, 32768) is None  # unknown context: no claim
    assert compat.context_problem(8192, None) is None


@pytest.mark.parametrize("rule", [
    'id = "x"\nstatus = "broken"\nsymptom = "s"\nfix = "f"\ncondition = "context_below_min"',
    'id = "x"\nstatus = "broken"\nsymptom = "s"\nfix = "f"\nmin_context = 1024',
    'id = "x"\nstatus = "broken"\nsymptom = "s"\nfix = "f"\ncondition = "context_below_min"\n'
    'min_context = "32k"',
])
def test_min_context_and_its_condition_go_together(rule: str) -> None:
    with pytest.raises(AiError, match="context_below_min goes with a positive integer"):
        compat.parse_rules(HEAD + rule)
