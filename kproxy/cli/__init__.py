"""The ``kproxy`` command."""

from kproxy.cli.main import main

__all__ = ["main"]
