"""A hostile corpus over raw sockets: nothing outside the allowlist ever reaches Ollama.

The corpus (tests/support/hostile_corpus.py) holds several hundred requests: every admin and
native route with every method, encoded and double-encoded paths, dot segments, double slashes,
backslashes, trailing slashes, `;params`, case variants, absolute-form targets, CONNECT/TRACE
and other methods, method-override headers, HTTP/1.0 and odd versions, duplicate Host,
CL/TE conflicts, oversized headers and bodies, NUL and control bytes, very long paths,
pipelining and h2c. Each case carries the statuses the gateway may answer; the simulator's
record then proves that only allowlisted (method, path) pairs arrived, each exactly as sent.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest

from aiserver.allowlist import NEVER, is_allowed
from tests.integration.conftest import GatewayFactory
from tests.integration.test_gateway import forwarded
from tests.support.gatewayproc import GatewayProcess
from tests.support.hostile_corpus import (
    BAD_IN_PATH,
    CASE_HEADER,
    Case,
    Outcome,
    build_corpus,
    h1,
    haproxy_path,
    marker,
    send,
)
from tests.support.ollama_sim import OllamaSimulator
from tests.support.rawhttp import error_code

MAX_BODY = 4096
LIMITS = {"per_source_requests_per_10s": 100000, "per_source_connections": 1000,
          "max_body_bytes": MAX_BODY}
# short, so that the trickling cases (bodies that never finish) answer 408 within `send`'s
# timeout; every other case is sent whole at once
TIMEOUTS = {"http_request": "1s"}
MIN_CASES = 300
REFUSAL_CODES = {403: ("not_exposed", "suspicious_path", "browser_request"),
                 408: ("request_timeout",), 411: ("length_required",),
                 413: ("payload_too_large",), 421: ("misdirected_request",)}
# the gateway's own 400s (the parser's may be HTML on 2.6: only cases naming a code are checked)
GATEWAY_400_CODES = ("body_not_allowed", "bad_target")
NEVER_RES = [re.compile("^" + re.sub(r"\\\{[a-z]+\\\}", "[^/]+", re.escape(p)) + "$")
             for _, p in NEVER]
PROFILE_SETS = [("default",), ("default", "native")]


def run_corpus(gw: GatewayProcess, corpus: Sequence[Case]) -> dict[str, Outcome]:
    return {case.name: send(gw.host, gw.port, case) for case in corpus}


def _native_dialect(case: Case) -> bool | None:
    """Whether the gateway must answer in Ollama's native error shape (its path is /api/*);
    None for HTTP/2 cases (their path sits in HPACK-encoded bytes)."""
    if case.h2:
        return None
    parts = case.raw.split(b"\r\n", 1)[0].split(b" ")
    target = parts[1].decode("latin-1") if len(parts) > 1 else ""
    return haproxy_path(target).startswith("/api/")


def response_problems(case: Case, out: Outcome) -> list[str]:
    problems = []
    if out.status not in case.expect:
        problems.append(f"status {out.status}, expected one of {sorted(case.expect)}"
                        f" {out.body[:160]!r} {out.events[:4]}")
    if tuple(out.statuses[1:]) != case.then:
        problems.append(f"pipelined statuses {out.statuses[1:]}, expected {list(case.then)}")
    for status, ctype, body in zip(out.statuses, out.content_types, out.bodies, strict=True):
        own_400 = status == 400 and status == out.status and case.code in GATEWAY_400_CODES
        if status not in REFUSAL_CODES and not own_400:
            continue
        if not case.h2 and ctype != "application/json":
            problems.append(f"{status} with content-type {ctype!r}")
        if case.head and status == out.status:
            continue  # a HEAD answer has no body
        try:
            code = error_code(body)
        except (ValueError, KeyError, TypeError):
            problems.append(f"{status} without a JSON error body: {body[:160]!r}")
            continue
        # (408 is HAProxy's own error page, which cannot vary by path)
        native = _native_dialect(case) if status != 408 else None
        if (body is out.body and native is not None
                and native != isinstance(json.loads(body)["error"], str)):
            problems.append(f"{status} not in the caller's dialect (native on /api/*): "
                            f"{body[:120]!r}")
        if code not in REFUSAL_CODES.get(status, GATEWAY_400_CODES):
            problems.append(f"{status} with error.code {code!r}")
        elif status == out.status and case.code is not None and code != case.code:
            problems.append(f"error.code {code!r}, expected {case.code!r}")
    return [f"{case.name[:90]!r}: {p}" for p in problems]


def forwarding_problems(sim: OllamaSimulator, corpus: Sequence[Case],
                        outcomes: dict[str, Outcome], profiles: tuple[str, ...]
                        ) -> list[str]:
    """What reached the simulator: only allowlisted pairs, each traced to a case that allows it."""
    by_marker = {marker(c.name): c for c in corpus}
    seen: Counter[str] = Counter()
    problems = []
    upstream_host = f"127.0.0.1:{sim.port}"
    for rec in forwarded(sim):
        path = haproxy_path(rec.target)
        where = f"{rec.method} {rec.target[:100]!r} (case {rec.header(CASE_HEADER)!r})"
        if not is_allowed(rec.method, path, profiles):
            problems.append(f"LEAK: outside the allowlist reached Ollama: {where}")
        if any(bad in path for bad in BAD_IN_PATH):
            problems.append(f"LEAK: suspicious path reached Ollama: {where}")
        if any(r.match(path) for r in NEVER_RES):
            problems.append(f"LEAK: a NEVER route reached Ollama: {where}")
        if rec.error is not None:
            problems.append(f"Ollama could not parse a forwarded request ({rec.error}): {where}")
        if rec.header_all("host") != [upstream_host]:
            problems.append(f"Host not rewritten to {upstream_host}: {rec.header_all('host')}"
                            f" {where}")
        name = rec.header(CASE_HEADER)
        case = by_marker.get(name or "")
        if case is None:
            problems.append(f"forwarded request without a known case: {where}")
            continue
        seen[case.name] += 1
        if case.forwarded_as != (rec.method, path):
            problems.append(f"forwarded as {(rec.method, path)}, expected {case.forwarded_as}:"
                            f" {where}")
    for case in corpus:
        status = outcomes[case.name].status
        refused = status == 0 or status in case.gateway_may_refuse
        want = 1 if case.forwarded_as is not None and not refused else 0
        if seen[case.name] != want:
            problems.append(f"{case.name[:90]!r} reached Ollama {seen[case.name]} times,"
                            f" expected {want}")
    return problems


def log_entries(gw: GatewayProcess, until: Any, timeout: float = 15.0
                ) -> tuple[list[dict[str, Any]], list[str]]:
    """(parsed access-log lines, lines that are not JSON), once `until(parsed, broken)` holds."""
    deadline = time.monotonic() + timeout
    while True:
        entries, broken = [], []
        for line in gw.log_lines():
            try:
                entries.append(json.loads(line))
            except ValueError:
                broken.append(line)
        if until(entries, broken) or time.monotonic() > deadline:
            return entries, broken
        time.sleep(0.05)


def test_corpus_is_big_and_covers_every_category() -> None:
    corpus = build_corpus(("default",), MAX_BODY)
    assert len(corpus) >= MIN_CASES
    assert len({c.raw for c in corpus}) == len(corpus), "cases must differ in their bytes"
    cats = Counter(c.category for c in corpus)
    for cat in ("route_matrix", "encoded", "dot_segments", "double_slash", "backslash",
                "trailing_slash", "params", "case_variants", "absolute_form", "odd_methods",
                "method_override", "http_version", "host_header", "framing", "oversize",
                "nul_control", "garbage", "pipelined", "h2c", "get_head_body",
                "odd_authority", "trickling"):
        assert cats[cat] >= 5, cat
    # every NEVER route and /api/status, with every method
    pairs = {(c.raw.split(b" ", 2)[0], c.raw.split(b" ", 2)[1]) for c in corpus
             if c.category == "route_matrix"}
    for _, path in NEVER:
        probe = path.replace("{digest}", "sha256:" + "ab" * 32).replace(
            "{key}", "ssh-ed25519-AAAAC3Nza")
        for method in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            assert (method.encode(), probe.encode()) in pairs, (method, path)
    # most of the corpus must be refused, and there are controls that must get through
    assert sum(c.forwarded_as is None for c in corpus) > 0.7 * len(corpus)
    assert sum(c.forwarded_as == ("GET", "/api/tags") for c in corpus) >= 20


@pytest.mark.parametrize("profiles", PROFILE_SETS, ids=["default", "native"])
def test_hostile_corpus_never_reaches_ollama_outside_the_allowlist(
    sim: OllamaSimulator, gateway_factory: GatewayFactory, profiles: tuple[str, ...]
) -> None:
    gw = gateway_factory(sim.port, gateway={"profiles": list(profiles)}, limits=LIMITS,
                         timeouts=TIMEOUTS)
    corpus = build_corpus(profiles, MAX_BODY)
    assert len(corpus) >= MIN_CASES
    sim.clear()
    outcomes = run_corpus(gw, corpus)
    time.sleep(0.2)  # let the last forwarded request be recorded

    problems = []
    for case in corpus:
        problems += response_problems(case, outcomes[case.name])
    problems += forwarding_problems(sim, corpus, outcomes, profiles)
    assert not problems, "\n".join(problems[:60])

    # the controls did get through, so this test can fail
    arrived = Counter((r.method, haproxy_path(r.target)) for r in forwarded(sim))
    assert arrived[("GET", "/api/tags")] >= 20
    assert arrived[("POST", "/v1/messages")] >= 3
    assert (arrived[("POST", "/api/chat")] > 0) == ("native" in profiles)

    # refusals are in the access log with their status, one JSON object per line (long
    # paths and headers included: test_access_log_lines_stay_json_for_long_client_values)
    expected = Counter(s for o in outcomes.values() for s in o.statuses if s in REFUSAL_CODES)
    entries, broken = log_entries(gw, lambda es, bad: sum(
        e["status"] in REFUSAL_CODES for e in es) + len(bad) >= sum(expected.values()))
    assert broken == [], broken[:3]
    logged = Counter(e["status"] for e in entries)
    for status, count in expected.items():
        if logged[status] != count:  # say which refusals are missing from the log
            seen = Counter((e["method"], e["path"]) for e in entries if e["status"] == status)
            sent = Counter(c.name for c in corpus if status in outcomes[c.name].statuses)
            raise AssertionError(f"{status}: logged {logged[status]}, answered {count}; "
                                 f"{sum(seen.values())} distinct lines; cases: "
                                 f"{sorted(sent)[:5]}…")
    refused = {(e["method"], e["path"], e["status"]) for e in entries}
    for sample in [("POST", "/api/pull", 403), ("DELETE", "/api/delete", 403),
                   ("GET", "/api/status", 403), ("POST", "/api/%70ull", 403),
                   ("GET", "//api/tags", 403), ("POST", "/api\\..\\pull", 403),
                   ("get", "/api/tags", 403), ("TRACE", "/api/tags", 403),
                   ("POST", "/v1/chat/completions", 411), ("POST", "/v1/chat/completions", 413),
                   ("<BADREQ>", "-", 400)]:
        assert sample in refused, sample
    if "native" not in profiles:
        assert ("POST", "/api/chat", 403) in refused


def test_method_override_headers_do_not_change_what_is_forwarded(
    sim: OllamaSimulator, gateway_factory: GatewayFactory
) -> None:
    """The override headers arrive untouched, but Ollama sees only the allowed method + path."""
    gw = gateway_factory(sim.port, limits=LIMITS)
    cases = [c for c in build_corpus(("default",), MAX_BODY) if c.category == "method_override"]
    sim.clear()
    outcomes = run_corpus(gw, cases)
    allowed = [c for c in cases if c.forwarded_as is not None]
    assert len(allowed) >= 10
    assert all(outcomes[c.name].status == 200 for c in allowed)
    assert all(outcomes[c.name].status == 403 for c in cases if c.forwarded_as is None)
    recs = {r.header(CASE_HEADER): r for r in forwarded(sim)}
    assert set(recs) == {marker(c.name) for c in allowed}
    for c in allowed:
        rec = recs[marker(c.name)]
        assert (rec.method, rec.target) == c.forwarded_as, c.name


def test_access_log_lines_stay_json_for_long_client_values(
    sim: OllamaSimulator, gateway_factory: GatewayFactory
) -> None:
    gw = gateway_factory(sim.port, limits=LIMITS)
    requests = [("refused", h1("long path", "GET", "/api/" + "a" * 1500), 403),
                ("forwarded", h1("long model", "GET", "/v1/models/" + "m" * 1500), 404),
                ("session", h1("long session", "GET", "/api/tags",
                               headers=[("X-Claude-Code-Session-Id", "s" * 1500)]), 200)]
    for name, raw, status in requests:
        assert send(gw.host, gw.port, Case(name, "log", raw, frozenset({status}))).status == status
    entries, broken = log_entries(gw, lambda es, bad: len(es) + len(bad) >= len(requests))
    assert broken == []
    assert sorted(e["status"] for e in entries) == sorted(s for _, _, s in requests)


def test_content_length_beyond_32_bits_is_refused_413(
    sim: OllamaSimulator, gateway_factory: GatewayFactory
) -> None:
    gw = gateway_factory(sim.port, limits=LIMITS)
    statuses = {}
    for length in (2**31, 2**32 + 2, 10**12):
        raw = h1(f"cl {length}", "POST", "/v1/chat/completions",
                 headers=[("Content-Length", str(length))], body=b"{}", content_length=False)
        case = Case(f"cl {length}", "oversize", raw, frozenset({413}))
        statuses[length] = send(gw.host, gw.port, case, timeout=1.0).status
    assert statuses == {length: 413 for length in statuses}
