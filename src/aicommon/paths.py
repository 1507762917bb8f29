"""Where each tool keeps its config, state and logs.

One resolver per tool. `AI_SERVER_HOME` / `AI_CLIENT_HOME` put everything under one root
(tests point them at a temp dir); otherwise the platform's conventional directories apply.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class AppPaths:
    app: str
    config_dir: Path
    state_dir: Path
    log_dir: Path
    source: str  # the env var that set the root, or "platform"

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    def as_dict(self) -> dict[str, str]:
        return {
            "config_file": str(self.config_file),
            "config_dir": str(self.config_dir),
            "state_dir": str(self.state_dir),
            "log_dir": str(self.log_dir),
            "source": self.source,
        }


def app_paths(app: str, env_var: str) -> AppPaths:
    root = os.environ.get(env_var, "").strip()
    if root:
        base = Path(root).expanduser().absolute()
        return AppPaths(app, base / "config", base / "state", base / "logs", env_var)
    import platformdirs  # only commands that need paths pay for this import

    dirs = platformdirs.PlatformDirs(app, appauthor=False)
    return AppPaths(app, Path(dirs.user_config_dir), Path(dirs.user_state_dir),
                    Path(dirs.user_log_dir), "platform")


def server_paths() -> AppPaths:
    return app_paths("ai-server", "AI_SERVER_HOME")


def client_paths() -> AppPaths:
    return app_paths("ai-client", "AI_CLIENT_HOME")


def paths_report(paths: AppPaths, config: Path | None) -> dict[str, object]:
    """What `paths` prints: the resolved directories and the bundled data location."""
    from aicommon import resources

    data: dict[str, object] = dict(paths.as_dict())
    if config is not None:
        data["config_file"] = str(config.absolute())
    data["share_dir"] = str(resources.root())
    data["share_files"] = len(resources.list_files())
    return data
