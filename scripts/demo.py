"""The local stack, end to end: Ollama (real or simulated) ← gateway ← requests.

Everything listens on 127.0.0.1 and lives in a temp HOME that is removed at the end.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.gatewayproc import free_port, settings_toml, wait_port  # noqa: E402


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def show(cmd: list[str], env: dict[str, str]) -> None:
    print("$ " + " ".join(cmd).replace(str(REPO) + "/", ""), flush=True)
    subprocess.run(cmd, env=env, check=False)


def real_ollama() -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", 11434, timeout=1)
        conn.request("GET", "/api/version")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def request(port: int, method: str, path: str, body: object = None) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    payload = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=payload,
                 headers={"Content-Type": "application/json"} if payload else {})
    resp = conn.getresponse()
    data = resp.read().decode("utf-8", "replace")
    conn.close()
    print(f"{method} {path} -> {resp.status} {data[:160].strip()}"
          f"{' …' if len(data) > 160 else ''}", flush=True)


def first_model(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/api/tags")
    models = json.loads(conn.getresponse().read()).get("models") or []
    conn.close()
    return str(models[0]["name"]) if models else "qwen3-coder:30b"


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="ai-demo-"))
    env = dict(os.environ, HOME=str(home), AI_SERVER_HOME=str(home / "ai-server"),
               AI_CLIENT_HOME=str(home / "ai-client"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        if real_ollama():
            say("A real Ollama answers on 127.0.0.1:11434: the gateway will front it")
            upstream = 11434
        else:
            upstream = free_port()
            say(f"No Ollama here: starting the Ollama simulator on 127.0.0.1:{upstream}")
            procs.append(subprocess.Popen(
                [sys.executable, str(REPO / "tests/support/ollama_sim.py"), "--port",
                 str(upstream), "--quiet"], env=env))
            wait_port("127.0.0.1", upstream)
        gw_port, metrics_port = free_port(), free_port()
        cfg = home / "server.toml"
        cfg.write_text(settings_toml({"gateway": {
            "listen": ["127.0.0.1"], "port": gw_port, "upstream": f"127.0.0.1:{upstream}",
            "metrics_port": metrics_port, "stats_socket": str(home / "admin.sock")}}))
        server = [str(REPO / "dist/ai-server"), "--config", str(cfg)]
        say("The allowlist (one table drives the HAProxy config, the docs and the tests)")
        show([*server, "allowlist"], env)
        say("Validate the rendered HAProxy config (haproxy -c -dW)")
        show([*server, "config", "validate"], env)
        say(f"Start the gateway on 127.0.0.1:{gw_port} (the real thing binds Tailscale IPs)")
        log_path = home / "access.log"
        with open(log_path, "wb") as log:
            procs.append(subprocess.Popen([*server, "run", "--wait", "0"], env=env, stdout=log))
        if not wait_port("127.0.0.1", metrics_port, timeout=15):
            print("the gateway did not start", file=sys.stderr)
            return 1
        say("Allowed requests are forwarded")
        model = first_model(gw_port)
        request(gw_port, "GET", "/api/version")
        request(gw_port, "GET", "/v1/models")
        request(gw_port, "POST", "/v1/messages?beta=true", {
            "model": model, "max_tokens": 32,
            "messages": [{"role": "user", "content": "Say hi."}]})
        say("Everything else is refused with JSON, and never reaches Ollama")
        request(gw_port, "POST", "/api/pull", {"model": model})
        request(gw_port, "DELETE", "/api/delete", {"model": model})
        request(gw_port, "GET", "/api/%70s")
        say("Access log: one JSON line per request")
        time.sleep(0.3)
        print(log_path.read_text(), end="", flush=True)
        say("Done: stopping the gateway and removing the demo HOME")
        return 0
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
