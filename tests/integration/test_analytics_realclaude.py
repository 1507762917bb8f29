"""The analytics parser on stream-json that REAL Claude Code writes now (issue 16 §3): each
pinned version runs a subagent against the simulator inside a loopback-only namespace
(tests/support/streamrec.py records the committed fixtures the same way)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from aiclient.analytics.parser import parse_stream
from tests.support.realclients import CLAUDE_CODE_VERSIONS, claude_bin, loopback_only
from tests.support.streamrec import record_subagent_run


@pytest.mark.parametrize("version", CLAUDE_CODE_VERSIONS)
def test_real_subagent_run_parses_without_unknown_events(tmp_path: Path, version: str) -> None:
    with loopback_only():
        raw = record_subagent_run(claude_bin(version), tmp_path)
    st = parse_stream(io.BytesIO(raw))
    assert st.claude_code_version == version and st.has_result
    assert st.unknown_events == {} and st.malformed_lines == 0
    assert st.subagent_spawns == 1 and st.subagent_threads == 1
    assert st.api_calls_sub == 1  # 2.1.153: from task_notification; newer: its own line
    prompt = st.message_tokens_main.prompt_total + st.message_tokens_sub.prompt_total
    assert prompt == sum(u.tokens.prompt_total for u in st.model_usage.values())
