"""Record REAL Claude Code stream-json with a subagent, against the Ollama simulator.

`record_subagent_run(claude, root)` runs `claude -p … --output-format stream-json --verbose`
(call it inside `realclients.loopback_only()`) against an OllamaSimulator whose tool decision
is scripted for this run: the main thread's first request is answered with a call to the
subagent tool (`Agent`, or `Task` in older versions) with a valid `subagent_type`, every other
request with text. Claude Code itself produces everything else (system/task_* events, usage,
modelUsage). `scrub()` replaces the temp paths so a recording can be kept as a fixture.

    python3 -m tests.support.streamrec 2.1.332 \
        tests/fixtures/stream-json/versions-subagent-2.1.332.jsonl
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support import ollama_sim
from tests.support.ollama_sim import OllamaSimulator

MODEL = "qwen3-coder:30b"
SPAWN = "SPAWN-A-SUBAGENT"
PROMPT = f"{SPAWN}: ask a helper agent to say hello, then report what it said."
SUBAGENT_PROMPT = "Say hello in one short sentence."
SCRUBBED = "/tmp/fixture"


def _scripted_tools(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The subagent tool when the last user turn (trailing system messages skipped) is our
    prompt and no tool result has come back yet; otherwise text."""
    tools = data.get("tools")
    messages = [m for m in data.get("messages") or [] if isinstance(m, dict)]
    while messages and messages[-1].get("role") == "system":
        messages.pop()
    if not isinstance(tools, list) or not messages or messages[-1].get("role") != "user":
        return []
    texts, tool_result = ollama_sim._message_texts(messages[-1].get("content"))
    text = "\n".join(texts)
    if tool_result or SPAWN not in text:
        return []
    names = {t.get("name") for t in tools if isinstance(t, dict)}
    name = "Agent" if "Agent" in names else "Task" if "Task" in names else None
    if name is None:
        return []
    return [(name, {"description": "Say hello", "prompt": SUBAGENT_PROMPT,
                    "subagent_type": "general-purpose"})]


@contextmanager
def scripted_simulator() -> Iterator[OllamaSimulator]:
    with OllamaSimulator() as sim:
        sim.fixed_ids = False
        sim.decide_tools = _scripted_tools
        yield sim


def claude_env(home: Path, base_url: str) -> dict[str, str]:
    return {"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
            "ANTHROPIC_BASE_URL": base_url, "ANTHROPIC_AUTH_TOKEN": "ollama",
            "ANTHROPIC_API_KEY": "", "ANTHROPIC_MODEL": MODEL,
            "ANTHROPIC_SMALL_FAST_MODEL": MODEL, "ANTHROPIC_DEFAULT_HAIKU_MODEL": MODEL,
            "CLAUDE_CODE_SUBAGENT_MODEL": MODEL,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_MAX_RETRIES": "1", "CI": "1"}


def record_subagent_run(claude: Path, root: Path, timeout: float = 240) -> bytes:
    """The raw stream-json of one real run (stdout bytes); raises on a non-zero exit."""
    home, project = root / "home", root / "home" / "proj"
    project.mkdir(parents=True, exist_ok=True)
    with scripted_simulator() as sim:
        done = subprocess.run(
            [str(claude), "-p", PROMPT, "--output-format", "stream-json", "--verbose",
             "--model", MODEL, "--max-turns", "6"],
            cwd=project, env=claude_env(home, sim.url), capture_output=True, timeout=timeout,
            stdin=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"claude exited {done.returncode}: {done.stderr.decode()[-2000:]}"
                           f"\n{done.stdout.decode()[-2000:]}")
    return done.stdout


def scrub(raw: bytes, root: Path) -> bytes:
    """The temp root (and Claude Code's dash-munged form of it, as in
    `/tmp/claude-0/-tmp-tmpabc-home-proj/`) replaced by a fixed path."""
    munged = re.sub(r"[^A-Za-z0-9]", "-", root.as_posix())
    return raw.replace(os.fsencode(root), os.fsencode(SCRUBBED)).replace(
        munged.encode(), SCRUBBED.replace("/", "-").encode())


def main(argv: list[str]) -> int:
    import tempfile

    from tests.support.realclients import claude_bin, loopback_only

    version, dest = argv
    with tempfile.TemporaryDirectory() as tmp, loopback_only():
        root = Path(tmp).resolve()
        raw = record_subagent_run(claude_bin(version), root)
        Path(dest).write_bytes(scrub(raw, root))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
