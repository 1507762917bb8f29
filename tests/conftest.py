"""Test-wide safety: every test runs with HOME and both tools' roots inside a temp dir."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # so `tests.support` imports from any working directory


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("AI_SERVER_HOME", str(home / "ai-server"))
    monkeypatch.setenv("AI_CLIENT_HOME", str(home / "ai-client"))
    monkeypatch.setenv("SHIV_ROOT", str(tmp_path / "shiv"))
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME",
                "AI_SERVER_CONFIG", "AI_CLIENT_CONFIG", "NO_COLOR"):
        monkeypatch.delenv(var, raising=False)
    return home
