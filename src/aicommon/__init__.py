"""Shared kit of ai-server and ai-client: errors, output, subprocesses, files, paths, HTTP."""

__version__ = "0.1.0"
