"""Start-up cost of ai-client's shell integration: `zsh -i -c exit` and `bash -i -c exit`
with and without the block + env file, measured side by side (interleaved) in one run.

Each shell gets two temp homes with the same (empty) rc file; "with" also has the ai-client
block appended and the env file it sources. Every round runs all cases once, in a fresh random
order, so load from other processes hits every case alike. "added" is the median over rounds of
(with - without) from the same round: unlike the difference of two medians it stays put when
the timings are bimodal (busy machine). The "without" case runs twice per round (A/A), which
shows what difference noise alone produces. CPU time (user+sys of the shell) is shown too: it
is what the block itself costs, free of scheduling delays. Target: <= 1 ms added.
Usage: scripts/bench-shell [runs]   (default 101)
"""

from __future__ import annotations

import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from aiclient.envfile import ClientEnv, render_posix
from aiclient.shellrc import plan_insert, render_block

TARGET_MS = 1.0
SHELLS = {"zsh": ".zshrc", "bash": ".bashrc"}
TIMEOUT_S = 10.0


def make_home(root: Path, name: str, shell: str, integrated: bool) -> Path:
    home = root / name
    home.mkdir()
    rc = home / SHELLS[shell]
    rc.write_text("")
    if integrated:
        bin_dir = home / "Library" / "Application Support" / "ai-client" / "bin"
        bin_dir.mkdir(parents=True)
        env = ClientEnv("http://studio.tail1234.ts.net:11434", "tok-0123456789abcdef",
                        "qwen3-coder:30b", "global", bin_dir)
        env_sh = home / ".config" / "ai-client" / "env.sh"
        env_sh.parent.mkdir(parents=True)
        env_sh.write_text(render_posix(env))
        env_sh.chmod(0o600)
        rc.write_text(plan_insert("", render_block(env_sh, home)))
    return home


def time_once(shell: str, home: Path) -> tuple[float, float]:
    """(wall ms, CPU ms) of one `shell -i -c exit` in a minimal environment."""
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "TERM": "dumb"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([shell, "-i", "-c", "exit"], env=env, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=TIMEOUT_S,
                   check=True)
    wall = (time.perf_counter() - t0) * 1000.0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000.0
    return wall, cpu


def paired_median(a: list[float], b: list[float]) -> float:
    return statistics.median(x - y for x, y in zip(a, b, strict=True))


def paired_ci(a: list[float], b: list[float], rounds: int = 2000) -> tuple[float, float]:
    """95% bootstrap interval of the median paired difference, resampling whole rounds."""
    rng = random.Random(1)
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    meds = sorted(statistics.median(rng.choices(diffs, k=len(diffs))) for _ in range(rounds))
    return meds[int(0.025 * rounds)], meds[int(0.975 * rounds) - 1]


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 101
    missing = [s for s in SHELLS if shutil.which(s) is None]
    if missing or runs < 5:
        print(f"bench-shell: need zsh and bash (missing: {missing}) and runs >= 5",
              file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="bench-shell-"))
    try:
        cases: list[tuple[str, str, Path]] = []  # (label, shell, home)
        for shell in SHELLS:
            without = make_home(root, f"{shell}-without", shell, False)
            with_ = make_home(root, f"{shell}-with", shell, True)
            cases += [(f"{shell} without", shell, without), (f"{shell} with", shell, with_),
                      (f"{shell} without (A/A)", shell, without)]
        for _, shell, home in cases:  # warm-up: page cache, dynamic loader
            for _ in range(3):
                time_once(shell, home)
        wall: dict[str, list[float]] = {label: [] for label, _, _ in cases}
        cpu: dict[str, list[float]] = {label: [] for label, _, _ in cases}
        order = list(cases)
        rng = random.Random(0)
        for _ in range(runs):  # interleaved, in a fresh random order each round
            rng.shuffle(order)
            for label, shell, home in order:
                w, c = time_once(shell, home)
                wall[label].append(w)
                cpu[label].append(c)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(f"shell start-up, `<shell> -i -c exit`: {runs} rounds, every case once per round "
          "in random order")
    print(f"{'case':<24} {'median ms':>10} {'p25 ms':>8} {'p75 ms':>8} {'IQR ms':>8} "
          f"{'CPU ms':>8}")
    for label, values in wall.items():
        q = statistics.quantiles(values, n=4)
        print(f"{label:<24} {statistics.median(values):>10.2f} {q[0]:>8.2f} {q[2]:>8.2f} "
              f"{q[2] - q[0]:>8.2f} {statistics.median(cpu[label]):>8.2f}")
    ok = True
    for shell in SHELLS:
        base, integrated, aa = (wall[f"{shell} {k}"] for k in ("without", "with", "without (A/A)"))
        added = paired_median(integrated, base)
        low, high = paired_ci(integrated, base)
        noise_low, noise_high = paired_ci(aa, base)
        of_medians = statistics.median(integrated) - statistics.median(base)
        cpu_added = paired_median(cpu[f"{shell} with"], cpu[f"{shell} without"])
        passed = added <= TARGET_MS
        ok &= passed
        print(f"{shell}: added {added:+.2f} ms (95% CI {low:+.2f}..{high:+.2f}; "
              f"difference of medians {of_medians:+.2f}; CPU {cpu_added:+.2f})")
        print(f"{'':<{len(shell) + 2}}noise: A/A {paired_median(aa, base):+.2f} ms "
              f"(95% CI {noise_low:+.2f}..{noise_high:+.2f})   target <= {TARGET_MS:.0f} ms: "
              f"{'PASS' if passed else 'FAIL'}")
    print(f"overall: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
