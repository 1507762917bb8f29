"""The gateway package's modules import one way: settings → paths → pool/render → nodes →
control ← tokens. A module may import only modules of earlier layers (lazy imports count)."""

from __future__ import annotations

import ast
from pathlib import Path

import aiserver.gateway

LAYERS = ["paths", "pool", "render", "nodes", "control", "tokens"]
PACKAGE = Path(aiserver.gateway.__file__).parent


def gateway_imports(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "aiserver.gateway":
                found |= {a.name for a in node.names}
            elif node.module.startswith("aiserver.gateway."):
                found.add(node.module.split(".")[2])
            elif node.module == "aiserver":
                found |= {a.name for a in node.names if a.name in ("gateway", "gatewayctl",
                                                                   "pool", "tokens")}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[2] for a in node.names
                      if a.name.startswith("aiserver.gateway.")}
    return found


def test_every_module_of_the_package_has_a_layer() -> None:
    on_disk = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert on_disk == set(LAYERS)


def test_gateway_modules_import_only_earlier_layers() -> None:
    for i, module in enumerate(LAYERS):
        later = gateway_imports(module) - set(LAYERS[:i])
        assert not later, f"{module} imports {sorted(later)} (a later layer or itself)"


def test_old_flat_modules_are_gone() -> None:
    src = PACKAGE.parent
    assert not [n for n in ("gateway.py", "gatewayctl.py", "pool.py", "tokens.py")
                if (src / n).exists()]
