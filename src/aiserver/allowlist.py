"""THE allowlist: every (method, path) the gateway forwards to Ollama.

The HAProxy config, `ai-server allowlist`, the audit's probes, the README's endpoint table and
the tests are all derived from ENTRIES. Paths are matched exactly on the raw path (no decoding);
a parameterised route is a strict regex over ONE path segment.
"""

from __future__ import annotations

from dataclasses import dataclass

PROFILES = ("default", "native")

# A model name as one path segment: no '/', no '%', nothing to decode.
MODEL_SEGMENT = "[A-Za-z0-9._:-]+"


@dataclass(frozen=True)
class Entry:
    method: str
    path: str  # exact raw path, or a display pattern with {model} when `regex` is set
    profile: str
    purpose: str
    regex: str | None = None  # anchored regex over the raw path, for parameterised routes
    # a cheap read-only route: its own backend and slots, never queued behind inference
    cheap: bool = False

    @property
    def example_path(self) -> str:
        return self.path.replace("{model}", "qwen3-coder:30b")


def _e(methods: str, path: str, profile: str, purpose: str, regex: str | None = None,
       cheap: bool = False) -> list[Entry]:
    return [Entry(m, path, profile, purpose, regex, cheap) for m in methods.split(",")]


ENTRIES: tuple[Entry, ...] = tuple(
    _e("GET,HEAD", "/", "default", "health check: 'Ollama is running'", cheap=True)
    + _e("GET,HEAD", "/api/version", "default", "server version (compatibility checks)",
         cheap=True)
    + _e("GET,HEAD", "/api/tags", "default", "list local models", cheap=True)
    + _e("POST", "/api/show", "default", "model details: context length, capabilities",
         cheap=True)
    + _e("GET", "/api/ps", "default", "loaded models (read-only)", cheap=True)
    + _e("GET", "/v1/models", "default", "OpenAI: list models", cheap=True)
    + _e("GET", "/v1/models/{model}", "default", "OpenAI: one model",
         regex=f"^/v1/models/{MODEL_SEGMENT}$", cheap=True)
    + _e("POST", "/v1/chat/completions", "default", "OpenAI chat (Aider)")
    + _e("POST", "/v1/completions", "default", "OpenAI legacy completions")
    + _e("POST", "/v1/embeddings", "default", "OpenAI embeddings")
    + _e("POST", "/v1/responses", "default", "OpenAI Responses")
    + _e("POST", "/v1/messages", "default", "Anthropic Messages (Claude Code)")
    + _e("POST", "/api/chat", "native", "native chat (aider ollama_chat/)")
    + _e("POST", "/api/generate", "native", "native generate; also model load/unload")
    + _e("POST", "/api/embed", "native", "native embeddings")
    + _e("POST", "/api/embeddings", "native", "native embeddings (legacy)")
)

# Routes that must never be exposable, whatever the profile (REFERENCE §1.1): model
# management, account, cloud passthrough, cloud status.
NEVER: tuple[tuple[str, str], ...] = (
    ("POST", "/api/pull"), ("POST", "/api/push"), ("POST", "/api/create"),
    ("POST", "/api/copy"), ("POST", "/api/blobs/{digest}"), ("HEAD", "/api/blobs/{digest}"),
    ("DELETE", "/api/delete"), ("POST", "/api/me"), ("POST", "/api/signout"),
    ("DELETE", "/api/user/keys/{key}"), ("POST", "/api/experimental/web_search"),
    ("POST", "/api/experimental/web_fetch"), ("GET", "/api/status"),
)


def entries_for(profiles: list[str] | tuple[str, ...]) -> list[Entry]:
    """The entries enabled by a set of profiles ("default" is always included)."""
    enabled = {"default", *profiles}
    return [e for e in ENTRIES if e.profile in enabled]


def as_rows(entries: list[Entry]) -> list[dict[str, str]]:
    return [{"method": e.method, "path": e.path, "profile": e.profile, "purpose": e.purpose}
            for e in entries]


def markdown_table(entries: list[Entry] | None = None) -> str:
    """The README's endpoint table (a test keeps the README in step with this)."""
    rows = entries if entries is not None else list(ENTRIES)
    merged: dict[tuple[str, str], list[str]] = {}
    for e in rows:  # GET and HEAD of one path share a row
        merged.setdefault((e.path, e.profile), []).append(e.method)
    purpose = {(e.path, e.profile): e.purpose for e in rows}
    lines = ["| method | path | profile | purpose |", "|---|---|---|---|"]
    for (path, profile), methods in merged.items():
        why = purpose[(path, profile)]
        lines.append(f"| {', '.join(methods)} | `{path}` | {profile} | {why} |")
    return "\n".join(lines)


def is_allowed(method: str, raw_path: str, profiles: list[str] | tuple[str, ...]) -> bool:
    """Reference semantics of the gateway's decision, used by tests and the audit."""
    import re

    if any(bad in raw_path for bad in ("%", "..", "//", "\\")):
        return False
    for e in entries_for(profiles):
        if e.method != method:
            continue
        if e.regex is not None:
            if re.fullmatch(e.regex.strip("^$"), raw_path):
                return True
        elif raw_path == e.path:
            return True
    return False


# A minimal valid request body per POST route, for probes (audit, tests, benchmarks).
PROBE_MODEL = "qwen3-coder:30b"
PROBE_EMBED_MODEL = "nomic-embed-text:latest"


def probe_body(path: str, model: str = PROBE_MODEL, embed_model: str = PROBE_EMBED_MODEL,
               stream: bool = False) -> dict[str, object] | None:
    msgs = [{"role": "user", "content": "Say hi."}]
    bodies: dict[str, dict[str, object]] = {
        "/api/show": {"model": model},
        "/v1/chat/completions": {"model": model, "messages": msgs, "stream": stream,
                                 "max_tokens": 16},
        "/v1/completions": {"model": model, "prompt": "Say hi.", "stream": stream,
                            "max_tokens": 16},
        "/v1/embeddings": {"model": embed_model, "input": "hi"},
        "/v1/responses": {"model": model, "input": "Say hi.", "stream": stream,
                          "max_output_tokens": 16},
        "/v1/messages": {"model": model, "max_tokens": 16, "messages": msgs, "stream": stream},
        "/api/chat": {"model": model, "messages": msgs, "stream": stream,
                      "options": {"num_predict": 16}},
        "/api/generate": {"model": model, "prompt": "Say hi.", "stream": stream,
                          "options": {"num_predict": 16}},
        "/api/embed": {"model": embed_model, "input": "hi"},
        "/api/embeddings": {"model": embed_model, "prompt": "hi"},
    }
    return bodies.get(path)


STREAMING_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/messages",
                   "/api/chat", "/api/generate")
