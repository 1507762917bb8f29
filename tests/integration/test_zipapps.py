"""The built zipapps, run as processes the way Homebrew users run them."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DIST = REPO / "dist"
TOOLS = ["ai-server", "ai-client"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build() -> str:
    res = subprocess.run([str(REPO / "scripts" / "build-zipapps")], capture_output=True,
                         text=True, timeout=600, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


@pytest.fixture(scope="session")
def zipapps() -> dict[str, Path]:
    first = build()
    hashes = {t: sha256(DIST / t) for t in TOOLS}
    for tool in TOOLS:  # the script prints each artifact's sha256 and size
        assert f"{hashes[tool]}  dist/{tool}  {(DIST / tool).stat().st_size} bytes" in first
    return {t: DIST / t for t in TOOLS}


def test_two_builds_are_identical(zipapps: dict[str, Path]) -> None:
    before = {t: sha256(p) for t, p in zipapps.items()}
    build()
    assert {t: sha256(p) for t, p in zipapps.items()} == before


@pytest.mark.parametrize("tool", TOOLS)
def test_no_compiled_extensions_inside(zipapps: dict[str, Path], tool: str) -> None:
    names = zipfile.ZipFile(zipapps[tool]).namelist()
    assert not [n for n in names if n.endswith((".so", ".dylib", ".pyd"))]
    assert any(n.endswith("aishare/__init__.py") for n in names)
    assert zipapps[tool].read_bytes().startswith(b"#!/usr/bin/env python3\n")


def run_app(app: Path, *args: str, cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AI_", "SHIV_"))}
    env["HOME"] = str(home)
    return subprocess.run([str(app), *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=120, check=False)


@pytest.mark.parametrize("tool", TOOLS)
def test_runs_from_elsewhere_with_a_temp_home(
    zipapps: dict[str, Path], tool: str, tmp_path: Path
) -> None:
    home, elsewhere = tmp_path / "h", tmp_path / "cwd"
    home.mkdir()
    elsewhere.mkdir()
    version = run_app(zipapps[tool], "--version", cwd=elsewhere, home=home)
    assert version.returncode == 0 and version.stdout.startswith(f"{tool} ")
    helped = run_app(zipapps[tool], "--help", cwd=elsewhere, home=home)
    assert helped.returncode == 0 and "paths" in helped.stdout
    res = run_app(zipapps[tool], "paths", "--json", cwd=elsewhere, home=home)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)["data"]
    # the bundled data is read through importlib.resources from the extracted zipapp
    assert data["share_dir"].startswith(str(home / ".shiv"))
    expected = sum(1 for f in (REPO / "share").rglob("*")
                   if f.is_file() and f.name != "__init__.py" and "__pycache__" not in f.parts)
    assert data["share_files"] == expected
    assert data["config_file"].startswith(str(home))


def test_preamble_removes_older_extractions(zipapps: dict[str, Path], tmp_path: Path) -> None:
    home = tmp_path / "h"
    stale = home / ".shiv" / "ai-client_0000deadbeef"
    (stale / "site-packages").mkdir(parents=True)
    other_app = home / ".shiv" / "ai-server_0000deadbeef"
    other_app.mkdir(parents=True)
    res = run_app(zipapps["ai-client"], "--version", cwd=tmp_path, home=home)
    assert res.returncode == 0
    assert not stale.exists()
    assert other_app.exists()  # another tool's extraction is not ours to remove
    current = [p for p in (home / ".shiv").iterdir() if p.name.startswith("ai-client_")]
    assert len(current) == 1 and (current[0] / ".siblings-cleaned").exists()


def test_every_package_under_src_is_shipped() -> None:
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    on_disk = {str(p.parent.relative_to(REPO / "src")).replace("/", ".")
               for p in (REPO / "src").rglob("__init__.py")}
    assert on_disk <= listed, f"missing from pyproject packages: {sorted(on_disk - listed)}"


@pytest.mark.parametrize("tool", TOOLS)
def test_every_module_imports_inside_the_zipapp(zipapps: dict[str, Path], tool: str,
                                                tmp_path: Path) -> None:
    """Run the zipapp's own interpreter path over all of its modules (catches a module left
    out of the distribution, which the editable install used by the other tests hides)."""
    code = ("import importlib, pkgutil, sys\n"
            "import aicommon, aiserver, aiclient\n"
            "bad = []\n"
            "for pkg in (aicommon, aiserver, aiclient):\n"
            "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
            "        try:\n"
            "            importlib.import_module(m.name)\n"
            "        except Exception as exc:\n"
            "            bad.append(f'{m.name}: {exc!r}')\n"
            "print('\\n'.join(bad) or 'ok')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AI_", "SHIV_"))}
    env.update(HOME=str(tmp_path), SHIV_ENTRY_POINT="", SHIV_INTERPRETER="1")
    res = subprocess.run([str(zipapps[tool]), "-c", code], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=120, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "ok", res.stdout
