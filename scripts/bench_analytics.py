"""Parser throughput and memory, side by side with `jq -c . > /dev/null` over the same files.

Generates a realistic stream-json log (REFERENCE §2.4 shapes: an init line, assistant lines
sharing message ids, thinking/text/tool_use blocks, large tool results, subagent lines, retries,
a result per session) of --size MB in a temporary directory, plus a --small MB prefix of it,
and runs each tool as its own process, best of --runs, so its peak RSS (VmHWM) is its own. The
parser is also checked for correctness: its tool-call, spawn, retry and session counts must
match what was generated. MB are 10^6 bytes, MiB 2^20. Targets: >= 50 MB/s at --size, and peak
memory flat as the input grows (peak at --size minus peak at --small <= 8 MiB).
The temporary directory is removed afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TARGET_MB_S = 50.0
FLAT_MB = 8.0
TOOLS = ["Read", "Grep", "Glob", "Edit", "Write", "Bash", "TodoWrite", "WebFetch"]
FILLER = ("def handler(request):\n    # a line of source code the agent read back\n"
          "    return compute(request.payload, retries=3)\n")


@dataclass
class Expected:
    sessions: int = 0
    tool_calls: int = 0
    spawns: int = 0
    retries: int = 0


def _dump(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))


def session_lines(s: int, exp: Expected, filler: str = FILLER) -> list[str]:
    """One `claude -p` session: ~100 lines, ~0.6 MB (tool results are most of it)."""
    sid = f"5e55{s:08x}-0000-4000-8000-000000000000"
    model = "claude-sonnet-4-5"
    lines = [_dump({"type": "system", "subtype": "init", "session_id": sid, "cwd": "/work/repo",
                    "model": model, "tools": [*TOOLS, "Task", "NotebookEdit", "MultiEdit"],
                    "mcp_servers": [], "permissionMode": "bypassPermissions",
                    "apiKeySource": "none", "claude_code_version": "2.1.240",
                    "agents": ["general-purpose"]})]
    usage = {"input_tokens": 12, "cache_creation_input_tokens": 1800,
             "cache_read_input_tokens": 24000, "output_tokens": 1}
    for turn in range(30):
        mid = f"msg_{s:06d}_{turn:03d}"
        tid = f"toolu_{s:06d}_{turn:03d}"
        sub = turn % 10 == 5
        parent = f"toolu_{s:06d}_{turn - 1:03d}" if sub else None
        tool = "Task" if turn % 10 == 4 else TOOLS[turn % len(TOOLS)]
        blocks: list[dict[str, Any]] = [
            {"type": "thinking", "thinking": "Let me look at the code. " * 20,
             "signature": "c2ln" * 40},
            {"type": "text", "text": "I will now use a tool to continue. " * 8},
            {"type": "tool_use", "id": tid, "name": tool,
             "input": {"file_path": f"/work/repo/src/module_{turn}.py", "pattern": "def handler"}},
        ]
        for block in blocks:
            lines.append(_dump({"type": "assistant", "message": {
                "id": mid, "type": "message", "role": "assistant", "model": model,
                "content": [block], "stop_reason": None, "usage": usage},
                "parent_tool_use_id": parent, "session_id": sid,
                "uuid": f"{mid}-{block['type']}"}))
        exp.tool_calls += 1
        exp.spawns += tool == "Task"
        lines.append(_dump({"type": "user", "message": {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": tid, "is_error": turn % 13 == 0,
             "content": filler * (300 if turn % 3 == 0 else 60)}]},
            "parent_tool_use_id": parent, "session_id": sid}))
        if turn % 15 == 7:
            exp.retries += 1
            lines.append(_dump({"type": "system", "subtype": "api_retry", "attempt": 1,
                                "max_retries": 10, "retry_delay_ms": 500, "error_status": 529,
                                "error": "overloaded_error", "session_id": sid}))
    lines.append(_dump({"type": "result", "subtype": "success", "is_error": False,
                        "duration_ms": 91234, "duration_api_ms": 80110, "num_turns": 30,
                        "result": "done", "stop_reason": "end_turn", "session_id": sid,
                        "total_cost_usd": 0.4321,
                        "usage": {"input_tokens": 360, "cache_creation_input_tokens": 54000,
                                  "cache_read_input_tokens": 720000, "output_tokens": 9000},
                        "modelUsage": {model: {
                            "inputTokens": 400, "outputTokens": 9500,
                            "cacheReadInputTokens": 760000, "cacheCreationInputTokens": 56000,
                            "costUSD": 0.4321, "contextWindow": 200000}},
                        "permission_denials": [], "errors": []}))
    exp.sessions += 1
    return lines


def generate(path: Path, size_mb: float, filler: str = FILLER) -> Expected:
    target = int(size_mb * 1e6)
    exp = Expected()
    written = 0
    with open(path, "w", encoding="utf-8") as fh:
        s = 0
        while written < target:
            text = "\n".join(session_lines(s, exp, filler)) + "\n"
            fh.write(text)
            written += len(text.encode("utf-8"))
            s += 1
    return exp


PARSER_CODE = """
import json, sys
from aiclient.analytics.parser import parse_file
from pathlib import Path
from typing import Any
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0
st = parse_file(Path(sys.argv[1]))
print(json.dumps({"tool_calls": st.tool_calls, "sessions": st.events.get("result", 0),
                  "spawns": st.subagent_spawns, "retries": st.api_retries,
                  "malformed": st.malformed_lines, "vm_hwm_kib": hwm()}))
"""


@dataclass
class Measure:
    seconds: float
    peak_mb: float
    stdout: str


def _hwm_kib(pid: int) -> int:
    """VmHWM: peak RSS of the process's current memory image (fresh at exec, unlike
    ru_maxrss, which on Linux keeps the forking parent's peak across execve)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def measure(argv: list[str], stdout_to_null: bool = False) -> Measure:
    """Wall time and peak RSS of one process: VmHWM sampled every 2 ms while it runs (the
    parser also reports its own VmHWM at exit; the larger value is kept)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL if stdout_to_null
                            else subprocess.PIPE, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _hwm_kib(proc.pid))
        time.sleep(0.002)
    seconds = time.perf_counter() - t0
    out = proc.stdout.read().decode() if proc.stdout is not None else ""
    err = proc.stderr.read() if proc.stderr is not None else b""
    if proc.returncode != 0:
        sys.exit(f"bench-analytics: {argv[0]} failed ({proc.returncode}): "
                 f"{err.decode(errors='replace').strip()[-300:]}")
    if out.strip().startswith("{"):
        peak = max(peak, int(json.loads(out).get("vm_hwm_kib", 0)))
    return Measure(seconds, peak / 1024, out)


def best(argv: list[str], runs: int, stdout_to_null: bool = False) -> Measure:
    results = [measure(argv, stdout_to_null) for _ in range(runs)]
    return min(results, key=lambda m: m.seconds)


def prefix(src: Path, dst: Path, size_mb: float) -> None:
    limit = int(size_mb * 1e6)
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        done = 0
        for line in fin:
            if done + len(line) > limit:
                break
            fout.write(line)
            done += len(line)


def main() -> int:
    ap = argparse.ArgumentParser(prog="bench-analytics", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=float, default=200.0, help="large log in MB (default 200)")
    ap.add_argument("--small", type=float, default=20.0, help="small log in MB (default 20)")
    ap.add_argument("--runs", type=int, default=2, help="runs per case, best kept (default 2)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    jq = shutil.which("jq")
    tmp = Path(tempfile.mkdtemp(prefix="bench-analytics-"))
    try:
        big = tmp / "large.ndjson"
        t0 = time.perf_counter()
        exp = generate(big, args.size)
        small = tmp / "small.ndjson"
        prefix(big, small, args.small)
        dense = tmp / "dense.ndjson"  # worst case for a JSON parser: short lines, many objects
        dense_exp = generate(dense, args.small, filler="x = 1\n")
        print(f"generated {big.stat().st_size / 1e6:.0f} MB ({exp.sessions} sessions, "
              f"{exp.tool_calls} tool calls) in {time.perf_counter() - t0:.1f} s under {tmp}")
        env_python = [sys.executable, "-c", PARSER_CODE]
        rows: list[tuple[str, str, Measure, float]] = []
        peaks: dict[str, float] = {}
        rates: dict[str, float] = {}
        for label, path in (("small", small), ("large", big), ("dense", dense)):
            mb = path.stat().st_size / 1e6
            parsed = best([*env_python, str(path)], args.runs)
            size = f"{mb:.0f} MB" + ("*" if label == "dense" else "")
            rows.append((size, "ai-client analytics parser", parsed, mb))
            peaks[label] = parsed.peak_mb
            rates[label] = mb / parsed.seconds
            if label != "small":
                e = exp if label == "large" else dense_exp
                got = json.loads(parsed.stdout)
                got.pop("vm_hwm_kib", None)
                want = {"tool_calls": e.tool_calls, "sessions": e.sessions,
                        "spawns": e.spawns, "retries": e.retries, "malformed": 0}
                if got != want:
                    print(f"parser counts WRONG: got {got}, expected {want}")
                    return 1
            if jq:
                rows.append((size, "jq -c . > /dev/null",
                             best([jq, "-c", ".", str(path)], args.runs, stdout_to_null=True),
                             mb))
        print(f"\n{'input':>8}  {'tool':<28} {'seconds':>8} {'MB/s':>8} {'peak RSS MiB':>13}")
        for size, tool, m, mb in rows:
            print(f"{size:>8}  {tool:<28} {m.seconds:>8.2f} {mb / m.seconds:>8.1f} "
                  f"{m.peak_mb:>13.1f}")
        lines = dense.read_bytes().count(b"\n")
        print(f"* dense: the same events with tiny tool results "
              f"({dense.stat().st_size / lines:.0f} bytes per line on average): "
              f"{rates['dense']:.1f} MB/s")
        if not jq:
            print("(jq not installed: no jq rows; scripts/test installs it)")
        growth = peaks["large"] - peaks["small"]
        speed_ok = rates["large"] >= TARGET_MB_S
        flat_ok = growth <= FLAT_MB
        print(f"\nparser counts match the generated logs ({exp.tool_calls} tool calls, "
              f"{exp.sessions} results)")
        print(f"parser throughput {rates['large']:.1f} MB/s at {args.size:.0f} MB "
              f"(target >= {TARGET_MB_S:.0f}): {'PASS' if speed_ok else 'FAIL'}")
        print(f"parser peak memory {peaks['small']:.1f} MiB at {args.small:.0f} MB vs "
              f"{peaks['large']:.1f} MiB at {args.size:.0f} MB (growth {growth:+.1f} MiB, "
              f"flat = within {FLAT_MB:.0f} MiB): {'PASS' if flat_ok else 'FAIL'}")
        return 0
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
