from __future__ import annotations

import re
from pathlib import Path

from aiserver.allowlist import ENTRIES, NEVER, entries_for, is_allowed, markdown_table

REPO = Path(__file__).resolve().parents[2]


def pairs(profile: str) -> set[tuple[str, str]]:
    return {(e.method, e.path) for e in ENTRIES if e.profile == profile}


def test_default_profile_is_exactly_the_contract() -> None:
    assert pairs("default") == {
        ("GET", "/"), ("HEAD", "/"), ("GET", "/api/version"), ("HEAD", "/api/version"),
        ("GET", "/api/tags"), ("HEAD", "/api/tags"), ("POST", "/api/show"), ("GET", "/api/ps"),
        ("GET", "/v1/models"), ("GET", "/v1/models/{model}"), ("POST", "/v1/chat/completions"),
        ("POST", "/v1/completions"), ("POST", "/v1/embeddings"), ("POST", "/v1/responses"),
        ("POST", "/v1/messages"),
    }


def test_native_profile_adds_inference_routes_only() -> None:
    assert pairs("native") == {("POST", "/api/chat"), ("POST", "/api/generate"),
                               ("POST", "/api/embed"), ("POST", "/api/embeddings")}
    assert len(entries_for(["native"])) == len(ENTRIES)
    assert len(entries_for([])) == len(pairs("default"))


def test_never_routes_are_not_in_any_profile() -> None:
    exposed = {(e.method, e.path) for e in ENTRIES}
    for method, path in NEVER:
        assert (method, path) not in exposed
        concrete = path.replace("{digest}", "sha256-abc").replace("{key}", "k1")
        assert not is_allowed(method, concrete, ["default", "native"])


def test_reference_semantics() -> None:
    assert is_allowed("POST", "/v1/messages", [])
    assert not is_allowed("POST", "/v1/messages/count_tokens", [])
    assert not is_allowed("post", "/v1/messages", [])
    assert not is_allowed("GET", "/v1/messages", [])
    assert is_allowed("GET", "/v1/models/qwen3-coder:30b", [])
    assert not is_allowed("GET", "/v1/models/a/b", [])
    assert not is_allowed("GET", "/v1/models/", [])
    assert not is_allowed("GET", "/api/%74ags", [])
    assert not is_allowed("POST", "/api/chat", [])
    assert is_allowed("POST", "/api/chat", ["native"])


def test_parameterised_routes_are_one_strict_segment() -> None:
    for e in ENTRIES:
        if e.regex is not None:
            assert e.regex.startswith("^") and e.regex.endswith("$")
            assert "/" not in e.regex.split("/")[-1].replace("$", "")
            assert not re.fullmatch(e.regex.strip("^$"), e.path.replace("{model}", "a%2Fb"))


def test_readme_endpoint_table_is_generated_from_the_allowlist() -> None:
    readme = (REPO / "README.md").read_text()
    start, end = "<!-- allowlist:begin -->", "<!-- allowlist:end -->"
    assert start in readme and end in readme
    block = readme.split(start, 1)[1].split(end, 1)[0].strip()
    assert block == markdown_table(), "README endpoint table drifted: regenerate it with " \
        "`python -c 'from aiserver.allowlist import markdown_table; print(markdown_table())'`"


def test_cheap_routes_are_the_read_only_ones() -> None:
    """The routes with their own backend (issue 12 §10): reads that never run a model."""
    from aiserver.allowlist import ENTRIES, STREAMING_PATHS

    cheap = {(e.method, e.path) for e in ENTRIES if e.cheap}
    assert cheap == {("GET", "/"), ("HEAD", "/"), ("GET", "/api/version"),
                     ("HEAD", "/api/version"), ("GET", "/api/tags"), ("HEAD", "/api/tags"),
                     ("GET", "/api/ps"), ("GET", "/v1/models"), ("GET", "/v1/models/{model}"),
                     ("POST", "/api/show")}
    assert not any(path in STREAMING_PATHS for _, path in cheap)
