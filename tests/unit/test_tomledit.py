"""In-place edits of a user's TOML: only changed values are touched."""

from __future__ import annotations

import tomllib

from aicommon.tomledit import edit

USER = """# mine
[gateway]
port = 11435   # off 11434
listen = ["auto"]

# tuning below
[ollama]
keep_alive = "30m"  # short
"""
OLD = {"gateway": {"port": 11435, "listen": ("auto",), "tokens": False},
       "ollama": {"keep_alive": "30m", "warm": ()}}


def test_unchanged_values_leave_the_text_identical() -> None:
    assert edit(USER, OLD, OLD) == USER


def test_a_changed_value_keeps_its_comment_and_everything_else() -> None:
    new = {**OLD, "ollama": {"keep_alive": "2h", "warm": ()}}
    assert edit(USER, OLD, new) == USER.replace('"30m"  # short', '"2h"  # short')


def test_a_new_key_goes_after_the_tables_last_value_not_after_its_trailing_comments() -> None:
    new = {**OLD, "gateway": {**OLD["gateway"], "tokens": True}}
    assert edit(USER, OLD, new) == USER.replace('listen = ["auto"]\n',
                                                'listen = ["auto"]\ntokens = true\n')


def test_a_missing_table_is_added_at_the_end() -> None:
    old = {**OLD, "pool": {"nodes": ()}}
    new = {**OLD, "pool": {"nodes": ("127.0.0.1:11434",)}}
    text = edit(USER, old, new)
    assert text.startswith(USER)
    assert tomllib.loads(text)["pool"] == {"nodes": ["127.0.0.1:11434"]}


def test_crlf_files_stay_crlf() -> None:
    crlf = USER.replace("\n", "\r\n")
    new = {**OLD, "gateway": {**OLD["gateway"], "tokens": True, "port": 1}}
    text = edit(crlf, OLD, new)
    assert "\n" not in text.replace("\r\n", "")
    assert tomllib.loads(text)["gateway"] == {"port": 1, "listen": ["auto"], "tokens": True}


def test_dotted_keys_are_edited_where_they_are() -> None:
    text = 'ollama.keep_alive = "1h"  # dotted\n[gateway]\nport = 1\n'
    out = edit(text, {"ollama": {"keep_alive": "1h"}}, {"ollama": {"keep_alive": "2h"}})
    assert out == text.replace('"1h"', '"2h"')
