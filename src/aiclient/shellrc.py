"""The managed block in the user's shell rc files: where it goes, how it is added and removed.

Planning is pure text in, text out (`plan_insert`, `plan_remove`); `plan_install` and
`plan_uninstall` read the files and return `RcChange`s with diffs; `apply_change` writes one
atomically (symlinks followed, mode kept). Nothing here prints.

Exactness rules (so insert→remove gives the original bytes back):
- insert appends exactly one line break (the file's style, CRLF or LF) and then the block, or
  replaces an existing block in place, keeping the line break that followed its end marker;
- in a CRLF file every command line of the block ends in ` #`, so the CR the shell sees at the
  end of the line is inside a comment (`fi\r` would be a syntax error in zsh and bash);
- remove deletes the block lines and the one line break in front of them, except when that
  would glue the line before the block onto the line after it;
- a marker is a line that is exactly `# >>> ai-client >>>` / `# <<< ai-client <<<` (blanks
  and a CR around it allowed); marker text anywhere else, a lone or repeated marker, is refused.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aiclient.envfile import fish_quote, sh_quote
from aicommon.errors import AiError, ExitCode
from aicommon.fsutil import WriteResult, atomic_write, resolve_target

BEGIN = "# >>> ai-client >>>"
END = "# <<< ai-client <<<"
MANAGED = "# managed by ai-client; remove with: ai-client uninstall"
_BEGIN_CORE = ">>> ai-client >>>"  # any line containing these is, or damages, a marker
_END_CORE = "<<< ai-client <<<"
SHELLS = ("zsh", "bash", "fish")
FISH_CONF_NAME = "ai-client.fish"

Kind = Literal["block", "file"]  # a block inside the user's file, or a whole file of ours


@dataclass(frozen=True)
class RcTarget:
    shell: str
    path: Path  # as the user knows it (may be a symlink)
    kind: Kind
    reason: str  # why this file: shown by setup's dry run


@dataclass(frozen=True)
class RcChange:
    target: RcTarget
    before: str | None  # None: the file does not exist
    after: str | None  # None: delete the file (our fish file on uninstall)

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def diff(self) -> str:
        import difflib  # only dry runs and reports need it

        label = str(self.target.path)
        return "".join(difflib.unified_diff(
            (self.before or "").splitlines(keepends=True),
            (self.after or "").splitlines(keepends=True),
            fromfile=label if self.before is not None else "/dev/null",
            tofile=label if self.after is not None else "/dev/null",
        ))


# ---------------------------------------------------------------- block text (pure)

def _shell_path(path: Path, home: Path | None, quote: str) -> str:
    """`"$HOME"/'rest'` when under home (dotfiles stay portable), else the quoted path."""
    q = fish_quote if quote == "fish" else sh_quote
    if "\n" in str(path) or "\r" in str(path):
        raise AiError(f"{path!r} contains a line break", code="rc.bad_path")
    if home is not None and path.is_relative_to(home) and path != home:
        return '"$HOME"/' + q(path.relative_to(home).as_posix())
    return q(str(path))


def render_block(env_file: Path, home: Path | None = None) -> str:
    """The marker block for sh/bash/zsh rc files (LF line ends; insert adapts them)."""
    quoted = _shell_path(env_file, home, "sh")
    # `if` rather than `[ ] && .`: a missing file must not leave $? = 1 for the first prompt.
    text = f"{BEGIN}\n{MANAGED}\nif [ -r {quoted} ]; then . {quoted}; fi\n{END}\n"
    _check_block(text)
    return text


def render_fish_conf(env_file: Path, home: Path | None = None) -> str:
    """The whole `conf.d/ai-client.fish` file (fish reads conf.d even non-interactively)."""
    quoted = _shell_path(env_file, home, "fish")
    return f"{MANAGED}\nif test -r {quoted}\n    source {quoted}\nend\n"


def _check_block(block: str) -> None:
    lines = block.split("\n")
    begins, ends, stray = _find_markers(block)
    if lines[0] != BEGIN or lines[-2:] != [END, ""] or len(begins) + len(ends) != 2 or stray:
        raise ValueError("a block must start with BEGIN, end with END + newline, and nest none")


# ---------------------------------------------------------------- planning (pure)

@dataclass(frozen=True)
class _Line:
    start: int  # offset of the first character
    stop: int  # offset after the line break (or end of text)
    content: str  # without the line break
    ending: str  # "\r\n", "\n" or "" (last line without a line break)


def _lines(text: str) -> list[_Line]:
    # Only LF ends a line for a shell; a CR before it is part of a CRLF ending.
    out: list[_Line] = []
    pos = 0
    while pos < len(text):
        nl = text.find("\n", pos)
        if nl < 0:
            out.append(_Line(pos, len(text), text[pos:], ""))
            break
        if nl > pos and text[nl - 1] == "\r":
            out.append(_Line(pos, nl + 1, text[pos:nl - 1], "\r\n"))
        else:
            out.append(_Line(pos, nl + 1, text[pos:nl], "\n"))
        pos = nl + 1
    return out


def _find_markers(text: str) -> tuple[list[tuple[int, _Line]], list[tuple[int, _Line]],
                                         list[int]]:
    """(begin lines, end lines, 1-based numbers of lines with marker text that is not alone)."""
    begins: list[tuple[int, _Line]] = []
    ends: list[tuple[int, _Line]] = []
    stray: list[int] = []
    for number, line in enumerate(_lines(text), 1):
        if _BEGIN_CORE not in line.content and _END_CORE not in line.content:
            continue
        bare = line.content.strip(" \t\r")
        if bare == BEGIN:
            begins.append((number, line))
        elif bare == END:
            ends.append((number, line))
        else:
            stray.append(number)
    return begins, ends, stray


def _refuse(message: str, name: str, code: str) -> AiError:
    return AiError(
        f"{name}: {message}",
        f"edit {name} by hand so it has one '{BEGIN}' line and one '{END}' line "
        "(or neither), then re-run",
        code=code, exit_code=ExitCode.FAILURE)


def _locate_block(text: str, name: str) -> tuple[_Line, _Line] | None:
    begins, ends, stray = _find_markers(text)
    if stray:
        raise _refuse(f"ai-client marker text is not on its own line (line {stray[0]})",
                      name, "rc.marker_not_alone")
    if len(begins) > 1 or len(ends) > 1:
        lines = ", ".join(str(n) for n, _ in sorted(begins + ends))
        raise _refuse(f"more than one ai-client block (marker lines {lines})",
                      name, "rc.duplicate_block")
    if begins and not ends:
        raise _refuse(f"ai-client begin marker on line {begins[0][0]} has no end marker",
                      name, "rc.unterminated_block")
    if ends and not begins:
        raise _refuse(f"ai-client end marker on line {ends[0][0]} has no begin marker",
                      name, "rc.unopened_block")
    if not begins:
        return None
    (b_num, begin), (e_num, end) = begins[0], ends[0]
    if e_num < b_num:
        raise _refuse(f"ai-client end marker (line {e_num}) comes before the begin marker "
                      f"(line {b_num})", name, "rc.unopened_block")
    return begin, end


def line_break_style(text: str) -> str:
    """CRLF when most line breaks are CRLF, else LF (also for text without any)."""
    crlf = text.count("\r\n")
    return "\r\n" if crlf > text.count("\n") - crlf else "\n"


def _with_line_breaks(block: str, nl: str) -> str:
    """The block with `nl` line breaks; with CRLF, each command line ends in ` #` (shells
    take only LF as a line break: the CR left on the line must fall inside a comment)."""
    if nl == "\n":
        return block
    return nl.join(line + " #" if line and not line.startswith("#") else line
                   for line in block.split("\n"))


def plan_insert(text: str, block: str, *, name: str = "rc file") -> str:
    """`text` with `block` replacing the existing block in place, or appended after one break."""
    _check_block(block)
    found = _locate_block(text, name)
    if found is None:
        nl = line_break_style(text)
        return text + nl + _with_line_breaks(block, nl)
    begin, end = found
    nl = begin.ending or line_break_style(text)
    body = _with_line_breaks(block[:-1], nl)  # the end marker keeps the break it had
    return text[:begin.start] + body + end.ending + text[end.stop:]


def plan_remove(text: str, *, name: str = "rc file") -> str:
    """`text` without the block and the one line break insert put before it."""
    found = _locate_block(text, name)
    if found is None:
        return text
    begin, end = found
    before, after = text[:begin.start], text[end.stop:]
    if before.endswith(begin.ending) and begin.ending:
        trimmed = before[:-len(begin.ending)]
    elif before.endswith("\n"):
        trimmed = before[:-1]
    else:
        trimmed = before
    if after and trimmed and not trimmed.endswith("\n"):
        trimmed = before  # keep the break: the lines around the block must not merge
    return trimmed + after


def has_block(text: str, *, name: str = "rc file") -> bool:
    return _locate_block(text, name) is not None


# ---------------------------------------------------------------- which files

_BASH_LOGIN_FILES = (".bash_profile", ".bash_login", ".profile")


def sources_bashrc(text: str, home: Path | None = None) -> bool:
    """True when a login file runs ~/.bashrc (`. ~/.bashrc`, `source "$HOME/.bashrc"`, ...)."""
    homes = [r"~", r"\$HOME", r"\$\{HOME\}"]
    if home is not None:
        homes.append(re.escape(str(home)))
    pattern = re.compile(
        r"(?:^|[\s;&|({])(?:\.|source)\s+[\"']?(?:" + "|".join(homes) + r")[\"']?"
        r"/\.bashrc(?=[\"'\s;&|)]|$)")
    for raw in text.splitlines():
        line = re.sub(r"(?:^|\s)#.*", "", raw)  # comments do not run
        if pattern.search(line):
            return True
    return False


def bash_login_choice(platform: str, existing: Mapping[str, str | None]) -> tuple[str | None, str]:
    """Which login file (if any) also needs the block, and why.

    `existing` maps each of .bash_profile/.bash_login/.profile to its text (None: absent).
    Login bash reads only the first of them that exists, so that is the one to edit; creating
    .bash_profile when .profile exists would silently stop bash reading .profile.
    """
    first = next((n for n in _BASH_LOGIN_FILES if existing.get(n) is not None), None)
    if platform == "darwin":
        if first is None:
            return ".bash_profile", "macOS terminals start login shells, which read ~/.bash_profile"
        if sources_bashrc(existing[first] or ""):
            return None, f"~/{first} already sources ~/.bashrc"
        return first, f"macOS terminals start login shells, which read ~/{first}"
    # Linux and others. Debian's/Ubuntu's stock ~/.profile sources ~/.bashrc, but their stock
    # ~/.bashrc returns at once when not interactive, so `bash -l -c` would never reach a block
    # appended to it; the login file gets its own block. Sourcing the env file twice in an
    # interactive login shell is harmless: it only assigns, and PATH is guarded.
    if first is None:
        return ".profile", "login shells (ssh, `bash -l`) read ~/.profile; none exists yet"
    return first, f"login shells (ssh, `bash -l`) read ~/{first}"


def resolve_shells(spec: str, *, login_shell: str | None, home: Path,
                   zdotdir: Path | None = None, xdg_config_home: Path | None = None) -> list[str]:
    """`--shell` value to shell names: "auto" or a comma list such as "zsh,bash,fish".

    auto = the login shell ($SHELL) plus every supported shell whose rc file already exists.
    """
    spec = spec.strip().lower()
    if spec != "auto":
        names = [part.strip() for part in spec.split(",") if part.strip()]
        unknown = [n for n in names if n not in SHELLS]
        if unknown or not names:
            raise AiError(f"unknown shell {', '.join(unknown) or spec!r}",
                          "use auto or a comma list of zsh, bash, fish",
                          code="shell.unknown", exit_code=ExitCode.USAGE)
        return [s for s in SHELLS if s in names]
    wanted: set[str] = set()
    login = Path(login_shell).name.lstrip("-") if login_shell else ""
    if login in SHELLS:
        wanted.add(login)
    if ((zdotdir or home) / ".zshrc").exists():
        wanted.add("zsh")
    if (home / ".bashrc").exists() or (home / ".bash_profile").exists():
        wanted.add("bash")
    if ((xdg_config_home or home / ".config") / "fish").is_dir():
        wanted.add("fish")
    if not wanted:
        raise AiError(f"cannot tell which shell you use ($SHELL is {login_shell or 'unset'})",
                      "pass --shell zsh, bash or fish", code="shell.unknown",
                      exit_code=ExitCode.USAGE)
    return [s for s in SHELLS if s in wanted]


def targets(shells: Sequence[str], platform: str, home: Path, zdotdir: Path | None = None,
            *, xdg_config_home: Path | None = None) -> list[RcTarget]:
    """The files to edit for `shells` (names from `resolve_shells`)."""
    out: list[RcTarget] = []
    for shell in shells:
        if shell == "zsh":
            where = "$ZDOTDIR" if zdotdir else "~"
            out.append(RcTarget("zsh", (zdotdir or home) / ".zshrc", "block",
                                f"interactive zsh reads {where}/.zshrc"))
        elif shell == "bash":
            out.append(RcTarget("bash", home / ".bashrc", "block",
                                "interactive non-login bash reads ~/.bashrc"))
            existing = {n: _read_optional(home / n) for n in _BASH_LOGIN_FILES}
            name, reason = bash_login_choice(platform, existing)
            if name is not None:
                out.append(RcTarget("bash", home / name, "block", reason))
        elif shell == "fish":
            conf_d = (xdg_config_home or home / ".config") / "fish" / "conf.d"
            out.append(RcTarget("fish", conf_d / FISH_CONF_NAME, "file",
                                "fish runs every file in conf.d at start"))
        else:
            raise AiError(f"unknown shell {shell!r}", "use zsh, bash or fish",
                          code="shell.unknown", exit_code=ExitCode.USAGE)
    return out


def targets_from_environ(spec: str = "auto") -> list[RcTarget]:
    """`targets` for this process: $HOME, $ZDOTDIR, $XDG_CONFIG_HOME, $SHELL, sys.platform."""
    home = Path(os.environ.get("HOME") or Path.home())
    zdotdir = Path(os.environ["ZDOTDIR"]) if os.environ.get("ZDOTDIR") else None
    xdg = os.environ.get("XDG_CONFIG_HOME")
    xdg_path = Path(xdg) if xdg and Path(xdg).is_absolute() else None
    shells = resolve_shells(spec, login_shell=os.environ.get("SHELL"), home=home,
                            zdotdir=zdotdir, xdg_config_home=xdg_path)
    return targets(shells, sys.platform, home, zdotdir, xdg_config_home=xdg_path)


# ---------------------------------------------------------------- reading, planning files

def read_rc(path: Path) -> str | None:
    """The file's text (undecodable bytes kept via surrogateescape), None when absent."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError as exc:
        raise AiError(f"{path} is a directory", "move it aside and retry",
                      code="rc.not_regular") from exc
    except OSError as exc:
        raise AiError(f"cannot read {path}: {exc.strerror or exc}",
                      "check the file and its directory are readable",
                      code="rc.unreadable") from exc
    return data.decode("utf-8", "surrogateescape")


def _read_optional(path: Path) -> str | None:
    try:
        return read_rc(path)
    except AiError:
        return ""  # exists but unreadable: planning will report it properly


def _unique(targets_: Iterable[RcTarget]) -> list[RcTarget]:
    # A symlinked .bash_profile -> .bashrc (or ZDOTDIR=$HOME twice) is one file: plan it once.
    seen: set[Path] = set()
    out: list[RcTarget] = []
    for t in targets_:
        real = resolve_target(t.path).absolute()
        if real not in seen:
            seen.add(real)
            out.append(t)
    return out


def _owns_fish_file(text: str) -> bool:
    return MANAGED in text.splitlines()


def plan_install(targets_: Iterable[RcTarget], env_sh: Path, env_fish: Path,
                 home: Path | None = None) -> list[RcChange]:
    """One change per distinct file: add/refresh the block, or (fish) write our conf.d file."""
    changes: list[RcChange] = []
    for target in _unique(targets_):
        before = read_rc(target.path)
        if target.kind == "file":
            if before is not None and not _owns_fish_file(before):
                raise AiError(f"{target.path} exists and was not written by ai-client",
                              "move it aside and re-run", code="rc.foreign_file")
            after = render_fish_conf(env_fish, home)
        else:
            after = plan_insert(before or "", render_block(env_sh, home),
                                name=str(target.path))
        changes.append(RcChange(target, before, after))
    return changes


def plan_uninstall(targets_: Iterable[RcTarget]) -> list[RcChange]:
    """One change per distinct file: remove the block, or (fish) delete our conf.d file."""
    changes: list[RcChange] = []
    for target in _unique(targets_):
        before = read_rc(target.path)
        if before is None:
            changes.append(RcChange(target, None, None))
        elif target.kind == "file":
            if not _owns_fish_file(before):
                raise AiError(f"{target.path} was not written by ai-client; leaving it",
                              "delete it by hand if you want it gone", code="rc.foreign_file")
            changes.append(RcChange(target, before, None))
        else:
            changes.append(RcChange(target, before, plan_remove(before, name=str(target.path))))
    return changes


# ---------------------------------------------------------------- applying

@dataclass(frozen=True)
class Applied:
    change: RcChange
    path: Path  # the file actually written or deleted (a symlink's target)
    written: bool
    backup: Path | None


def _manual_hint(target: RcTarget) -> str:
    return (f"make it writable, or add the ai-client lines to {target.path} yourself "
            "(`ai-client setup --dry-run` shows them)")


def apply_rc(target: RcTarget, new_text: str, *, backup: bool = False) -> WriteResult:
    """Write `new_text` over the target atomically: symlinks followed, mode kept.

    Refuses (AiError, nothing changed) a read-only file, even for root, and a dangling
    symlink (its missing directory would otherwise be created).
    """
    real = resolve_target(target.path)
    if real != target.path and not real.parent.is_dir():
        raise AiError(f"{target.path} is a symlink to {real}, whose directory does not exist",
                      "fix or remove the symlink, then re-run", code="rc.dangling_symlink")
    try:
        st = real.stat()
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise AiError(f"cannot write {target.path}: {exc.strerror or exc}",
                      _manual_hint(target), code="rc.unwritable") from exc
    if st is not None and stat.S_ISREG(st.st_mode) and not st.st_mode & stat.S_IWUSR:
        raise AiError(f"{target.path} is read-only", _manual_hint(target),
                      code="rc.read_only")
    try:
        result = atomic_write(target.path, new_text.encode("utf-8", "surrogateescape"),
                              backup=backup)
    except AiError as exc:
        raise AiError(f"cannot write {target.path}: {exc.message}", _manual_hint(target),
                      code="rc.unwritable") from exc
    if st is not None and result.changed and os.geteuid() == 0:
        # The rename leaves a root-owned file; under sudo the user would lose their own rc.
        os.chown(result.path, st.st_uid, st.st_gid)
    return result


def apply_change(change: RcChange, *, backup: bool = False) -> Applied:
    """Carry out a planned change, refusing if the file changed since it was planned."""
    target = change.target
    if read_rc(target.path) != change.before:
        raise AiError(f"{target.path} changed since it was planned", "re-run the command",
                      code="rc.changed")
    real = resolve_target(target.path)
    if not change.changed:
        return Applied(change, real, False, None)
    if change.after is None:
        try:
            target.path.unlink()
        except OSError as exc:
            raise AiError(f"cannot remove {target.path}: {exc.strerror or exc}",
                          "remove it by hand", code="rc.unwritable") from exc
        return Applied(change, target.path, True, None)
    result = apply_rc(target, change.after, backup=backup)
    return Applied(change, result.path, result.changed, result.backup)
