from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from aicommon import tailscale
from aicommon.errors import AiError, ExitCode
from tests.support import tsfake


def test_parse_running_status_puts_ipv4_first() -> None:
    doc = tsfake.status_doc(ips=("fd7a:115c:a1e0::9", "100.90.1.2"))
    st = tailscale.parse_status(json.dumps(doc))
    assert st.backend_state == "Running" and st.tun
    assert st.addresses == ("100.90.1.2", "fd7a:115c:a1e0::9")
    assert st.dns_name == "studio.tail1234.ts.net"
    assert st.tailnet == "alice@example.com"


def test_parse_ignores_non_tailscale_addresses_and_missing_fields() -> None:
    st = tailscale.parse_status(json.dumps({"BackendState": "Running",
                                            "TailscaleIPs": ["192.168.1.5", "100.64.0.7", 5]}))
    assert st.addresses == ("100.64.0.7",)
    assert st.tun is True  # absent TUN means the normal (kernel) mode
    assert tailscale.parse_status('{"TUN": false}').tun is False


@pytest.mark.parametrize("raw", ["not json", "[]", ""])
def test_parse_garbage_is_a_domain_error(raw: str) -> None:
    with pytest.raises(AiError):
        tailscale.parse_status(raw)


def test_wait_running_uses_the_cli_and_gives_up_with_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env: dict[str, str] = {}
    log = tsfake.install(env, tmp_path, tsfake.status_doc(state="Starting"))
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(AiError) as info:
        tailscale.wait_running(0.2, poll=0.05)
    assert info.value.exit_code == ExitCode.UNAVAILABLE
    assert "still connecting to the tailnet (state Starting" in info.value.message
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert calls and all(c == ["status", "--json"] for c in calls)


def test_tailscaled_down_is_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env: dict[str, str] = {}
    tsfake.install(env, tmp_path, None)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(AiError) as info:
        tailscale.status()
    assert "failed to connect to local tailscaled" in info.value.message


def test_missing_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AI_TAILSCALE", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    if os.path.exists(tailscale.MACOS_APP_CLI):
        pytest.skip("the macOS Tailscale app is installed here")
    with pytest.raises(AiError) as info:
        tailscale.cli_path()
    assert info.value.code == "tailscale.missing"


EXPIRED = "2026-01-02T03:04:05Z"  # peerStatusFromNode rounds KeyExpiry to the second
STATES: list[tuple[str, dict[str, Any], str, str]] = [
    # (state, status_doc options, diagnosis, fix) — one line each
    ("Running", {}, "", ""),
    ("Stopped", {}, "Tailscale is stopped (disconnected); the addresses it still lists do not "
     "work", "`tailscale up`"),
    ("NeedsLogin", {"netmap": True, "key_expiry": EXPIRED},
     "Tailscale needs login: this device's key expired (2026-01-02)", "disable key expiry"),
    # after expiry without a network map nothing says why: it reads as logged out
    ("NeedsLogin", {"netmap": False, "key_expiry": EXPIRED},
     "Tailscale is logged out on this device", "`tailscale up`"),
    ("NeedsLogin", {"netmap": True},
     "Tailscale needs login again (its key expired or it was logged out)", "`tailscale up`"),
    ("NeedsLogin", {"auth_url": "https://login.tailscale.com/a/abc123"},
     "Tailscale is logged out on this device", "log in at https://login.tailscale.com/a/abc123"),
    ("NeedsMachineAuth", {}, "this device is waiting for approval by the tailnet admin",
     "admin console"),
    ("InUseOtherUser", {}, "Tailscale on this computer is in use by another user account",
     "as this user"),
    ("Starting", {}, "Tailscale is still connecting to the tailnet", "wait"),
    ("NoState", {}, "tailscaled has no state yet", "`tailscale up`"),
]


@pytest.mark.parametrize("state, opts, diagnosis, fix", STATES)
def test_every_backend_state_read_through_the_fake_cli_gets_its_own_diagnosis(
        tmp_path: Path, state: str, opts: dict[str, Any], diagnosis: str, fix: str) -> None:
    env = dict(os.environ)
    tsfake.install(env, tmp_path, tsfake.status_doc(state=state, **opts))
    done = subprocess.run([env["AI_TAILSCALE"], "status", "--json"], env=env,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stderr == ""  # --json exits 0 in every state
    st = tailscale.parse_status(done.stdout)
    assert st.backend_state == state
    problem = tailscale.diagnose(st)
    if not diagnosis:
        assert problem is None
        return
    assert problem is not None
    assert problem[0].startswith(diagnosis) and fix in problem[1]
    assert "\n" not in problem[0] + problem[1]


def test_the_fake_prints_what_real_tailscaled_prints_with_and_without_a_network_map() -> None:
    """ipnlocal.updateStatusLocked: without a netmap the address lists and CurrentTailnet are
    null and DNSName is empty; with one (also Stopped, NeedsLogin after key expiry) the
    addresses stay listed. No peers is a null map; online peers have a zero LastSeen."""
    bare = tsfake.status_doc(state="NeedsLogin")
    assert bare["TailscaleIPs"] is None and bare["Self"]["TailscaleIPs"] is None
    assert bare["CurrentTailnet"] is None and bare["Self"]["DNSName"] == ""
    assert bare["Peer"] is None
    stopped = tsfake.status_doc(state="Stopped")
    assert stopped["TailscaleIPs"] and stopped["CurrentTailnet"] is not None
    st = tailscale.parse_status(json.dumps(stopped))
    assert st.addresses and tailscale.diagnose(st) is not None  # listed, yet not usable
    on = tsfake.peer("studio", ("100.64.0.9",))
    off = tsfake.peer("old", ("100.64.0.8",), online=False)
    assert on["LastSeen"] == tsfake.ZERO_TIME and off["LastSeen"] != tsfake.ZERO_TIME
    assert "Tags" not in tsfake.peer("laptop", ("100.64.0.7",), tags=())
    assert tsfake.with_peers(tsfake.status_doc())["Peer"] is None


def test_parse_survives_every_null_the_real_cli_prints() -> None:
    st = tailscale.parse_status(json.dumps(tsfake.status_doc(state="NoState")))
    assert st.addresses == () and st.dns_name == "" and st.tailnet == ""
    assert st.has_netmap is False and st.key_expired is False
    assert tailscale.peers(json.dumps(tsfake.status_doc(state="NoState"))) == []


def test_zero_key_expiry_is_not_expired() -> None:
    doc = {"BackendState": "NeedsLogin", "Self": {"KeyExpiry": tsfake.ZERO_TIME}}
    assert tailscale.parse_status(json.dumps(doc)).key_expired is False
    assert tailscale.parse_status(json.dumps(tsfake.status_doc(
        key_expiry="2999-01-01T00:00:00Z"))).key_expired is False
    # Go may print fractional seconds elsewhere: still read
    assert tailscale.parse_status(json.dumps({"Self": {
        "KeyExpiry": "2026-01-02T03:04:05.123456789Z"}})).key_expired is True
