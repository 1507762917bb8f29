"""Fixtures for tests against the real HAProxy and the Ollama simulator."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.gatewayproc import GatewayProcess, start_gateway
from tests.support.ollama_sim import OllamaSimulator

if shutil.which("haproxy") is None:  # scripts/test installs it; never silently pass without it
    raise RuntimeError("haproxy is not installed: run scripts/test (it installs it)")


@pytest.fixture()
def sim() -> Iterator[OllamaSimulator]:
    with OllamaSimulator() as s:
        yield s


GatewayFactory = Callable[..., GatewayProcess]


@pytest.fixture()
def gateway_factory(tmp_path: Path) -> Iterator[GatewayFactory]:
    started: list[GatewayProcess] = []

    def make(upstream_port: int, **kw: Any) -> GatewayProcess:
        workdir = tmp_path / f"gw{len(started)}"
        workdir.mkdir()
        gw = start_gateway(workdir, upstream_port, **kw)
        started.append(gw)
        return gw

    yield make
    for gw in started:
        gw.stop()


@pytest.fixture()
def gateway(sim: OllamaSimulator, gateway_factory: GatewayFactory) -> GatewayProcess:
    return gateway_factory(sim.port)
