"""Process settings that come from the environment, read once when the process starts.

Every part of `authproxy serve` (the single process, the supervisor, each worker) takes these values as
arguments instead of reading the environment itself, so one start-up reads one value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["DEFAULT_GRACE", "DEFAULT_RELOAD_INTERVAL", "GRACE_ENV", "ServeSettings", "shutdown_grace"]

GRACE_ENV = "AUTHPROXY_SHUTDOWN_GRACE"
DEFAULT_GRACE = 25.0  # inside Kubernetes' default 30 s terminationGracePeriodSeconds
DEFAULT_RELOAD_INTERVAL = 1.0  # seconds between checks of the config and key files


def shutdown_grace(environ: Mapping[str, str] | None = None) -> float:
    """Seconds in-flight requests get after SIGTERM: $AUTHPROXY_SHUTDOWN_GRACE, else 25."""
    raw = (os.environ if environ is None else environ).get(GRACE_ENV, "").strip()
    try:
        value = float(raw) if raw else DEFAULT_GRACE
    except ValueError:
        return DEFAULT_GRACE
    return value if value >= 0 else DEFAULT_GRACE


@dataclass(frozen=True, slots=True)
class ServeSettings:
    grace: float = DEFAULT_GRACE  # drain time after SIGTERM, for a worker and for its supervisor alike

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ServeSettings:
        return cls(grace=shutdown_grace(environ))
