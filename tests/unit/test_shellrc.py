"""Shell integration: env file rendering, marker-block planning, target choice, applying."""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path

import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from aiclient import envfile, shellrc
from aiclient.envfile import ClientEnv, fish_quote, render_fish, render_posix, sh_quote
from aiclient.shellrc import (
    BEGIN,
    END,
    MANAGED,
    RcChange,
    RcTarget,
    apply_change,
    apply_rc,
    bash_login_choice,
    line_break_style,
    plan_insert,
    plan_install,
    plan_remove,
    plan_uninstall,
    render_block,
    resolve_shells,
    sources_bashrc,
    targets,
)
from aicommon.errors import AiError, ExitCode

BLOCK = render_block(Path("/cfg/env.sh"))


def env(scope: str = "global", bin_dir: str = "/opt/ai client/bin") -> ClientEnv:
    return ClientEnv("http://studio.tail1234.ts.net:11434", "tok", "qwen3-coder:30b", scope,
                     Path(bin_dir), native_api=True)


def refused(text: str, code: str) -> AiError:
    with pytest.raises(AiError) as info:
        plan_insert(text, BLOCK, name="~/.zshrc")
    with pytest.raises(AiError) as info2:
        plan_remove(text, name="~/.zshrc")
    for err in (info.value, info2.value):
        assert err.code == code and err.exit_code == ExitCode.FAILURE
        assert "\n" not in err.message and err.message.startswith("~/.zshrc: ")
        assert err.hint
    return info.value


# ---------------------------------------------------------------- env files

def test_global_scope_variables() -> None:
    assert envfile.variables(env()) == [
        ("OLLAMA_API_BASE", "http://studio.tail1234.ts.net:11434"),
        ("OPENAI_API_BASE", "http://studio.tail1234.ts.net:11434/v1"),
        ("OPENAI_API_KEY", "tok"),
        ("AIDER_MODEL", "openai/qwen3-coder:30b"),
    ]


def test_aider_scope_sets_only_aider_variables() -> None:
    assert envfile.variables(env("aider")) == [
        ("AIDER_MODEL", "openai/qwen3-coder:30b"),
        ("AIDER_OPENAI_API_BASE", "http://studio.tail1234.ts.net:11434/v1"),
        ("AIDER_OPENAI_API_KEY", "tok"),
    ]
    text = render_posix(env("aider"))
    assert "OPENAI_API_KEY=" not in text.replace("AIDER_OPENAI_API_KEY=", "")
    assert "OLLAMA_API_BASE" not in text and "OLLAMA_API_BASE" not in render_fish(env("aider"))


def test_posix_file_guards_path_and_runs_nothing() -> None:
    text = render_posix(env())
    assert "case \":${PATH-}:\" in\n  *:'/opt/ai client/bin':*) ;;" in text
    code = "".join(line for line in text.splitlines() if not line.startswith("#"))
    assert "$(" not in code and "`" not in code  # no command substitution at shell start


def test_fish_file_guards_path() -> None:
    text = render_fish(env())
    assert "if not contains -- '/opt/ai client/bin' $PATH\n" in text
    assert "set -gx OPENAI_API_KEY 'tok'\n" in text


@given(st.text(st.characters(blacklist_characters="\0")))
def test_sh_quote_round_trips(value: str) -> None:
    assert shlex.split(sh_quote(value)) == [value]


def test_fish_quote_escapes_backslash_and_quote() -> None:
    assert fish_quote("a'b\\c $x `y`") == "'a\\'b\\\\c $x `y`'"


@pytest.mark.parametrize("kwargs", [
    {"scope": "everything"},
    {"base_url": "http://h:11434/"},
    {"base_url": "http://h:11434/v1"},
    {"api_key": ""},
    {"model": "a\0b"},
    {"bin_dir": Path("relative/bin")},
    {"bin_dir": Path("/a:b/bin")},
])
def test_client_env_rejects_bad_values(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"base_url": "http://h:11434", "api_key": "k", "model": "m",
                               "scope": "global", "bin_dir": Path("/b")}
    args.update(kwargs)
    with pytest.raises(AiError):
        ClientEnv(**args)  # type: ignore[arg-type]


def test_env_file_paths_follow_client_home(isolated_home: Path) -> None:
    posix, fish = envfile.env_file_paths()
    assert posix == isolated_home / "ai-client" / "config" / "env.sh"
    assert fish == isolated_home / "ai-client" / "config" / "env.fish"
    assert [p for p, _ in envfile.env_files(env())] == [posix, fish]


# ---------------------------------------------------------------- block text

def test_block_shape() -> None:
    expected = (f"{BEGIN}\n{MANAGED}\n"
                "if [ -r '/cfg/env.sh' ]; then . '/cfg/env.sh'; fi\n"
                f"{END}\n")
    assert render_block(Path("/cfg/env.sh")) == expected


def test_block_uses_home_relative_path(tmp_path: Path) -> None:
    block = render_block(tmp_path / "it's here" / "env.sh", tmp_path)
    assert "[ -r \"$HOME\"/'it'\\''s here/env.sh' ]" in block
    fish = shellrc.render_fish_conf(tmp_path / "c" / "env.fish", tmp_path)
    assert fish.startswith(MANAGED + "\n") and "source \"$HOME\"/'c/env.fish'" in fish


def test_block_refuses_path_with_newline() -> None:
    with pytest.raises(AiError):
        render_block(Path("/a\nb/env.sh"))


# ---------------------------------------------------------------- insert / replace / remove

def crlf(block: str) -> str:
    """The block as inserted into a CRLF file: command lines end in ` #` (CR in a comment)."""
    return "\r\n".join(line + " #" if line and not line.startswith("#") else line
                       for line in block.split("\n"))


def test_block_in_a_crlf_file_keeps_every_cr_inside_a_comment() -> None:
    text = plan_insert("x=1\r\n", BLOCK)
    for line in text.split("\n"):
        code = line.removesuffix("\r")
        assert "\r" not in code
        if line.endswith("\r") and code and not code.startswith("#") and code != "x=1":
            assert code.endswith(" #"), line
    assert "if [ -r '/cfg/env.sh' ]; then . '/cfg/env.sh'; fi #\r\n" in text

@pytest.mark.parametrize(("before", "after"), [
    ("", "\n" + BLOCK),
    ("x=1", "x=1\n" + BLOCK),
    ("x=1\n", "x=1\n\n" + BLOCK),
    ("x=1\n\n", "x=1\n\n\n" + BLOCK),
    ("x=1\r\ny=2\r\n", "x=1\r\ny=2\r\n\r\n" + crlf(BLOCK)),
    ("x=1\r\ny=2", "x=1\r\ny=2\r\n" + crlf(BLOCK)),
])
def test_insert_appends_after_one_line_break(before: str, after: str) -> None:
    assert plan_insert(before, BLOCK) == after
    assert plan_remove(after) == before
    assert plan_insert(after, BLOCK) == after


def test_replace_in_place_keeps_everything_around() -> None:
    old = f"a\n{BEGIN}\nold line\nanother\n{END}\nb\n"
    new = plan_insert(old, BLOCK)
    assert new == "a\n" + BLOCK + "b\n"


def test_replace_keeps_missing_final_newline_and_crlf() -> None:
    old = f"a\r\n\r\n  {BEGIN}  \r\nold\r\n{END}"
    new = plan_insert(old, BLOCK)
    assert new == "a\r\n\r\n" + crlf(BLOCK)[:-2]
    assert plan_remove(new) == "a\r\n"


def test_remove_without_block_is_identity() -> None:
    assert plan_remove("a\nb") == "a\nb"


def test_remove_block_in_the_middle_takes_one_blank_line() -> None:
    assert plan_remove("a\n\n" + BLOCK + "b\n") == "a\nb\n"


def test_remove_never_joins_the_lines_around_the_block() -> None:
    assert plan_remove("a\n" + BLOCK + "b\n") == "a\nb\n"
    assert plan_remove("a" + "\n" + BLOCK + "b") == "a\nb"


def test_marker_lines_may_carry_blanks() -> None:
    text = f"\t{BEGIN} \nx\n {END}\t\n"
    assert plan_remove(text) == ""


def test_begin_without_end_is_refused_and_nothing_goes_to_eof() -> None:
    err = refused(f"a\n{BEGIN}\nexport PATH=x\nimportant\n", "rc.unterminated_block")
    assert "line 2" in err.message


def test_end_without_begin_is_refused() -> None:
    refused(f"a\n{END}\n", "rc.unopened_block")


def test_end_before_begin_is_refused() -> None:
    refused(f"{END}\nx\n{BEGIN}\n", "rc.unopened_block")


def test_two_blocks_are_refused() -> None:
    err = refused(BLOCK + "x\n" + BLOCK, "rc.duplicate_block")
    assert "1, 4, 6, 9" in err.message


@pytest.mark.parametrize("line", [
    f"{BEGIN}x",
    f"echo '{BEGIN}'",
    f"{BEGIN} {END}",
    f"x {END}",
    "#>>> ai-client >>>",
])
def test_marker_text_not_alone_on_its_line_is_refused(line: str) -> None:
    refused(f"a\n{line}\nb\n", "rc.marker_not_alone")


@pytest.mark.parametrize("line", [
    "# >>> ai-client >>", "# >> ai-client >>>", "# >>> AI-client >>>", "# <<< ai-clien <<<",
    "#>>>ai-client>>>", "# >>> conda initialize >>>",
])
def test_near_miss_markers_are_plain_text(line: str) -> None:
    text = f"a\n{line}\nb"
    assert plan_remove(plan_insert(text, BLOCK)) == text


def test_line_break_style() -> None:
    assert line_break_style("") == "\n"
    assert line_break_style("a\r\nb\r\nc\n") == "\r\n"
    assert line_break_style("a\r\nb\nc\n") == "\n"


# ---------------------------------------------------------------- properties

MARKER_FREE_FRAGMENTS = [
    "\n", "\n", "\r\n", "\r", " ", "\t", "é", "💥", "\udcff", "export X=1", "#", "'", "$",
    "# >>> ai-client >>", "# >> ai-client >>>", "#>>>ai-client>>>", "# >>> AI-client >>>",
    "# <<< ai-clien <<<", "ai-client", ">>>", "<<<", "# >>> ai-client", " <<<",
]
marker_free = st.lists(
    st.one_of(st.sampled_from(MARKER_FREE_FRAGMENTS), st.text(max_size=4)), max_size=30,
).map("".join)
WHOLE_BLOCKS = ["\n" + BLOCK, f"\n {BEGIN}\t\r\nold\r\n{END}\r\n", f"\n{BEGIN}\n{END}"]
anything = st.lists(
    st.one_of(st.sampled_from([*MARKER_FREE_FRAGMENTS, BEGIN, END, BEGIN + "\n", END + "\n",
                               "\n" + END + "\n", BEGIN + "x", "x " + END]),
              st.sampled_from(WHOLE_BLOCKS), st.text(max_size=4)), max_size=30,
).map("".join)


def has_marker_text(text: str) -> bool:
    return ">>> ai-client >>>" in text or "<<< ai-client <<<" in text


def oracle_ok(text: str) -> bool:
    """Independent statement of what is accepted: no stray marker text, 0 or 1 ordered block."""
    kinds = []
    for line in text.split("\n"):
        if not has_marker_text(line):
            continue
        bare = line.strip(" \t\r")
        if bare not in (BEGIN, END):
            return False
        kinds.append(bare)
    return kinds in ([], [BEGIN, END])


@settings(max_examples=400)
@given(marker_free)
def test_insert_then_remove_restores_bytes(text: str) -> None:
    assume(not has_marker_text(text))
    inserted = plan_insert(text, BLOCK)
    assert inserted.startswith(text)
    assert plan_remove(inserted) == text
    assert plan_insert(inserted, BLOCK) == inserted
    other = render_block(Path("/other/env.sh"))
    assert plan_remove(plan_insert(inserted, other)) == text  # replacing keeps the surroundings


@settings(max_examples=400)
@given(marker_free, marker_free, marker_free)
def test_edits_outside_the_block_survive_remove(text: str, before: str, after: str) -> None:
    assume(not has_marker_text(text + "\n") and not has_marker_text(before + "\n"))
    assume(not has_marker_text("\n" + after))
    inserted = plan_insert(text, BLOCK)
    edited = before + inserted[len(text):] + after  # the user rewrote both sides
    keep_break = bool(before) and not before.endswith("\n") and bool(after)
    expected = before + (line_break_style(text) if keep_break else "") + after
    assert plan_remove(edited) == expected


@settings(max_examples=400)
@given(anything)
def test_refuses_exactly_the_malformed_files(text: str) -> None:
    ok = oracle_ok(text)
    event("refused" if not ok else "one block" if has_marker_text(text) else "no block")
    if not ok:
        with pytest.raises(AiError):
            plan_insert(text, BLOCK)
        with pytest.raises(AiError):
            plan_remove(text)
        return
    inserted = plan_insert(text, BLOCK)
    assert plan_insert(inserted, BLOCK) == inserted
    assert plan_remove(inserted) == plan_remove(text)
    assert not has_marker_text(plan_remove(text))


# ---------------------------------------------------------------- which files

@pytest.mark.parametrize("line", [
    ". ~/.bashrc",
    "source ~/.bashrc",
    '. "$HOME/.bashrc"',
    "source $HOME/.bashrc",
    "[ -f ~/.bashrc ] && . ~/.bashrc",
    "if [ -f ~/.bashrc ]; then source ~/.bashrc; fi",
    '  . "${HOME}/.bashrc"',
    '. "$HOME"/.bashrc',
    "test -r ~/.bashrc && . ~/.bashrc # load it",
    "\tsource '/Users/me/.bashrc'",
])
def test_sources_bashrc_variants(line: str) -> None:
    assert sources_bashrc(f"export A=1\n{line}\n", Path("/Users/me"))


@pytest.mark.parametrize("line", [
    "# . ~/.bashrc",
    ". ~/.bashrc_local",
    "cat ~/.bashrc",
    "source ~/.bash_aliases",
    "echo done # source ~/.bashrc",
])
def test_sources_bashrc_negatives(line: str) -> None:
    assert not sources_bashrc(f"{line}\n", Path("/Users/me"))


def test_zsh_target_honours_zdotdir(tmp_path: Path) -> None:
    home, zdot = tmp_path / "h", tmp_path / "zdot"
    assert targets(["zsh"], "linux", home, None)[0].path == home / ".zshrc"
    [t] = targets(["zsh"], "darwin", home, zdot)
    assert t.path == zdot / ".zshrc" and t.kind == "block" and "$ZDOTDIR" in t.reason


def test_fish_target_is_our_conf_d_file(tmp_path: Path) -> None:
    [t] = targets(["fish"], "linux", tmp_path, None)
    assert t.path == tmp_path / ".config/fish/conf.d/ai-client.fish" and t.kind == "file"
    [t] = targets(["fish"], "linux", tmp_path, None, xdg_config_home=tmp_path / "x")
    assert t.path == tmp_path / "x/fish/conf.d/ai-client.fish"


def bash_paths(home: Path, platform: str) -> list[Path]:
    return [t.path for t in targets(["bash"], platform, home, None)]


def test_macos_bash_gets_bash_profile_when_none_exists(isolated_home: Path) -> None:
    h = isolated_home
    assert bash_paths(h, "darwin") == [h / ".bashrc", h / ".bash_profile"]


@pytest.mark.parametrize("line", [". ~/.bashrc", 'source "$HOME/.bashrc"',
                                  "[[ -f ~/.bashrc ]] && . ~/.bashrc"])
def test_macos_bash_profile_sourcing_bashrc_is_left_alone(isolated_home: Path,
                                                          line: str) -> None:
    (isolated_home / ".bash_profile").write_text(f"export X=1\n{line}\n")
    assert bash_paths(isolated_home, "darwin") == [isolated_home / ".bashrc"]


def test_macos_bash_profile_not_sourcing_bashrc_gets_the_block(isolated_home: Path) -> None:
    (isolated_home / ".bash_profile").write_text("export X=1\n")
    assert bash_paths(isolated_home, "darwin")[-1] == isolated_home / ".bash_profile"


def test_macos_existing_profile_is_not_shadowed(isolated_home: Path) -> None:
    (isolated_home / ".profile").write_text("export X=1\n")
    assert bash_paths(isolated_home, "darwin")[-1] == isolated_home / ".profile"


def test_linux_bash_login_file(isolated_home: Path) -> None:
    h = isolated_home
    assert bash_paths(h, "linux") == [h / ".bashrc", h / ".profile"]
    (h / ".profile").write_text('if [ -f "$HOME/.bashrc" ]; then . "$HOME/.bashrc"; fi\n')
    assert bash_paths(h, "linux") == [h / ".bashrc", h / ".profile"]  # see bash_login_choice
    (h / ".bash_profile").write_text("")
    assert bash_paths(h, "linux") == [h / ".bashrc", h / ".bash_profile"]


def test_bash_login_choice_is_pure() -> None:
    name, reason = bash_login_choice("darwin", {".bash_login": ". ~/.bashrc\n"})
    assert name is None and ".bash_login" in reason


def test_resolve_shells(isolated_home: Path) -> None:
    h = isolated_home
    assert resolve_shells("auto", login_shell="/bin/zsh", home=h) == ["zsh"]
    (h / ".bashrc").write_text("")
    (h / ".config" / "fish").mkdir(parents=True)
    assert resolve_shells("auto", login_shell="/usr/local/bin/zsh", home=h) == [
        "zsh", "bash", "fish"]
    assert resolve_shells(" Fish,bash ", login_shell=None, home=h) == ["bash", "fish"]


def test_resolve_shells_errors(isolated_home: Path) -> None:
    with pytest.raises(AiError) as info:
        resolve_shells("zsh,tcsh", login_shell=None, home=isolated_home)
    assert info.value.exit_code == ExitCode.USAGE and "tcsh" in info.value.message
    with pytest.raises(AiError):
        resolve_shells("auto", login_shell="/bin/sh", home=isolated_home)


def test_resolve_shells_auto_sees_zdotdir(tmp_path: Path) -> None:
    (tmp_path / "z").mkdir()
    (tmp_path / "z" / ".zshrc").write_text("")
    assert resolve_shells("auto", login_shell=None, home=tmp_path / "h",
                          zdotdir=tmp_path / "z") == ["zsh"]


# ---------------------------------------------------------------- planning and applying files

def install(home: Path, shells: list[str], platform: str = "linux") -> list[RcChange]:
    cfg = home / "ai-client" / "config"
    changes = plan_install(targets(shells, platform, home, None), cfg / "env.sh",
                           cfg / "env.fish", home)
    for change in changes:
        apply_change(change)
    return changes


def uninstall(home: Path, shells: list[str], platform: str = "linux") -> list[RcChange]:
    changes = plan_uninstall(targets(shells, platform, home, None))
    for change in changes:
        apply_change(change)
    return changes


def test_install_uninstall_restores_bytes_and_modes(isolated_home: Path) -> None:
    h = isolated_home
    original = b"# mine\r\nalias ll='ls -l'\r\n\xff\xfe not utf-8\r\n"
    (h / ".bashrc").write_bytes(original)
    (h / ".bashrc").chmod(0o600)
    (h / ".zshrc").write_bytes(b"setopt no_beep")
    changes = install(h, ["zsh", "bash", "fish"])
    assert [c.target.path.name for c in changes] == [".zshrc", ".bashrc", ".profile",
                                                     "ai-client.fish"]
    assert all(c.changed for c in changes)
    bashrc = (h / ".bashrc").read_bytes()
    assert bashrc.startswith(original) and b"\r\n# >>> ai-client >>>\r\n" in bashrc
    assert stat.S_IMODE((h / ".bashrc").stat().st_mode) == 0o600
    assert "+# >>> ai-client >>>" in changes[0].diff()
    assert all(not c.changed for c in plan_install(
        targets(["zsh", "bash", "fish"], "linux", h, None), h / "ai-client/config/env.sh",
        h / "ai-client/config/env.fish", h))
    uninstall(h, ["zsh", "bash", "fish"])
    assert (h / ".bashrc").read_bytes() == original
    assert (h / ".zshrc").read_bytes() == b"setopt no_beep"
    assert (h / ".profile").read_bytes() == b""  # created by install; emptied, not deleted
    assert not (h / ".config/fish/conf.d/ai-client.fish").exists()


def test_uninstall_diff_and_nothing_to_do(isolated_home: Path) -> None:
    changes = uninstall(isolated_home, ["zsh"])
    assert changes == [RcChange(changes[0].target, None, None)]
    assert not changes[0].changed and changes[0].diff() == ""


def test_symlinked_rc_stays_a_symlink(isolated_home: Path) -> None:
    h = isolated_home
    real = h / "dotfiles" / "zshrc"
    real.parent.mkdir()
    real.write_text("export A=1\n")
    real.chmod(0o640)
    (h / ".zshrc").symlink_to(Path("dotfiles") / "zshrc")
    install(h, ["zsh"])
    assert (h / ".zshrc").is_symlink() and BEGIN in real.read_text()
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    uninstall(h, ["zsh"])
    assert (h / ".zshrc").is_symlink() and real.read_text() == "export A=1\n"


def test_two_names_for_one_file_are_planned_once(isolated_home: Path) -> None:
    h = isolated_home
    (h / ".bashrc").write_text("x\n")
    (h / ".bash_profile").symlink_to(".bashrc")
    changes = install(h, ["bash"], "darwin")
    assert len(changes) == 1
    assert (h / ".bashrc").read_text().count(BEGIN) == 1


def target_at(path: Path) -> RcTarget:
    return RcTarget("zsh", path, "block", "test")


def test_read_only_rc_is_refused_even_for_root(isolated_home: Path) -> None:
    rc = isolated_home / ".zshrc"
    rc.write_text("mine\n")
    rc.chmod(0o444)
    with pytest.raises(AiError) as info:
        apply_rc(target_at(rc), plan_insert("mine\n", BLOCK))
    assert info.value.code == "rc.read_only" and "read-only" in info.value.one_line()
    assert rc.read_text() == "mine\n" and os.listdir(isolated_home) == [".zshrc"]


def test_rc_whose_directory_is_a_file_is_refused(isolated_home: Path) -> None:
    blocker = isolated_home / "zdot"
    blocker.write_text("not a directory")
    with pytest.raises(AiError) as info:
        apply_rc(target_at(blocker / ".zshrc"), BLOCK)
    assert info.value.code == "rc.unwritable" and "zdot" in info.value.message
    assert blocker.read_text() == "not a directory"
    assert sorted(os.listdir(isolated_home)) == ["zdot"]


def test_symlink_into_a_file_is_refused(isolated_home: Path) -> None:
    (isolated_home / "blocker").write_text("x")
    (isolated_home / ".bashrc").symlink_to("blocker/bashrc")
    with pytest.raises(AiError) as info:
        apply_rc(target_at(isolated_home / ".bashrc"), BLOCK)
    assert info.value.code == "rc.dangling_symlink"


def test_dangling_symlink_is_refused_without_creating_dirs(isolated_home: Path) -> None:
    (isolated_home / ".zshrc").symlink_to("dotfiles/not-cloned/zshrc")
    with pytest.raises(AiError) as info:
        install(isolated_home, ["zsh"])
    assert info.value.code == "rc.dangling_symlink"
    assert not (isolated_home / "dotfiles").exists()


def test_change_made_since_planning_is_refused(isolated_home: Path) -> None:
    rc = isolated_home / ".zshrc"
    rc.write_text("a\n")
    [change] = plan_install(targets(["zsh"], "linux", isolated_home, None),
                            Path("/e.sh"), Path("/e.fish"))
    rc.write_text("a\nb\n")
    with pytest.raises(AiError) as info:
        apply_change(change)
    assert info.value.code == "rc.changed" and rc.read_text() == "a\nb\n"


def test_foreign_fish_file_is_left_alone(isolated_home: Path) -> None:
    [t] = targets(["fish"], "linux", isolated_home, None)
    t.path.parent.mkdir(parents=True)
    t.path.write_text("set -gx MINE 1\n")
    with pytest.raises(AiError):
        plan_install([t], Path("/e.sh"), Path("/e.fish"))
    with pytest.raises(AiError):
        plan_uninstall([t])
    assert t.path.read_text() == "set -gx MINE 1\n"


def test_malformed_rc_stops_planning_before_any_write(isolated_home: Path) -> None:
    (isolated_home / ".zshrc").write_text("ok\n")
    (isolated_home / ".bashrc").write_text(f"{BEGIN}\nrest of my file\n")
    with pytest.raises(AiError) as info:
        plan_install(targets(["zsh", "bash"], "linux", isolated_home, None),
                     Path("/e.sh"), Path("/e.fish"))
    assert info.value.code == "rc.unterminated_block" and ".bashrc" in info.value.message
    assert (isolated_home / ".zshrc").read_text() == "ok\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can hand a file to another user")
def test_owner_is_kept_when_root_edits_a_users_rc(isolated_home: Path) -> None:
    rc = isolated_home / ".zshrc"
    rc.write_text("a\n")
    os.chown(rc, 1234, 2345)
    install(isolated_home, ["zsh"])
    st = rc.stat()
    assert (st.st_uid, st.st_gid) == (1234, 2345) and BEGIN in rc.read_text()


def test_targets_from_environ(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHELL", "/bin/zsh")
    monkeypatch.setenv("ZDOTDIR", str(isolated_home / "z"))
    [t] = shellrc.targets_from_environ()
    assert t.path == isolated_home / "z" / ".zshrc"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(isolated_home / "x"))
    assert [t.path for t in shellrc.targets_from_environ("fish")] == [
        isolated_home / "x/fish/conf.d/ai-client.fish"]


def test_backup_is_optional(isolated_home: Path) -> None:
    rc = isolated_home / ".zshrc"
    rc.write_text("a\n")
    [change] = plan_install(targets(["zsh"], "linux", isolated_home, None),
                            Path("/e.sh"), Path("/e.fish"))
    applied = apply_change(change, backup=True)
    assert applied.written and applied.backup is not None
    assert applied.backup.read_text() == "a\n"
