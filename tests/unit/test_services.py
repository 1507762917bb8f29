from __future__ import annotations

import configparser
import plistlib
import shlex
from pathlib import Path

import pytest

from aicommon.paths import server_paths
from aiserver import install, listeners, preflight, services
from aiserver.settings import parse

EXPECTED_ENV = {"OLLAMA_HOST": "127.0.0.1:11434", "OLLAMA_CONTEXT_LENGTH": "65536",
                "OLLAMA_KEEP_ALIVE": "30m", "OLLAMA_NO_CLOUD": "1",
                "OLLAMA_FLASH_ATTENTION": "1", "OLLAMA_KV_CACHE_TYPE": "q8_0"}


def specs(tmp_path: Path) -> dict[str, services.ServiceSpec]:
    s = parse('[gateway]\nlisten = ["auto"]\n')
    return install.service_specs(s, server_paths(), tmp_path / "config.toml",
                                 "/opt/homebrew/bin/ollama")


def test_plists_parse_and_carry_the_environment(tmp_path: Path) -> None:
    sp = specs(tmp_path)
    for key, label in (("ollama", "homebrew.mxcl.ollama"), ("gateway", "x.y.gateway")):
        text = services.plist_text(sp[key], label)
        doc = plistlib.loads(text.encode())
        assert doc["Label"] == label
        assert doc["RunAtLoad"] is True and doc["KeepAlive"] is True
        assert doc["StandardOutPath"].startswith(str(server_paths().log_dir))
        if key == "ollama":
            assert doc["ProgramArguments"] == ["/opt/homebrew/bin/ollama", "serve"]
            assert EXPECTED_ENV.items() <= doc["EnvironmentVariables"].items()
            assert doc["ProcessType"] == "Interactive"
        else:
            assert doc["ProgramArguments"][-1] == "run"
        assert "0.0.0.0" not in text and "<string>*" not in text


def test_units_parse_and_carry_the_environment(tmp_path: Path) -> None:
    sp = specs(tmp_path)
    text = services.unit_text(sp["ollama"])
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read_string(text)
    assert cp["Service"]["ExecStart"] == "/opt/homebrew/bin/ollama serve"
    assert cp["Service"]["Restart"] == "always"
    assert cp["Install"]["WantedBy"] == "default.target"
    env = {}
    for line in text.splitlines():
        if line.startswith("Environment="):
            k, v = shlex.split(line.removeprefix("Environment="))[0].split("=", 1)
            env[k] = v
    assert EXPECTED_ENV.items() <= env.items()
    assert "0.0.0.0" not in text


def test_values_with_spaces_and_xml_characters_are_escaped(tmp_path: Path) -> None:
    spec = services.ServiceSpec("gateway", "a <b> & c", ("/Applications/My App/ai-server", "run"),
                                (("X", 'he said "hi" & <bye>'),), tmp_path / "o.log",
                                tmp_path / "e.log", tmp_path)
    doc = plistlib.loads(services.plist_text(spec, "l").encode())
    assert doc["ProgramArguments"][0] == "/Applications/My App/ai-server"
    assert doc["EnvironmentVariables"]["X"] == 'he said "hi" & <bye>'
    unit = services.unit_text(spec)
    exec_line = next(x for x in unit.splitlines() if x.startswith("ExecStart="))
    exec_argv = shlex.split(exec_line.removeprefix("ExecStart="))
    assert exec_argv[0] == "/Applications/My App/ai-server"
    env_line = next(x for x in unit.splitlines() if x.startswith("Environment="))
    assert shlex.split(env_line.removeprefix("Environment=")) == ['X=he said "hi" & <bye>']


SS = """LISTEN 0      4096   127.0.0.1:11434 0.0.0.0:* users:(("ollama",pid=812,fd=3))
LISTEN 0      4096   100.101.102.103:11434 0.0.0.0:* users:(("haproxy",pid=900,fd=6))
LISTEN 0      4096   [fd7a:115c:a1e0::1234]:11434 [::]:* users:(("haproxy",pid=900,fd=7))
LISTEN 0      128          0.0.0.0:22 0.0.0.0:*
LISTEN 0      4096               *:8080 *:* users:(("node",pid=1,fd=20))
"""

LSOF = """COMMAND   PID  USER   FD   TYPE             DEVICE SIZE/OFF NODE NAME
ollama    812 alice    3u  IPv4 0x1a2b3c4d      0t0  TCP 127.0.0.1:11434 (LISTEN)
haproxy   900 alice    6u  IPv4 0x1a2b3c4d      0t0  TCP 100.101.102.103:11434 (LISTEN)
haproxy   900 alice    7u  IPv6 0x1a2b3c4d      0t0  TCP [fd7a:115c:a1e0::1234]:11434 (LISTEN)
rapportd  500 alice    4u  IPv4 0x1a2b3c4d      0t0  TCP *:49152 (LISTEN)
"""


def test_parse_ss_and_lsof_agree() -> None:
    a = [(x.address, x.port, x.process) for x in listeners.parse_ss(SS)]
    assert a[:3] == [("127.0.0.1", 11434, "ollama"), ("100.101.102.103", 11434, "haproxy"),
                     ("fd7a:115c:a1e0::1234", 11434, "haproxy")]
    assert ("0.0.0.0", 22, "") in a and ("*", 8080, "node") in a
    b = [(x.address, x.port, x.process) for x in listeners.parse_lsof(LSOF)]
    assert b[:3] == a[:3]
    assert listeners.parse_lsof(LSOF)[3].wildcard


@pytest.mark.parametrize("mem_gib, want", [(8, 8192), (24, 32768), (64, 65536), (None, 65536)])
def test_context_length_is_lowered_on_small_machines(mem_gib: int | None, want: int) -> None:
    got, note = preflight.context_for_memory(65536, mem_gib * 2**30 if mem_gib else None)
    assert got == want
    assert (note is not None) == (want != 65536)


def test_pool_node_names_only_reach_tailscale_or_loopback_addresses(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A MagicDNS name answered by another DNS must never get the node's token."""
    import socket

    from aiserver.gateway import nodes, pool
    from aiserver.settings import parse

    answers = {"evil": "203.0.113.7", "good": "100.101.1.2"}

    def fake_getaddrinfo(host: str, port: int, **kw: object) -> list[tuple[object, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host.split(".")[0]],
                                                              port))]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    assert nodes.safe_address("evil.tail1234.ts.net:11434") is None
    assert nodes.safe_address("good.tail1234.ts.net:11434") == "100.101.1.2:11434"
    s = parse('[pool]\nnodes = ["evil.tail1234.ts.net:11434", "good.tail1234.ts.net:11434"]\n')
    tokens = {"evil.tail1234.ts.net:11434": "token-evil-0123456789",
              "good.tail1234.ts.net:11434": "token-good-0123456789"}
    out = pool.render_pool(s, tmp_path, tmp_path, {}, tokens, nodes.addresses(s, tokens))
    assert "203.0.113.7" not in out.backends
    assert "evil.tail1234.ts.net:11434 init-addr none" in out.backends
    assert "100.101.1.2:11434" in out.backends


def test_pool_model_names_cannot_inject_map_lines(tmp_path: Path) -> None:
    from aiserver.gateway import pool
    from aiserver.settings import parse

    s = parse('[pool]\nnodes = ["127.0.0.1:11434", "127.0.0.2:11434"]\n')
    models = {"127.0.0.1:11434": [{"name": "qwen3-coder:30b"}],
              "127.0.0.2:11434": [{"name": "evil\nqwen3-coder:30b node_0 x"},
                                  {"name": "hf.co/org/model:Q4_K_M"}]}
    out = pool.render_pool(s, tmp_path, tmp_path, models, {})
    mapping = dict(out.files)["models.map"]
    assert mapping.splitlines() == ["hf.co/org/model:Q4_K_M pool_1",
                                    "qwen3-coder:30b pool_0"]


# -- Homebrew as it really is (issue 15) ----------------------------------------------------------


def test_plists_limit_load_to_all_five_session_types_as_homebrew_does(tmp_path: Path) -> None:
    """Homebrew always writes all five (service.rb:618-624), so an agent bootstrapped from a
    background session (ssh, sudo) keeps working after a GUI login."""
    for spec in specs(tmp_path).values():
        doc = plistlib.loads(services.plist_text(spec, "x.y.z").encode())
        assert doc["LimitLoadToSessionType"] == ["Aqua", "Background", "LoginWindow",
                                                 "StandardIO", "System"]


def test_user_units_do_not_order_after_a_system_target(tmp_path: Path) -> None:
    """network-online.target belongs to the system manager; a --user unit's After=/Wants= on
    it does nothing."""
    for spec in specs(tmp_path).values():
        unit = configparser.ConfigParser(strict=False, interpolation=None)
        unit.read_string(services.unit_text(spec))
        assert "after" not in unit["Unit"] and "wants" not in unit["Unit"]
        assert "network-online" not in services.unit_text(spec)


def test_read_definition_reads_what_homebrew_and_we_generate(tmp_path: Path) -> None:
    from tests.support.fakeenv import ServiceDef

    brew_def = ServiceDef(run=["/opt/homebrew/opt/ollama/bin/ollama", "serve"],
                          environment={"OLLAMA_HOST": "127.0.0.1:11435", "A B": "c \"d\""},
                          error_log_path="/opt/homebrew/var/log/ollama.log")
    (tmp_path / "h.plist").write_bytes(brew_def.plist("homebrew.mxcl.ollama"))
    (tmp_path / "h.service").write_text(brew_def.unit("ollama"))
    for name in ("h.plist", "h.service"):
        loaded = services.read_definition(tmp_path / name)
        assert loaded is not None
        assert loaded.argv == ("/opt/homebrew/opt/ollama/bin/ollama", "serve")
        assert loaded.env["OLLAMA_HOST"] == "127.0.0.1:11435"
        assert loaded.stderr == "/opt/homebrew/var/log/ollama.log"
    sp = specs(tmp_path)["ollama"]
    (tmp_path / "ours.plist").write_text(services.plist_text(sp, "l"))
    (tmp_path / "ours.service").write_text(services.unit_text(sp))
    for name in ("ours.plist", "ours.service"):
        loaded = services.read_definition(tmp_path / name)
        assert loaded is not None and loaded.argv == sp.argv and loaded.env == dict(sp.env)
    assert services.read_definition(tmp_path / "missing") is None


def test_env_file_block_keeps_the_users_lines_and_is_removed_exactly() -> None:
    user = "# mine\nOLLAMA_MODELS=/Volumes/models\n"
    ours = (("OLLAMA_HOST", "127.0.0.1:11434"), ("OLLAMA_NO_CLOUD", "1"))
    text = services.env_file_text(user, ours)
    assert text.startswith(user) and text.endswith(f"OLLAMA_NO_CLOUD=1\n{services.ENV_END}\n")
    assert services.env_file_text(text, ours) == text  # idempotent
    assert services.strip_env_block(text) == user
    assert services.env_file_text(None, ()) == ""
    assert services.env_file_text("X=1", ours).startswith("X=1\n")


def test_brew_managed_specs_differ_from_the_formula_only_by_environment(tmp_path: Path) -> None:
    sp = specs(tmp_path)
    paths = server_paths()
    ollama = install.brew_spec(sp["ollama"], paths)
    assert ollama.argv == sp["ollama"].argv
    assert dict(ollama.env) == EXPECTED_ENV  # no PATH: the formula's std_service_path_env stays
    gateway = install.brew_spec(sp["gateway"], paths)
    assert gateway.argv[1:] == ("run",)  # the formula's `run [opt_bin/"ai-server", "run"]`
    assert ("AI_SERVER_CONFIG", str(tmp_path / "config.toml")) in gateway.env
    default = install.service_specs(parse(""), paths, paths.config_file, "ollama")["gateway"]
    assert "AI_SERVER_CONFIG" not in dict(install.brew_spec(default, paths).env)
    no_fa = parse("[ollama]\nflash_attention = false\n")
    off = install.service_specs(no_fa, paths, paths.config_file, "ollama")["ollama"]
    assert dict(install.brew_spec(off, paths).env)["OLLAMA_FLASH_ATTENTION"] == "0"
