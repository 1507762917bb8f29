"""Where the gateway's state and inputs live (nothing here reads or writes them)."""

from __future__ import annotations

from pathlib import Path

from aicommon.paths import server_paths
from aiserver.settings import Settings


def gateway_dir(settings: Settings) -> Path:
    del settings  # one gateway per user; kept as a parameter for symmetry with other paths
    return server_paths().state_dir / "gateway"


def stats_socket(settings: Settings) -> Path:
    if settings.gateway.stats_socket:
        return Path(settings.gateway.stats_socket).expanduser()
    return gateway_dir(settings) / "admin.sock"


def pid_file(settings: Settings) -> Path:
    return gateway_dir(settings) / "haproxy.pid"


def token_file(settings: Settings) -> Path:
    """The map file: gateway.tokens_file, else <config dir>/tokens.map (as the gateway reads)."""
    if settings.gateway.tokens_file:
        return Path(settings.gateway.tokens_file).expanduser()
    return server_paths().config_dir / "tokens.map"


def pool_tokens_path(settings: Settings) -> Path:
    if settings.pool.tokens_file:
        return Path(settings.pool.tokens_file).expanduser()
    return server_paths().config_dir / "pool-tokens.map"


def pool_models_path(settings: Settings) -> Path:
    return gateway_dir(settings) / "pool-models.json"
