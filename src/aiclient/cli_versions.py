"""ai-client version commands: check-compatibility, pin, unpin, downgrade-claude.

Thin adapters over aiclient.compat and aiclient.pinning (imported inside the commands, so
`ai-client --help` stays fast). cli.py adds them with `cli.add_command(...)`.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from aicommon.clikit import begin, finish, json_option
from aicommon.errors import AiError, ExitCode

_VERDICT_LINE = {
    "compatible": "compatible",
    "degraded": "DEGRADED: works, with the caveats below",
    "broken": "BROKEN",
    "untested": "untested (no known problem, but newer than the rules know)",
}


def _check_text(d: dict[str, Any]) -> str:
    model = f" with {d['model']}" if d["model"] else ""
    lines = [f"{_VERDICT_LINE[d['verdict']]}: Claude Code {d['claude_version']} × Ollama "
             f"{d['ollama_version']}{model} ({d['server']})"]
    if d.get("claude_install"):
        lines.append(f"  Claude Code: {d['claude_install']['method']} install, "
                     f"{d['claude_install']['path']}")
    verified = d.get("verified")
    if verified and verified["outcome"] == "verified":
        lines.append(f"  verified on {verified['date'][:10]} (check-compatibility --probe)"
                     + ("; the rules still report what follows"
                        if d["verdict"] != "compatible" else ""))
    elif verified:
        lines.append(f"  a probe failed on {verified['date'][:10]}: {verified['detail']}")
    for f in d["findings"]:
        lines.append(f"  {f['status'].upper():<8} {f['symptom']}  [{f['rule']}]")
    if d.get("probe"):
        for c in d["probe"]["checks"]:
            lines.append(f"  probe {c['outcome']:<4} {c['title']}: {c['detail']}")
    for i, fix in enumerate(d["fixes"]):
        lines.append(f"  {'fix:' if i == 0 else ' or:'} {fix['text']}")
    for note in d["notes"]:
        lines.append(f"  note: {note}")
    return "\n".join(lines)


@click.command("check-compatibility")
@click.option("--model", "-m", metavar="M", help="Model to judge (default: from settings).")
@click.option("--probe/--no-probe", default=None,
              help="Send the requests Claude Code sends and record the verified pair "
                   "(default: only when the pair is untested).")
@json_option
@click.pass_context
def check_compatibility(ctx: click.Context, model: str | None, probe: bool | None,
                        as_json: bool) -> None:
    """Check the installed Claude Code against the server's Ollama and model.

    An untested pair is probed right away (seconds) and recorded, unless --no-probe.
    Exit 0 compatible or verified, 1 cannot check, 3 untested, 4 degraded or broken."""
    app = begin(ctx, as_json)
    from aiclient import compat

    try:
        result = compat.check(app.config, model, bool(probe), progress=app.out.detail,
                              auto_probe=probe is not False)
    except AiError as err:  # whatever stops the check means "cannot check"
        err.exit_code = ExitCode(compat.CompatExit.CANNOT_CHECK)
        raise
    finish(app, result.data, _check_text, ok=result.verdict == compat.Verdict.COMPATIBLE,
           exit_code=result.exit_code)


def _report_text(d: dict[str, Any]) -> str:
    lines = [f"  {a}" for a in d.get("actions", [])]
    lines += [f"  note: {n}" for n in d.get("notes", [])]
    return "\n".join(lines)


@click.command("pin")
@click.option("--claude", "claude", is_flag=False, flag_value="current", default=None,
              metavar="[VERSION]", help="Pin Claude Code (at VERSION, installed first; default: "
                                        "the installed version).")
@click.option("--aider", "aider", is_flag=False, flag_value="current", default=None,
              metavar="[VERSION]", help="Pin Aider (at VERSION, installed first; default: the "
                                        "installed version).")
@json_option
@click.pass_context
def pin(ctx: click.Context, claude: str | None, aider: str | None, as_json: bool) -> None:
    """Keep Claude Code and/or Aider at a version (both when no option is given)."""
    app = begin(ctx, as_json)
    from aiclient import pinning

    data = pinning.pin(app.config, claude, aider)

    def human(d: dict[str, Any]) -> str:
        head = ", ".join(f"{'Claude Code' if t == 'claude' else 'Aider'} {v['version']} "
                         f"({v['method']})" for t, v in d["pinned"].items())
        body = _report_text(d)
        return f"pinned {head}; lock {d['lock']}" + (f"\n{body}" if body else "") + \
            "\n  undo with `ai-client unpin`"

    finish(app, data, human)


@click.command("unpin")
@json_option
@click.pass_context
def unpin(ctx: click.Context, as_json: bool) -> None:
    """Reverse exactly what `ai-client pin` changed."""
    app = begin(ctx, as_json)
    from aiclient import pinning

    data = pinning.unpin()
    finish(app, data, lambda d: ("unpinned" if d["unpinned"] else "nothing is pinned")
           + (f"\n{_report_text(d)}" if d["actions"] else ""))


@click.command("downgrade-claude")
@click.argument("version", required=False)
@click.option("--yes", "-y", is_flag=True, help="Change without asking.")
@json_option
@click.pass_context
def downgrade_claude(ctx: click.Context, version: str | None, yes: bool, as_json: bool) -> None:
    """Switch Claude Code to a version that works with the server.

    VERSION defaults to the lock's, else the newest the rules say works with the server's
    Ollama and model. Verified with `claude --version`; restored on any failure."""
    app = begin(ctx, as_json)
    from aiclient import pinning

    plan = pinning.plan_downgrade(app.config, version)
    if plan.action != "none" and not yes:
        if as_json or not sys.stdin.isatty():
            raise AiError(f"would {plan.summary}; not asking without a terminal",
                          "pass --yes to go ahead", code="versions.needs_yes",
                          exit_code=ExitCode.FAILURE)
        if plan.explanation:
            app.out.info(plan.explanation)
        app.out.info(f"Claude Code {plan.install.version} → {plan.target} "
                     f"(target from the {plan.source}): will {plan.summary}")
        click.confirm("Go ahead?", abort=True, err=True)
    data = pinning.apply_downgrade(app.config, plan)

    def human(d: dict[str, Any]) -> str:
        if not d["changed"]:
            return f"nothing to do: Claude Code is already at {d['to']}"
        lines = [f"Claude Code {d['from']} → {d['to']} ({d['method']}): `claude --version` "
                 f"prints {d['now']}; recorded in {d['lock']}"]
        lines += [f"  {s}" for s in d["steps"]] + [f"  note: {n}" for n in d["notes"]]
        return "\n".join(lines)

    finish(app, data, human)
