"""Small HTTP helpers over requests (imported lazily), with explicit timeouts.

Network failures become AiError naming what was unreachable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aicommon.errors import AiError, ExitCode

DEFAULT_TIMEOUT = (3.05, 30.0)  # (connect, read) seconds


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        import json

        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise AiError(f"expected JSON, got {self.body[:80]!r}", code="http.bad_json") from exc

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def request(
    method: str,
    url: str,
    *,
    json_body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    what: str | None = None,
) -> HttpResponse:
    """One HTTP request; any status is returned, only transport failures raise."""
    import requests

    label = what or url
    try:
        resp = requests.request(method, url, json=json_body, headers=headers, timeout=timeout,
                                allow_redirects=False)
    except requests.exceptions.ConnectTimeout as exc:
        raise AiError(f"{label} did not accept a connection within {timeout[0]:g} s",
                      "check the address and that the service is running",
                      code="http.connect_timeout", exit_code=ExitCode.UNAVAILABLE) from exc
    except requests.exceptions.ReadTimeout as exc:
        raise AiError(f"{label} accepted the connection but sent no answer within "
                      f"{timeout[1]:g} s",
                      "the service is up but slow or stuck", code="http.read_timeout",
                      exit_code=ExitCode.UNAVAILABLE) from exc
    except requests.exceptions.ConnectionError as exc:
        code, why = connection_failure(exc)
        raise AiError(f"cannot reach {label}: {why}" if code != "http.garbage"
                      else f"{label} {why}",
                      "check the address and that the service is running"
                      if code != "http.garbage" else "check the port: is this the gateway?",
                      code=code, exit_code=ExitCode.UNAVAILABLE) from exc
    except requests.exceptions.RequestException as exc:
        raise AiError(f"request to {label} failed: {exc}", code="http.failed",
                      exit_code=ExitCode.UNAVAILABLE) from exc
    return HttpResponse(resp.status_code, dict(resp.headers), resp.content)


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and everything it wraps (requests → urllib3 → OSError / http.client)."""
    seen: list[BaseException] = []
    todo: list[object] = [exc]
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or any(item is s for s in seen):
            continue
        seen.append(item)
        todo += [item.__cause__, item.__context__, getattr(item, "reason", None), *item.args]
    return seen


def connection_failure(exc: BaseException) -> tuple[str, str]:
    """(code, words) for a failed connection: refused, closed without an answer, not HTTP
    (TLS or another protocol on that port), or a name that does not resolve."""
    import http.client
    import socket

    chain = _chain(exc)
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return "http.refused", "connection refused (nothing listens on that port)"
    if any(isinstance(e, socket.gaierror) for e in chain) or any(
            "Name or service not known" in str(e) or "nodename nor servname" in str(e)
            for e in chain):
        return "http.dns", "the name does not resolve"
    bad = next((e for e in chain if isinstance(e, http.client.BadStatusLine)
                and not isinstance(e, http.client.RemoteDisconnected)), None)
    if bad is not None:
        start = str(bad.args[0] if bad.args else bad)[:24]
        hint = " (it looks like TLS)" if start.startswith("\x16\x03") or "\x15\x03" in start \
            else ""
        return "http.garbage", f"answered with something that is not HTTP{hint}: {start!r}"
    if any(isinstance(e, (http.client.RemoteDisconnected, ConnectionResetError))
           for e in chain):
        return "http.closed", "the server accepted the connection and closed it without answering"
    return "http.unreachable", "connection failed"


def get_json(url: str, *, timeout: tuple[float, float] = DEFAULT_TIMEOUT,
             what: str | None = None) -> Any:
    resp = request("GET", url, timeout=timeout, what=what)
    if resp.status != 200:
        raise AiError(f"{what or url} answered HTTP {resp.status}", code="http.status",
                      exit_code=ExitCode.UNAVAILABLE)
    return resp.json()
