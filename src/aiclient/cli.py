"""ai-client command line: thin adapters over the modules that do the work."""

from __future__ import annotations

import click

from aicommon.clikit import begin, finish, human_kv, json_option, make_group, run_main

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


def main() -> None:
    run_main(cli, PROG)


if __name__ == "__main__":
    main()
