"""Named checks with a fix each: the preflight of `install` and the core of `doctor`."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

from packaging.version import InvalidVersion, Version

from aicommon import resources, tailscale
from aicommon.errors import AiError
from aicommon.runner import run
from aiserver import system
from aiserver.settings import Settings, split_hostport

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
MIN_OLLAMA = Version("0.14.0")


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _version_in(text: str) -> str | None:
    found = re.findall(r"(\d+\.\d+\.\d+)", text)
    return found[-1] if found else None


def check_os() -> Check:
    info = system.os_info()
    if info.platform == "darwin":
        try:
            major = int(info.release.split(".")[0])
        except ValueError:
            major = 0
        if major >= 14 and info.machine == "arm64":
            return Check("os", PASS, f"macOS {info.release} on Apple Silicon")
        return Check("os", WARN, f"macOS {info.release} on {info.machine}",
                     "macOS 14 or later on Apple Silicon is recommended for local models")
    if info.platform == "linux":
        return Check("os", PASS, f"Linux {info.release} ({info.machine})")
    return Check("os", FAIL, f"unsupported platform {info.platform}", "use macOS or Linux")


def check_memory() -> Check:
    mem = system.memory_bytes()
    if mem is None:
        return Check("memory", WARN, "could not read the memory size")
    gib = mem / 2**30
    if gib < 16:
        return Check("memory", WARN, f"{gib:.0f} GiB", "coding models want 32 GiB or more")
    return Check("memory", PASS, f"{gib:.0f} GiB")


def context_for_memory(requested: int, mem: int | None) -> tuple[int, str | None]:
    """Lower the default context length on small machines (memory grows with context)."""
    if mem is None:
        return requested, None
    gib = mem / 2**30
    cap = 8192 if gib < 16 else 32768 if gib < 32 else None
    if cap is not None and requested > cap:
        return cap, (f"context length lowered from {requested} to {cap} for {gib:.0f} GiB of "
                     "memory (pass --context-length to choose)")
    return requested, None


def claude_min_context() -> int | None:
    """The largest minimum context any Claude Code rule asks for (share/compat/rules.toml,
    the data ai-client checks too), or None."""
    import tomllib

    from aicommon import resources

    doc = tomllib.loads(resources.read_text("compat/rules.toml"))
    found = [r["min_context"] for r in doc.get("rules", [])
             if isinstance(r, dict) and isinstance(r.get("min_context"), int)]
    return max(found) if found else None


def claude_context_note(context: int) -> str | None:
    """A warning when Claude Code could not work with this context (Aider can)."""
    minimum = claude_min_context()
    if minimum is None or context >= minimum:
        return None
    return (f"Claude Code cannot work with context {context} (needs >= {minimum}): claude-ollama "
            f"will refuse to start; Aider works. Pass --context-length {minimum} or more if "
            "this machine's memory allows (Ollama's docs ask >= 100k for Claude Code)")


def check_brew() -> Check:
    brew = system.find_brew()
    if brew:
        return Check("homebrew", PASS, brew)
    return Check("homebrew", WARN, "not found: services are installed with launchd/systemd",
                 "install Homebrew (https://brew.sh) to manage Ollama and HAProxy with it")


def reached_by_userspace_tailscaled(upstream: str) -> bool:
    """Would a userspace-mode tailscaled deliver tailnet connections to this Ollama address?"""
    host, _ = split_hostport(upstream)
    return tailscale.delivered_in_userspace(host)


def userspace_upstream(upstream: str) -> str:
    """Where Ollama listens instead when Tailscale runs in userspace mode: [::1], same port."""
    _, port = split_hostport(upstream)
    return f"[{tailscale.USERSPACE_SAFE_HOST}]:{port}"


def ipv6_loopback_usable() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def check_tailscale(settings: Settings) -> list[Check]:
    try:
        state = tailscale.status()
    except AiError as err:
        return [Check("tailscale", FAIL, err.message, err.hint or "start Tailscale and log in")]
    checks = []
    problem = tailscale.diagnose(state)
    if problem is not None:
        checks.append(Check("tailscale", FAIL, problem[0], problem[1]))
    else:
        checks.append(Check("tailscale", PASS, f"{state.dns_name or 'running'}: "
                            + ", ".join(state.addresses)))
    g = settings.gateway
    if state.tun:
        checks.append(Check("tailscale-tun", PASS, "kernel (TUN) networking"))
    elif reached_by_userspace_tailscaled(g.upstream):
        checks.append(Check("tailscale-tun", FAIL,
                            "userspace networking: tailscaled delivers tailnet connections for "
                            f"every allowed port to 127.0.0.1, so Ollama on {g.upstream} is "
                            "reachable by tailnet peers without the gateway",
                            f"run `ai-server install`: it moves Ollama to "
                            f"{userspace_upstream(g.upstream)}, where tailscaled never delivers "
                            "(or run tailscaled with a TUN device)"))
    elif not ipv6_loopback_usable():
        checks.append(Check("tailscale-tun", FAIL,
                            "userspace networking needs Ollama on [::1] (tailscaled delivers "
                            "to 127.0.0.1), but this machine has no IPv6 loopback",
                            "enable IPv6 on lo (sysctl net.ipv6.conf.lo.disable_ipv6=0), or "
                            "run tailscaled with a TUN device"))
    else:
        checks.append(Check("tailscale-tun", WARN,
                            f"userspace networking: tailnet peers reach whatever listens on "
                            f"127.0.0.1 — the gateway (port {g.port}); Ollama is on "
                            f"{g.upstream}, out of tailscaled's reach",
                            "keep other services off 127.0.0.1 or out of the tailnet policy; "
                            "every client appears as 127.0.0.1 (use device tokens to tell "
                            "them apart)"))
    return checks


def install_hint(formula: str, verb: str = "install") -> str:
    """How to get a program on this machine: Homebrew only where Homebrew is."""
    if system.find_brew():
        return f"brew {verb} {formula}"
    if system.platform_name() == "darwin":
        return f"install Homebrew (https://brew.sh), then `brew install {formula}`"
    if formula == "ollama":  # its script also enables a system `ollama` service on :11434
        return ("curl -fsSL https://ollama.com/install.sh | sh, then "
                "`sudo systemctl disable --now ollama` (ai-server runs its own)")
    return f"install {formula} from your distribution's packages, e.g. `sudo apt install {formula}`"


def ollama_binary(settings: Settings) -> str | None:
    return settings.ollama.binary or system.find_program("ollama", system.find_brew())


def check_ollama(settings: Settings) -> Check:
    binary = ollama_binary(settings)
    if binary is None:
        return Check("ollama", FAIL, "ollama not found", install_hint("ollama"))
    done = run([binary, "--version"], timeout=30, check=False)
    version = _version_in(done.stdout + done.stderr)
    if version is None:
        return Check("ollama", FAIL, f"cannot read the version of {binary}",
                     "reinstall Ollama: " + install_hint("ollama", "reinstall"))
    if Version(version) < MIN_OLLAMA:
        return Check("ollama", FAIL, f"Ollama {version}: the Anthropic endpoint needs Ollama "
                     f">= {MIN_OLLAMA}", install_hint("ollama", "upgrade"))
    return Check("ollama", PASS, f"Ollama {version} ({binary})")


def haproxy_version() -> tuple[str, str] | None:
    """(full version string, upstream x.y.z) of the haproxy on PATH."""
    from aiserver.gateway.render import haproxy_binary

    binary = system.find_program(haproxy_binary(), system.find_brew())
    if binary is None:
        return None
    done = run([binary, "-v"], timeout=30, check=False)
    m = re.search(r"version (\S+)", done.stdout)
    if not m:
        return None
    full = m.group(1)
    upstream = _version_in(full.split("-")[0]) or full
    return full, upstream


def check_haproxy() -> Check:
    found = haproxy_version()
    if found is None:
        return Check("haproxy", FAIL, "haproxy not found", install_hint("haproxy"))
    full, upstream = found
    data = json.loads(resources.read_text("haproxy/security.json"))
    try:
        v = Version(upstream)
    except InvalidVersion:
        return Check("haproxy", WARN, f"HAProxy {full}: unreadable version")
    branch = f"{v.major}.{v.minor}"
    if v < Version(data["oldest_supported_branch"]):
        return Check("haproxy", FAIL, f"HAProxy {full} is older than "
                     f"{data['oldest_supported_branch']}", install_hint("haproxy", "upgrade"))
    rule = data["branches"].get(branch)
    if rule and v < Version(rule["minimum"]):
        if re.search(r"deb\d|ubuntu|el\d|fc\d", full):
            return Check("haproxy", WARN, f"HAProxy {full}: upstream {upstream} predates the "
                         f"fix for {rule['fix']} (fixed in {rule['minimum']}); distributions "
                         "backport fixes", "check your distribution's security advisories")
        return Check("haproxy", FAIL, f"HAProxy {full} lacks the fix for {rule['fix']} "
                     f"(fixed in {rule['minimum']})", install_hint("haproxy", "upgrade"))
    return Check("haproxy", PASS, f"HAProxy {full}")


def preflight(settings: Settings) -> list[Check]:
    return [check_os(), check_memory(), check_brew(), *check_tailscale(settings),
            check_ollama(settings), check_haproxy()]


def failures(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.status == FAIL]
