"""The README is users' documentation: it stands on its own and matches the code."""

from __future__ import annotations

import re
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

from aiserver.settings import SECTIONS

README = Path(__file__).resolve().parents[2] / "README.md"


def test_cites_no_maintainers_reference() -> None:
    """REFERENCE.md is not part of the repository: a user cannot follow "REFERENCE §2.2"."""
    text = README.read_text(encoding="utf-8")
    cited = [line.strip()[:80] for line in text.splitlines() if "REFERENCE" in line]
    assert cited == []


def toml_blocks() -> list[dict[str, Any]]:
    text = README.read_text(encoding="utf-8")
    return [tomllib.loads(block) for block in re.findall(r"```toml\n(.*?)```", text, re.S)]


def test_settings_blocks_document_every_server_setting_with_its_default() -> None:
    documented: dict[str, dict[str, Any]] = {}
    for block in toml_blocks():
        for section, table in block.items():
            if section in SECTIONS:
                documented.setdefault(section, {}).update(table)
    for section, cls in SECTIONS.items():
        assert section in documented, f"[{section}] is not documented in the README"
        defaults = {f.name: getattr(cls(), f.name) for f in fields(cls)}
        shown = {k: tuple(v) if isinstance(v, list) else v
                 for k, v in documented[section].items()}
        if section == "pool":  # its block shows an example, not the defaults
            assert set(shown) == set(defaults)
            continue
        assert shown == defaults, f"[{section}] in the README differs from the code"
