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
        raise AiError(f"{label} did not answer within {timeout[1]:g} s",
                      "the service is up but slow or stuck", code="http.read_timeout",
                      exit_code=ExitCode.UNAVAILABLE) from exc
    except requests.exceptions.ConnectionError as exc:
        raise AiError(f"cannot reach {label}: connection failed",
                      "check the address and that the service is running",
                      code="http.unreachable", exit_code=ExitCode.UNAVAILABLE) from exc
    except requests.exceptions.RequestException as exc:
        raise AiError(f"request to {label} failed: {exc}", code="http.failed",
                      exit_code=ExitCode.UNAVAILABLE) from exc
    return HttpResponse(resp.status_code, dict(resp.headers), resp.content)


def get_json(url: str, *, timeout: tuple[float, float] = DEFAULT_TIMEOUT,
             what: str | None = None) -> Any:
    resp = request("GET", url, timeout=timeout, what=what)
    if resp.status != 200:
        raise AiError(f"{what or url} answered HTTP {resp.status}", code="http.status",
                      exit_code=ExitCode.UNAVAILABLE)
    return resp.json()
