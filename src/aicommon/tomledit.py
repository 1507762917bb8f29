"""Edit a user's TOML settings file in place: only the values that change are touched;
comments, order, blank lines and formatting of everything else stay as the user wrote them.

`edit(text, old, new)` takes the file's text and the settings it held and should hold (both as
{section: {key: value}}, every key present, e.g. validated settings with defaults filled in).
A changed key is rewritten where it is (its trailing comment kept); a key the file did not have
is added at the end of its table's key/value lines (before trailing comments and blank lines),
a missing table at the end of the file. Keys whose value is unchanged are never written, so a
short file stays short. tomlkit is imported only here (it is only needed when a file changes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _set(table: Any, key: str, value: Any) -> None:
    import tomlkit
    from tomlkit.items import Comment, Whitespace

    if key in table:
        trivia = table.item(key).trivia
        table[key] = value
        new = table.item(key).trivia  # keep the user's comment and spacing on that line
        new.comment_ws, new.comment, new.trail = trivia.comment_ws, trivia.comment, trivia.trail
        return
    body = table.value.body if hasattr(table, "value") else table.body
    last = max((i for i, (k, item) in enumerate(body) if k is not None
                and not isinstance(item, (Comment, Whitespace))), default=None)
    if last is None or last == len(body) - 1:
        table[key] = value
    else:  # before the comments and blank lines that end the table (they lead the next one)
        container = table.value if hasattr(table, "value") else table
        container._insert_at(last + 1, key, tomlkit.item(value))


def edit(text: str, old: Mapping[str, Mapping[str, Any]],
         new: Mapping[str, Mapping[str, Any]]) -> str:
    import tomlkit

    doc = tomlkit.parse(text)
    for section, values in new.items():
        before = old.get(section, {})
        for key, value in values.items():
            if _plain(before.get(key)) == _plain(value):
                continue
            if section not in doc:
                doc[section] = tomlkit.table()
            _set(doc[section], key, _plain(value))
    out = tomlkit.dumps(doc)
    crlf = text.count("\r\n")
    if crlf and crlf > text.count("\n") - crlf:  # a CRLF file: new lines follow its style
        out = out.replace("\r\n", "\n").replace("\n", "\r\n")
    return out
