"""bench-pool: one gateway in front of 1 vs 2 Ollama nodes of fixed capacity, side by side.

Each node (an Ollama simulator in its own process) takes one stream at a time
(limits.upstream_concurrency = 1: HAProxy queues the rest); 8 clients stream continuously.
Prints throughput (streams/s) and time-to-first-chunk p50/p99 for each, and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

from tests.support.gatewayproc import free_port, start_gateway, wait_port  # noqa: E402

from aiserver.allowlist import probe_body  # noqa: E402

CHUNKS, GAP = 20, 0.02  # one stream ≈ 0.4 s of generation


def start_sim(host: str, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, str(REPO / "tests/support/ollama_sim.py"),
                             "--host", host, "--port", str(port), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not wait_port(host, port):
        raise RuntimeError("simulator did not start")
    return proc


async def one_stream(port: int, body: bytes) -> tuple[float, bool]:
    t0 = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nx-sim-chunks: {CHUNKS}\r\n"
            f"x-sim-chunk-gap: {GAP}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    writer.write(head + body)
    await writer.drain()
    first: float | None = None
    data = b""
    while True:
        chunk = await asyncio.wait_for(reader.read(65536), timeout=60)
        if not chunk:
            break
        if first is None and b"data: " in data + chunk:
            first = time.monotonic() - t0
        data += chunk
    writer.close()
    ok = data.startswith(b"HTTP/1.1 200") and b"data: [DONE]" in data
    return (first if first is not None else time.monotonic() - t0), ok


async def load(port: int, clients: int, seconds: float) -> dict[str, float]:
    body = json.dumps(probe_body("/v1/chat/completions", stream=True)).encode()
    stop = time.monotonic() + seconds
    ttfc: list[float] = []
    done = errors = 0

    async def client() -> None:
        nonlocal done, errors
        while time.monotonic() < stop:
            try:
                first, ok = await one_stream(port, body)
            except (TimeoutError, OSError):
                first, ok = 0.0, False
            if ok:
                done += 1
                ttfc.append(first)
            else:
                errors += 1

    t0 = time.monotonic()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.monotonic() - t0
    ttfc.sort()
    return {"streams": done, "errors": errors, "throughput": done / wall,
            "ttfc_p50": statistics.median(ttfc) * 1000 if ttfc else 0.0,
            "ttfc_p99": ttfc[min(len(ttfc) - 1, int(0.99 * len(ttfc)))] * 1000 if ttfc else 0.0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--clients", type=int, default=8)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-pool-"))
    os.environ["AI_SERVER_HOME"] = str(work / "home")
    ports = [free_port(), free_port("127.0.0.2")]
    sims = [start_sim("127.0.0.1", ports[0]), start_sim("127.0.0.2", ports[1])]
    gateways = []
    try:
        limits = {"upstream_concurrency": 1, "queue_size": 4096,
                  "per_source_connections": 4096, "per_source_requests_per_10s": 10_000_000}
        nodes = [f"127.0.0.1:{ports[0]}", f"127.0.0.2:{ports[1]}"]
        for i, members in enumerate((nodes[:1], nodes)):
            d = work / f"gw{i}"
            d.mkdir()
            gateways.append(start_gateway(d, ports[0], limits=limits,
                                          pool={"nodes": members, "affinity": "none"}))
        time.sleep(1.5)  # first health checks
        results = {}
        for label, gw in (("1 node", gateways[0]), ("2 nodes", gateways[1])):
            print(f"[{label}] {args.clients} clients streaming for {args.seconds:g} s …",
                  file=sys.stderr, flush=True)
            results[label] = asyncio.run(load(gw.port, args.clients, args.seconds))
        one, two = results["1 node"], results["2 nodes"]
        print(f"bench-pool: {args.clients} concurrent streams, {CHUNKS} chunks x "
              f"{GAP * 1000:.0f} ms each, every node one stream at a time, "
              f"{args.seconds:g} s per case")
        print(f"{'':<22}{'1 node':>12}{'2 nodes':>12}")
        for key, label in (("streams", "streams completed"), ("errors", "errors"),
                           ("throughput", "streams / s"), ("ttfc_p50", "first chunk p50 ms"),
                           ("ttfc_p99", "first chunk p99 ms")):
            print(f"{label:<22}{one[key]:>12.2f}{two[key]:>12.2f}")
        ratio = two["throughput"] / one["throughput"] if one["throughput"] else 0.0
        ok = ratio >= 1.8 and one["errors"] == two["errors"] == 0
        print(f"throughput ratio 2 nodes / 1 node: {ratio:.2f} (target >= 1.8, no errors): "
              f"{'PASS' if ok else 'FAIL'}")
        return 0
    finally:
        for gw in gateways:
            gw.stop()
        for p in sims:
            p.terminate()
            p.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
