"""A small client for the Ollama daemon on loopback (native API, REFERENCE.md §1.5).

Only ai-server uses it, and only towards `settings.gateway.upstream`. requests is imported
inside the calls (fast CLI start); every failure a user can cause becomes an AiError.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

from aicommon import httpclient
from aicommon.errors import AiError, ExitCode

if TYPE_CHECKING:
    import requests

    from aiserver.settings import Settings

DEFAULT_BASE_URL = "http://127.0.0.1:11434"
START_HINT = ("start Ollama (`brew services start ollama` or `ollama serve`) and check "
              "[gateway] upstream in the settings")


def _pull_hint(model: str) -> str:
    return f"run `ai-server models pull {model}`"


class OllamaClient:
    """Ollama's native API on loopback: list, show, pull, load and unload models."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        connect_timeout: float = 3.05,
        read_timeout: float = 30.0,
        *,
        load_timeout: float = 600.0,  # loading a big model can take minutes (OLLAMA_LOAD_TIMEOUT)
        stream_timeout: float = 300.0,  # longest silence tolerated inside a pull stream
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.load_timeout = load_timeout
        self.stream_timeout = stream_timeout

    @property
    def label(self) -> str:
        return f"Ollama at {self.base_url.split('://', 1)[-1]}"

    # -- plumbing -------------------------------------------------------------------------------

    def _call(self, method: str, path: str, body: Any = None, *, read_timeout: float | None = None,
              model: str | None = None, missing_hint: str | None = None) -> Any:
        """One JSON request; HTTP errors become AiError (404 on a model: how to get it)."""
        timeout = (self.connect_timeout, self.read_timeout if read_timeout is None
                   else read_timeout)
        try:
            resp = httpclient.request(method, self.base_url + path, json_body=body,
                                      timeout=timeout, what=self.label)
        except AiError as err:
            if err.code in ("http.unreachable", "http.refused", "http.connect_timeout"):
                raise AiError(err.message, START_HINT, code="ollama.unreachable",
                              exit_code=ExitCode.UNAVAILABLE) from err
            raise
        if resp.status != 200:
            raise http_error(resp.status, resp.body, model=model, missing_hint=missing_hint,
                             label=self.label)
        return resp.json()

    # -- read-only --------------------------------------------------------------------------------

    def version(self) -> str:
        data = self._call("GET", "/api/version")
        return str(data.get("version", "")) if isinstance(data, dict) else ""

    def tags(self) -> list[dict[str, Any]]:
        """The models on disk (`GET /api/tags`)."""
        return _models_of(self._call("GET", "/api/tags"))

    def ps(self) -> list[dict[str, Any]]:
        """The models loaded in memory now (`GET /api/ps`), with expires_at and context_length."""
        return _models_of(self._call("GET", "/api/ps"))

    def show(self, model: str) -> dict[str, Any]:
        data = self._call("POST", "/api/show", {"model": model}, model=model)
        if not isinstance(data, dict):
            raise AiError(f"{self.label} sent an unexpected /api/show answer",
                          code="ollama.bad_answer")
        return data

    def context_length(self, model: str) -> int | None:
        """The context length the model was trained for (`<arch>.context_length`)."""
        return trained_context_length(self.show(model))

    # -- model management ---------------------------------------------------------------------

    def pull(self, model: str) -> Generator[dict[str, Any], None, None]:
        """Stream `POST /api/pull` progress events.

        An in-stream `{"error": ..}` raises AiError after the events before it were yielded;
        a stream that ends without `success` raises too. Closing the iterator closes the
        connection (Ollama then stops the download).
        """
        import requests

        url = self.base_url + "/api/pull"
        try:
            resp = requests.post(url, json={"model": model, "stream": True}, stream=True,
                                 timeout=(self.connect_timeout, self.stream_timeout),
                                 allow_redirects=False)
        except requests.exceptions.RequestException as exc:
            raise self._transport_error(exc, streaming=False) from exc
        try:
            if resp.status_code != 200:
                raise http_error(resp.status_code, resp.content, model=model, label=self.label)
            yield from self._pull_events(resp, model)
        finally:
            resp.close()

    def _pull_events(self, resp: requests.Response, model: str) -> Iterator[dict[str, Any]]:
        import requests

        finished = False
        try:
            for raw in resp.iter_lines():
                if not raw.strip():
                    continue
                try:
                    event = json.loads(raw)
                except ValueError:
                    raise AiError(f"{self.label} sent a line that is not JSON during the pull: "
                                  f"{raw[:80]!r}", code="ollama.bad_answer") from None
                if not isinstance(event, dict):
                    continue
                if "error" in event:
                    raise AiError(f"pulling {model} failed: {event['error']}",
                                  "check the model name on ollama.com/library and the "
                                  "machine's internet connection and disk space",
                                  code="ollama.pull_failed")
                yield event
                if event.get("status") == "success":
                    finished = True
        except requests.exceptions.RequestException as exc:
            raise self._transport_error(exc, streaming=True) from exc
        if not finished:
            raise AiError(f"{self.label} ended the pull of {model} before it succeeded",
                          f"run `ai-server models pull {model}` again (it resumes)",
                          code="ollama.pull_incomplete")

    def _transport_error(self, exc: Exception, *, streaming: bool) -> AiError:
        """requests' exceptions, worded for the phase they happened in."""
        import requests

        if not streaming and isinstance(exc, requests.exceptions.ConnectionError |
                                        requests.exceptions.ConnectTimeout):
            return AiError(f"cannot reach {self.label}: connection failed", START_HINT,
                           code="ollama.unreachable", exit_code=ExitCode.UNAVAILABLE)
        if isinstance(exc, requests.exceptions.Timeout) or "timed out" in str(exc):
            message = f"{self.label} went silent for {self.stream_timeout:g} s during the pull"
        elif isinstance(exc, requests.exceptions.ConnectionError |
                        requests.exceptions.ChunkedEncodingError):
            message = f"{self.label} closed the connection during the pull"
        else:
            message = f"the pull from {self.label} failed: {exc}"
        return AiError(message, "check Ollama's log, then retry", code="ollama.stream_broken",
                       exit_code=ExitCode.UNAVAILABLE)

    def preload(self, model: str, *, keep_alive: int | str = -1,
                num_ctx: int | None = None) -> dict[str, Any]:
        """Load a model into memory and keep it there (`keep_alive` -1: until unloaded).

        Pass the context length the clients will get: a runner whose `num_ctx` differs from a
        later request's is reloaded by Ollama. Embedding-only models cannot `generate`; they
        are loaded through `/api/embed` with no input instead.
        """
        body: dict[str, Any] = {"model": model, "keep_alive": keep_alive, "stream": False}
        if num_ctx is not None:
            body["options"] = {"num_ctx": num_ctx}
        try:
            data = self._call("POST", "/api/generate", body, read_timeout=self.load_timeout,
                              model=model)
        except AiError as err:
            if err.code != "ollama.unsupported":
                raise
            body.pop("stream")
            data = self._call("POST", "/api/embed", body, read_timeout=self.load_timeout,
                              model=model)
            if isinstance(data, dict):
                data.setdefault("done_reason", "load")
        return data if isinstance(data, dict) else {}

    def unload(self, model: str) -> dict[str, Any]:
        """Free the model's memory now (`keep_alive` 0)."""
        data = self._call("POST", "/api/generate",
                          {"model": model, "keep_alive": 0, "stream": False},
                          model=model, missing_hint="see `ai-server models list`")
        return data if isinstance(data, dict) else {}


def _models_of(data: Any) -> list[dict[str, Any]]:
    models = data.get("models") if isinstance(data, dict) else None
    return [m for m in models if isinstance(m, dict)] if isinstance(models, list) else []


def trained_context_length(show: dict[str, Any]) -> int | None:
    """`model_info["<arch>.context_length"]` from an /api/show answer, if present."""
    info = show.get("model_info")
    if not isinstance(info, dict):
        return None
    arch = info.get("general.architecture")
    value = info.get(f"{arch}.context_length") if isinstance(arch, str) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def error_message(body: bytes) -> str:
    """Ollama's `{"error": "..."}` text, or the start of whatever the body was."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, str):
            return err
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])
    return " ".join(body[:200].decode("utf-8", "replace").split()) or "(empty body)"


def http_error(status: int, body: bytes, *, model: str | None = None,
               missing_hint: str | None = None, label: str = "Ollama") -> AiError:
    """The AiError for a non-200 answer from Ollama's native API."""
    message = error_message(body)
    if status == 404 and model is not None:
        text = (f"model {model!r} is not on this machine" if "not found" in message
                else f"{label}: {message}")
        return AiError(text, missing_hint or _pull_hint(model), code="ollama.model_not_found")
    if status == 400 and "does not support" in message:
        return AiError(f"{label}: {message}", code="ollama.unsupported")
    if status == 503:
        return AiError(f"{label} is busy: {message}", "retry in a moment",
                       code="ollama.busy", exit_code=ExitCode.UNAVAILABLE)
    if status == 403:
        return AiError(f"{label} refused the request (HTTP 403): {message}",
                       "Ollama rejects Host headers that are not loopback; check "
                       "[gateway] upstream", code="ollama.forbidden",
                       exit_code=ExitCode.UNAVAILABLE)
    return AiError(f"{label} answered HTTP {status}: {message}", code="ollama.http_error")


def base_url_for(upstream: str) -> str:
    """'127.0.0.1:11434' / '[::1]:11434' → an http:// base URL."""
    from aiserver.settings import split_hostport

    host, port = split_hostport(upstream)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def client_for(settings: Settings) -> OllamaClient:
    """The client for the Ollama behind this gateway (`[gateway] upstream`, loopback)."""
    return OllamaClient(base_url_for(settings.gateway.upstream))
