"""The tailnet policy snippet (HuJSON) that lets ai-client devices reach the gateway port only.

A pure function of the settings. The text is JSON plus `//` comments (no trailing commas), so
stripping the comments leaves a document `json.loads` accepts.
"""

from __future__ import annotations

import json
from typing import Any

from aiserver.settings import Settings, split_hostport

SERVER_TAG = "tag:ai-server"
CLIENT_TAG = "tag:ai-client"
SSH_PORT = 22


def denied_ports(settings: Settings) -> list[int]:
    """Ports the policy tests must find closed: SSH, metrics, and Ollama's own port.

    Ollama's port matters when the gateway listens on another one: with Tailscale in
    userspace mode, tailnet traffic to that port would reach Ollama on loopback directly.
    """
    g = settings.gateway
    _, upstream_port = split_hostport(g.upstream)
    ports = [SSH_PORT, g.metrics_port, upstream_port]
    return [p for p in dict.fromkeys(ports) if p != g.port]


def policy(settings: Settings) -> dict[str, Any]:
    """The policy sections as data: tagOwners, grants, tests (and the legacy acls form)."""
    port = settings.gateway.port
    return {
        "tagOwners": {SERVER_TAG: ["autogroup:admin"], CLIENT_TAG: ["autogroup:admin"]},
        "grants": [{"src": [CLIENT_TAG], "dst": [SERVER_TAG], "ip": [f"tcp:{port}"]}],
        "tests": [{"src": CLIENT_TAG, "accept": [f"{SERVER_TAG}:{port}"],
                   "deny": [f"{SERVER_TAG}:{p}" for p in denied_ports(settings)]}],
        "acls": [{"action": "accept", "src": [CLIENT_TAG], "dst": [f"{SERVER_TAG}:{port}"]}],
    }


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(", ", ": "))


def policy_text(settings: Settings) -> str:
    """The snippet to merge into the tailnet policy file (admin console → Access controls)."""
    data = policy(settings)
    port = settings.gateway.port
    owners = data["tagOwners"]
    grant = data["grants"][0]
    test = data["tests"][0]
    legacy = data["acls"][0]
    lines = [
        f"// ai-server: tailnet policy for the gateway on port {port}.",
        "// Merge these sections into your policy file (admin console -> Access controls).",
        f"// Tag the server {SERVER_TAG} (`tailscale up --advertise-tags={SERVER_TAG}`) and",
        f"// each laptop {CLIENT_TAG}. Policies deny by default: nothing else reaches the server.",
        "{",
        '  "tagOwners": {',
        f'    "{SERVER_TAG}": {_dump(owners[SERVER_TAG])},',
        f'    "{CLIENT_TAG}": {_dump(owners[CLIENT_TAG])}',
        "  },",
        f"  // {CLIENT_TAG} devices may open TCP connections to the gateway port, nothing else.",
        '  "grants": [',
        f"    {_dump(grant)}",
        "  ],",
        '  // Legacy form, for a policy file that still uses "acls" instead of "grants":',
        '  // "acls": [',
        f"  //   {_dump(legacy)}",
        "  // ],",
        "  // Checked by Tailscale on every save: the gateway is reachable; SSH, the metrics",
        "  // port and Ollama's own port are not.",
        '  "tests": [',
        f"    {_dump(test)}",
        "  ]",
        "}",
    ]
    return "\n".join(lines) + "\n"
