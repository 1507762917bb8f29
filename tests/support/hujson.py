"""HuJSON (the tailnet policy file's format) → JSON: comments and trailing commas removed.

HuJSON is JSON plus `//` and `/* */` comments and a trailing comma after the last element of
an array or object (github.com/tailscale/hujson). This does exactly that, outside strings.
"""

from __future__ import annotations

import json
from typing import Any


def _next_significant(text: str, i: int) -> str:
    """The first character at or after i that is not a blank or inside a comment."""
    n = len(text)
    while i < n:
        if text[i].isspace():
            i += 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        else:
            return text[i]
    return ""


def standardize(text: str) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise ValueError("unterminated /* comment")
            i = end + 2
        elif ch == ",":
            # a trailing comma: followed (past blanks and comments) by } or ]
            if _next_significant(text, i + 1) not in ("}", "]"):
                out.append(ch)
            i += 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def loads(text: str) -> Any:
    return json.loads(standardize(text))
