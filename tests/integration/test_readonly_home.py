"""The zipapps in a container: an unprivileged user whose HOME is read-only (or absent).

shiv unpacks into ~/.shiv unless SHIV_ROOT says otherwise; the zipapp's own __main__.py falls
back to a private per-user directory under the temp dir. Run for real as `nobody` (setpriv).
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.test_zipapps import zipapps  # noqa: F401  (the built zipapps fixture)

pytestmark = pytest.mark.integration
NOBODY = pwd.getpwnam("nobody")
SETTINGS = """[server]
host = "studio.tail1234.ts.net"
port = 11434
token = "container-token-0123456789"

[client]
model = "qwen3-coder:30b"
"""


@dataclass
class Box:
    root: Path  # world-traversable (pytest's tmp_path is private to root)
    home: Path  # owned by root, mode 755: read-only for nobody
    tmp: Path  # nobody's TMPDIR
    app: Path

    def run(self, *args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = {"HOME": str(home or self.home), "PATH": "/usr/bin:/bin", "TMPDIR": str(self.tmp),
               "LANG": "C.UTF-8"}
        return subprocess.run(["setpriv", f"--reuid={NOBODY.pw_uid}",
                               f"--regid={NOBODY.pw_gid}", "--clear-groups", "--",
                               str(self.app), *args], env=env, capture_output=True, text=True,
                              timeout=120, check=False)


@pytest.fixture()
def box(zipapps: dict[str, Path]) -> Iterator[Box]:  # noqa: F811
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run as nobody (printed reason: not root here)")
    root = Path(tempfile.mkdtemp(prefix="rop-rohome-"))
    try:
        root.chmod(0o755)
        home = root / "home"
        cfg = home / ".config" / "ai-client"
        cfg.mkdir(parents=True)
        (cfg / "config.toml").write_text(SETTINGS)
        os.chown(cfg / "config.toml", NOBODY.pw_uid, NOBODY.pw_gid)
        (cfg / "config.toml").chmod(0o600)  # readable by its user, in a directory it cannot write
        for d in (home, home / ".config", cfg):
            d.chmod(0o755)
        tmp = root / "tmp"
        tmp.mkdir()
        os.chown(tmp, NOBODY.pw_uid, NOBODY.pw_gid)
        app = root / "ai-client"
        shutil.copy2(zipapps["ai-client"], app)
        app.chmod(0o755)
        yield Box(root, home, tmp, app)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_env_works_with_a_read_only_home(box: Box) -> None:
    before = tree(box.home)
    res = box.run("env")
    assert res.returncode == 0, res.stderr
    assert "export OPENAI_API_BASE='http://studio.tail1234.ts.net:11434/v1'" in res.stdout
    assert "export OPENAI_API_KEY='container-token-0123456789'" in res.stdout
    assert tree(box.home) == before  # nothing written into HOME
    unpacked = box.tmp / f"shiv-{NOBODY.pw_uid}"
    assert stat.S_IMODE(unpacked.stat().st_mode) == 0o700
    assert unpacked.stat().st_uid == NOBODY.pw_uid
    assert next(p.name for p in unpacked.iterdir() if p.is_dir()).startswith("ai-client_")
    again = box.run("env")  # the second run reuses the extraction
    assert again.returncode == 0 and again.stdout == res.stdout


def test_a_home_that_does_not_exist(box: Box) -> None:
    res = box.run("--version", home=Path("/nonexistent"))  # nobody's HOME in /etc/passwd
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("ai-client ")


def test_shiv_root_decides_where_it_unpacks(box: Box) -> None:
    chosen = box.tmp / "elsewhere"
    res = subprocess.run(["setpriv", f"--reuid={NOBODY.pw_uid}", f"--regid={NOBODY.pw_gid}",
                          "--clear-groups", "--", str(box.app), "--version"],
                         env={"HOME": str(box.home), "PATH": "/usr/bin:/bin",
                              "SHIV_ROOT": str(chosen)},
                         capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    assert any(p.name.startswith("ai-client_") for p in chosen.iterdir())
    assert not (box.tmp / f"shiv-{NOBODY.pw_uid}").exists()


def test_someone_elses_fallback_directory_is_refused(box: Box) -> None:
    planted = box.tmp / f"shiv-{NOBODY.pw_uid}"
    planted.mkdir(mode=0o777)  # made by root before nobody's first run: never import from it
    planted.chmod(0o777)
    res = box.run("env")
    assert res.returncode != 0 and res.stdout == ""
    assert res.stderr.count("\n") == 1 and "not a private directory of this user" in res.stderr
    assert "SHIV_ROOT" in res.stderr and "Traceback" not in res.stderr
