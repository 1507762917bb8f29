"""Rendering, validation and `ai-server run` address resolution, through the real CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aiserver.gateway.render import render
from aiserver.settings import parse
from tests.support import tsfake
from tests.support.gatewayproc import free_port, settings_toml

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60
        ) -> subprocess.CompletedProcess[str]:
    run_env = dict(os.environ if env is None else env)
    return subprocess.run([sys.executable, "-m", "aiserver.cli", *args], capture_output=True,
                          text=True, env=run_env, timeout=timeout, check=False)


def write_settings(tmp_path: Path, **gateway: object) -> Path:
    g: dict[str, object] = {"stats_socket": "/tmp/ai-render-test.sock"}
    g.update(gateway)
    path = tmp_path / "server.toml"
    path.write_text(settings_toml({"gateway": g}))
    return path


def ts_env(tmp_path: Path, doc: dict[str, object] | None) -> tuple[dict[str, str], Path]:
    env = dict(os.environ)
    log = tsfake.install(env, tmp_path, doc)
    return env, log


VARIANTS = {
    "defaults-v4-v6": '[gateway]\nlisten = ["100.101.102.103", "fd7a:115c:a1e0::1234"]\n',
    "tokens-native": '[gateway]\nlisten = ["127.0.0.1"]\ntokens = true\nprofiles = ["native"]\n',
    "tight-limits": '[gateway]\nlisten = ["::1"]\n[limits]\nmax_body_bytes = 1024\n'
                    'per_source_connections = 1\n[timeouts]\nserver = "2h"\nclient = "500ms"\n',
    "other-listen": '[gateway]\nlisten = ["192.168.7.7"]\nallow_other_listen = true\n',
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_rendered_config_is_valid_and_warning_free(name: str, tmp_path: Path,
                                                   haproxy_binary: str) -> None:
    s = parse(VARIANTS[name])
    out = tmp_path / "out"
    rendered = render(s, list(s.gateway.listen), out,
                      token_map="abcdefghijklmnopqrst laptop\n" if s.gateway.tokens else None,
                      stats_socket=tmp_path / "a.sock")
    for f in rendered.files:
        (out / f.relpath).parent.mkdir(parents=True, exist_ok=True)
        (out / f.relpath).write_text(f.content)
    res = subprocess.run([haproxy_binary, "-c", "-dW", "-f", str(out / "haproxy.cfg")],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "WARNING" not in res.stdout + res.stderr
    cfg = rendered.config
    assert not re.search(r"^\s*(daemon|master-worker)\b", cfg, re.M)
    binds = re.findall(r"^\s*bind (\S+)", cfg, re.M)
    metrics = [b for b in binds if b.startswith("127.0.0.1:8405")]
    assert metrics == ["127.0.0.1:8405"]
    listen = [b for b in binds if b not in metrics]
    expected = [f"[{a}]:11434" if ":" in a else f"{a}:11434" for a in s.gateway.listen]
    assert listen == expected
    for b in binds:
        assert not re.match(r"^(\*|0\.0\.0\.0|\[::\]|:::|:)", b), b
    for needle in ("option http-no-delay", "option abortonclose", "timeout server",
                   "option httpchk GET /api/version", "maxconn", "maxqueue",
                   "errorfile 408", "errorfile 400", "http-error status 502",
                   "http-error status 503", "http-error status 504", "errorfile 500",
                   "set-header Host 127.0.0.1:11434", "del-header origin",
                   "prometheus-exporter", "stats socket", "mode 600"):
        assert needle in cfg, needle


def test_errorfiles_are_complete_http_responses_with_json(tmp_path: Path) -> None:
    s = parse('[gateway]\nlisten = ["127.0.0.1"]\n')
    rendered = render(s, ["127.0.0.1"], tmp_path, stats_socket=tmp_path / "a.sock")
    pages = [f for f in rendered.files if f.relpath.endswith(".http")]
    assert {p.relpath for p in pages} >= {f"errors/{c}.http" for c in (400, 408, 413, 429)}
    for page in pages:
        head, body = page.content.split("\r\n\r\n", 1)
        assert head.startswith(f"HTTP/1.1 {page.relpath[7:10]} ")
        assert f"Content-Length: {len(body.encode())}" in head
        assert json.loads(body)["error"]["source"] == "ai-server gateway"


def test_errors_haproxy_answers_mid_request_have_both_dialects(tmp_path: Path) -> None:
    """502/503/504 come from HAProxy while a request is under way: one map per code with
    Ollama's native shape (for /api/*) and the Anthropic/OpenAI shape, chosen at reply time."""
    s = parse('[gateway]\nlisten = ["127.0.0.1"]\n')
    rendered = render(s, ["127.0.0.1"], tmp_path, stats_socket=tmp_path / "a.sock")
    for code in (502, 503, 504):
        lines = rendered.file(f"errors/{code}.map").content.splitlines()
        assert [line.split(" ", 1)[0] for line in lines] == ["native", "other"]
        native, other = (json.loads(line.split(" ", 1)[1]) for line in lines)
        assert isinstance(native["error"], str) and native["code"] == other["error"]["code"]
        assert native["error"] == other["error"]["message"]
        line = next(x for x in rendered.config.splitlines()
                    if x.strip().startswith(f"http-error status {code} "))
        assert f"map('{tmp_path}/errors/{code}.map')" in line
        assert ("Retry-After" in line) == (code == 503)
        assert ("retry_after_seconds" in native) == (code == 503)


def test_a_state_dir_that_the_error_maps_cannot_name_is_refused(tmp_path: Path) -> None:
    """Inside the double-quoted reply format HAProxy expands $NAME and unescapes backslashes,
    so a state directory with `$`, `\\` or `"` would make it open another file (or fail)."""
    from aicommon.errors import AiError

    s = parse('[gateway]\nlisten = ["127.0.0.1"]\n')
    for name in ("d$HOME", 'q"uote', "back\\slash"):
        with pytest.raises(AiError) as err:
            render(s, ["127.0.0.1"], tmp_path / name, stats_socket=tmp_path / "a.sock")
        assert err.value.code == "gateway.path"
    render(s, ["127.0.0.1"], tmp_path / "Application Support, (x) 100%",
           stats_socket=tmp_path / "a.sock")


def test_render_is_deterministic_and_cli_prints_it(tmp_path: Path) -> None:
    cfg = write_settings(tmp_path, listen=["127.0.0.1"])
    first = cli("--config", str(cfg), "config", "render")
    second = cli("--config", str(cfg), "config", "render")
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout and first.stdout.startswith("# Generated by ai-server")
    out = tmp_path / "rendered"
    res = cli("--config", str(cfg), "config", "render", "--output", str(out))
    assert res.returncode == 0, res.stderr
    assert (out / "haproxy.cfg").read_text().count(f"errorfile 408 '{out}/errors/408.http'") == 1
    assert (out / "errors/503.map").is_file()
    again = cli("--config", str(cfg), "config", "render", "--output", str(out))
    assert "nothing written, all" in again.stderr and "already up to date" in again.stderr


def test_config_validate_reports_by_exit_code(tmp_path: Path) -> None:
    cfg = write_settings(tmp_path, listen=["127.0.0.1"])
    res = cli("--config", str(cfg), "config", "validate", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["data"]["valid"] is True
    bad = tmp_path / "bad.toml"
    bad.write_text('[gateway]\nlisten = ["127.0.0.1"]\n[timeouts]\nserver = "99999h"\n')
    res = cli("--config", str(bad), "config", "validate", "--json")
    assert res.returncode == 4
    env = json.loads(res.stdout)
    assert env["ok"] is False and "timer overflow" in env["errors"][0]["message"]


@pytest.mark.parametrize("listen", ['["0.0.0.0"]', '["::"]', '["*"]', '["192.168.1.4"]'])
def test_wider_binds_are_refused_before_anything_runs(tmp_path: Path, listen: str) -> None:
    cfg = tmp_path / "s.toml"
    cfg.write_text(f"[gateway]\nlisten = {listen}\n")
    for args in (["config", "render"], ["run", "--wait", "0"]):
        res = cli("--config", str(cfg), *args)
        assert res.returncode == 4, res.stderr
        assert res.stdout == "" and res.stderr.count("\n") == 1
    assert not (Path(os.environ["AI_SERVER_HOME"]) / "state" / "gateway").exists()


def test_auto_resolves_tailscale_addresses(tmp_path: Path) -> None:
    env, log = ts_env(tmp_path, tsfake.status_doc(ips=("100.101.102.103",
                                                       "fd7a:115c:a1e0::1234")))
    cfg = write_settings(tmp_path, listen=["auto"])
    res = cli("--config", str(cfg), "config", "render", env=env)
    assert res.returncode == 0, res.stderr
    binds = re.findall(r"^\s*bind (\S+)", res.stdout, re.M)
    assert binds == ["100.101.102.103:11434", "[fd7a:115c:a1e0::1234]:11434", "127.0.0.1:8405"]
    assert json.loads(log.read_text().splitlines()[0]) == ["status", "--json"]


@pytest.mark.parametrize("doc", [None, tsfake.status_doc(state="NeedsLogin"),
                                 tsfake.status_doc(state="Stopped")])
def test_run_without_tailscale_refuses_and_never_binds_wider(
    tmp_path: Path, doc: dict[str, object] | None
) -> None:
    env, _ = ts_env(tmp_path, doc)
    cfg = write_settings(tmp_path, listen=["auto"])
    res = cli("--config", str(cfg), "run", "--wait", "1", env=env)
    assert res.returncode == 5
    assert res.stderr.count("\n") == 1
    assert "tailscale" in res.stderr.lower()
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("upstream", ["127.0.0.1:11434", "127.0.0.1:11435"])
def test_userspace_tailscale_refuses_an_ollama_on_ipv4_loopback(tmp_path: Path,
                                                                 upstream: str) -> None:
    """tailscaled (userspace) delivers tailnet connections for every allowed port to
    127.0.0.1:<port>: an Ollama there is exposed whatever port the gateway uses."""
    env, _ = ts_env(tmp_path, tsfake.status_doc(tun=False))
    cfg = write_settings(tmp_path, listen=["auto"], port=11435 if upstream.endswith("34")
                         else 11434, upstream=upstream)
    for args in (["run", "--wait", "0"], ["config", "render"]):
        res = cli("--config", str(cfg), *args, env=env)
        assert res.returncode == 4 and res.stderr.count("\n") == 1, res.stderr
        assert "userspace networking" in res.stderr and "[::1]:" in res.stderr


def test_userspace_tailscale_with_ollama_on_ipv6_loopback_listens_on_127_0_0_1(
        tmp_path: Path) -> None:
    """The gateway takes Ollama's port on 127.0.0.1 (clients keep :11434); its metrics go to
    ::1 with Ollama, so nothing else of ours is where tailscaled delivers."""
    env, _ = ts_env(tmp_path, tsfake.status_doc(tun=False))
    cfg = write_settings(tmp_path, listen=["auto"], port=11434, upstream="[::1]:11434")
    res = cli("--config", str(cfg), "config", "render", env=env)
    assert res.returncode == 0, res.stderr
    assert re.findall(r"^\s*bind (\S+)", res.stdout, re.M) == ["127.0.0.1:11434", "[::1]:8405"]
    assert re.search(r"^\s*server ollama \[::1\]:11434 ", res.stdout, re.M)
    assert re.search(r"^\s*http-request set-header Host \[::1\]:11434$", res.stdout, re.M)
    assert "userspace networking" in res.stderr


def test_userspace_tailscale_refuses_a_local_pool_node_on_ipv4_loopback(tmp_path: Path) -> None:
    """A second local Ollama listed in the pool is exposed the same way."""
    env, _ = ts_env(tmp_path, tsfake.status_doc(tun=False))
    cfg = tmp_path / "server.toml"
    cfg.write_text(settings_toml({
        "gateway": {"listen": ["auto"], "upstream": "[::1]:11434",
                    "stats_socket": "/tmp/ai-render-test.sock"},
        "pool": {"nodes": ["[::1]:11434", "127.0.0.1:11436"]}}))
    res = cli("--config", str(cfg), "run", "--wait", "0", env=env)
    assert res.returncode == 4 and res.stderr.count("\n") == 1, res.stderr
    assert "local pool node 127.0.0.1:11436" in res.stderr and "[::1]:11436" in res.stderr


def test_run_waits_for_tailscale_then_becomes_haproxy(tmp_path: Path) -> None:
    """`run` polls `tailscale status` until Running, then execs HAProxy on the address."""
    env, log = ts_env(tmp_path, tsfake.status_doc(state="Starting"))
    port, mport = free_port(), free_port()
    cfg = write_settings(tmp_path, listen=["auto"], port=port, metrics_port=mport,
                         upstream=f"127.0.0.1:{free_port()}")
    proc = subprocess.Popen([sys.executable, "-m", "aiserver.cli", "--config", str(cfg), "run",
                             "--wait", "20"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        time.sleep(1.2)
        assert proc.poll() is None
        (tmp_path / "tailscale-status.json").write_text(json.dumps(
            tsfake.status_doc(ips=("100.101.102.103",))))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        # 100.101.102.103 does not exist on this machine: HAProxy (already exec'ed) fails
        # to bind it, which proves `run` resolved the address and handed over to HAProxy.
        assert proc.returncode not in (None, 0)
        err = proc.stderr.read().decode() if proc.stderr else ""
        assert "100.101.102.103" in err and ("Cannot" in err or "cannot" in err)
        assert len(log.read_text().splitlines()) >= 2  # polled more than once
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_config_header_claims_the_haproxy_versions_the_tests_run(haproxy_binary: str,
                                                                 tmp_path: Path) -> None:
    """The header names exactly the versions this suite validates and serves with."""
    s = parse(VARIANTS["defaults-v4-v6"])
    header = render(s, list(s.gateway.listen), tmp_path).config.split("\n\n", 1)[0]
    version = subprocess.run([haproxy_binary, "-v"], capture_output=True, text=True,
                             check=True).stdout.split()[2].split("-")[0]
    assert re.search(rf"\b{re.escape(version)}\b", header), (version, header)
    assert "3.3" not in header  # no version claimed that no test runs


def test_only_backends_to_ollama_itself_reuse_idle_connections_for_first_requests(
        tmp_path: Path) -> None:
    """`http-reuse always` is safe towards Ollama, which never closes an idle connection; pool
    nodes are other gateways, which close idle ones after their keep-alive timeout, so a
    first request could race that close: their backends and relays keep HAProxy's default."""
    single = render(parse('[gateway]\nlisten = ["127.0.0.1"]\n'), ["127.0.0.1"],
                    tmp_path / "a", stats_socket=tmp_path / "a.sock").config
    sections = re.split(r"^(?=\S)", single, flags=re.M)
    reusing = [sec.split()[1] for sec in sections if "\n    http-reuse always" in sec]
    assert reusing == ["ollama", "ollama_meta", "ollama_bulk"]
    pooled = render(parse('[gateway]\nlisten = ["127.0.0.1"]\n[pool]\nnodes = '
                          '["127.0.0.1:11434", "gpu.tail1234.ts.net:11434"]\n'),
                    ["127.0.0.1"], tmp_path / "b", stats_socket=tmp_path / "b.sock",
                    pool_tokens={"gpu.tail1234.ts.net:11434": "token-gpu-0123456789"}).config
    assert "listen pool_relay_1" in pooled
    assert "http-reuse" not in pooled
    relay = re.split(r"^(?=\S)", pooled.split("listen pool_relay_1", 1)[1], flags=re.M)[0]
    # a relay's own 502/503/504 for a remote node come in the caller's dialect too
    assert "http-request set-var(txn.dialect) str(native) if { path_beg /api/ }" in relay
