"""A stand-in for tailscaled's userspace-networking delivery rule (REFERENCE §7).

In userspace mode (`TUN` false) tailscaled terminates a peer's TCP connection to
<tailscale-ip>:PORT inside its own netstack and dials `127.0.0.1:PORT` on the machine, for
every port the tailnet policy allows (tailscale v1.103, wgengine/netstack/netstack.go,
acceptTCP: `case isTailscaleIP: dialIP = ipv4Loopback`; forwardTCP dials it with a plain
net.Dialer). It never dials ::1, and when nothing listens there the peer gets a reset.

    python3 tests/support/tsrelay.py ENTRY_ADDRESS PORT [PORT ...]

listens on ENTRY_ADDRESS:PORT (the address peers' packets arrive on, in the test's network
namespace) and forwards each accepted connection to 127.0.0.1:PORT in the same way. Prints
"ready" on stdout once every port listens.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading


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


def main(argv: list[str]) -> int:
    entry, ports = argv[0], [int(p) for p in argv[1:]]
    threads = []
    for port in ports:
        listener = socket.socket(socket.AF_INET6 if ":" in entry else socket.AF_INET)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((entry, port))
        listener.listen(64)
        t = threading.Thread(target=_accept_loop, args=(listener, port), daemon=True)
        t.start()
        threads.append(t)
    print("ready", flush=True)
    for t in threads:
        t.join()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
