from __future__ import annotations

import sys
from pathlib import Path

import pytest

from aicommon.errors import AiError, ExitCode
from aicommon.runner import run


def test_captures_output_and_exit_code() -> None:
    done = run([sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr)"])
    assert (done.returncode, done.stdout, done.stderr) == (0, "out\n", "err\n")
    assert done.ok


def test_nonzero_with_check_names_the_command_and_last_stderr_line() -> None:
    with pytest.raises(AiError) as info:
        run([sys.executable, "-c", "import sys; sys.stderr.write('first\\nboom\\n'); sys.exit(3)"])
    msg = info.value.message
    assert "exit code 3" in msg and "boom" in msg and sys.executable in msg


def test_nonzero_without_check_returns() -> None:
    done = run([sys.executable, "-c", "raise SystemExit(4)"], check=False)
    assert done.returncode == 4 and not done.ok


def test_missing_program_is_unavailable() -> None:
    with pytest.raises(AiError) as info:
        run(["definitely-not-a-program-xyz", "--flag"])
    assert info.value.exit_code == ExitCode.UNAVAILABLE
    assert "definitely-not-a-program-xyz --flag" in info.value.message


def test_timeout_is_a_domain_error() -> None:
    with pytest.raises(AiError) as info:
        run([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.3)
    assert "did not finish within 0.3 s" in info.value.message


def test_arguments_are_never_shell_interpreted() -> None:
    done = run([sys.executable, "-c", "import sys; print(sys.argv[1])", "$(echo hi); rm -rf /"])
    assert done.stdout == "$(echo hi); rm -rf /\n"


def test_input_text_is_fed_to_stdin() -> None:
    done = run([sys.executable, "-c", "import sys; print(sys.stdin.read().upper())"],
               input_text="abc")
    assert done.stdout == "ABC\n"


# npm's placeholder `bin/claude.exe` (left in place when the package's install script does not
# run): a shell script without a `#!` line, so exec() fails with ENOEXEC (REFERENCE §2.6).
PLACEHOLDER = 'echo "Error: claude native binary not installed." >&2\nexit 1\n'


def test_exec_format_error_is_a_one_line_domain_error(tmp_path: Path) -> None:
    exe = tmp_path / "claude.exe"
    exe.write_text(PLACEHOLDER)
    exe.chmod(0o755)
    with pytest.raises(AiError) as info:
        run([str(exe), "--version"])
    err = info.value
    assert err.code == "program.cannot_run" and err.exit_code == ExitCode.UNAVAILABLE
    assert f"cannot run `{exe}`: Exec format error" in err.message
    assert f"`{exe} --version`" in err.message and "\n" not in err.one_line()


def test_any_other_oserror_is_a_domain_error_too(tmp_path: Path) -> None:
    with pytest.raises(AiError) as info:
        run([sys.executable, "-c", "pass"], cwd=str(tmp_path / "no-such-dir"))
    assert info.value.code in ("program.cannot_run", "program.missing")
    assert "Traceback" not in info.value.one_line()


NPM_ETARGET = """npm warn config ignoring something
npm error code ETARGET
npm error notarget No matching version found for @anthropic-ai/claude-code@2.1.999.
npm error notarget In most cases you or one of your dependencies are requesting
npm error notarget a package version that doesn't exist.
npm error A complete log of this run can be found in: /h/.npm/_logs/2026-debug-0.log
"""
NPM_EACCES = """npm error code EACCES
npm error syscall mkdir
npm error path /usr/lib/node_modules/@anthropic-ai
npm error errno -13
npm error Error: EACCES: permission denied, mkdir '/usr/lib/node_modules/@anthropic-ai'
npm error
npm error The operation was rejected by your operating system.
npm error A complete log of this run can be found in: /h/.npm/_logs/x-debug-0.log
"""
NPM_NETWORK = """npm error code ECONNREFUSED
npm error syscall connect
npm error errno ECONNREFUSED
npm error FetchError: request to http://127.0.0.1:9/@anthropic-ai%2fclaude-code failed, \
reason: connect ECONNREFUSED 127.0.0.1:9
npm error A complete log of this run can be found in: /h/.npm/_logs/y-debug-0.log
"""


@pytest.mark.parametrize(("stderr", "cause"), [
    (NPM_ETARGET, "npm error code ETARGET: No matching version found for "
                  "@anthropic-ai/claude-code@2.1.999. (log: /h/.npm/_logs/2026-debug-0.log)"),
    (NPM_EACCES, "npm error code EACCES: Error: EACCES: permission denied, mkdir "
                 "'/usr/lib/node_modules/@anthropic-ai' (log: /h/.npm/_logs/x-debug-0.log)"),
    (NPM_NETWORK, "npm error code ECONNREFUSED: FetchError: request to "
                  "http://127.0.0.1:9/@anthropic-ai%2fclaude-code failed, reason: connect "
                  "ECONNREFUSED 127.0.0.1:9 (log: /h/.npm/_logs/y-debug-0.log)"),
    ("  × No solution found when resolving dependencies:\n  ╰─▶ Because there is no version "
     "of aider-chat==9.9.9 we can conclude that your requirements are unsatisfiable.\n",
     "× No solution found when resolving dependencies: ╰─▶ Because there is no version of "
     "aider-chat==9.9.9 we can conclude that your requirements are unsatisfiable."),
    ("ERROR: Could not find a version that satisfies the requirement aider-chat==9.9.9 (from "
     "versions: 0.86.1)\nERROR: No matching distribution found for aider-chat==9.9.9\n",
     "ERROR: Could not find a version that satisfies the requirement aider-chat==9.9.9 (from "
     "versions: 0.86.1)"),
    ("==> Fetching x\nError: Cask 'claude-code' is unavailable: No Cask with this name exists.\n",
     "Error: Cask 'claude-code' is unavailable: No Cask with this name exists."),
    ("first\nboom\n", "boom"),
])
def test_failure_names_the_line_that_says_why(stderr: str, cause: str) -> None:
    with pytest.raises(AiError) as info:
        run([sys.executable, "-c", "import sys; sys.stderr.write(sys.argv[1]); sys.exit(1)",
             stderr])
    assert info.value.message.endswith(f"failed with exit code 1: {cause}")
