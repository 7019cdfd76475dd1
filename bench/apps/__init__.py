"""Upstream applications the harness starts as subprocesses."""
