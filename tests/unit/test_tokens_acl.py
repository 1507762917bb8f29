"""Token file management (mode 600, parseable by the gateway) and the tailnet policy snippet."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aicommon.clikit import make_group, run_main
from aicommon.errors import AiError, ExitCode
from aiserver import acl as acl_core
from aiserver.cli_ops import acl, logs, tokens, usage
from aiserver.gateway import render as gateway
from aiserver.gateway import tokens as core
from aiserver.settings import Gateway, Settings
from tests.support import hujson, tsfake


def settings_with(tokens_file: Path | None = None, *, enforced: bool = True,
                  **gateway_kw: Any) -> Settings:
    g = Gateway(tokens=enforced, tokens_file=str(tokens_file) if tokens_file else "",
                **gateway_kw)
    return Settings(gateway=g)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def pairs(path: Path) -> list[tuple[str, str]]:
    return gateway.parse_token_map(path.read_text(), str(path))


@pytest.fixture()
def token_path(tmp_path: Path) -> Path:
    return tmp_path / "conf" / "tokens.map"


def test_add_creates_a_private_parseable_file(token_path: Path) -> None:
    result = core.add(settings_with(token_path), "alice-laptop")
    token = result["token"]
    assert gateway.TOKEN_RE.match(token) and len(token) == 43  # token_urlsafe(32)
    assert mode(token_path) == 0o600
    assert pairs(token_path) == [(token, "alice-laptop")]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", result["added"])
    assert f"# added {result['added']}\n{token} alice-laptop\n" in token_path.read_text()
    assert result["gateway"]["state"] == "not_running"  # no HAProxy master here


def test_tokens_are_unique_and_listed_by_prefix_only(token_path: Path) -> None:
    s = settings_with(token_path)
    a = core.add(s, "alice-laptop")["token"]
    b = core.add(s, "bob.mbp_2")["token"]
    assert a != b
    listed = core.list_devices(s)
    assert listed["exists"] and listed["enforced"]
    assert [(d["device"], d["token_prefix"]) for d in listed["devices"]] == [
        ("alice-laptop", a[:6]), ("bob.mbp_2", b[:6])]
    assert all(d["added"] for d in listed["devices"])
    assert a not in json.dumps(listed) and b not in json.dumps(listed)
    assert [dev for _, dev in pairs(token_path)] == ["alice-laptop", "bob.mbp_2"]


def test_default_file_is_in_the_config_dir(isolated_home: Path) -> None:
    s = settings_with(None)
    core.add(s, "laptop")
    path = isolated_home / "ai-server" / "config" / "tokens.map"
    assert core.token_file(s) == path and mode(path) == 0o600 and len(pairs(path)) == 1


@pytest.mark.parametrize("device", ["", "has space", "semi;colon", "a" * 65, "ünï", "a/b"])
def test_add_refuses_bad_device_names(token_path: Path, device: str) -> None:
    with pytest.raises(AiError) as info:
        core.add(settings_with(token_path), device)
    assert info.value.code == "tokens.bad_device" and info.value.hint
    assert not token_path.exists()


def test_add_refuses_an_existing_device(token_path: Path) -> None:
    s = settings_with(token_path)
    core.add(s, "alice-laptop")
    before = token_path.read_text()
    with pytest.raises(AiError) as info:
        core.add(s, "alice-laptop")
    assert info.value.code == "tokens.exists" and "revoke" in (info.value.hint or "")
    assert token_path.read_text() == before


def test_hand_made_file_is_kept_and_made_private(token_path: Path) -> None:
    token_path.parent.mkdir()
    hand = "# my devices\nhand-made-token-0123456789 old-box\n\n# another comment"
    token_path.write_text(hand)
    token_path.chmod(0o644)
    s = settings_with(token_path)
    token = core.add(s, "new-box")["token"]
    assert mode(token_path) == 0o600
    assert token_path.read_text().startswith(hand + "\n# added ")
    assert pairs(token_path) == [("hand-made-token-0123456789", "old-box"), (token, "new-box")]
    devices = core.list_devices(s)["devices"]
    assert devices[0] == {"device": "old-box", "token_prefix": "hand-m", "added": None}


def test_revoke_removes_the_line_and_its_comment_only(token_path: Path) -> None:
    s = settings_with(token_path)
    a = core.add(s, "alice-laptop")["token"]
    core.add(s, "bob-mbp")
    c = core.add(s, "carol")["token"]
    result = core.revoke(s, "bob-mbp")
    assert result["removed"] == 1 and result["gateway"]["state"] == "not_running"
    assert pairs(token_path) == [(a, "alice-laptop"), (c, "carol")]
    assert token_path.read_text().count("# added") == 2
    assert token_path.read_text().startswith(core.HEADER)
    assert mode(token_path) == 0o600


def test_revoke_unknown_device_fails_and_changes_nothing(token_path: Path) -> None:
    s = settings_with(token_path)
    with pytest.raises(AiError) as info:
        core.revoke(s, "ghost")  # no file at all
    assert info.value.code == "tokens.unknown_device"
    core.add(s, "alice-laptop")
    before = token_path.read_text()
    with pytest.raises(AiError) as info:
        core.revoke(s, "ghost")
    assert "alice-laptop" in (info.value.hint or "")
    assert token_path.read_text() == before


def test_a_broken_file_is_refused_not_rewritten(token_path: Path) -> None:
    token_path.parent.mkdir()
    token_path.write_text("short alice\n")
    token_path.chmod(0o600)
    with pytest.raises(AiError) as info:
        core.add(settings_with(token_path), "bob")
    assert info.value.exit_code == ExitCode.CONFIG
    with pytest.raises(AiError) as info:
        core.list_devices(settings_with(token_path))
    assert info.value.exit_code == ExitCode.CONFIG
    assert token_path.read_text() == "short alice\n"


def test_tokens_off_still_adds_but_says_not_enforced(token_path: Path) -> None:
    result = core.add(settings_with(token_path, enforced=False), "alice-laptop")
    assert result["enforced"] is False
    assert result["gateway"]["state"] == "not_enforced"
    assert "tokens = true" in result["gateway"]["hint"]
    assert len(pairs(token_path)) == 1


# -- the commands, in-process on a private group ---------------------------------------------

def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    group = make_group("ai-server", "test group", "AI_SERVER_CONFIG")
    for command in (logs, usage, tokens, acl):
        group.add_command(command)
    with pytest.raises(SystemExit) as info:
        run_main(group, "ai-server", list(args))
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


@pytest.fixture()
def config(tmp_path: Path, token_path: Path) -> Path:
    path = tmp_path / "server.toml"
    path.write_text(f'[gateway]\ntokens = true\ntokens_file = "{token_path}"\n')
    return path


def test_tokens_add_prints_the_token_once_and_only_then(
    config: Path, token_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "--config", str(config), "tokens", "add", "alice-laptop")
    assert code == 0
    token = out.strip()
    assert out == token + "\n"  # stdout is exactly the token: TOKEN=$(ai-server tokens add x)
    assert pairs(token_path) == [(token, "alice-laptop")]
    assert token not in err and "shown only once" in err and "not running" in err
    for args in (["tokens", "list"], ["tokens", "list", "--json"]):
        code, out, err = run_cli(capsys, "--config", str(config), *args)
        assert code == 0 and token not in out + err and token[:6] in out
    code, out, _ = run_cli(capsys, "--config", str(config), "tokens", "list")
    assert out.splitlines()[0].split() == ["DEVICE", "TOKEN", "ADDED"]
    assert out.splitlines()[1].startswith(f"alice-laptop  {token[:6]}…")


def test_tokens_add_json_has_the_token_in_data(config: Path, token_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "--config", str(config), "tokens", "add", "ci", "--json")
    env = json.loads(out)
    assert code == 0 and env["ok"] and env["command"] == "tokens add"
    assert pairs(token_path) == [(env["data"]["token"], "ci")]
    assert env["data"]["gateway"]["state"] == "not_running"


def test_tokens_errors_are_one_line_with_exit_codes(config: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "--config", str(config), "tokens", "add", "bad name")
    assert code == ExitCode.USAGE and err.count("\n") == 1 and "hint:" in err
    code, out, err = run_cli(capsys, "--config", str(config), "tokens", "revoke", "ghost",
                             "--json")
    assert code == ExitCode.FAILURE and err.count("\n") == 1
    assert json.loads(out)["errors"][0]["code"] == "tokens.unknown_device"
    run_cli(capsys, "--config", str(config), "tokens", "add", "alice")
    code, out, err = run_cli(capsys, "--config", str(config), "tokens", "revoke", "alice")
    assert code == 0 and "revoked the token of alice" in out


def test_tokens_list_without_a_file(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "--config", str(config), "tokens", "list")
    assert code == 0 and out.startswith("no device tokens in ")


# -- acl ------------------------------------------------------------------------------------

# The documented fields (Tailscale policy syntax reference: grants need src, dst and ip and/or
# app, with optional srcPosture and via; tests have src, accept, deny, optional proto and
# srcPostureAttrs; tagOwners map a tag to its owners).
GRANT_FIELDS, TEST_FIELDS = {"src", "dst", "ip", "app", "srcPosture", "via"}, {
    "src", "accept", "deny", "proto", "srcPostureAttrs"}


def check_documented_shape(doc: dict[str, Any]) -> None:
    assert set(doc) <= {"tagOwners", "groups", "grants", "tests"}
    for tag, owners in doc["tagOwners"].items():
        assert re.fullmatch(r"tag:[a-z0-9-]+", tag) and isinstance(owners, list)
    for grant in doc["grants"]:
        assert set(grant) <= GRANT_FIELDS and {"src", "dst", "ip"} <= set(grant)
        assert all(re.fullmatch(r"tcp:\d+", cap) for cap in grant["ip"])
        # people, never a tag: tagging a laptop removes its user
        assert all(s == "autogroup:member" or s.startswith("group:") for s in grant["src"])
        assert grant["dst"] == ["tag:ai-server"]
    for test in doc["tests"]:
        assert set(test) <= TEST_FIELDS and isinstance(test["src"], str) and "@" in test["src"]
        for dest in test["accept"] + test["deny"]:
            assert re.fullmatch(r"tag:ai-server:\d+", dest), dest
    for name, members in doc.get("groups", {}).items():
        assert name.startswith("group:") and all("@" in m for m in members)


def test_policy_is_hujson_with_the_documented_fields() -> None:
    text = acl_core.policy_text(Settings(), member="alice@example.com")
    with pytest.raises(ValueError):
        json.loads(text)  # really HuJSON: comments and trailing commas, as Tailscale writes it
    doc = hujson.loads(text)
    check_documented_shape(doc)
    assert doc["grants"] == [{"src": ["autogroup:member"], "dst": ["tag:ai-server"],
                              "ip": ["tcp:11434"]}]
    assert doc["tagOwners"] == {"tag:ai-server": ["autogroup:admin"]}  # no laptop tag
    assert doc["tests"] == [{"src": "alice@example.com", "accept": ["tag:ai-server:11434"],
                             "deny": ["tag:ai-server:22", "tag:ai-server:8405"]}]
    assert "acls" not in doc  # the legacy form is a comment
    legacy = next(ln for ln in text.splitlines() if '"action": "accept", "src": ["auto' in ln)
    assert hujson.loads(legacy.strip().removeprefix("//").strip().rstrip(",")) == {
        "action": "accept", "src": ["autogroup:member"], "dst": ["tag:ai-server:11434"]}
    assert doc == {k: v for k, v in acl_core.policy(Settings(), member="alice@example.com")
                   .items() if k != "acls"}


def test_policy_says_first_that_the_default_allow_all_rule_must_go() -> None:
    text = acl_core.policy_text(Settings())
    first_rule = text.index('  "grants": [')
    head = text[:first_rule]
    assert "FIRST remove the default allow-all rule" in head.splitlines()[1]
    # the rule it names is the one new tailnets start with, in both forms
    assert '{"src": ["*"], "dst": ["*"], "ip": ["*"]}' in head
    assert '{"action": "accept", "src": ["*"], "dst": ["*:*"]}' in head
    assert "tailscale set" not in text  # `set` has no --advertise-tags
    assert "tailscale up --advertise-tags=tag:ai-server" in text and "Edit ACL tags" in text
    assert "Replace you@example.com" in text  # no member known: say what to fill in


def test_policy_with_a_group_source_and_a_separate_gateway_port() -> None:
    s = settings_with(None, enforced=False, port=11435, metrics_port=9000)
    text = acl_core.policy_text(s, source="group:ai-users", member="bob@example.com")
    doc = hujson.loads(text)
    check_documented_shape(doc)
    assert doc["groups"] == {"group:ai-users": ["bob@example.com"]}
    assert doc["grants"][0]["src"] == ["group:ai-users"]
    assert doc["grants"][0]["ip"] == ["tcp:11435"]
    assert doc["tests"][0]["accept"] == ["tag:ai-server:11435"]
    # Ollama's own port must stay closed when the gateway uses another one
    assert doc["tests"][0]["deny"] == ["tag:ai-server:22", "tag:ai-server:9000",
                                       "tag:ai-server:11434"]
    assert acl_core.policy_text(s) == acl_core.policy_text(s)  # pure


@pytest.mark.parametrize("source", ["tag:ai-client", "*", "alice@example.com", "group:",
                                    "group:a b"])
def test_policy_source_must_be_people(source: str) -> None:
    with pytest.raises(AiError) as info:
        acl_core.policy(Settings(), source=source)
    assert info.value.exit_code == 2 and "autogroup:member" in (info.value.hint or "")


def test_hujson_reader_handles_what_the_format_allows() -> None:
    text = '{"a": [1, 2, /* x, */ ], // c, ]\n "u": "http://x, } // no comment", }'
    assert hujson.loads(text) == {"a": [1, 2], "u": "http://x, } // no comment"}
    with pytest.raises(ValueError):
        hujson.loads('{"a": 1,, }')


def test_acl_command(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                     monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "server.toml"
    config.write_text("[gateway]\nport = 8443\n")
    env: dict[str, str] = {}
    doc = tsfake.status_doc()  # the User map holds alice@example.com
    tsfake.install(env, tmp_path, doc)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    code, out, _ = run_cli(capsys, "--config", str(config), "acl")
    assert code == 0
    parsed = hujson.loads(out)
    assert parsed["grants"][0]["ip"] == ["tcp:8443"]
    assert parsed["tests"][0]["src"] == "alice@example.com"
    code, out, _ = run_cli(capsys, "--config", str(config), "acl", "--json", "--src",
                           "group:ai-users")
    data = json.loads(out)["data"]
    assert data["port"] == 8443 and data["grants"][0]["src"] == ["group:ai-users"]
    assert hujson.loads(data["text"])["tests"] == data["tests"]
    assert any("advertise-tags" in c for c in data["tag_commands"])
    code, _, err = run_cli(capsys, "--config", str(config), "acl", "--src", "tag:laptop")
    assert code == 2 and err.count("\n") == 1
    # Without Tailscale the snippet still prints, with a placeholder member to replace.
    tsfake.install(env, tmp_path, None)
    code, out, _ = run_cli(capsys, "--config", str(config), "acl")
    assert code == 0 and hujson.loads(out)["tests"][0]["src"] == "you@example.com"


def test_member_login_skips_tagged_devices() -> None:
    from aicommon import tailscale

    doc = tsfake.status_doc()
    doc["Self"]["UserID"] = 7
    doc["User"] = {"7": {"ID": 7, "LoginName": "tagged-devices"},
                   "1": {"ID": 1, "LoginName": "alice@example.com"}}
    assert tailscale.member_login(json.dumps(doc)) == "alice@example.com"
    assert tailscale.member_login(json.dumps(tsfake.status_doc(state="NeedsLogin"))) is None


def test_a_failed_reload_keeps_the_change_and_fails_the_command(
    config: Path, token_path: Path, isolated_home: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A live "master" (a harmless child) and no Tailscale: the reload cannot resolve `auto`.
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        gw_dir = isolated_home / "ai-server" / "state" / "gateway"
        gw_dir.mkdir(parents=True)
        (gw_dir / "haproxy.pid").write_text(f"{child.pid}\n")
        monkeypatch.setenv("AI_TAILSCALE", str(tmp_path / "no-such-tailscale"))
        code, out, err = run_cli(capsys, "--config", str(config), "tokens", "add", "alice")
        assert child.poll() is None  # never signalled
    finally:
        child.kill()
        child.wait()
    assert code == ExitCode.FAILURE
    token = out.strip()
    assert pairs(token_path) == [(token, "alice")]  # the token is kept and still shown
    assert "reloading the gateway failed" in err and "hint:" in err
