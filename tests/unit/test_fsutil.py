from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from aicommon.errors import AiError
from aicommon.fsutil import atomic_write


def mode_of(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_creates_file_with_default_mode_and_parents(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "f.txt"
    res = atomic_write(target, "hello")
    assert res.changed and target.read_text() == "hello"
    assert mode_of(target) == 0o644


def test_identical_content_is_a_noop(tmp_path: Path) -> None:
    target = tmp_path / "f"
    atomic_write(target, "x")
    before = target.stat().st_ino
    res = atomic_write(target, "x")
    assert not res.changed and target.stat().st_ino == before


def test_keeps_existing_mode(tmp_path: Path) -> None:
    target = tmp_path / "rc"
    target.write_text("old")
    target.chmod(0o600)
    atomic_write(target, "new")
    assert mode_of(target) == 0o600 and target.read_text() == "new"


def test_explicit_mode_for_secrets(tmp_path: Path) -> None:
    target = tmp_path / "tokens.map"
    atomic_write(target, "t dev\n", mode=0o600)
    assert mode_of(target) == 0o600


def test_follows_symlink_and_keeps_link(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "zshrc"
    real.parent.mkdir()
    real.write_text("orig\n")
    link = tmp_path / ".zshrc"
    link.symlink_to(Path("dotfiles") / "zshrc")
    res = atomic_write(link, "changed\n")
    assert link.is_symlink()
    assert real.read_text() == "changed\n"
    assert res.path == real


def test_backup_keeps_old_content(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_text("one")
    res = atomic_write(target, "two", backup=True)
    assert res.backup is not None and res.backup.read_text() == "one"
    assert target.read_text() == "two"


def test_interrupted_write_removes_temp_and_keeps_original(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    target = work / "f"
    target.write_text("keep")

    def boom(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(AiError) as info:
        atomic_write(target, "new")
    assert "No space left" in info.value.message
    assert target.read_text() == "keep"
    assert [p.name for p in work.iterdir()] == ["f"]


def test_refuses_directory_target(tmp_path: Path) -> None:
    with pytest.raises(AiError):
        atomic_write(tmp_path, "x")


def test_keeps_the_owner_when_root_rewrites_a_users_file(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root can write a file owned by another user")
    target = tmp_path / "rc"
    target.write_text("old")
    os.chown(target, 12345, 23456)
    atomic_write(target, "new")
    st = target.stat()
    assert (st.st_uid, st.st_gid) == (12345, 23456) and target.read_text() == "new"
