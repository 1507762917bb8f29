"""What both CLIs share at the click edge: global options, result rendering, error mapping."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from aicommon.errors import AiError, ExitCode
from aicommon.output import Output

if TYPE_CHECKING:
    from pathlib import Path

F = TypeVar("F", bound=Callable[..., Any])
# An explicit --config that does not exist is an error, except for the commands that create
# it (install, setup), remove what was installed (uninstall) or only say where it is (paths).
WRITES_OR_IGNORES_CONFIG = frozenset({"install", "setup", "uninstall", "paths"})


class PathParam(click.Path[Any]):
    """click.Path whose values are pathlib.Path objects; pathlib is imported only when a value
    arrives, so `--help` and `--version` never pay for it (fast start)."""

    def coerce_path_result(self, value: Any) -> Any:
        from pathlib import Path

        return value if isinstance(value, Path) else Path(value)


@dataclass
class AppContext:
    prog: str
    config: Path | None = None
    verbosity: int = 0
    command: str = ""
    out: Output = field(default_factory=Output)


def json_option(func: F) -> F:
    """--json for reporting commands: one envelope on stdout instead of human text."""
    return click.option("--json", "as_json", is_flag=True,
                        help="Print one JSON envelope on stdout instead of text.")(func)


def begin(ctx: click.Context, as_json: bool = False) -> AppContext:
    """Fetch the app context for a command and set its output mode."""
    app = ctx.find_object(AppContext)
    assert app is not None
    app.command = ctx.command_path.split(" ", 1)[1] if " " in ctx.command_path else ""
    app.out = Output(json_mode=as_json, verbosity=app.verbosity)
    if (app.config is not None and app.command.split(" ")[0] not in WRITES_OR_IGNORES_CONFIG
            and not app.config.exists()):
        raise AiError(f"settings file {app.config} does not exist",
                      f"check the --config path (or {app.prog.upper().replace('-', '_')}"
                      "_CONFIG); without either the default file is used",
                      code="config.missing", exit_code=ExitCode.CONFIG)
    return app


def finish(app: AppContext, data: Any, human: Callable[[Any], str] | None = None, *,
           ok: bool = True, exit_code: int = ExitCode.OK,
           errors: list[dict[str, str | None]] | None = None) -> NoReturn:
    app.out.result(app.command, data, human, ok=ok, errors=errors)
    sys.exit(exit_code)


def finish_checks(app: AppContext, data: dict[str, Any],
                  human: Callable[[Any], str] | None = None) -> NoReturn:
    """A report of PASS/WARN/FAIL checks: any FAIL makes it not ok, listed under errors in
    --json, exit 3 (findings)."""
    failed = [c for c in data["checks"] if c["status"] == "FAIL"]
    finish(app, data, human or (lambda d: checks_text(d["checks"], bool(app.out.color_stdout))),
           ok=not failed, exit_code=ExitCode.FINDINGS if failed else ExitCode.OK,
           errors=[{"code": f"check.{c['name']}", "message": f"{c['name']}: {c['detail']}",
                    "hint": c.get("fix") or None} for c in failed])


def run_main(group: click.Group, prog: str, argv: list[str] | None = None) -> NoReturn:
    """Run a click group; map domain errors, usage errors and Ctrl-C to exit codes."""
    app = AppContext(prog)
    try:
        args = list(sys.argv[1:] if argv is None else argv)
        with group.make_context(prog, args, obj=app) as ctx:
            group.invoke(ctx)
        sys.exit(ExitCode.OK)
    except AiError as err:
        app.out.failure(prog, app.command, err)
        sys.exit(err.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, click.exceptions.Abort):
        print(f"\n{prog}: interrupted", file=sys.stderr)
        sys.exit(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        sys.exit(ExitCode.FAILURE)


def checked(check: Callable[[Any], Any]) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A click callback running a domain check on an option's value: a bad command-line
    value is a usage error (exit 2) even when the same check guards the settings file (4)."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None:
            return None
        try:
            return check(value)
        except AiError as err:
            raise click.BadParameter(err.one_line(), ctx, param) from None

    return callback


def human_kv(data: dict[str, Any]) -> str:
    """Key/value lines for flat reports."""
    width = max((len(k) for k in data), default=0)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in data.items())


def make_group(prog: str, doc: str, config_envvar: str) -> click.Group:
    """The top-level group both tools share: --version, --config, -v/-q, -h/--help."""
    from aicommon import __version__

    @click.group(prog, help=doc, context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(__version__, "-V", "--version", prog_name=prog,
                          message="%(prog)s %(version)s")
    @click.option("--config", "config", type=PathParam(dir_okay=False),
                  envvar=config_envvar,
                  help=f"Settings file (default: config.toml in the config dir; "
                       f"env {config_envvar}).")
    @click.option("-v", "--verbose", count=True, help="More detail on stderr.")
    @click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
    @click.pass_context
    def group(ctx: click.Context, config: Path | None, verbose: int, quiet: bool) -> None:
        app = ctx.ensure_object(AppContext)
        app.config = config
        app.verbosity = -1 if quiet else verbose

    return group


STATUS_COLOURS = {"PASS": "32", "WARN": "33", "FAIL": "31"}  # green, yellow, red


def checks_text(checks: list[dict[str, str]], color: bool = False) -> str:
    """PASS / WARN / FAIL lines, with the fix after an arrow for what did not pass."""
    width = max((len(c["name"]) for c in checks), default=0)

    def status(word: str) -> str:
        code = STATUS_COLOURS.get(word)
        return f"\033[{code}m{word}\033[0m" + " " * (5 - len(word)) if color and code \
            else f"{word:<5}"

    return "\n".join(f"{status(c['status'])} {c['name']:<{width}}  {c['detail']}"
                     + (f"  → {c['fix']}" if c.get("fix") and c["status"] != "PASS" else "")
                     for c in checks)
