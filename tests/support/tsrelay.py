"""A stand-in for tailscaled's userspace-networking delivery rule (REFERENCE §7).

In userspace mode (`TUN` false) tailscaled terminates a peer's TCP connection to
<tailscale-ip>:PORT inside its own netstack and dials `127.0.0.1:PORT` on the machine, for
every port the tailnet policy allows (tailscale v1.103, wgengine/netstack/netstack.go,
acceptTCP: `case isTailscaleIP: dialIP = ipv4Loopback`; forwardTCP dials it with a plain
net.Dialer). It never dials ::1, and when nothing listens there the peer gets a reset.

    ip netns exec PEER python3 tests/support/tsrelay.py NETNS_PATH TAILSCALE_IP PORT [PORT ...]

Started in the peer's network namespace, it listens there on TAILSCALE_IP:PORT (the server's
tailnet address as the peer sees it), then moves into the server's namespace (NETNS_PATH,
e.g. /var/run/netns/<name>) and dials 127.0.0.1:PORT there for each accepted connection.
Like tailscaled's netstack, it has no socket of its own in the server's namespace, and the
server has no route to its own tailnet address. Prints "ready" once every port listens.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import socket
import sys
import threading

CLONE_NEWNET = 0x40000000


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := src.recv(65536):
            dst.sendall(chunk)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


def _serve(conn: socket.socket, port: int) -> None:
    try:
        # "Attempt to dial the outbound connection before we accept the inbound one."
        backend = socket.create_connection(("127.0.0.1", port), timeout=5)
    except OSError:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()  # linger 0: a reset, as r.Complete(true) sends
        return
    backend.settimeout(None)
    back = threading.Thread(target=_pipe, args=(backend, conn), daemon=True)
    back.start()
    _pipe(conn, backend)
    back.join()
    backend.close()
    conn.close()


def _accept_loop(listener: socket.socket, port: int) -> None:
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_serve, args=(conn, port), daemon=True).start()


def _enter(netns_path: str) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    fd = os.open(netns_path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({netns_path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def main(argv: list[str]) -> int:
    netns_path, entry, ports = argv[0], argv[1], [int(p) for p in argv[2:]]
    listeners = []
    for port in ports:
        listener = socket.socket(socket.AF_INET6 if ":" in entry else socket.AF_INET)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((entry, port))
        listener.listen(64)
        listeners.append((listener, port))
    _enter(netns_path)  # threads started from here on dial inside the server's namespace
    threads = []
    for listener, port in listeners:
        t = threading.Thread(target=_accept_loop, args=(listener, port), daemon=True)
        t.start()
        threads.append(t)
    print("ready", flush=True)
    for t in threads:
        t.join()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
