"""Fixtures for tests against the real HAProxy and the Ollama simulator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.gatewayproc import GatewayProcess, haproxy_binaries, start_gateway
from tests.support.ollama_sim import OllamaSimulator

# Both must exist (scripts/test provides them); never silently pass without one.
HAPROXY_BINARIES = haproxy_binaries()


@pytest.fixture()
def sim() -> Iterator[OllamaSimulator]:
    with OllamaSimulator() as s:
        yield s


GatewayFactory = Callable[..., GatewayProcess]


@pytest.fixture(params=sorted(HAPROXY_BINARIES))
def haproxy_binary(request: pytest.FixtureRequest) -> str:
    """Every test that starts a gateway runs on Debian's HAProxy and on 3.4.0 (Homebrew's)."""
    return HAPROXY_BINARIES[request.param]


@pytest.fixture()
def gateway_factory(tmp_path: Path, haproxy_binary: str) -> Iterator[GatewayFactory]:
    started: list[GatewayProcess] = []

    def make(upstream_port: int, **kw: Any) -> GatewayProcess:
        workdir = tmp_path / f"gw{len(started)}"
        workdir.mkdir()
        kw.setdefault("haproxy", haproxy_binary)
        gw = start_gateway(workdir, upstream_port, **kw)
        started.append(gw)
        return gw

    yield make
    for gw in started:
        gw.stop()


@pytest.fixture()
def gateway(sim: OllamaSimulator, gateway_factory: GatewayFactory) -> GatewayProcess:
    return gateway_factory(sim.port)
