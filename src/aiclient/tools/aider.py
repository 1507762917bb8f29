"""Aider's ~/.aider.model.metadata.json: describe the server's models (context, zero cost).

Entries are merged: the user's own entries are never changed; what setup added is recorded so
uninstall removes exactly that.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aicommon.errors import AiError, ExitCode

METADATA_NAME = ".aider.model.metadata.json"


def metadata_path(home: Path) -> Path:
    return home / METADATA_NAME


def entry(context_length: int) -> dict[str, Any]:
    return {"max_input_tokens": context_length, "max_tokens": context_length,
            "max_output_tokens": min(context_length, 16384), "input_cost_per_token": 0.0,
            "output_cost_per_token": 0.0, "litellm_provider": "openai", "mode": "chat"}


def read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        doc = json.loads(text) if text.strip() else {}
    except ValueError:
        raise AiError(f"{path} is not valid JSON; not touching it",
                      "fix or move the file, then run setup again", code="aider.metadata",
                      exit_code=ExitCode.FAILURE) from None
    if not isinstance(doc, dict):
        raise AiError(f"{path} is not a JSON object; not touching it",
                      "fix or move the file, then run setup again", code="aider.metadata",
                      exit_code=ExitCode.FAILURE)
    return doc


def merge(current: dict[str, Any], contexts: dict[str, int], ours: list[str]
          ) -> tuple[dict[str, Any], list[str]]:
    """New document and the keys that are ours. A key the user wrote is left alone; a key we
    wrote before is updated."""
    doc = dict(current)
    owned = []
    for model, ctx in sorted(contexts.items()):
        key = f"openai/{model}"
        if key in doc and key not in ours:
            continue  # the user's own entry
        doc[key] = entry(ctx)
        owned.append(key)
    for key in ours:  # models gone from the server: drop our stale entries
        if key not in owned and key in doc:
            del doc[key]
    return doc, owned


def remove(current: dict[str, Any], ours: list[str]) -> dict[str, Any]:
    return {k: v for k, v in current.items() if k not in ours}


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"
