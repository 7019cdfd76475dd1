"""What one run measures: the load variants, the ratios between them and the targets they must meet."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FIXED_RATE_VARIANTS", "P99_GAP", "RATIOS", "SCALING", "VARIANTS", "P99Gap", "Ratio", "Variant"]


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    service: str  # the server wrk talks to (a Stack name)
    upstream: str  # what answers behind it, for the table
    alg: str = "RS256"  # the token every request carries (sent to every variant: same request bytes)
    cycle: bool = False  # a different pre-minted RS256 token on every request
    protected: bool = True  # refuses a request without a token (401) or without agents:read (403)


VARIANTS: tuple[Variant, ...] = (
    Variant("upstream", "static", "-", protected=False),
    Variant("nginx-hop", "hop", "nginx static", protected=False),
    Variant("nginx-hop-tls", "hop-tls", "nginx static", protected=False),
    Variant("envoy-rs256", "envoy", "nginx static"),
    Variant("authproxy-public", "ap-public", "nginx static", protected=False),
    Variant("authproxy-hs256", "ap-hs256", "nginx static", alg="HS256"),
    Variant("authproxy-rs256", "ap-rs256", "nginx static"),
    Variant("authproxy-rs256-w2", "ap-rs256-w2", "nginx static"),  # --workers 2 (SCALING)
    Variant("authproxy-rs256-tls", "ap-rs256-tls", "nginx static"),
    Variant("authproxy-es256", "ap-es256", "nginx static", alg="ES256"),
    Variant("authproxy-rs256-miss", "ap-rs256-miss", "nginx static", cycle=True),
    Variant("fastapi", "fastapi", "-", protected=False),
    Variant("fastapi+agno", "fastapi-agno", "-"),
    Variant("authproxy-rs256+fastapi", "ap-fastapi", "FastAPI"),
)


@dataclass(frozen=True, slots=True)
class Ratio:
    label: str
    numerator: str
    denominator: str
    target: float | None  # the ratio of req/s must be at least this; None: reported only


RATIOS: tuple[Ratio, ...] = (
    Ratio("authproxy-RS256 / upstream alone", "authproxy-rs256", "upstream", None),
    Ratio("authproxy-RS256 / nginx hop", "authproxy-rs256", "nginx-hop", 0.35),
    Ratio("authproxy-RS256 / Envoy (same workers)", "authproxy-rs256", "envoy-rs256", 1.0),
    Ratio("authproxy-RS256 --workers 2 / one worker", "authproxy-rs256-w2", "authproxy-rs256", 1.7),
    Ratio("authproxy-RS256 cache-miss / cache-hit", "authproxy-rs256-miss", "authproxy-rs256", None),
    Ratio(
        "authproxy-RS256 TLS / plain (TLS termination cost)", "authproxy-rs256-tls", "authproxy-rs256", None
    ),
    Ratio("nginx hop TLS / plain (TLS termination cost)", "nginx-hop-tls", "nginx-hop", None),
    Ratio("authproxy-RS256 TLS / nginx hop TLS", "authproxy-rs256-tls", "nginx-hop-tls", None),
    Ratio("authproxy+FastAPI / FastAPI alone", "authproxy-rs256+fastapi", "fastapi", 0.95),
    Ratio("authproxy+FastAPI / FastAPI+Agno middleware", "authproxy-rs256+fastapi", "fastapi+agno", 3.0),
)

# --scaling: the same proxy started twice, one worker and two, measured in the same interleaved rounds.
SCALING: tuple[str, str] = ("authproxy-rs256", "authproxy-rs256-w2")

# The fixed-rate part: these variants paced to one request rate, their latency compared at that rate.
FIXED_RATE_VARIANTS: tuple[str, ...] = ("nginx-hop", "envoy-rs256", "authproxy-rs256")


@dataclass(frozen=True, slots=True)
class P99Gap:
    label: str
    variant: str
    reference: str
    target_ms: float  # variant's p99 minus reference's p99 at the fixed rate must be at most this


P99_GAP = P99Gap("authproxy-RS256 p99 - nginx hop p99", "authproxy-rs256", "nginx-hop", 1.0)
