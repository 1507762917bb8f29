"""Access-log parsing, the usage figures (checked by hand), naming, tail and follow."""
# ruff: noqa: E501  (the hand-written log below is a table: one request per row)

from __future__ import annotations

import json
import os
from collections.abc import Generator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aicommon.clikit import make_group, run_main
from aicommon.errors import AiError, ExitCode
from aiserver import usage
from aiserver.cli_ops import acl, logs, tokens
from aiserver.cli_ops import usage as usage_cmd
from tests.support import tsfake

NOW = datetime(2026, 3, 10, 12, 0, 0, tzinfo=UTC)
ALICE, BOB, STRANGER, STUDIO = "100.64.0.5", "100.64.0.12", "100.64.0.99", "100.101.102.103"


def line(when: str, client: str, device: str, method: str, path: str, status: int,
         bytes_in: int, bytes_out: int, ttfb: int, total: int, term: str = "----") -> str:
    """A line exactly as HAProxy writes it (json(utf8s) escapes '/' as '\\/')."""
    esc_path = json.dumps(path).replace("/", "\\/")
    return (f'{{"time":"{when}","client":"{client}","device":"{device}","method":"{method}",'
            f'"path":{esc_path},"status":{status},"bytes_in":{bytes_in},'
            f'"bytes_out":{bytes_out},"queue_ms":0,"ttfb_ms":{ttfb},"total_ms":{total},'
            f'"termination":"{term}","session":"-","agent":"-"}}')


# time, client, device, method, path, status, in, out, ttfb, total[, termination]
ROWS: list[tuple[Any, ...]] = [
    # alice-laptop (token device), 8 inside the 24 h window
    ("2026-03-10T11:00:00Z", ALICE, "alice-laptop", "POST", "/v1/messages", 200, 2000, 9000, 500, 4000),
    ("2026-03-10T10:00:00Z", ALICE, "alice-laptop", "POST", "/v1/messages", 200, 1500, 8000, 300, 3000),
    ("2026-03-10T09:00:00Z", ALICE, "alice-laptop", "POST", "/v1/messages", 200, 1000, 5000, 1200, 6000),
    ("2026-03-10T08:00:00Z", ALICE, "alice-laptop", "GET", "/v1/models", 200, 100, 700, 5, 6),
    ("2026-03-10T07:00:00Z", ALICE, "alice-laptop", "POST", "/v1/messages", 504, 1800, 200, -1, 1800000, "sH--"),
    ("2026-03-09T20:00:00Z", ALICE, "alice-laptop", "POST", "/v1/messages", 200, 2200, 12000, 800, 9000),
    ("2026-03-09T13:00:00Z", ALICE, "alice-laptop", "POST", "/v1/chat/completions", 429, 500, 150, -1, 0, "PR--"),
    ("2026-03-09T12:00:00Z", ALICE, "alice-laptop", "POST", "/v1/messages", 200, 1200, 6000, 2500, 20000),  # at the cut-off: in
    # bob-mbp: no token, named by the tailnet, 6 inside
    ("2026-03-10T11:30:00Z", BOB, "-", "POST", "/v1/chat/completions", 200, 3000, 15000, 700, 12000),
    ("2026-03-10T11:31:00Z", BOB, "-", "POST", "/v1/chat/completions", 200, 3100, 16000, 900, 11000),
    ("2026-03-10T11:32:00Z", BOB, "-", "GET", "/api/version", 200, 80, 120, 2, 3),
    ("2026-03-10T11:33:00Z", BOB, "-", "POST", "/api/chat", 403, 400, 250, -1, 1, "LR--"),
    ("2026-03-10T11:34:00Z", BOB, "-", "POST", "/v1/chat/completions", 503, 3000, 300, -1, 10000, "sQ--"),
    ("2026-03-10T11:35:00Z", BOB, "-", "POST", "/v1/chat/completions", 200, 2900, 14000, 650, 9500),
    # an address no tailnet node owns, 3 inside
    ("2026-03-10T05:00:00Z", STRANGER, "-", "POST", "/api/pull", 403, 90, 260, -1, 0, "LR--"),
    ("2026-03-10T05:00:01Z", STRANGER, "-", "GET", "/v1/models", 200, 90, 700, 4, 5),
    ("2026-03-10T05:00:02Z", STRANGER, "-", "GET", "/v1/models", 401, 90, 200, -1, 0, "LR--"),
    # the server itself (tailnet Self), 1 inside
    ("2026-03-10T11:59:59Z", STUDIO, "-", "GET", "/api/version", 200, 80, 120, 1, 2),
    # a token on bob's machine: the token's device wins over the host name, 1 inside
    ("2026-03-10T11:40:00Z", BOB, "bob-phone", "POST", "/v1/messages", 200, 1000, 4000, 400, 2000),
    # outside the 24 h window (6)
    ("2026-03-09T11:59:59Z", ALICE, "alice-laptop", "POST", "/v1/messages", 200, 9999, 9999, 9999, 9999),
    ("2026-03-08T10:00:00Z", BOB, "-", "POST", "/v1/chat/completions", 500, 7777, 7777, 7777, 7777),
    ("2026-03-01T00:00:00Z", BOB, "-", "GET", "/v1/models", 200, 10, 10, 1, 1),
    ("2026-02-15T00:00:00Z", ALICE, "alice-laptop", "GET", "/v1/models", 200, 10, 10, 1, 1),
    ("2026-03-09T11:00:00Z", STRANGER, "-", "GET", "/v1/models", 500, 5, 5, 5, 5),
    ("2026-03-09T00:00:00Z", ALICE, "alice-laptop", "POST", "/v1/messages", 502, 6, 6, -1, 6),
]
NOT_ACCESS_LOG = [
    "[NOTICE]   (1234) : New worker (1240) forked",
    "[WARNING]  (1234) : Former worker (1236) exited with code 0 (Exit)",
    '{"time":"2026-03-10T11:00:00Z","client":"100.64.0.5","dev',  # cut short
    '{"time":"yesterday","client":"100.64.0.5","status":200}',
]


def log_text() -> str:
    lines = [line(*r) for r in ROWS]
    lines[3:3] = NOT_ACCESS_LOG[:2]
    lines[10:10] = ["", NOT_ACCESS_LOG[2]]  # a blank line is neither an entry nor skipped
    lines.append(NOT_ACCESS_LOG[3])
    return "\n".join(lines) + "\n"


def tailnet_doc() -> dict[str, Any]:
    doc = tsfake.status_doc()  # Self: studio, 100.101.102.103
    doc["Peer"] = {}
    doc["Peer"]["nodekey:5c1d2e3f"] = {
        "ID": "n5678", "PublicKey": "nodekey:5c1d2e3f", "HostName": "bob-mbp",
        "DNSName": "bob-mbp.tail1234.ts.net.", "OS": "macOS",
        "TailscaleIPs": [BOB, "fd7a:115c:a1e0::c"], "Tags": ["tag:ai-client"],
        "Online": True, "Active": True, "LastSeen": "2026-03-10T11:35:00Z", "UserID": 2,
    }
    doc["Peer"]["nodekey:0a0b0c0d"] = {  # no HostName: named from DNSName
        "ID": "n9", "DNSName": "pixel.tail1234.ts.net.", "OS": "android",
        "TailscaleIPs": ["100.64.0.77"], "Online": False, "UserID": 2,
    }
    return doc


@pytest.fixture()
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.log"
    path.write_text(log_text())
    return path


@pytest.fixture()
def fake_tailscale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    env: dict[str, str] = {}
    calls = tsfake.install(env, tmp_path, tailnet_doc())
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return calls


NAMES = usage.peer_names(tailnet_doc())


def by_key(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {g["key"]: g for g in summary["groups"]}


def test_reading_counts_entries_and_skips_other_lines(log_file: Path) -> None:
    read = usage.read_log(log_file)
    assert len(read.entries) == 25
    assert read.skipped == 4  # two HAProxy notices, a cut-short line, a line without fields
    assert read.lines == 29  # blank lines are not counted
    first = read.entries[0]
    assert first.path == "/v1/messages" and first.device == "alice-laptop"
    assert first.time == datetime(2026, 3, 10, 11, 0, tzinfo=UTC)
    assert first.as_dict()["time"] == "2026-03-10T11:00:00Z"


def test_usage_by_device_hand_checked(log_file: Path) -> None:
    s = usage.summarize(usage.read_log(log_file).entries, by="device",
                        since=timedelta(hours=24), now=NOW, names=NAMES)
    assert s["from"] == "2026-03-09T12:00:00Z" and s["to"] == "2026-03-10T12:00:00Z"
    assert s["outside_window"] == 6
    # ordered by requests, then name
    assert [g["key"] for g in s["groups"]] == ["alice-laptop", "bob-mbp", STRANGER,
                                               "bob-phone", "studio"]
    g = by_key(s)
    # alice: 504 and 429 are errors. in 2000+1500+1000+100+1800+2200+500+1200 = 10300,
    # out 9000+8000+5000+700+200+12000+150+6000 = 41050. ttfb without -1: 5 300 500 800 1200
    # 2500 → p50 rank ceil(3)=3 → 500, p95 rank ceil(5.7)=6 → 2500. total: 0 6 3000 4000
    # 6000 9000 20000 1800000 → p50 rank 4 → 4000.
    assert g["alice-laptop"] == {
        "key": "alice-laptop", "requests": 8, "errors": 2, "client_errors": 1,
        "server_errors": 1, "bytes_in": 10300, "bytes_out": 41050, "ttfb_p50_ms": 500,
        "ttfb_p95_ms": 2500, "total_p50_ms": 4000}
    # bob: 403 and 503. in 3000+3100+80+400+3000+2900 = 12480, out 15000+16000+120+250+300
    # +14000 = 45670. ttfb 2 650 700 900 → p50 rank 2 → 650, p95 rank ceil(3.8)=4 → 900.
    # total 1 3 9500 10000 11000 12000 → p50 rank 3 → 9500.
    assert g["bob-mbp"] == {
        "key": "bob-mbp", "requests": 6, "errors": 2, "client_errors": 1, "server_errors": 1,
        "bytes_in": 12480, "bytes_out": 45670, "ttfb_p50_ms": 650, "ttfb_p95_ms": 900,
        "total_p50_ms": 9500}
    # stranger: 403 and 401; in 3*90, out 260+700+200; ttfb only 4; total 0 0 5 → rank 2 → 0.
    assert g[STRANGER] == {
        "key": STRANGER, "requests": 3, "errors": 2, "client_errors": 2, "server_errors": 0,
        "bytes_in": 270, "bytes_out": 1160, "ttfb_p50_ms": 4, "ttfb_p95_ms": 4,
        "total_p50_ms": 0}
    assert g["studio"]["requests"] == 1 and g["studio"]["ttfb_p95_ms"] == 1
    assert g["bob-phone"]["bytes_out"] == 4000 and g["bob-phone"]["total_p50_ms"] == 2000
    # totals: 19 requests; errors 6 (4 client, 2 server); in 10300+12480+270+80+1000 = 24130;
    # out 41050+45670+1160+120+4000 = 92000. ttfb (13 values) 1 2 4 5 300 400 500 650 700 800
    # 900 1200 2500 → p50 rank 7 → 500, p95 rank ceil(12.35)=13 → 2500. total (19 values)
    # 0 0 0 1 2 3 5 6 2000 3000 4000 6000 9000 9500 10000 11000 12000 20000 1800000
    # → p50 rank 10 → 3000.
    assert s["totals"] == {
        "requests": 19, "errors": 6, "client_errors": 4, "server_errors": 2,
        "bytes_in": 24130, "bytes_out": 92000, "ttfb_p50_ms": 500, "ttfb_p95_ms": 2500,
        "total_p50_ms": 3000}


def test_usage_by_status_path_and_client(log_file: Path) -> None:
    entries = usage.read_log(log_file).entries
    day = timedelta(hours=24)
    status = by_key(usage.summarize(entries, by="status", since=day, now=NOW))
    assert {k: v["requests"] for k, v in status.items()} == {
        "200": 13, "403": 2, "401": 1, "429": 1, "503": 1, "504": 1}
    assert status["403"]["errors"] == 2 and status["200"]["errors"] == 0
    path = by_key(usage.summarize(entries, by="path", since=day, now=NOW))
    # /v1/messages: alice ×6 + bob-phone; in 2000+1500+1000+1800+2200+1200+1000 = 10700
    assert path["/v1/messages"]["requests"] == 7 and path["/v1/messages"]["bytes_in"] == 10700
    assert path["/v1/chat/completions"]["requests"] == 5
    client = by_key(usage.summarize(entries, by="client", since=day, now=NOW, names=NAMES))
    assert set(client) == {ALICE, BOB, STRANGER, STUDIO}  # raw IPs, never names
    assert client[BOB]["requests"] == 7  # bob-mbp's 6 + bob-phone's 1


def test_usage_window_sizes(log_file: Path) -> None:
    entries = usage.read_log(log_file).entries
    week = usage.summarize(entries, by="device", since=usage.parse_since("7d"), now=NOW)
    # 7 days back is 2026-03-03T12:00: adds the four of 03-08/03-09, not 03-01 and 02-15
    assert week["totals"]["requests"] == 23 and week["outside_window"] == 2
    everything = usage.summarize(entries, by="device", since=None, now=NOW)
    assert everything["totals"]["requests"] == 25 and everything["from"] is None


def test_without_tailnet_names_devices_fall_back_to_ips(log_file: Path) -> None:
    s = usage.summarize(usage.read_log(log_file).entries, by="device",
                        since=timedelta(hours=24), now=NOW, names={})
    assert set(by_key(s)) == {"alice-laptop", "bob-phone", BOB, STRANGER, STUDIO}


@pytest.mark.parametrize(("text", "expected"), [
    ("24h", timedelta(hours=24)), ("30m", timedelta(minutes=30)), ("7d", timedelta(days=7)),
    ("2w", timedelta(weeks=2)), ("90s", timedelta(seconds=90)), ("all", None), ("ALL", None)])
def test_parse_since(text: str, expected: timedelta | None) -> None:
    assert usage.parse_since(text) == expected


@pytest.mark.parametrize("text", ["", "24", "h", "-1h", "1.5h", "0h", "1y", "24 h x"])
def test_parse_since_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        usage.parse_since(text)


def test_nearest_rank_percentile() -> None:
    assert usage.percentile([], 50) is None
    assert usage.percentile([7], 50) == 7 and usage.percentile([7], 95) == 7
    assert usage.percentile([4, 1, 3, 2], 50) == 2  # even count: the lower middle value
    assert usage.percentile(list(range(1, 21)), 95) == 19  # rank ceil(19.0) = 19
    assert usage.percentile(list(range(1, 101)), 95) == 95
    assert usage.percentile(list(range(1, 101)), 0) == 1


def test_parse_line_refuses_wrong_types() -> None:
    good = line("2026-03-10T11:00:00Z", ALICE, "-", "GET", "/x", 200, 1, 2, 3, 4)
    assert usage.parse_line(good) is not None
    assert usage.parse_line(good.replace('"status":200', '"status":"200"')) is None
    assert usage.parse_line(good.replace('"status":200', '"status":true')) is None
    assert usage.parse_line("[1, 2]") is None and usage.parse_line("") is None


def test_peer_names_from_status_json() -> None:
    assert NAMES == {BOB: "bob-mbp", "fd7a:115c:a1e0::c": "bob-mbp", "100.64.0.77": "pixel",
                     STUDIO: "studio", "fd7a:115c:a1e0::1234": "studio"}
    assert usage.peer_names({"Peer": "garbage", "Self": None}) == {}
    assert usage.peer_names([]) == {}


def test_display_name_normalises_addresses() -> None:
    entry = usage.parse_line(line("2026-03-10T11:00:00Z", "fd7a:115c:a1e0:0:0:0:0:c", "-",
                                  "GET", "/x", 200, 1, 2, 3, 4))
    mapped = usage.parse_line(line("2026-03-10T11:00:00Z", f"::ffff:{BOB}", "-",
                                   "GET", "/x", 200, 1, 2, 3, 4))
    assert entry is not None and mapped is not None
    assert usage.display_name(entry, NAMES) == "bob-mbp"
    assert usage.display_name(mapped, NAMES) == "bob-mbp"
    assert usage.display_name(mapped, {}) == BOB


def test_tailnet_names_from_the_fake_cli(fake_tailscale: Path) -> None:
    names, note = usage.tailnet_names()
    assert note is None and names == NAMES
    assert json.loads(fake_tailscale.read_text().splitlines()[0]) == ["status", "--json"]


def test_tailnet_names_when_tailscale_is_down_or_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env: dict[str, str] = {}
    tsfake.install(env, tmp_path, None)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    names, note = usage.tailnet_names()
    assert names == {} and note is not None and "failed to connect" in note
    monkeypatch.setenv("AI_TAILSCALE", str(tmp_path / "no-such-tailscale"))
    names, note = usage.tailnet_names()
    assert names == {} and note is not None and "unavailable" in note


def test_userspace_networking_says_every_client_is_127_0_0_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tailscaled in userspace mode dials the gateway from 127.0.0.1 for every peer."""
    env: dict[str, str] = {}
    doc = tailnet_doc()
    doc["TUN"] = False
    tsfake.install(env, tmp_path, doc)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    names, note = usage.tailnet_names()
    assert names == NAMES
    assert note is not None and "127.0.0.1" in note and "tokens add" in note


def test_access_log_path_is_in_the_log_dir(isolated_home: Path) -> None:
    from aiserver.settings import Settings

    assert usage.access_log_path(Settings()) == isolated_home / "ai-server" / "logs" / "gateway.log"


def test_missing_log_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(AiError) as info:
        usage.read_log(tmp_path / "nope.log")
    assert info.value.exit_code == ExitCode.UNAVAILABLE and "--file" in (info.value.hint or "")
    with pytest.raises(AiError):
        usage.tail(tmp_path / "nope.log", 5)


# -- tail and follow ------------------------------------------------------------------------

def test_tail_returns_complete_lines_and_where_to_follow(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"".join(f"line {i}\n".encode() for i in range(1, 10_001)) + b"partial")
    lines, offset = usage.tail(path, 3)
    assert lines == ["line 9998", "line 9999", "line 10000"]
    assert offset == path.stat().st_size - len(b"partial")
    assert usage.tail(path, 0) == ([], offset)
    small = tmp_path / "small"
    small.write_text("a\nb\n")
    assert usage.tail(small, 50) == (["a", "b"], 4)
    empty = tmp_path / "empty"
    empty.write_text("")
    assert usage.tail(empty, 50) == ([], 0)


class NoMoreData(Exception):
    pass


def follower(path: Path, offset: int) -> Generator[usage.FollowEvent, None, None]:
    """follow() whose sleep raises: next() returns what is there, or NoMoreData."""
    def sleep(_: float) -> None:
        raise NoMoreData

    return usage.follow(path, offset, poll=0, sleep=sleep)


def drain(gen: Generator[usage.FollowEvent, None, None], n: int) -> list[tuple[str, str]]:
    return [(e.kind, e.text) for e in (next(gen) for _ in range(n))]


def test_follow_appends_partial_lines_truncation_and_rotation(tmp_path: Path) -> None:
    path = tmp_path / "gateway.log"
    path.write_text("old 1\nold 2\n")
    _, offset = usage.tail(path, 10)
    gen = follower(path, offset)
    with open(path, "a") as fh:
        fh.write("new 1\nnew 2\nhal")
    assert drain(gen, 2) == [("line", "new 1"), ("line", "new 2")]
    with open(path, "a") as fh:
        fh.write("f line\n")
    assert drain(gen, 1) == [("line", "half line")]
    # copytruncate: the file shrinks in place
    path.write_text("after truncate\n")
    events = drain(gen, 2)
    assert events[0][0] == "notice" and "truncated" in events[0][1]
    assert events[1] == ("line", "after truncate")
    # rotation: the old file is renamed (and gets a last line), a new one takes its place
    with open(path, "a") as fh:
        fh.write("last of old\n")
    os.rename(path, tmp_path / "gateway.log.1")
    path.write_text("first of new\n")
    events = drain(gen, 3)
    assert events[0] == ("line", "last of old")
    assert events[1][0] == "notice" and "rotated" in events[1][1]
    assert events[2] == ("line", "first of new")
    with pytest.raises(NoMoreData):
        next(gen)
    gen.close()


def test_follow_waits_for_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "later.log"
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            path.write_text("hello\n")

    gen = usage.follow(path, 0, poll=0.25, sleep=sleep)
    assert next(gen) == usage.FollowEvent("line", "hello")
    assert waits == [0.25, 0.25]
    gen.close()


# -- the commands, run in-process on a private group (the real cli is left untouched) ------

def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    group = make_group("ai-server", "test group", "AI_SERVER_CONFIG")
    for command in (logs, usage_cmd, tokens, acl):
        group.add_command(command)
    with pytest.raises(SystemExit) as info:
        run_main(group, "ai-server", list(args))
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def test_usage_command_json(log_file: Path, fake_tailscale: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "usage", "--file", str(log_file), "--since", "all", "--json")
    assert code == 0
    env = json.loads(out)
    assert env["command"] == "usage" and env["ok"] is True
    data = env["data"]
    assert data["lines"] == 29 and data["skipped"] == 4 and data["notes"] == []
    assert data["totals"]["requests"] == 25
    assert {g["key"] for g in data["groups"]} >= {"alice-laptop", "bob-mbp", "studio"}


def test_usage_command_human_without_tailscale(log_file: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AI_TAILSCALE", str(tmp_path / "no-such-tailscale"))
    code, out, err = run_cli(capsys, "usage", "--file", str(log_file), "--since", "all")
    assert code == 0
    assert "tailscale unavailable" in err and "client IPs are shown unnamed" in err
    assert out.splitlines()[1].split() == ["DEVICE", "REQS", "ERRORS", "4XX", "5XX", "IN",
                                           "OUT", "TTFB", "P50", "TTFB", "P95", "TOTAL", "P50"]
    assert BOB in out and "TOTAL" in out and "4 non-access-log lines skipped" in out


def test_usage_command_refuses_a_bad_since(log_file: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "usage", "--file", str(log_file), "--since", "yesterday")
    assert code == 2 and "--since" in err


def test_usage_command_on_a_missing_log(capsys: pytest.CaptureFixture[str],
                                        isolated_home: Path) -> None:
    code, out, err = run_cli(capsys, "usage", "--json")
    assert code == ExitCode.UNAVAILABLE
    assert str(isolated_home / "ai-server" / "logs" / "gateway.log") in err
    assert json.loads(out)["errors"][0]["code"] == "logs.missing"
    assert err.count("\n") == 1


def test_logs_command_renders_the_last_lines(log_file: Path, fake_tailscale: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "logs", "--file", str(log_file), "-n", "3")
    assert code == 0
    rows = out.splitlines()
    # the last three lines: two entries and the line without fields (a notice, shown as is)
    assert len(rows) == 3 and rows[2] == NOT_ACCESS_LOG[3]
    assert rows[0].startswith("2026-03-09 11:00:00  100.64.0.99")
    assert "ttfb     5ms" in rows[0] and "total     5ms" in rows[0] and " 500 " in rows[0]
    assert rows[1].startswith("2026-03-09 00:00:00  alice-laptop")
    assert "ttfb       -" in rows[1] and "[" not in rows[1] and "/v1/messages" in rows[1]
    code, out, _ = run_cli(capsys, "logs", "--file", str(log_file))
    timed_out = next(r for r in out.splitlines() if r.startswith("2026-03-10 07:00:00"))
    assert timed_out.endswith("[sH--]") and "total  30m00s" in timed_out


def test_logs_command_json(log_file: Path, fake_tailscale: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "logs", "--file", str(log_file), "-n", "50", "--json")
    assert code == 0
    data = json.loads(out)["data"]
    assert data["file"] == str(log_file) and data["skipped"] == 4
    assert len(data["entries"]) == 25
    bob = next(e for e in data["entries"] if e["client"] == BOB and e["device"] == "-")
    assert bob["name"] == "bob-mbp" and bob["path"] == "/v1/chat/completions"
    assert set(bob) == {"time", "client", "device", "node", "method", "path", "status", "bytes_in",
                        "bytes_out", "queue_ms", "ttfb_ms", "total_ms", "termination",
                        "session", "agent", "name", "auth"}
