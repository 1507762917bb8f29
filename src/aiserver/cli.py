"""ai-server command line: thin adapters over the modules that do the work."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from aicommon.clikit import (
    PathParam,
    begin,
    checked,
    checks_text,
    finish,
    finish_checks,
    human_kv,
    json_option,
    make_group,
    run_main,
)

if TYPE_CHECKING:
    from pathlib import Path

PROG = "ai-server"

cli = make_group(PROG, "Private, allowlisted gateway in front of this machine's Ollama.",
                 "AI_SERVER_CONFIG")


def _settings() -> Any:
    from aiserver import settings

    return settings


def _allowlist_profile(name: str) -> str:
    from aicommon.errors import AiError
    from aiserver.allowlist import PROFILES

    if name not in PROFILES:
        raise AiError(f"unknown profile {name!r}", f"profiles are: {', '.join(PROFILES)}")
    return name


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
              help="Show only what these profiles enable (default: every entry).",
              callback=checked(lambda names: tuple(_allowlist_profile(n) for n in names)))
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
@click.option("--output", "output", type=PathParam(file_okay=False),
              help="Write haproxy.cfg and its files into DIR (else print the config).")
@_WAIT
@click.pass_context
def config_render(ctx: click.Context, output: Path | None, wait_seconds: float) -> None:
    """Render haproxy.cfg (+ JSON error pages, token map) from the settings."""
    app = begin(ctx)
    from aiserver.gateway import control as gatewayctl
    from aiserver.gateway.paths import gateway_dir
    from aiserver.settings import load

    settings = load(app.config)
    listen = gatewayctl.resolve_listen(settings, wait_seconds)
    for note in listen.notes:
        app.out.warn(note)
    target = output if output is not None else gateway_dir(settings) / "current"
    rendered = gatewayctl.render_for(settings, listen, target.absolute())
    if output is None:
        click.echo(rendered.config, nl=False)
        return
    changed = gatewayctl.write_files(rendered, output.absolute())
    total, written = len(rendered.files), len(changed)
    app.out.info(f"{output}: nothing written, all {total} files were already up to date"
                 if not written else f"{output}: wrote {written} of {total} files"
                 + (f" ({total - written} already up to date)" if written < total else ""))


@config.command("validate")
@_WAIT
@json_option
@click.pass_context
def config_validate(ctx: click.Context, wait_seconds: float, as_json: bool) -> None:
    """Check the settings and run `haproxy -c -dW` on the rendered config."""
    app = begin(ctx, as_json)
    from aiserver.gateway import control as gatewayctl
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
    from aiserver.gateway import control as gatewayctl
    from aiserver.settings import load

    settings = load(app.config)
    listen = gatewayctl.resolve_listen(settings, wait_seconds)
    for note in listen.notes:
        app.out.warn(note)
    gatewayctl.refresh_pool(settings)
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
    from aiserver.gateway import control as gatewayctl
    from aiserver.settings import load

    data = gatewayctl.reload(load(app.config), wait_seconds)
    for note in data["notes"]:  # type: ignore[attr-defined]
        app.out.warn(str(note))
    finish(app, data, lambda d: (f"reloaded gateway (master pid {d['master_pid']}, "
                                 f"{'new' if d['changed'] else 'unchanged'} config "
                                 f"{d['generation']})"))


@cli.group("pool")
def pool_group() -> None:
    """Several Ollama machines behind this gateway ([pool] in the settings)."""


def _require_pool(settings: Any) -> Any:
    if not settings.pool.nodes:
        from aicommon.errors import AiError, ExitCode

        where = settings.source if settings.source != "defaults" else "the default settings"
        raise AiError(f"no pool is configured in {where}",
                      "list nodes under [pool] nodes = [...]",
                      code="pool.none", exit_code=ExitCode.CONFIG)
    return settings


@pool_group.command("status")
@json_option
@click.pass_context
def pool_status(ctx: click.Context, as_json: bool) -> None:
    """Each node: health, models, in-flight requests."""
    app = begin(ctx, as_json)
    from aiserver.gateway import nodes as pool
    from aiserver.settings import load

    settings = _require_pool(load(app.config))
    data = pool.status(settings)

    def human(d: dict[str, Any]) -> str:
        from aicommon.output import table

        rows = [[n["node"], n["health"], str(n["in_flight"]), str(n["queued"]),
                 ", ".join(n["models"]) or "-"] for n in d["nodes"]]
        head = "" if d["gateway_running"] else "gateway not running: health unknown\n"
        return head + table(rows, ["NODE", "HEALTH", "IN-FLIGHT", "QUEUED", "MODELS"])

    finish(app, data, human)


@pool_group.command("refresh")
@json_option
@click.pass_context
def pool_refresh(ctx: click.Context, as_json: bool) -> None:
    """Ask every node for its models, then reload the gateway so routing follows."""
    app = begin(ctx, as_json)
    from aiserver.gateway import control as gatewayctl
    from aiserver.gateway import nodes as pool
    from aiserver.settings import load

    settings = _require_pool(load(app.config))
    report = pool.refresh(settings)
    reloaded = False
    if gatewayctl.running_master(settings) is not None:
        gatewayctl.reload(settings, 0)
        reloaded = True
    data = {**report, "reloaded": reloaded}
    def human(d: dict[str, Any]) -> str:
        lines = []
        for node, i in d["nodes"].items():
            line = f"{node}: {len(i['models'])} models"
            if not i["ok"]:
                kept = "; kept the last list" if i.get("stale") else ""
                line += f" (unreachable: {i['error']}{kept})"
            lines.append(line)
        return "\n".join(lines) + ("\ngateway reloaded" if d["reloaded"] else "")

    finish(app, data, human)


@cli.command("install")
@click.option("--dry-run", is_flag=True, help="Print every file (with a diff) and command; "
              "change nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--context-length", type=click.IntRange(2048), help="OLLAMA_CONTEXT_LENGTH "
              "(default 65536, lowered on small machines).")
@click.option("--keep-alive", metavar="DURATION", help="OLLAMA_KEEP_ALIVE, e.g. 30m or -1.",
              callback=checked(lambda v: _settings().check_keep_alive(v, "")))
@click.option("--models", metavar="A,B", help="Models to keep warm (`ai-server models warm`).")
@click.option("--tokens", is_flag=True, help="Require per-device tokens (layer 4).")
@click.option("--profile", "profiles", multiple=True, type=click.Choice(["native"]),
              help="Also expose the native inference routes.")
@json_option
@click.pass_context
def install_cmd(ctx: click.Context, dry_run: bool, yes: bool, context_length: int | None,
                keep_alive: str | None, models: str | None, tokens: bool,
                profiles: tuple[str, ...], as_json: bool) -> None:
    """Install or update Ollama (loopback) and the gateway as services that start at boot."""
    app = begin(ctx, as_json)
    from aiserver import install

    opts = install.Options(context_length, keep_alive,
                           tuple(m.strip() for m in models.split(",") if m.strip())
                           if models is not None else None, tokens, profiles)
    plan = install.build_plan(app.config, opts, dry_run=dry_run)
    for note in plan.notes:
        app.out.warn(note)
    from aiserver.preflight import failures

    failed = failures(plan.checks)
    if plan.empty and not failed:
        finish(app, {**plan.as_dict(), "applied": False},
               lambda d: "nothing to change: the installed services match the settings")
    if dry_run:
        stop = install.preflight_error(failed) if failed else None

        def human(d: dict[str, Any]) -> str:
            out = [f"would write {f['path']} ({f['purpose']})\n{f['diff']}" for f in d["files"]]
            out += [f"would run: {c}" for c in d["commands"]]
            if stop is not None:
                out.append("\npreflight failed; install would stop before changing anything:")
                out.append(checks_text([c.as_dict() for c in failed],
                                       bool(app.out.color_stdout)))
            return "\n".join(out) + "\n(dry run: nothing changed)"

        finish(app, {**plan.as_dict(with_diffs=True), "applied": False}, human,
               ok=stop is None, exit_code=stop.exit_code if stop else 0,
               errors=stop.details if stop else None)
    if not yes and not as_json and sys.stdin.isatty():
        for f in plan.files:
            app.out.info(f"will write {f.path} ({f.purpose})")
        for command in plan.as_dict()["commands"]:
            app.out.info(f"will run: {command}")
        click.confirm("Apply?", abort=True, err=True)
    install.apply(plan)
    from aicommon import tailscale
    from aiserver import acl as acl_mod
    from aiserver.audit import audit

    report = audit(plan.settings)
    data = {**plan.as_dict(), "applied": True, "audit": report,
            "acl": acl_mod.policy_text(plan.settings, member=tailscale.member_login()
                                       or acl_mod.PLACEHOLDER_MEMBER),
            "client_command": install.client_command(plan.settings)}

    def human_done(d: dict[str, Any]) -> str:
        out = [f"wrote {f['path']}" for f in d["files"]] + [f"ran: {c}" for c in d["commands"]]
        bad = [f for f in d["audit"]["findings"] if not f["ok"]]
        out.append("audit: clean" if not bad else "audit findings:\n" + "\n".join(
            f"  {f['check']}: {f['detail']}" for f in bad))
        out.append("\nAdd this to your tailnet policy file (Tailscale admin → Access controls):")
        out.append(d["acl"])
        out.append(f"\nOn each laptop:\n  {d['client_command']}")
        return "\n".join(out)

    finish(app, data, human_done, exit_code=0 if report["ok"] else 3)


@cli.command("uninstall")
@click.option("--purge", is_flag=True, help="Also remove settings, tokens and logs.")
@json_option
@click.pass_context
def uninstall_cmd(ctx: click.Context, purge: bool, as_json: bool) -> None:
    """Stop and remove both services and what install wrote (models are always kept)."""
    app = begin(ctx, as_json)
    from aiserver import install

    data = install.uninstall(app.config, purge)
    lingering = data["linger"]
    if lingering and not lingering["disabled"]:
        app.out.warn(f"could not disable lingering for {lingering['user']}: "
                     f"{lingering['error']} (run `{lingering['hint']}`)")
    finish(app, data, lambda d: "\n".join(
        [f"stopped {s}" for s in d["stopped"]] + [f"removed {r}" for r in d["removed"]]
        + [f"kept {k}" for k in d["kept"]] + ["models kept"]
        + ([f"lingering disabled for {d['linger']['user']} (install had enabled it)"]
           if d["linger"] and d["linger"]["disabled"] else [])))


@cli.command("status")
@json_option
@click.pass_context
def status_cmd(ctx: click.Context, as_json: bool) -> None:
    """Services, sockets, Ollama, loaded models, gateway and Tailscale at a glance."""
    app = begin(ctx, as_json)
    from aiserver import health

    finish(app, health.status(app.config), health.human_status)


@cli.command("doctor")
@json_option
@click.pass_context
def doctor_cmd(ctx: click.Context, as_json: bool) -> None:
    """Every preflight check plus drift, each PASS / WARN / FAIL with its fix."""
    app = begin(ctx, as_json)
    from aiserver import health

    finish_checks(app, {"checks": [c.as_dict() for c in health.doctor(app.config)]})


@cli.command("audit")
@json_option
@click.pass_context
def audit_cmd(ctx: click.Context, as_json: bool) -> None:
    """Prove the three security layers on the live system (exit 3 on any finding)."""
    app = begin(ctx, as_json)
    from aiserver.audit import audit
    from aiserver.settings import load

    report = audit(load(app.config))

    def human(d: dict[str, Any]) -> str:
        rows = [f"{'ok  ' if f['ok'] else 'FAIL'} {f['check']:<20} {f['detail']}"
                + (f"  → {f['fix']}" if f["fix"] and not f["ok"] else "")
                for f in d["findings"]]
        rows += [f"warn {w}" for w in d["warnings"]]
        rows.append(f"{'clean' if d['ok'] else 'FINDINGS'} in {d['seconds']} s "
                    f"(sockets from {d['listeners_from']})")
        return "\n".join(rows)

    finish(app, report, human, ok=report["ok"], exit_code=0 if report["ok"] else 3)


@cli.command("pin-ollama")
@click.pass_context
def pin_ollama(ctx: click.Context) -> None:
    """Stop Homebrew from upgrading Ollama (`brew pin ollama`)."""
    app = begin(ctx)
    from aiserver import install

    install.brew_pin(True)
    finish(app, None, lambda _: "ollama pinned (brew upgrade leaves it alone)")


@cli.command("unpin-ollama")
@click.pass_context
def unpin_ollama(ctx: click.Context) -> None:
    """Let Homebrew upgrade Ollama again (`brew unpin ollama`)."""
    app = begin(ctx)
    from aiserver import install

    install.brew_pin(False)
    finish(app, None, lambda _: "ollama unpinned")


def _register() -> None:
    from aiserver.cli_models import models
    from aiserver.cli_ops import acl, logs, tokens, usage

    for command in (models, logs, usage, tokens, acl):
        cli.add_command(command)


_register()


def main() -> None:
    run_main(cli, PROG)


if __name__ == "__main__":
    main()
