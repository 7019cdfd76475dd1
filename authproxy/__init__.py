"""authproxy: an authorization reverse proxy for agent servers and any HTTP API."""

__version__ = "0.1.0"
