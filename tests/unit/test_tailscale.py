from __future__ import annotations

import json
import os
from pathlib import Path

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
    assert "not running (state Starting" in info.value.message
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
