"""`ai-server install`, `status`, `doctor`, `audit`, `pool refresh` say what is true (issue 17
§3), on the locked-down PATH of recording fakes that test_install.py uses."""

from __future__ import annotations

import json
import socket

from tests.integration.test_install import Stack, stack  # noqa: F401  (the fixture)
from tests.support import tsfake


def test_install_stops_as_soon_as_the_gateway_service_exits(stack: Stack) -> None:  # noqa: F811
    # something else holds the gateway's port (bound, not listening: connects are refused),
    # so HAProxy cannot bind and `ai-server run` exits at once
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", stack.port))
    try:
        before = stack.state_snapshot()
        res = stack.cli("install", "--yes", "--json")
    finally:
        blocker.close()
    assert res.returncode == 1, res.stderr
    error = json.loads(res.stdout)["errors"][0]["message"]
    assert "the gateway service exited" in error and "before it answered" in error
    assert "did not become healthy" not in error
    log = stack.home / "logs" / "gateway.err.log"
    assert f"{log} ends with: " in error
    assert "cannot bind" in error or "Address already in use" in error  # HAProxy's own words
    assert "previous state restored" in error
    assert stack.state_snapshot() == before


def bare_machine(stack: Stack) -> None:  # noqa: F811
    """Tailscale logged out and no HAProxy: two checks fail."""
    stack.fe.set_tailscale(tsfake.status_doc(state="NeedsLogin"))
    stack.extra["AI_SERVER_HAPROXY"] = "haproxy-not-installed"


def test_preflight_lists_every_failed_check_with_its_fix(stack: Stack) -> None:  # noqa: F811
    bare_machine(stack)
    for extra in ([], ["-v"]):
        res = stack.cli(*extra, "install", "--yes")
        assert res.returncode == 5
        assert res.stderr.count("\n") == 1 and "more)" not in res.stderr
        assert "tailscale: Tailscale is logged out on this device (fix: log in: `tailscale up`)" \
            in res.stderr
        assert "haproxy: haproxy not found (fix: install haproxy from your distribution's " \
               "packages, e.g. `sudo apt install haproxy`)" in res.stderr
    env = json.loads(stack.cli("install", "--yes", "--json").stdout)
    assert env["ok"] is False  # one error per failed check, each with its fix
    assert [(e["code"], e["message"]) for e in env["errors"]] == [
        ("preflight.tailscale", "tailscale: Tailscale is logged out on this device"),
        ("preflight.haproxy", "haproxy: haproxy not found")]
    assert all(e["hint"] for e in env["errors"])


def test_a_dry_run_on_a_bare_machine_still_shows_the_plan(stack: Stack) -> None:  # noqa: F811
    bare_machine(stack)
    before = stack.state_snapshot()
    res = stack.cli("install", "--dry-run")
    assert res.returncode == 5, res.stderr
    out = res.stdout
    assert "would write" in out and "would run: systemctl --user enable --now" in out
    assert "preflight failed; install would stop before changing anything:" in out
    assert "FAIL  tailscale  Tailscale is logged out on this device  → log in: `tailscale up`" \
        in out
    assert "FAIL  haproxy    haproxy not found" in out
    assert out.rstrip().endswith("(dry run: nothing changed)")
    env = json.loads(stack.cli("install", "--dry-run", "--json").stdout)
    assert env["ok"] is False and env["data"]["files"] and not env["data"]["applied"]
    assert [e["code"] for e in env["errors"]] == ["preflight.tailscale", "preflight.haproxy"]
    assert {c["name"] for c in env["data"]["checks"] if c["status"] == "FAIL"} == {
        "tailscale", "haproxy"}
    assert stack.state_snapshot() == before and stack.service_calls() == []


def test_doctor_on_linux_without_homebrew_does_not_suggest_brew(stack: Stack) -> None:  # noqa: F811
    stack.extra["AI_SERVER_HAPROXY"] = "haproxy-not-installed"
    stack.extra["FAKE_OLLAMA_VERSION"] = "0.13.0"
    res = stack.cli("doctor", "--json")
    assert res.returncode == 3
    env = json.loads(res.stdout)
    checks = {c["name"]: c for c in env["data"]["checks"]}
    assert checks["homebrew"]["status"] == "WARN"
    assert "brew" not in checks["haproxy"]["fix"] and "apt install haproxy" in checks["haproxy"][
        "fix"]
    assert "brew" not in checks["ollama"]["fix"].split(", then")[0]
    assert checks["ollama"]["fix"].startswith("curl -fsSL https://ollama.com/install.sh | sh")
    assert env["ok"] is False
    assert {e["code"] for e in env["errors"]} >= {"check.haproxy", "check.ollama"}


def test_pool_refresh_without_a_pool_says_so(stack: Stack) -> None:  # noqa: F811
    res = stack.cli("pool", "refresh")
    assert res.returncode == 4 and res.stdout == ""
    assert f"no pool is configured in {stack.config}" in res.stderr
    assert "gateway reloaded" not in res.stdout + res.stderr


def test_audit_reports_a_haproxy_warning_once(stack: Stack) -> None:  # noqa: F811
    # Debian's HAProxy 2.6.12 predates the upstream fix of CVE-2023-40225 (2.6.15): a warning
    # (distributions backport fixes), reported once, not also as a passed finding
    fake = stack.fe.root / "debian-haproxy"
    fake.write_text("#!/bin/sh\necho 'HAProxy version 2.6.12-1+deb12u4 2026/10/17 - "
                    "https://haproxy.org/'\n")
    fake.chmod(0o755)
    stack.extra["AI_SERVER_HAPROXY"] = str(fake)
    report = json.loads(stack.cli("audit", "--json").stdout)["data"]
    assert len(report["warnings"]) == 1 and "CVE-2023-40225" in report["warnings"][0]
    assert "haproxy-version" not in [f["check"] for f in report["findings"]]
    text = stack.cli("audit").stdout
    assert [line[:4] for line in text.splitlines() if "CVE-2023-40225" in line] == ["warn"]
