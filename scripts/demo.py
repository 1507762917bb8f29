"""The whole system on one machine, on loopback only, in a throw-away HOME (run by scripts/demo).

    Ollama (real on 127.0.0.1:11434 if one answers, else the Ollama API simulator)
      <- `ai-server run` (real HAProxy) on 127.0.0.2, standing in for the Tailscale address
      <- `ai-client setup` in the temp HOME, then `ai-client test`, `ai-server audit`,
         `ai-server usage`

The built zipapps in dist/ are what runs, as users run them. Tailscale is the recording fake
(tests/support/fakes/tailscale): it reports `Running` with no tailnet address, so nothing —
not even the audit's probe of Ollama's port on the tailnet addresses — leaves loopback; the
demo itself checks that Ollama's port is closed on 127.0.0.2 instead. Every step is named; the
first failure stops the demo with a non-zero exit naming it. The report at the end says what
ran and what each step showed. `--keep` leaves the stack running and prints how to stop it.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.gatewayproc import free_port, settings_toml, wait_port  # noqa: E402
from tests.support.tsfake import FAKE_CLI, status_doc  # noqa: E402

GATEWAY_HOST = "127.0.0.2"  # a second loopback address standing in for the Tailscale address
REAL_OLLAMA = ("127.0.0.1", 11434)
DIST = REPO / "dist"
TOOLS = ("ai-server", "ai-client")


class StepFailed(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass
class Step:
    name: str
    ok: bool
    summary: str
    seconds: float


@dataclass
class Demo:
    home: Path
    env: dict[str, str]
    simulator_only: bool
    steps: list[Step] = field(default_factory=list)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    config: Path = Path()
    ollama_port: int = 0
    ollama_kind: str = ""
    gateway_port: int = 0
    metrics_port: int = 0
    model: str = ""
    current: str = ""  # the step running now (named when Ctrl-C interrupts it)

    # --- plumbing ---

    def step(self, name: str, action: Callable[[], str]) -> None:
        print(f"\n{bold('== ' + name)}", flush=True)
        self.current = name
        started = time.monotonic()
        try:
            summary = action()
        except StepFailed as exc:
            self.steps.append(Step(name, False, exc.detail, time.monotonic() - started))
            raise
        self.steps.append(Step(name, True, summary, time.monotonic() - started))

    def run(self, argv: list[str], *, timeout: float = 120, show: bool = True
            ) -> subprocess.CompletedProcess[str]:
        shown = " ".join(shlex.quote(a.replace(str(REPO) + "/", "")) for a in argv)
        print(f"$ {shown}", flush=True)
        try:
            done = subprocess.run(argv, env=self.env, capture_output=True, text=True,
                                  timeout=timeout, check=False, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise StepFailed(f"`{shown}` did not finish within {timeout:g} s") from None
        if show:
            for line in (done.stdout + done.stderr).rstrip().splitlines():
                print(f"  {line}", flush=True)
        return done

    def start(self, name: str, argv: list[str], stdout: Path, stderr: Path) -> None:
        with open(stdout, "wb") as out, open(stderr, "wb") as err:
            self.procs[name] = subprocess.Popen(argv, env=self.env, stdout=out, stderr=err,
                                                stdin=subprocess.DEVNULL,
                                                start_new_session=True)

    def server(self, *args: str) -> list[str]:
        return [str(DIST / "ai-server"), "--config", str(self.config), *args]

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)

    # --- the steps ---

    def zipapps(self) -> str:
        parts = []
        for tool in TOOLS:
            app = DIST / tool
            if not app.exists():
                raise StepFailed(f"{app} is missing: run scripts/build-zipapps")
            done = self.run([str(app), "--version"])
            if done.returncode != 0:
                raise StepFailed(f"{tool} --version failed: {done.stderr.strip()[-300:]}")
            sha = hashlib.sha256(app.read_bytes()).hexdigest()
            parts.append(f"{done.stdout.strip()} (sha256 {sha[:12]}…)")
        return ", ".join(parts)

    def ollama(self) -> str:
        version = None if self.simulator_only else real_ollama_version()
        if version:
            self.ollama_port, self.ollama_kind = REAL_OLLAMA[1], "real"
            print(f"A real Ollama {version} answers on 127.0.0.1:11434: the gateway fronts it")
            return f"real Ollama {version} on 127.0.0.1:11434"
        self.ollama_port, self.ollama_kind = free_port(), "simulator"
        why = "--simulator" if self.simulator_only else "nothing answered on 127.0.0.1:11434"
        print(f"Starting the Ollama API simulator on 127.0.0.1:{self.ollama_port} ({why})")
        self.start("ollama-simulator", [sys.executable, str(REPO / "tests/support/ollama_sim.py"),
                                        "--host", "127.0.0.1", "--port", str(self.ollama_port),
                                        "--quiet"],
                   self.home / "ollama-sim.log", self.home / "ollama-sim.log")
        if not wait_port("127.0.0.1", self.ollama_port, timeout=15):
            raise StepFailed("the Ollama simulator did not start: "
                             + tail(self.home / "ollama-sim.log"))
        return f"Ollama API simulator on 127.0.0.1:{self.ollama_port} ({why})"

    def tailscale(self) -> str:
        doc = status_doc(ips=(), hostname="demo")  # Running, but no tailnet address at all
        doc["BackendState"] = "Running"
        (self.home / "tailscale-status.json").write_text(json.dumps(doc))
        done = self.run([str(FAKE_CLI), "status", "--json"], show=False)
        if done.returncode != 0:
            raise StepFailed(f"the fake tailscale CLI failed: {done.stderr.strip()}")
        return (f"fake CLI reports Running with no tailnet address; {GATEWAY_HOST} stands in "
                "for it, so nothing leaves loopback")

    def gateway(self) -> str:
        try:
            self.gateway_port = free_port(GATEWAY_HOST)
        except OSError as exc:
            raise StepFailed(f"cannot bind {GATEWAY_HOST} ({exc}); Linux routes all of "
                             "127.0.0.0/8 to lo, macOS needs `sudo ifconfig lo0 alias "
                             f"{GATEWAY_HOST}`") from None
        self.metrics_port = free_port()
        self.config = self.home / "server.toml"
        self.config.write_text(settings_toml({"gateway": {
            "listen": [GATEWAY_HOST], "port": self.gateway_port,
            "upstream": f"127.0.0.1:{self.ollama_port}", "metrics_port": self.metrics_port,
            "stats_socket": str(self.home / "admin.sock")}}))
        validated = self.run(self.server("config", "validate"))
        if validated.returncode != 0:
            raise StepFailed(f"`ai-server config validate` exited {validated.returncode}: "
                             f"{last_line(validated.stderr)}")
        argv = self.server("run", "--wait", "5")
        print("$ " + " ".join(a.replace(str(REPO) + "/", "") for a in argv) + " &")
        self.start("gateway", argv, self.home / "access.log", self.home / "gateway.err.log")
        deadline = time.monotonic() + 20
        while not wait_port("127.0.0.1", self.metrics_port, timeout=0.5):
            if self.procs["gateway"].poll() is not None or time.monotonic() > deadline:
                raise StepFailed("the gateway did not start: "
                                 + tail(self.home / "gateway.err.log"))
        haproxy = subprocess.run(["haproxy", "-v"], capture_output=True, text=True, check=False)
        version = haproxy.stdout.split()[2] if len(haproxy.stdout.split()) > 2 else "?"
        return (f"`ai-server run` became HAProxy {version} on {GATEWAY_HOST}:"
                f"{self.gateway_port} (pid {self.procs['gateway'].pid}; metrics "
                f"127.0.0.1:{self.metrics_port})")

    def client_setup(self) -> str:
        before = home_files(self.home)
        done = self.run([str(DIST / "ai-client"), "setup", "--server", GATEWAY_HOST, "--port",
                         str(self.gateway_port), "--shell", "bash", "--yes", "--json"],
                        show=False)
        print_tail(done.stderr)
        if done.returncode != 0:
            raise StepFailed(f"ai-client setup exited {done.returncode}: "
                             f"{last_line(done.stderr)}")
        written = sorted(home_files(self.home) - before)
        for path in written:
            print(f"  wrote ~/{path}")
        shell = subprocess.run(["bash", "--norc", "--noprofile", "-c",
                                '. "$HOME/.bashrc"; printf "%s\\n" "$OPENAI_API_BASE" '
                                '"$AIDER_MODEL"; command -v claude-ollama'],
                               env=self.env, capture_output=True, text=True, timeout=30,
                               check=False)
        lines = shell.stdout.splitlines()
        want = f"http://{GATEWAY_HOST}:{self.gateway_port}/v1"
        if len(lines) < 2 or lines[0] != want or not lines[1].startswith("openai/"):
            raise StepFailed(f"a new bash does not see the setup: got {lines!r}, "
                             f"expected OPENAI_API_BASE={want}")
        self.model = lines[1].removeprefix("openai/")
        wrapper = "claude-ollama on PATH" if len(lines) > 2 else "no claude-ollama on PATH"
        print(f"  bash: OPENAI_API_BASE={lines[0]} AIDER_MODEL={lines[1]} ({wrapper})")
        return (f"wrote {len(written)} files in the temp HOME; a new bash sees "
                f"OPENAI_API_BASE={lines[0]}, AIDER_MODEL={lines[1]} and {wrapper}")

    def layers(self) -> str:
        status, body = http_call(GATEWAY_HOST, self.gateway_port, "POST", "/api/pull",
                                 {"model": self.model or "any"})
        try:
            doc = json.loads(body)  # Ollama's native shape on /api/*: {"error": "…", "code": …}
            code = doc["error"]["code"] if isinstance(doc["error"], dict) else doc["code"]
        except (ValueError, KeyError, TypeError):
            code = "?"
        print(f"  POST /api/pull through the gateway -> {status} {body[:120]!r}")
        if status != 403 or code != "not_exposed":
            raise StepFailed(f"POST /api/pull through the gateway answered {status} ({code}), "
                             "expected 403 not_exposed")
        with socket.socket() as sock:
            sock.settimeout(2)
            reachable = sock.connect_ex((GATEWAY_HOST, self.ollama_port)) == 0
        print(f"  connect {GATEWAY_HOST}:{self.ollama_port} (Ollama's port) -> "
              f"{'OPEN' if reachable else 'refused'}")
        if reachable:
            raise StepFailed(f"Ollama's port {self.ollama_port} answers on {GATEWAY_HOST}: "
                             "it must listen on 127.0.0.1 only")
        return (f"POST /api/pull -> 403 not_exposed at the gateway; Ollama's port "
                f"{self.ollama_port} refuses connections on {GATEWAY_HOST}")

    def client_test(self) -> str:
        timeout = 900 if self.ollama_kind == "real" else 180
        done = self.run([str(DIST / "ai-client"), "test", "--json"], timeout=timeout,
                        show=False)
        data = envelope_data(done.stdout)
        if data is None:
            print_tail(done.stdout + done.stderr)
            raise StepFailed(f"ai-client test exited {done.returncode} without a report: "
                             f"{last_line(done.stderr)}")
        for check in data.get("checks", []):
            print(f"  {check.get('status', '?'):<4} {check.get('name', '?'):<24} "
                  f"{str(check.get('detail', ''))[:90]}")
        counts = data.get("summary", {})
        summary = (f"{counts.get('pass', 0)} passed, {counts.get('fail', 0)} failed, "
                   f"{counts.get('skip', 0)} skipped (model {data.get('model', '?')})")
        if done.returncode != 0 or counts.get("fail", 0):
            failed = [c["name"] for c in data.get("checks", []) if c.get("status") == "FAIL"]
            raise StepFailed(f"{summary}; failed: {', '.join(failed) or done.returncode}")
        return summary

    def audit(self) -> str:
        done = self.run(self.server("audit", "--json"), show=False)
        data = envelope_data(done.stdout)
        if data is None:
            print_tail(done.stderr)
            raise StepFailed(f"ai-server audit exited {done.returncode} without a report: "
                             f"{last_line(done.stderr)}")
        findings = data.get("findings", [])
        for f in findings:
            print(f"  {'ok' if f['ok'] else 'FAIL':<4} {f['check']:<20} {f['detail']}")
        bad = [f for f in findings if not f["ok"]]
        if bad or done.returncode != 0:
            raise StepFailed("findings: " + "; ".join(f"{f['check']}: {f['detail']}"
                                                      for f in bad))
        warnings = data.get("warnings", [])
        note = f"; {len(warnings)} warning(s), shown above" if warnings else ""
        return (f"clean: {len(findings)} checks passed "
                f"({', '.join(f['check'] for f in findings)}){note}")

    def usage(self) -> str:
        time.sleep(0.3)  # HAProxy writes a log line when a request ends
        log = self.home / "access.log"
        done = self.run(self.server("usage", "--file", str(log), "--by", "path"))
        data = envelope_data(self.run(self.server("usage", "--file", str(log), "--by", "path",
                                                  "--json"), show=False).stdout)
        if done.returncode != 0 or data is None:
            raise StepFailed(f"ai-server usage failed: {last_line(done.stderr)}")
        totals = data["totals"]
        if not totals["requests"]:
            raise StepFailed(f"the access log {log} has no requests")
        groups = sorted(data["groups"], key=lambda g: -int(g["requests"]))
        top = ", ".join(f"{g['key']} {g['requests']}" for g in groups[:4])
        return (f"{totals['requests']} requests in the access log, {totals['client_errors']} "
                f"refused (4xx: the audit's probes and the demo's) and "
                f"{totals['server_errors']} 5xx; busiest paths: {top}")

    # --- the report ---

    def report(self, total: float, failed: Step | None, keep: bool,
               interrupted: bool = False) -> str:
        width = max(len(s.name) for s in self.steps) if self.steps else 10
        lines = ["", bold("== Report")]
        for s in self.steps:
            mark = "ok  " if s.ok else "FAIL"
            lines.append(f"  {mark} {s.name:<{width}}  {s.summary}  [{s.seconds:.1f} s]")
        if interrupted:
            lines.append(f"demo: INTERRUPTED during step '{self.current}' (Ctrl-C) after "
                         f"{len(self.steps)} step(s) passed; everything torn down")
        elif failed:
            lines.append(f"demo: FAILED at step '{failed.name}': {failed.summary}")
        else:
            end = "left running (--keep)" if keep else "everything torn down"
            lines.append(f"demo: OK: {len(self.steps)} steps passed in {total:.1f} s; {end}")
        return "\n".join(lines)

    def keep_instructions(self) -> str:
        pids = " ".join(str(p.pid) for p in self.procs.values())
        stop = self.home / "stop"
        stop.write_text(f"#!/bin/sh\n# stops the demo stack and removes its HOME\n"
                        f"kill {pids} 2>/dev/null\nrm -rf {shlex.quote(str(self.home))}\n")
        stop.chmod(0o755)
        h = shlex.quote(str(self.home))
        return "\n".join([
            "", "The stack is still running (--keep):",
            f"  gateway  http://{GATEWAY_HOST}:{self.gateway_port}  (HAProxy pid "
            f"{self.procs['gateway'].pid}; access log {self.home / 'access.log'})",
            f"  ollama   http://127.0.0.1:{self.ollama_port}  ({self.ollama_kind})",
            "  try:",
            f"    HOME={h} bash -c '. ~/.bashrc; curl -s \"$OPENAI_API_BASE/models\"'",
            f"    HOME={h} {DIST / 'ai-client'} test",
            f"    HOME={h} AI_TAILSCALE={FAKE_CLI} FAKE_TAILSCALE_STATUS={h}/tailscale-status.json"
            f" {DIST / 'ai-server'} --config {h}/server.toml audit",
            f"  stop:    {stop}"])


def bold(text: str) -> str:
    if sys.stdout.isatty() and not os.environ.get("NO_COLOR"):
        return f"\033[1m{text}\033[0m"
    return text


def real_ollama_version() -> str | None:
    try:
        conn = http.client.HTTPConnection(*REAL_OLLAMA, timeout=1)
        conn.request("GET", "/api/version")
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        if resp.status == 200:
            return str(json.loads(body).get("version", "?"))
    except (OSError, ValueError, http.client.HTTPException):
        pass
    return None


def http_call(host: str, port: int, method: str, path: str, body: Any) -> tuple[int, str]:
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request(method, path, body=json.dumps(body).encode(),
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    text = resp.read().decode("utf-8", "replace")
    conn.close()
    return resp.status, text


def envelope_data(stdout: str) -> dict[str, Any] | None:
    try:
        doc = json.loads(stdout)
    except ValueError:
        return None
    data = doc.get("data") if isinstance(doc, dict) else None
    return data if isinstance(data, dict) else None


def home_files(home: Path) -> set[str]:
    """Files under HOME, minus the demo's own and the zipapps' extraction cache."""
    skip = {".shiv"}
    found = set()
    for path in home.rglob("*"):
        rel = path.relative_to(home)
        if rel.parts[0] in skip or (len(rel.parts) == 1 and not rel.name.startswith(".")):
            continue
        if path.is_file():
            found.add(str(rel))
    return found


def tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def last_line(text: str) -> str:
    stripped = text.strip().splitlines()
    return stripped[-1] if stripped else "(no output)"


def print_tail(text: str, lines: int = 6) -> None:
    for line in text.strip().splitlines()[-lines:]:
        print(f"  {line}", flush=True)


def clean_env(home: Path) -> dict[str, str]:
    """This process's environment minus anything that would point the tools elsewhere."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AI_", "SHIV_", "XDG_", "FAKE_", "OLLAMA_", "OPENAI_",
                                "ANTHROPIC_", "AIDER_"))
           and k not in ("BASH_ENV", "ENV", "ZDOTDIR", "PYTHONPATH")}
    env.update(HOME=str(home), AI_TAILSCALE=str(FAKE_CLI),
               FAKE_TAILSCALE_STATUS=str(home / "tailscale-status.json"),
               FAKE_TAILSCALE_LOG=str(home / "tailscale-calls.jsonl"))
    return env


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options (scripts/demo checks them before it builds anything)."""
    parser = argparse.ArgumentParser(prog="scripts/demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true",
                        help="leave the stack running and print how to use and stop it")
    parser.add_argument("--simulator", action="store_true",
                        help="use the Ollama simulator even if a real Ollama answers")
    parser.add_argument("--json-report", type=Path, metavar="FILE",
                        help="also write the report as JSON (for tests)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # /tmp, not $TMPDIR: HAProxy's stats socket path must stay short
    home = Path(tempfile.mkdtemp(prefix="ai-demo-", dir="/tmp"))
    demo = Demo(home, clean_env(home), args.simulator)
    started = time.monotonic()
    failed: Step | None = None
    interrupted = False
    try:
        for name, action in (("zipapps", demo.zipapps), ("ollama", demo.ollama),
                             ("tailscale", demo.tailscale), ("gateway", demo.gateway),
                             ("ai-client setup", demo.client_setup), ("layers", demo.layers),
                             ("ai-client test", demo.client_test),
                             ("ai-server audit", demo.audit), ("ai-server usage", demo.usage)):
            demo.step(name, action)
    except StepFailed:
        failed = demo.steps[-1]
    except KeyboardInterrupt:
        interrupted = True
    finally:
        keep = args.keep and not interrupted
        print(demo.report(time.monotonic() - started, failed, keep, interrupted), flush=True)
        if args.json_report:
            args.json_report.write_text(json.dumps({
                "ok": failed is None and not interrupted, "interrupted": interrupted,
                "failed_step": failed.name if failed else None, "ollama": demo.ollama_kind,
                "gateway": f"{GATEWAY_HOST}:{demo.gateway_port}", "home": str(home),
                "kept": keep,
                "steps": [{"name": s.name, "ok": s.ok, "summary": s.summary,
                           "seconds": round(s.seconds, 2)} for s in demo.steps]}, indent=2))
        if keep:
            print(demo.keep_instructions(), flush=True)
        else:
            demo.stop()
            shutil.rmtree(home, ignore_errors=True)
    if interrupted:
        return 130
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
