"""Run by the SDKs' own Python (realclients.sdk_python()): each call a user of the openai,
anthropic and ollama SDKs makes, with what the user sees printed as one JSON document.

    python sdk_calls.py openai|anthropic|ollama BASE_URL API_KEY MODEL EMBED_MODEL

Stdlib + the SDKs only (this file runs outside the project's venv). Errors are caught and
reported the way the SDK raises them (class name, status, message), never as a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}},
           "required": ["city"]}


def attempt(out: dict[str, Any], name: str, fn: Callable[[], Any]) -> None:
    try:
        out[name] = {"ok": True, "value": fn()}
    except Exception as exc:  # what the user sees: the SDK's exception
        out[name] = {"ok": False, "error": type(exc).__name__,
                     "status": getattr(exc, "status_code", None),
                     "message": str(exc)[:300]}


def openai_calls(base: str, key: str, model: str, embed: str) -> dict[str, Any]:
    import openai  # type: ignore[import-not-found]  # only in the SDKs venv

    client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0)
    out: dict[str, Any] = {}
    attempt(out, "models", lambda: sorted(m.id for m in client.models.list()))
    attempt(out, "chat", lambda: client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}]).choices[0].message.content)

    def stream() -> list[Any]:
        chunks = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], stream=True,
            stream_options={"include_usage": True})
        return [c.choices[0].delta.content if c.choices else "usage" for c in chunks]

    attempt(out, "stream", stream)

    def tool() -> Any:
        msg = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "use get_weather"}],
            tools=[{"type": "function", "function": {"name": "get_weather",
                                                     "parameters": WEATHER}}]).choices[0]
        call = msg.message.tool_calls[0] if msg.message.tool_calls else None
        return [msg.finish_reason, call.function.name if call else None,
                json.loads(call.function.arguments) if call else None]

    attempt(out, "tool", tool)
    attempt(out, "embeddings", lambda: len(client.embeddings.create(
        model=embed, input=["a", "b"]).data))
    attempt(out, "responses", lambda: client.responses.create(model=model, input="hi")
            .output_text)
    attempt(out, "missing_model", lambda: client.chat.completions.create(
        model="no-such-model:1b", messages=[{"role": "user", "content": "hi"}]))
    return out


def anthropic_calls(base: str, key: str, model: str, embed: str) -> dict[str, Any]:
    import anthropic  # type: ignore[import-not-found]  # only in the SDKs venv

    client = anthropic.Anthropic(base_url=base, auth_token=key, api_key=None, max_retries=0)
    out: dict[str, Any] = {}
    attempt(out, "message", lambda: [b.type for b in client.messages.create(
        model=model, max_tokens=64, messages=[{"role": "user", "content": "hi"}]).content])

    def stream() -> Any:
        with client.messages.stream(model=model, max_tokens=64,
                                    messages=[{"role": "user", "content": "hi"}]) as s:
            text = "".join(s.text_stream)
            final = s.get_final_message()
        return [text, final.stop_reason]

    attempt(out, "stream", stream)

    def tool() -> Any:
        msg = client.messages.create(
            model=model, max_tokens=256,
            messages=[{"role": "user", "content": "use get_weather"}],
            tools=[{"name": "get_weather", "input_schema": WEATHER}])
        return [msg.stop_reason, [(b.type, getattr(b, "name", None)) for b in msg.content]]

    attempt(out, "tool", tool)
    attempt(out, "missing_model", lambda: client.messages.create(
        model="no-such-model:1b", max_tokens=16, messages=[{"role": "user", "content": "hi"}]))
    attempt(out, "count_tokens", lambda: client.messages.count_tokens(
        model=model, messages=[{"role": "user", "content": "hi"}]))
    return out


def ollama_calls(base: str, key: str, model: str, embed: str) -> dict[str, Any]:
    import ollama  # type: ignore[import-not-found]  # only in the SDKs venv

    client = ollama.Client(host=base, headers={"Authorization": f"Bearer {key}"})
    out: dict[str, Any] = {}
    attempt(out, "list", lambda: sorted(m.model or "" for m in client.list().models))
    attempt(out, "show", lambda: list(client.show(model).capabilities or []))
    attempt(out, "chat", lambda: client.chat(
        model=model, messages=[{"role": "user", "content": "hi"}]).message.content)
    attempt(out, "chat_stream", lambda: len(list(client.chat(
        model=model, messages=[{"role": "user", "content": "hi"}], stream=True))))
    attempt(out, "generate", lambda: client.generate(model=model, prompt="hi").response)
    attempt(out, "embed", lambda: len(client.embed(model=embed, input=["a", "b"]).embeddings))
    attempt(out, "ps", lambda: [m.model for m in client.ps().models])
    attempt(out, "pull", lambda: client.pull("evil:latest").status)
    attempt(out, "delete", lambda: client.delete(model).status)
    attempt(out, "copy", lambda: client.copy(model, "stolen:latest").status)
    return out


def main() -> None:
    kind, base, key, model, embed = sys.argv[1:6]
    calls = {"openai": openai_calls, "anthropic": anthropic_calls, "ollama": ollama_calls}
    print(json.dumps(calls[kind](base, key, model, embed)))


if __name__ == "__main__":
    main()
