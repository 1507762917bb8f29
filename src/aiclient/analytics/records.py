"""The two records a run is made of: the run's identity and one entry per iteration."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from aiclient.analytics.stats import IterationStats

BACKENDS = ("cloud", "ollama")
# iteration outcomes
OK = "ok"
ERROR = "error"  # claude exited non-zero or its result event is an error
NO_RESULT = "no-result"  # exited 0 without a result event (truncated stream)
KILLED = "killed"  # ended by a signal we did not send
TIMEOUT = "timeout"  # we killed it: --iteration-timeout
INTERRUPTED = "interrupted"  # Ctrl-C / SIGTERM
# run outcomes
RUNNING = "running"
COMPLETE = "complete"  # every planned iteration ran
STOPPED = "stopped"  # the stop file appeared
FAILED = "failed"  # an iteration failed (without --keep-going)
IMPORTED = "imported"


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class RunInfo:
    id: str
    created_at: str
    backend: str  # cloud | ollama | unknown
    directory: str
    source: str = "run"  # run | import
    status: str = RUNNING
    finished_at: str | None = None
    base_url: str | None = None
    model: str | None = None
    claude_version: str | None = None
    iterations_planned: int = 0
    prompt_sha256: str | None = None
    goal: str | None = None
    label: str = ""
    argv: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "label": self.label, "backend": self.backend,
                "base_url": self.base_url, "model": self.model,
                "claude_version": self.claude_version, "created_at": self.created_at,
                "finished_at": self.finished_at, "status": self.status, "source": self.source,
                "iterations_planned": self.iterations_planned,
                "prompt_sha256": self.prompt_sha256, "goal": self.goal,
                "directory": self.directory, "argv": list(self.argv)}


@dataclass
class IterationRecord:
    n: int
    started_at: str
    status: str
    raw_file: str  # name inside the run directory
    stats: IterationStats
    finished_at: str | None = None
    exit_code: int | None = None  # negative: killed by that signal
    wall_s: float | None = None  # measured by the runner (None for imports)
    error: str | None = None
    push: str | None = None  # outcome of `git push` with --push

    @property
    def ok(self) -> bool:
        return self.status == OK
