"""Read the data files bundled in the distribution (share/ → package `aishare`).

Goes through importlib.resources so it works from a checkout, a wheel and a zipapp.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

from aicommon.errors import AiError

PACKAGE = "aishare"


def root() -> Traversable:
    return resources.files(PACKAGE)


def _find(relpath: str) -> Traversable:
    node = root()
    for part in relpath.split("/"):
        node = node / part
    if not node.is_file():
        raise AiError(f"bundled data file {relpath!r} is missing",
                      "reinstall remote-ollama-proxy (the installation is incomplete)",
                      code="share.missing")
    return node


def read_text(relpath: str) -> str:
    return _find(relpath).read_text(encoding="utf-8")


def read_bytes(relpath: str) -> bytes:
    return _find(relpath).read_bytes()


def list_files() -> list[str]:
    """Every bundled data file, as paths relative to the share root, sorted."""
    found: list[str] = []

    def walk(node: Traversable, prefix: str) -> None:
        for child in node.iterdir():
            name = f"{prefix}{child.name}"
            if child.is_dir():
                if child.name != "__pycache__":
                    walk(child, name + "/")
            elif child.name != "__init__.py" and not child.name.endswith(".pyc"):
                found.append(name)

    walk(root(), "")
    return sorted(found)
