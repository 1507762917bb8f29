from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from aicommon import httpclient, resources
from aicommon.errors import AiError, ExitCode
from aicommon.paths import client_paths, server_paths

REPO = Path(__file__).resolve().parents[2]


def test_home_override_puts_everything_under_one_root(isolated_home: Path) -> None:
    p = server_paths()
    root = isolated_home / "ai-server"
    assert (p.config_dir, p.state_dir, p.log_dir) == (root / "config", root / "state",
                                                        root / "logs")
    assert p.config_file == root / "config" / "config.toml"
    assert p.source == "AI_SERVER_HOME"
    assert client_paths().config_dir == isolated_home / "ai-client" / "config"


def test_platform_dirs_without_override(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AI_CLIENT_HOME")
    p = client_paths()
    assert p.source == "platform"
    assert str(p.config_dir).startswith(str(isolated_home))
    assert p.config_dir.name == "ai-client"


def test_bundled_files_match_the_share_directory() -> None:
    on_disk = sorted(
        str(f.relative_to(REPO / "share")) for f in (REPO / "share").rglob("*")
        if f.is_file() and f.name != "__init__.py" and "__pycache__" not in f.parts
    )
    assert resources.list_files() == on_disk


def test_missing_bundled_file_is_a_domain_error() -> None:
    with pytest.raises(AiError) as info:
        resources.read_text("nope/missing.txt")
    assert "reinstall" in (info.value.hint or "")


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"version": "0.32.15"}' if self.path == "/ok" else b"nope"
        self.send_response(200 if self.path == "/ok" else 500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture()
def local_server() -> Iterator[str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_get_json_ok(local_server: str) -> None:
    assert httpclient.get_json(local_server + "/ok") == {"version": "0.32.15"}


def test_http_status_error(local_server: str) -> None:
    with pytest.raises(AiError) as info:
        httpclient.get_json(local_server + "/bad", what="the test server")
    assert "the test server answered HTTP 500" in info.value.message


def test_unreachable_names_what_was_unreachable() -> None:
    import socket

    with socket.socket() as s:  # find a free port, then leave it closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(AiError) as info:
        httpclient.request("GET", f"http://127.0.0.1:{port}/", what="Ollama on 127.0.0.1")
    assert info.value.message.startswith("cannot reach Ollama on 127.0.0.1")
    assert info.value.exit_code == ExitCode.UNAVAILABLE
