#!/usr/bin/env python3
"""Benchmark the gateway against a direct connection to the upstream, side by side in one run.

These targets serve the same Ollama simulator (its own process, so its GIL does not share a
core's time slices with the load generator's):

* ``direct``   the simulator itself;
* ``gateway``  the real gateway (``ai-server run`` → HAProxy) with limits that are not the
  bottleneck;
* ``nginx``    Debian's nginx as a plain reverse proxy with an upstream keep-alive pool, the
  reference the gateway is held to (taken from the Debian archive with ``apt-get download``
  into the test cache on first use, never installed as a service; it listens on 127.0.0.1
  only); ``--no-nginx`` leaves it out;
* ``no-delay off``  a second HAProxy running a copy of the gateway's rendered config without
  the line ``option http-no-delay`` (streaming figures only, to show why the line is there);
* ``bare haproxy``  a third HAProxy with the gateway's global and defaults sections and access
  log, one frontend and one backend with the gateway's connection reuse, no request rules:
  what the same proxy costs doing only nginx's job, so the report can say how much of the
  gateway's added time is its rules and how much HAProxy itself (not in the load phase).

Figures: ``GET /api/version`` latency p50/p99 at concurrency 1 and 32 (direct and gateway
measured in alternating batches, so drift in machine load hits both alike); time to the first
streamed SSE event and the delays between events of single streams; time to the first event
of short streams each on a fresh client connection (connect included: what a new client
sees); then N concurrent streams for D seconds per target (errors, chunk delay = gap between
events minus the nominal gap, peak resident memory of the proxy's processes).

All clients are this process or its worker processes, on 127.0.0.1 only. Every process started
here is stopped on the way out (also on Ctrl-C). The exit status is 0 when the run completed,
whether or not a target was met (the report says which and why); 1 if the run itself failed;
130 when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import multiprocessing
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
BENCH_LIMITS: dict[str, Any] = {
    "per_source_connections": 4096,
    "per_source_requests_per_10s": 10_000_000,
    "upstream_concurrency": 1024,
    "queue_size": 4096,
    "max_connections": 8192,
}
NO_DELAY_LINE = "option http-no-delay"
STREAM_PATH = "/v1/chat/completions"
SMALL_REQUEST_PATH = "/api/version"
IO_TIMEOUT = 15.0  # seconds any single read may take before the exchange counts as failed

# Targets (the words).
TARGET_ADDED_P50_MS = 0.3  # added p50 at concurrency 1
TARGET_STREAM_MS = 2.0  # streamed chunks within this of direct
TARGET_LOAD_ERRORS = 0

DIRECT, GATEWAY, NGINX, NO_DELAY_OFF = "direct", "gateway", "nginx", "no-delay off"
BARE = "bare haproxy"
# the proxies in the table's column order (each with an 'added' column beside it)
PROXIES = (GATEWAY, BARE, NGINX, NO_DELAY_OFF)


# ---------------------------------------------------------------------------------------------
# Settings of one run
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    mode: str
    c1_requests: int  # per target
    c32_workers: int
    c32_per_worker_per_round: int
    rounds: int  # alternating batches
    stream_runs: int  # single streams per target
    stream_chunks: int
    stream_gap: float  # seconds
    load_streams: int
    load_duration: float
    load_chunks: int
    load_gap: float
    load_procs: int
    load_no_delay: bool
    fresh_runs: int  # short streams on fresh connections per target
    load_request_bytes: int  # body size of each load-phase request (0: the small probe)


def make_plan(args: argparse.Namespace) -> Plan:
    quick = bool(args.quick)
    return Plan(
        mode="quick" if quick else "full",
        c1_requests=args.requests or (500 if quick else 2000),
        c32_workers=32,
        c32_per_worker_per_round=10,
        rounds=5 if quick else 20,
        stream_runs=3 if quick else 8,
        stream_chunks=50,
        stream_gap=0.020,
        load_streams=args.streams,
        load_duration=args.duration if args.duration is not None else (5.0 if quick else 30.0),
        load_chunks=20,
        load_gap=0.050,
        load_procs=max(1, args.client_procs),
        load_no_delay=not args.skip_no_delay_load,
        fresh_runs=60 if quick else 300,
        load_request_bytes=args.request_bytes,
    )


# ---------------------------------------------------------------------------------------------
# Small numeric helpers
# ---------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    data = sorted(values)
    pos = (len(data) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def fmt(value: float, digits: int = 2, signed: bool = False) -> str:
    if math.isnan(value):
        return "-"
    value = round(value, digits) + 0.0  # no "-0.00"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


# ---------------------------------------------------------------------------------------------
# HTTP/1.1 response reading: one status line, headers, then a Content-Length or chunked body
# whose payload is split into SSE events (on blank lines, not on TCP reads)
# ---------------------------------------------------------------------------------------------


class ResponseParser:
    """Incremental parser; ``feed`` returns how many SSE events the new bytes completed."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._body = bytearray()
        self.status = 0
        self.head_done = False
        self.chunked = False
        self.content_length = 0
        self.close = False
        self.finished = False
        self.events = 0
        self.last_event = b""

    def feed(self, data: bytes) -> int:
        self._buf += data
        if not self.head_done:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return 0
            self._parse_head(bytes(self._buf[:end]).decode("latin-1"))
            del self._buf[:end + 4]
        if self.chunked:
            self._dechunk()
        else:
            take = min(len(self._buf), self.content_length - len(self._body))
            self._body += self._buf[:take]
            del self._buf[:take]
            self.finished = len(self._body) >= self.content_length
        return self._split_events()

    def _parse_head(self, head: str) -> None:
        lines = head.split("\r\n")
        parts = lines[0].split(" ", 2)
        self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "transfer-encoding" and "chunked" in value:
                self.chunked = True
            elif name == "content-length" and value.isdigit():
                self.content_length = int(value)
            elif name == "connection" and "close" in value:
                self.close = True
        self.head_done = True

    def _dechunk(self) -> None:
        while not self.finished:
            eol = self._buf.find(b"\r\n")
            if eol < 0:
                return
            size = int(bytes(self._buf[:eol]).split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                if self._buf.find(b"\r\n\r\n", eol) < 0:
                    return  # the trailer section (usually empty) is not complete yet
                self.finished = True
                self._buf.clear()
                return
            start = eol + 2
            if len(self._buf) < start + size + 2:
                return
            self._body += self._buf[start:start + size]
            del self._buf[:start + size + 2]

    def _split_events(self) -> int:
        count = 0
        while True:
            end = self._body.find(b"\n\n")
            if end < 0:
                return count
            self.last_event = bytes(self._body[:end])
            del self._body[:end + 2]
            self.events += 1
            count += 1

    @property
    def done_marker(self) -> bool:
        return self.last_event.strip() == b"data: [DONE]"


def small_request(port: int) -> bytes:
    return (f"GET {SMALL_REQUEST_PATH} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
            "User-Agent: bench-gateway\r\n\r\n").encode()


def stream_request(port: int, chunks: int, gap: float, size: int = 0) -> bytes:
    """A streamed chat request; with `size`, its body is padded to that many bytes."""
    sys.path.insert(0, str(REPO / "src"))
    from aiserver.allowlist import probe_body

    body_obj = probe_body(STREAM_PATH, stream=True)
    if body_obj is None:
        raise RuntimeError(f"allowlist.probe_body has no body for {STREAM_PATH}")
    body_obj = dict(body_obj)
    body_obj["max_tokens"] = chunks  # the probe body caps the answer at 16 tokens
    body = json.dumps(body_obj).encode()
    if size > len(body) + 12:
        body_obj["user"] = "u" * (size - len(body) - 12)  # 12 = len(', "user": ""')
        body = json.dumps(body_obj).encode()
    head = (f"POST {STREAM_PATH} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
            "User-Agent: bench-gateway\r\nContent-Type: application/json\r\n"
            f"Accept: text/event-stream\r\nContent-Length: {len(body)}\r\n"
            f"x-sim-chunks: {chunks}\r\nx-sim-chunk-gap: {gap:.6f}\r\n\r\n")
    return head.encode() + body


# ---------------------------------------------------------------------------------------------
# Blocking clients (concurrency 1): lowest client overhead for sub-millisecond figures
# ---------------------------------------------------------------------------------------------


class BlockingConnection:
    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None

    def connect(self) -> socket.socket:
        if self.sock is None:
            sock = socket.create_connection((HOST, self.port), timeout=IO_TIMEOUT)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock = sock
        return self.sock

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
            self.sock = None

    def exchange(self, request: bytes,
                 on_events: Callable[[float, int], None] | None = None) -> ResponseParser:
        """Send one request and read its whole response; ``on_events(t, n)`` per read."""
        sock = self.connect()
        parser = ResponseParser()
        try:
            sock.sendall(request)
            while not parser.finished:
                data = sock.recv(65536)
                now = time.perf_counter()
                if not data:
                    break
                n = parser.feed(data)
                if n and on_events is not None:
                    on_events(now, n)
        except OSError:
            self.close()
            raise
        if not parser.finished or parser.close:
            self.close()
        return parser


@dataclass
class LatencySamples:
    ms: dict[str, list[float]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)

    def add(self, target: str, value_ms: float) -> None:
        self.ms.setdefault(target, []).append(value_ms)


def order_for_round(targets: Sequence[str], round_no: int) -> list[str]:
    """Alternate which target goes first, so neither always follows the other."""
    return list(targets) if round_no % 2 == 0 else list(reversed(targets))


def bench_small_c1(ports: dict[str, int], plan: Plan) -> LatencySamples:
    samples = LatencySamples()
    conns = {name: BlockingConnection(port) for name, port in ports.items()}
    requests = {name: small_request(port) for name, port in ports.items()}
    per_round = max(1, plan.c1_requests // plan.rounds)
    try:
        for name in ports:  # warm-up: connections, caches, HAProxy's first-request paths
            for _ in range(100):
                conns[name].exchange(requests[name])
        for round_no in range(plan.rounds):
            for name in order_for_round(list(ports), round_no):
                conn, req = conns[name], requests[name]
                for _ in range(per_round):
                    t0 = time.perf_counter()
                    try:
                        resp = conn.exchange(req)
                    except OSError as exc:
                        samples.errors[f"{name}: {type(exc).__name__}"] += 1
                        continue
                    elapsed = time.perf_counter() - t0
                    if resp.status != 200 or not resp.finished:
                        samples.errors[f"{name}: HTTP {resp.status}"] += 1
                        continue
                    samples.add(name, elapsed * 1000.0)
    finally:
        for conn in conns.values():
            conn.close()
    return samples


@dataclass
class StreamTiming:
    ttfc_ms: float
    gaps_ms: list[float]
    ok: bool
    error: str = ""


def timed_stream(port: int, request: bytes) -> StreamTiming:
    """One stream on a fresh connection (connected before the clock starts)."""
    conn = BlockingConnection(port)
    stamps: list[float] = []

    def on_events(now: float, n: int) -> None:
        stamps.extend([now] * n)  # events completed by the same read arrived together

    try:
        conn.connect()
        t0 = time.perf_counter()
        resp = conn.exchange(request, on_events)
    except OSError as exc:
        return StreamTiming(math.nan, [], False, type(exc).__name__)
    finally:
        conn.close()
    ok = resp.status == 200 and resp.finished and resp.done_marker
    error = "" if ok else (f"HTTP {resp.status}" if resp.status != 200 else "truncated")
    if not stamps:
        return StreamTiming(math.nan, [], False, error or "no events")
    gaps = [(b - a) * 1000.0 for a, b in itertools.pairwise(stamps)]
    return StreamTiming((stamps[0] - t0) * 1000.0, gaps, ok, error)


def bench_fresh_first_chunk(ports: dict[str, int], plan: Plan) -> dict[str, list[float]]:
    """ms from connect() to the first SSE event of a short stream, a new connection each."""
    out: dict[str, list[float]] = {name: [] for name in ports}
    requests = {name: stream_request(port, 2, 0.001) for name, port in ports.items()}
    for run in range(plan.fresh_runs):
        for name in order_for_round(list(ports), run):
            conn = BlockingConnection(ports[name])
            first: list[float] = []

            def stamp(now: float, n: int, seen: list[float] = first) -> None:
                seen.append(now)

            try:
                t0 = time.perf_counter()
                conn.connect()
                resp = conn.exchange(requests[name], stamp)
            except OSError:
                continue
            finally:
                conn.close()
            if resp.status == 200 and first:
                out[name].append((first[0] - t0) * 1000.0)
    return out


@dataclass
class StreamFigures:
    ttfc_ms: list[float] = field(default_factory=list)
    gaps_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)


def bench_single_streams(ports: dict[str, int], plan: Plan) -> dict[str, StreamFigures]:
    figures = {name: StreamFigures() for name in ports}
    requests = {name: stream_request(port, plan.stream_chunks, plan.stream_gap)
                for name, port in ports.items()}
    warm = {name: stream_request(port, 3, 0.001) for name, port in ports.items()}
    for name, port in ports.items():
        timed_stream(port, warm[name])
    for run in range(plan.stream_runs):
        for name in order_for_round(list(ports), run):
            timing = timed_stream(ports[name], requests[name])
            fig = figures[name]
            if not timing.ok:
                fig.errors[timing.error] += 1
            if not math.isnan(timing.ttfc_ms):
                fig.ttfc_ms.append(timing.ttfc_ms)
                fig.gaps_ms.extend(timing.gaps_ms)
    return figures


# ---------------------------------------------------------------------------------------------
# asyncio clients: concurrency 32 small requests (this process) and the stream load (workers)
# ---------------------------------------------------------------------------------------------


class AsyncConnection:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def streams(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port, limit=1 << 20)
            sock = self.writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self.reader, self.writer

    async def close(self) -> None:
        writer, self.reader, self.writer = self.writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def _small_worker(conn: AsyncConnection, request: bytes, count: int, name: str,
                        samples: LatencySamples) -> None:
    for _ in range(count):
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(IO_TIMEOUT):
                reader, writer = await conn.streams()
                writer.write(request)
                parser = ResponseParser()
                while not parser.finished:
                    data = await reader.read(65536)
                    if not data:
                        break
                    parser.feed(data)
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            samples.errors[f"{name}: {type(exc).__name__}"] += 1
            await conn.close()
            continue
        elapsed = time.perf_counter() - t0
        if parser.status != 200 or not parser.finished:
            samples.errors[f"{name}: HTTP {parser.status}"] += 1
            await conn.close()
            continue
        if parser.close:
            await conn.close()
        samples.add(name, elapsed * 1000.0)


async def _bench_small_c32(ports: dict[str, int], plan: Plan) -> LatencySamples:
    samples = LatencySamples()
    warm = LatencySamples()
    conns = {name: [AsyncConnection(port) for _ in range(plan.c32_workers)]
             for name, port in ports.items()}
    requests = {name: small_request(port) for name, port in ports.items()}
    try:
        for name in ports:
            await asyncio.gather(*(_small_worker(c, requests[name], 5, name, warm)
                                   for c in conns[name]))
        for round_no in range(plan.rounds):
            for name in order_for_round(list(ports), round_no):
                await asyncio.gather(*(
                    _small_worker(c, requests[name], plan.c32_per_worker_per_round, name,
                                  samples)
                    for c in conns[name]))
    finally:
        for group in conns.values():
            for c in group:
                await c.close()
    return samples


def bench_small_c32(ports: dict[str, int], plan: Plan) -> LatencySamples:
    return asyncio.run(_bench_small_c32(ports, plan))


@dataclass
class LoadResult:
    streams_ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    delays_ms: list[float] = field(default_factory=list)  # gap between events minus nominal
    ttfc_ms: list[float] = field(default_factory=list)
    events: int = 0
    cpu_s: float = 0.0
    wall_s: float = 0.0

    def merge(self, other: LoadResult) -> None:
        self.streams_ok += other.streams_ok
        self.errors.update(other.errors)
        self.delays_ms.extend(other.delays_ms)
        self.ttfc_ms.extend(other.ttfc_ms)
        self.events += other.events
        self.cpu_s += other.cpu_s
        self.wall_s = max(self.wall_s, other.wall_s)


async def _one_load_stream(conn: AsyncConnection, request: bytes, gap_ms: float,
                           timeout: float, result: LoadResult) -> None:
    parser = ResponseParser()
    last = math.nan
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await conn.streams()
            t0 = time.perf_counter()
            writer.write(request)
            while not parser.finished:
                data = await reader.read(65536)
                now = time.perf_counter()
                if not data:
                    break
                n = parser.feed(data)
                if not n:
                    continue
                if math.isnan(last):
                    result.ttfc_ms.append((now - t0) * 1000.0)
                    result.delays_ms.extend([-gap_ms] * (n - 1))
                else:
                    result.delays_ms.append((now - last) * 1000.0 - gap_ms)
                    result.delays_ms.extend([-gap_ms] * (n - 1))
                last = now
                result.events += n
    except TimeoutError:
        error = "timeout"
    except (OSError, asyncio.IncompleteReadError) as exc:
        error = f"connection: {type(exc).__name__}"
    else:
        if parser.status != 200:
            error = f"HTTP {parser.status}" if parser.status else "no response"
        elif not parser.finished or not parser.done_marker:
            error = "truncated (no data: [DONE])"
        else:
            result.streams_ok += 1
            if parser.close:
                await conn.close()
            return
    result.errors[error] += 1
    await conn.close()
    await asyncio.sleep(gap_ms / 1000.0)  # no tight retry loop against a failing target


async def _load_client(port: int, request: bytes, gap_ms: float, stream_s: float,
                       offset: float, start_at: float, end_at: float,
                       result: LoadResult) -> None:
    conn = AsyncConnection(port)
    try:
        await asyncio.sleep(max(0.0, start_at + offset - time.time()))
        while time.time() < end_at:
            await _one_load_stream(conn, request, gap_ms, stream_s * 3 + 10.0, result)
    finally:
        await conn.close()


async def _load_main(port: int, request: bytes, gap: float, chunks: int, total_streams: int,
                     indices: list[int], start_at: float, end_at: float,
                     hard_stop: float) -> LoadResult:
    result = LoadResult()
    stream_s = (chunks + 1) * gap
    tasks = [asyncio.create_task(_load_client(
        port, request, gap * 1000.0, stream_s, stream_s * i / total_streams, start_at, end_at,
        result)) for i in indices]
    done, pending = await asyncio.wait(tasks, timeout=max(1.0, hard_stop - time.time()))
    for task in pending:
        task.cancel()
        result.errors["still running at the hard stop"] += 1
    await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        exc = task.exception()
        if exc is not None:
            result.errors[f"client crash: {type(exc).__name__}: {exc}"] += 1
    return result


def load_worker(port: int, request: bytes, gap: float, chunks: int, total_streams: int,
                indices: list[int], start_at: float, end_at: float,
                hard_stop: float) -> LoadResult:
    """Entry point of a load worker process (spawned; returns its results pickled)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = asyncio.run(_load_main(port, request, gap, chunks, total_streams, indices,
                                    start_at, end_at, hard_stop))
    result.cpu_s = time.process_time() - cpu0
    result.wall_s = time.perf_counter() - wall0
    return result


# ---------------------------------------------------------------------------------------------
# CPU accounting of the processes under test (Linux /proc; "n/a" elsewhere)
# ---------------------------------------------------------------------------------------------


def _proc_children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def tree_cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a process and its descendants (NaN without /proc)."""
    if not Path("/proc/self/stat").exists():
        return math.nan
    children = _proc_children()
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        total += (int(fields[11]) + int(fields[12])) / tick
        stack.extend(children.get(p, []))
    return total


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and its descendants, MiB (NaN without /proc)."""
    if not Path("/proc/self/status").exists():
        return math.nan
    children = _proc_children()
    total_kib, stack = 0, [pid]
    while stack:
        p = stack.pop()
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
        stack.extend(children.get(p, []))
    return total_kib / 1024.0


class PeakRss:
    """Samples tree_rss_mib(pid) every 0.2 s in a thread; .peak is the highest seen."""

    def __init__(self, pid: int) -> None:
        import threading

        self.pid, self.peak = pid, tree_rss_mib(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, tree_rss_mib(self.pid))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join(5)
        return self.peak


# ---------------------------------------------------------------------------------------------
# The processes under test
# ---------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes] | None, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {HOST}:{port} after {timeout:.0f} s")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


_BIND_RE = re.compile(r"^(\s*bind\s+)(\S+):(\d+)(.*)$")
_STATS_RE = re.compile(r"^(\s*stats\s+socket\s+)(\S+)(.*)$")


def nginx_binary() -> str:
    """nginx on PATH, else Debian's package unpacked (never installed) into the test cache."""
    found = shutil.which("nginx")
    if found:
        return found
    cache = Path(os.environ.get("ROP_TEST_CACHE") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        / "remote-ollama-proxy-tests")
    unpacked = sorted(cache.glob("nginx-*/usr/sbin/nginx"))
    if unpacked:
        return str(unpacked[-1])
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise RuntimeError("nginx is not installed and apt-get/dpkg-deb are missing: install "
                           "nginx or run with --no-nginx")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        # download only: no maintainer scripts, so no service on port 80 is ever started
        subprocess.run(["apt-get", "download", "-q", "nginx"], cwd=tmp, check=True,
                       capture_output=True, timeout=300)
        deb = next(Path(tmp).glob("nginx_*.deb"))
        dest = cache / deb.name.removesuffix(".deb")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True, timeout=120)
    return str(dest / "usr/sbin/nginx")


def nginx_config(workdir: Path, port: int, upstream_port: int) -> str:
    tmp = workdir / "nginx-tmp"
    tmp.mkdir(exist_ok=True)
    temp_paths = "\n".join(f"    {kind}_temp_path {tmp / kind};" for kind in (
        "client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    user = "user root root;\n" if os.geteuid() == 0 else ""
    # the same job as the gateway's proxying part: keep-alive pool upstream, no buffering of
    # responses (streaming), Host rewritten for Ollama; loopback only
    return f"""{user}worker_processes auto;
daemon off;
pid {workdir / "nginx.pid"};
error_log stderr warn;
events {{ worker_connections 8192; }}
http {{
    access_log {workdir / "nginx-access.log"};  # one line per request, like the gateway
{temp_paths}
    upstream ollama {{ server {HOST}:{upstream_port}; keepalive 64; }}
    server {{
        listen {HOST}:{port};
        client_max_body_size 32m;
        tcp_nodelay on;
        location / {{
            proxy_pass http://ollama;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host {HOST}:{upstream_port};
            proxy_buffering off;
            proxy_read_timeout 30m;
        }}
    }}
}}
"""


def config_without_no_delay(text: str, ports: dict[int, int], stats_socket: str) -> str:
    """The gateway's config minus ``option http-no-delay``, on other ports and another socket."""
    out: list[str] = ["# bench-gateway copy: `option http-no-delay` removed, ports moved."]
    removed = 0
    for line in text.splitlines():
        if line.strip() == NO_DELAY_LINE:
            removed += 1
            continue
        bind = _BIND_RE.match(line)
        if bind:
            old = int(bind.group(3))
            if old not in ports:
                raise RuntimeError(f"unexpected bind line in the rendered config: {line.strip()}")
            line = f"{bind.group(1)}{bind.group(2)}:{ports[old]}{bind.group(4)}"
        stats = _STATS_RE.match(line)
        if stats:
            line = f"{stats.group(1)}{stats_socket}{stats.group(3)}"
        if line.strip().startswith("acl host_ok "):  # the names it answers to carry the port
            for old, new in ports.items():
                line = re.sub(rf":{old}(?=\s|$)", f":{new}", line)
        out.append(line)
    if removed != 1:
        raise RuntimeError(f"expected one `{NO_DELAY_LINE}` line in the config, found {removed}")
    return "\n".join(out) + "\n"


_SECTIONS_KEPT = ("global", "defaults", "http-errors")


def bare_config(text: str, port: int, stats_socket: str) -> str:
    """The same HAProxy doing only what nginx does here: the gateway's global, defaults and
    error sections (buffers, timeouts) and its access log line, with one frontend that
    forwards everything to Ollama over a backend that reuses connections like the gateway's,
    no request rules. The gap between this
    column and nginx is HAProxy's; the gap between the gateway and this one is the rules'."""
    keep: list[str] = ["# bench-gateway copy: the gateway minus its rules (bare proxying)."]
    section = ""
    log_format = upstream = ""
    for line in text.splitlines():
        if line and not line[0].isspace() and not line.startswith(("#", ".")):
            section = line.split()[0]  # (".if"/".endif" blocks stay in their section)
        stripped = line.strip()
        if stripped.startswith("log-format ") and not log_format:
            log_format = stripped
        if stripped.startswith("server ollama ") and not upstream:
            upstream = stripped.split()[2]
        if section not in _SECTIONS_KEPT:
            continue
        stats = _STATS_RE.match(line)
        if stats:
            line = f"{stats.group(1)}{stats_socket}{stats.group(3)}"
        keep.append(line)
    if not log_format or not upstream:
        raise RuntimeError("the rendered config has no log-format or no `server ollama` line")
    keep += ["", "frontend bare", f"    bind {HOST}:{port}", f"    {log_format}",
             "    default_backend ollama", "", "backend ollama", "    option abortonclose",
             "    http-reuse always", f"    http-request set-header Host {upstream}",
             f"    server ollama {upstream} maxconn {BENCH_LIMITS['upstream_concurrency']}"]
    return "\n".join(keep) + "\n"


@dataclass
class Stack:
    """The simulator, the gateway and the gateway copy without http-no-delay."""

    workdir: Path
    sim: subprocess.Popen[bytes] | None = None
    sim_port: int = 0
    gateway: Any = None  # tests.support.gatewayproc.GatewayProcess
    # HAProxy copies of the rendered config: target -> (process, port)
    copies: dict[str, tuple[subprocess.Popen[bytes], int]] = field(default_factory=dict)
    nginx: subprocess.Popen[bytes] | None = None
    nginx_port: int = 0
    with_nginx: bool = True
    haproxy: str | None = None  # binary; default: $AI_SERVER_HAPROXY or haproxy on PATH
    haproxy_version: str = ""
    _files: list[Any] = field(default_factory=list)
    _socket_dirs: list[Path] = field(default_factory=list)  # removed once HAProxy has stopped

    def start(self) -> None:
        sys.path.insert(0, str(REPO))
        sys.path.insert(0, str(REPO / "src"))
        from tests.support.gatewayproc import start_gateway

        from aiserver.gateway.render import haproxy_binary

        os.environ["AI_SERVER_HOME"] = str(self.workdir / "ai-server-home")
        if self.haproxy:
            os.environ["AI_SERVER_HAPROXY"] = self.haproxy
        self.sim_port = free_port()
        sim_log = open(self.workdir / "sim.log", "wb")  # noqa: SIM115 (closed in stop())
        self._files.append(sim_log)
        self.sim = subprocess.Popen(
            [sys.executable, str(REPO / "tests/support/ollama_sim.py"), "--host", HOST,
             "--port", str(self.sim_port), "--quiet"],
            stdin=subprocess.DEVNULL, stdout=sim_log, stderr=subprocess.STDOUT)
        wait_port(self.sim_port, self.sim)

        self.gateway = start_gateway(self.workdir, self.sim_port, limits=BENCH_LIMITS)

        binary = shutil.which(haproxy_binary()) or haproxy_binary()
        version = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10,
                                 check=False).stdout.split("\n", 1)[0]
        self.haproxy_version = " ".join(version.split()[:3])
        rendered = (Path(os.environ["AI_SERVER_HOME"]) / "state" / "gateway" / "current"
                    / "haproxy.cfg")
        for line in rendered.read_text().splitlines():
            stats = _STATS_RE.match(line)
            if stats and Path(stats.group(2)).parent.name.startswith("aigw-"):
                self._socket_dirs.append(Path(stats.group(2)).parent)  # start_gateway's mkdtemp
        sock_dir = tempfile.mkdtemp(prefix="bgw-", dir="/tmp")  # Unix socket paths are short
        self._socket_dirs.append(Path(sock_dir))
        text = rendered.read_text()
        port = free_port()
        self._start_copy(binary, NO_DELAY_OFF, port, config_without_no_delay(
            text, {self.gateway.port: port, self.gateway.metrics_port: free_port()},
            f"{sock_dir}/no-delay-off.sock"))
        port = free_port()
        self._start_copy(binary, BARE, port, bare_config(text, port, f"{sock_dir}/bare.sock"))
        if self.with_nginx:
            self.nginx_port = free_port()
            conf = self.workdir / "nginx.conf"
            conf.write_text(nginx_config(self.workdir, self.nginx_port, self.sim_port))
            ng_log = open(self.workdir / "nginx.log", "wb")  # noqa: SIM115
            self._files.append(ng_log)
            self.nginx = subprocess.Popen([nginx_binary(), "-p", str(self.workdir), "-e",
                                           "stderr", "-c", str(conf)],
                                          stdin=subprocess.DEVNULL, stdout=ng_log,
                                          stderr=subprocess.STDOUT)
            wait_port(self.nginx_port, self.nginx)
        self._wait_ready()

    def _start_copy(self, binary: str, name: str, port: int, config: str) -> None:
        slug = name.replace(" ", "-")
        path = self.workdir / f"haproxy-{slug}.cfg"
        path.write_text(config)
        log = open(self.workdir / f"haproxy-{slug}.log", "wb")  # noqa: SIM115 (closed in stop())
        self._files.append(log)
        proc = subprocess.Popen([binary, "-W", "-db", "-f", str(path)], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT)
        self.copies[name] = (proc, port)
        wait_port(port, proc)

    def _wait_ready(self) -> None:
        """Until every target answers GET /api/version with 200 (health checks are up)."""
        deadline = time.monotonic() + 15
        for port in self.ports().values():
            while True:
                conn = BlockingConnection(port)
                try:
                    if conn.exchange(small_request(port)).status == 200:
                        break
                except OSError:
                    pass
                finally:
                    conn.close()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{HOST}:{port} does not answer GET {SMALL_REQUEST_PATH}")
                time.sleep(0.1)

    def ports(self) -> dict[str, int]:
        ports = {DIRECT: self.sim_port, GATEWAY: int(self.gateway.port)}
        ports.update({name: port for name, (_, port) in self.copies.items()})
        if self.nginx is not None:
            ports[NGINX] = self.nginx_port
        return ports

    def pids(self) -> dict[str, int]:
        pids: dict[str, int] = {}
        if self.sim is not None:
            pids["sim"] = self.sim.pid
        if self.gateway is not None:
            pids[GATEWAY] = int(self.gateway.proc.pid)
        pids.update({name: proc.pid for name, (proc, _) in self.copies.items()})
        if self.nginx is not None:
            pids[NGINX] = self.nginx.pid
        return pids

    def stop(self) -> None:
        errors: list[str] = []
        for stop in (self._stop_nginx, self._stop_copies, self._stop_gateway,
                     self._stop_sim):
            try:
                stop()
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
        for f in self._files:
            f.close()
        for d in self._socket_dirs:
            shutil.rmtree(d, ignore_errors=True)
        if errors:
            print("bench-gateway: cleanup problems: " + "; ".join(errors), file=sys.stderr)

    def _stop_nginx(self) -> None:
        if self.nginx is not None:
            stop_process(self.nginx)

    def _stop_copies(self) -> None:
        for proc, _ in self.copies.values():
            stop_process(proc)

    def _stop_gateway(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()

    def _stop_sim(self) -> None:
        if self.sim is not None:
            stop_process(self.sim)


# ---------------------------------------------------------------------------------------------
# The load phase
# ---------------------------------------------------------------------------------------------


@dataclass
class LoadFigures:
    result: LoadResult
    wall_s: float
    cpu_s: dict[str, float]  # per process under test
    rss_mib: float = math.nan  # peak resident memory of the proxy's processes


def bench_load(stack: Stack, target: str, plan: Plan) -> LoadFigures:
    port = stack.ports()[target]
    request = stream_request(port, plan.load_chunks, plan.load_gap, plan.load_request_bytes)
    procs = min(plan.load_procs, plan.load_streams)
    shares = [list(range(i, plan.load_streams, procs)) for i in range(procs)]
    stream_s = (plan.load_chunks + 1) * plan.load_gap
    pids = stack.pids()
    watched = {"sim": pids["sim"]}
    if target != DIRECT:
        watched["haproxy"] = pids[target]
    rss = PeakRss(pids[target]) if target != DIRECT else None
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(procs) as pool:
        pool.map(abs, range(procs))  # wait until every worker has started (spawn is slow)
        start_at = time.time() + 1.0
        end_at = start_at + plan.load_duration
        hard_stop = end_at + stream_s * 3 + 15.0
        cpu0 = {name: tree_cpu_seconds(pid) for name, pid in watched.items()}
        t0 = time.perf_counter()
        pending = pool.starmap_async(load_worker, [
            (port, request, plan.load_gap, plan.load_chunks, plan.load_streams, share,
             start_at, end_at, hard_stop) for share in shares])
        results: list[LoadResult] = pending.get(timeout=hard_stop - time.time() + 30.0)
        wall = time.perf_counter() - t0
        cpu = {name: tree_cpu_seconds(pid) - cpu0[name] for name, pid in watched.items()}
    merged = LoadResult()
    for r in results:
        merged.merge(r)
    cpu["client"] = sum(r.cpu_s for r in results)
    return LoadFigures(merged, wall, cpu, rss.stop() if rss is not None else math.nan)


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


@dataclass
class Report:
    plan: Plan
    c1: LatencySamples
    c32: LatencySamples
    streams: dict[str, StreamFigures]
    load: dict[str, LoadFigures]
    haproxy_version: str
    elapsed_s: float = 0.0
    fresh: dict[str, list[float]] = field(default_factory=dict)


COL = 13
LABEL = 38


def _row(label: str, cells: Sequence[str]) -> str:
    return f"{label:<{LABEL}}" + "".join(f"{c:>{COL}}" for c in cells)


def _jitter(gaps: Sequence[float], nominal_ms: float) -> float:
    return mean([abs(g - nominal_ms) for g in gaps])


def render(rep: Report) -> Iterator[str]:
    plan = rep.plan
    cols = [DIRECT] + [c for t in PROXIES for c in (t, "added")]
    yield (f"bench-gateway ({plan.mode} mode): {rep.haproxy_version}, {os.cpu_count()} CPUs, "
           "upstream = Ollama simulator (separate process), all on 127.0.0.1")
    yield ("direct = this client + the simulator alone (the floor these clients can measure); "
           "'added' = minus direct")
    yield f"'no-delay off' = the gateway's rendered config without `{NO_DELAY_LINE}`"
    yield ("'bare haproxy' = the same HAProxy, global and defaults (buffers), connection reuse "
           "and access log, with no request rules: the proxy alone, as nginx is configured")
    yield ""
    yield _row("", cols)

    def triple(values: Sequence[float], digits: int = 2) -> list[str]:
        """direct, then value and value-minus-direct for each of PROXIES."""
        d, *rest = (*values, *[math.nan] * len(PROXIES))[:1 + len(PROXIES)]
        cells = [fmt(d, digits)]
        for v in rest:
            cells += [fmt(v, digits), fmt(v - d, digits, True)]
        return cells

    for label, samples in ((f"1 (keep-alive, {plan.rounds} alternating batches)", rep.c1),
                           (f"{plan.c32_workers} (asyncio, one client process)", rep.c32)):
        measured = [samples.ms.get(t, []) for t in (DIRECT, *PROXIES)]
        counts = " + ".join(str(len(v)) for v in measured if v)
        yield f"GET {SMALL_REQUEST_PATH}, concurrency {label}, {counts} requests"
        for q in (50, 99):
            yield _row(f"  latency p{q} ms", triple(
                [percentile(v, q) for v in measured], digits=3))
        if samples.errors:
            yield "  errors: " + ", ".join(f"{k} x{v}" for k, v in sorted(samples.errors.items()))

    gap_ms = plan.stream_gap * 1000.0
    s = rep.streams
    yield (f"single streams POST {STREAM_PATH}, {plan.stream_runs} per target: "
           f"{plan.stream_chunks} tokens, {gap_ms:.0f} ms nominal gap, SSE events timed")

    def srow(fn: Callable[[StreamFigures], float]) -> list[str]:
        return triple([fn(s[t]) if t in s else math.nan for t in (DIRECT, *PROXIES)])

    yield _row("  time to first chunk p50 ms", srow(lambda f: percentile(f.ttfc_ms, 50)))
    yield _row("  time to first chunk max ms", srow(lambda f: max(f.ttfc_ms, default=math.nan)))
    yield _row("  inter-chunk delay mean ms", srow(lambda f: mean(f.gaps_ms)))
    yield _row("  inter-chunk delay p99 ms", srow(lambda f: percentile(f.gaps_ms, 99)))
    yield _row(f"  mean |gap - {gap_ms:.0f} ms| ms", srow(lambda f: _jitter(f.gaps_ms, gap_ms)))
    for t in (DIRECT, *PROXIES):
        if t in s and s[t].errors:
            yield f"  {t} errors: " + ", ".join(f"{k} x{v}" for k, v in s[t].errors.items())

    f = rep.fresh
    yield (f"short streams, each on a fresh client connection ({plan.fresh_runs} per target): "
           "connect() to the first SSE event")
    for q in (50, 99):
        yield _row(f"  first chunk p{q} ms", triple(
            [percentile(f.get(t, []), q) for t in (DIRECT, *PROXIES)],
            digits=3))

    load = rep.load
    size = f", {plan.load_request_bytes} B requests" if plan.load_request_bytes else ""
    yield (f"{plan.load_streams} concurrent streams for {plan.load_duration:g} s per target: "
           f"{plan.load_chunks} tokens, {plan.load_gap * 1000:.0f} ms nominal gap, "
           f"{plan.load_procs} asyncio client processes{size}")

    def lrow(fn: Callable[[LoadFigures], float], digits: int = 2,
             added: bool = True) -> list[str]:
        vals = [fn(load[t]) if t in load else math.nan for t in (DIRECT, *PROXIES)]
        cells = triple(vals, digits=digits)
        return cells if added else [c if i == 0 or i % 2 else "" for i, c in enumerate(cells)]

    def count_cell(t: str, fn: Callable[[LoadFigures], int]) -> str:
        return str(fn(load[t])) if t in load else "-"

    def count_row(fn: Callable[[LoadFigures], int]) -> list[str]:
        return [count_cell(DIRECT, fn)] + [c for t in PROXIES for c in (count_cell(t, fn), "")]

    yield _row("  streams completed", count_row(lambda f: f.result.streams_ok))
    yield _row("  errors", count_row(lambda f: sum(f.result.errors.values())))
    yield _row("  chunk delay p50 ms (gap-nominal)",
               lrow(lambda f: percentile(f.result.delays_ms, 50)))
    yield _row("  chunk delay p99 ms (gap-nominal)",
               lrow(lambda f: percentile(f.result.delays_ms, 99)))
    yield _row("  chunk delay max ms", lrow(lambda f: max(f.result.delays_ms, default=math.nan)))
    yield _row("  time to first chunk p99 ms", lrow(lambda f: percentile(f.result.ttfc_ms, 99)))
    yield _row("  CPU % of a core: client processes",
               lrow(lambda f: 100 * f.cpu_s["client"] / f.wall_s, 0, added=False))
    yield _row("  CPU % of a core: simulator",
               lrow(lambda f: 100 * f.cpu_s["sim"] / f.wall_s, 0, added=False))
    yield _row("  CPU % of a core: the proxy",
               lrow(lambda f: 100 * f.cpu_s.get("haproxy", math.nan) / f.wall_s, 0, added=False))
    yield _row("  proxy resident memory, peak MiB", lrow(lambda f: f.rss_mib, 1, added=False))
    for t in (DIRECT, *PROXIES):
        if t in load and load[t].result.errors:
            yield f"  {t} errors: " + ", ".join(
                f"{k} x{v}" for k, v in sorted(load[t].result.errors.items()))
    yield ""
    yield from verdicts(rep)
    yield f"total run time {rep.elapsed_s:.0f} s"


def verdicts(rep: Report) -> Iterator[str]:
    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    c1d, c1g = rep.c1.ms.get(DIRECT, []), rep.c1.ms.get(GATEWAY, [])
    added = percentile(c1g, 50) - percentile(c1d, 50)
    ok = not math.isnan(added) and added <= TARGET_ADDED_P50_MS and not rep.c1.errors
    why = "" if ok else ("  <- errors during the measurement" if rep.c1.errors and
                         added <= TARGET_ADDED_P50_MS else "  <- the gateway adds too much")
    yield (f"{verdict(ok)}  added p50 latency at concurrency 1: {fmt(added, 3, True)} ms "
           f"(target <= {TARGET_ADDED_P50_MS} ms){why}")

    gap_ms = rep.plan.stream_gap * 1000.0

    def stream_diffs(target: str) -> dict[str, float]:
        d, t = rep.streams[DIRECT], rep.streams[target]
        return {
            "first chunk p50": percentile(t.ttfc_ms, 50) - percentile(d.ttfc_ms, 50),
            "mean |gap - nominal|": _jitter(t.gaps_ms, gap_ms) - _jitter(d.gaps_ms, gap_ms),
            "gap p99": percentile(t.gaps_ms, 99) - percentile(d.gaps_ms, 99),
        }

    diffs = stream_diffs(GATEWAY)
    stream_errors = sum(rep.streams[GATEWAY].errors.values())
    ok = all(v <= TARGET_STREAM_MS for v in diffs.values()) and not stream_errors  # NaN: False
    detail = ", ".join(f"{k} {fmt(v, 2, True)} ms" for k, v in diffs.items())
    why = "" if ok else ("  <- gateway stream errors" if stream_errors
                         else "  <- chunks are held back by the gateway")
    yield (f"{verdict(ok)}  streamed chunks within {TARGET_STREAM_MS:g} ms of direct: {detail} "
           f"(each <= {TARGET_STREAM_MS:g} ms){why}")

    if GATEWAY in rep.load:
        res = rep.load[GATEWAY].result
        errors = sum(res.errors.values())
        ok = errors <= TARGET_LOAD_ERRORS and res.streams_ok > 0
        why = "" if ok else "  <- " + (", ".join(f"{k} x{v}" for k, v in res.errors.items())
                                       or "no stream completed")
        yield (f"{verdict(ok)}  {rep.plan.load_streams} concurrent streams through the gateway "
               f"for {rep.plan.load_duration:g} s: {errors} errors in "
               f"{res.streams_ok + errors} streams (target {TARGET_LOAD_ERRORS}){why}")

    if NGINX in rep.c1.ms:
        ng_added = percentile(rep.c1.ms[NGINX], 50) - percentile(c1d, 50)
        ok = not math.isnan(ng_added) and added <= ng_added
        yield (f"{verdict(ok)}  added p50 at concurrency 1 vs nginx (same run): gateway "
               f"{fmt(added, 3, True)} ms, nginx {fmt(ng_added, 3, True)} ms (target: gateway "
               "<= nginx)")
    if rep.fresh.get(NGINX) and rep.fresh.get(GATEWAY):
        fd = percentile(rep.fresh.get(DIRECT, []), 50)
        g_fc = percentile(rep.fresh[GATEWAY], 50) - fd
        n_fc = percentile(rep.fresh[NGINX], 50) - fd
        ok = not math.isnan(g_fc) and g_fc <= n_fc
        yield (f"{verdict(ok)}  added first chunk p50 on fresh connections vs nginx: gateway "
               f"{fmt(g_fc, 3, True)} ms, nginx {fmt(n_fc, 3, True)} ms (target: gateway <= "
               "nginx)")

    if rep.c1.ms.get(BARE) and rep.fresh.get(BARE):
        c1_added = {t: percentile(rep.c1.ms.get(t, []), 50) - percentile(c1d, 50)
                    for t in (GATEWAY, BARE, NGINX)}
        fd = percentile(rep.fresh.get(DIRECT, []), 50)
        fc_added = {t: percentile(rep.fresh.get(t, []), 50) - fd for t in (GATEWAY, BARE, NGINX)}
        yield ("INFO  where the gateway's added time goes (p50, same run): the request rules and "
               f"log fields {fmt(c1_added[GATEWAY] - c1_added[BARE], 3, True)} ms per request, "
               f"{fmt(fc_added[GATEWAY] - fc_added[BARE], 3, True)} ms to a fresh connection's "
               "first chunk; bare HAProxy vs nginx "
               f"{fmt(c1_added[BARE] - c1_added[NGINX], 3, True)} ms per request, "
               f"{fmt(fc_added[BARE] - fc_added[NGINX], 3, True)} ms to a first chunk")

    nd = stream_diffs(NO_DELAY_OFF)
    parts = [f"{k} {fmt(v, 1, True)} ms" for k, v in nd.items()]
    if NO_DELAY_OFF in rep.load and DIRECT in rep.load:
        p99 = (percentile(rep.load[NO_DELAY_OFF].result.delays_ms, 99)
               - percentile(rep.load[DIRECT].result.delays_ms, 99))
        parts.append(f"chunk delay p99 under load {fmt(p99, 1, True)} ms")
    yield ("INFO  without http-no-delay, vs direct: " + ", ".join(parts)
           + " — why the template has that line")


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench-gateway",
        description="Gateway vs direct-to-upstream latency and streaming, side by side.")
    parser.add_argument("--quick", action="store_true",
                        help="fewer samples and a 5 s load phase (a trial run of about 35 s)")
    parser.add_argument("--duration", type=float, default=None, metavar="S",
                        help="seconds of concurrent streams per target (default 30; quick 5)")
    parser.add_argument("--streams", type=int, default=256, metavar="N",
                        help="concurrent streams in the load phase (default 256)")
    parser.add_argument("--requests", type=int, default=0, metavar="N",
                        help="small requests per target at concurrency 1 (default 2000)")
    parser.add_argument("--client-procs", type=int, default=2, metavar="N",
                        help="load-generator processes for the stream load (default 2)")
    parser.add_argument("--skip-no-delay-load", action="store_true",
                        help="no load phase for the gateway without http-no-delay")
    parser.add_argument("--request-bytes", type=int, default=0, metavar="N",
                        help="pad each load-phase request body to N bytes (e.g. 204800, what "
                             "an agent sends), to see the memory of buffered bodies")
    parser.add_argument("--no-nginx", action="store_true",
                        help="leave nginx (the reference proxy) out of the run")
    parser.add_argument("--haproxy", default=None, metavar="PATH",
                        help="the HAProxy binary for the gateway (default: $AI_SERVER_HAPROXY "
                             "or haproxy on PATH), e.g. the 3.4.0 build of scripts/test")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work directory (logs, configs) and print its path")
    args = parser.parse_args(argv)
    if args.streams < 1 or (args.duration is not None and args.duration <= 0):
        parser.error("--streams and --duration must be positive")
    return args


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan = make_plan(args)
    started = time.perf_counter()
    signal.signal(signal.SIGTERM, _raise_interrupt)  # clean up on `kill` as on Ctrl-C
    workdir = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    stack = Stack(workdir, with_nginx=not args.no_nginx, haproxy=args.haproxy)

    def progress(text: str) -> None:
        print(f"[{time.perf_counter() - started:5.0f} s] {text}", file=sys.stderr, flush=True)

    try:
        progress("starting the simulator, the gateway, nginx and the copy without "
                 "http-no-delay")
        stack.start()
        ports = stack.ports()
        pair = {t: ports[t] for t in (DIRECT, GATEWAY, BARE, NGINX) if t in ports}
        progress("small requests, concurrency 1")
        c1 = bench_small_c1(pair, plan)
        progress("small requests, concurrency 32")
        c32 = bench_small_c32(pair, plan)
        progress("single streams")
        streams = bench_single_streams(ports, plan)
        progress("first chunk on fresh client connections")
        fresh = bench_fresh_first_chunk(ports, plan)
        load: dict[str, LoadFigures] = {}
        targets = [DIRECT, GATEWAY] + ([NGINX] if NGINX in ports else []) + (
            [NO_DELAY_OFF] if plan.load_no_delay else [])
        for target in targets:
            progress(f"{plan.load_streams} concurrent streams for {plan.load_duration:g} s: "
                     f"{target}")
            load[target] = bench_load(stack, target, plan)
    except KeyboardInterrupt:
        print("bench-gateway: interrupted, cleaning up", file=sys.stderr)
        return 130
    except Exception as exc:
        print(f"bench-gateway: the run failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(f"bench-gateway: logs in {workdir}", file=sys.stderr)
        args.keep = True
        return 1
    finally:
        with contextlib.suppress(KeyboardInterrupt):
            stack.stop()
        if args.keep:
            print(f"bench-gateway: work directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report = Report(plan, c1, c32, streams, load, stack.haproxy_version,
                    time.perf_counter() - started, fresh)
    for line in render(report):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
