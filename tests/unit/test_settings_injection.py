"""No setting can widen a bind or inject config (issue 12 §2), and the names the gateway
answers to (§1): every string setting that becomes config text is validated by its kind."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import given, settings
from hypothesis import strategies as strat

from aicommon.errors import AiError, ExitCode
from aiserver.gateway.render import accepted_hosts, host_variants, render
from aiserver.settings import SECTIONS, is_wildcard, parse

TARGET = Path("/tmp/ai-gw-injection")  # render is pure: nothing is written there
HOSTILE = ["x\nfrontend evil\n    bind 0.0.0.0:1", "x\rbind 0.0.0.0:1", "a#b", "a b", 'a"b',
           "a'b", "a\\b", "0.0.0.0:1", "/tmp/" + "a" * 5000, "/tmp/ok\n", "/tmp/ok\x00",
           "/tmp/a\tb", "ipv4@0.0.0.0:1", "unix@/tmp/x", "abns@x", "fd@3", "*:1", "[::]:1",
           "$HOME", "${PATH}", "/tmp/$(id)", "~/x y", "", "   ", "\u2028", "30s\n",
           "-1\nOLLAMA_HOST=0.0.0.0", "qwen3\nEnvironment=X=1", "::", "0", "::ffff:0.0.0.0"]
# every string (and list-of-strings) setting of every section
STRING_KEYS = [(section, f.name, isinstance(getattr(cls(), f.name), tuple))
               for section, cls in SECTIONS.items() for f in fields(cls)
               if isinstance(getattr(cls(), f.name), str | tuple)]
BASE: dict[str, dict[str, Any]] = {"gateway": {"listen": ["127.0.0.1"], "port": 11500,
                                               "stats_socket": "/tmp/ai-gw-inj/admin.sock"}}


def shape(config: str) -> tuple[list[str], list[str], list[str]]:
    """The bind lines, the section headers and the stats socket lines of a config."""
    lines = config.splitlines()
    binds = sorted(ln.strip() for ln in lines if ln.strip().startswith("bind"))
    sections = sorted(ln for ln in lines if ln and not ln[0].isspace() and ln[0] != "#")
    sockets = [ln.strip() for ln in lines if ln.strip().startswith("stats socket")]
    return binds, sections, sockets


def rendered(doc: dict[str, dict[str, Any]], source: str = "<test>") -> str:
    return render(parse(tomli_w.dumps(doc), source), ["127.0.0.1"], TARGET,
                  host_names=["studio.tail1234.ts.net", "studio"]).config


CLEAN = shape(rendered(BASE))


def check_one(section: str, key: str, is_list: bool, value: str) -> None:
    doc = {s: dict(v) for s, v in BASE.items()}
    doc.setdefault(section, {})[key] = [value] if is_list else value
    try:
        config = rendered(doc)
    except AiError as err:
        assert err.exit_code == ExitCode.CONFIG, (section, key, value)
        one_line = err.message + (err.hint or "")
        assert not re.search(r"[\n\r\x00\u2028]", one_line), (section, key, value, err.message)
        assert err.hint, (section, key, value)
        return
    binds, sections, sockets = shape(config)
    assert (binds, sections) == CLEAN[:2], (section, key, value)
    assert len(sockets) == 1 and not re.search(r"stats socket \S*:\d", sockets[0]), sockets


@pytest.mark.parametrize(("section", "key", "is_list"), STRING_KEYS)
@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_string_settings_are_refused_or_change_no_bind_or_section(
    section: str, key: str, is_list: bool, value: str
) -> None:
    check_one(section, key, is_list, value)


@settings(max_examples=300, deadline=None)
@given(strat.sampled_from(STRING_KEYS),
       strat.text(alphabet=strat.sampled_from(list("aZ0./:@#'\"\\ \t\n\r$*[]{}%~-_,=")),
                  max_size=40))
def test_any_string_in_any_setting_never_adds_a_bind(key: tuple[str, str, bool],
                                                     value: str) -> None:
    check_one(*key, value)


def test_the_settings_file_path_cannot_inject_either() -> None:
    binds, sections, _ = shape(rendered(BASE, source="/tmp/x\nfrontend evil\n bind 0.0.0.0:1"))
    assert (binds, sections) == CLEAN[:2]


def test_a_refusal_is_one_line_with_exit_4_from_the_cli(tmp_path: Path) -> None:
    import subprocess
    import sys

    cfg = tmp_path / "server.toml"
    cfg.write_text('[gateway]\nlisten = ["127.0.0.1"]\nstats_socket = "0.0.0.0:19498"\n')
    res = subprocess.run([sys.executable, "-m", "aiserver.cli", "--config", str(cfg), "config",
                          "render"], capture_output=True, text=True, timeout=60, check=False,
                         env={"AI_SERVER_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin",
                              "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")})
    assert res.returncode == 4, res.stderr
    assert res.stdout == "" and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "stats_socket" in res.stderr and "never addresses" in res.stderr


@pytest.mark.parametrize("addr", ["0.0.0.0", "::", "*", "[::]", "0", "::0", "0:0:0:0:0:0:0:0",
                                  "::ffff:0.0.0.0", "::ffff:0:0", "[::ffff:0:0]",
                                  "0000:0000::", "::0.0.0.0", " 0.0.0.0", "[0:0::0]"])
@pytest.mark.parametrize("allow_other", [False, True])
def test_every_wildcard_spelling_is_refused(addr: str, allow_other: bool) -> None:
    assert is_wildcard(addr)
    text = tomli_w.dumps({"gateway": {"listen": [addr], "allow_other_listen": allow_other}})
    with pytest.raises(AiError) as info:
        parse(text)
    assert info.value.exit_code == ExitCode.CONFIG


@pytest.mark.parametrize("sock", ["0.0.0.0:19498", "127.0.0.1:9999", "ipv4@127.0.0.1:1",
                                  "abns@admin", "admin.sock", "/tmp/a b.sock", "fd@3"])
def test_stats_socket_must_be_a_path(sock: str) -> None:
    with pytest.raises(AiError) as info:
        parse(tomli_w.dumps({"gateway": {"stats_socket": sock}}))
    assert "stats_socket" in info.value.message


@pytest.mark.parametrize(("origins", "ok"), [
    (["https://ui.example"], True), (["http://10.0.0.5:8080"], True),
    (["https://[fd7a:115c:a1e0::1]:3000"], True), (["https://ui.example/"], False),
    (["*"], False), (["https://*.example"], False), (["null"], False),
    (["https://UI.example"], False), (["https://ui.example path"], False)])
def test_allow_origins_are_exact_origins(origins: list[str], ok: bool) -> None:
    text = tomli_w.dumps({"gateway": {"allow_origins": origins}})
    if ok:
        assert parse(text).gateway.allow_origins == tuple(origins)
    else:
        with pytest.raises(AiError):
            parse(text)


# -- §1: the names the gateway answers to ---------------------------------------------------

def test_accepted_hosts_are_listen_addresses_tailnet_names_and_extra_names() -> None:
    hosts = accepted_hosts(["100.101.1.2", "fd7a:115c:a1e0::1"],
                           ["Studio.tail1234.ts.net", "Studio"], ("ai.example.internal",))
    assert hosts == ["100.101.1.2", "[fd7a:115c:a1e0::1]", "studio.tail1234.ts.net", "studio",
                     "ai.example.internal"]  # no loopback names: not listening on loopback
    variants = host_variants(hosts, 11434)
    for ok in ("100.101.1.2:11434", "[fd7a:115c:a1e0::1]:11434", "studio.tail1234.ts.net.",
               "studio.tail1234.ts.net.:11434", "studio:11434", "ai.example.internal"):
        assert ok in variants
    for bad in ("localhost", "127.0.0.1:11434", "100.101.1.2.", "studio.tail1234.ts.net:1"):
        assert bad not in variants


def test_loopback_names_only_when_listening_on_loopback() -> None:
    assert "localhost" in accepted_hosts(["127.0.0.1"], [], ())
    assert "[::1]" in accepted_hosts(["127.0.0.1"], [], ())
    assert "localhost" not in accepted_hosts(["100.64.0.1"], [], ())


def test_tailnet_names_are_resolved_at_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    """`run`/`reload` ask `tailscale status --json` for Self.DNSName and Self.HostName."""
    import os

    from aiserver.gateway.control import resolve_listen
    from tests.support import tsfake

    env = dict(os.environ)
    tsfake.install(env, tmp_path, tsfake.status_doc(hostname="mac-studio"))
    for k in ("AI_TAILSCALE", "FAKE_TAILSCALE_STATUS", "FAKE_TAILSCALE_LOG"):
        monkeypatch.setenv(k, env[k])
    listen = resolve_listen(parse(""), 0)
    assert listen.names[:2] == ("mac-studio.tail1234.ts.net", "mac-studio")
    config = render(parse(""), list(listen.addresses), TARGET,
                    host_names=list(listen.names)).config
    host_acl = next(ln for ln in config.splitlines() if "acl host_ok" in ln).split()
    assert {"mac-studio.tail1234.ts.net:11434", "mac-studio.tail1234.ts.net.",
            "100.101.102.103:11434", "[fd7a:115c:a1e0::1234]:11434"} <= set(host_acl)
    assert "localhost" not in host_acl


def test_the_magicdns_short_name_is_accepted_when_hostname_differs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Self.HostName is the OS name ("Alice's Mac Studio"); people type the MagicDNS label."""
    import os

    from aiserver.gateway.control import resolve_listen
    from tests.support import tsfake

    doc = tsfake.status_doc(hostname="alices-mac-studio")
    doc["Self"]["HostName"] = "Alice's Mac Studio"
    env = dict(os.environ)
    tsfake.install(env, tmp_path, doc)
    for k in ("AI_TAILSCALE", "FAKE_TAILSCALE_STATUS", "FAKE_TAILSCALE_LOG"):
        monkeypatch.setenv(k, env[k])
    listen = resolve_listen(parse(""), 0)
    hosts = accepted_hosts(list(listen.addresses), list(listen.names), ())
    assert "alices-mac-studio" in hosts and "alices-mac-studio.tail1234.ts.net" in hosts
    assert not [h for h in hosts if " " in h or "'" in h]  # the OS name is not a host name


@pytest.mark.parametrize("server", ["mac-studio.tail1234.ts.net", "100.101.102.103",
                                    "fd7a:115c:a1e0::1234"])
def test_ai_client_setup_base_url_passes_the_host_check(server: str) -> None:
    """`ai-client setup --server X` writes base_url from X: its host:port is accepted."""
    from urllib.parse import urlsplit

    from aiclient.settings import ClientSettings, Server

    url = ClientSettings(server=Server(server, 11434)).base_url
    netloc = urlsplit(url).netloc.lower()
    hosts = accepted_hosts(["100.101.102.103", "fd7a:115c:a1e0::1234"],
                           ["mac-studio.tail1234.ts.net", "mac-studio"], ())
    assert netloc in host_variants(hosts, 11434), (url, netloc)


def test_userspace_mode_accepts_the_tailnet_addresses_as_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TUN false: the gateway listens on 127.0.0.1, but laptops still send Host 100.x:port."""
    import os

    from aiserver.gateway.control import resolve_listen
    from tests.support import tsfake

    env = dict(os.environ)
    tsfake.install(env, tmp_path, tsfake.status_doc(tun=False))
    for k in ("AI_TAILSCALE", "FAKE_TAILSCALE_STATUS", "FAKE_TAILSCALE_LOG"):
        monkeypatch.setenv(k, env[k])
    s = parse('[gateway]\nport = 11435\nupstream = "[::1]:11434"\n')  # Ollama off 127.0.0.1
    listen = resolve_listen(s, 0)
    assert listen.addresses == ("127.0.0.1",)
    hosts = accepted_hosts(list(listen.addresses), list(listen.names), ())
    variants = host_variants(hosts, 11435)
    for ok in ("100.101.102.103:11435", "[fd7a:115c:a1e0::1234]:11435",
               "studio.tail1234.ts.net:11435", "localhost:11435"):
        assert ok in variants
