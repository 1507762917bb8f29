"""The tailnet policy snippet (HuJSON) that lets people's devices reach the gateway port only.

A pure function of the settings, the source selector and a member login for the tests.
Tailscale's model: every grant only adds access ("no grant can remove, override, or narrow
access that another grant gives"), and a new tailnet starts with an allow-all rule — so the
snippet restricts nothing until that rule is gone, which it says first. Tags are for
non-human machines (tagging a laptop removes its user): the server is `tag:ai-server`, the
source is people (`autogroup:member` or a group), and laptops carry no tag.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aicommon.errors import AiError, ExitCode
from aiserver.settings import Settings, split_hostport

SERVER_TAG = "tag:ai-server"
DEFAULT_SOURCE = "autogroup:member"
SSH_PORT = 22
PLACEHOLDER_MEMBER = "you@example.com"
# What a new tailnet's policy file starts with (grants form, and the older acls form).
DEFAULT_ALLOW_ALL = {"src": ["*"], "dst": ["*"], "ip": ["*"]}
DEFAULT_ALLOW_ALL_ACL = {"action": "accept", "src": ["*"], "dst": ["*:*"]}


def check_source(source: str) -> str:
    """`autogroup:member` or `group:<name>`: people, never a tag (tags are for machines)."""
    if source == DEFAULT_SOURCE or re.fullmatch(r"group:[A-Za-z0-9][A-Za-z0-9._-]*", source):
        return source
    raise AiError(f"policy source {source!r} is neither autogroup:member nor group:<name>",
                  "pass --src autogroup:member (every member of the tailnet) or a group such "
                  "as --src group:ai-users; tag laptops never (a tag removes their user)",
                  code="acl.source", exit_code=ExitCode.USAGE)


def denied_ports(settings: Settings) -> list[int]:
    """Ports the policy tests must find closed: SSH, metrics, and Ollama's own port.

    Ollama's port matters when the gateway listens on another one: with Tailscale in
    userspace mode, tailnet traffic to a port reaches whatever listens on 127.0.0.1 there.
    """
    g = settings.gateway
    _, upstream_port = split_hostport(g.upstream)
    ports = [SSH_PORT, g.metrics_port, upstream_port]
    return [p for p in dict.fromkeys(ports) if p != g.port]


def policy(settings: Settings, source: str = DEFAULT_SOURCE,
           member: str = PLACEHOLDER_MEMBER) -> dict[str, Any]:
    """The policy sections as data: tagOwners, (groups), grants, tests, and the legacy acls."""
    port = settings.gateway.port
    check_source(source)
    data: dict[str, Any] = {"tagOwners": {SERVER_TAG: ["autogroup:admin"]}}
    if source.startswith("group:"):
        data["groups"] = {source: [member]}
    data["grants"] = [{"src": [source], "dst": [SERVER_TAG], "ip": [f"tcp:{port}"]}]
    data["tests"] = [{"src": member, "accept": [f"{SERVER_TAG}:{port}"],
                      "deny": [f"{SERVER_TAG}:{p}" for p in denied_ports(settings)]}]
    data["acls"] = [{"action": "accept", "src": [source], "dst": [f"{SERVER_TAG}:{port}"]}]
    return data


def tag_commands() -> list[str]:
    """Ways to tag the server that work. `tailscale set` has no --advertise-tags (v1.103
    cmd/tailscale/cli/set.go), and `tailscale up` refuses unless every other non-default
    setting is restated — its error prints the full command to run instead."""
    return ["admin console -> Machines -> this server -> Edit ACL tags -> " + SERVER_TAG,
            f"or on the server: tailscale up --advertise-tags={SERVER_TAG}"]


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(", ", ": "))


def policy_text(settings: Settings, source: str = DEFAULT_SOURCE,
                member: str = PLACEHOLDER_MEMBER) -> str:
    """The snippet to merge into the tailnet policy file (admin console → Access controls)."""
    data = policy(settings, source, member)
    port = settings.gateway.port
    who = ("Every member of the tailnet (people's devices, not tagged machines)"
           if source == DEFAULT_SOURCE else f"The people in {source}")
    lines = [
        f"// ai-server: tailnet policy for the gateway on port {port}.",
        "// 1. FIRST remove the default allow-all rule from your policy file. A new tailnet",
        f"//    starts with {_dump(DEFAULT_ALLOW_ALL)} in \"grants\" (or",
        f"//    {_dump(DEFAULT_ALLOW_ALL_ACL)} in \"acls\"), and grants",
        "//    only ever add access: until that rule is gone, every device reaches every port",
        "//    of the server and this snippet restricts nothing.",
        "// 2. Merge the sections below (admin console -> Access controls). The \"tests\" make the",
        "//    editor refuse to save while anything still lets a member reach SSH, the metrics",
        "//    or Ollama's own port on the server.",
        f"// 3. Tag the server, and only the server, {SERVER_TAG}:",
        f"//    {tag_commands()[0]},",
        f"//    {tag_commands()[1]}",
        "//    (if it refuses because other settings are non-default, run the command its error",
        "//    prints: it restates them). Laptops need no tag: ai-client finds the server by",
        "//    its tag, and a tag would remove a laptop's user.",
        "{",
        '  "tagOwners": {',
        f'    "{SERVER_TAG}": {_dump(data["tagOwners"][SERVER_TAG])},',
        "  },",
    ]
    if "groups" in data:
        lines += [
            "  // The people who may use the server (add their logins).",
            '  "groups": {',
            f'    "{source}": {_dump(data["groups"][source])},',
            "  },",
        ]
    lines += [
        f"  // {who}",
        "  // may open the gateway port on the server, nothing else.",
        '  "grants": [',
        f"    {_dump(data['grants'][0])},",
        "  ],",
        '  // Legacy form, for a policy file that still uses "acls" instead of "grants":',
        '  // "acls": [',
        f"  //   {_dump(data['acls'][0])},",
        "  // ],",
        "  // Checked by Tailscale on every save: a member reaches the gateway, and not SSH, the",
        "  // metrics port or Ollama's own port."
        + (f" Replace {PLACEHOLDER_MEMBER} with a member's login." if member ==
           PLACEHOLDER_MEMBER else ""),
        '  "tests": [',
        f"    {_dump(data['tests'][0])},",
        "  ],",
        "}",
    ]
    return "\n".join(lines) + "\n"
