"""Fast start: `--help` and `--version` import click and our CLI modules, and next to nothing
else (heavy or merely unneeded modules load inside the commands that use them)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import click
import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
SITE = Path(click.__file__).resolve().parents[1]
# what importing our CLIs may add to a bare `import click`: dataclasses (our small records),
# locale (gettext, called by click's own option decorators while our commands are declared)
ALLOWED = {"dataclasses", "copy", "locale", "_locale"}


@pytest.mark.parametrize("module", ["aiclient.cli", "aiserver.cli"])
def test_cli_modules_import_only_click_and_themselves(module: str) -> None:
    code = ("import sys\n"
            f"sys.path[:0] = [{str(SRC)!r}, {str(SITE)!r}]\n"
            "import click\n"
            "before = set(sys.modules)\n"
            f"import {module}\n"
            "print(sorted(set(sys.modules) - before))\n")
    # -S: no site (no .pth files of the test machine's environments adding their own imports)
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    added = {m for m in ast.literal_eval(out) if m.split(".")[0] not in ("aicommon", "aiclient",
                                                                  "aiserver")}
    assert added <= ALLOWED, sorted(added - ALLOWED)
