"""Atomic file writes: temp file beside the target, then rename over it."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aicommon.errors import AiError


@dataclass(frozen=True)
class WriteResult:
    path: Path  # the file actually written (a symlink's target)
    changed: bool
    backup: Path | None


def resolve_target(path: Path) -> Path:
    """The real file behind `path`, following symlinks (even dangling ones)."""
    seen = 0
    while path.is_symlink():
        seen += 1
        if seen > 40:
            raise AiError(f"{path} is a symlink loop", "fix or remove the symlink",
                          code="file.symlink_loop")
        link = Path(os.readlink(path))
        path = link if link.is_absolute() else path.parent / link
    return path


def backup_path_for(path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = path.with_name(f"{path.name}.bak-{stamp}")
    n = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.bak-{stamp}-{n}")
        n += 1
    return candidate


def atomic_write(
    path: str | os.PathLike[str],
    content: str | bytes,
    *,
    mode: int | None = None,
    backup: bool = False,
    make_parents: bool = True,
) -> WriteResult:
    """Write `content` to `path` so readers see the old file or the new one, never half.

    Symlinks are followed and their target rewritten (the link stays a link). The existing
    file's owner (when running as root) and permission bits are kept unless `mode` is given
    (use 0o600 for secrets); new files get `mode` or 0o644. Writing identical content is a
    no-op (changed=False). With backup, the old content is copied aside first and the copy's
    path returned.
    """
    target = resolve_target(Path(path))
    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        existing_stat = target.stat()
    except FileNotFoundError:
        existing_stat = None
    except OSError as exc:
        raise AiError(f"cannot read {target}: {exc.strerror}", code="file.unreadable") from exc
    if existing_stat is not None and not stat.S_ISREG(existing_stat.st_mode):
        raise AiError(f"{target} is not a regular file", "move it aside and retry",
                      code="file.not_regular")
    final_mode = mode if mode is not None else (
        stat.S_IMODE(existing_stat.st_mode) if existing_stat is not None else 0o644)
    if existing_stat is not None:
        with contextlib.suppress(OSError):
            if target.read_bytes() == data and stat.S_IMODE(existing_stat.st_mode) == final_mode:
                return WriteResult(target, False, None)
    parent = target.parent
    try:
        if make_parents:
            parent.mkdir(parents=True, exist_ok=True)
        backup_file = None
        if backup and existing_stat is not None:
            backup_file = backup_path_for(target)
            shutil.copy2(target, backup_file)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
        try:
            os.fchmod(fd, final_mode)
            if existing_stat is not None and os.geteuid() == 0:
                # under sudo, keep a user's file theirs (root would otherwise take it over)
                os.fchown(fd, existing_stat.st_uid, existing_stat.st_gid)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            raise
    except OSError as exc:
        raise AiError(f"cannot write {target}: {exc.strerror or exc}",
                      "check the directory exists and is writable", code="file.unwritable") from exc
    return WriteResult(target, True, backup_file)


def make_dirs(path: Path, created: list[Path]) -> None:
    """mkdir -p that appends every directory it creates to `created` (parents first), so an
    undo can remove exactly those (in reverse) and nothing that existed before."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        d.mkdir()
        created.append(d)


def restore_file(path: Path, before: str | bytes | None, mode: int | None = None) -> None:
    """Put a file back as it was before an apply: its old content, or gone if it was absent."""
    if before is None:
        path.unlink(missing_ok=True)
    else:
        atomic_write(path, before, mode=mode)


def remove_created_dirs(created: Sequence[Path | str]) -> None:
    """Undo `make_dirs`: remove the directories it recorded, deepest first, each only if it is
    empty now (anything put there since stays)."""
    for d in reversed(created):
        with contextlib.suppress(OSError):
            Path(d).rmdir()


def read_settings_text(path: Path) -> str:
    """A settings file's text; not UTF-8 is a one-line error naming the file and the byte.

    FileNotFoundError and other OSErrors pass through (callers decide what missing means).
    """
    from aicommon.errors import ExitCode

    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise AiError(f"settings file {path} is not UTF-8 text: byte 0x{data[exc.start]:02x} "
                      f"at offset {exc.start} (line {line})",
                      "save the file as UTF-8 (TOML requires it)", code="config.encoding",
                      exit_code=ExitCode.CONFIG) from None
