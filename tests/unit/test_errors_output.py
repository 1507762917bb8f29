from __future__ import annotations

import io
import json

import pytest

from aicommon.errors import AiError, ExitCode
from aicommon.output import Output, envelope, table


def test_exit_codes_are_the_documented_numbers() -> None:
    assert {c.name: int(c) for c in ExitCode} == {
        "OK": 0, "FAILURE": 1, "USAGE": 2, "FINDINGS": 3, "CONFIG": 4, "UNAVAILABLE": 5,
        "INTERRUPTED": 130,
    }


def test_error_one_line_collapses_newlines_and_appends_hint() -> None:
    err = AiError("bad\nthing  happened", "run `ai-server install`", code="x.y")
    assert err.one_line() == "bad thing happened (hint: run `ai-server install`)"
    assert err.as_dict() == {"code": "x.y", "message": "bad\nthing  happened",
                             "hint": "run `ai-server install`"}
    assert err.exit_code == ExitCode.FAILURE


def test_envelope_shape() -> None:
    env = envelope("paths", True, {"a": 1})
    assert env == {"schema": 1, "command": "paths", "ok": True, "data": {"a": 1}, "errors": []}


def test_json_result_goes_to_stdout_only() -> None:
    out, err = io.StringIO(), io.StringIO()
    o = Output(json_mode=True, stdout=out, stderr=err, color=False)
    o.info("chatter")
    o.result("paths", {"k": "v"}, lambda d: "human")
    assert json.loads(out.getvalue())["data"] == {"k": "v"}
    assert "human" not in out.getvalue()
    assert err.getvalue() == "chatter\n"


def test_quiet_suppresses_info_and_warnings_and_verbose_shows_detail() -> None:
    err = io.StringIO()
    quiet = Output(verbosity=-1, stdout=io.StringIO(), stderr=err, color=False)
    quiet.info("hello")
    quiet.detail("more")
    quiet.warn("careful")  # -q: "only errors on stderr"
    assert err.getvalue() == ""
    err2 = io.StringIO()
    loud = Output(verbosity=1, stdout=io.StringIO(), stderr=err2, color=False)
    loud.detail("more")
    assert err2.getvalue() == "more\n"


def test_failure_with_json_prints_envelope_and_one_stderr_line() -> None:
    out, err = io.StringIO(), io.StringIO()
    o = Output(json_mode=True, stdout=out, stderr=err, color=False)
    o.failure("ai-server", "run", AiError("no address", "start tailscale", code="gw.noaddr"))
    env = json.loads(out.getvalue())
    assert env["ok"] is False and env["data"] is None
    assert env["errors"] == [{"code": "gw.noaddr", "message": "no address",
                              "hint": "start tailscale"}]
    assert err.getvalue().count("\n") == 1
    assert err.getvalue().startswith("ai-server: error: no address")


def test_no_color_env_disables_color(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert Output(stderr=Tty()).color is True
    monkeypatch.setenv("NO_COLOR", "1")
    assert Output(stderr=Tty()).color is False


def test_table_aligns_columns() -> None:
    text = table([["GET", "/"], ["POST", "/v1/messages"]], ["METHOD", "PATH"])
    assert text.splitlines() == ["METHOD  PATH", "GET     /", "POST    /v1/messages"]
