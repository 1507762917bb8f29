"""Transport failures named for what they are (issue 17 §3): a server that accepts and stays
silent, one that closes at once, one that speaks TLS or another protocol, and a closed port.
Every server here is a raw socket on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from aicommon.errors import AiError, ExitCode

TLS_ALERT = b"\x15\x03\x01\x00\x02\x02\x46"  # what a TLS server sends to a plain-HTTP hello


class RawServer:
    """Accepts connections on 127.0.0.1 and behaves as `kind` says."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)  # "silent": kept open, never answered
            if self.kind == "silent":
                continue
            conn.recv(65536)
            if self.kind == "ssh":
                conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
            elif self.kind == "tls":
                conn.sendall(TLS_ALERT)
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.fixture()
def raw_server(request: pytest.FixtureRequest) -> Iterator[RawServer]:
    srv = RawServer(request.param)
    yield srv
    srv.close()


@pytest.fixture(autouse=True)
def no_tailscale(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setenv("AI_TAILSCALE", "/nonexistent/tailscale")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("raw_server, code, words", [
    ("silent", "probe.no_answer", "accepted the connection but sent no answer within 0.5 s"),
    ("close", "probe.not_http", "accepted the connection and closed it without answering"),
    ("ssh", "probe.not_http", "answered with something that is not HTTP: 'SSH-2.0-OpenSSH"),
    ("tls", "probe.not_http", "not HTTP (it looks like TLS)"),
], indirect=["raw_server"])
def test_setup_probe_names_the_real_failure(raw_server: RawServer, code: str, words: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from aiclient import discovery

    monkeypatch.setattr(discovery, "PROBE_TIMEOUT", (1.0, 0.5))
    with pytest.raises(AiError) as info:
        discovery.probe("127.0.0.1", raw_server.port, "")
    assert info.value.code == code and words in info.value.message
    assert "refused" not in info.value.message
    assert info.value.exit_code == ExitCode.UNAVAILABLE


def test_setup_probe_on_a_closed_port_says_refused() -> None:
    from aiclient import discovery

    with pytest.raises(AiError) as info:
        discovery.probe("127.0.0.1", closed_port(), "")
    assert info.value.code == "probe.refused" and "refused" in info.value.message


@pytest.mark.parametrize("raw_server, words", [
    ("silent", "gave no HTTP answer: connected, but no answer within 0.5 s"),
    ("close", "gave no HTTP answer: the server accepted the connection and closed it"),
    ("tls", "gave no HTTP answer: answered with something that is not HTTP (it looks like TLS)"),
], indirect=["raw_server"])
def test_ai_client_test_says_how_long_it_really_waited(raw_server: RawServer, words: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from aiclient import conformance
    from aiclient.conformance import suite

    monkeypatch.setattr(suite, "INFO_TIMEOUT", 0.5)
    with pytest.raises(AiError) as info:
        conformance.run_suite(f"127.0.0.1:{raw_server.port}", "k", None, True)
    assert words in info.value.message, info.value.message
    assert "300" not in info.value.message and info.value.code == "test.no_answer"


def test_ai_client_test_on_a_closed_port_says_refused() -> None:
    from aiclient import conformance

    with pytest.raises(AiError) as info:
        conformance.run_suite(f"127.0.0.1:{closed_port()}", "k", None, True)
    assert info.value.message.endswith("connection refused (nothing listens on that port)")
    assert info.value.code == "test.unreachable"


@pytest.mark.parametrize("raw_server", ["silent"], indirect=True)
def test_http_helper_read_timeout_wording(raw_server: RawServer) -> None:
    from aicommon.httpclient import request

    with pytest.raises(AiError) as info:
        request("GET", f"http://127.0.0.1:{raw_server.port}/", timeout=(1.0, 0.3), what="X")
    assert info.value.message == "X accepted the connection but sent no answer within 0.3 s"
