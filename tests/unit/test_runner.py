from __future__ import annotations

import sys

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
