"""ai-server command line: thin adapters over the modules that do the work."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from aicommon.clikit import begin, finish, human_kv, json_option, make_group, run_main

PROG = "ai-server"

cli = make_group(PROG, "Private, allowlisted gateway in front of this machine's Ollama.",
                 "AI_SERVER_CONFIG")


@cli.command()
@json_option
@click.pass_context
def paths(ctx: click.Context, as_json: bool) -> None:
    """Show where settings, state and logs live."""
    app = begin(ctx, as_json)
    from aicommon.paths import paths_report, server_paths

    finish(app, paths_report(server_paths(), app.config), human_kv)


@cli.command()
@click.option("--profile", "profiles", multiple=True, metavar="NAME",
              help="Show only what these profiles enable (default: every entry).")
@json_option
@click.pass_context
def allowlist(ctx: click.Context, profiles: tuple[str, ...], as_json: bool) -> None:
    """Show every method + path the gateway forwards to Ollama."""
    app = begin(ctx, as_json)
    from aiserver import allowlist as al

    entries = al.entries_for(profiles) if profiles else list(al.ENTRIES)
    data = {"entries": al.as_rows(entries), "never": [f"{m} {p}" for m, p in al.NEVER]}

    def human(d: dict[str, Any]) -> str:
        from aicommon.output import table

        rows = [[r["method"], r["path"], r["profile"], r["purpose"]] for r in d["entries"]]
        return (table(rows, ["METHOD", "PATH", "PROFILE", "PURPOSE"])
                + "\n\nNever exposed: " + ", ".join(d["never"])
                + "\nAnything else gets 403 with a JSON body.")

    finish(app, data, human)


@cli.group()
def config() -> None:
    """Render and validate the gateway's HAProxy config."""


_WAIT = click.option("--wait", "wait_seconds", type=click.FloatRange(0), default=0.0,
                     show_default=True, metavar="SECONDS",
                     help="How long to wait for Tailscale to be Running (listen = auto).")


@config.command("render")
@click.option("--output", "output", type=click.Path(file_okay=False, path_type=Path),
              help="Write haproxy.cfg and its files into DIR (else print the config).")
@_WAIT
@click.pass_context
def config_render(ctx: click.Context, output: Path | None, wait_seconds: float) -> None:
    """Render haproxy.cfg (+ JSON error pages, token map) from the settings."""
    app = begin(ctx)
    from aiserver import gatewayctl
    from aiserver.settings import load

    settings = load(app.config)
    listen = gatewayctl.resolve_listen(settings, wait_seconds)
    for note in listen.notes:
        app.out.warn(note)
    target = output if output is not None else gatewayctl.gateway_dir(settings) / "current"
    rendered = gatewayctl.render_for(settings, listen, target.absolute())
    if output is None:
        click.echo(rendered.config, nl=False)
        return
    changed = gatewayctl.write_files(rendered, output.absolute())
    app.out.info(f"wrote {len(rendered.files)} files into {output} ({len(changed)} changed)")


@config.command("validate")
@_WAIT
@json_option
@click.pass_context
def config_validate(ctx: click.Context, wait_seconds: float, as_json: bool) -> None:
    """Check the settings and run `haproxy -c -dW` on the rendered config."""
    app = begin(ctx, as_json)
    from aiserver import gatewayctl
    from aiserver.settings import load

    settings = load(app.config)
    listen = gatewayctl.resolve_listen(settings, wait_seconds)
    for note in listen.notes:
        app.out.warn(note)
    output = gatewayctl.validate_settings(settings, listen)
    data = {"valid": True, "settings": settings.source, "listen": list(listen.addresses),
            "notes": list(listen.notes), "haproxy": output}
    finish(app, data, lambda d: f"valid: gateway would listen on {', '.join(d['listen'])}")


@cli.command("run")
@click.option("--wait", "wait_seconds", type=click.FloatRange(0), default=120.0,
              show_default=True, metavar="SECONDS",
              help="How long to wait for Tailscale to be Running (listen = auto).")
@click.pass_context
def run_gateway(ctx: click.Context, wait_seconds: float) -> None:
    """Render, validate, then become HAProxy in the foreground (for service managers)."""
    app = begin(ctx)
    from aiserver import gatewayctl
    from aiserver.settings import load

    settings = load(app.config)
    listen = gatewayctl.resolve_listen(settings, wait_seconds)
    for note in listen.notes:
        app.out.warn(note)
    prepared = gatewayctl.prepare(settings, listen)
    argv = gatewayctl.haproxy_argv(settings, prepared.config)
    app.out.info(f"gateway listening on {', '.join(listen.addresses)} port "
                 f"{settings.gateway.port} -> {settings.gateway.upstream}")
    app.out.detail("exec " + " ".join(argv))
    sys.stdout.flush()
    sys.stderr.flush()
    gatewayctl.exec_haproxy(argv)


@cli.command("reload")
@_WAIT
@json_option
@click.pass_context
def reload_gateway(ctx: click.Context, wait_seconds: float, as_json: bool) -> None:
    """Re-render and validate, then reload the running gateway gracefully (streams finish)."""
    app = begin(ctx, as_json)
    from aiserver import gatewayctl
    from aiserver.settings import load

    data = gatewayctl.reload(load(app.config), wait_seconds)
    for note in data["notes"]:  # type: ignore[attr-defined]
        app.out.warn(str(note))
    finish(app, data, lambda d: (f"reloaded gateway (master pid {d['master_pid']}, "
                                 f"{'new' if d['changed'] else 'unchanged'} config "
                                 f"{d['generation']})"))


def main() -> None:
    run_main(cli, PROG)


if __name__ == "__main__":
    main()
