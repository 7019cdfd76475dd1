"""Front ends: the command line, explain, table-driven policy tests and the demo."""

from authproxy.cli.main import main

__all__ = ["main"]
