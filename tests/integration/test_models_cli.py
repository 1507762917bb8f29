"""`ai-server models …` as a process, against the Ollama simulator (and one tiny fake server)."""

from __future__ import annotations

import http.server
import json
import os
import pty
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from aicommon.errors import AiError
from aiserver.ollama import OllamaClient
from tests.support.ollama_sim import OllamaSimulator
from tests.support.signals import default_sigint

REPO = Path(__file__).resolve().parents[2]
# cli.py gets `cli.add_command(models)` from its owner; until then the tests add it themselves.
RUNNER = (
    "from aicommon.clikit import run_main\n"
    "from aiserver.cli import cli\n"
    "from aiserver.cli_models import models\n"
    "if 'models' not in cli.commands:\n"
    "    cli.add_command(models)\n"
    "run_main(cli, 'ai-server')\n"
)


def write_config(path: Path, port: int, extra: str = "") -> Path:
    path.write_text(f'[gateway]\nupstream = "127.0.0.1:{port}"\n{extra}', encoding="utf-8")
    return path


@pytest.fixture()
def config(sim: OllamaSimulator, tmp_path: Path) -> Path:
    return write_config(tmp_path / "config.toml", sim.port)


def argv(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-c", RUNNER, "--config", str(config), *args]


def run_cli(config: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv(config, *args), capture_output=True, text=True, timeout=timeout,
                          check=False, cwd=REPO)


def envelope(res: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    env: dict[str, Any] = json.loads(res.stdout)  # stdout is exactly one JSON document
    assert set(env) == {"schema", "command", "ok", "data", "errors"}
    assert env["schema"] == 1
    return env


def requests_to(sim: OllamaSimulator, path: str) -> list[Any]:
    return [r.json() for r in sim.requests if r.path == path and r.method == "POST"]


# -- the client itself ------------------------------------------------------------------------


def test_client_speaks_the_native_api(sim: OllamaSimulator) -> None:
    client = OllamaClient(sim.url)
    assert client.version() == "0.32.15"
    assert "qwen3-coder:30b" in [m["name"] for m in client.tags()]
    assert client.context_length("qwen3-coder:30b") == 262144
    assert client.ps() == []
    loaded = client.preload("gemma3:1b", num_ctx=8192)
    assert loaded["done_reason"] == "load"
    assert [(m["name"], m["context_length"]) for m in client.ps()] == [("gemma3:1b", 8192)]
    assert client.unload("gemma3:1b")["done_reason"] == "unload"
    assert client.ps() == []
    with pytest.raises(AiError) as info:
        client.show("nope")
    assert info.value.code == "ollama.model_not_found"
    assert info.value.hint == "run `ai-server models pull nope`"


def test_client_pull_streams_every_event(sim: OllamaSimulator) -> None:
    events = list(OllamaClient(sim.url).pull("tinyllama:1.1b"))
    assert events[0] == {"status": "pulling manifest"}
    assert events[-1] == {"status": "success"}
    assert sum(1 for e in events if "total" in e) == 9  # 3 layers x 3 updates
    assert requests_to(sim, "/api/pull") == [{"model": "tinyllama:1.1b", "stream": True}]


def test_embedding_model_is_preloaded_through_embed(sim: OllamaSimulator) -> None:
    client = OllamaClient(sim.url)
    assert client.preload("nomic-embed-text", num_ctx=2048)["done_reason"] == "load"
    paths = [r.path for r in sim.requests if r.method == "POST"]
    assert paths == ["/api/generate", "/api/embed"]
    assert requests_to(sim, "/api/embed") == [
        {"model": "nomic-embed-text", "keep_alive": -1, "options": {"num_ctx": 2048}}]
    assert sim.loaded_models() == {"nomic-embed-text:latest": 2048}


# -- list ---------------------------------------------------------------------------------------


def test_list_json_envelope(sim: OllamaSimulator, config: Path) -> None:
    OllamaClient(sim.url).preload("llama3.2:3b", keep_alive="5m", num_ctx=4096)
    res = run_cli(config, "models", "list", "--json")
    assert res.returncode == 0, res.stderr
    env = envelope(res)
    assert env["command"] == "models list" and env["ok"] is True and env["errors"] == []
    rows = {r["name"]: r for r in env["data"]["models"]}
    assert set(rows) == {m.name for m in sim.models}
    qwen = rows["qwen3-coder:30b"]
    assert (qwen["size"], qwen["parameter_size"], qwen["quantization"], qwen["context_length"],
            qwen["loaded"]) == (18_556_701_140, "30.5B", "Q4_K_M", 262144, False)
    llama = rows["llama3.2:3b"]
    assert llama["loaded"] is True and llama["loaded_context_length"] == 4096
    assert llama["kept_loaded"] is False and 280 <= llama["expires_in_seconds"] <= 300


def test_list_human_table(sim: OllamaSimulator, config: Path) -> None:
    res = run_cli(config, "models", "list")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["NAME", "SIZE", "PARAMS", "QUANT", "MAX", "CONTEXT", "LOADED"]
    assert lines[1].split() == ["qwen3-coder:30b", "19", "GB", "30.5B", "Q4_K_M", "262144", "-"]


def test_unreachable_ollama_is_one_line_exit_5(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a free port, left closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = run_cli(write_config(tmp_path / "c.toml", port), "models", "list")
    assert res.returncode == 5
    assert res.stderr.startswith(f"ai-server: error: cannot reach Ollama at 127.0.0.1:{port}")
    assert "brew services start ollama" in res.stderr and "Traceback" not in res.stderr
    assert res.stderr.count("\n") == 1


# -- pull ---------------------------------------------------------------------------------------


def expected_plain_pull(sim: OllamaSimulator, name: str) -> list[str]:
    from aiserver.models import human_bytes

    layers = [e for e in OllamaClient(sim.url).pull(name) if "total" in e and "completed" not in e]
    return (["pulling manifest"]
            + [f"{e['status']} ({human_bytes(e['total'])})" for e in layers]
            + ["verifying sha256 digest", "writing manifest", "removing unused layers",
               "success"])


def test_pull_prints_one_plain_line_per_status(sim: OllamaSimulator, config: Path) -> None:
    res = run_cli(config, "models", "pull", "tinyllama:1.1b")
    assert res.returncode == 0, res.stderr
    assert res.stderr.splitlines() == expected_plain_pull(sim, "tinyllama:1.1b")
    assert "\r" not in res.stderr
    assert re.fullmatch(r"pulled tinyllama:1\.1b \(2\.0 GB in \d+s\)\n", res.stdout)
    assert "tinyllama:1.1b" in [m["name"] for m in OllamaClient(sim.url).tags()]


def test_pull_json_keeps_progress_on_stderr(sim: OllamaSimulator, config: Path) -> None:
    res = run_cli(config, "models", "pull", "tinyllama:1.1b", "--json")
    assert res.returncode == 0, res.stderr
    env = envelope(res)
    assert env["command"] == "models pull" and env["ok"] is True
    assert env["data"]["model"] == "tinyllama:1.1b" and env["data"]["status"] == "success"
    assert env["data"]["bytes"] == 2_019_393_189 + 11_338 + 487
    assert res.stderr.splitlines()[-1] == "success"


def test_pull_quiet_shows_no_progress(sim: OllamaSimulator, config: Path) -> None:
    res = subprocess.run([*argv(config, "-q", "models", "pull", "x:1b")], capture_output=True,
                         text=True, timeout=60, check=False, cwd=REPO)
    assert res.returncode == 0 and res.stderr == ""


def test_pull_on_a_terminal_redraws_the_line(sim: OllamaSimulator, config: Path) -> None:
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "120"}
    proc = subprocess.Popen(argv(config, "models", "pull", "tinyllama:1.1b"),
                            stdout=subprocess.PIPE, stderr=slave, env=env, cwd=REPO)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=30) == 0
    text = b"".join(chunks).decode()
    lines = text.replace("\r\n", "\n").split("\n")  # the pty turns \n into \r\n
    assert lines[0] == "\rpulling manifest\x1b[K"
    bar = re.compile(r"\rpulling [0-9a-f]{12}  \[(#|\.){20}\] +\d+%  \S+ \S+/\S+ \S+")
    layer_lines = [line for line in lines if line.startswith("\rpulling ") and "  [" in line]
    assert len(layer_lines) == 3
    for line in layer_lines:
        draws = line.split("\x1b[K")[:-1]
        assert all(bar.match(d) for d in draws), draws
        assert "[####################] 100%" in draws[-1]  # the finished layer stays visible
    assert lines[-2:] == ["\rsuccess\x1b[K", ""]


class _FailingPull(http.server.BaseHTTPRequestHandler):
    """Streams two progress events, then Ollama's in-stream error."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.end_headers()
        for event in ({"status": "pulling manifest"},
                      {"status": "pulling 0123456789ab", "digest": "sha256:0123", "total": 1000,
                       "completed": 10},
                      {"error": "max retries exceeded: unexpected EOF"}):
            self.wfile.write(json.dumps(event).encode() + b"\n")
            self.wfile.flush()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture()
def failing_pull_port() -> Iterator[int]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FailingPull)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield int(srv.server_address[1])
    srv.shutdown()
    srv.server_close()


def test_pull_in_stream_error_is_a_one_line_exit_1(failing_pull_port: int, tmp_path: Path) -> None:
    events: list[dict[str, Any]] = []
    with pytest.raises(AiError) as info:
        for e in OllamaClient(f"http://127.0.0.1:{failing_pull_port}").pull("m"):
            events.append(e)
    assert [e["status"] for e in events] == ["pulling manifest", "pulling 0123456789ab"]
    assert info.value.code == "ollama.pull_failed"

    res = run_cli(write_config(tmp_path / "c.toml", failing_pull_port), "models", "pull", "m")
    assert res.returncode == 1
    assert res.stdout == ""
    assert res.stderr.splitlines() == [
        "pulling manifest",
        "pulling 0123456789ab (1.0 kB)",
        "ai-server: error: pulling m failed: max retries exceeded: unexpected EOF (hint: check "
        "the model name on ollama.com/library and the machine's internet connection and disk "
        "space)",
    ]


def test_pull_cut_mid_stream_is_reported(sim: OllamaSimulator, config: Path) -> None:
    sim.close_after_chunks = 3
    res = run_cli(config, "models", "pull", "tinyllama:1.1b")
    assert res.returncode == 5
    last = res.stderr.splitlines()[-1]
    assert last.startswith("ai-server: error: Ollama at 127.0.0.1:")
    assert "during the pull" in last and "Traceback" not in res.stderr


def test_pull_ctrl_c_stops_cleanly_with_130(sim: OllamaSimulator, config: Path) -> None:
    sim.chunk_gap = 5.0  # a slow download: seconds between progress events
    proc = subprocess.Popen(argv(config, "models", "pull", "tinyllama:1.1b"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            preexec_fn=default_sigint)
    assert proc.stderr is not None
    assert proc.stderr.readline() == "pulling manifest\n"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 130
    assert err.strip() == "ai-server: interrupted" and out == ""
    assert sim.wait_for_disconnect(timeout=10)  # the stream was closed, so Ollama stops too


# -- warm / unload --------------------------------------------------------------------------------


def test_warm_preloads_forever_with_the_given_context(sim: OllamaSimulator, config: Path) -> None:
    res = run_cli(config, "models", "warm", "--context-length", "32768", "qwen3-coder:30b",
                  "--json")
    assert res.returncode == 0, res.stderr
    assert sim.requests[-1].path == "/api/ps"  # details fetched after the load
    assert requests_to(sim, "/api/generate")[-1] == {
        "model": "qwen3-coder:30b", "keep_alive": -1, "stream": False,
        "options": {"num_ctx": 32768}}
    assert sim.model_loads == [("qwen3-coder:30b", 32768)]
    env = envelope(res)
    assert env["command"] == "models warm" and env["ok"] is True
    data = env["data"]
    assert (data["context_length"], data["keep_alive"], data["warmed"], data["failed"]) == \
        (32768, -1, 1, 0)
    assert data["models"][0]["context_length"] == 32768
    (entry,) = OllamaClient(sim.url).ps()
    assert entry["name"] == "qwen3-coder:30b" and entry["context_length"] == 32768
    assert datetime.fromisoformat(entry["expires_at"]).year > 2200  # Ollama's "forever"


def test_warm_default_context_matches_the_clients_so_no_reload(sim: OllamaSimulator,
                                                               config: Path) -> None:
    sim.default_context_length = 65536  # the service's OLLAMA_CONTEXT_LENGTH
    res = run_cli(config, "models", "warm", "llama3.2:3b")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0].startswith("ok    llama3.2:3b  loaded in ")
    assert "context 65536, kept loaded until unloaded" in res.stdout
    help_text = " ".join(run_cli(config, "models", "warm", "--help").stdout.split())
    assert "--context-length N" in help_text and "65536 unless changed" in help_text
    # a client request (no num_ctx on /v1) gets the server default: the warm runner is reused
    import requests

    r = requests.post(sim.url + "/v1/chat/completions", timeout=10, json={
        "model": "llama3.2:3b", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200
    assert sim.model_loads == [("llama3.2:3b", 65536)]


def test_warm_continues_past_an_unknown_model(sim: OllamaSimulator, config: Path) -> None:
    res = run_cli(config, "models", "warm", "nope:1b", "gemma3:1b")
    assert res.returncode == 1
    assert res.stdout.splitlines() == [
        "FAIL  nope:1b  model 'nope:1b' is not on this machine "
        "(hint: run `ai-server models pull nope:1b`)",
        res.stdout.splitlines()[1],
        "warmed 1 of 2 models",
    ]
    assert res.stdout.splitlines()[1].startswith("ok    gemma3:1b  loaded in ")
    assert sim.loaded_models() == {"gemma3:1b": 32768}  # capped at the model's own maximum

    res = run_cli(config, "models", "warm", "nope:1b", "gemma3:1b", "--json")
    assert res.returncode == 1
    env = envelope(res)
    assert env["ok"] is False
    assert env["errors"] == [{"code": "ollama.model_not_found",
                              "message": "nope:1b: model 'nope:1b' is not on this machine",
                              "hint": "run `ai-server models pull nope:1b`"}]
    assert [m["ok"] for m in env["data"]["models"]] == [False, True]


def test_warm_without_names_uses_loaded_and_configured(sim: OllamaSimulator,
                                                       tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", sim.port,
                          '\n[ollama]\nwarm = ["gemma3:1b", "llama3.2:3b"]\n'
                          "context_length = 8192\n")
    OllamaClient(sim.url).preload("llama3.2:3b", keep_alive="5m", num_ctx=4096)
    sim.clear()
    res = run_cli(config, "models", "warm", "--json")
    assert res.returncode == 0, res.stderr
    assert [m["model"] for m in envelope(res)["data"]["models"]] == ["llama3.2:3b", "gemma3:1b"]
    assert sim.model_loads == [("llama3.2:3b", 8192), ("gemma3:1b", 8192)]
    assert all(r["keep_alive"] == -1 and r["options"] == {"num_ctx": 8192}
               for r in requests_to(sim, "/api/generate"))


def test_warm_with_nothing_to_do(config: Path) -> None:
    res = run_cli(config, "models", "warm")
    assert res.returncode == 1
    assert res.stderr.startswith("ai-server: error: no models to warm (hint: name them")


def test_unload(sim: OllamaSimulator, config: Path) -> None:
    assert run_cli(config, "models", "warm", "llama3.2:3b").returncode == 0
    res = run_cli(config, "models", "unload", "llama3.2:3b", "--json")
    assert res.returncode == 0, res.stderr
    assert envelope(res)["data"] == {"model": "llama3.2:3b", "was_loaded": True}
    assert requests_to(sim, "/api/generate")[-1] == {"model": "llama3.2:3b", "keep_alive": 0,
                                                     "stream": False}
    assert OllamaClient(sim.url).ps() == []
    again = run_cli(config, "models", "unload", "llama3.2:3b")
    assert (again.returncode, again.stdout) == (0, "llama3.2:3b was not loaded\n")
    missing = run_cli(config, "models", "unload", "nope")
    assert missing.returncode == 1
    assert missing.stderr == ("ai-server: error: model 'nope' is not on this machine "
                              "(hint: see `ai-server models list`)\n")
