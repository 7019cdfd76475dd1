"""Benchmark harness: authproxy against nginx, Envoy, a FastAPI app and Agno's in-process middleware.

Run with `make bench` or `python -m bench`; not part of CI. Everything listens on 127.0.0.1 only.
"""
