"""`ai-client test`: the conformance suite as a command (thin: options -> run_suite -> render)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from aicommon.clikit import begin, finish, json_option
from aicommon.errors import ExitCode

if TYPE_CHECKING:
    from pathlib import Path


@dataclass(frozen=True)
class Target:
    base_url: str
    api_key: str
    model: str | None


NO_TOKEN_KEY = "ollama"  # what the clients send when the gateway checks no token


def resolve_target(config: Path | None, server: str | None, token: str | None,
                   model: str | None) -> Target:
    """Server, key and model: from the options, else from the client settings.

    With --server the settings are not read (test any server); without it they must exist.
    """
    if server is not None:
        return Target(server, token or NO_TOKEN_KEY, model or None)
    try:
        from aiclient.settings import load
    except ImportError:  # client settings not available in this build
        raise click.UsageError("--server is required (no client settings to read)") from None
    settings = load(config)
    return Target(settings.base_url, token or settings.api_key, model or settings.model or None)


def _figure(value: Any, unit: str = "", digits: int = 2) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}{unit}"


def render(data: dict[str, Any]) -> str:
    """The human report: a table of checks, the performance figures, one summary line."""
    from aicommon.output import table

    checks = [[c["name"], c["status"], c["detail"]] for c in data["checks"]]
    lines = [f"server {data['base_url']}  model {data['model']}  "
             f"(capabilities: {', '.join(data['capabilities']) or 'none'})", "",
             table(checks, ["CHECK", "RESULT", "DETAIL"])]
    if data["performance"]:
        perf = [[p["api"], _figure(p["ttft_s"], " s"), _figure(p["tokens_per_second"], "", 1),
                 str(p["tokens"]), _figure(p["total_s"], " s"), p["note"]]
                for p in data["performance"]]
        lines += ["", table(perf, ["STREAM", "FIRST TOKEN", "TOKENS/S", "TOKENS", "TOTAL",
                                   "NOTE"])]
    s = data["summary"]
    verdict = "FAILED" if s["fail"] else "passed"
    lines += ["", f"{verdict}: {s['pass']} passed, {s['fail']} failed, {s['skip']} skipped"
                  + (" (--quick)" if data["quick"] else "")]
    return "\n".join(lines)


def claude_context_check(config: Path | None) -> Any:
    """Claude Code's minimum context against the context setup recorded (issue 14 §3)."""
    from aiclient.compat import CONTEXT_FIX
    from aiclient.conformance import CheckResult, Status
    from aiclient.settings import load
    from aiclient.setup import claude_context_problem

    ctx = load(config).server.context_length
    problem = claude_context_problem(ctx)
    title = "Claude Code's minimum context"
    if problem:
        return CheckResult("claude.context", title, Status.FAIL, f"{problem}; fix: {CONTEXT_FIX}",
                           0.0)
    if ctx <= 0:
        return CheckResult("claude.context", title, Status.SKIP,
                           "context unknown: run `ai-client setup`", 0.0)
    return CheckResult("claude.context", title, Status.PASS, f"context {ctx} is enough", 0.0)


@click.command("test")
@click.option("--model", "-m", default=None,
              help="Model to test (default: from settings, else the first tools-capable one).")
@click.option("--quick", is_flag=True, help="Only the basic checks (models, one request and "
                                            "one stream per API, admin refusal).")
@click.option("--server", default=None, metavar="URL",
              help="Server to test: host, host:port or http://host:port (default: settings).")
@click.option("--token", default=None, metavar="T",
              help="Device token (default: from settings; none with --server).")
@json_option
@click.pass_context
def test(ctx: click.Context, model: str | None, quick: bool, server: str | None,
         token: str | None, as_json: bool) -> None:
    """Check the server end to end, as Aider and Claude Code will use it."""
    app = begin(ctx, as_json)
    target = resolve_target(app.config, server, token, model)
    from urllib.parse import urlsplit

    from aiclient.conformance import run_suite
    from aiclient.discovery import local_tailscale_problem

    host = urlsplit(target.base_url).hostname
    blocked = local_tailscale_problem(host) if host else None
    if blocked is not None:  # e.g. userspace networking here: nothing could pass
        raise blocked

    app.out.detail(f"testing {target.base_url}")
    result = run_suite(target.base_url, target.api_key, target.model, quick,
                       progress=app.out.detail)
    if server is None:
        result.checks.append(claude_context_check(app.config))
    finish(app, result.as_dict(), render, ok=result.ok,
           exit_code=ExitCode.OK if result.ok else ExitCode.FINDINGS)
