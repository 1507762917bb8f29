"""Gateway lifecycle: resolve addresses, write a generation of files, validate, run, reload;
the runtime API.

Each render goes into its own directory `gen-<hash>` under the gateway dir and `current` is a
symlink to the one in force; haproxy runs with `-f current/haproxy.cfg`, so a reload that fails
validation never touches what is running.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import stat
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from aicommon import tailscale
from aicommon.errors import AiError, ExitCode
from aicommon.fsutil import atomic_write
from aicommon.runner import run
from aiserver.gateway import nodes
from aiserver.gateway import render as gateway
from aiserver.gateway.paths import gateway_dir, pid_file, stats_socket, token_file
from aiserver.gateway.pool import is_local as is_local_node
from aiserver.settings import Settings, split_hostport

KEEP_GENERATIONS = 3


@dataclass(frozen=True)
class Listen:
    addresses: tuple[str, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)
    names: tuple[str, ...] = ()  # this machine's tailnet names (Self.DNSName, Self.HostName)


def resolve_listen(settings: Settings, wait_seconds: float) -> Listen:
    """Explicit addresses as given; "auto" → this machine's Tailscale addresses, never wider."""
    g = settings.gateway
    addrs: list[str] = []
    notes: list[str] = []
    names: list[str] = []
    if g.allow_other_listen:
        notes.append("allow_other_listen = true: non-Tailscale, non-loopback addresses allowed")
    for entry in g.listen:
        if entry != "auto":
            addrs.append(entry)
            continue
        state = tailscale.wait_running(wait_seconds)
        # the tailnet addresses are names clients use even when tailscaled delivers their
        # connections to 127.0.0.1 (userspace networking)
        names += [state.dns_name, state.host_name, *state.addresses]
        # the MagicDNS short name (first label) is what people type; HostName may differ
        names.append(state.dns_name.split(".")[0])
        if state.tun:
            addrs.extend(state.addresses)
            continue
        up_host, up_port = split_hostport(g.upstream)
        if tailscale.delivered_in_userspace(up_host):
            raise AiError(
                "Tailscale runs in userspace networking: tailscaled delivers tailnet connections "
                f"for every allowed port to 127.0.0.1, so Ollama on {g.upstream} is reachable "
                "without the gateway",
                f"run `ai-server install` (it moves Ollama to [::1]:{up_port}, where tailscaled "
                "never delivers), or run tailscaled with a TUN device",
                code="tailscale.userspace_upstream", exit_code=ExitCode.CONFIG)
        exposed = [n for n in settings.pool.nodes
                   if tailscale.delivered_in_userspace(split_hostport(n, "pool node")[0])
                   and is_local_node(n)]
        if exposed:
            raise AiError(
                "Tailscale runs in userspace networking: tailscaled delivers tailnet connections "
                f"to 127.0.0.1, so the local pool node {exposed[0]} is reachable without the "
                "gateway", f"run that Ollama on [::1] (OLLAMA_HOST=[::1]:"
                f"{split_hostport(exposed[0], 'pool node')[1]}) and list it so in pool.nodes",
                code="tailscale.userspace_pool_node", exit_code=ExitCode.CONFIG)
        addrs.append(tailscale.USERSPACE_DELIVERY_HOST)
        notes.append(f"Tailscale userspace networking: listening on 127.0.0.1:{g.port}, where "
                     f"tailscaled delivers tailnet connections; Ollama stays on {g.upstream}")
    unique = tuple(dict.fromkeys(addrs))
    if not unique:
        raise AiError("the gateway has no address to listen on",
                      "start Tailscale (`tailscale up`) or list addresses in gateway.listen",
                      code="gateway.no_address", exit_code=ExitCode.UNAVAILABLE)
    if not names and any(tailscale.is_tailscale_ip(a) for a in unique):
        # explicit Tailscale addresses: the machine's tailnet names still apply (best effort)
        with contextlib.suppress(AiError):
            state = tailscale.status()
            names += [state.dns_name, state.host_name, state.dns_name.split(".")[0]]
    return Listen(unique, tuple(notes), tuple(dict.fromkeys(n for n in names if n)))


def token_map_text(settings: Settings) -> str | None:
    if not settings.gateway.tokens:
        return None
    path = token_file(settings)
    try:
        st = path.stat()
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AiError(f"tokens = true but the token file {path} does not exist",
                      "create it with lines '<token> <device>' (mode 600), or set tokens = false",
                      code="tokens.missing", exit_code=ExitCode.CONFIG) from None
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise AiError(f"the token file {path} is readable by other users",
                      f"chmod 600 {path}", code="tokens.permissions", exit_code=ExitCode.CONFIG)
    return text


def render_for(settings: Settings, listen: Listen, target: Path,
               socket_path: Path | None = None) -> gateway.Rendered:
    pool_models = pool_tokens = pool_addresses = None
    if settings.pool.nodes:
        pool_models, pool_tokens = nodes.stored_models(settings), nodes.read_tokens(settings)
        pool_addresses = nodes.addresses(settings, pool_tokens)
    return gateway.render(settings, list(listen.addresses), target,
                          host_names=list(listen.names), token_map=token_map_text(settings),
                          stats_socket=socket_path or stats_socket(settings),
                          pool_models=pool_models, pool_tokens=pool_tokens,
                          pool_addresses=pool_addresses)


def refresh_pool(settings: Settings) -> dict[str, object] | None:
    """With a pool: ask every node for its models now (run and reload do this first)."""
    if not settings.pool.nodes:
        return None
    return nodes.refresh(settings)


def write_files(rendered: gateway.Rendered, target: Path) -> list[Path]:
    changed = []
    for f in rendered.files:
        res = atomic_write(target / f.relpath, f.content, mode=f.mode)
        if res.changed:
            changed.append(res.path)
    return changed


def validate_config(config: Path) -> str:
    """`haproxy -c -dW`: warnings count as errors. Returns haproxy's output."""
    done = run([gateway.haproxy_binary(), "-c", "-dW", "-f", str(config)], timeout=60,
               check=False, hint="install HAProxy (brew install haproxy / apt install haproxy)")
    output = (done.stdout + done.stderr).strip()
    if not done.ok:
        problems = [line for line in output.splitlines() if "ALERT" in line or "WARNING" in line]
        raise AiError("HAProxy rejected the generated config: "
                      + ("; ".join(problems[:3]) or output[-300:]),
                      "check the settings; run `ai-server config render` to see the config",
                      code="gateway.invalid", exit_code=ExitCode.CONFIG)
    return output


def validate_settings(settings: Settings, listen: Listen) -> str:
    """Render into a temp dir and validate there (nothing in the state dir changes)."""
    with tempfile.TemporaryDirectory(prefix="ai-server-validate-") as tmp:
        target = Path(tmp)
        rendered = render_for(settings, listen, target, target / "admin.sock")
        write_files(rendered, target)
        return validate_config(target / "haproxy.cfg")


def _generation_name(rendered: gateway.Rendered) -> str:
    h = hashlib.sha256()
    for f in rendered.files:
        h.update(f.relpath.encode() + b"\0" + f.content.encode() + b"\0")
    return "gen-" + h.hexdigest()[:16]


@dataclass(frozen=True)
class Prepared:
    config: Path  # the `current/haproxy.cfg` path haproxy is started with
    generation: Path
    changed: bool  # False when the settings rendered to the generation already in force
    listen: Listen


def prepare(settings: Settings, listen: Listen) -> Prepared:
    """Render a generation, validate it, and only then make it current."""
    base = gateway_dir(settings)
    base.mkdir(parents=True, exist_ok=True)
    for stale in base.glob(".staging-*"):  # left by a process killed while rendering
        if time.time() - stale.stat().st_mtime > 60:
            shutil.rmtree(stale, ignore_errors=True)
    # The generation's name depends on its own path (the config names its files), so render
    # once to learn the content hash of a path-independent render, then for real.
    probe = render_for(settings, listen, base / "gen-x")
    gen = base / _generation_name(probe)
    rendered = render_for(settings, listen, gen)
    current = base / "current"
    in_force = current.is_symlink() and os.readlink(current) == gen.name
    if not gen.exists():
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=base))
        try:
            write_files(rendered, staging)
            # Validate the staged files under the final name: the config names absolute paths.
            staging.rename(gen)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        try:
            validate_config(gen / "haproxy.cfg")
        except AiError:
            shutil.rmtree(gen, ignore_errors=True)
            raise
    else:
        validate_config(gen / "haproxy.cfg")
    if not in_force:
        tmp_link = base / f".current-{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            tmp_link.unlink()
        tmp_link.symlink_to(gen.name)
        os.replace(tmp_link, current)
        _prune(base, keep=gen.name)
    return Prepared(current / "haproxy.cfg", gen, not in_force, listen)


def _prune(base: Path, keep: str) -> None:
    gens = sorted((p for p in base.glob("gen-*") if p.is_dir()), key=lambda p: p.stat().st_mtime)
    for old in gens[:-KEEP_GENERATIONS]:
        if old.name != keep:
            shutil.rmtree(old, ignore_errors=True)


def haproxy_argv(settings: Settings, config: Path) -> list[str]:
    return [gateway.haproxy_binary(), "-W", "-db", "-f", str(config), "-p",
            str(pid_file(settings))]


def exec_haproxy(argv: list[str]) -> None:
    """Replace this process with HAProxy (service managers then supervise HAProxy itself)."""
    binary = shutil.which(argv[0]) or argv[0]
    try:
        os.execv(binary, argv)
    except OSError as exc:
        raise AiError(f"cannot start {argv[0]}: {exc.strerror}",
                      "install HAProxy (brew install haproxy / apt install haproxy)",
                      code="gateway.exec", exit_code=ExitCode.UNAVAILABLE) from None


def running_master(settings: Settings) -> int | None:
    path = pid_file(settings)
    try:
        pid = int(path.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def reload(settings: Settings, wait_seconds: float) -> dict[str, object]:
    pid = running_master(settings)
    if pid is None:
        raise AiError("the gateway is not running (no live HAProxy master in "
                      f"{pid_file(settings)})", "start it with `ai-server run` (or its service)",
                      code="gateway.not_running", exit_code=ExitCode.UNAVAILABLE)
    listen = resolve_listen(settings, wait_seconds)
    refresh_pool(settings)
    prepared = prepare(settings, listen)
    os.kill(pid, signal.SIGUSR2)
    return {"master_pid": pid, "config": str(prepared.config),
            "generation": prepared.generation.name, "changed": prepared.changed,
            "listen": list(listen.addresses), "names": list(listen.names),
            "notes": list(listen.notes)}


def probe(settings: Settings, headers: dict[str, str], timeout: float = 2.0) -> int | None:
    """GET /api/version through the running gateway (first listen address that answers), as a
    client would send it; the HTTP status, or None when nothing listens there."""
    import http.client

    try:
        addresses = resolve_listen(settings, 0).addresses
    except AiError:
        return None
    port = settings.gateway.port
    for addr in addresses:
        host = f"[{addr}]" if ":" in addr else addr
        conn = http.client.HTTPConnection(addr, port, timeout=timeout)
        try:
            conn.request("GET", "/api/version", headers={"Host": f"{host}:{port}", **headers})
            resp = conn.getresponse()
            resp.read()
            return resp.status
        except (OSError, http.client.HTTPException):
            continue
        finally:
            conn.close()
    return None


def is_haproxy(pid: int) -> bool:
    """Whether pid is an HAProxy process (a stale pid file may name an unrelated process)."""
    proc = Path(f"/proc/{pid}/comm")
    if proc.exists():
        with contextlib.suppress(OSError):
            return "haproxy" in proc.read_text()
    try:
        done = run(["ps", "-o", "comm=", "-p", str(pid)], timeout=10, check=False)
    except AiError:
        return False
    return done.ok and "haproxy" in done.stdout


def stop_master(pid: int, timeout: float = 15.0) -> bool:
    """Stop an HAProxy master (SIGTERM: workers stop too); True once it is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if _zombie(pid):  # exited; its parent has not reaped it yet
            return True
        time.sleep(0.1)
    return False


def _zombie(pid: int) -> bool:
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            done = run(["ps", "-o", "stat=", "-p", str(pid)], timeout=10, check=False)
        except AiError:
            return False
        return done.stdout.strip().startswith("Z")
    return stat_line.rsplit(")", 1)[-1].split()[0] == "Z"


def runtime_command(sock: Path, command: str, timeout: float = 3.0) -> str:
    """One command on HAProxy's runtime API (the admin stats socket); its whole answer."""
    import socket

    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(str(sock))
        s.sendall(command.encode() + b"\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data.decode(errors="replace")


def current_generation(settings: Settings) -> Path | None:
    current = gateway_dir(settings) / "current"
    return current.resolve() if current.is_symlink() else None
