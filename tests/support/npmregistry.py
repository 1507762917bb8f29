"""A local npm registry serving the REAL Claude Code packages from the test cache.

`pack_claude(dest, versions)` rebuilds, from the cached npm prefixes (realclients.claude_prefix),
the two tarballs npm downloads for `npm install @anthropic-ai/claude-code@<v>` on linux-x64:
the wrapper package (with its 500-byte placeholder `bin/claude.exe`, exactly as published: the
cached install has the native binary hard-linked over it by the postinstall) and the platform
package `@anthropic-ai/claude-code-linux-x64` with the native binary. `NpmRegistry` serves
their packuments and tarballs on 127.0.0.1 (start it inside `loopback_only()`: a socket lives
in the network namespace it was made in). The other platforms' packages get packuments only
(npm skips them by os/cpu without fetching a tarball). No internet is involved.
"""

from __future__ import annotations

import base64
import hashlib
import json
import tarfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from tests.support.realclients import claude_prefix

PACKAGE = "@anthropic-ai/claude-code"
# bin/claude.exe as published in @anthropic-ai/claude-code 2.1.153 and 2.1.332 (identical; a
# shell script without `#!`, so exec() fails with ENOEXEC when the postinstall did not run).
PLACEHOLDER = (
    'echo "Error: claude native binary not installed." >&2\n'
    'echo "" >&2\n'
    'echo "Either postinstall did not run (--ignore-scripts, some pnpm configs)" >&2\n'
    'echo "or the platform-native optional dependency was not downloaded" >&2\n'
    'echo "(--omit=optional)." >&2\n'
    'echo "" >&2\n'
    'echo "Run the postinstall manually (adjust path for local vs global install):" >&2\n'
    'echo "  node node_modules/@anthropic-ai/claude-code/install.cjs" >&2\n'
    'echo "" >&2\n'
    'echo "Or reinstall without --ignore-scripts / --omit=optional." >&2\n'
    "exit 1\n")
PLATFORM_OS_CPU = {"darwin-arm64": ("darwin", "arm64"), "darwin-x64": ("darwin", "x64"),
                   "linux-x64": ("linux", "x64"), "linux-arm64": ("linux", "arm64"),
                   "linux-x64-musl": ("linux", "x64"), "linux-arm64-musl": ("linux", "arm64"),
                   "win32-x64": ("win32", "x64"), "win32-arm64": ("win32", "arm64")}


@dataclass
class Packed:
    """Manifests (name → version → package.json + dist) and the tarball files."""

    manifests: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    tarballs: dict[str, Path] = field(default_factory=dict)  # URL path → file


def _tar(dest: Path, files: dict[str, Path | bytes]) -> str:
    """A package tarball (entries under `package/`, gzip level 1: the binaries are large);
    returns its sha512 integrity."""
    with tarfile.open(dest, "w:gz", compresslevel=1) as tar:
        for name, source in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.mode = 0o755 if name.startswith("bin/") or name == "claude" else 0o644
            if isinstance(source, bytes):
                import io

                info.size = len(source)
                tar.addfile(info, io.BytesIO(source))
            else:
                info.size = source.stat().st_size
                with open(source, "rb") as fh:
                    tar.addfile(info, fh)
    digest = hashlib.sha512()
    with open(dest, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return "sha512-" + base64.b64encode(digest.digest()).decode()


def pack_claude(dest: Path, versions: list[str]) -> Packed:
    packed = Packed()
    dest.mkdir(parents=True, exist_ok=True)
    for version in versions:
        wrapper = claude_prefix(version) / "lib" / "node_modules" / PACKAGE
        native = wrapper / "node_modules" / "@anthropic-ai" / "claude-code-linux-x64"
        for name, folder, files in (
                (PACKAGE, wrapper, {p.name: p for p in sorted(wrapper.iterdir())
                                    if p.is_file()} | {"bin/claude.exe": PLACEHOLDER.encode()}),
                (f"{PACKAGE}-linux-x64", native,
                 {p.name: p for p in sorted(native.iterdir()) if p.is_file()})):
            base = name.split("/")[1]
            url = f"/{name}/-/{base}-{version}.tgz"
            tgz = dest / f"{base}-{version}.tgz"
            integrity = _tar(tgz, files)  # type: ignore[arg-type]
            manifest = json.loads((folder / "package.json").read_text())
            manifest["dist"] = {"integrity": integrity, "tarball": url}
            packed.manifests.setdefault(name, {})[version] = manifest
            packed.tarballs[url] = tgz
        for platform, (os_name, cpu) in PLATFORM_OS_CPU.items():
            name = f"{PACKAGE}-{platform}"
            if name in packed.manifests and version in packed.manifests[name]:
                continue
            packed.manifests.setdefault(name, {})[version] = {
                "name": name, "version": version, "os": [os_name], "cpu": [cpu],
                **({"libc": ["musl"]} if platform.endswith("musl") else {}),
                "dist": {"tarball": f"/{name}/-/{platform}-{version}.tgz",
                         "integrity": "sha512-" + base64.b64encode(b"\0" * 64).decode()}}
    return packed


class NpmRegistry:
    """Serves `packed` on 127.0.0.1; `url` is the registry to put in an .npmrc."""

    def __init__(self, packed: Packed) -> None:
        self.packed = packed
        self.requests: list[str] = []
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                path = unquote(self.path.split("?", 1)[0])
                registry.requests.append(path)
                name = path.lstrip("/")
                if name in registry.packed.manifests:
                    versions = registry.packed.manifests[name]
                    doc = {"name": name, "versions": {
                        v: {**m, "dist": {**m["dist"],
                                          "tarball": registry.url + m["dist"]["tarball"]}}
                        for v, m in versions.items()},
                        "dist-tags": {"latest": max(versions, key=_key)}}
                    self._send(200, "application/json", json.dumps(doc).encode())
                    return
                tgz = registry.packed.tarballs.get(path)
                if tgz is None:
                    self._send(404, "application/json", b'{"error":"Not found"}')
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(tgz.stat().st_size))
                self.end_headers()
                with open(tgz, "rb") as fh:
                    while chunk := fh.read(1 << 20):
                        self.wfile.write(chunk)

            def do_POST(self) -> None:
                self._send(404, "application/json", b'{"error":"Not found"}')

            def _send(self, status: int, ctype: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> NpmRegistry:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".") if p.isdigit())
