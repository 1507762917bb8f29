"""ai-server command line: thin adapters over the modules that do the work."""

from __future__ import annotations

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


def main() -> None:
    run_main(cli, PROG)


if __name__ == "__main__":
    main()
