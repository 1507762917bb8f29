"""Secrets never reach a terminal or a log by accident: diffs and messages are masked."""

from __future__ import annotations

from collections.abc import Iterable

MASK = "<token hidden>"
NOT_SECRET = {"", "ollama"}  # the placeholder key clients send when no token is checked


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of each secret replaced by MASK (longest first)."""
    for secret in sorted({s for s in secrets if s not in NOT_SECRET}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
