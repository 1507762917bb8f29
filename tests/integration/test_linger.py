"""Linux: the services outlive the installing user's sessions (logind lingering).

systemd --user units run only while their user has a session unless lingering is on; on a
headless box reached by ssh, the gateway would stop at logout and never start at boot.
"""

from __future__ import annotations

import json
import os
import pwd
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_install import Stack
from tests.support import tsfake
from tests.support.fakeenv import make_fake_env

USER = pwd.getpwuid(os.getuid()).pw_name


@pytest.fixture()
def stack(tmp_path: Path) -> Iterator[Stack]:
    fe = make_fake_env(tmp_path, platform="linux", with_brew=False,
                       tailscale=tsfake.status_doc())
    s = Stack(fe)
    s.write_settings()
    try:
        yield s
    finally:
        fe.stop_all()


def lingering(stack: Stack) -> list[str]:
    return list(stack.fe.state("loginctl").get("linger", []))


def linger_calls(stack: Stack) -> list[list[str]]:
    return [c for c in stack.fe.calls("loginctl") if c and c[0].endswith("-linger")]


def test_loginctl_fake_answers_like_logind(stack: Stack) -> None:
    shown = stack.fe.run(["loginctl", "show-user", USER, "--property=Linger"])
    assert (shown.returncode, shown.stdout) == (0, "Linger=no\n")
    assert stack.fe.run(["loginctl", "enable-linger", USER]).stdout == ""
    assert stack.fe.run(["loginctl", "show-user", USER, "-p", "Linger", "--value"]
                        ).stdout == "yes\n"
    bogus = stack.fe.run(["loginctl", "show-user", "no-such-user-here"])
    assert bogus.returncode == 1
    assert bogus.stderr == "Failed to look up user no-such-user-here: No such process\n"
    assert stack.fe.run(["loginctl", "disable-linger"]).returncode == 0  # the caller
    stack.extra["FAKE_LOGINCTL_NO_SESSION"] = "1"
    gone = stack.fe.run(["loginctl", "show-user", USER], extra_env=stack.extra)
    assert gone.returncode == 1 and "is not logged in or lingering" in gone.stderr


def test_install_enables_lingering_and_uninstall_disables_it(stack: Stack) -> None:
    dry = stack.cli("install", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would run: loginctl enable-linger {USER}" in dry.stdout
    assert lingering(stack) == [] and linger_calls(stack) == []

    res = stack.cli("install", "--yes", "--json")
    assert res.returncode == 0, res.stderr + res.stdout
    assert json.loads(res.stdout)["data"]["commands"][0] == f"loginctl enable-linger {USER}"
    assert lingering(stack) == [USER]
    again = stack.cli("install", "--yes")  # on: nothing left to do
    assert "nothing to change" in again.stdout and len(linger_calls(stack)) == 1

    status = json.loads(stack.cli("status", "--json").stdout)["data"]
    assert status["linger"] == {"user": USER, "enabled": True}
    assert "linger     on for" in stack.cli("status").stdout
    doctor = json.loads(stack.cli("doctor", "--json").stdout)["data"]
    checks = {c["name"]: c for c in doctor["checks"]}
    assert checks["linger"]["status"] == "PASS"

    out = stack.cli("uninstall", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["data"]["linger"] == {"user": USER, "disabled": True}
    assert lingering(stack) == []


def test_lingering_that_was_already_on_is_left_on(stack: Stack) -> None:
    assert stack.fe.run(["loginctl", "enable-linger", USER]).returncode == 0
    res = stack.cli("install", "--yes", "--json")
    assert res.returncode == 0, res.stderr
    assert not [c for c in json.loads(res.stdout)["data"]["commands"] if "linger" in c]
    assert stack.cli("uninstall").returncode == 0
    assert lingering(stack) == [USER]
    assert [c[0] for c in linger_calls(stack)] == ["enable-linger"]  # only the test's own


def test_doctor_and_status_report_lingering_off(stack: Stack) -> None:
    assert stack.cli("install", "--yes").returncode == 0
    assert stack.fe.run(["loginctl", "disable-linger", USER]).returncode == 0
    doctor = stack.cli("doctor", "--json")
    assert doctor.returncode != 0
    check = {c["name"]: c for c in json.loads(doctor.stdout)["data"]["checks"]}["linger"]
    assert check["status"] == "FAIL" and "stop at logout" in check["detail"]
    assert f"sudo loginctl enable-linger {USER}" in check["fix"]
    assert "do not start at boot" in stack.cli("status").stdout


def test_a_failure_after_enabling_disables_it_again(stack: Stack) -> None:
    stack.extra["AI_SERVER_FAILPOINT"] = "verify"
    res = stack.cli("install", "--yes")
    assert res.returncode == 1 and "previous state restored" in res.stderr
    assert lingering(stack) == []
    assert [c[0] for c in linger_calls(stack)] == ["enable-linger", "disable-linger"]


def test_a_refused_enable_linger_restores_everything_and_says_how(stack: Stack) -> None:
    stack.fe.fail("loginctl enable-linger")
    before = stack.state_snapshot()
    res = stack.cli("install", "--yes")
    assert res.returncode == 1
    assert "step 'enable lingering'" in res.stderr
    assert "Interactive authentication required" in res.stderr
    assert f"sudo loginctl enable-linger {USER}" in res.stderr
    assert stack.state_snapshot() == before and stack.fe.live_pids() == []
