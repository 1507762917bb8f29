"""Runs inside each zipapp after shiv has extracted it (see scripts/build-zipapps).

shiv never removes extractions of older builds from ~/.shiv (or $SHIV_ROOT); after an upgrade
the first run of the new build deletes its own app's older siblings, once.
"""

import contextlib
import shutil
from pathlib import Path

site_packages: Path = globals()["site_packages"]  # injected by shiv's bootstrap
here = site_packages.parent  # <root>/<app>_<build_id>
marker = here / ".siblings-cleaned"
if not marker.exists():
    app = here.name.rsplit("_", 1)[0]
    for sibling in here.parent.glob(f"{app}_*"):
        if sibling != here and sibling.is_dir() and sibling.name.rsplit("_", 1)[0] == app:
            shutil.rmtree(sibling, ignore_errors=True)
    for lock in here.parent.glob(f".{app}_*_lock"):
        if lock.name != f".{here.name}_lock":
            lock.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        marker.touch()
