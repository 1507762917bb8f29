"""`ai-server models …`: thin adapters over aiserver.models and aiserver.ollama."""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import click

from aicommon.clikit import begin, finish, json_option
from aicommon.errors import ExitCode


@click.group()
def models() -> None:
    """List, pull, warm (preload) and unload the models of this machine's Ollama."""


@models.command("list")
@json_option
@click.pass_context
def list_models(ctx: click.Context, as_json: bool) -> None:
    """Show local models and which are loaded.

    Size, parameters, quantization, trained context length, and for loaded models the
    context length they run with and when they unload.
    """
    app = begin(ctx, as_json)
    from datetime import datetime

    from aicommon.errors import AiError
    from aiserver import models as core
    from aiserver.ollama import client_for
    from aiserver.settings import load

    settings = load(app.config)
    client = client_for(settings)
    tags = client.tags()
    loaded = client.ps()
    context: dict[str, int | None] = {}
    for tag in tags:  # /api/show per model: a loopback metadata read, cheap
        name = str(tag.get("name", ""))
        try:
            context[name] = client.context_length(name)
        except AiError:
            context[name] = None
    rows = core.model_rows(tags, loaded, context, datetime.now().astimezone())
    finish(app, {"models": rows}, lambda d: core.human_list(d["models"]))


@models.command("pull")
@click.argument("name")
@json_option
@click.pass_context
def pull(ctx: click.Context, name: str, as_json: bool) -> None:
    """Download a model from the Ollama library.

    Progress goes to stderr (a redrawn line on a terminal, plain lines otherwise); Ctrl-C
    stops the download.
    """
    app = begin(ctx, as_json)
    import time

    from aiserver import models as core
    from aiserver.ollama import client_for
    from aiserver.settings import load

    settings = load(app.config)
    client = client_for(settings)
    err = app.out.stderr
    tty = bool(getattr(err, "isatty", lambda: False)())
    progress = core.PullProgress(tty=tty, width=_columns(err) if tty else 100)
    show = app.verbosity >= 0
    try:
        with contextlib.closing(client.pull(name)) as events:
            for event in events:
                text = progress.feed(event, time.monotonic())
                if show and text:
                    err.write(text)
                    err.flush()
    finally:  # also on Ctrl-C and errors: end the progress line before anything else prints
        if show:
            err.write(progress.close())
            err.flush()
    data = {"model": name, **progress.summary()}
    finish(app, data, lambda d: f"pulled {d['model']} ({core.human_bytes(d['bytes'])} "
                                f"in {core.human_duration(d['seconds'])})")


def _columns(stream: Any) -> int:
    """Width of the terminal `stream` is on (COLUMNS wins, as with shutil)."""
    import os
    import shutil

    if not os.environ.get("COLUMNS"):
        try:
            columns = os.get_terminal_size(stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            columns = 0
        if columns > 0:
            return columns
    return shutil.get_terminal_size().columns


@models.command("warm")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--context-length", "context_length", type=click.IntRange(1), metavar="N",
              help="Context length (num_ctx) to load with. Clients get the service's "
                   "OLLAMA_CONTEXT_LENGTH, and a model loaded with another value is reloaded by "
                   "the first request (default: [ollama] context_length in the settings, which "
                   "sets OLLAMA_CONTEXT_LENGTH; 65536 unless changed).")
@click.option("--keep-alive", "keep_alive", default="-1", show_default=True, metavar="DURATION",
              help="How long to keep the models loaded: -1 = until unloaded, 0, seconds, or "
                   "like 30m.")
@click.option("--wait", "wait_seconds", type=click.FloatRange(0), default=0.0, metavar="SECONDS",
              help="Wait up to this long for Ollama to answer first (boot jobs use 600).")
@click.option("--at-boot", is_flag=True,
              help="Instead of warming now, install a launchd/systemd job that warms these "
                   "models (or the configured ones) each time the machine starts.")
@json_option
@click.pass_context
def warm(ctx: click.Context, names: tuple[str, ...], context_length: int | None,
         keep_alive: str, wait_seconds: float, at_boot: bool, as_json: bool) -> None:
    """Preload models and keep them loaded.

    Without NAMEs: the models loaded now plus `warm = [...]` under [ollama] in the settings.
    A model that fails does not stop the others; the exit code is 1 if any failed.
    """
    app = begin(ctx, as_json)
    from aicommon.errors import AiError
    from aiserver import models as core
    from aiserver.ollama import client_for
    from aiserver.settings import load

    settings = load(app.config)
    if at_boot:
        from aiserver.install import install_warm_job

        job = install_warm_job(app.config, names, context_length, keep_alive)
        finish(app, job, lambda d: f"installed boot job {d['definition']} ({d['manager']}): "
                                   f"runs `{d['command']}` at every start")
    client = client_for(settings)
    if wait_seconds:
        from aiserver.install import wait_http

        wait_http(client.base_url + "/api/version", lambda st: st == 200, wait_seconds, "Ollama")
    # the context length the service gives every client (its OLLAMA_CONTEXT_LENGTH): a runner
    # loaded with another num_ctx would be reloaded by the first client request
    num_ctx = context_length or settings.ollama.context_length
    alive: int | str = int(keep_alive) if keep_alive.lstrip("-").isdigit() else keep_alive
    loaded = [] if names else [str(m.get("name", "")) for m in client.ps()]
    targets = core.warm_targets(names, loaded, settings.ollama.warm)
    if not targets:
        raise AiError("no models to warm",
                      "name them (`ai-server models warm NAME`) or list them as "
                      "warm = [...] under [ollama] in the settings file", code="models.none")
    app.out.detail(f"warming {', '.join(targets)} with context length {num_ctx}")
    results = core.warm(client, targets, num_ctx, alive)
    data = core.summary(results, num_ctx, alive)
    if data["failed"]:
        errors: list[dict[str, str | None]] = [
            {"code": r.code, "message": f"{r.model}: {r.error}", "hint": r.hint}
            for r in results if not r.ok]
        app.out.result(app.command, data, core.human_summary, ok=False, errors=errors)
        sys.exit(ExitCode.FAILURE)
    finish(app, data, core.human_summary)


@models.command("unload")
@click.argument("name")
@json_option
@click.pass_context
def unload(ctx: click.Context, name: str, as_json: bool) -> None:
    """Free the memory a model holds now.

    It loads again on the next request that names it.
    """
    app = begin(ctx, as_json)
    from aiserver import models as core
    from aiserver.ollama import client_for
    from aiserver.settings import load

    settings = load(app.config)
    client = client_for(settings)
    key = core.normalize_name(name)
    was_loaded = any(core.normalize_name(str(m.get("name", ""))) == key for m in client.ps())
    client.unload(name)
    data: dict[str, Any] = {"model": name, "was_loaded": was_loaded}
    finish(app, data, lambda d: f"unloaded {d['model']}" if d["was_loaded"]
           else f"{d['model']} was not loaded")
