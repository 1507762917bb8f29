"""The gateway's access log: parse it, read its tail, follow it, and summarise usage.

One JSON object per line, as rendered from gateway.render.LOG_FIELDS; any other line (an HAProxy
notice, a half-written line) is skipped and counted. Percentiles use the nearest-rank method:
the p-th percentile of n sorted values is the value at 1-based rank ceil(p/100 * n), so it is
always an observed value and the median of an even count is the lower middle one.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aicommon.errors import AiError, ExitCode
from aicommon.paths import server_paths
from aiserver.settings import Settings

GROUP_BY = ("device", "path", "status", "client", "node")
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_SINCE = re.compile(r"^(\d+)(s|m|h|d|w)$")
_SINCE_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_STR_FIELDS = ("client", "device", "method", "path", "termination", "session", "agent")
_INT_FIELDS = ("status", "bytes_in", "bytes_out", "queue_ms", "ttfb_ms", "total_ms")


def access_log_path(settings: Settings) -> Path:
    """Where the gateway service sends HAProxy's stdout (the access log)."""
    del settings  # one gateway per user; a parameter for symmetry with the other paths
    return server_paths().log_dir / "gateway.log"


@dataclass(frozen=True)
class Entry:
    """One access-log line."""

    time: datetime  # UTC, end of the request
    client: str
    device: str  # "-" without a token
    method: str
    path: str
    status: int
    bytes_in: int
    bytes_out: int
    queue_ms: int
    ttfb_ms: int  # -1: no response from Ollama
    total_ms: int
    termination: str
    session: str
    agent: str
    node: str = "-"  # the server that answered ("ollama", a pool node, "<NOSRV>": the gateway)
    auth: str = "-"  # with tokens: "ok", "missing" or "rejected" (a token was sent, not accepted)

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"time": self.time.strftime(TIME_FORMAT)}
        data.update({k: getattr(self, k) for k in (*_STR_FIELDS, "node", "auth",
                                                   *_INT_FIELDS)})
        return data


def parse_line(line: str) -> Entry | None:
    """The entry on one line, or None when the line is not an access-log object."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        doc = json.loads(text)
        when = datetime.strptime(doc["time"], TIME_FORMAT).replace(tzinfo=UTC)
        strs = {k: doc.get(k, "-") for k in (*_STR_FIELDS, "node", "auth")}
        ints = {k: doc[k] for k in _INT_FIELDS}
    except (ValueError, KeyError, TypeError):
        return None
    if not all(isinstance(v, str) for v in strs.values()):
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in ints.values()):
        return None
    return Entry(time=when, **strs, **ints)


@dataclass
class LogRead:
    entries: list[Entry] = field(default_factory=list)
    lines: int = 0
    skipped: int = 0  # non-empty lines that are not access-log objects


def parse_lines(lines: Iterable[str]) -> LogRead:
    read = LogRead()
    for line in lines:
        if not line.strip():
            continue
        read.lines += 1
        entry = parse_line(line)
        if entry is None:
            read.skipped += 1
        else:
            read.entries.append(entry)
    return read


def _missing_log(path: Path) -> AiError:
    return AiError(f"no access log at {path}",
                   "the gateway service writes it once installed and running; "
                   "or point at a log with --file PATH",
                   code="logs.missing", exit_code=ExitCode.UNAVAILABLE)


def read_log(path: Path) -> LogRead:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return parse_lines(fh)
    except FileNotFoundError:
        raise _missing_log(path) from None
    except OSError as exc:
        raise AiError(f"cannot read {path}: {exc.strerror}", code="logs.unreadable") from None


# -- the window and the figures -------------------------------------------------------------

def parse_since(text: str) -> timedelta | None:
    """"24h", "30m", "7d", "2w", "90s" → a duration; "all" → None (no window)."""
    value = text.strip().lower()
    if value == "all":
        return None
    m = _SINCE.match(value)
    if not m or int(m.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration like 30m, 24h, 7d (or 'all')")
    return timedelta(**{_SINCE_UNITS[m.group(2)]: int(m.group(1))})


def percentile(values: Sequence[int], p: float) -> int | None:
    """Nearest-rank percentile of `values` (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def figures(entries: Sequence[Entry]) -> dict[str, Any]:
    """Requests, errors, bytes and timing percentiles (-1 timings are left out)."""
    ttfb = [e.ttfb_ms for e in entries if e.ttfb_ms >= 0]
    total = [e.total_ms for e in entries if e.total_ms >= 0]
    return {
        "requests": len(entries),
        "errors": sum(1 for e in entries if e.status >= 400),
        "client_errors": sum(1 for e in entries if 400 <= e.status < 500),
        "server_errors": sum(1 for e in entries if e.status >= 500),
        "bytes_in": sum(max(e.bytes_in, 0) for e in entries),
        "bytes_out": sum(max(e.bytes_out, 0) for e in entries),
        "ttfb_p50_ms": percentile(ttfb, 50),
        "ttfb_p95_ms": percentile(ttfb, 95),
        "total_p50_ms": percentile(total, 50),
    }


def _ip_key(addr: str) -> str:
    """Canonical text of an IP (IPv4-mapped IPv6 → IPv4) so lookups match; else as given."""
    try:
        ip = ipaddress.ip_address(addr.strip("[]"))
    except ValueError:
        return addr
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def display_name(entry: Entry, names: dict[str, str]) -> str:
    """Token device, else the tailnet host owning the client IP, else the IP."""
    if entry.device and entry.device != "-":
        return entry.device
    key = _ip_key(entry.client)
    return names.get(key, key)


def group_key(entry: Entry, by: str, names: dict[str, str]) -> str:
    if by == "device":
        return display_name(entry, names)
    if by == "path":
        return entry.path
    if by == "status":
        return str(entry.status)
    if by == "client":
        return _ip_key(entry.client)
    if by == "node":
        return entry.node
    raise ValueError(f"unknown grouping {by!r}")


def summarize(entries: Iterable[Entry], *, by: str, since: timedelta | None, now: datetime,
              names: dict[str, str] | None = None) -> dict[str, Any]:
    """Figures per group for the entries whose time lies in [now - since, ∞)."""
    start = now - since if since is not None else None
    groups: dict[str, list[Entry]] = {}
    inside: list[Entry] = []
    outside = 0
    for e in entries:
        if start is not None and e.time < start:
            outside += 1
            continue
        inside.append(e)
        groups.setdefault(group_key(e, by, names or {}), []).append(e)
    rows = [{"key": key, **figures(items)} for key, items in groups.items()]
    rows.sort(key=lambda r: (-r["requests"], r["key"]))
    rejected: dict[str, list[Entry]] = {}
    for e in inside:
        if e.auth == "rejected":
            rejected.setdefault(_ip_key(e.client), []).append(e)
    # Clients often show only "Not logged in": name who keeps sending a wrong token.
    rejected_rows: list[dict[str, Any]] = [
        {"client": ip, "name": (names or {}).get(ip, ip), "attempts": len(items),
         "last": max(i.time for i in items).strftime(TIME_FORMAT)}
        for ip, items in rejected.items()]
    rejected_rows.sort(key=lambda r: (-r["attempts"], r["client"]))
    return {
        "by": by,
        "from": start.strftime(TIME_FORMAT) if start is not None else None,
        "to": now.strftime(TIME_FORMAT),
        "outside_window": outside,
        "groups": rows,
        "totals": figures(inside),
        "rejected_tokens": rejected_rows,
    }


# -- naming clients from the tailnet --------------------------------------------------------

def peer_names(doc: Any) -> dict[str, str]:
    """IP → host name for Self and every Peer of a `tailscale status --json` document."""
    names: dict[str, str] = {}
    if not isinstance(doc, dict):
        return names
    nodes: list[Any] = []
    peers = doc.get("Peer")
    if isinstance(peers, dict):
        nodes.extend(peers.values())
    nodes.append(doc.get("Self"))
    for node in nodes:
        if not isinstance(node, dict):
            continue
        name = node.get("HostName")
        if not isinstance(name, str) or not name:
            dns = node.get("DNSName")
            name = dns.split(".", 1)[0] if isinstance(dns, str) else ""
        ips = node.get("TailscaleIPs")
        if not name or not isinstance(ips, list):
            continue
        for ip in ips:
            if isinstance(ip, str):
                names.setdefault(_ip_key(ip), name)
    return names


def tailnet_names() -> tuple[dict[str, str], str | None]:
    """Names of tailnet nodes by IP, and a note when Tailscale could not be asked."""
    from aicommon import tailscale
    from aicommon.runner import run

    fallback = "client IPs are shown unnamed"
    try:
        done = run([tailscale.cli_path(), "status", "--json"], timeout=10, check=False)
    except AiError as err:
        return {}, f"tailscale unavailable ({err.message}): {fallback}"
    try:
        doc = json.loads(done.stdout)
    except ValueError:
        why = (done.stderr.strip().splitlines() or ["no JSON output"])[-1]
        return {}, f"`tailscale status --json` failed ({why}): {fallback}"
    if isinstance(doc, dict) and doc.get("TUN") is False:
        return peer_names(doc), tailscale.USERSPACE_CLIENTS_NOTE
    return peer_names(doc), None


# -- tail and follow ------------------------------------------------------------------------

def tail(path: Path, count: int) -> tuple[list[str], int]:
    """The last `count` complete lines and the offset just after them (where following starts).

    A last line without its newline is still being written: it is left for `follow`.
    """
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            pos, buf = size, b""
            while pos > 0 and buf.count(b"\n") <= count:
                step = min(64 * 1024, pos)
                pos -= step
                fh.seek(pos)
                buf = fh.read(step) + buf
    except FileNotFoundError:
        raise _missing_log(path) from None
    except OSError as exc:
        raise AiError(f"cannot read {path}: {exc.strerror}", code="logs.unreadable") from None
    end = buf.rfind(b"\n") + 1  # 0 when there is no complete line
    complete = buf[:end].split(b"\n")[:-1]
    if pos > 0:
        complete = complete[1:]  # the first piece may start mid-line
    lines = [raw.decode("utf-8", "replace") for raw in complete]
    return (lines[-count:] if count else []), pos + end


@dataclass(frozen=True)
class FollowEvent:
    kind: str  # "line" | "notice"
    text: str


def follow(path: Path, offset: int, *, poll: float = 0.5,
           sleep: Callable[[float], None] = time.sleep) -> Generator[FollowEvent, None, None]:
    """Yield lines appended to `path` from `offset` on, forever (like `tail -F`).

    Truncation (copytruncate) restarts at the top; a rotated file (new inode at the path) is
    read to its end, then the new file from its start; a missing file is waited for.
    """
    fh = None
    pending = b""
    try:
        while True:
            if fh is None:
                try:
                    fh = open(path, "rb")  # noqa: SIM115 - held open across polls
                except FileNotFoundError:
                    sleep(poll)
                    continue
                fh.seek(offset)
            chunk = fh.read()
            if chunk:
                pending += chunk
                *done, pending = pending.split(b"\n")
                for raw in done:
                    yield FollowEvent("line", raw.decode("utf-8", "replace"))
                continue
            try:
                at_path = os.stat(path)
            except FileNotFoundError:
                at_path = None
            here = os.fstat(fh.fileno())
            if at_path is not None and at_path.st_ino != here.st_ino:
                fh.close()
                fh, offset, pending = None, 0, b""
                yield FollowEvent("notice", f"{path} was rotated; following the new file")
                continue
            if here.st_size < fh.tell():
                fh.seek(0)
                pending = b""
                yield FollowEvent("notice", f"{path} was truncated; reading from the top")
                continue
            sleep(poll)
    finally:
        if fh is not None:
            fh.close()
