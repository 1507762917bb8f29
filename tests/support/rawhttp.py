"""HTTP over raw sockets: send exact bytes, read one response (tests need byte control)."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RawResponse:
    status: int  # 0 when the connection closed (or timed out) without a status line
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    raw: bytes

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


def _dechunk(data: bytes) -> tuple[bytes, bool]:
    out, pos = bytearray(), 0
    while True:
        end = data.find(b"\r\n", pos)
        if end < 0:
            return bytes(out), False
        size = int(data[pos:end].split(b";")[0] or b"0", 16)
        if size == 0:
            return bytes(out), data.find(b"\r\n\r\n", end) >= 0 or data.endswith(b"0\r\n\r\n")
        start = end + 2
        if len(data) < start + size + 2:
            return bytes(out), False
        out += data[start:start + size]
        pos = start + size + 2


def parse_response(data: bytes, head_only: bool = False) -> tuple[RawResponse | None, bool]:
    """(response, complete) from the bytes read so far."""
    sep = data.find(b"\r\n\r\n")
    if sep < 0:
        return None, False
    head = data[:sep].decode("latin-1").split("\r\n")
    parts = head[0].split(" ", 2)
    try:
        status = int(parts[1])
    except (IndexError, ValueError):
        return RawResponse(0, "", [], b"", data), True
    reason = parts[2] if len(parts) > 2 else ""
    headers = [(k.strip(), v.strip()) for k, _, v in (h.partition(":") for h in head[1:])]
    rest = data[sep + 4:]
    hmap = {k.lower(): v for k, v in headers}
    if head_only or status in (204, 304) or 100 <= status < 200:
        return RawResponse(status, reason, headers, b"", data), True
    if "chunked" in hmap.get("transfer-encoding", "").lower():
        body, done = _dechunk(rest)
        return RawResponse(status, reason, headers, body, data), done
    if "content-length" in hmap:
        n = int(hmap["content-length"])
        return RawResponse(status, reason, headers, rest[:n], data), len(rest) >= n
    return RawResponse(status, reason, headers, rest, data), False  # until close


def read_until(sock: socket.socket, timeout: float,
               done: Callable[[bytes], bool] | None = None) -> bytes:
    """Read until `done(data)`, the peer closes or resets, or `timeout` seconds pass."""
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        data += chunk
        if done is not None and done(data):
            break
    return data


def exchange(host: str, port: int, request: bytes, *, timeout: float = 10.0,
             head_only: bool = False) -> RawResponse:
    """Send `request` as-is on a new connection and read one response."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect((host, port))
        except (ConnectionResetError, ConnectionRefusedError):
            return RawResponse(0, "", [], b"", b"")  # refused before any response
        with contextlib.suppress(OSError):  # the server may answer and close before reading all
            sock.sendall(request)
        data = read_until(sock, timeout, lambda d: all(parse_response(d, head_only)))
    resp, _ = parse_response(data, head_only)
    return resp if resp is not None else RawResponse(0, "", [], b"", data)


def error_code(body: bytes) -> str | None:
    """The gateway's refusal code in either dialect: {"error": {"code": …}} (Anthropic and
    OpenAI clients) or Ollama's native {"error": "<message>", "code": …} on /api/*."""
    import json

    doc = json.loads(body)
    err = doc.get("error")
    code = err.get("code") if isinstance(err, dict) else doc.get("code")
    return None if code is None else str(code)


def error_message(body: bytes) -> str:
    import json

    doc = json.loads(body)
    err = doc["error"]
    return str(err["message"] if isinstance(err, dict) else err)


def request_bytes(method: str, target: str, *, host: str = "gateway", body: bytes = b"",
                  headers: list[tuple[str, str]] | None = None, version: str = "HTTP/1.1",
                  close: bool = True) -> bytes:
    lines = [f"{method} {target} {version}", f"Host: {host}"]
    for k, v in headers or []:
        lines.append(f"{k}: {v}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
