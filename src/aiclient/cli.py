"""ai-client command line: thin adapters over the modules that do the work."""

from __future__ import annotations

from typing import Any

import click

from aicommon.clikit import (
    begin,
    checked,
    finish,
    finish_checks,
    human_kv,
    json_option,
    make_group,
    run_main,
)

PROG = "ai-client"

cli = make_group(PROG, "Use your own remote Ollama machine from this laptop (Aider, Claude Code).",
                 "AI_CLIENT_CONFIG")


@cli.command()
@json_option
@click.pass_context
def paths(ctx: click.Context, as_json: bool) -> None:
    """Show where settings, state and logs live."""
    app = begin(ctx, as_json)
    from aicommon.paths import client_paths, paths_report

    finish(app, paths_report(client_paths(), app.config), human_kv)


def _client_settings() -> Any:
    from aiclient import settings

    return settings


def _pick(kind: str, options: list[str]) -> str:
    for i, name in enumerate(options, 1):
        click.echo(f"  {i}. {name}", err=True)
    index: int = click.prompt(f"Which {kind}?", type=click.IntRange(1, len(options)), default=1,
                              err=True)
    return options[index - 1]


@cli.command("setup")
@click.option("--server", metavar="HOST", help="The server: host, host:port or "
              "http://host:port (default: the tailnet device tagged tag:ai-server).",
              callback=checked(lambda v: _client_settings().parse_server(v)))
@click.option("--port", type=click.IntRange(1, 65535), help="Gateway port (default 11434).")
@click.option("--model", metavar="M", help="Default model (default: a tools-capable one).")
@click.option("--token", metavar="T", help="Device token from `ai-server tokens add`.",
              callback=checked(lambda v: _client_settings().check_token(v)))
@click.option("--shell", "shell", default="auto", show_default=True,
              help="auto, or a comma list of zsh, bash, fish.")
@click.option("--scope", type=click.Choice(["global", "aider"]),
              help="global: OPENAI_*/OLLAMA_* for every tool (default); aider: AIDER_* only.")
@click.option("--claude/--no-claude", "with_claude", default=None,
              help="Write the claude-ollama command (default: yes).")
@click.option("--skip-permissions", is_flag=True,
              help="claude-ollama adds --dangerously-skip-permissions (off by default).")
@click.option("--dry-run", is_flag=True, help="Print every file as a diff; change nothing.")
@click.option("--yes", "-y", is_flag=True, help="No questions: first choice, no confirmation.")
@json_option
@click.pass_context
def setup_cmd(ctx: click.Context, server: tuple[str, int | None] | None, port: int | None,
              model: str | None,
              token: str | None, shell: str, scope: str | None, with_claude: bool | None,
              skip_permissions: bool, dry_run: bool, yes: bool, as_json: bool) -> None:
    """Point this laptop's shells, Aider and claude-ollama at the server."""
    app = begin(ctx, as_json)
    import sys

    from aiclient import setup

    host, server_port = server if server is not None else (None, None)
    if server_port is not None and port is not None and server_port != port:
        raise click.BadParameter(f"--server names port {server_port} but --port is {port}",
                                 ctx, param_hint="'--port'")
    interactive = not yes and not as_json and sys.stdin.isatty()
    opts = setup.Options(host, port or server_port, model, token, shell, scope, with_claude,
                         skip_permissions)
    plan = setup.build_plan(
        app.config, opts,
        ask_server=(lambda peers: next(p for p in peers if p.address == _pick(
            "server", [q.address for q in peers]))) if interactive else None,
        ask_model=(lambda names: _pick("model", names)) if interactive else None)
    for note in plan.notes:
        app.out.info(note)
    if plan.empty:
        finish(app, {**plan.as_dict(), "applied": False},
               lambda d: f"nothing to change: already set up for {d['server']} ({d['model']})")
    if dry_run:
        finish(app, {**plan.as_dict(with_diffs=True), "applied": False},
               lambda d: "\n".join(f"{f['action']} {f['path']} ({f['purpose']})\n{f['diff']}"
                                   for f in d["files"]) + "\n(dry run: nothing changed)")
    if interactive:
        for f in plan.as_dict()["files"]:
            app.out.info(f"will {f['action']} {f['path']} ({f['purpose']})")
        click.confirm("Apply?", abort=True, err=True)
    setup.apply(plan)

    def human(d: dict[str, Any]) -> str:
        lines = [f"{f['action']}d {f['path']}" for f in d["files"]]
        lines.append(f"\nready: {d['server']} with {d['model']} "
                     f"(context {d['context_length']}). Open a new terminal, then:")
        lines.append(f"  aider                 # uses openai/{d['model']}")
        blocked = next((n for n in plan.notes if n.startswith("Claude Code cannot work")), "")
        if blocked:  # said in the summary too, not only in a note above the file list
            lines.append(f"  claude-ollama         # will refuse to start: {blocked}")
        else:
            lines.append("  claude-ollama         # Claude Code on your server; `claude` stays "
                         "on the cloud")
        lines.append("  ai-client test        # check the server end to end")
        return "\n".join(lines)

    finish(app, {**plan.as_dict(), "applied": True}, human)


@cli.command("uninstall")
@click.option("--purge", is_flag=True, help="Also remove the settings file.")
@json_option
@click.pass_context
def uninstall_cmd(ctx: click.Context, purge: bool, as_json: bool) -> None:
    """Remove exactly what setup wrote (blocks, env files, wrapper, Aider entries)."""
    app = begin(ctx, as_json)
    from aiclient import setup

    data = setup.uninstall(app.config, purge)
    finish(app, data, lambda d: "\n".join([f"removed {r}" for r in d["removed"]]
                                          + [f"kept {k}" for k in d["kept"]])
           or "nothing to remove: ai-client was not set up")


@cli.command("env")
@click.option("--shell", "shell", type=click.Choice(["sh", "fish"]), default="sh",
              show_default=True, help="Syntax of the exports.")
@click.pass_context
def env_cmd(ctx: click.Context, shell: str) -> None:
    """Print the exports (for eval, CI, containers): eval "$(ai-client env)"."""
    app = begin(ctx)
    from aiclient import envfile, setup
    from aiclient.settings import load

    s = load(app.config)
    env = envfile.ClientEnv(s.base_url, s.api_key, s.model, s.client.scope, setup.bin_dir(),
                            s.server.native_api)
    click.echo(envfile.render_fish(env) if shell == "fish" else envfile.render_posix(env),
               nl=False)


@cli.command("status")
@json_option
@click.pass_context
def status_cmd(ctx: click.Context, as_json: bool) -> None:
    """Settings, files, server, Aider and Claude Code at a glance."""
    app = begin(ctx, as_json)
    from aiclient import health

    finish_checks(app, health.status(app.config))


@cli.command("doctor")
@json_option
@click.pass_context
def doctor_cmd(ctx: click.Context, as_json: bool) -> None:
    """Every check, including that a new shell really sees the integration (exit 3 on FAIL)."""
    app = begin(ctx, as_json)
    from aiclient import health

    finish_checks(app, {"checks": health.doctor(app.config)})


def _register() -> None:
    from aiclient.cli_analytics import analytics
    from aiclient.cli_test import test
    from aiclient.cli_versions import check_compatibility, downgrade_claude, pin, unpin

    for command in (test, check_compatibility, pin, unpin, downgrade_claude, analytics):
        cli.add_command(command)


_register()


def main() -> None:
    run_main(cli, PROG)


if __name__ == "__main__":
    main()
