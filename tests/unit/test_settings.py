from __future__ import annotations

from pathlib import Path

import pytest

from aicommon.errors import AiError, ExitCode
from aiserver.settings import Settings, duration_ms, load, parse


def refused(text: str) -> AiError:
    with pytest.raises(AiError) as info:
        parse(text)
    assert info.value.exit_code == ExitCode.CONFIG
    return info.value


def test_defaults_are_the_documented_contract() -> None:
    s = parse("")
    assert s.gateway.listen == ("auto",)
    assert s.gateway.port == 11434
    assert s.gateway.upstream == "127.0.0.1:11434"
    assert s.gateway.profiles == ("default",)
    assert s.gateway.tokens is False
    assert s.limits.max_body_bytes == 32 * 1024 * 1024
    assert (s.timeouts.server, s.timeouts.client, s.timeouts.http_request,
            s.timeouts.keep_alive) == ("30m", "60s", "10s", "10s")


@pytest.mark.parametrize("addr", ["0.0.0.0", "::", "*", "[::]", "0:0:0:0:0:0:0:0"])
def test_wildcard_listen_is_refused_even_with_allow_other(addr: str) -> None:
    err = refused(f'[gateway]\nlisten = ["{addr}"]\nallow_other_listen = true\n')
    assert "wildcard" in err.message


@pytest.mark.parametrize("addr", ["192.168.1.10", "10.0.0.5", "8.8.8.8", "fe80::1",
                                  "2001:db8::1", "100.63.255.255", "100.128.0.1"])
def test_other_listen_addresses_need_the_explicit_switch(addr: str) -> None:
    err = refused(f'[gateway]\nlisten = ["{addr}"]\n')
    assert "neither a Tailscale address nor loopback" in err.message
    assert "allow_other_listen" in (err.hint or "")
    ok = parse(f'[gateway]\nlisten = ["{addr}"]\nallow_other_listen = true\n')
    assert ok.gateway.listen == (addr,)


@pytest.mark.parametrize("addr", ["100.64.0.1", "100.127.255.254", "fd7a:115c:a1e0::1",
                                  "127.0.0.1", "127.0.0.2", "::1"])
def test_tailscale_and_loopback_addresses_are_accepted(addr: str) -> None:
    assert parse(f'[gateway]\nlisten = ["{addr}", "auto"]\n').gateway.listen == (addr, "auto")


@pytest.mark.parametrize("bad", ["localhost", "studio.tail1234.ts.net", "100.64.0.1:80",
                                 "[::1]", ""])
def test_listen_must_be_ip_literals(bad: str) -> None:
    refused(f'[gateway]\nlisten = ["{bad}"]\n')


@pytest.mark.parametrize("upstream", ["0.0.0.0:11434", "192.168.1.2:11434", "ollama:11434",
                                      "100.64.0.1:11434", "[::]:11434", "127.0.0.1",
                                      "localhost:11434", "127.0.0.1:0", "127.0.0.1:99999"])
def test_upstream_must_be_loopback(upstream: str) -> None:
    refused(f'[gateway]\nupstream = "{upstream}"\n')


def test_ipv6_loopback_upstream_is_fine() -> None:
    assert parse('[gateway]\nupstream = "[::1]:11434"\n').gateway.upstream == "[::1]:11434"


@pytest.mark.parametrize("text, needle", [
    ("[gateway]\nport = 0\n", "out of range"),
    ("[gateway]\nport = \"11434\"\n",
     "gateway.port must be a whole number, not a string: write port = 11434"),
    ("[gateway]\ntokens = 1\n", "gateway.tokens must be true or false, not a number (1)"),
    ("[gateway]\nlisten = \"auto\"\n",
     "gateway.listen must be a list of strings, not a string: write listen = [\"auto\"]"),
    ("[gateway]\nlisten = []\n", "empty"),
    ("[gateway]\nprofiles = [\"admin\"]\n", "unknown allowlist profile"),
    ("[gateway]\nlistne = [\"auto\"]\n", "unknown setting gateway.listne"),
    ("[limits]\nmax_body_bytes = 0\n", "at least 1"),
    ("[limits]\nmax_body_bytes = 1000000000\n", "is above 999999999"),
    ("[timeouts]\nserver = \"30 minutes\"\n", "not a duration"),
    ("[timeouts]\nserver = \"0s\"\n", "more than zero"),
    ("[server]\nx = 1\n", "unknown section"),
    ("[gateway\n", "not valid TOML"),
])
def test_invalid_settings_fail_with_one_clear_message(text: str, needle: str) -> None:
    assert needle in refused(text).message


def test_duration_units() -> None:
    assert [duration_ms(v) for v in ("500ms", "10s", "30m", "2h")] == [500, 10_000, 1_800_000,
                                                                       7_200_000]


def test_missing_default_file_means_defaults_but_missing_explicit_file_is_an_error(
    tmp_path: Path,
) -> None:
    assert load(None) == Settings()
    with pytest.raises(AiError) as info:
        load(tmp_path / "nope.toml")
    assert info.value.exit_code == ExitCode.CONFIG


def test_load_reads_the_file(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text('[gateway]\nport = 11500\n')
    s = load(f)
    assert s.gateway.port == 11500 and s.source == str(f)


@pytest.mark.parametrize("text", [
    '[gateway]\nport = 11435\nmetrics_port = 11435\n',
    '[gateway]\nmetrics_port = 11434\n',  # Ollama's port
])
def test_metrics_port_must_be_its_own(text: str) -> None:
    """Found by review: on the gateway's port the exporter would answer tailnet peers."""
    assert "metrics_port" in refused(text).message
