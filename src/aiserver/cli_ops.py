"""ai-server day-to-day commands: logs, usage, tokens, acl (thin adapters over their modules).

Registered on the main group by cli.py with `cli.add_command(...)`.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import click

from aicommon.clikit import AppContext, PathParam, begin, finish, json_option

if TYPE_CHECKING:
    from pathlib import Path

_FILE = click.option("--file", "log_file", type=PathParam(dir_okay=False),
                     help="Read this access log instead of <log dir>/gateway.log.")


def _log_path(app: AppContext, log_file: Path | None) -> Path:
    if log_file is not None:
        return log_file
    from aiserver.settings import load
    from aiserver.usage import access_log_path

    return access_log_path(load(app.config))


def _ms(value: int | None) -> str:
    if value is None or value < 0:
        return "-"
    if value < 1000:
        return f"{value}ms"
    if value < 60_000:
        return f"{value / 1000:.1f}s"
    minutes, seconds = divmod(round(value / 1000), 60)
    return f"{minutes}m{seconds:02d}s"


def _bytes(value: int) -> str:
    size = float(value)
    for unit in ("B", "K", "M", "G"):
        if size < 1024 or unit == "G":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return f"{value}B"  # pragma: no cover - the loop always returns


def _entry_line(entry: dict[str, Any]) -> str:
    when = str(entry["time"]).replace("T", " ").rstrip("Z")
    end = "" if entry["termination"] == "----" else f"  [{entry['termination']}]"
    if entry.get("auth") in ("missing", "rejected"):
        end += f"  token {entry['auth']}"
    return (f"{when}  {entry['name']:<18} {entry['method']:<6} {entry['path']:<26} "
            f"{entry['status']:>3}  ttfb {_ms(entry['ttfb_ms']):>7}  "
            f"total {_ms(entry['total_ms']):>7}  in {_bytes(entry['bytes_in']):>6}  "
            f"out {_bytes(entry['bytes_out']):>6}{end}")


@click.command()
@click.option("-n", "--lines", "count", type=click.IntRange(0), default=50, show_default=True,
              help="How many of the last lines to show.")
@click.option("-f", "--follow", is_flag=True,
              help="Keep printing new lines as they arrive (Ctrl-C stops). With --json: one "
                   "JSON object per entry and line, no envelope.")
@_FILE
@json_option
@click.pass_context
def logs(ctx: click.Context, count: int, follow: bool, log_file: Path | None,
         as_json: bool) -> None:
    """Show the gateway's access log: time, device, request, status, timings, bytes."""
    app = begin(ctx, as_json and not follow)
    import json

    from aiserver import usage as core

    path = _log_path(app, log_file)
    lines, offset = core.tail(path, count)
    names, note = core.tailnet_names()
    if note:
        app.out.detail(note)

    def entry_dict(entry: core.Entry) -> dict[str, Any]:
        return {**entry.as_dict(), "name": core.display_name(entry, names)}

    def render(raw: str) -> str | None:
        entry = core.parse_line(raw)
        if entry is None:
            return None if as_json else raw  # HAProxy notices are shown as they are
        return json.dumps(entry_dict(entry)) if as_json else _entry_line(entry_dict(entry))

    if not follow:
        read = core.parse_lines(lines)
        data = {"file": str(path), "entries": [entry_dict(e) for e in read.entries],
                "skipped": read.skipped, "notes": [note] if note else []}
        finish(app, data, lambda _: "\n".join(t for t in map(render, lines) if t is not None))
    for raw in lines:
        _echo(render(raw))
    for event in core.follow(path, offset):
        if event.kind == "notice":
            app.out.info(event.text)
        else:
            _echo(render(event.text))


def _echo(text: str | None) -> None:
    if text is not None:
        click.echo(text)
        sys.stdout.flush()


def _since(ctx: click.Context, param: click.Parameter, value: str) -> timedelta | None:
    from aiserver.usage import parse_since

    try:
        return parse_since(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def _usage_human(data: dict[str, Any]) -> str:
    from aicommon.output import table

    def row(key: str, f: dict[str, Any]) -> list[str]:
        return [key, str(f["requests"]), str(f["errors"]), str(f["client_errors"]),
                str(f["server_errors"]), _bytes(f["bytes_in"]), _bytes(f["bytes_out"]),
                _ms(f["ttfb_p50_ms"]), _ms(f["ttfb_p95_ms"]), _ms(f["total_p50_ms"])]

    window = f"since {data['from']}" if data["from"] else "all time"
    head = (f"{data['file']}: {data['totals']['requests']} requests {window} "
            f"(to {data['to']}), by {data['by']}")
    if data["skipped"]:
        head += f"; {data['skipped']} non-access-log lines skipped"
    if not data["groups"]:
        return head + "\nno requests in this window"
    rows = [row(g["key"], g) for g in data["groups"]]
    rows.append(row("TOTAL", data["totals"]))
    text = head + "\n" + table(rows, [data["by"].upper(), "REQS", "ERRORS", "4XX", "5XX", "IN",
                                      "OUT", "TTFB P50", "TTFB P95", "TOTAL P50"])
    for r in data.get("rejected_tokens", []):
        who = r["client"] if r["name"] == r["client"] else f"{r['name']} ({r['client']})"
        text += (f"\nrejected token: {who} sent a token the gateway does not accept "
                 f"{r['attempts']} time(s), last {r['last']}")
    return text


@click.command()
@click.option("--since", "since", default="24h", show_default=True, callback=_since,
              metavar="DURATION", help="Window ending now: 30m, 24h, 7d, 2w, or 'all'.")
@click.option("--by", "by", type=click.Choice(["device", "path", "status", "client", "node"]),
              default="device", show_default=True, help="How to group the requests.")
@_FILE
@json_option
@click.pass_context
def usage(ctx: click.Context, since: timedelta | None, by: str, log_file: Path | None,
          as_json: bool) -> None:
    """Requests, errors, bytes and latency percentiles from the access log.

    Percentiles are nearest-rank (always an observed value); timings of -1 (no response)
    are left out. Devices are token names, else tailnet host names, else client IPs.
    """
    app = begin(ctx, as_json)
    from datetime import UTC, datetime

    from aiserver import usage as core

    path = _log_path(app, log_file)
    read = core.read_log(path)
    names: dict[str, str] = {}
    notes: list[str] = []
    if (by in ("device", "client") and any(e.device == "-" for e in read.entries)) or any(
            e.auth == "rejected" for e in read.entries):
        names, note = core.tailnet_names()
        if note:
            notes.append(note)
            app.out.warn(note)
    data = {"file": str(path), "lines": read.lines, "skipped": read.skipped,
            **core.summarize(read.entries, by=by, since=since, now=datetime.now(UTC),
                             names=names), "notes": notes}
    finish(app, data, _usage_human)


@click.group()
def tokens() -> None:
    """Per-device tokens for the gateway (Authorization: Bearer / x-api-key)."""


def _gateway_note(app: AppContext, result: dict[str, Any]) -> None:
    gw = result["gateway"]
    text = gw["message"] + (f" (hint: {gw['hint']})" if gw.get("hint") else "")
    if gw["state"] in ("reloaded", "verified", "not_running"):
        app.out.info(text)
    else:
        app.out.warn(text)


def _finish_change(app: AppContext, data: dict[str, Any], human: Any) -> None:
    """A token change succeeded; a failed reload still makes the command fail (exit 1)."""
    from aicommon.errors import ExitCode

    _gateway_note(app, data)
    failed = data["gateway"]["state"] in ("reload_failed", "not_applied")
    finish(app, data, human, ok=not failed,
           exit_code=ExitCode.FAILURE if failed else ExitCode.OK)


@tokens.command("add")
@click.argument("device")
@json_option
@click.pass_context
def tokens_add(ctx: click.Context, device: str, as_json: bool) -> None:
    """Create a token for DEVICE and print it once (only the token goes to stdout)."""
    app = begin(ctx, as_json)
    from aiserver.gateway import tokens as core
    from aiserver.settings import load

    data = core.add(load(app.config), device)
    app.out.info(f"added device {device} to {data['file']}; the token below is shown only "
                 "once: give it to the device now")
    _finish_change(app, data, lambda d: d["token"])


@tokens.command("list")
@json_option
@click.pass_context
def tokens_list(ctx: click.Context, as_json: bool) -> None:
    """Show each device with the first characters of its token."""
    app = begin(ctx, as_json)
    from aiserver.gateway import tokens as core
    from aiserver.settings import load

    data = core.list_devices(load(app.config))

    def human(d: dict[str, Any]) -> str:
        from aicommon.output import table

        enforced = "" if d["enforced"] else "\n(tokens = false: not enforced by the gateway)"
        if not d["devices"]:
            return f"no device tokens in {d['file']}{enforced}"
        rows = [[x["device"], x["token_prefix"] + "…", x["added"] or "-"] for x in d["devices"]]
        return table(rows, ["DEVICE", "TOKEN", "ADDED"]) + enforced

    finish(app, data, human)


@tokens.command("revoke")
@click.argument("device")
@json_option
@click.pass_context
def tokens_revoke(ctx: click.Context, device: str, as_json: bool) -> None:
    """Remove DEVICE's token; the gateway refuses it after the reload."""
    app = begin(ctx, as_json)
    from aiserver.gateway import tokens as core
    from aiserver.settings import load

    data = core.revoke(load(app.config), device)
    _finish_change(app, data, lambda d: f"revoked the token of {d['device']} ({d['file']})")


@click.command()
@click.option("--src", "source", default="autogroup:member", show_default=True,
              metavar="SELECTOR", help="Who may use the server: autogroup:member or "
              "group:<name> (people, never a tag).")
@json_option
@click.pass_context
def acl(ctx: click.Context, source: str, as_json: bool) -> None:
    """Print the tailnet policy snippet (HuJSON) that admits people's devices to the port."""
    app = begin(ctx, as_json)
    from aicommon import tailscale
    from aiserver import acl as core
    from aiserver.settings import load

    settings = load(app.config)
    member = tailscale.member_login() or core.PLACEHOLDER_MEMBER
    data = {"port": settings.gateway.port, **core.policy(settings, source, member),
            "tag_commands": core.tag_commands(),
            "text": core.policy_text(settings, source, member)}
    finish(app, data, lambda d: d["text"].rstrip("\n"))
