"""Children that must react to Ctrl-C: a shell that starts jobs in the background (as CI may)
hands them SIGINT ignored, and Python then never raises KeyboardInterrupt."""

from __future__ import annotations

import signal


def default_sigint() -> None:
    """preexec_fn for subprocess.Popen: SIGINT back to its default before exec."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
