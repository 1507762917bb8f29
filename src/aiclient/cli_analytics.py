"""`ai-client analytics`: thin adapters over aiclient.analytics (imported inside each command,
so `import aiclient.cli` never loads sqlite3)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, NoReturn

import click

from aicommon.clikit import AppContext, PathParam, begin, finish, json_option
from aicommon.errors import ExitCode

if TYPE_CHECKING:
    from pathlib import Path

    from aiclient.analytics.records import IterationRecord, RunInfo


@click.group("analytics")
def analytics() -> None:
    """Measure real Claude Code runs (cloud or Ollama) and compare them."""


def _exit_with(app: AppContext, data: Any, human: Any, errors: list[dict[str, str | None]],
               exit_code: int) -> NoReturn:
    app.out.result(app.command, data, human, ok=not errors, errors=errors)
    sys.exit(exit_code)


@analytics.command("run")
@click.option("--backend", type=click.Choice(["cloud", "ollama"]), default="cloud",
              show_default=True,
              help="cloud: your environment untouched; ollama: exactly what claude-ollama sets.")
@click.option("--model", metavar="M", help="Model (ollama default: the settings' model; cloud "
                                           "default: Claude Code's own).")
@click.option("--iterations", "-n", type=click.IntRange(min=1), default=1, show_default=True,
              help="How many times to run the prompt.")
@click.option("--prompt-file", type=PathParam(exists=True, dir_okay=False),
              help="Prompt template file ({{goal}} and {{iteration}} are substituted).")
@click.option("--prompt", metavar="TEXT", help="Prompt template text.")
@click.option("--goal", metavar="TEXT", help="Substituted literally for {{goal}} (alone: the "
                                             "prompt is the goal).")
@click.option("--stop-file", type=PathParam(dir_okay=False),
              help="Stop after the iteration in which this file appears (then remove it).")
@click.option("--push", is_flag=True, help="Run `git push` after each iteration (git is never "
                                           "run otherwise).")
@click.option("--label", default="", metavar="TEXT", help="Free text shown by list/compare.")
@click.option("--iteration-timeout", type=click.FloatRange(min=1), metavar="SECONDS",
              help="Stop an iteration's claude after this long (default: no limit).")
@click.option("--keep-going", is_flag=True,
              help="Run the remaining iterations after a failed one (default: stop).")
@click.argument("claude_args", nargs=-1, type=click.UNPROCESSED, metavar="[-- CLAUDE ARGS]")
@json_option
@click.pass_context
def run_cmd(ctx: click.Context, backend: str, model: str | None, iterations: int,
            prompt_file: Path | None, prompt: str | None, goal: str | None,
            stop_file: Path | None, push: bool, label: str, iteration_timeout: float | None,
            keep_going: bool, claude_args: tuple[str, ...], as_json: bool) -> None:
    """Run `claude -p` N times on the cloud or on Ollama and record every stream.

    \b
    Example: ai-client analytics run --backend ollama -n 5 --prompt-file task.md \\
               --goal 'add tests' -- --permission-mode acceptEdits
    """
    app = begin(ctx, as_json)
    import os

    from aiclient.analytics import runner, text

    class Live(runner.Progress):
        def started(self, info: RunInfo) -> None:
            app.out.info(f"run {info.id}: {info.backend} ({info.base_url}), model "
                         f"{info.model or 'default'}, claude {info.claude_version or '?'}; "
                         f"logs in {info.directory}")

        def iteration_started(self, n: int, total: int) -> None:
            app.out.detail(f"iteration {n}/{total} started")

        def tool(self, n: int, name: str, sub: bool) -> None:
            app.out.detail(f"  {'subagent ' if sub else ''}tool {name}")

        def iteration_finished(self, rec: IterationRecord, total: int, backend: str) -> None:
            app.out.info(text.iteration_line(rec, total, backend))

        def note(self, message: str) -> None:
            app.out.info(message)

    template = runner.resolve_prompt(prompt, prompt_file, goal)
    chosen = runner.resolve_backend(backend, model, app.config, os.environ)
    spec = runner.RunSpec(chosen, template, goal, iterations, stop_file, push,
                          tuple(claude_args), label, iteration_timeout, keep_going)
    result = runner.run(spec, Live())
    errors: list[dict[str, str | None]] = [
        {"code": "analytics.iteration_failed", "message": problem,
         "hint": f"see the raw logs in {result.info.directory}"} for problem in result.problems]
    if result.interrupted:
        app.out.info(f"interrupted: run {result.info.id} finalised "
                     f"({len(result.records)} iterations recorded)")
        errors.append({"code": "interrupted", "message": "the run was interrupted",
                       "hint": None})
        code = ExitCode.INTERRUPTED
    else:
        code = ExitCode.FAILURE if result.problems else ExitCode.OK
    _exit_with(app, result.summary, text.run_report, errors, code)


@analytics.command("list")
@click.option("--limit", type=click.IntRange(min=1), help="Only the newest N runs.")
@json_option
@click.pass_context
def list_cmd(ctx: click.Context, limit: int | None, as_json: bool) -> None:
    """Recorded runs, newest first."""
    app = begin(ctx, as_json)
    from aiclient.analytics import text
    from aiclient.analytics.store import Store

    with Store.open() as store:
        runs = []
        for info, summary in store.list_runs(limit):
            totals = summary.get("totals", {})
            tokens = totals.get("tokens", {})
            runs.append({"id": info.id, "created_at": info.created_at,
                         "finished_at": info.finished_at, "status": info.status,
                         "source": info.source, "backend": info.backend, "model": info.model,
                         "label": info.label, "iterations": totals.get("iterations", 0),
                         "iterations_planned": info.iterations_planned,
                         "iterations_ok": totals.get("iterations_ok", 0),
                         "wall_s": totals.get("wall_s"),
                         "tokens": sum(int(v) for v in tokens.values()),
                         "directory": info.directory})
    finish(app, {"runs": runs}, lambda d: text.list_table(d["runs"]))


def _summary(ref: str) -> dict[str, Any]:
    from aiclient.analytics.store import Store
    from aiclient.analytics.summary import summarize

    with Store.open() as store:
        info, records = store.load(ref)
    return summarize(info, records)


@analytics.command("show")
@click.argument("run_ref", metavar="RUN")
@json_option
@click.pass_context
def show_cmd(ctx: click.Context, run_ref: str, as_json: bool) -> None:
    """One run in full (RUN: an id, a unique prefix of one, or `last`)."""
    app = begin(ctx, as_json)
    from aiclient.analytics import text

    finish(app, _summary(run_ref), text.run_report)


@analytics.command("compare")
@click.argument("run_a", metavar="RUN_A")
@click.argument("run_b", metavar="RUN_B")
@click.option("--html", "html_file", type=PathParam(dir_okay=False),
              help="Also write one self-contained HTML page with charts.")
@json_option
@click.pass_context
def compare_cmd(ctx: click.Context, run_a: str, run_b: str, html_file: Path | None,
                as_json: bool) -> None:
    """Two runs side by side: figures, differences and findings computed from them."""
    app = begin(ctx, as_json)
    from aiclient.analytics import text
    from aiclient.analytics.compare import compare

    a, b = _summary(run_a), _summary(run_b)
    result = compare(a, b)
    if html_file is not None:
        from aiclient.analytics.report import render_html
        from aicommon.fsutil import atomic_write

        atomic_write(html_file, render_html(a, b, result))
        result["html"] = str(html_file)
        app.out.info(f"wrote {html_file}")
    finish(app, result, text.compare_report)


@analytics.command("import")
@click.argument("files", nargs=-1, required=True,
                type=PathParam(exists=True, dir_okay=False))
@click.option("--backend", type=click.Choice(["cloud", "ollama"]),
              help="Default: inferred from the models in the logs.")
@click.option("--model", metavar="M", help="Model label (default: from the logs).")
@click.option("--label", default="", metavar="TEXT", help="Free text shown by list/compare.")
@json_option
@click.pass_context
def import_cmd(ctx: click.Context, files: tuple[Path, ...], backend: str | None,
               model: str | None, label: str, as_json: bool) -> None:
    """Analyse existing stream-json logs (e.g. old iteration-N.json files) into one run."""
    app = begin(ctx, as_json)
    from aiclient.analytics import text
    from aiclient.analytics.importer import import_logs

    info, _, summary = import_logs(list(files), backend, model, label)
    app.out.info(f"imported {len(files)} log(s) as run {info.id}")
    finish(app, summary, text.run_report)
